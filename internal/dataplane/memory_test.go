package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/isle-ipsec/isle/esp"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// These tests run two dataplanes back to back in memory, with no root: a
// channel TUN device on each side and the left's outbound packets handed
// straight to the right's inbound path (and back), as wireguard-go's
// tuntest does for its devices.

// waitLimit bounds every wait for something another goroutine does; it is
// generous because CI machines run many test binaries at once.
const waitLimit = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newMemory starts a dataplane on dev with only the TUN reader running.
func newMemory(t testing.TB, dev tun.Device, outerMTU int) *Dataplane {
	t.Helper()
	d := newDataplane(Config{Interface: "mem", MTU: 1400, OuterMTU: outerMTU, Logger: quiet()}, dev, nil)
	d.wg.Add(1)
	go d.tunLoop()
	t.Cleanup(func() { d.Close() })
	return d
}

// connect makes from's outbound packets arrive at to's inbound path. It
// also hands each outer packet to tap, when set.
func connect(from, to *Dataplane, tap func([]byte)) {
	in := newInbound(to)
	buf := make([]byte, bufSize)
	from.sendHook = func(c *child, out []byte) error {
		if tap != nil {
			tap(append([]byte(nil), out...))
		}
		pkt := buf[headroom : headroom+copy(buf[headroom:], out)]
		if c.Out.Protocol() == sa.ProtoAH {
			in.ah(buf, pkt)
		} else {
			var from netip.AddrPort
			if c.Out.Encap() {
				from = c.Out.Local()
			}
			in.esp(buf, pkt, from, true)
		}
		in.flush()
		return nil
	}
}

type keys struct {
	proto    sa.Protocol
	enc      sa.EncAlg
	integ    sa.IntegAlg
	encLen   int
	integLen int
}

var suites = map[string]keys{
	"aes-gcm-128":        {proto: sa.ProtoESP, enc: sa.EncAESGCM16, encLen: 20},
	"aes-gcm-256":        {proto: sa.ProtoESP, enc: sa.EncAESGCM16, encLen: 36},
	"chacha20-poly1305":  {proto: sa.ProtoESP, enc: sa.EncChaCha20Poly1305, encLen: 36},
	"aes-cbc-128-sha256": {proto: sa.ProtoESP, enc: sa.EncAESCBC, encLen: 16, integ: sa.IntegHMACSHA256128, integLen: 32},
	"aes-cbc-256-sha512": {proto: sa.ProtoESP, enc: sa.EncAESCBC, encLen: 32, integ: sa.IntegHMACSHA512256, integLen: 64},
	"ah-sha256":          {proto: sa.ProtoAH, integ: sa.IntegHMACSHA256128, integLen: 32},
	"ah-sha1":            {proto: sa.ProtoAH, integ: sa.IntegHMACSHA1_96, integLen: 20},
}

