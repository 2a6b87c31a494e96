package ike

import "github.com/isle-ipsec/isle/sa"

// SecretKeys are what a decryptor needs to read an IKE SA's encrypted
// payloads: its SPIs, algorithms and SK_e/SK_a keys. They exist for the
// keylog debug option (internal/keylog formats them for Wireshark); hand
// them only to what the user asked to write them.
type SecretKeys struct {
	SPIi, SPIr uint64
	Enc        sa.Encr
	Integ      sa.IntegAlg // IntegNone with AEAD
	SKei, SKer []byte      // with the salt for AEAD
	SKai, SKar []byte      // empty with AEAD
}

// SecretKeys returns the IKE SA's keys; ok is false before they exist.
func (s *IKESA) SecretKeys() (k SecretKeys, ok bool) {
	if s.keys == nil {
		return SecretKeys{}, false
	}
	return SecretKeys{
		SPIi: s.spii, SPIr: s.spir,
		Enc: s.ike.enc, Integ: s.ike.integ,
		SKei: s.keys.SKei, SKer: s.keys.SKer, SKai: s.keys.SKai, SKar: s.keys.SKar,
	}, true
}
