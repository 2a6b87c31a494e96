package sig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// The AlgorithmIdentifiers of RFC 7427 Appendix A, byte for byte.
func TestAlgorithmIdentifierRFC7427(t *testing.T) {
	for _, tc := range []struct {
		s    Scheme
		want string
	}{
		{Scheme{Key: KeyRSA, Hash: HashSHA1}, "300d 0609 2a864886f70d010105 0500"},
		{Scheme{Key: KeyRSA, Hash: HashSHA256}, "300d 0609 2a864886f70d01010b 0500"},
		{Scheme{Key: KeyRSA, Hash: HashSHA384}, "300d 0609 2a864886f70d01010c 0500"},
		{Scheme{Key: KeyRSA, Hash: HashSHA512}, "300d 0609 2a864886f70d01010d 0500"},
		{Scheme{Key: KeyECDSA, Hash: HashSHA256}, "300a 0608 2a8648ce3d040302"},
		{Scheme{Key: KeyECDSA, Hash: HashSHA384}, "300a 0608 2a8648ce3d040303"},
		{Scheme{Key: KeyECDSA, Hash: HashSHA512}, "300a 0608 2a8648ce3d040304"},
		{Scheme{Key: KeyEd25519, Hash: HashIdentity}, "3005 0603 2b6570"},
		{Scheme{Key: KeyRSA, Hash: HashSHA256, PSS: true},
			"3041 0609 2a864886f70d01010a 3034 a00f 300d 0609 608648016503040201 0500" +
				" a11c 301a 0609 2a864886f70d010108 300d 0609 608648016503040201 0500 a203 020120"},
	} {
		got, err := tc.s.AlgorithmIdentifier()
		if err != nil {
			t.Fatalf("%v: %v", tc.s, err)
		}
		if !bytes.Equal(got, unhex(tc.want)) {
			t.Errorf("%v: %x, want %s", tc.s, got, tc.want)
		}
		back, _, err := parseAlgorithmIdentifier(got)
		if err != nil || back != tc.s {
			t.Errorf("%v parses back as %v, %v", tc.s, back, err)
		}
	}
}

func TestHashesNotify(t *testing.T) {
	b := MarshalHashes(Supported)
	if !bytes.Equal(b, unhex("0002 0003 0004 0005")) {
		t.Fatalf("%x", b)
	}
	if got := ParseHashes(append(b, 7)); len(got) != 4 || got[3] != HashIdentity {
		t.Fatalf("%v", got)
	}
}

func keys(t *testing.T) map[string]crypto.Signer {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]crypto.Signer{"rsa": r, "p256": p256, "p384": p384, "p521": p521, "ed25519": ed}
}

func TestSignVerify(t *testing.T) {
	ks := keys(t)
	octets := []byte("InitiatorSignedOctets: the first message, the peer's nonce, prf(SK_pi, IDi')")
	for _, tc := range []struct {
		key        string
		peerHashes []Hash
		pss        bool
		method     message.AuthMethod
		scheme     string
	}{
		{"rsa", Supported, false, message.AuthDigitalSignature, "RSA_EMSA_PKCS1_SHA2_256"},
		{"rsa", []Hash{HashSHA384}, false, message.AuthDigitalSignature, "RSA_EMSA_PKCS1_SHA2_384"},
		{"rsa", []Hash{HashSHA512}, true, message.AuthDigitalSignature, "RSA_EMSA_PSS_SHA2_512"},
		{"rsa", Supported, true, message.AuthDigitalSignature, "RSA_EMSA_PSS_SHA2_256"},
		{"rsa", nil, false, message.AuthRSASig, "RSA_EMSA_PKCS1_SHA1"},
		{"p256", Supported, false, message.AuthDigitalSignature, "ECDSA_WITH_SHA2_256"},
		{"p384", Supported, false, message.AuthDigitalSignature, "ECDSA_WITH_SHA2_384"},
		{"p384", []Hash{HashSHA256}, false, message.AuthDigitalSignature, "ECDSA_WITH_SHA2_256"},
		{"p256", nil, false, message.AuthECDSA256, "ECDSA_WITH_SHA2_256"},
		{"p384", nil, false, message.AuthECDSA384, "ECDSA_WITH_SHA2_384"},
		{"p521", nil, false, message.AuthECDSA521, "ECDSA_WITH_SHA2_512"},
		{"ed25519", Supported, false, message.AuthDigitalSignature, "ED25519"},
	} {
		t.Run(tc.key+"/"+tc.scheme, func(t *testing.T) {
			k := ks[tc.key]
			method, s, err := Choose(k.Public(), tc.peerHashes, tc.pss)
			if err != nil {
				t.Fatal(err)
			}
			if method != tc.method || s.String() != tc.scheme {
				t.Fatalf("chose %v %v, want %v %v", method, s, tc.method, tc.scheme)
			}
			data, err := Sign(k, method, s, octets, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(k.Public(), method, data, octets)
			if err != nil || got != s {
				t.Fatalf("verify: %v %v", got, err)
			}
			// Other octets, a flipped bit, another key: all refused.
			if _, err := Verify(k.Public(), method, data, append([]byte("x"), octets...)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("other octets: %v", err)
			}
			bad := bytes.Clone(data)
			bad[len(bad)-3] ^= 1
			if _, err := Verify(k.Public(), method, bad, octets); err == nil {
				t.Error("flipped bit verifies")
			}
			for name, other := range ks {
				if name == tc.key {
					continue
				}
				if _, err := Verify(other.Public(), method, data, octets); err == nil {
					t.Errorf("verifies with the %s key", name)
				}
			}
		})
	}
}

func TestChooseRefuses(t *testing.T) {
	ks := keys(t)
	if _, _, err := Choose(ks["ed25519"].Public(), []Hash{HashSHA256}, false); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Ed25519 without Identity: %v", err)
	}
	if _, _, err := Choose(ks["rsa"].Public(), []Hash{HashSHA1}, false); !errors.Is(err, ErrUnsupported) {
		t.Errorf("RSA with only SHA-1: %v", err)
	}
	// Method 14 with sha1WithRSAEncryption is refused on receipt.
	k := ks["rsa"]
	data, err := Sign(k, message.AuthDigitalSignature, Scheme{Key: KeyRSA, Hash: HashSHA1}, []byte("x"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(k.Public(), message.AuthDigitalSignature, data, []byte("x")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SHA-1 in method 14: %v", err)
	}
	if _, err := Verify(k.Public(), message.AuthDSSSig, data, []byte("x")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("DSS: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, k := range []crypto.Signer{ed, p256, r} {
		m, s, _ := Choose(k.Public(), Supported, true)
		d, _ := Sign(k, m, s, []byte("o"), rand.Reader)
		f.Add(uint8(m), d)
	}
	f.Add(uint8(message.AuthECDSA256), make([]byte, 64))
	f.Fuzz(func(t *testing.T, method uint8, data []byte) {
		for _, k := range []crypto.Signer{ed, p256, r} {
			Verify(k.Public(), message.AuthMethod(method), data, []byte("o"))
		}
	})
}