func key(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func mkSA(t testing.TB, k keys, spi uint32, inbound bool, local, remote string, seed byte) *sa.SA {
	t.Helper()
	c := sa.Config{SPI: spi, Protocol: k.proto, Mode: sa.ModeTunnel, Inbound: inbound,
		Enc: k.enc, Integ: k.integ, ReplayWindow: 64,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
	if k.encLen > 0 {
		c.EncKey = key(k.encLen, seed)
	}
	if k.integLen > 0 {
		c.IntegKey = key(k.integLen, seed+100)
	}
	s, err := sa.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func sels(t testing.TB, ss ...string) []policy.Selector {
	var out []policy.Selector
	for _, s := range ss {
		sel, err := policy.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}

// pair installs mirrored children on left (10.1/24, fd01::/64, outer
// 198.18.0.1) and right (10.2/24, fd02::/64, outer 198.18.0.2).
func pair(t testing.TB, left, right *Dataplane, k keys) (lc, rc Child) {
	t.Helper()
	l4, r4 := "198.18.0.1:0", "198.18.0.2:0"
	lc = Child{Name: "lab", Local: sels(t, "10.1.0.0/24", "fd01::/64"), Remote: sels(t, "10.2.0.0/24", "fd02::/64"),
		Out: mkSA(t, k, 0x1001, false, l4, r4, 1), In: mkSA(t, k, 0x2001, true, l4, r4, 2)}
	rc = Child{Name: "lab", Local: lc.Remote, Remote: lc.Local,
		Out: mkSA(t, k, 0x2001, false, r4, l4, 2), In: mkSA(t, k, 0x1001, true, r4, l4, 1)}
	if err := left.AddChild(lc); err != nil {
		t.Fatal(err)
	}
	if err := right.AddChild(rc); err != nil {
		t.Fatal(err)
	}
	return lc, rc
}

// udpPacket builds an IPv4 or IPv6 UDP packet with gopacket.
func udpPacket(t testing.TB, src, dst string, size int, df bool) []byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	udp := &layers.UDP{SrcPort: 1234, DstPort: 5678}
	body := gopacket.Payload(bytes.Repeat([]byte("isle"), size/4+1)[:size])
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if s.To4() != nil {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: s, DstIP: d}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		udp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, udp, body)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s, DstIP: d}
		udp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, udp, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func recv(t testing.TB, ch chan []byte) []byte {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(waitLimit):
		t.Fatal("no packet came out of the TUN device")
		return nil
	}
}

func expectNothing(t testing.TB, ch chan []byte) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected packet out of the TUN device: %x", p)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitDrop waits until counter r of d reaches want.
func waitDrop(t testing.TB, d *Dataplane, r Drop, want uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for d.ctr.drops[r].Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%v drops = %d, want %d", r, d.ctr.drops[r].Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemoryTunnel(t *testing.T) {
	for name, k := range suites {
		t.Run(name, func(t *testing.T) {
			lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
			left, right := newMemory(t, lt.TUN(), 1500), newMemory(t, rt.TUN(), 1500)
			connect(left, right, nil)
			connect(right, left, nil)
			pair(t, left, right, k)
			for _, tc := range []struct {
				from, to *tuntest.ChannelTUN
				src, dst string
			}{
				{lt, rt, "10.1.0.2", "10.2.0.2"},
				{rt, lt, "10.2.0.7", "10.1.0.9"},
				{lt, rt, "fd01::2", "fd02::2"},
				{rt, lt, "fd02::2", "fd01::2"},
			} {
				for _, size := range []int{0, 1, 100, 1300} {
					pkt := udpPacket(t, tc.src, tc.dst, size, true)
					tc.from.Outbound <- pkt
					if got := recv(t, tc.to.Inbound); !bytes.Equal(got, pkt) {
						t.Fatalf("%s → %s, %d bytes: got\n%x\nwant\n%x", tc.src, tc.dst, len(pkt), got, pkt)
					}
				}
			}
			st := left.Stats()
			if len(st.Children) != 1 || st.Children[0].Out.Packets != 8 || st.Children[0].In.Packets != 8 {
				t.Errorf("left counters: %+v", st.Children)
			}
			for r, n := range st.Drops {
				if n != 0 {
					t.Errorf("left dropped %d packets as %s", n, r)
				}
			}
		})
	}
}

func TestMemoryDrops(t *testing.T) {
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	left, right := newMemory(t, lt.TUN(), 1500), newMemory(t, rt.TUN(), 1500)
	var captured [][]byte
	connect(left, right, func(p []byte) { captured = append(captured, p) })
	connect(right, left, nil)
	lc, _ := pair(t, left, right, suites["aes-gcm-128"])

	// No policy covers 10.3.0.0/24.
	lt.Outbound <- udpPacket(t, "10.1.0.2", "10.3.0.1", 10, false)
	waitDrop(t, left, DropNoPolicy, 1)
	// Not an IP packet.
	lt.Outbound <- []byte{0x00, 1, 2, 3}
	waitDrop(t, left, DropMalformed, 1)

	pkt := udpPacket(t, "10.1.0.2", "10.2.0.2", 50, false)
	lt.Outbound <- pkt
	recv(t, rt.Inbound)
	if len(captured) != 1 {
		t.Fatalf("captured %d outer packets", len(captured))
	}
	in := newInbound(right)
	deliver := func(outer []byte) {
		buf := make([]byte, bufSize)
		in.esp(buf, buf[headroom:headroom+copy(buf[headroom:], outer)], netip.AddrPort{}, true)
		in.flush()
	}

	// The same packet again: replay.
	deliver(captured[0])
	waitDrop(t, right, DropReplay, 1)

	// A flipped ciphertext bit with a fresh sequence number: auth failed.
	bad := append([]byte(nil), captured[0]...)
	binary.BigEndian.PutUint32(bad[4:], 1000)
	bad[20] ^= 0x40
	deliver(bad)
	waitDrop(t, right, DropAuthFailed, 1)

	// An unknown SPI.
	other := append([]byte(nil), captured[0]...)
	binary.BigEndian.PutUint32(other[0:], 0xdead)
	deliver(other)
	waitDrop(t, right, DropUnknownSPI, 1)

	// A correctly sealed packet whose inner source is outside the SA's
	// remote selectors: the peer may not inject it (RFC 4301 §5.2).
	buf := make([]byte, bufSize)
	spoof := udpPacket(t, "10.9.9.9", "10.2.0.2", 20, false)
	copy(buf[headroom:], spoof)
	seq, _ := lc.Out.NextSeq()
	outer, err := esp.Seal(lc.Out, seq, buf, headroom, len(spoof))
	if err != nil {
		t.Fatal(err)
	}
	deliver(outer)
	waitDrop(t, right, DropPolicyMismatch, 1)
	expectNothing(t, rt.Inbound)

	if got := right.Stats().Children[0].In.Packets; got != 2 {
		// The good packet and the spoofed one verified; only the good one
		// was delivered, which the TUN checks above prove.
		t.Errorf("inbound SA counted %d packets, want 2 (verified ones)", got)
	}
}

func TestMemoryTooBig(t *testing.T) {
	for _, tc := range []struct {
		outerMTU int
		src, dst string
		tooBig   bool // answered with ICMP; else carried (outer fragmented)
	}{
		{600, "10.1.0.2", "10.2.0.2", true},
		{1400, "10.1.0.2", "10.2.0.2", true},
		{1400, "fd01::2", "fd02::2", true},
		// Below IPv6's minimum MTU no Packet Too Big may be sent: the
		// packet is carried and the outer IPv4 packet fragmented.
		{600, "fd01::2", "fd02::2", false},
	} {
		lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
		left, right := newMemory(t, lt.TUN(), tc.outerMTU), newMemory(t, rt.TUN(), tc.outerMTU)
		connect(left, right, nil)
		connect(right, left, nil)
		pair(t, left, right, suites["aes-cbc-128-sha256"])
		// Outer IPv4 20 + SPI/seq 8 + IV 16, payload+2 padded to 16, ICV 16.
		avail := tc.outerMTU - 20 - 8 - 16 - 16
		want := avail - avail%16 - 2
		hdrs := 28
		if strings.Contains(tc.src, ":") {
			hdrs = 48
		}

		fits := udpPacket(t, tc.src, tc.dst, want-hdrs, true)
		if len(fits) != want {
			t.Fatalf("test packet is %d bytes, want %d", len(fits), want)
		}
		lt.Outbound <- fits
		if got := recv(t, rt.Inbound); !bytes.Equal(got, fits) {
			t.Fatalf("%d-byte packet (exactly the tunnel MTU) not carried", len(fits))
		}

		big := udpPacket(t, tc.src, tc.dst, want-hdrs+1, true)
		lt.Outbound <- big
		if !tc.tooBig {
			if got := recv(t, rt.Inbound); !bytes.Equal(got, big) {
				t.Fatalf("outer MTU %d, %s: packet not carried", tc.outerMTU, tc.src)
			}
			continue
		}
		icmp := recv(t, lt.Inbound)
		var mtu int
		if icmp[0]>>4 == 4 {
			if icmp[9] != 1 || icmp[20] != 3 || icmp[21] != 4 {
				t.Fatalf("not a fragmentation-needed: %x", icmp[:28])
			}
			mtu = int(binary.BigEndian.Uint16(icmp[26:]))
		} else {
			if icmp[6] != 58 || icmp[40] != 2 {
				t.Fatalf("not a packet-too-big: %x", icmp[:48])
			}
			mtu = int(binary.BigEndian.Uint32(icmp[44:]))
		}
		if mtu != want {
			t.Errorf("outer MTU %d, %s: reported MTU %d, want %d", tc.outerMTU, tc.src, mtu, want)
		}
		expectNothing(t, rt.Inbound)
		// Without DF the packet is sealed anyway (the kernel fragments
		// the outer packet).
		if !strings.Contains(tc.src, ":") {
			nodf := udpPacket(t, tc.src, tc.dst, want-hdrs+1, false)
			lt.Outbound <- nodf
			if got := recv(t, rt.Inbound); !bytes.Equal(got, nodf) {
				t.Fatal("packet without DF not carried")
			}
		}
		if got := left.Stats(); got.TooBigSent != 1 || got.Drops["too_big"] != 1 {
			t.Errorf("too-big counters: sent %d, drops %d", got.TooBigSent, got.Drops["too_big"])
		}
	}
}

func TestAddChildRefuses(t *testing.T) {
	d := newMemory(t, tuntest.NewChannelTUN().TUN(), 1500)
	d.sendHook = func(*child, []byte) error { return nil }
	k := suites["aes-gcm-128"]
	good := func() Child {
		return Child{Name: "c", Local: sels(t, "10.1.0.0/24"), Remote: sels(t, "10.2.0.0/24"),
			Out: mkSA(t, k, 0x1001, false, "198.18.0.1:0", "198.18.0.2:0", 1),
			In:  mkSA(t, k, 0x2001, true, "198.18.0.1:0", "198.18.0.2:0", 2)}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Child)
		want string
	}{
		{"peer inside remote selectors", func(c *Child) { c.Remote = sels(t, "198.18.0.0/16") }, "routed back into the tunnel"},
		{"peer inside a remote range", func(c *Child) { c.Remote = sels(t, "10.2.0.0/24", "198.18.0.2") }, "routed back"},
		{"directions swapped", func(c *Child) { c.Out, c.In = c.In, c.Out }, "swapped"},
		{"no inbound SA", func(c *Child) { c.In = nil }, "needs an inbound"},
		{"no selectors", func(c *Child) { c.Local = nil }, "selectors"},
		{"encap without NAT-T socket", func(c *Child) {
			d.sendHook = nil // a real dataplane, without the NAT-T socket
			c.Out = mkSA(t, keys{proto: sa.ProtoESP, enc: sa.EncAESGCM16, encLen: 20}, 0x1001, false, "198.18.0.1:4500", "198.18.0.2:4500", 1)
			cfg := sa.Config{SPI: 0x3001, Protocol: sa.ProtoESP, Mode: sa.ModeTunnel, Enc: sa.EncAESGCM16, EncKey: key(20, 1), Encap: true,
				Local: netip.MustParseAddrPort("198.18.0.1:4500"), Remote: netip.MustParseAddrPort("198.18.0.2:4500")}
			s, err := sa.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			c.Out = s
		}, "natt_port"},
	} {
		c := good()
		tc.mod(&c)
		err := d.AddChild(c)
		d.sendHook = func(*child, []byte) error { return nil }
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if err := d.AddChild(good()); err != nil {
		t.Fatalf("good child refused: %v", err)
	}
	c := good()
	c.Name = "other"
	if err := d.AddChild(c); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second child with the same inbound SPI: err = %v", err)
	}
	if !d.RemoveChild("c") || d.RemoveChild("c") {
		t.Error("RemoveChild must report presence once")
	}
}

