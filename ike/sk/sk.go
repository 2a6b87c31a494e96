// Package sk protects IKE messages: it seals payloads into an Encrypted
// (SK) payload and opens it again (RFC 7296 §3.14), with AES-GCM-16 (RFC
// 5282), ChaCha20-Poly1305 (RFC 7634) or AES-CBC with an HMAC (RFC 7296
// with RFC 3602 and RFC 4868). The same framing serves the Encrypted
// Fragment payload of RFC 7383.
package sk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// ErrAuthentication reports a message whose ICV does not verify; it must
// be dropped silently (RFC 7296 §2.21.1 and §3.14).
var ErrAuthentication = errors.New("sk: message failed integrity check")

// Cipher protects one direction of an IKE SA: the initiator seals with
// SK_ei/SK_ai and the responder opens with the same keys, and the other
// way round with SK_er/SK_ar. It is safe for concurrent use.
type Cipher struct {
	enc   sa.EncAlg
	integ sa.IntegAlg

	aead cipher.AEAD // AES-GCM or ChaCha20-Poly1305
	salt [4]byte
	ivs  atomic.Uint64 // AEAD IVs: a counter, never repeated under one key

	block  cipher.Block // AES-CBC
	macKey []byte
	mac    func() hash.Hash

	rand io.Reader // CBC IVs, which must be unpredictable

	// fixedIV, set only by tests, replaces IV generation so that a
	// recorded message can be reproduced byte for byte.
	fixedIV []byte
}

// New builds a Cipher. encKey is SK_e: for AEAD the cipher key followed by
// the 4-byte salt. integKey is SK_a, empty with AEAD.
func New(enc sa.EncAlg, encKey []byte, integ sa.IntegAlg, integKey []byte) (*Cipher, error) {
	c := &Cipher{enc: enc, integ: integ, rand: rand.Reader}
	if enc.AEAD() {
		if integ != sa.IntegNone {
			return nil, fmt.Errorf("sk: %v takes no integrity transform, got %v", enc, integ)
		}
		n := len(encKey) - 4
		if n < 0 || !enc.KeyBitsOK(8*n) {
			return nil, fmt.Errorf("sk: %v with %d-byte key and salt", enc, len(encKey))
		}
		var err error
		if enc == sa.EncChaCha20Poly1305 {
			c.aead, err = chacha20poly1305.New(encKey[:n])
		} else {
			var b cipher.Block
			if b, err = aes.NewCipher(encKey[:n]); err == nil {
				c.aead, err = cipher.NewGCM(b)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sk: %v: %w", enc, err)
		}
		copy(c.salt[:], encKey[n:])
		return c, nil
	}
	if enc != sa.EncAESCBC {
		return nil, fmt.Errorf("sk: unsupported encryption %v", enc)
	}
	if !enc.KeyBitsOK(8 * len(encKey)) {
		return nil, fmt.Errorf("sk: %v with %d-byte key", enc, len(encKey))
	}
	switch integ {
	case sa.IntegHMACSHA1_96:
		c.mac = sha1.New
	case sa.IntegHMACSHA256128:
		c.mac = sha256.New
	case sa.IntegHMACSHA384192:
		c.mac = sha512.New384
	case sa.IntegHMACSHA512256:
		c.mac = sha512.New
	default:
		return nil, fmt.Errorf("sk: %v needs an integrity transform, got %v", enc, integ)
	}
	if len(integKey) != integ.KeySize() {
		return nil, fmt.Errorf("sk: %v key of %d bytes, want %d", integ, len(integKey), integ.KeySize())
	}
	b, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("sk: %v: %w", enc, err)
	}
	c.block = b
	c.macKey = append([]byte(nil), integKey...)
	return c, nil
}

func (c *Cipher) ivSize() int { return c.enc.IVSize() }

func (c *Cipher) icvSize() int {
	if c.aead != nil {
		return c.aead.Overhead()
	}
	return c.integ.ICVSize()
}

// Overhead is how many bytes sealing adds to the payloads at most: IV,
// padding with its length byte, and ICV. Fragmentation uses it to size
// fragments.
func (c *Cipher) Overhead() int {
	if c.aead != nil {
		return c.ivSize() + 1 + c.icvSize()
	}
	return c.ivSize() + aes.BlockSize + c.icvSize()
}

// Seal returns the datagram for m with inner encrypted into an SK payload
// appended after m's own (unencrypted) payloads.
func (c *Cipher) Seal(m *message.Message, inner []message.Payload) ([]byte, error) {
	first, plain, err := message.MarshalPayloads(inner)
	if err != nil {
		return nil, fmt.Errorf("sk: seal %v: %w", m.Exchange, err)
	}
	return c.seal(m, plain, func(data []byte) message.Payload {
		return &message.Encrypted{NextPayload: first, Data: data}
	})
}

