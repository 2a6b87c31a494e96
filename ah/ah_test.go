package ah

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

var allIntegs = []sa.IntegAlg{sa.IntegHMACSHA1_96, sa.IntegHMACSHA256128, sa.IntegHMACSHA384192, sa.IntegHMACSHA512256}

var outerAddrs = map[int][2]string{
	4: {"192.0.2.1", "198.51.100.2"},
	6: {"2001:db8:1::1", "2001:db8:2::2"},
}

// testKey is a fixed key of the algorithm's size, distinct per algorithm.
func testKey(alg sa.IntegAlg) []byte {
	k := make([]byte, alg.KeySize())
	for i := range k {
		k[i] = byte(i*7 + int(alg))
	}
	return k
}

// innerPacket builds an IPv4 or IPv6 packet (protocol 17, unchecked
// payload) of total length n with recognisable DSCP/ECN, DF and payload.
func innerPacket(version, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)
	}
	if version == 4 {
		p[0], p[1] = 0x45, 0xb9 // EF + ECT(1)
		binary.BigEndian.PutUint16(p[2:], uint16(n))
		p[6], p[7] = 0x40, 0 // DF
		p[8], p[9] = 61, 17
		copy(p[12:], []byte{10, 1, 0, 1, 10, 2, 0, 7})
		return p
	}
	p[0], p[1], p[2], p[3] = 0x6b, 0x81, 0x23, 0x45 // TC 0xb8, flow label 0x12345
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	p[6], p[7] = 17, 61
	return p
}

// pair is an outbound and an inbound SA with the same keys.
type pair struct{ out, in *sa.SA }

func newPair(t testing.TB, alg sa.IntegAlg, outer int, esn bool, window uint32) pair {
	a := outerAddrs[outer]
	p := saParams{integ: alg, key: testKey(alg), spi: 0x1234, esn: esn, window: window, local: a[0], remote: a[1]}
	out := newSA(t, p)
	p.inbound, p.local, p.remote = true, a[1], a[0]
	return pair{out, newSA(t, p)}
}

// sealCopy seals a copy of inner with seq and returns the outer packet.
func sealCopy(t testing.TB, s *sa.SA, seq uint64, inner []byte) []byte {
	t.Helper()
	head := Overhead(s)
	buf := make([]byte, head+len(inner))
	copy(buf[head:], inner)
	pkt, err := Seal(s, seq, buf, head, len(inner))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return pkt
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, alg := range allIntegs {
		for _, outer := range []int{4, 6} {
			for _, innerV := range []int{4, 6} {
				for _, esn := range []bool{false, true} {
					name := fmt.Sprintf("%v/v%din%d/esn=%v", alg, innerV, outer, esn)
					t.Run(name, func(t *testing.T) {
						p := newPair(t, alg, outer, esn, 128)
						for _, n := range []int{40, 41, 1420, 9000} {
							seq, err := p.out.NextSeq()
							if err != nil {
								t.Fatal(err)
							}
							in := innerPacket(innerV, n)
							pkt := sealCopy(t, p.out, seq, in)
							if want := Overhead(p.out) + n; len(pkt) != want {
								t.Fatalf("sealed %d bytes, want %d", len(pkt), want)
							}
							if hl := headerLenFromField(pkt[ipHeaderLen(outer)+1]); hl%4 != 0 || (outer == 6 && hl%8 != 0) {
								t.Fatalf("AH length %d not aligned for IPv%d", hl, outer)
							}
							got, nh, err := Open(p.in, pkt)
							if err != nil {
								t.Fatalf("Open(%d bytes): %v", n, err)
							}
							if !bytes.Equal(got, in) || nh != map[int]uint8{4: 4, 6: 41}[innerV] {
								t.Fatalf("Open returned nh %d, %x", nh, got)
							}
						}
					})
				}
			}
		}
	}
}