// nopTUN discards writes and counts them, for allocation measurements.
type nopTUN struct {
	tun.Device
	writes int
}

func (n *nopTUN) Write(bufs [][]byte, off int) (int, error) { n.writes++; return len(bufs), nil }
func (n *nopTUN) Close() error                              { return nil }
func (n *nopTUN) BatchSize() int                            { return 1 }

// TestNoAllocPerPacket: the whole path — SPD lookup, seal, SAD lookup,
// open, inbound policy check, TUN write — allocates nothing per packet.
func TestNoAllocPerPacket(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, name := range []string{"aes-gcm-128", "aes-cbc-128-sha256", "ah-sha256"} {
		t.Run(name, func(t *testing.T) {
			ltun, rtun := &nopTUN{}, &nopTUN{}
			left := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, ltun, nil)
			right := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, rtun, nil)
			connect(left, right, nil)
			connect(right, left, nil)
			pair(t, left, right, suites[name])
			o := newOutPath(left)
			pkt := udpPacket(t, "10.1.0.2", "10.2.0.2", 1000, false)
			allocs := testing.AllocsPerRun(200, func() {
				o.handle(copy(o.buf[headroom:], pkt))
			})
			if allocs != 0 {
				t.Errorf("%v allocations per packet", allocs)
			}
			if rtun.writes < 200 {
				t.Fatalf("only %d packets arrived", rtun.writes)
			}
		})
	}
}

