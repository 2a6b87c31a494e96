package sa

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// cbcMode is what crypto/cipher's CBC encrypter and decrypter offer
// beyond cipher.BlockMode: SetIV lets one pooled instance serve many
// packets instead of allocating a new mode per packet.
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// macKey holds an HMAC key as the two hash states reached after absorbing
// the padded key XOR ipad and XOR opad (RFC 2104). Restoring a state with
// UnmarshalBinary costs a copy, so HMAC per packet neither re-hashes the
// pads nor allocates; and since these bytes are ours, Close can clear them,
// which crypto/hmac's internal copies would not allow.
type macKey struct {
	newHash      func() hash.Hash
	inner, outer []byte
	icvLen       int
}

func newMACKey(alg IntegAlg, key []byte) (*macKey, error) {
	var newHash func() hash.Hash
	switch alg {
	case IntegHMACSHA1_96:
		newHash = sha1.New
	case IntegHMACSHA256128:
		newHash = sha256.New
	case IntegHMACSHA384192:
		newHash = sha512.New384
	case IntegHMACSHA512256:
		newHash = sha512.New
	default:
		return nil, fmt.Errorf("unsupported integrity algorithm %v", alg)
	}
	h := newHash()
	if len(key) > h.BlockSize() {
		return nil, errors.New("HMAC key longer than the hash block")
	}
	pad := make([]byte, h.BlockSize())
	defer clear(pad)
	state := func(b byte) ([]byte, error) {
		for i := range pad {
			pad[i] = b
		}
		for i, k := range key {
			pad[i] ^= k
		}
		h.Reset()
		h.Write(pad)
		return h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	var m macKey
	var err error
	if m.inner, err = state(0x36); err != nil {
		return nil, fmt.Errorf("HMAC state: %w", err)
	}
	if m.outer, err = state(0x5c); err != nil {
		return nil, fmt.Errorf("HMAC state: %w", err)
	}
	m.newHash = newHash
	m.icvLen = alg.ICVSize()
	return &m, nil
}

func (m *macKey) wipe() {
	clear(m.inner)
	clear(m.outer)
}

func (s *SA) initCrypto() error {
	if s.integ != IntegNone {
		m, err := newMACKey(s.integ, s.integKey)
		if err != nil {
			return err
		}
		s.mac = m
	}
	keyLen := s.encBits / 8
	key := s.encKey[:keyLen]
	copy(s.salt[:], s.encKey[keyLen:])
	var err error
	switch s.enc {
	case EncAESGCM16:
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			s.aead, err = cipher.NewGCM(b)
		}
	case EncChaCha20Poly1305:
		s.aead, err = chacha20poly1305.New(key)
	case EncAESCBC:
		if s.block, err = aes.NewCipher(key); err != nil {
			break
		}
		// CBC needs IVs an attacker cannot predict (RFC 3602 §2, the
		// chosen-plaintext attack on chained IVs). Each IV is a counter
		// encrypted under a fresh random AES key that exists only in
		// this process: AES is a pseudorandom permutation, so without
		// that key its outputs look random, and the counter makes them
		// distinct. This is the NIST SP 800-38A Appendix C method, with a
		// separate key so the IV source never touches the ESP key.
		var ivKey [16]byte
		if _, err = rand.Read(ivKey[:]); err == nil {
			s.ivBlock, err = aes.NewCipher(ivKey[:])
		}
		clear(ivKey[:])
	}
	if err != nil {
		return fmt.Errorf("%v: %w", s.enc, err)
	}
	return nil
}

// Crypto is a worker's scratch space for one packet operation on an SA,
// with the SA's primitives behind methods so that keys stay inside sa.
// Get one with SA.Crypto, use it from one goroutine, and Release it. It
// comes from a per-SA pool, so the steady state allocates nothing.
type Crypto struct {
	s      *SA
	h      hash.Hash
	hState encoding.BinaryUnmarshaler
	cbcEnc cbcMode
	cbcDec cbcMode
	nonce  [12]byte
	aad    [12]byte
	sum    [64]byte
	block  [16]byte
	macBad bool // the HMAC state could not be restored (SA closed)
}

func (s *SA) newCrypto() *Crypto {
	c := &Crypto{s: s}
	if s.mac != nil {
		c.h = s.mac.newHash()
		c.hState = c.h.(encoding.BinaryUnmarshaler)
	}
	if s.block != nil {
		c.cbcEnc = cipher.NewCBCEncrypter(s.block, c.block[:]).(cbcMode)
		c.cbcDec = cipher.NewCBCDecrypter(s.block, c.block[:]).(cbcMode)
	}
	return c
}

