package sa

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A proposal in strongSwan's keyword syntax ("aes128gcm16-prfsha256-x25519",
// "aes256-sha256-modp2048", "default") read into the IANA transforms of one
// IKEv2 SA proposal (RFC 7296 §3.3). Each list holds the acceptable
// algorithms of one transform type in order of preference; the negotiator
// picks one of each.

// ESNMode is an Extended Sequence Numbers transform ID (transform type 5).
type ESNMode uint16

const (
	NoESN   ESNMode = 0 // 32-bit sequence numbers
	WithESN ESNMode = 1 // 64-bit extended sequence numbers (RFC 4303 §2.2.1)
)

func (m ESNMode) String() string {
	switch m {
	case NoESN:
		return "NO_EXT_SEQ"
	case WithESN:
		return "EXT_SEQ"
	}
	return fmt.Sprintf("ESN(%d)", uint16(m))
}

// Encr is an encryption transform with its key length (the Key Length
// attribute of RFC 7296 §3.3.5), in bits and without the salt. ChaCha20 has
// a fixed 256-bit key and NULL none.
type Encr struct {
	Alg     EncAlg
	KeyBits int
}

// String gives strongSwan's name: AES_CBC_128, AES_GCM_16_256,
// CHACHA20_POLY1305, NULL. Algorithms with a fixed key print no length.
func (e Encr) String() string {
	if e.Alg == EncAESCBC || e.Alg == EncAESGCM16 {
		return fmt.Sprintf("%v_%d", e.Alg, e.KeyBits)
	}
	return e.Alg.String()
}

// KeyMaterialSize is the number of bytes of keying material the transform
// takes: the cipher key plus, for AES-GCM and ChaCha20-Poly1305, the 4-byte
// salt (RFC 4106 §8.1, RFC 7634 §2), the length `ip xfrm` expects too.
func (e Encr) KeyMaterialSize() int { return e.KeyBits/8 + e.Alg.SaltSize() }

// Proposal is one SA proposal for IKE, ESP or AH.
//
// IKE: Encr, PRF and DH are non-empty; Integ is empty exactly when the
// ciphers are AEAD. ESP: Encr non-empty; Integ empty exactly when AEAD;
// DH non-empty only for PFS; ESN non-empty. AH: Integ and ESN non-empty,
// Encr empty. PRF is empty outside IKE.
type Proposal struct {
	Protocol Protocol
	Encr     []Encr
	Integ    []IntegAlg
	PRF      []PRFAlg
	DH       []DHGroup
	ESN      []ESNMode
}

// AEAD reports whether the proposal's ciphers authenticate themselves
// (a proposal never mixes AEAD and non-AEAD ciphers).
func (p Proposal) AEAD() bool { return len(p.Encr) > 0 && p.Encr[0].Alg.AEAD() }

// String gives the transforms in strongSwan's notation, separated by "/"
// in the order ENCR, INTEG, PRF, KE, ESN: "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"
// for IKE, "AES_GCM_16_128" or "AES_CBC_256/HMAC_SHA2_256_128/ESN" for ESP.
// As in `swanctl --list-sas`, the usual "no ESN" is left out.
func (p Proposal) String() string {
	var parts []string
	for _, e := range p.Encr {
		parts = append(parts, e.String())
	}
	for _, a := range p.Integ {
		parts = append(parts, a.String())
	}
	for _, a := range p.PRF {
		parts = append(parts, a.String())
	}
	for _, g := range p.DH {
		parts = append(parts, g.String())
	}
	if !(len(p.ESN) == 1 && p.ESN[0] == NoESN) {
		for _, m := range p.ESN {
			if m == WithESN {
				parts = append(parts, "ESN")
			} else {
				parts = append(parts, m.String())
			}
		}
	}
	return strings.Join(parts, "/")
}

// keyword is what one strongSwan algorithm keyword stands for.
type keyword struct {
	typ     TransformType
	id      uint16
	keyBits int // ENCR only
}