func BenchmarkPath(b *testing.B) {
	for _, name := range []string{"aes-gcm-128", "chacha20-poly1305", "aes-cbc-128-sha256", "ah-sha256"} {
		b.Run(name, func(b *testing.B) {
			left := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, &nopTUN{}, nil)
			right := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, &nopTUN{}, nil)
			connect(left, right, nil)
			connect(right, left, nil)
			pair(b, left, right, suites[name])
			o := newOutPath(left)
			pkt := udpPacket(b, "10.1.0.2", "10.2.0.2", 1372, false)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				o.handle(copy(o.buf[headroom:], pkt))
			}
		})
	}
}

// FuzzInbound: nothing a peer sends may panic the inbound path, whether it
// arrives as ESP, ESP-in-UDP or AH, and nothing unauthenticated reaches
// the TUN device.
func FuzzInbound(f *testing.F) {
	f.Add([]byte{0, 0, 0x10, 0x01, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, uint8(0))
	f.Add([]byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 51, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
		4, 4, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 1}, uint8(2))
	h, _ := hex.DecodeString("ff")
	f.Add(h, uint8(1))
	f.Fuzz(func(t *testing.T, pkt []byte, how uint8) {
		rt := &nopTUN{}
		right := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, rt, nil)
		left := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet()}, &nopTUN{}, nil)
		nop := func(*child, []byte) error { return nil }
		left.sendHook, right.sendHook = nop, nop
		k := suites["aes-gcm-128"]
		if how%3 == 2 {
			k = suites["ah-sha256"]
		}
		pair(t, left, right, k)
		if len(pkt) > maxPkt {
			return
		}
		in := newInbound(right)
		buf := make([]byte, bufSize)
		p := buf[headroom : headroom+copy(buf[headroom:], pkt)]
		switch how % 3 {
		case 0:
			in.esp(buf, p, netip.AddrPort{}, true)
		case 1:
			if esp.ClassifyUDP(p) == esp.KindESP {
				in.esp(buf, p, netip.MustParseAddrPort("192.0.2.1:4500"), true)
			}
		case 2:
			if len(p) >= 20 && (p[0]>>4 == 4 || p[0]>>4 == 6) {
				in.ah(buf, p)
			}
		}
		in.flush()
		if rt.writes != 0 {
			t.Fatalf("a forged packet reached the TUN device: %x", pkt)
		}
	})
}

