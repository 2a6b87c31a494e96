package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/control"
	"github.com/isle-ipsec/isle/internal/status"
)

// fakeHandler answers the control socket from a fixed status and records the
// up/down/reload calls, as the real gateway's Handler does.
type fakeHandler struct {
	st    status.Status
	calls chan string
}

func (g *fakeHandler) Status() status.Status       { return g.st }
func (g *fakeHandler) Up(name, child string) error { g.calls <- "up " + name + "/" + child; return nil }
func (g *fakeHandler) Down(name, child string) error {
	g.calls <- "down " + name + "/" + child
	return nil
}
func (g *fakeHandler) Reload() error { g.calls <- "reload"; return nil }

// TestVerbsAgainstServer drives every verb against the real control server,
// so that the client and the server of internal/control cannot drift apart.
func TestVerbsAgainstServer(t *testing.T) {
	last := int64(3)
	g := &fakeHandler{calls: make(chan string, 4), st: status.Status{
		Connections: []status.Connection{{Name: "office-b", IKESAs: []status.IKESA{{
			State: "ESTABLISHED", Local: "198.18.0.1:4500", Remote: "198.18.0.2:4500", LocalID: "gw-a.example.net",
			Initiator: true, SPIi: "0102030405060708", SPIr: "1112131415161718", Proposal: "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519",
			EstablishedS: 5, RekeyInS: 100,
			Children: []status.Child{{Name: "lan", State: "INSTALLED", Protocol: "ESP", Mode: "TUNNEL", Proposal: "AES_GCM_16_128",
				SPIIn: "c1a2b3d4", SPIOut: "c5a6b7d8", BytesIn: 84, PacketsIn: 1, LastInS: &last,
				LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}}},
		}}}},
	}}
	sock := filepath.Join(t.TempDir(), "isle.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- control.ServeListener(ctx, l, g) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	code, out, errOut := isle("status", "--socket", sock)
	for _, want := range []string{
		"office-b: ESTABLISHED, IKEv2, 0102030405060708_i* 1112131415161718_r\n",
		"  local  'gw-a.example.net' @ 198.18.0.1[4500]\n",
		"  lan: INSTALLED, TUNNEL, ESP:AES_GCM_16_128\n",
		"    in  c1a2b3d4,         84 bytes,        1 packets,    3s ago\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("isle status: %d %q, lacks %q:\n%s", code, errOut, want, out)
		}
	}

	code, out, _ = isle("status", "--json", "--socket", sock)
	var st status.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Connections[0].IKESAs[0].Children[0].BytesIn != 84 {
		t.Errorf("isle status --json: %d %s", code, out)
	}
	if !strings.Contains(out, `"last_in_s":3`) || !strings.Contains(out, `"manual":[]`) {
		t.Errorf("isle status --json lost fields: %s", out)
	}

	for _, tt := range []struct {
		args       []string
		call, said string
	}{
		{[]string{"up", "office-b/lan"}, "up office-b/lan", "office-b/lan: initiating\n"},
		{[]string{"down", "office-b"}, "down office-b/", "office-b: deleting\n"},
		{[]string{"reload"}, "reload", "configuration reloaded\n"},
	} {
		code, out, errOut := isle(append(tt.args, "--socket", sock)...)
		select {
		case got := <-g.calls:
			if got != tt.call {
				t.Errorf("isle %q: gateway saw %q, want %q", tt.args, got, tt.call)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("isle %q: the gateway was not called", tt.args)
		}
		if code != 0 || out != tt.said || errOut != "" {
			t.Errorf("isle %q: %d %q %q, want %q", tt.args, code, out, errOut, tt.said)
		}
	}
}
