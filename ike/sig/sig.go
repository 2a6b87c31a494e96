// Package sig makes and checks the signatures of IKEv2 AUTH payloads for
// certificate authentication: RFC 7427 Digital Signature (method 14,
// an ASN.1 AlgorithmIdentifier in front of the signature) with the hash
// algorithms the peer announced in SIGNATURE_HASH_ALGORITHMS, and the
// classic methods of RFC 7296 (RSA PKCS#1 v1.5 with SHA-1) and RFC 4754
// (ECDSA with the curve's hash, r||s).
package sig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	_ "crypto/sha1" // classic RSA signatures (AUTH method 1)
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/isle-ipsec/isle/ike/message"
)

// Hash is a hash algorithm of the SIGNATURE_HASH_ALGORITHMS notification
// (RFC 7427 §4, IANA "IKEv2 Hash Algorithms").
type Hash uint16

const (
	HashSHA1     Hash = 1
	HashSHA256   Hash = 2
	HashSHA384   Hash = 3
	HashSHA512   Hash = 4
	HashIdentity Hash = 5 // the data is signed as is (RFC 8420, Ed25519)
)

func (h Hash) String() string {
	switch h {
	case HashSHA1:
		return "SHA1"
	case HashSHA256:
		return "SHA2_256"
	case HashSHA384:
		return "SHA2_384"
	case HashSHA512:
		return "SHA2_512"
	case HashIdentity:
		return "IDENTITY"
	}
	return fmt.Sprintf("HASH(%d)", uint16(h))
}

func (h Hash) crypto() crypto.Hash {
	switch h {
	case HashSHA1:
		return crypto.SHA1
	case HashSHA256:
		return crypto.SHA256
	case HashSHA384:
		return crypto.SHA384
	case HashSHA512:
		return crypto.SHA512
	}
	return 0
}

// Supported is what we verify with method 14, in the order we announce
// it. SHA-1 is left out, as RFC 8247 says.
var Supported = []Hash{HashSHA256, HashSHA384, HashSHA512, HashIdentity}

// MarshalHashes encodes the SIGNATURE_HASH_ALGORITHMS notification data.
func MarshalHashes(hs []Hash) []byte {
	b := make([]byte, 0, 2*len(hs))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint16(b, uint16(h))
	}
	return b
}

// ParseHashes decodes SIGNATURE_HASH_ALGORITHMS data; a trailing odd
// byte is ignored, unknown values are kept (they never match).
func ParseHashes(b []byte) []Hash {
	var hs []Hash
	for ; len(b) >= 2; b = b[2:] {
		hs = append(hs, Hash(binary.BigEndian.Uint16(b)))
	}
	return hs
}

var (
	// ErrUnsupported: the method, algorithm or key is one we cannot use.
	ErrUnsupported = errors.New("unsupported signature method")
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = errors.New("signature does not verify")
)

// Object identifiers of RFC 7427 Appendix A (RFC 3279, RFC 4055, RFC 5758, RFC 8410).
var (
	oidRSAPKCS1SHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidRSAPKCS1SHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSAPKCS1SHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSAPKCS1SHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519        = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA1           = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

var rsaPKCS1OIDs = map[Hash]asn1.ObjectIdentifier{HashSHA1: oidRSAPKCS1SHA1, HashSHA256: oidRSAPKCS1SHA256, HashSHA384: oidRSAPKCS1SHA384, HashSHA512: oidRSAPKCS1SHA512}
var ecdsaOIDs = map[Hash]asn1.ObjectIdentifier{HashSHA256: oidECDSASHA256, HashSHA384: oidECDSASHA384, HashSHA512: oidECDSASHA512}
var hashOIDs = map[Hash]asn1.ObjectIdentifier{HashSHA1: oidSHA1, HashSHA256: oidSHA256, HashSHA384: oidSHA384, HashSHA512: oidSHA512}

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1).
type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1,optional"`
	SaltLength   int                      `asn1:"explicit,tag:2,optional,default:20"`
	TrailerField int                      `asn1:"explicit,tag:3,optional,default:1"`
}

// Scheme is one way to sign: the algorithm, the hash and for RSA the
// padding. It is what an AlgorithmIdentifier of method 14 names.
type Scheme struct {
	Key  KeyType
	Hash Hash
	PSS  bool // RSA only: RSASSA-PSS, salt as long as the hash
}

// KeyType is the kind of public key a scheme uses.
type KeyType int

const (
	KeyRSA KeyType = iota + 1
	KeyECDSA
	KeyEd25519
)