// seal frames plain (already marshalled payloads, or a fragment of them)
// with the payload that wrap builds around the ciphertext buffer.
func (c *Cipher) seal(m *message.Message, plain []byte, wrap func([]byte) message.Payload) ([]byte, error) {
	padLen := 0
	if c.block != nil {
		padLen = aes.BlockSize - (len(plain)+1)%aes.BlockSize
		if padLen == aes.BlockSize {
			padLen = 0
		}
	}
	ptLen := len(plain) + padLen + 1
	ivLen, icvLen := c.ivSize(), c.icvSize()
	out := *m
	out.Payloads = append(append([]message.Payload(nil), m.Payloads...), wrap(make([]byte, ivLen+ptLen+icvLen)))
	b, err := out.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sk: seal %v: %w", m.Exchange, err)
	}
	off := len(b) - (ivLen + ptLen + icvLen) // start of the IV
	iv, body := b[off:off+ivLen], b[off+ivLen:]
	// Plaintext: payloads, padding (zeros), pad length (RFC 7296 §3.14).
	copy(body, plain)
	clear(body[len(plain) : ptLen-1])
	body[ptLen-1] = byte(padLen)
	if c.fixedIV != nil {
		copy(iv, c.fixedIV)
	} else if c.aead != nil {
		binary.BigEndian.PutUint64(iv, c.ivs.Add(1))
	} else if _, err := io.ReadFull(c.rand, iv); err != nil {
		return nil, fmt.Errorf("sk: IV: %w", err)
	}
	if c.aead != nil {
		var nonce [12]byte
		copy(nonce[:4], c.salt[:])
		copy(nonce[4:], iv)
		// AAD: the header and every byte before the IV (RFC 5282 §5.1).
		c.aead.Seal(body[:0], nonce[:], body[:ptLen], b[:off])
		return b, nil
	}
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(body[:ptLen], body[:ptLen])
	h := hmac.New(c.mac, c.macKey)
	h.Write(b[:len(b)-icvLen])
	copy(b[len(b)-icvLen:], h.Sum(nil))
	return b, nil
}

// Open verifies and decrypts the SK payload of m, which Parse produced
// from raw, and returns the payloads inside.
func (c *Cipher) Open(raw []byte, m *message.Message) ([]message.Payload, error) {
	if len(m.Payloads) == 0 {
		return nil, fmt.Errorf("sk: %v message without payloads", m.Exchange)
	}
	e, ok := m.Payloads[len(m.Payloads)-1].(*message.Encrypted)
	if !ok {
		return nil, fmt.Errorf("sk: %v message without an SK payload", m.Exchange)
	}
	plain, err := c.open(raw, e.Data)
	if err != nil {
		return nil, err
	}
	ps, err := message.ParsePayloads(e.NextPayload, plain)
	if err != nil {
		return nil, fmt.Errorf("sk: %v message %d: %w", m.Exchange, m.MessageID, err)
	}
	return ps, nil
}

// open checks and decrypts data, the body of the last payload of raw.
func (c *Cipher) open(raw, data []byte) ([]byte, error) {
	ivLen, icvLen := c.ivSize(), c.icvSize()
	off := len(raw) - len(data)
	if off < message.HeaderSize || len(data) < ivLen+1+icvLen {
		return nil, fmt.Errorf("%w: encrypted payload of %d bytes is too short", message.ErrMalformed, len(data))
	}
	iv, body := data[:ivLen], data[ivLen:]
	var plain []byte
	if c.aead != nil {
		var nonce [12]byte
		copy(nonce[:4], c.salt[:])
		copy(nonce[4:], iv)
		var err error
		if plain, err = c.aead.Open(nil, nonce[:], body, raw[:off]); err != nil {
			return nil, ErrAuthentication
		}
	} else {
		ct := body[:len(body)-icvLen]
		h := hmac.New(c.mac, c.macKey)
		h.Write(raw[:len(raw)-icvLen])
		if !hmac.Equal(h.Sum(nil)[:icvLen], raw[len(raw)-icvLen:]) {
			return nil, ErrAuthentication
		}
		if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
			return nil, fmt.Errorf("%w: CBC ciphertext of %d bytes", message.ErrMalformed, len(ct))
		}
		plain = make([]byte, len(ct))
		cipher.NewCBCDecrypter(c.block, iv).CryptBlocks(plain, ct)
	}
	padLen := int(plain[len(plain)-1])
	if padLen+1 > len(plain) {
		return nil, fmt.Errorf("%w: pad length %d exceeds the %d-byte plaintext", message.ErrMalformed, padLen, len(plain))
	}
	return plain[:len(plain)-1-padLen], nil
}
