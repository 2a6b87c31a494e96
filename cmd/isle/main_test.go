package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/config/invalid")

// isle runs the command line in-process and returns its exit status and
// output.
func isle(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestCheckGolden runs `isle check -c FILE` from the repository root on
// every invalid example and compares the output with FILE.golden byte for
// byte. go test ./cmd/isle -run TestCheckGolden -update rewrites them.
func TestCheckGolden(t *testing.T) {
	t.Chdir("../..")
	// git keeps no file modes worth trusting, so the world-readable
	// secret file is made here.
	psk := "testdata/config/invalid/secret-file-mode.psk"
	if err := os.WriteFile(psk, []byte("a key others can read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(psk, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(psk) })

	files, err := filepath.Glob("testdata/config/invalid/*.toml")
	if err != nil || len(files) < 12 {
		t.Fatalf("want at least 12 invalid examples, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			code, out, errOut := isle("check", "-c", file)
			if code != 1 {
				t.Errorf("exit status %d, want 1 (stderr %q)", code, errOut)
			}
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if !strings.HasPrefix(line, file+":") {
					t.Errorf("line does not start with %q: %q", file+":", line)
				}
			}
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("isle check -c %s:\n--- got\n%s--- want\n%s", file, out, want)
			}
		})
	}
}

func TestCheckValid(t *testing.T) {
	t.Chdir("../..")
	files, _ := filepath.Glob("testdata/config/valid/*.toml")
	if len(files) < 6 {
		t.Fatalf("found %d valid examples", len(files))
	}
	for _, file := range files {
		code, out, errOut := isle("check", "-c", file)
		if code != 0 || !strings.HasPrefix(out, file+": ok (") || errOut != "" {
			t.Errorf("isle check -c %s: status %d, stdout %q, stderr %q", file, code, out, errOut)
		}
	}
	// -c after nothing else, and the flag in --c=FILE form.
	if code, out, _ := isle("check", "--c=testdata/config/valid/minimal.toml"); code != 0 || out != "testdata/config/valid/minimal.toml: ok (1 connection, 0 manual SAs)\n" {
		t.Errorf("--c=FILE: %d %q", code, out)
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, out, _ := isle("check", "-c", "/nonexistent/isle.toml")
	if code != 1 || out != "/nonexistent/isle.toml: cannot read the configuration: no such file\n" {
		t.Errorf("%d %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: isle COMMAND"},
		{[]string{"frobnicate"}, 2, `isle: unknown command "frobnicate"`},
		{[]string{"check", "-x"}, 2, `isle: check: unknown flag "-x"`},
		{[]string{"check", "-c"}, 2, `isle: check: flag "-c" needs a value`},
		{[]string{"check", "extra"}, 2, `isle: check: unexpected argument "extra"`},
		{[]string{"up"}, 2, "isle: up: expected one NAME or NAME/CHILD, got 0 arguments"},
		{[]string{"down", "a", "b"}, 2, "isle: down: expected one NAME or NAME/CHILD, got 2 arguments"},
		{[]string{"up", "a/b/c"}, 2, `isle: up: "a/b/c" is not NAME or NAME/CHILD`},
		{[]string{"status", "--json=maybe"}, 2, `bad value "maybe"`},
	} {
		code, _, errOut := isle(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("isle %q: status %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
		if strings.Count(strings.TrimSuffix(errOut, "\n"), "\n") > 0 && tt.args != nil {
			t.Errorf("isle %q: reason is not one line: %q", tt.args, errOut)
		}
	}
}

func TestParseArgs(t *testing.T) {
	fs := newFlags("t")
	socket := fs.String("socket", "", "")
	js := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, []string{"office-b", "--socket", "/run/a.sock", "-json", "--", "--not-a-flag"})
	if err != nil || *socket != "/run/a.sock" || !*js || len(pos) != 2 || pos[0] != "office-b" || pos[1] != "--not-a-flag" {
		t.Errorf("pos %q socket %q json %v err %v", pos, *socket, *js, err)
	}
}

func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status"}, {"up", "office-b"}, {"down", "office-b"}, {"reload"}} {
		args = append(args, "--socket", sock)
		code, out, errOut := isle(args...)
		want := "isle: no gateway listening on " + sock + ": no such file or directory (is `isle run` running?)\n"
		if code != 1 || out != "" || errOut != want {
			t.Errorf("isle %q: %d %q %q, want stderr %q", args, code, out, errOut, want)
		}
	}
}

