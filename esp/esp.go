package esp

import (
	"encoding/binary"
	"math"

	"github.com/isle-ipsec/isle/sa"
)

// MaxHead and MaxTail bound Overhead over every supported algorithm, for
// sizing buffers before an SA exists: AES-CBC's 16-byte IV after the
// 8-byte header; up to 15 bytes of CBC padding, pad length, next header
// and HMAC-SHA2-512-256's 32-byte ICV.
const (
	MaxHead = HeaderLen + 16
	MaxTail = 15 + 2 + 32
)

// Overhead returns the room Seal needs before the inner packet (ESP
// header and IV) and the most it can need after it (padding, pad length,
// next header and ICV).
func Overhead(s *sa.SA) (head, tail int) {
	enc := s.Enc()
	return HeaderLen + enc.IVSize(), enc.BlockSize() - 1 + 2 + s.ICVSize()
}

// Seal encrypts the inner packet buf[off:off+n] in place into an ESP
// packet with sequence number seq, and returns it (SPI through ICV), a
// sub-slice of buf[:cap(buf)]. The Next Header is derived from the inner
// packet's IP version (tunnel mode). See the package documentation for
// the buffer layout.
func Seal(s *sa.SA, seq uint64, buf []byte, off, n int) ([]byte, error) {
	var nh uint8
	if n > 0 && off >= 0 && off < cap(buf) {
		switch buf[:cap(buf)][off] >> 4 {
		case 4:
			nh = NextHeaderIPv4
		case 6:
			nh = NextHeaderIPv6
		}
	}
	if nh == 0 {
		s.CountDrop(sa.ReasonMalformed)
		return nil, sa.ErrMalformed
	}
	return SealNextHeader(s, seq, nh, buf, off, n)
}

// SealNextHeader is Seal with an explicit Next Header value (transport
// mode, or NextHeaderDummy for traffic-flow-confidentiality padding).
func SealNextHeader(s *sa.SA, seq uint64, nextHeader uint8, buf []byte, off, n int) ([]byte, error) {
	out, err := seal(s, seq, nextHeader, nil, buf, off, n)
	if err != nil {
		s.CountDrop(sa.ReasonOf(err))
		return nil, err
	}
	s.CountOut(n)
	return out, nil
}

// seal does the work; a non-nil iv replaces the IV Seal would choose, so
// that known-answer tests can reproduce published packets.
func seal(s *sa.SA, seq uint64, nh uint8, iv []byte, buf []byte, off, n int) ([]byte, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.Protocol() != sa.ProtoESP {
		return nil, sa.ErrMalformed
	}
	if seq == 0 || (!s.ESN() && seq > math.MaxUint32) {
		return nil, sa.ErrSeqExhausted
	}
	enc := s.Enc()
	ivLen, bs, icvLen := enc.IVSize(), enc.BlockSize(), s.ICVSize()
	head := HeaderLen + ivLen
	padLen := (bs - (n+2)%bs) % bs
	payloadLen := n + padLen + 2
	end := off + payloadLen + icvLen
	if off < head || n < 0 || end > cap(buf) || off+n < off {
		return nil, sa.ErrNoRoom
	}
	b := buf[:end]
	pkt := b[off-head:]
	binary.BigEndian.PutUint32(pkt[SPIOffset:], s.SPI())
	binary.BigEndian.PutUint32(pkt[SeqOffset:], uint32(seq))
	payload := b[off : off+payloadLen]
	// Monotonic padding 1, 2, 3, ... (RFC 4303 §2.4), then the trailer.
	for i := range padLen {
		payload[n+i] = byte(i + 1)
	}
	payload[n+padLen] = byte(padLen)
	payload[n+padLen+1] = nh

	ivField := pkt[HeaderLen:head]
	c := s.Crypto()
	defer c.Release()
	switch {
	case enc.AEAD():
		// RFC 4106 §3.1 and RFC 7634 §2: the explicit IV only has to be
		// unique under the key; the sequence number is, and costs nothing.
		if iv != nil {
			copy(ivField, iv)
		} else {
			binary.BigEndian.PutUint64(ivField, seq)
		}
		c.SealAEAD(payload[:0], ivField, payload, c.ESPAAD(seq))
	default:
		if enc == sa.EncAESCBC {
			if iv != nil {
				copy(ivField, iv)
			} else {
				c.NewIV(ivField)
			}
			c.EncryptCBC(ivField, payload)
		}
		c.MACStart()
		c.MACWrite(pkt[:head+payloadLen])
		if s.ESN() {
			// RFC 4303 §2.2.1: the high half is authenticated, not sent.
			c.MACWriteUint32(uint32(seq >> 32))
		}
		copy(pkt[head+payloadLen:], c.MACSum())
	}
	if err := s.Err(); err != nil {
		// Closed while we worked: the keys may have been cleared under us.
		return nil, err
	}
	return pkt, nil
}