// TestMemoryAHFragmentsInner: AH's outer packet cannot be fragmented by
// the kernel, so an inner IPv4 packet without DF that does not fit is
// fragmented before sealing; the fragments that come out on the far side
// reassemble into the original.
func TestMemoryAHFragmentsInner(t *testing.T) {
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	left, right := newMemory(t, lt.TUN(), 600), newMemory(t, rt.TUN(), 600)
	connect(left, right, nil)
	connect(right, left, nil)
	pair(t, left, right, suites["ah-sha256"])
	orig := udpPacket(t, "10.1.0.2", "10.2.0.2", 1300, false)
	lt.Outbound <- orig
	payload := make([]byte, len(orig)-20)
	seen := 0
	for more := true; more; {
		f := recv(t, rt.Inbound)
		if len(f) > 600 || checksum(f[:20], 0) != 0 {
			t.Fatalf("fragment of %d bytes or with a bad header checksum", len(f))
		}
		fo := binary.BigEndian.Uint16(f[6:8])
		more = fo&0x2000 != 0
		off := int(fo&0x1fff) * 8
		seen += copy(payload[off:], f[20:])
		if !bytes.Equal(f[12:20], orig[12:20]) || f[9] != orig[9] || f[4] != orig[4] || f[5] != orig[5] {
			t.Fatalf("fragment header differs from the original: %x", f[:20])
		}
	}
	if seen != len(payload) || !bytes.Equal(payload, orig[20:]) {
		t.Fatalf("fragments reassemble to %d bytes that differ from the original %d", seen, len(payload))
	}
	if d := left.Stats().Drops; d["too_big"] != 0 || d["send_error"] != 0 {
		t.Errorf("drops: %v", d)
	}
}