func (s Scheme) String() string {
	switch s.Key {
	case KeyRSA:
		if s.PSS {
			return "RSA_EMSA_PSS_" + s.Hash.String()
		}
		return "RSA_EMSA_PKCS1_" + s.Hash.String()
	case KeyECDSA:
		return "ECDSA_WITH_" + s.Hash.String()
	case KeyEd25519:
		return "ED25519"
	}
	return "UNKNOWN"
}

// AlgorithmIdentifier is the DER AlgorithmIdentifier of the scheme, as
// method 14 carries it (RFC 7427 §3, Appendix A).
func (s Scheme) AlgorithmIdentifier() ([]byte, error) {
	var ai pkix.AlgorithmIdentifier
	switch s.Key {
	case KeyRSA:
		if !s.PSS {
			oid, ok := rsaPKCS1OIDs[s.Hash]
			if !ok {
				return nil, fmt.Errorf("%w: %v", ErrUnsupported, s)
			}
			ai = pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}
			break
		}
		hoid, ok := hashOIDs[s.Hash]
		if !ok || s.Hash == HashSHA1 {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, s)
		}
		hai := pkix.AlgorithmIdentifier{Algorithm: hoid, Parameters: asn1.NullRawValue}
		hb, err := asn1.Marshal(hai)
		if err != nil {
			return nil, err
		}
		p := pssParams{Hash: hai, MGF: pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hb}},
			SaltLength: s.Hash.crypto().Size(), TrailerField: 1}
		pb, err := asn1.Marshal(p)
		if err != nil {
			return nil, err
		}
		ai = pkix.AlgorithmIdentifier{Algorithm: oidRSAPSS, Parameters: asn1.RawValue{FullBytes: pb}}
	case KeyECDSA:
		oid, ok := ecdsaOIDs[s.Hash]
		if !ok {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, s)
		}
		ai = pkix.AlgorithmIdentifier{Algorithm: oid}
	case KeyEd25519:
		ai = pkix.AlgorithmIdentifier{Algorithm: oidEd25519}
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, s)
	}
	return asn1.Marshal(ai)
}

// parseAlgorithmIdentifier reads the scheme a method-14 AUTH payload
// names; saltLen is the PSS salt length it asks for.
func parseAlgorithmIdentifier(der []byte) (s Scheme, saltLen int, err error) {
	var ai pkix.AlgorithmIdentifier
	rest, err := asn1.Unmarshal(der, &ai)
	if err != nil || len(rest) != 0 {
		return Scheme{}, 0, fmt.Errorf("%w: malformed AlgorithmIdentifier", ErrUnsupported)
	}
	for h, oid := range rsaPKCS1OIDs {
		if ai.Algorithm.Equal(oid) {
			return Scheme{Key: KeyRSA, Hash: h}, 0, nil
		}
	}
	for h, oid := range ecdsaOIDs {
		if ai.Algorithm.Equal(oid) {
			return Scheme{Key: KeyECDSA, Hash: h}, 0, nil
		}
	}
	switch {
	case ai.Algorithm.Equal(oidEd25519):
		return Scheme{Key: KeyEd25519, Hash: HashIdentity}, 0, nil
	case ai.Algorithm.Equal(oidRSAPSS):
		var p pssParams
		if rest, err := asn1.Unmarshal(ai.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return Scheme{}, 0, fmt.Errorf("%w: malformed RSASSA-PSS parameters", ErrUnsupported)
		}
		h := hashOf(p.Hash.Algorithm)
		if len(p.Hash.Algorithm) == 0 {
			h = HashSHA1 // the ASN.1 default
		}
		mgfHash := HashSHA1
		if len(p.MGF.Algorithm) != 0 {
			var mh pkix.AlgorithmIdentifier
			if !p.MGF.Algorithm.Equal(oidMGF1) {
				return Scheme{}, 0, fmt.Errorf("%w: RSASSA-PSS mask generation %v", ErrUnsupported, p.MGF.Algorithm)
			}
			if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mh); err != nil {
				return Scheme{}, 0, fmt.Errorf("%w: malformed MGF1 parameters", ErrUnsupported)
			}
			mgfHash = hashOf(mh.Algorithm)
		}
		// Go's PSS uses one hash for the message and MGF1, as every
		// IKE implementation we know does.
		if h == 0 || mgfHash != h || p.TrailerField != 1 || p.SaltLength < 0 {
			return Scheme{}, 0, fmt.Errorf("%w: RSASSA-PSS with hash %v, MGF1 %v, trailer %d", ErrUnsupported, h, mgfHash, p.TrailerField)
		}
		return Scheme{Key: KeyRSA, Hash: h, PSS: true}, p.SaltLength, nil
	}
	return Scheme{}, 0, fmt.Errorf("%w: signature algorithm %v", ErrUnsupported, ai.Algorithm)
}