// TestDefaultSocket: without --socket the control path of the -c file is
// used.
func TestDefaultSocket(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "isle.toml")
	if err := os.WriteFile(cfg, []byte("[gateway]\ncontrol = \"ctl.sock\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, errOut := isle("status", "-c", cfg)
	if want := filepath.Join(dir, "ctl.sock"); !strings.Contains(errOut, "no gateway listening on "+want+":") {
		t.Errorf("stderr %q, want the socket %s", errOut, want)
	}
}

// fakeGateway answers control requests the way the gateway will, and
// records what it was asked.
func fakeGateway(t *testing.T, answer func(controlRequest) controlResponse) (string, <-chan controlRequest) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "isle.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	reqs := make(chan controlRequest, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			var req controlRequest
			_ = json.Unmarshal(line, &req)
			reqs <- req
			b, _ := json.Marshal(answer(req))
			c.Write(append(b, '\n'))
			c.Close()
		}
	}()
	return sock, reqs
}

const statusJSON = `{"connections":[{"name":"office-b","ike_sas":[{"state":"ESTABLISHED","local":"198.18.0.1:4500",
"remote":"198.18.0.2:4500","initiator":true,"spi_i":"0102030405060708","spi_r":"1112131415161718",
"proposal":"AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519","established_s":12,"rekey_in_s":14388,
"children":[{"name":"lan","state":"INSTALLED","protocol":"ESP","mode":"TUNNEL","encap":true,
"proposal":"AES_GCM_16_128","spi_in":"c1a2b3d4","spi_out":"c5a6b7d8","bytes_in":10,"packets_in":1,
"bytes_out":20,"packets_out":2,"local_ts":["10.1.0.0/24"],"remote_ts":["10.2.0.0/24"],"rekey_in_s":3540}]}]}]}`

func TestControlVerbs(t *testing.T) {
	sock, reqs := fakeGateway(t, func(r controlRequest) controlResponse {
		switch {
		case r.Command == "status":
			return controlResponse{OK: true, Status: json.RawMessage(statusJSON)}
		case r.Name == "office-c":
			return controlResponse{Error: `no connection named "office-c"`}
		}
		return controlResponse{OK: true, Message: r.Command + " " + r.Name + " " + r.Child}
	})

	code, out, _ := isle("down", "office-b/lan", "--socket", sock)
	if got := <-reqs; code != 0 || got != (controlRequest{Command: "down", Name: "office-b", Child: "lan"}) || out != "down office-b lan\n" {
		t.Errorf("down: %d %q %+v", code, out, got)
	}
	code, out, _ = isle("up", "--socket="+sock, "office-b")
	if got := <-reqs; code != 0 || got != (controlRequest{Command: "up", Name: "office-b"}) {
		t.Errorf("up: %d %q %+v", code, out, got)
	}
	code, _, errOut := isle("up", "office-c", "--socket", sock)
	<-reqs
	if code != 1 || errOut != "isle: no connection named \"office-c\"\n" {
		t.Errorf("refused up: %d %q", code, errOut)
	}
	code, out, _ = isle("reload", "--socket", sock)
	if got := <-reqs; code != 0 || got.Command != "reload" {
		t.Errorf("reload: %d %q %+v", code, out, got)
	}

	code, out, _ = isle("status", "--json", "--socket", sock)
	<-reqs
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("status --json: %d %q", code, out)
	}
	if !strings.Contains(out, `"proposal":"AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"`) {
		t.Errorf("status --json lost fields: %s", out)
	}
	code, out, _ = isle("status", "--socket", sock)
	<-reqs
	for _, want := range []string{"office-b: ESTABLISHED, IKEv2, 0102030405060708_i* 1112131415161718_r",
		"AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519", "lan: INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16_128",
		"in  c1a2b3d4,         10 bytes,        1 packets", "local  10.1.0.0/24", "remote 10.2.0.0/24"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

// TestVersionBinary builds the command with -ldflags as a release would
// and runs it, so the variable name in the Makefile-to-be stays right.
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "isle")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	want := "isle v9.8.7 (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if err != nil || string(out) != want {
		t.Errorf("isle version = %q, %v; want %q", out, err, want)
	}
	if code, out, _ := isle("version"); code != 0 || !strings.HasPrefix(out, "isle dev (go") {
		t.Errorf("in-process version: %d %q", code, out)
	}
}