// TestMemoryPeerMoves: with ESP in UDP, an authenticated packet from a new
// address:port (a NAT that changed its mapping) moves the peer; a packet
// that fails authentication does not.
func TestMemoryPeerMoves(t *testing.T) {
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	left, right := newMemory(t, lt.TUN(), 1500), newMemory(t, rt.TUN(), 1500)
	k := suites["aes-gcm-128"]
	l4, r4 := "198.18.0.1:4500", "198.18.0.2:4500"
	mk := func(spi uint32, inbound bool, local, remote string, seed byte) *sa.SA {
		c := sa.Config{SPI: spi, Protocol: sa.ProtoESP, Mode: sa.ModeTunnel, Inbound: inbound, Enc: k.enc,
			EncKey: key(k.encLen, seed), Encap: true, ReplayWindow: 64,
			Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
		s, err := sa.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	sentTo := make(chan netip.AddrPort, 4)
	left.sendHook = func(c *child, out []byte) error { return nil }
	right.sendHook = func(c *child, out []byte) error { sentTo <- c.peer.Load().udp; return nil }
	lc := Child{Name: "n", Local: sels(t, "10.1.0.0/24"), Remote: sels(t, "10.2.0.0/24"),
		Out: mk(0x1001, false, l4, r4, 1), In: mk(0x2001, true, l4, r4, 2)}
	rc := Child{Name: "n", Local: lc.Remote, Remote: lc.Local,
		Out: mk(0x2001, false, r4, l4, 2), In: mk(0x1001, true, r4, l4, 1)}
	if err := left.AddChild(lc); err != nil {
		t.Fatal(err)
	}
	if err := right.AddChild(rc); err != nil {
		t.Fatal(err)
	}
	seal := func(seq uint64) []byte {
		buf := make([]byte, bufSize)
		p := udpPacket(t, "10.1.0.2", "10.2.0.2", 10, false)
		copy(buf[headroom:], p)
		out, err := esp.Seal(lc.Out, seq, buf, headroom, len(p))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	deliver := func(pkt []byte, from string) {
		// An inbound belongs to one reader goroutine: one per call, as
		// the calls run on different goroutines.
		in := newInbound(right)
		buf := make([]byte, bufSize)
		in.esp(buf, buf[headroom:headroom+copy(buf[headroom:], pkt)], netip.MustParseAddrPort(from), true)
		in.flush()
	}
	reply := func() netip.AddrPort {
		rt.Outbound <- udpPacket(t, "10.2.0.2", "10.1.0.2", 10, false)
		select {
		case to := <-sentTo:
			return to
		case <-time.After(waitLimit):
			t.Fatal("nothing sent")
			return netip.AddrPort{}
		}
	}
	go deliver(seal(1), "198.18.0.1:4500")
	recv(t, rt.Inbound)
	if to := reply(); to != netip.MustParseAddrPort("198.18.0.1:4500") {
		t.Fatalf("reply went to %v", to)
	}
	// Forged: right SPI, bad ICV, from elsewhere: must not move the peer.
	forged := seal(2)
	forged[len(forged)-1] ^= 1
	deliver(forged, "203.0.113.9:1234")
	waitDrop(t, right, DropAuthFailed, 1)
	if to := reply(); to != netip.MustParseAddrPort("198.18.0.1:4500") {
		t.Fatalf("an unauthenticated packet moved the peer to %v", to)
	}
	// Authentic, through a NAT mapping: the peer moves.
	go deliver(seal(3), "198.18.0.77:21000")
	recv(t, rt.Inbound)
	if to := reply(); to != netip.MustParseAddrPort("198.18.0.77:21000") {
		t.Fatalf("reply after the NAT moved went to %v", to)
	}
}

// TestUDPLoopback runs the real NAT-T socket path (no root needed): two
// dataplanes on 127.0.0.1 carry ESP in UDP to each other, IKE behind the
// non-ESP marker goes to the IKE handler, keepalives are counted and
// dropped.
func TestUDPLoopback(t *testing.T) {
	type got struct {
		msg  string
		from netip.AddrPort
	}
	ike := make(chan got, 1)
	mk := func(dev tun.Device) *Dataplane {
		d := newDataplane(Config{MTU: 1400, OuterMTU: 1500, Logger: quiet(), Keepalive: 50 * time.Millisecond,
			IKE: func(pkt []byte, from netip.AddrPort) { ike <- got{string(pkt), from} }}, dev, nil)
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		d.udp = c
		d.wg.Add(3)
		go d.udpLoop()
		go d.tunLoop()
		go d.keepaliveLoop()
		t.Cleanup(func() { d.Close() })
		return d
	}
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	left, right := mk(lt.TUN()), mk(rt.TUN())
	la := left.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	ra := right.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	k := suites["aes-gcm-128"]
	mkSA := func(spi uint32, inbound bool, local, remote netip.AddrPort, seed byte) *sa.SA {
		s, err := sa.New(sa.Config{SPI: spi, Protocol: sa.ProtoESP, Mode: sa.ModeTunnel, Inbound: inbound,
			Enc: k.enc, EncKey: key(k.encLen, seed), Encap: true, ReplayWindow: 64, Local: local, Remote: remote})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	lc := Child{Name: "u", Local: sels(t, "10.1.0.0/24"), Remote: sels(t, "10.2.0.0/24"),
		Out: mkSA(0x1001, false, la, ra, 1), In: mkSA(0x2001, true, la, ra, 2)}
	rc := Child{Name: "u", Local: lc.Remote, Remote: lc.Local,
		Out: mkSA(0x2001, false, ra, la, 2), In: mkSA(0x1001, true, ra, la, 1)}
	if err := left.AddChild(lc); err != nil {
		t.Fatal(err)
	}
	if err := right.AddChild(rc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to *tuntest.ChannelTUN
		src, dst string
	}{{lt, rt, "10.1.0.2", "10.2.0.2"}, {rt, lt, "10.2.0.2", "10.1.0.2"}} {
		pkt := udpPacket(t, tc.src, tc.dst, 500, false)
		tc.from.Outbound <- pkt
		if got := recv(t, tc.to.Inbound); !bytes.Equal(got, pkt) {
			t.Fatalf("%s → %s over UDP: packet changed", tc.src, tc.dst)
		}
	}

	if err := left.SendIKE(ra, []byte("IKE_SA_INIT")); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-ike:
		if g.msg != "IKE_SA_INIT" || g.from != la {
			t.Fatalf("IKE handler got %q from %v", g.msg, g.from)
		}
	case <-time.After(waitLimit):
		t.Fatal("IKE message not handed over")
	}

	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ra))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xff})
	c.Write([]byte{0, 0, 1})
	deadline := time.Now().Add(waitLimit)
	for right.Stats().Drops["malformed"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("malformed %d", right.Stats().Drops["malformed"])
		}
		time.Sleep(5 * time.Millisecond)
	}
	expectNothing(t, rt.Inbound)
	// Idle SAs: each side sends keepalives (every 50ms here), which the
	// other counts and drops; the test's own 0xFF counts too.
	deadline = time.Now().Add(waitLimit)
	for left.Stats().Keepalives < 2 || right.Stats().Keepalives < 3 || left.Stats().KeepalivesSent < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("keepalives: left got %d sent %d, right got %d", left.Stats().Keepalives, left.Stats().KeepalivesSent, right.Stats().Keepalives)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMemoryRekey: replacing a child make-before-break keeps the old
