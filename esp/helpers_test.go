package esp

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

// suite is one algorithm combination under test.
type suite struct {
	name    string
	enc     sa.EncAlg
	encLen  int // key bytes including salt
	integ   sa.IntegAlg
	integKL int
}

var suites = []suite{
	{"aes128gcm16", sa.EncAESGCM16, 20, sa.IntegNone, 0},
	{"aes256gcm16", sa.EncAESGCM16, 36, sa.IntegNone, 0},
	{"chacha20poly1305", sa.EncChaCha20Poly1305, 36, sa.IntegNone, 0},
	{"aes128-sha256", sa.EncAESCBC, 16, sa.IntegHMACSHA256128, 32},
	{"aes256-sha384", sa.EncAESCBC, 32, sa.IntegHMACSHA384192, 48},
	{"aes256-sha512", sa.EncAESCBC, 32, sa.IntegHMACSHA512256, 64},
	{"aes128-sha1", sa.EncAESCBC, 16, sa.IntegHMACSHA1_96, 20},
	{"null-sha256", sa.EncNull, 0, sa.IntegHMACSHA256128, 32},
}

type pairOpts struct {
	esn    bool
	window uint32
	mode   sa.Mode
	life   sa.Lifetime
}

// pair returns an outbound and an inbound SA sharing SPI and keys, as the
// two ends of one CHILD_SA direction.
func (su suite) pair(t testing.TB, o pairOpts) (out, in *sa.SA) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(su.enc), uint64(su.integ)))
	encKey := make([]byte, su.encLen)
	integKey := make([]byte, su.integKL)
	for i := range encKey {
		encKey[i] = byte(rng.Uint32())
	}
	for i := range integKey {
		integKey[i] = byte(rng.Uint32())
	}
	mk := func(inbound bool) *sa.SA {
		c := sa.Config{
			SPI: 0xc0ffee01, Protocol: sa.ProtoESP, Mode: o.mode, Inbound: inbound,
			Enc: su.enc, EncKey: encKey, Integ: su.integ, IntegKey: integKey,
			ESN: o.esn, ReplayWindow: o.window, Lifetime: o.life,
		}
		if len(integKey) == 0 {
			c.IntegKey = nil
		}
		s, err := sa.New(c)
		if err != nil {
			t.Fatalf("%s: %v", su.name, err)
		}
		t.Cleanup(s.Close)
		return s
	}
	return mk(false), mk(true)
}

// ipPacket makes an inner packet of n bytes (at least 20 for IPv4, 40
// for IPv6) with random contents except for the fields esp reads: the
// version and the length.
func ipPacket(v6 bool, n int, seed uint64) []byte {
	p := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return setIPHeader(p, v6)
}

// setIPHeader writes version and length fields into p, growing it to the
// minimum header size if needed.
func setIPHeader(p []byte, v6 bool) []byte {
	if v6 {
		for len(p) < 40 {
			p = append(p, 0)
		}
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		return p
	}
	for len(p) < 20 {
		p = append(p, 0)
	}
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	return p
}

// sealInto copies inner into a fresh buffer with exactly the room
// Overhead asks for and seals it.
func sealInto(t testing.TB, s *sa.SA, seq uint64, inner []byte) []byte {
	t.Helper()
	head, tail := Overhead(s)
	buf := make([]byte, head+len(inner), head+len(inner)+tail)
	copy(buf[head:], inner)
	pkt, err := Seal(s, seq, buf, head, len(inner))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return pkt
}

// sealRaw builds an ESP packet around an arbitrary plaintext payload
// (trailer included, already aligned) without going through Seal, so
// tests can make authentic packets with broken trailers.
func sealRaw(t testing.TB, s *sa.SA, seq uint64, payload []byte) []byte {
	t.Helper()
	enc := s.Enc()
	head := HeaderLen + enc.IVSize()
	pkt := make([]byte, head, head+len(payload)+s.ICVSize())
	binary.BigEndian.PutUint32(pkt[0:], s.SPI())
	binary.BigEndian.PutUint32(pkt[4:], uint32(seq))
	c := s.Crypto()
	defer c.Release()
	iv := pkt[HeaderLen:head]
	if enc.AEAD() {
		binary.BigEndian.PutUint64(iv, seq)
		return c.SealAEAD(pkt, iv, payload, c.ESPAAD(seq))
	}
	for i := range iv {
		iv[i] = byte(i * 7)
	}
	body := append(pkt, payload...)
	if enc == sa.EncAESCBC {
		c.EncryptCBC(iv, body[head:])
	}
	c.MACStart()
	c.MACWrite(body)
	if s.ESN() {
		c.MACWriteUint32(uint32(seq >> 32))
	}
	return append(body, c.MACSum()...)
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %x\nwant %x", what, got, want)
	}
}
