package dh

import (
	"crypto/rand"
	"errors"
	"io"
	"math/big"
	"sync"

	"github.com/isle-ipsec/isle/sa"
)

// modpGroup is one RFC 3526 group with generator 2.
type modpGroup struct {
	p, pMinus1, q *big.Int // q = (p-1)/2, the order of the subgroup 2 generates
	size          int      // bytes of p
	expBits       int      // private exponent size
}

var (
	modpOnce   sync.Once
	modpGroups map[sa.DHGroup]*modpGroup
)

func modpFor(g sa.DHGroup) *modpGroup {
	modpOnce.Do(func() {
		mk := func(hex string, expBits int) *modpGroup {
			p, ok := new(big.Int).SetString(hex, 16)
			if !ok {
				panic("dh: bad built-in prime")
			}
			pm1 := new(big.Int).Sub(p, big.NewInt(1))
			return &modpGroup{p: p, pMinus1: pm1, q: new(big.Int).Rsh(pm1, 1), size: (p.BitLen() + 7) / 8, expBits: expBits}
		}
		// Exponent sizes: twice the upper strength estimate of RFC 3526
		// §8 (160, 210, 240 bits), as that section recommends.
		modpGroups = map[sa.DHGroup]*modpGroup{
			sa.DHMODP2048: mk(modp2048Hex, 320),
			sa.DHMODP3072: mk(modp3072Hex, 420),
			sa.DHMODP4096: mk(modp4096Hex, 480),
		}
	})
	return modpGroups[g]
}

func (m *modpGroup) generateExponent(r io.Reader) (*big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	for {
		b := make([]byte, (m.expBits+7)/8)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		x := new(big.Int).SetBytes(b)
		if x.Cmp(big.NewInt(1)) > 0 {
			return x, nil
		}
	}
}

// validate applies the public-value checks of NIST SP 800-56A §5.6.2.3.1
// that RFC 6989 §2.1 asks for: 1 < y < p-1 and y^q = 1 (mod p), so that y
// lies in the prime-order subgroup and cannot confine the secret to a
// small subgroup.
func (m *modpGroup) validate(y *big.Int) error {
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(m.pMinus1) >= 0 {
		return errors.New("value not in (1, p-1)")
	}
	if new(big.Int).Exp(y, m.q, m.p).Cmp(big.NewInt(1)) != 0 {
		return errors.New("value outside the prime-order subgroup")
	}
	return nil
}