// inbound SA accepting the peer's packets until it is retired.
func TestMemoryRekey(t *testing.T) {
	lt, rt := tuntest.NewChannelTUN(), tuntest.NewChannelTUN()
	left, right := newMemory(t, lt.TUN(), 1500), newMemory(t, rt.TUN(), 1500)
	connect(left, right, nil)
	connect(right, left, nil)
	k := suites["aes-gcm-128"]
	lc, _ := pair(t, left, right, k)

	// Right rekeys first: new inbound SPI 0x1002 (new keys), new outbound.
	l4, r4 := "198.18.0.1:0", "198.18.0.2:0"
	newRC := Child{Name: "lab", Local: lc.Remote, Remote: lc.Local,
		Out: mkSA(t, k, 0x2002, false, r4, l4, 4), In: mkSA(t, k, 0x1002, true, r4, l4, 3)}
	if err := right.AddChild(newRC); err != nil {
		t.Fatal(err)
	}
	// Left still sends with the old SA (0x1001): still accepted.
	pkt := udpPacket(t, "10.1.0.2", "10.2.0.2", 40, false)
	lt.Outbound <- pkt
	if got := recv(t, rt.Inbound); !bytes.Equal(got, pkt) {
		t.Fatal("packet on the old SA not accepted during the rekey")
	}
	// Left switches to the new SA.
	newLC := Child{Name: "lab", Local: lc.Local, Remote: lc.Remote,
		Out: mkSA(t, k, 0x1002, false, l4, r4, 3), In: mkSA(t, k, 0x2002, true, l4, r4, 4)}
	if err := left.AddChild(newLC); err != nil {
		t.Fatal(err)
	}
	lt.Outbound <- pkt
	if got := recv(t, rt.Inbound); !bytes.Equal(got, pkt) {
		t.Fatal("packet on the new SA not accepted")
	}
	if right.RetireSPI(0x1002) {
		t.Fatal("retired the current inbound SPI")
	}
	if !right.RetireSPI(0x1001) || right.RetireSPI(0x1001) {
		t.Fatal("RetireSPI of the old SPI must succeed once")
	}
	// A late packet on the old SA now has no SA.
	buf := make([]byte, bufSize)
	copy(buf[headroom:], pkt)
	seq, _ := lc.Out.NextSeq()
	outer, err := esp.Seal(lc.Out, seq, buf, headroom, len(pkt))
	if err != nil {
		t.Fatal(err)
	}
	in := newInbound(right)
	in.esp(buf, outer, netip.AddrPort{}, true)
	in.flush()
	waitDrop(t, right, DropUnknownSPI, 1)
	if st := right.Stats(); len(st.Children) != 1 || st.Children[0].SPIIn != 0x1002 {
		t.Fatalf("children after rekey: %+v", st.Children)
	}
}