// TestOuterHeader checks the fields Seal builds rather than copies.
func TestOuterHeader(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA256128, 4, false, 0)
	pkt := sealCopy(t, p.out, 0x10203, innerPacket(4, 100))
	if pkt[1] != 0xb9 || pkt[6] != 0x40 || pkt[8] != defaultTTL || pkt[9] != protoAH ||
		binary.BigEndian.Uint16(pkt[4:]) != 0x0203 || ipv4Checksum(pkt[:20]) != 0 {
		t.Errorf("IPv4 outer header %x", pkt[:20])
	}
	pkt = sealCopy(t, p.out, 7, innerPacket(6, 100))
	if pkt[1] != 0xb8 || pkt[6] != 0 || pkt[8] != defaultTTL {
		t.Errorf("IPv4 outer header for IPv6 inner %x", pkt[:20])
	}
	p = newPair(t, sa.IntegHMACSHA256128, 6, false, 0)
	pkt = sealCopy(t, p.out, 7, innerPacket(6, 100))
	if !bytes.Equal(pkt[:4], []byte{0x6b, 0x80, 0, 0}) || pkt[6] != protoAH || pkt[7] != defaultTTL ||
		int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
		t.Errorf("IPv6 outer header %x", pkt[:40])
	}
	if got := pkt[40+1]; got != payloadLenField(32) { // 12 + 16 ICV + 4 padding
		t.Errorf("AH payload length %d", got)
	}
}

// mutableBit reports whether flipping bit b of byte i of a sealed packet
// (no options, no extension headers) touches a field outside the ICV.
// IPv4 MF and fragment offset are outside the ICV too, but make the
// packet a fragment, which Open refuses; they are not listed.
func mutableBit(version, i int, b uint) bool {
	if version == 4 {
		switch i {
		case 1, 8, 10, 11: // DSCP+ECN, TTL, checksum
			return true
		case 6: // reserved and DF
			return b == 7 || b == 6
		}
		return false
	}
	switch i {
	case 0:
		return b < 4 // traffic class, high half
	case 1, 2, 3: // traffic class low half, flow label
		return true
	case 7: // hop limit
		return true
	}
	return false
}

// TestBitFlips flips every bit of sealed packets: a flip in a field the
// ICV covers (or one that changes the packet's structure) must fail, a
// flip in a mutable field must still verify.
func TestBitFlips(t *testing.T) {
	for _, alg := range []sa.IntegAlg{sa.IntegHMACSHA1_96, sa.IntegHMACSHA256128} {
		for _, outer := range []int{4, 6} {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/v%d/esn=%v", alg, outer, esn), func(t *testing.T) {
					// Window 0: no replay state, so every variant is judged
					// on its ICV alone.
					p := newPair(t, alg, outer, esn, 0)
					orig := sealCopy(t, p.out, 5, innerPacket(4, 48))
					for i := range orig {
						for b := uint(0); b < 8; b++ {
							pkt := bytes.Clone(orig)
							pkt[i] ^= 1 << b
							_, _, err := Open(p.in, pkt)
							if mutableBit(outer, i, b) {
								if err != nil {
									t.Errorf("byte %d bit %d (mutable): %v", i, b, err)
								}
							} else if err == nil {
								t.Errorf("byte %d bit %d (immutable) still verifies", i, b)
							}
						}
					}
				})
			}
		}
	}
}