func hashOf(oid asn1.ObjectIdentifier) Hash {
	for h, o := range hashOIDs {
		if oid.Equal(o) {
			return h
		}
	}
	return 0
}

// Choose picks the scheme to sign with key for a peer that announced
// peerHashes (nil: it sent no SIGNATURE_HASH_ALGORITHMS). It returns the
// AUTH method: 14 when the peer takes RFC 7427 signatures, else the
// classic method of the key (1 for RSA, 9 to 11 for ECDSA).
func Choose(key crypto.PublicKey, peerHashes []Hash, rsaPSS bool) (message.AuthMethod, Scheme, error) {
	pick := func(prefer ...Hash) (Hash, bool) {
		for _, h := range prefer {
			if slices.Contains(peerHashes, h) {
				return h, true
			}
		}
		return 0, false
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if peerHashes == nil {
			return message.AuthRSASig, Scheme{Key: KeyRSA, Hash: HashSHA1}, nil
		}
		h, ok := pick(HashSHA256, HashSHA384, HashSHA512)
		if !ok {
			return 0, Scheme{}, fmt.Errorf("%w: the peer accepts no SHA-2 hash (%v)", ErrUnsupported, peerHashes)
		}
		return message.AuthDigitalSignature, Scheme{Key: KeyRSA, Hash: h, PSS: rsaPSS}, nil
	case *ecdsa.PublicKey:
		curveHash, classic := map[string]Hash{"P-256": HashSHA256, "P-384": HashSHA384, "P-521": HashSHA512},
			map[string]message.AuthMethod{"P-256": message.AuthECDSA256, "P-384": message.AuthECDSA384, "P-521": message.AuthECDSA521}
		name := k.Curve.Params().Name
		ch, ok := curveHash[name]
		if !ok {
			return 0, Scheme{}, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupported, name)
		}
		if peerHashes == nil {
			return classic[name], Scheme{Key: KeyECDSA, Hash: ch}, nil
		}
		h, ok := pick(ch, HashSHA256, HashSHA384, HashSHA512)
		if !ok {
			return 0, Scheme{}, fmt.Errorf("%w: the peer accepts no SHA-2 hash (%v)", ErrUnsupported, peerHashes)
		}
		return message.AuthDigitalSignature, Scheme{Key: KeyECDSA, Hash: h}, nil
	case ed25519.PublicKey:
		if peerHashes != nil && !slices.Contains(peerHashes, HashIdentity) {
			return 0, Scheme{}, fmt.Errorf("%w: Ed25519 needs the Identity hash, the peer accepts %v", ErrUnsupported, peerHashes)
		}
		return message.AuthDigitalSignature, Scheme{Key: KeyEd25519, Hash: HashIdentity}, nil
	}
	return 0, Scheme{}, fmt.Errorf("%w: key %T", ErrUnsupported, key)
}

// Sign makes the AUTH payload data of method over octets (RFC 7296 §2.15
// InitiatorSignedOctets or ResponderSignedOctets).
func Sign(key crypto.Signer, method message.AuthMethod, s Scheme, octets []byte, rand io.Reader) ([]byte, error) {
	var digest []byte
	var opts crypto.SignerOpts = crypto.Hash(0)
	if s.Key != KeyEd25519 {
		h := s.Hash.crypto()
		if h == 0 {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, s)
		}
		d := h.New()
		d.Write(octets)
		digest, opts = d.Sum(nil), h
		if s.PSS {
			opts = &rsa.PSSOptions{SaltLength: h.Size(), Hash: h}
		}
	} else {
		digest = octets
	}
	sigBytes, err := key.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing with %v: %w", s, err)
	}
	switch method {
	case message.AuthDigitalSignature:
		ai, err := s.AlgorithmIdentifier()
		if err != nil {
			return nil, err
		}
		if len(ai) > 255 {
			return nil, fmt.Errorf("%w: AlgorithmIdentifier of %d bytes", ErrUnsupported, len(ai))
		}
		return append(append([]byte{byte(len(ai))}, ai...), sigBytes...), nil
	case message.AuthRSASig:
		return sigBytes, nil
	case message.AuthECDSA256, message.AuthECDSA384, message.AuthECDSA521:
		pub, ok := key.Public().(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: %v with a %T key", ErrUnsupported, method, key.Public())
		}
		return derToRS(sigBytes, pub.Curve)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupported, method)
}

