package ah

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

// normalize returns pkt cut to its IP length with the fields outside the
// ICV zeroed, so that two packets with equal normal forms are the same
// packet as far as AH is concerned.
func normalize(pkt []byte) []byte {
	p := bytes.Clone(pkt)
	if len(p) >= ipv4HeaderLen && p[0]>>4 == 4 {
		if n := int(binary.BigEndian.Uint16(p[2:])); n <= len(p) {
			p = p[:n]
		}
		p[1], p[8], p[10], p[11] = 0, 0, 0, 0
		p[6] &^= 0xc0 // reserved and DF; MF and the offset would make a fragment
	} else if len(p) >= ipv6HeaderLen && p[0]>>4 == 6 {
		if n := ipv6HeaderLen + int(binary.BigEndian.Uint16(p[4:])); n <= len(p) {
			p = p[:n]
		}
		zeroIPv6Mutable(p)
	}
	return p
}

// FuzzOpen feeds Open arbitrary packets, seeded with packets sealed for
// the SA. Open must never panic, and a packet may only open if it is one
// of the sealed packets with nothing but mutable fields (or bytes past
// the IP length) changed: anything else would be a forgery.
func FuzzOpen(f *testing.F) {
	key := testKey(sa.IntegHMACSHA256128)
	mk := func(local, remote string, inbound bool) *sa.SA {
		return newSA(f, saParams{integ: sa.IntegHMACSHA256128, key: key, spi: 0x4242,
			window: 0, local: local, remote: remote, inbound: inbound})
	}
	out4, out6 := mk(outerAddrs[4][0], outerAddrs[4][1], false), mk(outerAddrs[6][0], outerAddrs[6][1], false)
	in := mk(outerAddrs[4][1], outerAddrs[4][0], true) // Open does not look at addresses
	var sealed [][]byte
	for i, s := range []*sa.SA{out4, out6} {
		for j, v := range []int{4, 6} {
			pkt := sealCopy(f, s, uint64(1+i*2+j), innerPacket(v, 40+j*30))
			sealed = append(sealed, normalize(pkt))
			f.Add(pkt)
		}
	}
	// Scapy's packets with options and extension headers exercise the
	// header walkers (their SPIs differ, so they end in ErrUnknownSPI).
	for _, v := range loadScapyVectors(f) {
		if !v.SealReproducible {
			f.Add(v.pkt)
		}
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := bytes.Clone(pkt)
		inner, nh, err := Open(in, pkt)
		if !bytes.Equal(orig, pkt) {
			t.Fatal("Open modified its input")
		}
		if err != nil {
			if inner != nil {
				t.Fatal("inner packet returned with an error")
			}
			return
		}
		if nh != protoIPv4 && nh != protoIPv6 {
			t.Fatalf("opened with next header %d", nh)
		}
		norm := normalize(pkt)
		for _, s := range sealed {
			if bytes.Equal(norm, s) {
				return
			}
		}
		t.Fatalf("forged packet opened: %x", pkt)
	})
}
