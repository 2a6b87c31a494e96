package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// build serializes layers with lengths and checksums computed by gopacket,
// an implementation independent of the code under test.
func build(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func tcpSYN(t *testing.T, v6 bool, mss uint16, payload int) []byte {
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 22, SYN: true, Seq: 7, Window: 64240,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, mss)},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		}}
	body := gopacket.Payload(bytes.Repeat([]byte{0xab}, payload))
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fd01::2"), DstIP: net.ParseIP("fd02::2")}
		tcp.SetNetworkLayerForChecksum(ip)
		return build(t, ip, tcp, body)
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IP{10, 1, 0, 2}, DstIP: net.IP{10, 2, 0, 2}}
	tcp.SetNetworkLayerForChecksum(ip)
	return build(t, ip, tcp, body)
}

// checksumsOK decodes pkt with gopacket and re-serializes it with fresh
// checksums: the bytes must not change.
func checksumsOK(t *testing.T, pkt []byte) bool {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if p.ErrorLayer() != nil {
		t.Fatalf("gopacket cannot decode: %v", p.ErrorLayer().Error())
	}
	var ls []gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch x := l.(type) {
		case *layers.IPv4:
			netLayer = x
		case *layers.IPv6:
			netLayer = x
		case *layers.TCP:
			x.SetNetworkLayerForChecksum(netLayer)
		case *layers.ICMPv6:
			x.SetNetworkLayerForChecksum(netLayer)
		}
		if s, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, s)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(buf.Bytes(), pkt)
}

func TestClampMSS(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, tc := range []struct {
			in, limit, want uint16
			changed         bool
		}{
			{1460, 1300, 1300, true},
			{1200, 1300, 1200, false},
			{1300, 1300, 1300, false},
			{65535, 1, 1, true},
		} {
			pkt := tcpSYN(t, v6, tc.in, 0)
			if !checksumsOK(t, pkt) {
				t.Fatal("test packet built with a bad checksum")
			}
			if got := clampMSS(pkt, tc.limit); got != tc.changed {
				t.Errorf("v6=%v %d→%d: changed=%v, want %v", v6, tc.in, tc.limit, got, tc.changed)
			}
			off := 20
			if v6 {
				off = 40
			}
			if got := binary.BigEndian.Uint16(pkt[off+20+3:]); got != tc.want {
				t.Errorf("v6=%v %d→%d: MSS now %d, want %d", v6, tc.in, tc.limit, got, tc.want)
			}
			if !checksumsOK(t, pkt) {
				t.Errorf("v6=%v %d→%d: TCP checksum wrong after clamping", v6, tc.in, tc.limit)
			}
		}
	}
	// Not a SYN: untouched.
	pkt := tcpSYN(t, false, 1460, 0)
	pkt[20+13] = 0x10 // ACK only
	if clampMSS(pkt, 1000) {
		t.Error("clamped a non-SYN segment")
	}
}

func FuzzClampMSS(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2,
		0x9c, 0x40, 0, 22, 0, 0, 0, 7, 0, 0, 0, 0, 0x60, 2, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4}, uint16(1300))
	f.Fuzz(func(t *testing.T, pkt []byte, mss uint16) {
		if len(pkt) == 0 {
			return
		}
		before := append([]byte(nil), pkt...)
		if !clampMSS(pkt, mss) && !bytes.Equal(before, pkt) {
			t.Fatal("modified the packet but reported no change")
		}
	})
}

func TestTooBig(t *testing.T) {
	out := make([]byte, 1500)
	t.Run("ipv4", func(t *testing.T) {
		pkt := tcpSYN(t, false, 1460, 1400)
		n := tooBig(out, pkt, 1342)
		p := gopacket.NewPacket(out[:n], layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ip == nil || icmp == nil {
			t.Fatalf("not IPv4/ICMP: %v", p)
		}
		if !ip.SrcIP.Equal(net.IP{10, 2, 0, 2}) || !ip.DstIP.Equal(net.IP{10, 1, 0, 2}) {
			t.Errorf("addresses %v > %v", ip.SrcIP, ip.DstIP)
		}
		if icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || icmp.Seq != 1342 {
			t.Errorf("type/code %v, mtu %d", icmp.TypeCode, icmp.Seq)
		}
		if n != 576 || !bytes.Equal(out[28:n], pkt[:548]) {
			t.Errorf("length %d or quoted packet wrong", n)
		}
		if checksum(out[:20], 0) != 0 || checksum(out[20:n], 0) != 0 {
			t.Error("bad IP or ICMP checksum")
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		pkt := tcpSYN(t, true, 1460, 1400)
		n := tooBig(out, pkt, 1300)
		if n != 1280 {
			t.Errorf("length %d, want 1280", n)
		}
		if !checksumsOK(t, out[:n]) {
			t.Error("ICMPv6 checksum wrong")
		}
		p := gopacket.NewPacket(out[:n], layers.LayerTypeIPv6, gopacket.Default)
		icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if icmp == nil || icmp.TypeCode.Type() != 2 || binary.BigEndian.Uint32(out[44:]) != 1300 {
			t.Fatalf("not a packet too big for 1300: %v", p)
		}
	})
}

func TestWantsTooBig(t *testing.T) {
	df := tcpSYN(t, false, 1460, 10)
	noDF := append([]byte(nil), df...)
	noDF[6] &^= 0x40
	v6 := tcpSYN(t, true, 1460, 10)
	icmpErr := make([]byte, 600)
	tooBig(icmpErr, df, 1000)
	icmpErr[6] |= 0x40
	for _, tc := range []struct {
		name string
		pkt  []byte
		mtu  int
		want bool
	}{
		{"v4 DF", df, 1300, true},
		{"v4 no DF", noDF, 1300, false},
		{"v6", v6, 1300, true},
		{"v6 below minimum MTU", v6, 1200, false},
		{"ICMP error with DF", icmpErr[:576], 1300, false},
	} {
		if got := wantsTooBig(tc.pkt, tc.mtu); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