// Verify checks AUTH data of method over octets with the peer's public
// key, and returns the scheme it used. Errors wrap ErrUnsupported or
// ErrBadSignature.
func Verify(pub crypto.PublicKey, method message.AuthMethod, data, octets []byte) (Scheme, error) {
	var s Scheme
	saltLen := 0
	sigBytes := data
	switch method {
	case message.AuthDigitalSignature:
		if len(data) < 1 || len(data) < 1+int(data[0]) {
			return Scheme{}, fmt.Errorf("%w: AUTH data shorter than its AlgorithmIdentifier", ErrUnsupported)
		}
		var err error
		if s, saltLen, err = parseAlgorithmIdentifier(data[1 : 1+int(data[0])]); err != nil {
			return Scheme{}, err
		}
		sigBytes = data[1+int(data[0]):]
		if s.Key == KeyRSA && !s.PSS && s.Hash == HashSHA1 {
			return s, fmt.Errorf("%w: %v (SHA-1 is not accepted with method 14)", ErrUnsupported, s)
		}
	case message.AuthRSASig:
		s = Scheme{Key: KeyRSA, Hash: HashSHA1}
	case message.AuthECDSA256, message.AuthECDSA384, message.AuthECDSA521:
		curves := map[message.AuthMethod]elliptic.Curve{message.AuthECDSA256: elliptic.P256(), message.AuthECDSA384: elliptic.P384(), message.AuthECDSA521: elliptic.P521()}
		hashes := map[message.AuthMethod]Hash{message.AuthECDSA256: HashSHA256, message.AuthECDSA384: HashSHA384, message.AuthECDSA521: HashSHA512}
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curves[method] {
			return Scheme{}, fmt.Errorf("%w: %v with a %s key", ErrUnsupported, method, keyName(pub))
		}
		der, err := rsToDER(data, k.Curve)
		if err != nil {
			return Scheme{}, err
		}
		s, sigBytes = Scheme{Key: KeyECDSA, Hash: hashes[method]}, der
	default:
		return Scheme{}, fmt.Errorf("%w: AUTH method %v", ErrUnsupported, method)
	}
	var digest []byte
	if s.Key != KeyEd25519 {
		d := s.Hash.crypto().New()
		d.Write(octets)
		digest = d.Sum(nil)
	}
	bad := fmt.Errorf("%w (%v, %s key)", ErrBadSignature, s, keyName(pub))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if s.Key != KeyRSA {
			break
		}
		if s.PSS {
			if rsa.VerifyPSS(k, s.Hash.crypto(), digest, sigBytes, &rsa.PSSOptions{SaltLength: saltLen, Hash: s.Hash.crypto()}) != nil {
				return s, bad
			}
			return s, nil
		}
		if rsa.VerifyPKCS1v15(k, s.Hash.crypto(), digest, sigBytes) != nil {
			return s, bad
		}
		return s, nil
	case *ecdsa.PublicKey:
		if s.Key != KeyECDSA {
			break
		}
		if !ecdsa.VerifyASN1(k, digest, sigBytes) {
			return s, bad
		}
		return s, nil
	case ed25519.PublicKey:
		if s.Key != KeyEd25519 {
			break
		}
		if !ed25519.Verify(k, octets, sigBytes) {
			return s, bad
		}
		return s, nil
	}
	return s, fmt.Errorf("%w: %v signature with a %s key", ErrUnsupported, s, keyName(pub))
}

func keyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// derToRS turns an ASN.1 ECDSA signature into RFC 4754's r||s, each as
// long as the curve's order.
func derToRS(der []byte, c elliptic.Curve) ([]byte, error) {
	var v struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed ECDSA signature from the signer")
	}
	n := (c.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	v.R.FillBytes(out[:n])
	v.S.FillBytes(out[n:])
	return out, nil
}

func rsToDER(rs []byte, c elliptic.Curve) ([]byte, error) {
	n := (c.Params().BitSize + 7) / 8
	if len(rs) != 2*n {
		return nil, fmt.Errorf("%w: ECDSA signature of %d bytes, want %d", ErrBadSignature, len(rs), 2*n)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:n]), new(big.Int).SetBytes(rs[n:])})
}