// keywords are strongSwan's proposal keywords for the algorithms isle
// implements (its proposal_keywords table has many more).
var keywords = map[string]keyword{
	"null":             {TransformENCR, uint16(EncNull), 0},
	"aes":              {TransformENCR, uint16(EncAESCBC), 128},
	"aes128":           {TransformENCR, uint16(EncAESCBC), 128},
	"aes192":           {TransformENCR, uint16(EncAESCBC), 192},
	"aes256":           {TransformENCR, uint16(EncAESCBC), 256},
	"aes128gcm16":      {TransformENCR, uint16(EncAESGCM16), 128},
	"aes192gcm16":      {TransformENCR, uint16(EncAESGCM16), 192},
	"aes256gcm16":      {TransformENCR, uint16(EncAESGCM16), 256},
	"aes128gcm128":     {TransformENCR, uint16(EncAESGCM16), 128},
	"aes192gcm128":     {TransformENCR, uint16(EncAESGCM16), 192},
	"aes256gcm128":     {TransformENCR, uint16(EncAESGCM16), 256},
	"chacha20poly1305": {TransformENCR, uint16(EncChaCha20Poly1305), 256},
	"sha":              {TransformINTEG, uint16(IntegHMACSHA1_96), 0},
	"sha1":             {TransformINTEG, uint16(IntegHMACSHA1_96), 0},
	"sha256":           {TransformINTEG, uint16(IntegHMACSHA256128), 0},
	"sha2_256":         {TransformINTEG, uint16(IntegHMACSHA256128), 0},
	"sha384":           {TransformINTEG, uint16(IntegHMACSHA384192), 0},
	"sha2_384":         {TransformINTEG, uint16(IntegHMACSHA384192), 0},
	"sha512":           {TransformINTEG, uint16(IntegHMACSHA512256), 0},
	"sha2_512":         {TransformINTEG, uint16(IntegHMACSHA512256), 0},
	"prfsha1":          {TransformPRF, uint16(PRFHMACSHA1), 0},
	"prfsha256":        {TransformPRF, uint16(PRFHMACSHA256), 0},
	"prfsha384":        {TransformPRF, uint16(PRFHMACSHA384), 0},
	"prfsha512":        {TransformPRF, uint16(PRFHMACSHA512), 0},
	"modp2048":         {TransformKE, uint16(DHMODP2048), 0},
	"modp3072":         {TransformKE, uint16(DHMODP3072), 0},
	"modp4096":         {TransformKE, uint16(DHMODP4096), 0},
	"ecp256":           {TransformKE, uint16(DHECP256), 0},
	"ecp384":           {TransformKE, uint16(DHECP384), 0},
	"x25519":           {TransformKE, uint16(DHCurve25519), 0},
	"curve25519":       {TransformKE, uint16(DHCurve25519), 0},
	"esn":              {TransformESN, uint16(WithESN), 0},
	"noesn":            {TransformESN, uint16(NoESN), 0},
}

// prfForInteg is the PRF strongSwan adds to a non-AEAD IKE proposal that
// names none: the HMAC over the integrity algorithm's hash.
var prfForInteg = map[IntegAlg]PRFAlg{
	IntegHMACSHA1_96:   PRFHMACSHA1,
	IntegHMACSHA256128: PRFHMACSHA256,
	IntegHMACSHA384192: PRFHMACSHA384,
	IntegHMACSHA512256: PRFHMACSHA512,
}

// ParseEncr reads one encryption keyword ("aes128gcm16", "aes256", "null").
func ParseEncr(word string) (Encr, error) {
	k, ok := keywords[strings.ToLower(word)]
	if !ok || k.typ != TransformENCR {
		return Encr{}, fmt.Errorf("unknown encryption algorithm %q (expected aes128gcm16, aes256gcm16, chacha20poly1305, aes128, aes192, aes256 or null)", word)
	}
	return Encr{EncAlg(k.id), k.keyBits}, nil
}

// ParseInteg reads one integrity keyword ("sha256", "sha1", ...).
func ParseInteg(word string) (IntegAlg, error) {
	k, ok := keywords[strings.ToLower(word)]
	if !ok || k.typ != TransformINTEG {
		return 0, fmt.Errorf("unknown integrity algorithm %q (expected sha256, sha384, sha512 or sha1)", word)
	}
	return IntegAlg(k.id), nil
}

// ParseProposal reads one strongSwan proposal string for proto: keywords
// separated by "-", or "default". It returns one proposal, or for
// "default" the AEAD and the non-AEAD default proposals (strongSwan keeps
// AEAD and classic ciphers in separate proposals, so "default" is two).
//
// As strongSwan does, a non-AEAD IKE proposal without PRF keyword gets the
// PRF matching its integrity algorithm(s); ESP and AH proposals without
// esn/noesn get noesn; a key exchange keyword in ESP/AH asks for PFS.
func ParseProposal(proto Protocol, s string) ([]Proposal, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "default") {
		return DefaultProposals(proto), nil
	}
	p, err := parseProposal(proto, s)
	if err != nil {
		return nil, fmt.Errorf("%s proposal %q: %w", proto, s, err)
	}
	return []Proposal{p}, nil
}

func parseProposal(proto Protocol, s string) (Proposal, error) {
	if proto != ProtoIKE && proto != ProtoESP && proto != ProtoAH {
		return Proposal{}, fmt.Errorf("no proposals for protocol %v", proto)
	}
	p := Proposal{Protocol: proto}
	if s == "" {
		return p, errors.New("empty proposal")
	}
	for _, word := range strings.Split(s, "-") {
		k, ok := keywords[strings.ToLower(word)]
		if !ok {
			if word == "" {
				return p, errors.New(`empty keyword (two "-" in a row or at an end)`)
			}
			return p, fmt.Errorf("unknown algorithm keyword %q", word)
		}
		switch k.typ {
		case TransformENCR:
			p.Encr = appendNew(p.Encr, Encr{EncAlg(k.id), k.keyBits})
		case TransformINTEG:
			p.Integ = appendNew(p.Integ, IntegAlg(k.id))
		case TransformPRF:
			p.PRF = appendNew(p.PRF, PRFAlg(k.id))
		case TransformKE:
			p.DH = appendNew(p.DH, DHGroup(k.id))
		case TransformESN:
			p.ESN = appendNew(p.ESN, ESNMode(k.id))
		}
	}
	return p, p.complete()
}

