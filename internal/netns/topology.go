// Package netns builds the site-to-site lab that isle's root tests run in:
// four network namespaces (five with a NAT box in the middle) joined by veth
// pairs, made with iproute2 and nftables, and always torn down at cleanup.
//
//	hl ─lan─ gl ═══wan═══ gr ─lan─ hr
//	hl ─lan─ gl ═wan═ nat ═wan═ gr ─lan─ hr      (WithNAT)
//
// The hosts route everything to their gateway; the gateways forward but know
// no route to the far LAN: that is the tunnel's job (or WithRouting's, for a
// plain-routing baseline). Address plan (see addresses.go):
//
//	left LAN   10.1.0.0/24     fd00:1::/64       hl .2/::2, gl .1/::1
//	right LAN  10.2.0.0/24     fd00:2::/64       hr .2/::2, gr .1/::1
//	WAN        198.18.0.0/24   2001:db8:18::/64  gl .1/::1, gr .2/::2
//	behind NAT 198.19.0.0/24   2001:db8:19::/64  gl .1/::1, nat .254/::fe
//
// With WithNAT the nat namespace owns 198.18.0.1 and 2001:db8:18::1 (the
// addresses gr sees as its peer), so gr's side of a configuration is the same
// with or without NAT; only gl's own WAN address changes (Topology.GLWan4/6).
package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/testenv"
)

// Node names one namespace of the topology by its role.
type Node string

// The namespaces of the topology. The full namespace name is the prefix
// followed by the role, e.g. "nt1gl".
const (
	HL  Node = "hl"  // host on the left LAN
	GL  Node = "gl"  // left gateway
	NAT Node = "nat" // NAT box between the gateways (WithNAT only)
	GR  Node = "gr"  // right gateway
	HR  Node = "hr"  // host on the right LAN
)

var allNodes = []Node{HL, GL, NAT, GR, HR}

// Option changes how NewTopology builds the lab.
type Option func(*options)

type options struct {
	nat     bool
	loss    int
	routing bool
}

// WithNAT puts a namespace between the gateways that masquerades gl's traffic
// (IPv4 and IPv6) behind 198.18.0.1 / 2001:db8:18::1. TCP and UDP source ports
// are always rewritten into 20000-30000, so NAT-T port floating is exercised.
func WithNAT() Option { return func(o *options) { o.nat = true } }

// WithLoss drops percent% of the IP packets entering each gateway from the
// WAN (so percent% per direction), with nftables `numgen random`; neighbour
// discovery, like ARP, is not dropped. SetLoss changes it later.
func WithLoss(percent int) Option { return func(o *options) { o.loss = percent } }

// WithRouting gives the gateways plain routes to the far LAN over the WAN: a
// baseline without a tunnel (not available together with WithNAT, where the
// NAT would stop the inbound half).
func WithRouting() Option { return func(o *options) { o.routing = true } }

// Topology is a lab made by NewTopology. Its methods may be called from the
// test's goroutine and from others.
type Topology struct {
	Prefix string
	NAT    bool

	// GLWan4 and GLWan6 are gl's own WAN addresses: 198.18.0.1 and
	// 2001:db8:18::1, or 198.19.0.1 and 2001:db8:19::1 behind the NAT.
	GLWan4, GLWan6 string

	t      testing.TB
	logDir string
}

// NewTopology builds the lab with namespaces named prefix+role and registers
// a cleanup that deletes them whatever happens. Namespaces with the same
// names left by a crashed run are deleted first. It needs root.
//
// Under `go test -short` the test is skipped; without root or the tools
// (ip, nft) it is skipped, or failed in CI (internal/testenv).
func NewTopology(t testing.TB, prefix string, opts ...Option) *Topology {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace test left out by -short")
	}
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip")
	testenv.RequireTool(t, "nft")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkPrefix(prefix); err != nil {
		t.Fatal(err)
	}
	if o.nat && o.routing {
		t.Fatal("netns: WithRouting and WithNAT do not go together")
	}
	topo := &Topology{Prefix: prefix, NAT: o.nat, GLWan4: WanGL4, GLWan6: WanGL6, t: t}
	if o.nat {
		topo.GLWan4, topo.GLWan6 = BehindNATGL4, BehindNATGL6
	}
	topo.removeAll() // a crashed run may have left them
	t.Cleanup(topo.removeAll)
	if err := topo.build(o); err != nil {
		t.Fatalf("netns: building topology %q: %v", prefix, err)
	}
	if err := topo.SetLoss(o.loss); err != nil {
		t.Fatalf("netns: %v", err)
	}
	return topo
}

func checkPrefix(prefix string) error {
	// Interface names are prefix+"a0" etc. and must fit IFNAMSIZ-1 = 15.
	if prefix == "" || len(prefix) > 12 {
		return fmt.Errorf("netns: prefix %q must be 1 to 12 characters", prefix)
	}
	for _, r := range prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("netns: prefix %q: only letters and digits", prefix)
		}
	}
	return nil
}

