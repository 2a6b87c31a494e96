package sa

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"
)

// TestMACMatchesCryptoHMAC cross-checks the precomputed-pad HMAC with
// crypto/hmac over several lengths and split writes. (The RFC 4868 known
// answers are in esp, through the packet path.)
func TestMACMatchesCryptoHMAC(t *testing.T) {
	algs := []struct {
		alg IntegAlg
		h   func() hash.Hash
	}{
		{IntegHMACSHA1_96, sha1.New},
		{IntegHMACSHA256128, sha256.New},
		{IntegHMACSHA384192, sha512.New384},
		{IntegHMACSHA512256, sha512.New},
	}
	for _, a := range algs {
		k := bytes.Repeat([]byte{0x0b}, a.alg.KeySize())
		k[0] = 0x42
		s, err := New(Config{SPI: 0x3000, Protocol: ProtoAH, Integ: a.alg, IntegKey: k})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 55, 64, 200, 1500} {
			msg := bytes.Repeat([]byte{0xa5, 0x17, 3}, n)[:n]
			ref := hmac.New(a.h, k)
			ref.Write(msg)
			ref.Write([]byte{0, 0, 0, 9})
			want := ref.Sum(nil)[:a.alg.ICVSize()]
			for range 2 { // the second round reuses the pooled context
				c := s.Crypto()
				c.MACStart()
				c.MACWrite(msg[:n/2])
				c.MACWrite(msg[n/2:])
				c.MACWriteUint32(9)
				if got := c.MACSum(); !bytes.Equal(got, want) {
					t.Fatalf("%v len %d: %x, want %x", a.alg, n, got, want)
				}
				c.MACStart()
				c.MACWrite(msg)
				c.MACWriteUint32(9)
				if !c.MACVerify(want) {
					t.Fatalf("%v len %d: MACVerify rejected the right ICV", a.alg, n)
				}
				c.MACStart()
				c.MACWrite(msg)
				c.MACWriteUint32(8)
				if c.MACVerify(want) {
					t.Fatalf("%v len %d: MACVerify accepted a wrong ICV", a.alg, n)
				}
				c.Release()
			}
		}
		c := s.Crypto()
		msg := make([]byte, 1400)
		if n := testing.AllocsPerRun(100, func() {
			c.MACStart()
			c.MACWrite(msg)
			c.MACSum()
		}); n != 0 {
			t.Errorf("%v: HMAC allocates %v per packet", a.alg, n)
		}
		c.Release()
		s.Close()
		if !bytes.Equal(s.mac.inner, make([]byte, len(s.mac.inner))) {
			t.Errorf("%v: Close left the HMAC pad state", a.alg)
		}
	}
}

func TestCBCIVsDistinct(t *testing.T) {
	s, err := New(Config{SPI: 0x3001, Protocol: ProtoESP, Enc: EncAESCBC, EncKey: key(16, 1),
		Integ: IntegHMACSHA256128, IntegKey: key(32, 2)})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(Config{SPI: 0x3001, Protocol: ProtoESP, Enc: EncAESCBC, EncKey: key(16, 1),
		Integ: IntegHMACSHA256128, IntegKey: key(32, 2)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[16]byte]bool{}
	c, c2 := s.Crypto(), s2.Crypto()
	for range 1000 {
		var iv, iv2 [16]byte
		c.NewIV(iv[:])
		c2.NewIV(iv2[:])
		if seen[iv] || seen[iv2] || iv == iv2 {
			t.Fatal("repeated IV")
		}
		seen[iv], seen[iv2] = true, true
	}
}

// TestMACAfterCloseFailsSafely: a worker still holding a closed SA gets
// a failed verification, not a panic, once the HMAC pads are wiped.
func TestMACAfterCloseFailsSafely(t *testing.T) {
	s, err := New(Config{SPI: 0x3002, Protocol: ProtoAH, Integ: IntegHMACSHA256128, IntegKey: key(32, 5)})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Crypto()
	c.MACStart()
	c.MACWrite([]byte("x"))
	icv := append([]byte(nil), c.MACSum()...)
	s.Close()
	c.MACStart()
	c.MACWrite([]byte("x"))
	if c.MACVerify(icv) {
		t.Fatal("a closed SA verified an ICV")
	}
}
