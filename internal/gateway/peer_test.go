package gateway

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/config"
)

func testdata(t *testing.T, parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "testdata"}, parts...)...)
}

// TestIdentityRoundTrip: a configured identity goes to the wire form the
// negotiator sends and comes back as the same configured identity, so
// that [secrets] lookups find what the peer presents.
func TestIdentityRoundTrip(t *testing.T) {
	for _, s := range []string{"gw-a.example.net", "198.18.0.1", "2001:db8::1", "admin@example.net", "C=CH, O=Acme, CN=gw-a", "%any"} {
		id, err := config.ParseIdentity(s)
		if err != nil {
			t.Fatal(err)
		}
		wire := ikeIdentity(id)
		back, ok := configIdentity(wire)
		if !ok {
			t.Fatalf("%s: no way back from %v", s, wire)
		}
		if !id.Matches(back) || back.String() != id.String() && id.Kind != config.IDDN {
			t.Errorf("%s: came back as %q (%v)", s, back.String(), back.Kind)
		}
	}
	if _, ok := configIdentity(ike.Identity{Type: message.IDIPv4, Data: []byte{1, 2, 3}}); ok {
		t.Error("a 3-byte IPv4 identity was accepted")
	}
}

// TestLifetimes: hard limits are a tenth above the soft ones, as
// strongSwan's life_time = rekey_time + 10%; zero stays "no limit".
func TestLifetimes(t *testing.T) {
	if got := hardOf(time.Hour); got != 66*time.Minute {
		t.Errorf("hardOf(1h) = %v", got)
	}
	if got := hardOf(3 * time.Second); got != 13*time.Second {
		t.Errorf("hardOf(3s) = %v: no room for a retransmitted rekey", got)
	}
	for _, c := range []struct{ soft, headroom, hard uint64 }{
		{0, 5, 0}, {1, 5, 6}, {100, 5, 110}, {1000, 5, 1100}, {^uint64(0) - 3, 5, ^uint64(0)},
	} {
		if got := hardCount(c.soft, c.headroom); got != c.hard {
			t.Errorf("hardCount(%d, %d) = %d, want %d", c.soft, c.headroom, got, c.hard)
		}
	}
	if hardBytes(2_000_000) != 2_000_000+1<<30 || hardPackets(100) != 100+1<<20 {
		t.Error("small byte and packet limits get no headroom for the rekey")
	}
}