// NS is the full name of node's namespace, for `ip netns exec`.
func (topo *Topology) NS(node Node) string { return topo.Prefix + string(node) }

// Interface names, as in scripts/topo.sh: the left LAN is a0 (hl) — a1 (gl),
// the WAN w0 (gl) — w1 (gr), the right LAN b0 (gr) — b1 (hr); with the NAT,
// gl's w0 faces the nat's n0 and the nat's n1 faces gr's w1.

// LANIface is the name of node's LAN-side interface (hosts: their only one).
func (topo *Topology) LANIface(node Node) string {
	switch node {
	case HL:
		return topo.Prefix + "a0"
	case GL:
		return topo.Prefix + "a1"
	case GR:
		return topo.Prefix + "b0"
	case HR:
		return topo.Prefix + "b1"
	case NAT:
		return topo.Prefix + "n0"
	}
	return ""
}

// WANIface is the name of a gateway's WAN interface (the nat: its outside).
func (topo *Topology) WANIface(node Node) string {
	switch node {
	case GL:
		return topo.Prefix + "w0"
	case GR:
		return topo.Prefix + "w1"
	case NAT:
		return topo.Prefix + "n1"
	}
	return ""
}

func (topo *Topology) nodes() []Node {
	if topo.NAT {
		return allNodes
	}
	return []Node{HL, GL, GR, HR}
}

// ip runs one iproute2 command in the root namespace.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytesTrim(out))
	}
	return nil
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

func (topo *Topology) build(o options) error {
	for _, n := range topo.nodes() {
		if err := ip("netns", "add", topo.NS(n)); err != nil {
			return err
		}
		if err := ip("-n", topo.NS(n), "link", "set", "lo", "up"); err != nil {
			return err
		}
		// No duplicate address detection on the interfaces to come: with
		// it, link-local addresses stay tentative for a second or two and
		// neighbour discovery does not answer meanwhile.
		if _, err := topo.Run(n, "sh", "-c", "echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad"); err != nil {
			return err
		}
	}
	type end struct {
		node       Node
		ifname     string
		addr4, ad6 string // with prefix length
	}
	links := [][2]end{
		{{HL, topo.LANIface(HL), HL4 + "/24", HL6 + "/64"}, {GL, topo.LANIface(GL), LanGL4 + "/24", LanGL6 + "/64"}},
		{{GR, topo.LANIface(GR), LanGR4 + "/24", LanGR6 + "/64"}, {HR, topo.LANIface(HR), HR4 + "/24", HR6 + "/64"}},
	}
	if topo.NAT {
		links = append(links,
			[2]end{{GL, topo.WANIface(GL), BehindNATGL4 + "/24", BehindNATGL6 + "/64"}, {NAT, topo.LANIface(NAT), NATInside4 + "/24", NATInside6 + "/64"}},
			[2]end{{NAT, topo.WANIface(NAT), WanGL4 + "/24", WanGL6 + "/64"}, {GR, topo.WANIface(GR), WanGR4 + "/24", WanGR6 + "/64"}})
	} else {
		links = append(links,
			[2]end{{GL, topo.WANIface(GL), WanGL4 + "/24", WanGL6 + "/64"}, {GR, topo.WANIface(GR), WanGR4 + "/24", WanGR6 + "/64"}})
	}
	for _, l := range links {
		a, b := l[0], l[1]
		if err := ip("link", "add", a.ifname, "netns", topo.NS(a.node), "type", "veth",
			"peer", "name", b.ifname, "netns", topo.NS(b.node)); err != nil {
			return err
		}
		for _, e := range []end{a, b} {
			ns := topo.NS(e.node)
			for _, args := range [][]string{
				{"-n", ns, "link", "set", e.ifname, "up"},
				{"-n", ns, "addr", "add", e.addr4, "dev", e.ifname},
				{"-n", ns, "-6", "addr", "add", e.ad6, "dev", e.ifname, "nodad"},
			} {
				if err := ip(args...); err != nil {
					return err
				}
			}
		}
	}
	routes := [][]string{
		{"-n", topo.NS(HL), "route", "add", "default", "via", LanGL4},
		{"-n", topo.NS(HL), "-6", "route", "add", "default", "via", LanGL6},
		{"-n", topo.NS(HR), "route", "add", "default", "via", LanGR4},
		{"-n", topo.NS(HR), "-6", "route", "add", "default", "via", LanGR6},
	}
	if topo.NAT {
		routes = append(routes,
			[]string{"-n", topo.NS(GL), "route", "add", "default", "via", NATInside4},
			[]string{"-n", topo.NS(GL), "-6", "route", "add", "default", "via", NATInside6})
	}
	if o.routing {
		routes = append(routes,
			[]string{"-n", topo.NS(GL), "route", "add", RightLAN4, "via", WanGR4},
			[]string{"-n", topo.NS(GL), "-6", "route", "add", RightLAN6, "via", WanGR6},
			[]string{"-n", topo.NS(GR), "route", "add", LeftLAN4, "via", WanGL4},
			[]string{"-n", topo.NS(GR), "-6", "route", "add", LeftLAN6, "via", WanGL6})
	}
	for _, r := range routes {
		if err := ip(r...); err != nil {
			return err
		}
	}
	forwarders := []Node{GL, GR}
	if topo.NAT {
		forwarders = append(forwarders, NAT)
	}
	for _, n := range forwarders {
		if _, err := topo.Run(n, "sh", "-c",
			"echo 1 >/proc/sys/net/ipv4/ip_forward && echo 1 >/proc/sys/net/ipv6/conf/all/forwarding"); err != nil {
			return err
		}
	}
	if topo.NAT {
		rules := fmt.Sprintf(`table inet isle_nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname %q meta l4proto { tcp, udp } masquerade to :20000-30000
    oifname %q masquerade
  }
}
`, topo.WANIface(NAT), topo.WANIface(NAT))
		if err := topo.nft(NAT, rules); err != nil {
			return fmt.Errorf("NAT rules: %w", err)
		}
	}
	return nil
}

