package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/status"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// fakeHandler records the calls and answers as told.
type fakeHandler struct {
	mu      sync.Mutex
	calls   []string
	st      status.Status
	err     error
	block   chan struct{} // if set, Up signals entered and waits on it
	entered chan struct{}
}

func (f *fakeHandler) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return f.err
}

func (f *fakeHandler) Status() status.Status { f.record("status"); return f.st }
func (f *fakeHandler) Up(name, child string) error {
	if f.block != nil {
		f.entered <- struct{}{}
		<-f.block
	}
	return f.record("up " + name + "/" + child)
}
func (f *fakeHandler) Down(name, child string) error { return f.record("down " + name + "/" + child) }
func (f *fakeHandler) Reload() error                 { return f.record("reload") }

func (f *fakeHandler) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

// serve runs Serve on a socket in a fresh directory and returns its path;
// the server is stopped, and must have returned nil, at the end of the test.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "isle.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return path
}

func TestCommands(t *testing.T) {
	h := &fakeHandler{st: status.Status{Connections: []status.Connection{{Name: "office-b", IKESAs: []status.IKESA{{
		State: "ESTABLISHED", SPIi: "0102030405060708", Initiator: true,
		Children: []status.Child{{Name: "lan", SPIIn: "c1a2b3d4", BytesIn: 42}}}}}}}}
	sock := serve(t, h)

	resp, err := Call(sock, Request{Command: CmdStatus})
	if err != nil {
		t.Fatal(err)
	}
	var got status.Status
	if err := json.Unmarshal(resp.Status, &got); err != nil {
		t.Fatal(err)
	}
	if c := got.Connections[0].IKESAs[0].Children[0]; c.SPIIn != "c1a2b3d4" || c.BytesIn != 42 || got.Connections[0].Name != "office-b" {
		t.Errorf("status came back as %s", resp.Status)
	}

	for _, tt := range []struct {
		req      Request
		call     string
		message  string
		errorSub string
	}{
		{Request{Command: CmdUp, Name: "office-b"}, "up office-b/", "office-b: initiating", ""},
		{Request{Command: CmdUp, Name: "office-b", Child: "lan"}, "up office-b/lan", "office-b/lan: initiating", ""},
		{Request{Command: CmdDown, Name: "office-b", Child: "lan"}, "down office-b/lan", "office-b/lan: deleting", ""},
		{Request{Command: CmdReload}, "reload", "configuration reloaded", ""},
		{Request{Command: CmdUp}, "", "", "up: no connection name given"},
		{Request{Command: "frob"}, "", "", `unknown command "frob"`},
		{Request{}, "", "", "request without a command"},
	} {
		h.calls = nil
		resp, err := Call(sock, tt.req)
		if tt.errorSub != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errorSub) {
				t.Errorf("%+v: error %v, want %q", tt.req, err, tt.errorSub)
			}
			if h.lastCall() != "" {
				t.Errorf("%+v reached the handler: %q", tt.req, h.lastCall())
			}
			continue
		}
		if err != nil || resp.Message != tt.message || h.lastCall() != tt.call {
			t.Errorf("%+v: %+v, %v, handler saw %q; want message %q, call %q", tt.req, resp, err, h.lastCall(), tt.message, tt.call)
		}
	}

	// Handler errors reach the client as they are, on one line.
	h.err = errors.New("no connection named \"office-c\"")
	if _, err := Call(sock, Request{Command: CmdDown, Name: "office-c"}); err == nil || err.Error() != `no connection named "office-c"` {
		t.Errorf("refused down: %v", err)
	}
	h.err = errors.New("line 3: bad\nline 4: worse")
	if _, err := Call(sock, Request{Command: CmdReload}); err == nil || err.Error() != "reload: line 3: bad; line 4: worse" {
		t.Errorf("refused reload: %v", err)
	}
}

type panicHandler struct{ fakeHandler }

func (*panicHandler) Status() status.Status { panic("boom") }

func TestHandlerPanic(t *testing.T) {
	sock := serve(t, &panicHandler{})
	if _, err := Call(sock, Request{Command: CmdStatus}); err == nil || !strings.Contains(err.Error(), "internal error in status: boom") {
		t.Errorf("panicking handler: %v", err)
	}
	if _, err := Call(sock, Request{Command: CmdReload}); err != nil {
		t.Errorf("the server did not survive a panic: %v", err)
	}
}

// raw sends bytes as they are and returns the answer line.
func raw(t *testing.T, sock string, send string, closeWrite bool) Response {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.UnixConn).CloseWrite()
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("answer to %.40q: %v", send, err)
	}
	return resp
}

