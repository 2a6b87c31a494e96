package netns

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The TCP sender and receiver are this very binary run again inside a
// namespace: any binary that imports netns (every test binary of a package
// using it) becomes the helper when helperEnv is set, before main or
// TestMain runs. That needs no extra program and no python or nc.
const helperEnv = "ISLE_NETNS_HELPER"

func init() {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	if err := runHelper(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "netns helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TransferTimeout bounds one TCPTransfer.
const TransferTimeout = 2 * time.Minute

// TransferResult says what one TCPTransfer moved.
type TransferResult struct {
	Bytes   int64
	Elapsed time.Duration // the receiver's time from accept to the last byte
	Peer    string        // the sender's address as the receiver saw it (NAT shows here)
}

// Mbps is the transfer's goodput in megabits per second.
func (r TransferResult) Mbps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e6
}

// TCPTransfer sends size bytes of a seeded pseudo-random stream over one TCP
// connection from node from to toAddr, an address of node to, where a
// receiver checks every byte against the same stream. It fails on the first
// wrong byte, a short stream, or a connection that does not get through.
func (topo *Topology) TCPTransfer(from, to Node, toAddr string, size int64) (TransferResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return TransferResult{}, fmt.Errorf("finding own binary: %w", err)
	}
	seed := rand.Uint64()
	ctx, cancel := context.WithTimeout(context.Background(), TransferTimeout)
	defer cancel()

	recv := topo.Command(to, exe, "recv", strconv.FormatInt(size, 10), strconv.FormatUint(seed, 10))
	recv.Env = append(os.Environ(), helperEnv+"=1")
	var recvErr bytes.Buffer
	recv.Stderr = &recvErr
	stdout, err := recv.StdoutPipe()
	if err != nil {
		return TransferResult{}, err
	}
	if err := recv.Start(); err != nil {
		return TransferResult{}, fmt.Errorf("starting receiver in %s: %w", topo.NS(to), err)
	}
	defer recv.Process.Kill() // a no-op once it has exited
	go func() {
		<-ctx.Done()
		recv.Process.Kill()
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		recv.Wait()
		return TransferResult{}, fmt.Errorf("receiver in %s did not start: %s", topo.NS(to), recvErr.String())
	}
	port, ok := strings.CutPrefix(lines.Text(), "listening ")
	if !ok {
		return TransferResult{}, fmt.Errorf("receiver said %q", lines.Text())
	}

	send := exec.CommandContext(ctx, "ip", "netns", "exec", topo.NS(from), exe, "send",
		net.JoinHostPort(toAddr, port), strconv.FormatInt(size, 10), strconv.FormatUint(seed, 10))
	send.Env = append(os.Environ(), helperEnv+"=1")
	sendOut, sendErr := send.CombinedOutput()
	if sendErr != nil {
		// The receiver may wait for a connection that never comes.
		recv.Process.Kill()
	}

	var result string
	if lines.Scan() {
		result = lines.Text()
	}
	waitErr := recv.Wait()
	if sendErr != nil {
		return TransferResult{}, fmt.Errorf("sender %s → %s: %w: %s (receiver: %s)",
			topo.NS(from), toAddr, sendErr, bytesTrim(sendOut), recvErr.String())
	}
	if waitErr != nil {
		return TransferResult{}, fmt.Errorf("receiver in %s: %w: %s", topo.NS(to), waitErr, recvErr.String())
	}
	var r TransferResult
	var nanos int64
	if _, err := fmt.Sscanf(result, "ok %d %d %s", &r.Bytes, &nanos, &r.Peer); err != nil {
		return TransferResult{}, fmt.Errorf("receiver result %q: %w", result, err)
	}
	r.Elapsed = time.Duration(nanos)
	if r.Bytes != size {
		return r, fmt.Errorf("received %d bytes, sent %d", r.Bytes, size)
	}
	return r, nil
}

// runHelper is the helper's main: "recv SIZE SEED" or "send ADDR SIZE SEED".
func runHelper(args []string) error {
	if len(args) == 0 {
		return errors.New("no mode")
	}
	switch {
	case args[0] == "recv" && len(args) == 3:
		size, err1 := strconv.ParseInt(args[1], 10, 64)
		seed, err2 := strconv.ParseUint(args[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
		result, err := receive(ln, size, seed)
		if err != nil {
			return err
		}
		fmt.Println(result)
		return nil
	case args[0] == "send" && len(args) == 4:
		size, err1 := strconv.ParseInt(args[2], 10, 64)
		seed, err2 := strconv.ParseUint(args[3], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return sendStream(args[1], size, seed)
	}
	return fmt.Errorf("bad arguments %q", args)
}

// stream is the pseudo-random byte stream both sides derive from the seed.
func stream(seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	key = sha256.Sum256(key[:])
	return rand.NewChaCha8(key)
}

// receive accepts one connection on ln and checks that it carries exactly
// the size first bytes of seed's stream; it returns the result line.
func receive(ln net.Listener, size int64, seed uint64) (string, error) {
	conn, err := ln.Accept()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(TransferTimeout))
	start := time.Now()
	want := stream(seed)
	got, exp := make([]byte, 64<<10), make([]byte, 64<<10)
	var total int64
	for {
		n, err := conn.Read(got)
		if n > 0 {
			if total+int64(n) > size {
				return "", fmt.Errorf("more than the %d bytes expected", size)
			}
			io.ReadFull(want, exp[:n])
			if !bytes.Equal(got[:n], exp[:n]) {
				i := firstDiff(got[:n], exp[:n])
				return "", fmt.Errorf("byte %d differs: got %#02x, want %#02x", total+int64(i), got[i], exp[i])
			}
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("after %d bytes: %w", total, err)
		}
	}
	if total != size {
		return "", fmt.Errorf("stream ended after %d of %d bytes", total, size)
	}
	return fmt.Sprintf("ok %d %d %s", total, time.Since(start).Nanoseconds(), conn.RemoteAddr()), nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func sendStream(addr string, size int64, seed uint64) error {
	var conn net.Conn
	var err error
	// The receiver is listening before we start, but the path (a tunnel
	// being negotiated) may still be coming up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(TransferTimeout))
	if _, err := io.CopyN(conn, stream(seed), size); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	// Close the write half and wait for the receiver's close, so that
	// every byte was read before we report success.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, conn)
	return err
}