// Crypto returns a scratch context for one packet. Release it when done.
func (s *SA) Crypto() *Crypto { return s.pool.Get().(*Crypto) }

// Release returns c to its SA's pool; c must not be used afterwards.
func (c *Crypto) Release() {
	clear(c.sum[:])
	c.s.pool.Put(c)
}

// ESPAAD returns the additional authenticated data of RFC 4106 §5 and
// RFC 7634 §2.1 for this SA: SPI || seq (8 bytes), or with ESN
// SPI || seq high || seq low (12 bytes). Valid until the next call.
func (c *Crypto) ESPAAD(seq uint64) []byte {
	binary.BigEndian.PutUint32(c.aad[0:], c.s.spi)
	if c.s.esn {
		binary.BigEndian.PutUint64(c.aad[4:], seq)
		return c.aad[:12]
	}
	binary.BigEndian.PutUint32(c.aad[4:], uint32(seq))
	return c.aad[:8]
}

func (c *Crypto) nonceFor(iv []byte) []byte {
	copy(c.nonce[:4], c.s.salt[:])
	copy(c.nonce[4:], iv)
	return c.nonce[:]
}

// SealAEAD encrypts and authenticates plaintext with nonce salt || iv
// (iv is the 8-byte explicit IV) and appends ciphertext and tag to dst,
// as cipher.AEAD.Seal does (plaintext[:0] as dst works in place).
func (c *Crypto) SealAEAD(dst, iv, plaintext, aad []byte) []byte {
	return c.s.aead.Seal(dst, c.nonceFor(iv), plaintext, aad)
}

// OpenAEAD verifies and decrypts ciphertext (tag included) as
// cipher.AEAD.Open does; ErrAuthFailed if the tag does not verify.
func (c *Crypto) OpenAEAD(dst, iv, ciphertext, aad []byte) ([]byte, error) {
	out, err := c.s.aead.Open(dst, c.nonceFor(iv), ciphertext, aad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return out, nil
}

// NewIV fills iv (16 bytes) with a fresh unpredictable CBC IV.
func (c *Crypto) NewIV(iv []byte) {
	binary.BigEndian.PutUint64(c.block[:8], c.s.ivCtr.Add(1))
	binary.BigEndian.PutUint64(c.block[8:], 0)
	c.s.ivBlock.Encrypt(iv[:16], c.block[:])
}

// EncryptCBC encrypts data (a multiple of 16 bytes) in place.
func (c *Crypto) EncryptCBC(iv, data []byte) {
	c.cbcEnc.SetIV(iv)
	c.cbcEnc.CryptBlocks(data, data)
}

// DecryptCBC decrypts data (a multiple of 16 bytes) in place.
func (c *Crypto) DecryptCBC(iv, data []byte) {
	c.cbcDec.SetIV(iv)
	c.cbcDec.CryptBlocks(data, data)
}

// MACStart begins an HMAC computation with the SA's integrity key.
func (c *Crypto) MACStart() {
	// Restoring fails only if Close wiped the state while a worker still
	// held the SA; the result must then never verify, but not panic.
	c.macBad = c.hState.UnmarshalBinary(c.s.mac.inner) != nil
}

// MACWrite adds p to the HMAC input.
func (c *Crypto) MACWrite(p []byte) { c.h.Write(p) }

// MACWriteUint32 adds v, big-endian, to the HMAC input (the implicit high
// half of an extended sequence number, RFC 4303 §2.2.1).
func (c *Crypto) MACWriteUint32(v uint32) {
	binary.BigEndian.PutUint32(c.block[:4], v)
	c.h.Write(c.block[:4])
}

// MACSum finishes the HMAC and returns the truncated ICV; the slice is
// valid until the next call on c.
func (c *Crypto) MACSum() []byte {
	inner := c.h.Sum(c.sum[:0])
	if c.hState.UnmarshalBinary(c.s.mac.outer) != nil {
		c.macBad = true
	}
	c.h.Write(inner)
	return c.h.Sum(c.sum[:0])[:c.s.mac.icvLen]
}

// MACVerify finishes the HMAC and compares it with icv in constant time.
func (c *Crypto) MACVerify(icv []byte) bool {
	sum := c.MACSum()
	return subtle.ConstantTimeCompare(sum, icv) == 1 && !c.macBad
}
