package gateway

import (
	"slices"
	"testing"
)

// TestTrapAsStart: every child that names trap in start_action,
// dpd_action or close_action is listed (and only those), with the keys,
// for the startup warning that trap acts as start.
func TestTrapAsStart(t *testing.T) {
	cfg := parse(t, `
[connections.site]
remote_addrs = ["198.18.0.2"]
local = { auth = "psk", id = "a.test" }
remote = { auth = "psk", id = "b.test" }
[connections.site.children.plain]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
start_action = "start"
close_action = "start"
[connections.site.children.trapped]
local_ts = ["10.1.1.0/24"]
remote_ts = ["10.2.1.0/24"]
start_action = "trap"
close_action = "trap"
[connections.site.children.dpd]
local_ts = ["10.1.2.0/24"]
remote_ts = ["10.2.2.0/24"]
dpd_action = "trap"
[secrets.site]
ids = ["a.test", "b.test"]
secret = "a key for the trap test"
`)
	cs := &conn{conf: cfg.Connections[0]}
	want := []string{"trapped: start_action, close_action", "dpd: dpd_action"}
	if got := cs.trapAsStart(); !slices.Equal(got, want) {
		t.Errorf("trapAsStart = %q, want %q", got, want)
	}
}