func TestMalformedRequests(t *testing.T) {
	h := &fakeHandler{}
	sock := serve(t, h)
	for _, tt := range []struct {
		send       string
		closeWrite bool
		want       string
	}{
		{"not json\n", false, "request is not a JSON object"},
		{"\n", false, "empty request"},
		{`{"command":"status"}`, true, ""}, // no newline, but the client is done sending
		{`{"command":["status"]}` + "\n", false, "request is not a JSON object"},
		{strings.Repeat("x", MaxRequest+1) + "\n", false, "request longer than 4096 bytes"},
		{`{"command":"status","pad":"` + strings.Repeat("x", MaxRequest) + "\"}\n", false, "request longer than"},
	} {
		resp := raw(t, sock, tt.send, tt.closeWrite)
		if tt.want == "" {
			if !resp.OK {
				t.Errorf("%.40q: %+v", tt.send, resp)
			}
		} else if resp.OK || !strings.Contains(resp.Error, tt.want) {
			t.Errorf("%.40q: %+v, want error %q", tt.send, resp, tt.want)
		}
	}
}

// TestSilentClient: a client that connects and sends nothing gets an
// error after the read timeout and does not hold up anyone else.
func TestSilentClient(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 300 * time.Millisecond
	sock := serve(t, &fakeHandler{})
	silent, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	if _, err := Call(sock, Request{Command: CmdStatus}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("status took %v behind a silent client", d)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp Response
	if err := json.NewDecoder(silent).Decode(&resp); err != nil || resp.Error != "no request received in time" {
		t.Errorf("silent client got %+v, %v", resp, err)
	}
}

// TestBusy: beyond maxClients connections are refused at once.
func TestBusy(t *testing.T) {
	defer func(n int) { maxClients = n }(maxClients)
	maxClients = 1
	h := &fakeHandler{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	sock := serve(t, h)
	first := make(chan error, 1)
	go func() { _, err := Call(sock, Request{Command: CmdUp, Name: "a"}); first <- err }()
	<-h.entered // the first request holds the only slot
	_, err := Call(sock, Request{Command: CmdStatus})
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("second client: %v, want busy", err)
	}
	close(h.block)
	if err := <-first; err != nil {
		t.Errorf("first client: %v", err)
	}
}

func TestSocketFile(t *testing.T) {
	old := syscall.Umask(0) // the worst umask: bind would make the socket 0777
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "isle.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, path, &fakeHandler{}) }()
	var fi os.FileInfo
	var err error
	for i := 0; i < 500; i++ {
		if fi, err = os.Stat(path); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the chmod that follows the bind.
	for i := 0; i < 500 && fi.Mode().Perm() != 0o600; i++ {
		time.Sleep(10 * time.Millisecond)
		fi, _ = os.Stat(path)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("created directory: %v %v, want 0700", di.Mode(), err)
	}

	// A second gateway on the same socket is refused, and does not take
	// the socket away from the first.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another gateway is listening") {
		t.Errorf("second Listen: %v", err)
	}
	if _, err := Call(path, Request{Command: CmdStatus}); err != nil {
		t.Errorf("first gateway lost its socket: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
}

func TestStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "isle.sock")
	// A gateway that died leaves its socket file behind.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	sock := path
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	go ServeListener(ctx, l2, &fakeHandler{})
	if _, err := Call(sock, Request{Command: CmdStatus}); err != nil {
		t.Error(err)
	}

	// Anything that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "isle.sock")
	os.WriteFile(file, []byte("precious"), 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Error("regular file was touched")
	}
}

// TestPeerCredentials: a user other than root and the gateway's own is
// refused even when the socket's mode would let it connect.
func TestPeerCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, testenv.Python)
	h := &fakeHandler{}
	sock := serve(t, h)
	// Open the way that the mode would close, so that only the
	// credential check stands.
	for p := sock; p != "/"; p = filepath.Dir(p) {
		if p == sock {
			os.Chmod(p, 0o666)
		} else if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(p, fi.Mode().Perm()|0o005)
		}
	}
	client := `import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f=s.makefile()
try: s.sendall(b'{"command":"reload"}\n')
except BrokenPipeError: pass  # refused before the request was read
print(f.readline().strip())`
	cmd := exec.Command(testenv.Python, "-c", client, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil || resp.OK || resp.Error != "permission denied: uid 65534 may not control the gateway" {
		t.Errorf("nobody got %s", out)
	}
	if h.lastCall() != "" {
		t.Errorf("nobody reached the handler: %q", h.lastCall())
	}
	// Root still may.
	if _, err := Call(sock, Request{Command: CmdReload}); err != nil || h.lastCall() != "reload" {
		t.Errorf("root: %v %q", err, h.lastCall())
	}
}

// FuzzReadRequest: whatever a local client sends, the server answers
// without panicking and never accepts more than MaxRequest bytes.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"command":"up","name":"office-b","child":"lan"}` + "\n"))
	f.Add([]byte(`{"command":"status"}`))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"command":"down","name":"\u0000"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(strings.NewReader(string(b)))
		line, _, _ := strings.Cut(string(b), "\n")
		if err == nil && len(line) > MaxRequest {
			t.Errorf("accepted a %d-byte request", len(line))
		}
		resp := handle(&fakeHandler{}, req)
		if err == nil && !resp.OK && resp.Error == "" {
			t.Errorf("refusal without a reason for %+v", req)
		}
	})
}