// TestMutableFieldsStillVerify rewrites the fields routers change.
func TestMutableFieldsStillVerify(t *testing.T) {
	cases := []struct {
		outer  int
		name   string
		mutate func([]byte)
	}{
		{4, "TTL", func(p []byte) { p[8] = 1 }},
		{4, "DSCP/ECN", func(p []byte) { p[1] = 0x03 }},
		{4, "DF cleared", func(p []byte) { p[6] &^= 0x40 }},
		{4, "checksum recomputed after TTL", func(p []byte) {
			p[8]--
			p[10], p[11] = 0, 0
			binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
		}},
		{6, "hop limit", func(p []byte) { p[7] = 1 }},
		{6, "traffic class", func(p []byte) { p[0], p[1] = 0x60, 0x30|p[1]&0x0f }},
		{6, "flow label", func(p []byte) { p[1], p[2], p[3] = p[1]&0xf0|0x0f, 0xff, 0xff }},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("v%d/%s", c.outer, c.name), func(t *testing.T) {
			p := newPair(t, sa.IntegHMACSHA512256, c.outer, true, 64)
			in := innerPacket(6, 200)
			pkt := sealCopy(t, p.out, 9, in)
			c.mutate(pkt)
			got, _, err := Open(p.in, pkt)
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("Open after changing %s: %v", c.name, err)
			}
		})
	}
}

// TestOptionMutability uses scapy's packets with outer IPv4 options and
// IPv6 extension headers: bytes of mutable options may change, bytes of
// immutable ones may not.
func TestOptionMutability(t *testing.T) {
	cases := []struct {
		suffix             string
		mutable, immutable []int // byte offsets in the outer packet
	}{
		// Router Alert (immutable) at 20-23.
		{"ipv4-opt-router-alert", nil, []int{20, 21, 22, 23}},
		// Record Route (mutable, zeroed whole) at 20-26, then EOL padding;
		// its length byte (21) must stay parseable.
		{"ipv4-opt-record-route", []int{20, 22, 23, 26}, []int{27}},
		// Hop-by-hop at 40: option 0x3e (change en route) data at 44-47,
		// option 0x1e (fixed) at 48-51.
		{"ipv6-hbh-mutable", []int{44, 45, 46, 47}, []int{40, 41, 42, 43, 48, 49, 50, 51}},
		// Destination options at 40: option 0x1e data at 44-47.
		{"ipv6-dst-immutable", nil, []int{42, 43, 44, 47}},
	}
	vecs := loadScapyVectors(t)
	for _, c := range cases {
		found := 0
		for _, v := range vecs {
			if !bytes.Contains([]byte(v.Name), []byte(c.suffix)) {
				continue
			}
			found++
			t.Run(v.Name, func(t *testing.T) {
				for _, off := range c.mutable {
					pkt := bytes.Clone(v.pkt)
					pkt[off] ^= 0x5a
					if _, _, err := Open(v.receiver(t), pkt); err != nil {
						t.Errorf("byte %d (mutable option): %v", off, err)
					}
				}
				for _, off := range c.immutable {
					pkt := bytes.Clone(v.pkt)
					pkt[off] ^= 0x01
					if _, _, err := Open(v.receiver(t), pkt); err == nil {
						t.Errorf("byte %d (immutable option) changed and still verifies", off)
					}
				}
			})
		}
		if found == 0 {
			t.Errorf("no vector %s", c.suffix)
		}
	}
}