// TestPeerFor builds the negotiator's peers from the configuration
// testdata: PSK found by identities, certificates and keys carried over,
// actions and rekey intervals mapped.
func TestPeerFor(t *testing.T) {
	cfg, err := config.Load(testdata(t, "demo", "left.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connections[0]
	p, err := peerFor(c, cfg.Gateway, cfg.PSK)
	if err != nil {
		t.Fatal(err)
	}
	if p.Remote != netip.MustParseAddrPort("198.18.0.2:500") || p.Config.Local != netip.MustParseAddrPort("198.18.0.1:500") {
		t.Errorf("addresses: remote %v local %v", p.Remote, p.Config.Local)
	}
	if !p.Restart || p.DPDDelay != 30*time.Second || p.RekeyTime != 4*time.Hour || p.ChildRekeyTime["lan"] != time.Hour {
		t.Errorf("timers and actions: %+v", p)
	}
	key := p.Config.PSKFor(ikeIdentity(c.Local.ID), ikeIdentity(c.Remote.ID))
	want, _ := cfg.PSK(c.Local.ID, c.Remote.ID)
	if len(key) == 0 || !bytes.Equal(key, want) {
		t.Error("PSKFor does not find the demo's secret")
	}
	if k := p.Config.PSKFor(ike.FQDN("someone.example"), ike.FQDN("stranger.example")); k != nil {
		t.Error("PSKFor found a key for identities no secret lists")
	}
	if _, err := ike.NewManager(ike.ManagerConfig{Peers: []ike.Peer{p}, Send: func(netip.AddrPort, bool, []byte) error { return nil }}); err != nil {
		t.Errorf("the negotiator refuses the peer: %v", err)
	}

	certs, err := config.Load(testdata(t, "config", "valid", "certs.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs.Connections {
		p, err := peerFor(c, certs.Gateway, certs.PSK)
		if err != nil {
			t.Fatal(err)
		}
		if p.Config.Key == nil || len(p.Config.Certs) == 0 || len(p.Config.CACerts) == 0 {
			t.Errorf("%s: credentials not carried over", c.Name)
		}
		if c.RemoteAny && p.Remote.IsValid() {
			t.Errorf("%s: %%any peer with an address %v", c.Name, p.Remote)
		}
		if _, err := ike.NewManager(ike.ManagerConfig{Peers: []ike.Peer{p}, Send: func(netip.AddrPort, bool, []byte) error { return nil }}); err != nil {
			t.Errorf("%s: the negotiator refuses the peer: %v", c.Name, err)
		}
	}
}

// TestSameConnection: a reload keeps a connection only when nothing that
// shapes its SAs changed, the PSK and credentials included.
func TestSameConnection(t *testing.T) {
	load := func() (*config.Config, config.Connection) {
		cfg, err := config.Load(testdata(t, "config", "valid", "certs.toml"))
		if err != nil {
			t.Fatal(err)
		}
		return cfg, cfg.Connections[0]
	}
	_, a := load()
	_, b := load() // freshly loaded: new pointers, same contents
	if !sameConnection(a, b, nil, nil) {
		t.Error("the same file loaded twice counts as changed")
	}
	if sameConnection(a, b, []byte("k1"), []byte("k2")) {
		t.Error("a changed PSK counts as unchanged")
	}
	c := b
	c.DPDDelay++
	if sameConnection(a, c, nil, nil) {
		t.Error("a changed dpd_delay counts as unchanged")
	}
	_, d := load()
	d.Children = append([]config.Child(nil), d.Children...)
	d.Children[0].RekeyTime++
	if sameConnection(a, d, nil, nil) {
		t.Error("a changed child counts as unchanged")
	}
	_, e := load()
	e.Local.Certs = e.Local.Certs[:0]
	if sameConnection(a, e, nil, nil) {
		t.Error("a changed certificate counts as unchanged")
	}
}

// TestLimiter: a burst per key and interval, then silence, then a count
// of what was suppressed.
func TestLimiter(t *testing.T) {
	l := newLimiter(3, time.Second)
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		ok, _ := l.allow("k", t0.Add(time.Duration(i)*time.Millisecond))
		if ok != (i < 3) {
			t.Errorf("line %d: allowed %v", i, ok)
		}
	}
	if ok, _ := l.allow("other", t0); !ok {
		t.Error("another key shares the limit")
	}
	ok, suppressed := l.allow("k", t0.Add(2*time.Second))
	if !ok || suppressed != 7 {
		t.Errorf("next interval: allowed %v, suppressed %d, want true 7", ok, suppressed)
	}
}

func TestFailureOf(t *testing.T) {
	for _, c := range []struct{ msg, err, exchange, reason string }{
		{"ike: peer does not answer", "", "INFORMATIONAL", "timeout"},
		{"ike: IKE SA failed", "ike: NO_PROPOSAL_CHOSEN: we offered ...", "IKE_SA_INIT", "no_proposal_chosen"},
		{"ike: IKE SA failed", "ike: authentication failed: AUTH payload does not verify", "IKE_AUTH", "auth_failed"},
	} {
		if e, r := failureOf(c.msg, c.err); e != c.exchange || r != c.reason {
			t.Errorf("%q %q: %s %s", c.msg, c.err, e, r)
		}
	}
}

// TestGroupConnections: connections an IKE_SA_INIT cannot tell apart
// (shared peer address, or %any) share a negotiator; others do not.
func TestGroupConnections(t *testing.T) {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	conns := []config.Connection{
		{Name: "a", RemoteAddrs: a("198.18.0.2")},
		{Name: "b", RemoteAddrs: a("198.18.0.3")},
		{Name: "rw1", RemoteAny: true},
		{Name: "c", RemoteAddrs: a("198.18.0.4", "198.18.0.2")},
		{Name: "rw2", RemoteAny: true},
		{Name: "d", RemoteAddrs: a("198.18.0.5")},
	}
	var got []string
	for _, g := range groupConnections(conns) {
		var names []string
		for _, c := range g {
			names = append(names, c.Name)
		}
		got = append(got, strings.Join(names, "+"))
	}
	if want := "a+c b rw1+rw2 d"; strings.Join(got, " ") != want {
		t.Errorf("groups %q, want %q", strings.Join(got, " "), want)
	}
}
