package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isle-ipsec/isle/internal/status"
)

// Handler is what the gateway does for the control socket. Up and Down
// start the exchange with the peer and return; they do not wait for the
// peer's answer. child is empty for the whole connection. Errors are shown
// to the operator as they are, on one line: say what is wrong ("no
// connection named \"office-c\"").
type Handler interface {
	Status() status.Status
	Up(name, child string) error
	Down(name, child string) error
	Reload() error
}

// Limits of one connection; variables so that tests can shorten them.
var (
	// readTimeout bounds how long a client may take to send its request,
	// so that one that connects and says nothing holds nothing for long.
	readTimeout = 5 * time.Second
	// writeTimeout bounds how long a client may take to read the answer.
	writeTimeout = 10 * time.Second
	// maxClients bounds the connections served at once; more are
	// answered "busy" and closed.
	maxClients = 16
)

// Serve listens on the Unix socket path and answers requests with h until
// ctx is done; then it stops listening, waits for the requests in flight
// and removes the socket. It returns an error only if it cannot listen.
func Serve(ctx context.Context, path string, h Handler) error {
	l, err := Listen(path)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, h)
}

// Listen creates the control socket at path: mode 0600 whatever the
// umask, its directory created (0700) if missing. A socket file left
// behind by a gateway that died is replaced; one that a live gateway
// listens on is an error, and so is any other kind of file there.
func Listen(path string) (*net.UnixListener, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// bind(2) applies the umask; whatever it let through is taken back
	// before anyone is answered (and every peer is checked anyway).
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

// removeStale removes path if it is a socket nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another gateway is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// ServeListener answers requests on l (see Serve) and closes it.
func ServeListener(ctx context.Context, l *net.UnixListener, h Handler) error {
	path := l.Addr().String()
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	slots := make(chan struct{}, maxClients)
	uid := os.Geteuid()
	var err error
	for {
		var c *net.UnixConn
		c, err = l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				refuse(c, "the gateway is busy with other control requests; try again")
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			serveConn(c, h, uid)
		}()
	}
	l.Close()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	return nil
}

// refuse answers with an error without reading the request.
func refuse(c net.Conn, msg string) {
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	writeResponse(c, Response{Error: msg})
}

func serveConn(c *net.UnixConn, h Handler, uid int) {
	defer c.Close()
	if err := checkPeer(c, uid); err != nil {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, Response{Error: err.Error()})
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(readTimeout))
	req, err := readRequest(c)
	var resp Response
	if err != nil {
		resp.Error = err.Error()
	} else {
		resp = handle(h, req)
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	writeResponse(c, resp)
}

// checkPeer lets in root and the user the gateway runs as; the socket's
// mode says the same, but a socket made before a chmod, or a directory
// with looser rights, must not be a way in.
func checkPeer(c *net.UnixConn, uid int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("cannot identify the client: %v", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		credErr = err
	}
	if credErr != nil {
		return fmt.Errorf("cannot identify the client: %v", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != uid {
		return fmt.Errorf("permission denied: uid %d may not control the gateway", cred.Uid)
	}
	return nil
}

var errTooLong = fmt.Errorf("request longer than %d bytes", MaxRequest)

// readRequest reads one line of at most MaxRequest bytes; a client that
// closes its sending side without a newline still gets an answer.
func readRequest(r io.Reader) (Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxRequest+1), MaxRequest+1)
	line, err := br.ReadSlice('\n')
	if len(line) > MaxRequest {
		return Request{}, errTooLong
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return Request{}, errors.New("no request received in time")
		}
		return Request{}, fmt.Errorf("reading the request: %v", err)
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return Request{}, errors.New("empty request")
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("request is not a JSON object: %v", err)
	}
	return req, nil
}

// handle runs one request. A panic in the handler becomes an error for
// this client rather than the end of the gateway.
func handle(h Handler, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			resp = Response{Error: fmt.Sprintf("internal error in %s: %v", req.Command, p)}
		}
	}()
	target := req.Name
	if req.Child != "" {
		target += "/" + req.Child
	}
	switch req.Command {
	case CmdStatus:
		b, err := json.Marshal(h.Status())
		if err != nil {
			return Response{Error: fmt.Sprintf("encoding the status: %v", err)}
		}
		return Response{OK: true, Status: b}
	case CmdUp, CmdDown:
		if req.Name == "" {
			return Response{Error: req.Command + ": no connection name given"}
		}
		do, done := h.Up, "initiating"
		if req.Command == CmdDown {
			do, done = h.Down, "deleting"
		}
		if err := do(req.Name, req.Child); err != nil {
			return Response{Error: oneLine(err)}
		}
		return Response{OK: true, Message: target + ": " + done}
	case CmdReload:
		if err := h.Reload(); err != nil {
			return Response{Error: "reload: " + oneLine(err)}
		}
		return Response{OK: true, Message: "configuration reloaded"}
	case "":
		return Response{Error: "request without a command"}
	}
	return Response{Error: fmt.Sprintf("unknown command %q (expected status, up, down or reload)", req.Command)}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func writeResponse(w io.Writer, resp Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "encoding the answer: " + err.Error()})
	}
	_, _ = w.Write(append(b, '\n'))
}
