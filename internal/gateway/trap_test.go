package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/internal/status"
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

// TestWaitingTraps: status lists the armed traps in file order with the
// setting that armed them and the child's selectors, and hides a
// start_action trap while its CHILD_SA is installed.
func TestWaitingTraps(t *testing.T) {
	cfg := parse(t, fmt.Sprintf(trapConfig, "trap"))
	cs := &conn{conf: cfg.Connections[0], current: map[string]uint32{},
		traps:   map[string]bool{"plain": true, "trapped": true, "dpd": true},
		trapWhy: map[string]string{"plain": "start_action", "trapped": "close_action", "dpd": "dpd_action"}}
	names := func(traps []status.Trap) string {
		var l []string
		for _, tr := range traps {
			l = append(l, fmt.Sprintf("%s(%s) %v === %v", tr.Name, tr.Reason, tr.LocalTS, tr.RemoteTS))
		}
		return strings.Join(l, "; ")
	}
	want := "plain(start_action) [10.1.0.0/24] === [10.2.0.0/24]; trapped(close_action) [10.1.1.0/24] === [10.2.1.0/24]; " +
		"dpd(dpd_action) [10.1.2.0/24] === [10.2.2.0/24]"
	if got := names(cs.waitingTraps()); got != want {
		t.Errorf("all armed: waitingTraps = %s\nwant %s", got, want)
	}
	cs.current[dpName("site", "plain")] = 0xc0ffee
	delete(cs.traps, "dpd")
	want = "trapped(close_action) [10.1.1.0/24] === [10.2.1.0/24]"
	if got := names(cs.waitingTraps()); got != want {
		t.Errorf("plain up, dpd disarmed: waitingTraps = %s\nwant %s", got, want)
	}
	cs.traps = map[string]bool{}
	if got := cs.waitingTraps(); got != nil {
		t.Errorf("none armed: waitingTraps = %v", got)
	}
}
