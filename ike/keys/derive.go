package keys

import (
	"encoding/binary"
	"fmt"

	"github.com/isle-ipsec/isle/sa"
)

// SKEYSEED computes prf(Ni | Nr, g^ir) (RFC 7296 §2.14). The nonces are
// the PRF key; for HMAC their full length is used.
func SKEYSEED(p PRF, ni, nr, gir []byte) []byte {
	return p.Sum(append(append([]byte(nil), ni...), nr...), gir)
}

// RekeySKEYSEED computes the SKEYSEED of an IKE SA created by rekeying:
// prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18), with the old
// SA's PRF and the nonces of the CREATE_CHILD_SA exchange.
func RekeySKEYSEED(oldPRF PRF, oldSKd, girNew, ni, nr []byte) []byte {
	return oldPRF.Sum(oldSKd, girNew, ni, nr)
}

// IKESAKeys are the seven secrets of an IKE SA (RFC 7296 §2.14). SK_a* is
// empty with an AEAD cipher; SK_e* ends with the AEAD salt (RFC 5282 §7.1,
// RFC 7634 §2).
type IKESAKeys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
}

// IKESAKeySizes are the lengths taken from prf+ for SK_a* and SK_e*.
type IKESAKeySizes struct {
	Integ int // integrity key size, 0 with AEAD
	Enc   int // cipher key size plus salt
}

// KeySizes returns the key sizes an IKE or CHILD SA with these transforms
// takes from the keying material. keyBits is the negotiated Key Length
// attribute (the fixed 256 for ChaCha20-Poly1305).
func KeySizes(enc sa.EncAlg, keyBits int, integ sa.IntegAlg) (IKESAKeySizes, error) {
	if !enc.KeyBitsOK(keyBits) {
		return IKESAKeySizes{}, fmt.Errorf("keys: %v with %d-bit key", enc, keyBits)
	}
	if enc.AEAD() != (integ == sa.IntegNone) {
		return IKESAKeySizes{}, fmt.Errorf("keys: %v with integrity %v", enc, integ)
	}
	if integ != sa.IntegNone && integ.KeySize() == 0 {
		return IKESAKeySizes{}, fmt.Errorf("keys: unsupported integrity %v", integ)
	}
	return IKESAKeySizes{Integ: integ.KeySize(), Enc: keyBits/8 + enc.SaltSize()}, nil
}

// DeriveIKESA computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14).
func DeriveIKESA(p PRF, skeyseed, ni, nr []byte, spii, spir uint64, sizes IKESAKeySizes) (*IKESAKeys, error) {
	seed := make([]byte, 0, len(ni)+len(nr)+16)
	seed = append(append(seed, ni...), nr...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	if sizes.Integ < 0 || sizes.Enc < 0 {
		return nil, fmt.Errorf("keys: negative key size %+v", sizes)
	}
	ps := p.Size()
	total := 3*ps + 2*sizes.Integ + 2*sizes.Enc
	km, err := p.Plus(skeyseed, seed, total)
	if err != nil {
		return nil, fmt.Errorf("keys: IKE SA keys: %w", err)
	}
	take := func(n int) []byte {
		k := km[:n:n]
		km = km[n:]
		return k
	}
	return &IKESAKeys{
		SKd: take(ps), SKai: take(sizes.Integ), SKar: take(sizes.Integ),
		SKei: take(sizes.Enc), SKer: take(sizes.Enc), SKpi: take(ps), SKpr: take(ps),
	}, nil
}

// ChildSAKeys are the keys of one CHILD_SA pair, each direction with its
// encryption key (cipher key followed by salt for AEAD, as sa.Config's
// EncKey takes it) and integrity key (empty with AEAD).
type ChildSAKeys struct {
	InitiatorEnc, InitiatorInteg []byte // initiator to responder
	ResponderEnc, ResponderInteg []byte // responder to initiator
}

// DeriveChildSA computes KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) and
// splits it as RFC 7296 §2.17 orders it: the initiator-to-responder SA
// first, encryption key before integrity key. girNew is nil unless the
// CREATE_CHILD_SA exchange carried a KE payload.
func DeriveChildSA(p PRF, skd, girNew, ni, nr []byte, sizes IKESAKeySizes) (*ChildSAKeys, error) {
	seed := make([]byte, 0, len(girNew)+len(ni)+len(nr))
	seed = append(append(append(seed, girNew...), ni...), nr...)
	if sizes.Integ < 0 || sizes.Enc < 0 {
		return nil, fmt.Errorf("keys: negative key size %+v", sizes)
	}
	km, err := p.Plus(skd, seed, 2*(sizes.Enc+sizes.Integ))
	if err != nil {
		return nil, fmt.Errorf("keys: CHILD_SA keys: %w", err)
	}
	take := func(n int) []byte {
		k := km[:n:n]
		km = km[n:]
		return k
	}
	var k ChildSAKeys
	k.InitiatorEnc, k.InitiatorInteg = take(sizes.Enc), take(sizes.Integ)
	k.ResponderEnc, k.ResponderInteg = take(sizes.Enc), take(sizes.Integ)
	return &k, nil
}

// Clear overwrites the keys with zeros.
func (k *IKESAKeys) Clear() {
	for _, b := range [][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr} {
		clear(b)
	}
}

// Clear overwrites the keys with zeros.
func (k *ChildSAKeys) Clear() {
	for _, b := range [][]byte{k.InitiatorEnc, k.InitiatorInteg, k.ResponderEnc, k.ResponderInteg} {
		clear(b)
	}
}
