// Package keys is the IKEv2 key schedule: the negotiated pseudo-random
// function, prf+ (RFC 7296 §2.13), SKEYSEED and the IKE SA keys (§2.14),
// CHILD_SA keying material (§2.17), rekeyed SKEYSEED (§2.18) and the AUTH
// payload computation (§2.15). It holds no state: callers own the keys
// and must clear them when done.
package keys

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"github.com/isle-ipsec/isle/sa"
)

// PRF is one of the HMAC-based pseudo-random functions of IKEv2
// (RFC 2104 with SHA-1, RFC 4868 with SHA-2).
type PRF struct {
	alg sa.PRFAlg
	h   func() hash.Hash
}

// NewPRF returns the PRF for a negotiated transform ID.
func NewPRF(alg sa.PRFAlg) (PRF, error) {
	var h func() hash.Hash
	switch alg {
	case sa.PRFHMACSHA1:
		h = sha1.New
	case sa.PRFHMACSHA256:
		h = sha256.New
	case sa.PRFHMACSHA384:
		h = sha512.New384
	case sa.PRFHMACSHA512:
		h = sha512.New
	default:
		return PRF{}, fmt.Errorf("keys: unsupported PRF %v", alg)
	}
	return PRF{alg: alg, h: h}, nil
}

// Alg is the transform ID of the PRF.
func (p PRF) Alg() sa.PRFAlg { return p.alg }

// Size is the output size in bytes, which is also the size of SK_d, SK_pi
// and SK_pr (RFC 7296 §2.14).
func (p PRF) Size() int { return p.h().Size() }

// Sum computes prf(key, data[0] | data[1] | ...).
func (p PRF) Sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.h, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// Plus computes n bytes of prf+(key, seed) (RFC 7296 §2.13):
// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), output T1 | T2 | ...
// The one-byte counter limits the output to 255 blocks.
func (p PRF) Plus(key, seed []byte, n int) ([]byte, error) {
	size := p.Size()
	if n < 0 || n > 255*size {
		return nil, fmt.Errorf("keys: prf+ of %d bytes exceeds 255 blocks of %d", n, size)
	}
	out := make([]byte, 0, (n+size-1)/size*size)
	m := hmac.New(p.h, key)
	var t []byte
	for i := 1; len(out) < n; i++ {
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n], nil
}
