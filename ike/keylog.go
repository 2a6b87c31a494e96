package ike

import (
	"fmt"

	"github.com/isle-ipsec/isle/sa"
)

// Wireshark's names for IKEv2 algorithms in its ikev2_decryption_table,
// the file strongSwan's save-keys plugin writes.
func wiresharkEncName(e sa.Encr) (string, bool) {
	switch e.Alg {
	case sa.EncAESCBC:
		return fmt.Sprintf("AES-CBC-%d [RFC3602]", e.KeyBits), true
	case sa.EncAESGCM16:
		return fmt.Sprintf("AES-GCM-%d with 16 octet ICV [RFC5282]", e.KeyBits), true
	case sa.EncNull:
		return "NULL [RFC2410]", true
	}
	return "", false // Wireshark 4.0 cannot decrypt ChaCha20-Poly1305 in IKE
}

func wiresharkIntegName(a sa.IntegAlg) (string, bool) {
	switch a {
	case sa.IntegNone:
		return "NONE [RFC4306]", true
	case sa.IntegHMACSHA1_96:
		return "HMAC_SHA1_96 [RFC2404]", true
	case sa.IntegHMACSHA256128:
		return "HMAC_SHA2_256_128 [RFC4868]", true
	case sa.IntegHMACSHA384192:
		return "HMAC_SHA2_384_192 [RFC4868]", true
	case sa.IntegHMACSHA512256:
		return "HMAC_SHA2_512_256 [RFC4868]", true
	}
	return "", false
}

// KeyLogLine returns the IKE SA's line for Wireshark's
// ikev2_decryption_table (SPIs, SK_e and SK_a, algorithms), the format
// strongSwan's save-keys plugin writes, for the keylog debug option. ok is
// false before the keys exist or for ciphers Wireshark cannot decrypt.
// The line holds secret keys: write it only where the user asked.
func (s *IKESA) KeyLogLine() (line string, ok bool) {
	if s.keys == nil {
		return "", false
	}
	enc, ok1 := wiresharkEncName(s.ike.enc)
	integ, ok2 := wiresharkIntegName(s.ike.integ)
	if !ok1 || !ok2 {
		return "", false
	}
	k := s.keys
	return fmt.Sprintf("%016x,%016x,%x,%x,%q,%x,%x,%q", s.spii, s.spir, k.SKei, k.SKer, enc, k.SKai, k.SKar, integ), true
}
