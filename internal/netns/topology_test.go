package netns

import (
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/isle-ipsec/isle/internal/testenv"
)

// needLab states what the namespace tests need from the machine.
func needLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace test left out by -short")
	}
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "nft", "ping", "tcpdump"} {
		testenv.RequireTool(t, tool)
	}
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// Without routes on the gateways, the WAN works but nothing crosses it
// from a LAN: that is what a tunnel has to add.
func TestTopologyWithoutTunnel(t *testing.T) {
	needLab(t)
	t.Parallel()
	topo := NewTopology(t, "nt1")

	reachable := []struct {
		from Node
		to   string
	}{
		{GL, WanGR4}, {GL, WanGR6}, {GR, WanGL4}, {GR, WanGL6},
		{HL, LanGL4}, {HL, LanGL6}, {HR, LanGR4}, {HR, LanGR6},
	}
	for _, c := range reachable {
		if err := topo.Ping(c.from, c.to, 2); err != nil {
			t.Errorf("should reach: %v", err)
		}
	}
	unreachable := []struct {
		from Node
		to   string
	}{
		{HL, HR4}, {HL, HR6}, {HR, HL4}, {HR, HL6}, {GL, HR4}, {GR, HL6}, {HL, WanGR4},
	}
	for _, c := range unreachable {
		if got, _ := topo.PingCount(c.from, c.to, 1, 10*time.Millisecond); got != 0 {
			t.Errorf("%s reached %s without a route", c.from, c.to)
		}
	}
	// gl's routing table has no way to the right LAN at all.
	if out, err := topo.Run(GL, "ip", "route", "get", HR4); err == nil {
		t.Errorf("gl has a route to %s: %s", HR4, out)
	}
}

func TestTopologyRouting(t *testing.T) {
	needLab(t)
	t.Parallel()
	topo := NewTopology(t, "nt2", WithRouting())
	for _, c := range []struct {
		to, from string
	}{{HR4, HL4}, {HR6, HL6}} {
		if err := topo.Ping(HL, c.to, 3); err != nil {
			t.Error(err)
		}
		const size = 8 << 20
		r, err := topo.TCPTransfer(HL, HR, c.to, size)
		if err != nil {
			t.Fatalf("TCP hl → %s: %v", c.to, err)
		}
		peer, err := netip.ParseAddrPort(r.Peer)
		if err != nil {
			t.Fatalf("receiver's peer %q: %v", r.Peer, err)
		}
		if peer.Addr().String() != c.from {
			t.Errorf("receiver saw %s, want %s (no NAT here)", peer.Addr(), c.from)
		}
		t.Logf("TCP hl → %s: %d bytes in %v (%.0f Mbit/s)", c.to, r.Bytes, r.Elapsed, r.Mbps())
	}
}

func TestTopologyNAT(t *testing.T) {
	needLab(t)
	t.Parallel()
	topo := NewTopology(t, "nt3", WithNAT())
	if topo.GLWan4 != BehindNATGL4 || topo.GLWan6 != BehindNATGL6 {
		t.Errorf("gl's WAN addresses %s %s, want those behind the NAT", topo.GLWan4, topo.GLWan6)
	}
	capture, err := topo.Capture(GR, topo.WANIface(GR), "icmp or icmp6")
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{WanGR4, WanGR6} {
		if err := topo.Ping(GL, to, 2); err != nil {
			t.Error(err)
		}
	}
	pcap, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	sources := echoRequestSources(t, pcap)
	if len(sources) == 0 {
		t.Fatal("capture on gr holds no echo request")
	}
	for _, src := range sources {
		if src != WanGL4 && src != WanGL6 {
			t.Errorf("gr saw an echo request from %s, want only the NAT's public addresses", src)
		}
	}

	for _, c := range []struct{ to, public string }{{WanGR4, WanGL4}, {WanGR6, WanGL6}} {
		r, err := topo.TCPTransfer(GL, GR, c.to, 1<<20)
		if err != nil {
			t.Fatalf("TCP gl → %s through the NAT: %v", c.to, err)
		}
		peer, err := netip.ParseAddrPort(r.Peer)
		if err != nil {
			t.Fatal(err)
		}
		if peer.Addr().String() != c.public || peer.Port() < NATPortMin || peer.Port() > NATPortMax {
			t.Errorf("gr saw the sender as %s, want %s with a port in %d-%d", peer, c.public, NATPortMin, NATPortMax)
		}
	}
	// The NAT only lets gl's side out: gr cannot open a path to gl.
	if got, _ := topo.PingCount(GR, BehindNATGL4, 1, 10*time.Millisecond); got != 0 {
		t.Error("gr reached gl's address behind the NAT")
	}
}