// nft loads a ruleset into node's namespace.
func (topo *Topology) nft(node Node, rules string) error {
	cmd := topo.Command(node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s", topo.NS(node), err, bytesTrim(out))
	}
	return nil
}

// SetLoss makes each gateway drop percent% (0 to 100) of the packets that
// enter it from the WAN, IPv4 and IPv6; 0 removes the rule.
func (topo *Topology) SetLoss(percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("loss %d%% out of range", percent)
	}
	for _, gw := range []Node{GL, GR} {
		// Adding then deleting makes the delete succeed whether or not
		// the table existed.
		rules := "table inet isle_loss\ndelete table inet isle_loss\n"
		if percent > 0 {
			// numgen yields 0-99, and nft refuses "< 100".
			match := fmt.Sprintf("numgen random mod 100 < %d", percent)
			if percent == 100 {
				match = ""
			}
			// Priority raw (-300): before conntrack and NAT, as a lossy
			// link would drop. Neighbour discovery is spared, as ARP is
			// (the inet family never sees it), so that IPv4 and IPv6 lose
			// alike and no neighbour entry goes stale under loss.
			rules += fmt.Sprintf(`table inet isle_loss {
  chain pre {
    type filter hook prerouting priority raw;
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    iifname %q %s drop
  }
}
`, topo.WANIface(gw), match)
		}
		if err := topo.nft(gw, rules); err != nil {
			return fmt.Errorf("setting loss %d%%: %w", percent, err)
		}
	}
	return nil
}

// removeAll deletes this topology's namespaces, first ending any process
// still inside one (a daemon a test started, or one left by a crashed run
// with the same prefix).
func (topo *Topology) removeAll() {
	for _, n := range allNodes {
		name := topo.NS(n)
		if _, err := os.Stat("/run/netns/" + name); err != nil {
			continue
		}
		killNamespacePids(name)
		if err := ip("netns", "del", name); err != nil {
			topo.t.Logf("netns: cleanup: %v", err)
		}
	}
}

func killNamespacePids(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	pids := strings.Fields(string(out))
	for _, sig := range []string{"-TERM", "-KILL"} {
		alive := pids[:0]
		for _, pid := range pids {
			if exec.Command("kill", sig, pid).Run() == nil {
				alive = append(alive, pid)
			}
		}
		pids = alive
		if len(pids) == 0 {
			return
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if out, _ := exec.Command("ip", "netns", "pids", name).Output(); len(strings.TrimSpace(string(out))) == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Command is an *exec.Cmd that runs argv inside node's namespace.
func (topo *Topology) Command(node Node, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", topo.NS(node)}, argv...)...)
}

// RunTimeout bounds Run, so that a hung command fails the test instead of
// the whole suite's timeout.
const RunTimeout = 2 * time.Minute

// Run runs argv inside node's namespace and returns its combined output; the
// error carries the output too.
func (topo *Topology) Run(node Node, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", topo.NS(node)}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", RunTimeout, err)
		}
		return out, fmt.Errorf("in %s: %s: %w: %s", topo.NS(node), strings.Join(argv, " "), err, bytesTrim(out))
	}
	return out, nil
}

// MustRun is Run that fails the test on error.
func (topo *Topology) MustRun(node Node, argv ...string) []byte {
	topo.t.Helper()
	out, err := topo.Run(node, argv...)
	if err != nil {
		topo.t.Fatal(err)
	}
	return out
}
