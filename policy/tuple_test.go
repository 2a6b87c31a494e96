package policy

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// ipv4 builds an IPv4 header (no options unless opts is given) followed by
// payload; fragOff is in 8-byte units.
func ipv4(proto uint8, src, dst string, fragOff uint16, opts []byte, payload []byte) []byte {
	ihl := 20 + len(opts)
	b := make([]byte, ihl+len(payload))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	copy(b[ihl:], payload)
	return b
}

// ipv6 builds an IPv6 header, then the extension headers exts (each given
// as next-header value and body, body a multiple of 8 bytes including the
// 2-byte prefix, which is filled in), then payload.
func ipv6(src, dst string, first uint8, exts [][]byte, payload []byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[6] = first
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	for _, e := range exts {
		b = append(b, e...)
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

func ports(sp, dp uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	return b
}

func ext(next uint8, lenUnits uint8) []byte {
	b := make([]byte, (int(lenUnits)+1)*8)
	b[0], b[1] = next, lenUnits
	return b
}

func fragHdr(next uint8, off uint16) []byte {
	b := make([]byte, 8)
	b[0] = next
	binary.BigEndian.PutUint16(b[2:], off<<3)
	return b
}

func TestParseTuple(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")
	a6, b6 := netip.MustParseAddr("fd01::2"), netip.MustParseAddr("fd02::2")
	tests := []struct {
		name string
		pkt  []byte
		want Tuple
		err  error
	}{
		{"v4 tcp", ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(40000, 22)),
			Tuple{Src: a4, Dst: b4, Proto: 6, SrcPort: 40000, DstPort: 22}, nil},
		{"v4 udp with options", ipv4(17, "10.1.0.2", "10.2.0.2", 0, []byte{1, 1, 1, 0}, ports(53, 5353)),
			Tuple{Src: a4, Dst: b4, Proto: 17, SrcPort: 53, DstPort: 5353}, nil},
		{"v4 icmp echo", ipv4(1, "10.1.0.2", "10.2.0.2", 0, nil, []byte{8, 0, 0, 0, 0, 0, 0, 0}),
			Tuple{Src: a4, Dst: b4, Proto: 1, SrcPort: 0x0800, DstPort: 0x0800}, nil},
		{"v4 first fragment keeps ports", ipv4(6, "10.1.0.2", "10.2.0.2", 0x2000, nil, ports(1, 2)),
			Tuple{Src: a4, Dst: b4, Proto: 6, SrcPort: 1, DstPort: 2}, nil},
		{"v4 later fragment is opaque", ipv4(6, "10.1.0.2", "10.2.0.2", 185, nil, ports(1, 2)),
			Tuple{Src: a4, Dst: b4, Proto: 6, Opaque: true}, nil},
		{"v4 truncated tcp is opaque", ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, []byte{1, 2}),
			Tuple{Src: a4, Dst: b4, Proto: 6, Opaque: true}, nil},
		{"v4 gre has no ports", ipv4(47, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2)),
			Tuple{Src: a4, Dst: b4, Proto: 47, Opaque: true}, nil},
		{"v4 short", ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, nil)[:19], Tuple{}, ErrShortPacket},
		{"v4 ihl too small", func() []byte { b := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, nil); b[0] = 0x44; return b }(), Tuple{}, ErrBadHeader},
		{"v4 ihl beyond packet", func() []byte { b := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, nil); b[0] = 0x4f; return b }(), Tuple{}, ErrBadHeader},
		{"v4 total length below ihl", func() []byte {
			b := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2))
			binary.BigEndian.PutUint16(b[2:], 10)
			return b
		}(), Tuple{}, ErrBadHeader},
		{"v4 total length cuts ports", func() []byte {
			b := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2))
			binary.BigEndian.PutUint16(b[2:], 22)
			return b
		}(), Tuple{Src: a4, Dst: b4, Proto: 6, Opaque: true}, nil},
		{"v6 udp", ipv6("fd01::2", "fd02::2", 17, nil, ports(500, 4500)),
			Tuple{Src: a6, Dst: b6, Proto: 17, SrcPort: 500, DstPort: 4500}, nil},
		{"v6 icmpv6 echo", ipv6("fd01::2", "fd02::2", 58, nil, []byte{128, 0, 0, 0}),
			Tuple{Src: a6, Dst: b6, Proto: 58, SrcPort: 128 << 8, DstPort: 128 << 8}, nil},
		{"v6 hop-by-hop, dest opts, tcp", ipv6("fd01::2", "fd02::2", 0, [][]byte{ext(60, 0), ext(6, 1)}, ports(1234, 80)),
			Tuple{Src: a6, Dst: b6, Proto: 6, SrcPort: 1234, DstPort: 80}, nil},
		{"v6 first fragment", ipv6("fd01::2", "fd02::2", 44, [][]byte{fragHdr(17, 0)}, ports(7, 9)),
			Tuple{Src: a6, Dst: b6, Proto: 17, SrcPort: 7, DstPort: 9}, nil},
		{"v6 later fragment opaque", ipv6("fd01::2", "fd02::2", 44, [][]byte{fragHdr(17, 100)}, ports(7, 9)),
			Tuple{Src: a6, Dst: b6, Proto: 17, Opaque: true}, nil},
		{"v6 no next header", ipv6("fd01::2", "fd02::2", 59, nil, nil),
			Tuple{Src: a6, Dst: b6, Proto: 59, Opaque: true}, nil},
		{"v6 ext header overruns", ipv6("fd01::2", "fd02::2", 0, [][]byte{ext(6, 0)[:4]}, nil), Tuple{}, ErrBadHeader},
		{"v6 ext header length overruns", ipv6("fd01::2", "fd02::2", 0, [][]byte{{6, 200, 0, 0, 0, 0, 0, 0}}, nil), Tuple{}, ErrBadHeader},
		{"v6 too many ext headers", ipv6("fd01::2", "fd02::2", 60, [][]byte{
			ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(60, 0), ext(6, 0)}, ports(1, 2)), Tuple{}, ErrBadHeader},
		{"v6 short", ipv6("fd01::2", "fd02::2", 6, nil, nil)[:39], Tuple{}, ErrShortPacket},
		{"empty", nil, Tuple{}, ErrShortPacket},
		{"version 5", []byte{0x50, 0, 0, 0}, Tuple{}, ErrBadVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTuple(tt.pkt)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTupleDoesNotAllocate(t *testing.T) {
	v4 := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2))
	v6 := ipv6("fd01::2", "fd02::2", 0, [][]byte{ext(6, 0)}, ports(1, 2))
	if n := testing.AllocsPerRun(100, func() { ParseTuple(v4); ParseTuple(v6) }); n != 0 {
		t.Fatalf("ParseTuple allocates %v times per run", n)
	}
}

