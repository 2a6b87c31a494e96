// Package dh implements the IKEv2 key exchange methods isle offers: the
// MODP groups 14, 15 and 16 (RFC 3526), the NIST curves P-256 and P-384
// (groups 19 and 20, encoded as in RFC 5903) and Curve25519 (group 31,
// RFC 8031). Every public value a peer sends is validated before use.
package dh

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/isle-ipsec/isle/sa"
)

// ErrInvalidPublic reports a peer key exchange value that is malformed or
// unsafe (wrong length, outside the group, low order); the exchange must
// fail (RFC 7296 §3.4 and RFC 6989).
var ErrInvalidPublic = errors.New("dh: invalid public value")

// PrivateKey is one side's ephemeral secret for a single exchange.
type PrivateKey struct {
	group  sa.DHGroup
	public []byte

	ec *ecdh.PrivateKey // groups 19, 20, 31

	modp *modpGroup // groups 14, 15, 16
	x    *big.Int
}

// Supported reports whether the group is implemented.
func Supported(g sa.DHGroup) bool {
	switch g {
	case sa.DHMODP2048, sa.DHMODP3072, sa.DHMODP4096, sa.DHECP256, sa.DHECP384, sa.DHCurve25519:
		return true
	}
	return false
}

// PublicSize is the length of the group's KE payload data.
func PublicSize(g sa.DHGroup) int {
	switch g {
	case sa.DHMODP2048:
		return 256
	case sa.DHMODP3072:
		return 384
	case sa.DHMODP4096:
		return 512
	case sa.DHECP256:
		return 64
	case sa.DHECP384:
		return 96
	case sa.DHCurve25519:
		return 32
	}
	return 0
}

func curve(g sa.DHGroup) ecdh.Curve {
	switch g {
	case sa.DHECP256:
		return ecdh.P256()
	case sa.DHECP384:
		return ecdh.P384()
	case sa.DHCurve25519:
		return ecdh.X25519()
	}
	return nil
}

// GenerateKey makes a fresh private key for the group from rand.
func GenerateKey(g sa.DHGroup, rand io.Reader) (*PrivateKey, error) {
	if c := curve(g); c != nil {
		k, err := c.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("dh: %v: %w", g, err)
		}
		return newECKey(g, k), nil
	}
	m := modpFor(g)
	if m == nil {
		return nil, fmt.Errorf("dh: unsupported group %v", g)
	}
	x, err := m.generateExponent(rand)
	if err != nil {
		return nil, fmt.Errorf("dh: %v: %w", g, err)
	}
	return newMODPKey(g, m, x), nil
}

// NewPrivateKey builds a key from a known secret: the scalar for the
// curves, the big-endian exponent for MODP groups. It exists for
// known-answer tests; exchanges use GenerateKey.
func NewPrivateKey(g sa.DHGroup, secret []byte) (*PrivateKey, error) {
	if c := curve(g); c != nil {
		k, err := c.NewPrivateKey(secret)
		if err != nil {
			return nil, fmt.Errorf("dh: %v: %w", g, err)
		}
		return newECKey(g, k), nil
	}
	m := modpFor(g)
	if m == nil {
		return nil, fmt.Errorf("dh: unsupported group %v", g)
	}
	x := new(big.Int).SetBytes(secret)
	if x.Cmp(big.NewInt(1)) <= 0 || x.Cmp(m.pMinus1) >= 0 {
		return nil, fmt.Errorf("dh: %v: exponent out of range", g)
	}
	return newMODPKey(g, m, x), nil
}

func newECKey(g sa.DHGroup, k *ecdh.PrivateKey) *PrivateKey {
	pub := k.PublicKey().Bytes()
	if g != sa.DHCurve25519 {
		pub = pub[1:] // RFC 5903 §7: x | y without the SEC1 0x04 prefix
	}
	return &PrivateKey{group: g, public: pub, ec: k}
}

func newMODPKey(g sa.DHGroup, m *modpGroup, x *big.Int) *PrivateKey {
	y := new(big.Int).Exp(big.NewInt(2), x, m.p)
	return &PrivateKey{group: g, public: y.FillBytes(make([]byte, m.size)), modp: m, x: x}
}

// Group is the key exchange method of the key.
func (k *PrivateKey) Group() sa.DHGroup { return k.group }

// PublicKey is the value to send in the KE payload.
func (k *PrivateKey) PublicKey() []byte { return append([]byte(nil), k.public...) }

// SharedSecret validates the peer's KE data and computes g^ir as IKEv2
// uses it: for MODP the value padded to the length of the prime (RFC
// 7296 §2.14), for the NIST curves the x coordinate (RFC 5903 §7), for
// Curve25519 the X25519 output, refused if all zero (RFC 8031 §2.2).
func (k *PrivateKey) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != PublicSize(k.group) {
		return nil, fmt.Errorf("%w: %v value of %d bytes, want %d", ErrInvalidPublic, k.group, len(peer), PublicSize(k.group))
	}
	if k.ec != nil {
		enc := peer
		if k.group != sa.DHCurve25519 {
			enc = append([]byte{4}, peer...)
		}
		pub, err := k.ec.Curve().NewPublicKey(enc)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublic, k.group, err)
		}
		s, err := k.ec.ECDH(pub)
		if err != nil { // X25519 low-order point: all-zero output
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublic, k.group, err)
		}
		return s, nil
	}
	y := new(big.Int).SetBytes(peer)
	if err := k.modp.validate(y); err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublic, k.group, err)
	}
	z := new(big.Int).Exp(y, k.x, k.modp.p)
	return z.FillBytes(make([]byte, k.modp.size)), nil
}