func TestSealErrors(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA256128, 4, false, 0)
	head := Overhead(p.out)
	in := innerPacket(4, 60)
	buf := make([]byte, head+len(in))
	copy(buf[head:], in)
	cases := []struct {
		name     string
		s        *sa.SA
		seq      uint64
		buf      []byte
		off, n   int
		want     error
		wantText string
	}{
		{"no headroom", p.out, 1, buf, head - 1, len(in), sa.ErrNoRoom, ""},
		{"past the end", p.out, 1, buf, head, len(in) + 1, sa.ErrNoRoom, ""},
		{"negative length", p.out, 1, buf, head, -1, sa.ErrNoRoom, ""},
		{"not IP", p.out, 1, append(make([]byte, head), 0x15, 0, 0, 0), head, 4, sa.ErrMalformed, ""},
		{"short IPv4", p.out, 1, append(make([]byte, head), in[:19]...), head, 19, sa.ErrMalformed, ""},
		{"64-bit seq without ESN", p.out, 1 << 32, buf, head, len(in), sa.ErrSeqExhausted, ""},
		{"seq 0", p.out, 0, buf, head, len(in), sa.ErrSeqExhausted, ""},
		{"too big", p.out, 1, append(make([]byte, head), innerPacket(4, 65535-head+1)...), head, 65535 - head + 1, sa.ErrMalformed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Seal(c.s, c.seq, c.buf, c.off, c.n); err != c.want {
				t.Fatalf("Seal: %v, want %v", err, c.want)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		p := newPair(t, sa.IntegHMACSHA256128, 4, false, 0)
		p.out.Expire()
		if _, err := Seal(p.out, 1, bytes.Clone(buf), head, len(in)); err != sa.ErrExpired {
			t.Fatalf("Seal: %v, want %v", err, sa.ErrExpired)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA256128, 4, false, 64)
	good := sealCopy(t, p.out, 3, innerPacket(4, 60))
	p6 := newPair(t, sa.IntegHMACSHA256128, 6, false, 64)
	good6 := sealCopy(t, p6.out, 3, innerPacket(4, 60))
	other := newSA(t, saParams{integ: sa.IntegHMACSHA256128, key: testKey(sa.IntegHMACSHA256128),
		spi: 0x9999, local: outerAddrs[4][1], remote: outerAddrs[4][0], inbound: true})
	withRouting := func(segLeft byte) []byte {
		// Insert an 8-byte routing header between IPv6 and AH.
		pkt := make([]byte, 0, len(good6)+8)
		pkt = append(pkt, good6[:40]...)
		pkt = append(pkt, protoAH, 0, 4, segLeft, 0, 0, 0, 0)
		pkt = append(pkt, good6[40:]...)
		pkt[6] = protoRouting
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
		return pkt
	}
	cases := []struct {
		name string
		s    *sa.SA
		pkt  []byte
		want error
	}{
		{"empty", p.in, nil, sa.ErrMalformed},
		{"truncated", p.in, good[:len(good)-1], sa.ErrMalformed},
		{"header only", p.in, good[:20], sa.ErrMalformed},
		{"fragment", p.in, mod(good, func(b []byte) { b[6] |= 0x20 }), sa.ErrMalformed},
		{"not AH", p.in, mod(good, func(b []byte) { b[9] = protoESP }), sa.ErrMalformed},
		{"AH length", p.in, mod(good, func(b []byte) { b[21]++ }), sa.ErrMalformed},
		{"IHL too small", p.in, mod(good, func(b []byte) { b[0] = 0x44 }), sa.ErrMalformed},
		{"IPv6 jumbo", p6.in, mod(good6, func(b []byte) { b[4], b[5] = 0, 0 }), sa.ErrMalformed},
		{"IPv6 fragment header", p6.in, mod(good6, func(b []byte) { b[6] = protoFragment }), sa.ErrMalformed},
		{"IPv6 routing, segments left", p6.in, withRouting(1), sa.ErrMalformed},
		{"IPv6 routing, at the end but not in the ICV", p6.in, withRouting(0), sa.ErrAuthFailed},
		{"other SPI", other, good, sa.ErrUnknownSPI},
		{"bad ICV", p.in, mod(good, func(b []byte) { b[len(b)-1]++ }), sa.ErrAuthFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := Open(c.s, c.pkt); err != c.want {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
		})
	}
	t.Run("trailing link padding ignored", func(t *testing.T) {
		if _, _, err := Open(p.in, append(bytes.Clone(good), 0, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("replayed", func(t *testing.T) {
		if _, _, err := Open(p.in, good); err != sa.ErrReplayed {
			t.Fatalf("Open: %v, want %v", err, sa.ErrReplayed)
		}
	})
	t.Run("authentic but not IP inside", func(t *testing.T) {
		q := newPair(t, sa.IntegHMACSHA256128, 4, false, 64)
		pkt := sealCopy(t, q.out, 1, innerPacket(4, 60))
		// Reseal by hand with next header 59 (no next header).
		pkt[20] = 59
		resign(t, q.out, pkt, 4)
		if _, _, err := Open(q.in, pkt); err != sa.ErrMalformed {
			t.Fatalf("Open: %v, want %v", err, sa.ErrMalformed)
		}
		if _, _, err := Open(q.in, pkt); err != sa.ErrReplayed {
			t.Fatalf("authentic packet not committed to the window: %v", err)
		}
	})
	t.Run("transport-mode SA", func(t *testing.T) {
		tr, err := sa.New(sa.Config{SPI: 0x1234, Protocol: sa.ProtoAH, Mode: sa.ModeTransport, Inbound: true,
			Integ: sa.IntegHMACSHA256128, IntegKey: testKey(sa.IntegHMACSHA256128)})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if _, _, err := Open(tr, good); err != sa.ErrMalformed {
			t.Fatalf("Open: %v, want %v", err, sa.ErrMalformed)
		}
		if _, err := Seal(tr, 1, make([]byte, 200), 100, 60); err != sa.ErrMalformed {
			t.Fatalf("Seal: %v, want %v", err, sa.ErrMalformed)
		}
	})
	t.Run("wrong protocol SA", func(t *testing.T) {
		esp, err := sa.New(sa.Config{SPI: 0x1234, Protocol: sa.ProtoESP, Mode: sa.ModeTunnel, Inbound: true,
			Enc: sa.EncAESGCM16, EncKey: make([]byte, 20)})
		if err != nil {
			t.Fatal(err)
		}
		defer esp.Close()
		if _, _, err := Open(esp, good); err == nil {
			t.Fatal("Open with an ESP SA succeeded")
		}
		if _, err := Seal(esp, 1, make([]byte, 200), 100, 60); err == nil {
			t.Fatal("Seal with an ESP SA succeeded")
		}
	})
}

func mod(b []byte, f func([]byte)) []byte {
	c := bytes.Clone(b)
	f(c)
	return c
}

// resign recomputes the ICV of a packet Seal made (no options), after a
// test changed an authenticated field.
func resign(t *testing.T, s *sa.SA, pkt []byte, outer int) {
	t.Helper()
	ahOff := ipHeaderLen(outer)
	icv := pkt[ahOff+offICV : ahOff+offICV+s.Integ().ICVSize()]
	z := bytes.Clone(pkt)
	if outer == 4 {
		zeroIPv4Mutable(z[:20])
	} else {
		zeroIPv6Mutable(z[:40])
	}
	clear(z[ahOff+offICV : ahOff+offICV+len(icv)])
	c := s.Crypto()
	defer c.Release()
	c.MACStart()
	c.MACWrite(z)
	copy(icv, c.MACSum())
}

// TestRebuildIPv6Header: what a raw IPv6 socket delivers (AH onwards)
// opens once the addresses are put back in front of it.
func TestRebuildIPv6Header(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA384192, 6, false, 64)
	in := innerPacket(4, 300)
	pkt := sealCopy(t, p.out, 1, in)
	pkt[7] = 3 // hop limit as it arrives
	src, dst := netip.MustParseAddr(outerAddrs[6][0]), netip.MustParseAddr(outerAddrs[6][1])
	buf := bytes.Clone(pkt) // AH at 40, as if the socket left 40 bytes of headroom
	clear(buf[:40])
	full, err := RebuildIPv6Header(buf, 40, len(buf)-40, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := Open(p.in, full); err != nil || !bytes.Equal(got, in) {
		t.Fatalf("Open after rebuild: %v", err)
	}
	// Swapped addresses are another packet.
	pkt2 := sealCopy(t, p.out, 2, in)
	clear(pkt2[:40])
	full, _ = RebuildIPv6Header(pkt2, 40, len(pkt2)-40, dst, src)
	if _, _, err := Open(p.in, full); err != sa.ErrAuthFailed {
		t.Fatalf("Open with swapped addresses: %v, want %v", err, sa.ErrAuthFailed)
	}
	if _, err := RebuildIPv6Header(buf, 39, 10, src, dst); err != sa.ErrNoRoom {
		t.Errorf("no headroom: %v", err)
	}
	if _, err := RebuildIPv6Header(buf, 40, 10, netip.MustParseAddr("192.0.2.1"), dst); err != sa.ErrMalformed {
		t.Errorf("IPv4 source: %v", err)
	}
}

// TestConcurrent seals and opens on shared SAs from several goroutines,
// as the dataplane's workers do (run with -race).
func TestConcurrent(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA256128, 4, true, 4096)
	const workers, each = 4, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			in := innerPacket(6, 100+w)
			head := Overhead(p.out)
			buf := make([]byte, head+len(in))
			for range each {
				copy(buf[head:], in)
				seq, err := p.out.NextSeq()
				if err != nil {
					errs <- err
					return
				}
				pkt, err := Seal(p.out, seq, buf, head, len(in))
				if err != nil {
					errs <- err
					return
				}
				if got, _, err := Open(p.in, pkt); err != nil || !bytes.Equal(got, in) {
					errs <- fmt.Errorf("seq %d: %v", seq, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := p.in.Stats(); st.PacketsIn != workers*each {
		t.Fatalf("%d packets in, want %d", st.PacketsIn, workers*each)
	}
}

// TestCounters: like esp, ah counts packets and drops on the SA.
func TestCounters(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA1_96, 6, false, 64)
	in := innerPacket(4, 100)
	pkt := sealCopy(t, p.out, 1, in)
	if _, err := Seal(p.out, 2, make([]byte, 10), 0, 10); err != sa.ErrNoRoom {
		t.Fatalf("Seal: %v", err)
	}
	if _, _, err := Open(p.in, pkt); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(p.in, pkt); err != sa.ErrReplayed {
		t.Fatalf("replay: %v", err)
	}
	out, got := p.out.Stats(), p.in.Stats()
	if out.PacketsOut != 1 || out.BytesOut != 100 || out.Drops[sa.ReasonNoRoom] != 1 {
		t.Errorf("outbound stats %+v", out)
	}
	if got.PacketsIn != 1 || got.BytesIn != 100 || got.Drops[sa.ReasonReplayed] != 1 {
		t.Errorf("inbound stats %+v", got)
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, outer := range []int{4, 6} {
		p := newPair(t, sa.IntegHMACSHA256128, outer, true, 0)
		in := innerPacket(4, 1420)
		head := Overhead(p.out)
		buf := make([]byte, head+len(in))
		var pkt []byte
		seq := uint64(0)
		sealAllocs := testing.AllocsPerRun(200, func() {
			copy(buf[head:], in)
			seq++
			var err error
			if pkt, err = Seal(p.out, seq, buf, head, len(in)); err != nil {
				t.Fatal(err)
			}
		})
		openAllocs := testing.AllocsPerRun(200, func() {
			if _, _, err := Open(p.in, pkt); err != nil {
				t.Fatal(err)
			}
		})
		if sealAllocs != 0 || openAllocs != 0 {
			t.Errorf("IPv%d: %v allocs per Seal, %v per Open; want 0", outer, sealAllocs, openAllocs)
		}
	}
}

// zeroIPv4Mutable clears DSCP/ECN, flags, fragment offset, TTL and
// checksum of a 20-byte IPv4 header, as RFC 4302 §3.3.3.1.1.1 lists them.
func zeroIPv4Mutable(b []byte) {
	b[1] = 0
	b[6], b[7] = 0, 0
	b[8] = 0
	b[10], b[11] = 0, 0
}

// zeroIPv6Mutable clears traffic class, flow label and hop limit.
func zeroIPv6Mutable(b []byte) {
	b[0] &= 0xf0
	b[1], b[2], b[3] = 0, 0, 0
	b[7] = 0
}