func FuzzParseTuple(f *testing.F) {
	f.Add(ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2)))
	f.Add(ipv4(1, "10.1.0.2", "10.2.0.2", 0, []byte{1, 1, 1, 0}, []byte{8, 0}))
	f.Add(ipv6("fd01::2", "fd02::2", 0, [][]byte{ext(44, 0), fragHdr(17, 0)}, ports(1, 2)))
	f.Add(ipv6("fd01::2", "fd02::2", 44, [][]byte{fragHdr(6, 3)}, nil))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		tup, err := ParseTuple(pkt)
		if err != nil {
			return
		}
		// Whatever parsed must be consistent with the bytes it came from.
		switch pkt[0] >> 4 {
		case 4:
			if !tup.Src.Is4() || tup.Src.As4() != [4]byte(pkt[12:16]) || tup.Proto != pkt[9] {
				t.Fatalf("v4 tuple %v does not match header", tup)
			}
		case 6:
			if !tup.Src.Is6() || tup.Dst.As16() != [16]byte(pkt[24:40]) {
				t.Fatalf("v6 tuple %v does not match header", tup)
			}
		default:
			t.Fatalf("parsed a version %d packet", pkt[0]>>4)
		}
		if tup.Opaque && (tup.SrcPort != 0 || tup.DstPort != 0) {
			t.Fatalf("opaque tuple with ports: %v", tup)
		}
	})
}

func BenchmarkParseTuple(b *testing.B) {
	v4 := ipv4(6, "10.1.0.2", "10.2.0.2", 0, nil, ports(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		ParseTuple(v4)
	}
}