// Open authenticates and decrypts the ESP packet pkt in place with the
// inbound SA s and returns the inner packet (a sub-slice of pkt) and its
// Next Header. Anti-replay is checked before and committed after the ICV.
func Open(s *sa.SA, pkt []byte) (inner []byte, nextHeader uint8, err error) {
	inner, nextHeader, err = open(s, pkt)
	if err != nil {
		s.CountDrop(sa.ReasonOf(err))
		return nil, 0, err
	}
	s.CountIn(len(inner))
	return inner, nextHeader, nil
}

func open(s *sa.SA, pkt []byte) ([]byte, uint8, error) {
	if err := s.Err(); err != nil {
		return nil, 0, err
	}
	enc := s.Enc()
	ivLen, icvLen := enc.IVSize(), s.ICVSize()
	head := HeaderLen + ivLen
	ctLen := len(pkt) - head - icvLen
	if ctLen < 2 || (enc == sa.EncAESCBC && ctLen%enc.BlockSize() != 0) {
		return nil, 0, sa.ErrMalformed
	}
	p := Packet(pkt)
	if p.SPI() != s.SPI() || s.Protocol() != sa.ProtoESP {
		return nil, 0, sa.ErrUnknownSPI
	}
	seq, err := s.CheckReplay(p.Seq())
	if err != nil {
		return nil, 0, err
	}
	iv := pkt[HeaderLen:head]
	ct := pkt[head : head+ctLen]
	c := s.Crypto()
	defer c.Release()
	if enc.AEAD() {
		if _, err := c.OpenAEAD(ct[:0], iv, pkt[head:], c.ESPAAD(seq)); err != nil {
			return nil, 0, err
		}
	} else {
		c.MACStart()
		c.MACWrite(pkt[:head+ctLen])
		if s.ESN() {
			c.MACWriteUint32(uint32(seq >> 32))
		}
		if !c.MACVerify(pkt[head+ctLen:]) {
			return nil, 0, sa.ErrAuthFailed
		}
		if enc == sa.EncAESCBC {
			c.DecryptCBC(iv, ct)
		}
	}
	if err := s.CommitReplay(seq); err != nil {
		return nil, 0, err
	}
	return trailer(s, ct)
}

// trailer strips and checks padding and Next Header from a decrypted
// payload. It runs after the ICV verified, so a failure means a broken
// (not a forging) peer; the packet is dropped all the same.
func trailer(s *sa.SA, pt []byte) ([]byte, uint8, error) {
	padLen := int(pt[len(pt)-2])
	nh := pt[len(pt)-1]
	if padLen+2 > len(pt) {
		return nil, 0, sa.ErrMalformed
	}
	innerLen := len(pt) - 2 - padLen
	for i, b := range pt[innerLen : innerLen+padLen] {
		if b != byte(i+1) {
			return nil, 0, sa.ErrMalformed
		}
	}
	inner := pt[:innerLen]
	if nh == NextHeaderDummy {
		return nil, 0, sa.ErrDummy
	}
	if s.Mode() == sa.ModeTunnel {
		var ok bool
		if inner, ok = tunnelInner(nh, inner); !ok {
			return nil, 0, sa.ErrMalformed
		}
	}
	return inner, nh, nil
}

// tunnelInner checks that a tunnel-mode payload is the IP version the
// Next Header announces and cuts it to the length its IP header gives:
// anything beyond is traffic-flow-confidentiality padding (RFC 4303 §2.7),
// which a receiver must discard.
func tunnelInner(nh uint8, p []byte) ([]byte, bool) {
	switch {
	case nh == NextHeaderIPv4 && len(p) >= 20 && p[0]>>4 == 4:
		n := int(binary.BigEndian.Uint16(p[2:4]))
		if n < 20 || n > len(p) {
			return nil, false
		}
		return p[:n], true
	case nh == NextHeaderIPv6 && len(p) >= 40 && p[0]>>4 == 6:
		n := 40 + int(binary.BigEndian.Uint16(p[4:6]))
		if n > len(p) {
			return nil, false
		}
		return p[:n], true
	}
	return nil, false
}
