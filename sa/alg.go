package sa

import "fmt"

// The algorithm vocabulary shared by the config loader, the negotiator and
// the packet engines. Values are the IANA IKEv2 transform IDs (RFC 7296
// §3.3.2 and the IANA "IKEv2 Parameters" registry), so a negotiated
// transform needs no translation table between ike and sa.

// Protocol is the IPsec protocol of an SA, numbered as in RFC 7296 §3.3.1
// (Protocol ID) for IKE, and as the IP protocol number on the wire
// otherwise (ESP = 50, AH = 51).
type Protocol uint8

const (
	ProtoIKE Protocol = 1  // IKE_SA (RFC 7296 Protocol ID 1)
	ProtoESP Protocol = 50 // IP protocol number of ESP
	ProtoAH  Protocol = 51 // IP protocol number of AH
)

func (p Protocol) String() string {
	switch p {
	case ProtoIKE:
		return "IKE"
	case ProtoESP:
		return "ESP"
	case ProtoAH:
		return "AH"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// Mode is the IPsec encapsulation mode.
type Mode uint8

const (
	ModeTunnel Mode = iota
	ModeTransport
)

func (m Mode) String() string {
	switch m {
	case ModeTunnel:
		return "TUNNEL"
	case ModeTransport:
		return "TRANSPORT"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// TransformType is the IKEv2 transform type (RFC 7296 §3.3.2).
type TransformType uint8

const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformKE    TransformType = 4 // "D-H" in RFC 7296, "KE" since RFC 9370
	TransformESN   TransformType = 5
)

func (t TransformType) String() string {
	switch t {
	case TransformENCR:
		return "ENCR"
	case TransformPRF:
		return "PRF"
	case TransformINTEG:
		return "INTEG"
	case TransformKE:
		return "KE"
	case TransformESN:
		return "ESN"
	}
	return fmt.Sprintf("TransformType(%d)", uint8(t))
}

// EncAlg is an encryption transform ID (transform type 1).
type EncAlg uint16

const (
	EncNull             EncAlg = 11 // ENCR_NULL (RFC 2410), integrity only
	EncAESCBC           EncAlg = 12 // ENCR_AES_CBC (RFC 3602), key length attribute 128/192/256
	EncAESGCM16         EncAlg = 20 // ENCR_AES_GCM_16 (RFC 4106), 16-byte ICV
	EncChaCha20Poly1305 EncAlg = 28 // ENCR_CHACHA20_POLY1305 (RFC 7634), 256-bit key
)

func (a EncAlg) String() string {
	switch a {
	case EncNull:
		return "NULL"
	case EncAESCBC:
		return "AES_CBC"
	case EncAESGCM16:
		return "AES_GCM_16"
	case EncChaCha20Poly1305:
		return "CHACHA20_POLY1305"
	}
	return fmt.Sprintf("ENCR(%d)", uint16(a))
}

// AEAD reports whether the algorithm authenticates as well as encrypts, so
// that no separate integrity transform is used with it.
func (a EncAlg) AEAD() bool { return a == EncAESGCM16 || a == EncChaCha20Poly1305 }

// SaltSize is the number of bytes of implicit nonce (salt) that are keyed
// together with the cipher key: RFC 4106 §8.1 and RFC 7634 §2 take them
// from the end of the keying material.
func (a EncAlg) SaltSize() int {
	if a.AEAD() {
		return 4
	}
	return 0
}

// IVSize is the size of the explicit IV carried in each ESP packet.
func (a EncAlg) IVSize() int {
	switch a {
	case EncAESCBC:
		return 16
	case EncAESGCM16, EncChaCha20Poly1305:
		return 8
	}
	return 0
}

// BlockSize is the alignment the ESP payload (through the Next Header
// field) must reach with padding: the cipher block size, at least 4
// (RFC 4303 §2.4).
func (a EncAlg) BlockSize() int {
	if a == EncAESCBC {
		return 16
	}
	return 4
}

// ICVSize is the size of the integrity check value an AEAD appends; 0 for
// algorithms that need a separate integrity transform.
func (a EncAlg) ICVSize() int {
	if a.AEAD() {
		return 16
	}
	return 0
}

// KeyBitsOK reports whether keyBits is a cipher key size (without salt)
// this algorithm supports. ChaCha20 has a fixed key and carries no key
// length attribute; NULL has no key.
func (a EncAlg) KeyBitsOK(keyBits int) bool {
	switch a {
	case EncAESCBC, EncAESGCM16:
		return keyBits == 128 || keyBits == 192 || keyBits == 256
	case EncChaCha20Poly1305:
		return keyBits == 256
	case EncNull:
		return keyBits == 0
	}
	return false
}

// IntegAlg is an integrity transform ID (transform type 3).
type IntegAlg uint16

const (
	IntegNone          IntegAlg = 0
	IntegHMACSHA1_96   IntegAlg = 2  // RFC 2404
	IntegHMACSHA256128 IntegAlg = 12 // RFC 4868
	IntegHMACSHA384192 IntegAlg = 13 // RFC 4868
	IntegHMACSHA512256 IntegAlg = 14 // RFC 4868
)

func (a IntegAlg) String() string {
	switch a {
	case IntegNone:
		return "NONE"
	case IntegHMACSHA1_96:
		return "HMAC_SHA1_96"
	case IntegHMACSHA256128:
		return "HMAC_SHA2_256_128"
	case IntegHMACSHA384192:
		return "HMAC_SHA2_384_192"
	case IntegHMACSHA512256:
		return "HMAC_SHA2_512_256"
	}
	return fmt.Sprintf("INTEG(%d)", uint16(a))
}

// KeySize is the HMAC key length in bytes (RFC 4868 §2.1.1: the hash's
// output size; RFC 2404: 20 bytes for SHA-1).
func (a IntegAlg) KeySize() int {
	switch a {
	case IntegHMACSHA1_96:
		return 20
	case IntegHMACSHA256128:
		return 32
	case IntegHMACSHA384192:
		return 48
	case IntegHMACSHA512256:
		return 64
	}
	return 0
}

// ICVSize is the truncated output carried on the wire, in bytes.
func (a IntegAlg) ICVSize() int {
	switch a {
	case IntegHMACSHA1_96:
		return 12
	case IntegHMACSHA256128:
		return 16
	case IntegHMACSHA384192:
		return 24
	case IntegHMACSHA512256:
		return 32
	}
	return 0
}

// PRFAlg is a pseudo-random function transform ID (transform type 2).
type PRFAlg uint16

const (
	PRFHMACSHA1   PRFAlg = 2
	PRFHMACSHA256 PRFAlg = 5
	PRFHMACSHA384 PRFAlg = 6
	PRFHMACSHA512 PRFAlg = 7
)

func (a PRFAlg) String() string {
	switch a {
	case PRFHMACSHA1:
		return "PRF_HMAC_SHA1"
	case PRFHMACSHA256:
		return "PRF_HMAC_SHA2_256"
	case PRFHMACSHA384:
		return "PRF_HMAC_SHA2_384"
	case PRFHMACSHA512:
		return "PRF_HMAC_SHA2_512"
	}
	return fmt.Sprintf("PRF(%d)", uint16(a))
}

// DHGroup is a key exchange method (transform type 4).
type DHGroup uint16

const (
	DHNone       DHGroup = 0
	DHMODP2048   DHGroup = 14
	DHMODP3072   DHGroup = 15
	DHMODP4096   DHGroup = 16
	DHECP256     DHGroup = 19
	DHECP384     DHGroup = 20
	DHCurve25519 DHGroup = 31
)

func (g DHGroup) String() string {
	switch g {
	case DHNone:
		return "NONE"
	case DHMODP2048:
		return "MODP_2048"
	case DHMODP3072:
		return "MODP_3072"
	case DHMODP4096:
		return "MODP_4096"
	case DHECP256:
		return "ECP_256"
	case DHECP384:
		return "ECP_384"
	case DHCurve25519:
		return "CURVE_25519"
	}
	return fmt.Sprintf("KE(%d)", uint16(g))
}
