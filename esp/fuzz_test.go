package esp

import (
	"bytes"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

// FuzzOpen feeds Open arbitrary packets for every algorithm, and checks
// the property that matters most: a packet sealed by us with any byte
// changed never opens. alg picks the suite; raw is opened as it is;
// inner is sealed, then byte pos is XORed with mask (when mask != 0).
func FuzzOpen(f *testing.F) {
	for i, su := range suites {
		out, _ := su.pair(f, pairOpts{})
		pkt := sealInto(f, out, 1, ipPacket(i%2 == 1, 40, 1))
		f.Add(uint8(i), false, pkt, []byte{0x45, 1, 2, 3}, uint16(3), byte(1))
		f.Add(uint8(i), true, pkt[:len(pkt)/2], ipPacket(true, 100, 2), uint16(60), byte(0x80))
		f.Add(uint8(i), false, []byte{0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1}, []byte{}, uint16(0), byte(0))
	}
	type key struct {
		alg int
		esn bool
	}
	outs := map[key]*sa.SA{} // made once, closed when the fuzz target ends
	for i, su := range suites {
		for _, esn := range []bool{false, true} {
			outs[key{i, esn}], _ = su.pair(f, pairOpts{esn: esn})
		}
	}
	f.Fuzz(func(t *testing.T, alg uint8, esn bool, raw, inner []byte, pos uint16, mask byte) {
		su := suites[int(alg)%len(suites)]
		k := key{int(alg) % len(suites), esn}
		out := outs[k]
		_, in := su.pair(t, pairOpts{esn: esn, window: 64})

		// 1. Arbitrary bytes: no panic; success only for a sub-slice.
		rawCopy := append([]byte(nil), raw...)
		if got, _, err := Open(in, rawCopy); err == nil && len(got) > len(raw) {
			t.Fatalf("inner longer than the packet")
		}

		// 2. Seal, then open: the same inner comes back.
		inner = setIPHeader(append([]byte(nil), inner...), mask&1 == 1)
		pkt := sealInto(t, out, 5, inner)
		_, in2 := su.pair(t, pairOpts{esn: esn, window: 64})
		got, _, err := Open(in2, append([]byte(nil), pkt...))
		if err != nil || !bytes.Equal(got, inner) {
			t.Fatalf("round trip: %v", err)
		}
		if mask == 0 {
			return
		}

		// 3. Any modification must be rejected.
		bad := append([]byte(nil), pkt...)
		bad[int(pos)%len(bad)] ^= mask
		_, in3 := su.pair(t, pairOpts{esn: esn, window: 64})
		if _, _, err := Open(in3, bad); err == nil {
			t.Fatalf("%s: packet with byte %d ^ %#x opened", su.name, int(pos)%len(bad), mask)
		}
	})
}

// FuzzClassifyUDP: no input may panic, and the verdict agrees with the
// RFC 3948 rules.
func FuzzClassifyUDP(f *testing.F) {
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, p []byte) {
		k := ClassifyUDP(p)
		switch k {
		case KindESP:
			if spi, ok := SPI(p); !ok || spi == 0 {
				t.Fatal("ESP without an SPI")
			}
		case KindIKE:
			if len(p) <= 4 || !bytes.Equal(p[:4], []byte{0, 0, 0, 0}) {
				t.Fatal("IKE without the marker")
			}
		case KindKeepalive:
			if len(p) != 1 || p[0] != 0xff {
				t.Fatal("keepalive that is not 0xff")
			}
		}
	})
}