func appendNew[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// complete checks the proposal is one the protocol can use and fills in
// what strongSwan implies (PRF from integrity for IKE, noesn).
func (p *Proposal) complete() error {
	aead, classic := 0, 0
	for _, e := range p.Encr {
		if e.Alg.AEAD() {
			aead++
		} else {
			classic++
		}
	}
	if aead > 0 && classic > 0 {
		return errors.New("AEAD ciphers (aes*gcm16, chacha20poly1305) and classic ciphers (aes128, aes256, null) cannot be mixed in one proposal: write two proposals")
	}
	if aead > 0 && len(p.Integ) > 0 {
		return fmt.Errorf("AEAD cipher %s has its own integrity protection: remove the integrity algorithm %s", p.Encr[0], p.Integ[0])
	}
	switch p.Protocol {
	case ProtoIKE:
		if len(p.Encr) == 0 {
			return errors.New("no encryption algorithm (e.g. aes128gcm16 or aes256)")
		}
		if slices.ContainsFunc(p.Encr, func(e Encr) bool { return e.Alg == EncNull }) {
			return errors.New("null encryption is not allowed for IKE")
		}
		if len(p.ESN) > 0 {
			return errors.New("esn/noesn apply to ESP and AH, not IKE")
		}
		if classic > 0 && len(p.Integ) == 0 {
			return errors.New("no integrity algorithm for the non-AEAD cipher (e.g. sha256)")
		}
		if len(p.PRF) == 0 {
			if aead > 0 {
				return errors.New("AEAD proposal needs a PRF keyword (e.g. prfsha256)")
			}
			for _, a := range p.Integ {
				p.PRF = appendNew(p.PRF, prfForInteg[a])
			}
		}
		if len(p.DH) == 0 {
			return errors.New("no key exchange method (e.g. x25519, ecp256 or modp3072)")
		}
	case ProtoESP:
		if len(p.Encr) == 0 {
			return errors.New("no encryption algorithm (e.g. aes128gcm16, or aes256 with sha256; for integrity only use AH or null)")
		}
		if classic > 0 && len(p.Integ) == 0 {
			return errors.New("no integrity algorithm for the non-AEAD cipher (e.g. sha256)")
		}
	case ProtoAH:
		if len(p.Encr) > 0 {
			return fmt.Errorf("AH does not encrypt: remove %s", p.Encr[0])
		}
		if len(p.Integ) == 0 {
			return errors.New("no integrity algorithm (e.g. sha256)")
		}
	}
	if p.Protocol != ProtoIKE {
		if len(p.PRF) > 0 {
			return fmt.Errorf("PRF %s applies to IKE proposals only", p.PRF[0])
		}
		if len(p.ESN) == 0 {
			p.ESN = []ESNMode{NoESN}
		}
	}
	return nil
}

// DefaultProposals returns what "default" stands for: the AEAD proposal
// first, then the classic one. The algorithms are a subset of what
// strongSwan 5.9 proposes and accepts by default (AES-GCM/ChaCha20 and
// AES-CBC with SHA-2 for IKE and ESP; ECP/Curve25519 and MODP >= 2048
// groups), so the two meet without any configuration on either side. ESP
// defaults have no PFS group and no ESN, like strongSwan's.
func DefaultProposals(proto Protocol) []Proposal {
	aead := []Encr{{EncAESGCM16, 128}, {EncAESGCM16, 256}, {EncChaCha20Poly1305, 256}}
	cbc := []Encr{{EncAESCBC, 128}, {EncAESCBC, 256}}
	integ := []IntegAlg{IntegHMACSHA256128, IntegHMACSHA384192, IntegHMACSHA512256}
	switch proto {
	case ProtoIKE:
		prf := []PRFAlg{PRFHMACSHA256, PRFHMACSHA384, PRFHMACSHA512}
		dh := []DHGroup{DHCurve25519, DHECP256, DHECP384, DHMODP3072, DHMODP4096, DHMODP2048}
		return []Proposal{
			{Protocol: ProtoIKE, Encr: aead, PRF: prf, DH: dh},
			{Protocol: ProtoIKE, Encr: cbc, Integ: integ, PRF: slices.Clone(prf), DH: slices.Clone(dh)},
		}
	case ProtoESP:
		return []Proposal{
			{Protocol: ProtoESP, Encr: aead, ESN: []ESNMode{NoESN}},
			{Protocol: ProtoESP, Encr: cbc, Integ: integ, ESN: []ESNMode{NoESN}},
		}
	case ProtoAH:
		return []Proposal{{Protocol: ProtoAH, Integ: integ, ESN: []ESNMode{NoESN}}}
	}
	return nil
}
