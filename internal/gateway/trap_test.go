package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/isle-ipsec/isle/policy"
)

const trapConfig = `
[connections.site]
remote_addrs = ["198.18.0.2"]
local = { auth = "psk", id = "a.test" }
remote = { auth = "psk", id = "b.test" }
[connections.site.children.plain]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
start_action = "%s"
dpd_action = "clear"
close_action = "start"
[connections.site.children.trapped]
local_ts = ["10.1.1.0/24"]
remote_ts = ["10.2.1.0/24"]
start_action = "trap"
dpd_action = "clear"
close_action = "trap"
[connections.site.children.dpd]
local_ts = ["10.1.2.0/24"]
remote_ts = ["10.2.2.0/24"]
start_action = "none"
dpd_action = "trap"
[secrets.site]
ids = ["a.test", "b.test"]
secret = "a key for the trap test"
`

// TestTrapAtStart: only children with start_action = trap are trapped at
// startup, and a trap alone no longer initiates; dpd_action = trap is not
// the negotiator's restart.
func TestTrapAtStart(t *testing.T) {
	for _, tc := range []struct {
		plain     string
		initiates bool
	}{
		{"none", false},
		{"trap", false},
		{"start", true},
	} {
		cfg := parse(t, fmt.Sprintf(trapConfig, tc.plain))
		cs := &conn{conf: cfg.Connections[0]}
		want := []string{"trapped"}
		if tc.plain == "trap" {
			want = []string{"plain", "trapped"}
		}
		if got := cs.trappedAtStart(); !slices.Equal(got, want) {
			t.Errorf("plain start_action = %s: trappedAtStart = %q, want %q", tc.plain, got, want)
		}
		if got := cs.wantsStart(); got != tc.initiates {
			t.Errorf("plain start_action = %s: wantsStart = %v, want %v", tc.plain, got, tc.initiates)
		}
		p, err := peerFor(cfg.Connections[0], cfg.Gateway, cfg.PSK)
		if err != nil {
			t.Fatal(err)
		}
		if p.Restart {
			t.Errorf("plain start_action = %s: dpd_action = trap made the negotiator restart", tc.plain)
		}
	}
}

// TestTrapFor: a packet goes to the armed trap whose selectors cover it,
// never to a child whose trap is not armed.
func TestTrapFor(t *testing.T) {
	cfg := parse(t, fmt.Sprintf(trapConfig, "start"))
	cs := &conn{conf: cfg.Connections[0], traps: map[string]bool{"trapped": true, "dpd": false}}
	tuple := func(src, dst string) policy.Tuple {
		return policy.Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: 1}
	}
	for _, tc := range []struct {
		t     policy.Tuple
		child string
	}{
		{tuple("10.1.1.5", "10.2.1.9"), "trapped"},
		{tuple("10.1.0.5", "10.2.0.9"), ""}, // plain: no trap
		{tuple("10.1.2.5", "10.2.2.9"), ""}, // dpd: not armed now
		{tuple("10.1.1.5", "10.2.0.9"), ""}, // crosses two children
		{tuple("10.9.1.5", "10.2.1.9"), ""}, // source outside
	} {
		got, ok := cs.trapFor(tc.t)
		if got != tc.child || ok != (tc.child != "") {
			t.Errorf("trapFor(%v) = %q, %v; want %q", tc.t, got, ok, tc.child)
		}
	}
	cs.traps["dpd"] = true
	if got, _ := cs.trapFor(tuple("10.1.2.5", "10.2.2.9")); got != "dpd" {
		t.Errorf("armed dpd trap: trapFor = %q", got)
	}
}