// echoRequestSources reads a pcap and returns the source address of every
// ICMP or ICMPv6 echo request in it.
func echoRequestSources(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var srcs []string
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return srcs
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && icmp.TypeCode.Type() == layers.ICMPv4TypeEchoRequest {
			srcs = append(srcs, p.NetworkLayer().(*layers.IPv4).SrcIP.String())
		}
		if icmp, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && icmp.TypeCode.Type() == layers.ICMPv6TypeEchoRequest {
			srcs = append(srcs, p.NetworkLayer().(*layers.IPv6).SrcIP.String())
		}
	}
}

func TestTopologyLoss(t *testing.T) {
	needLab(t)
	t.Parallel()
	const percent = 30
	topo := NewTopology(t, "nt4", WithRouting(), WithLoss(percent))

	// An echo and its reply each cross the WAN once, so both survive with
	// probability (1-p)²; allow five standard deviations.
	const n = 500
	p := math.Pow(1-percent/100.0, 2)
	want, slack := n*p, 5*math.Sqrt(n*p*(1-p))
	got, err := topo.PingCount(HL, HR4, n, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(got)-want) > slack {
		t.Errorf("%d%% loss each way: %d of %d replies, want %.0f ± %.0f", percent, got, n, want, slack)
	}
	if err := topo.SetLoss(100); err != nil {
		t.Fatal(err)
	}
	if got, _ := topo.PingCount(GL, WanGR6, 20, 5*time.Millisecond); got != 0 {
		t.Errorf("100%% loss: %d replies", got)
	}
	if err := topo.SetLoss(0); err != nil {
		t.Fatal(err)
	}
	if err := topo.Ping(HL, HR6, 20); err != nil {
		t.Errorf("loss removed: %v", err)
	}
}

// Cleanup deletes the namespaces and stops what Start started, and a new
// topology replaces namespaces a crashed run left behind.
func TestTopologyCleanup(t *testing.T) {
	needLab(t)
	t.Parallel()
	const prefix = "nt5"
	if err := ip("netns", "add", prefix+"gl"); err != nil { // as a crashed run leaves it
		t.Fatal(err)
	}
	var sleeper *Process
	t.Run("inner", func(t *testing.T) {
		topo := NewTopology(t, prefix, WithNAT())
		for _, n := range allNodes {
			if !nsExists(topo.NS(n)) {
				t.Errorf("namespace %s missing", topo.NS(n))
			}
		}
		sleeper = topo.Start(t, HR, "", "sleep", "600")
		if sleeper.Exited() {
			t.Fatalf("sleep ended at once: %s", sleeper.Log())
		}
	})
	for _, n := range allNodes {
		if nsExists(prefix + string(n)) {
			t.Errorf("namespace %s%s left after cleanup", prefix, n)
		}
	}
	if sleeper == nil || !sleeper.Exited() {
		t.Error("process started with Start still runs after cleanup")
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix string
		ok     bool
	}{{"nt1", true}, {"abcdefghijkl", true}, {"", false}, {"abcdefghijklm", false}, {"a-b", false}, {"a/b", false}} {
		if err := checkPrefix(c.prefix); (err == nil) != c.ok {
			t.Errorf("checkPrefix(%q) = %v, want ok=%v", c.prefix, err, c.ok)
		}
	}
}

// The receiver must reject a stream that is not the seeded one, or is
// short, and accept the right one: without root, over loopback.
func TestReceiverChecksEveryByte(t *testing.T) {
	const size = 300 << 10
	for _, c := range []struct {
		name       string
		sendSeed   uint64
		sendSize   int64
		wantErrSub string
	}{
		{"same stream", 7, size, ""},
		{"other seed", 8, size, "differs"},
		{"short", 7, size - 1, "ended after"},
		{"long", 7, size + 1, "more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go sendStream(ln.Addr().String(), c.sendSize, c.sendSeed)
			res, err := receive(ln, size, 7)
			if c.wantErrSub == "" {
				if err != nil || !strings.HasPrefix(res, "ok ") {
					t.Fatalf("receive = %q, %v", res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Fatalf("receive error %v, want one with %q", err, c.wantErrSub)
			}
		})
	}
}

// A transfer that cannot get through fails quickly, not at the timeout.
func TestTransferFailsFast(t *testing.T) {
	needLab(t)
	t.Parallel()
	topo := NewTopology(t, "nt6")
	start := time.Now()
	if _, err := topo.TCPTransfer(HL, HR, HR4, 1<<10); err == nil {
		t.Fatal("TCP reached hr without a route")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing transfer took %v", d)
	}
}