// FuzzOutbound: whatever the kernel hands us from the TUN device (any
// host on the protected network can send it) must not panic the outbound
// path: parsing, SPD lookup, MSS clamping, ICMP too-big, sealing and AH
// pre-fragmentation.
func FuzzOutbound(f *testing.F) {
	f.Add(udpPacket(f, "10.1.0.2", "10.2.0.2", 10, true), true)
	f.Add(udpPacket(f, "10.1.0.2", "10.2.0.2", 900, false), true)
	f.Add(udpPacket(f, "fd01::2", "fd02::2", 900, true), false)
	f.Fuzz(func(t *testing.T, pkt []byte, useAH bool) {
		if len(pkt) > 65535 {
			return
		}
		k := suites["aes-cbc-128-sha256"]
		if useAH {
			k = suites["ah-sha256"]
		}
		left := newDataplane(Config{MTU: 1400, OuterMTU: 600, Logger: quiet()}, &nopTUN{}, nil)
		right := newDataplane(Config{MTU: 1400, OuterMTU: 600, Logger: quiet()}, &nopTUN{}, nil)
		connect(left, right, nil)
		connect(right, left, nil)
		pair(t, left, right, k)
		o := newOutPath(left)
		o.handle(copy(o.buf[headroom:], pkt))
	})
}
