package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// A throwaway PKI for the certificate tests: a root, optional
// intermediates, and end-entity certificates with the usual names.

type keyKind string

const (
	kRSA2048 keyKind = "rsa2048"
	kRSA4096 keyKind = "rsa4096"
	kP256    keyKind = "p256"
	kP384    keyKind = "p384"
	kEd25519 keyKind = "ed25519"
)

var keyCache = map[keyKind][]crypto.Signer{}

// testKey returns the n-th key of a kind; RSA keys are slow to make, so
// they are shared between tests.
func testKey(t testing.TB, k keyKind, n int) crypto.Signer {
	t.Helper()
	for len(keyCache[k]) <= n {
		var key crypto.Signer
		var err error
		switch k {
		case kRSA2048:
			key, err = rsa.GenerateKey(rand.Reader, 2048)
		case kRSA4096:
			key, err = rsa.GenerateKey(rand.Reader, 4096)
		case kP256:
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case kP384:
			key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case kEd25519:
			_, key, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			t.Fatal(err)
		}
		keyCache[k] = append(keyCache[k], key)
	}
	return keyCache[k][n]
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial int64

func issue(t testing.TB, parent *testCA, subject pkix.Name, key crypto.Signer, isCA bool, sans ...string) *x509.Certificate {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage, tmpl.IsCA, tmpl.BasicConstraintsValid = x509.KeyUsageCertSign|x509.KeyUsageCRLSign, true, true
	}
	for _, s := range sans {
		switch ip := net.ParseIP(s); {
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case strings.Contains(s, "@"):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, s)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dn(cn string) pkix.Name {
	return pkix.Name{Country: []string{"CH"}, Organization: []string{"isle test"}, CommonName: cn}
}

func newTestCA(t testing.TB, cn string, k keyKind, n int) *testCA {
	key := testKey(t, k, n)
	return &testCA{cert: issue(t, nil, dn(cn), key, true), key: key}
}

func (ca *testCA) intermediate(t testing.TB, cn string, k keyKind, n int) *testCA {
	key := testKey(t, k, n)
	return &testCA{cert: issue(t, ca, dn(cn), key, true), key: key}
}

// certConfig turns a PSK config into a certificate one: our certificate
// and chain, our key, the peer's trust anchor, and DN identities.
func certConfig(c Config, certs []*x509.Certificate, key crypto.Signer, anchor *x509.Certificate, peer Identity) Config {
	c.PSK, c.PSKFor = nil, nil
	c.Certs, c.Key, c.CACerts = certs, key, []*x509.Certificate{anchor}
	c.LocalID, c.RemoteID = CertIdentity(certs[0]), peer
	return c
}

func TestCertAuth(t *testing.T) {
	for _, tc := range []struct {
		name        string
		left, right keyKind
		pss         bool
		inter       int // intermediates between the root and each end entity
		wantL       string
		wantR       string // how each side sees the other sign
	}{
		{"ecdsa-p256", kP256, kP256, false, 0, "ECDSA_WITH_SHA2_256", "ECDSA_WITH_SHA2_256"},
		{"ecdsa-p384", kP384, kP384, false, 0, "ECDSA_WITH_SHA2_384", "ECDSA_WITH_SHA2_384"},
		{"rsa-pkcs1", kRSA2048, kRSA2048, false, 0, "RSA_EMSA_PKCS1_SHA2_256", "RSA_EMSA_PKCS1_SHA2_256"},
		{"rsa-pss", kRSA2048, kRSA2048, true, 0, "RSA_EMSA_PSS_SHA2_256", "RSA_EMSA_PSS_SHA2_256"},
		{"ed25519", kEd25519, kEd25519, false, 0, "ED25519", "ED25519"},
		{"rsa-ed25519", kRSA2048, kEd25519, false, 0, "ED25519", "RSA_EMSA_PKCS1_SHA2_256"},
		{"intermediate", kP256, kEd25519, false, 1, "ED25519", "ECDSA_WITH_SHA2_256"},
		{"two-intermediates", kP384, kRSA2048, false, 2, "RSA_EMSA_PKCS1_SHA2_256", "ECDSA_WITH_SHA2_384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newTestCA(t, "isle root", kP256, 0)
			chain := func(name string, k keyKind, n int) ([]*x509.Certificate, crypto.Signer) {
				ca, var_ := root, []*x509.Certificate(nil)
				for i := 0; i < tc.inter; i++ {
					ca = ca.intermediate(t, "isle intermediate "+name+string(rune('A'+i)), kP256, 1+i)
					var_ = append([]*x509.Certificate{ca.cert}, var_...)
				}
				key := testKey(t, k, n)
				return append([]*x509.Certificate{issue(t, ca, dn("gw-"+name), key, false, name+".isle.test")}, var_...), key
			}
			lc, lk := chain("left", tc.left, 0)
			rc, rk := chain("right", tc.right, 1)
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			left = certConfig(left, lc, lk, root.cert, CertIdentity(rc[0]))
			right = certConfig(right, rc, rk, root.cert, AnyID())
			left.RSAPSS, right.RSAPSS = tc.pss, tc.pss
			i, r, _ := establish(t, left, right)
			if got := i.PeerAuth(); got != tc.wantL {
				t.Errorf("initiator saw the responder sign with %s, want %s", got, tc.wantL)
			}
			if got := r.PeerAuth(); got != tc.wantR {
				t.Errorf("responder saw the initiator sign with %s, want %s", got, tc.wantR)
			}
			if got, want := r.PeerID().String(), "C=CH, O=isle test, CN=gw-left"; got != want {
				t.Errorf("responder: peer %q, want %q", got, want)
			}
			checkChildPair(t, i, r)
		})
	}
}

// TestCertAuthClassic: a peer that sent no SIGNATURE_HASH_ALGORITHMS gets
// the classic methods (RSA PKCS#1 SHA-1, ECDSA r||s), which we verify.
func TestCertAuthClassic(t *testing.T) {
	for _, tc := range []struct {
		k    keyKind
		want string
	}{{kRSA2048, "RSA_EMSA_PKCS1_SHA1"}, {kP256, "ECDSA_WITH_SHA2_256"}, {kP384, "ECDSA_WITH_SHA2_384"}} {
		t.Run(string(tc.k), func(t *testing.T) {
			root := newTestCA(t, "isle root", kP256, 0)
			lk, rk := testKey(t, tc.k, 0), testKey(t, tc.k, 1)
			lc, rc := issue(t, root, dn("gw-left"), lk, false), issue(t, root, dn("gw-right"), rk, false)
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			left = certConfig(left, []*x509.Certificate{lc}, lk, root.cert, CertIdentity(rc))
			right = certConfig(right, []*x509.Certificate{rc}, rk, root.cert, CertIdentity(lc))
			i, r, l := newPair(t, left, right)
			var method message.AuthMethod
			l.drop = func(toResponder bool, b []byte) bool {
				if h, err := message.ParseHeader(b); err == nil && h.Exchange == message.IKEAuth {
					if toResponder {
						r.peerHashes = nil // as if the initiator had not announced any
					} else if m, err := message.Parse(b); err == nil {
						if ps, err := i.in.Open(b, m); err == nil {
							method = find[*message.Auth](ps, nil).Method
						}
					}
				}
				return false
			}
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			errI, errR := l.run(t, i, r)
			if i.State() != StateEstablished || r.State() != StateEstablished {
				t.Fatalf("%v/%v: %v %v", i.State(), r.State(), errI, errR)
			}
			if method == message.AuthDigitalSignature || method == 0 {
				t.Errorf("responder used %v, want a classic method", method)
			}
			if got := i.PeerAuth(); got != tc.want {
				t.Errorf("scheme %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCertAuthFailures: each reason is named on the side that found it,
// and the other side learns of it from AUTHENTICATION_FAILED.
func TestCertAuthFailures(t *testing.T) {
	root := newTestCA(t, "isle root", kP256, 0)
	other := newTestCA(t, "other root", kP256, 2)
	lk, rk := testKey(t, kP256, 3), testKey(t, kEd25519, 0)
	lc := issue(t, root, dn("gw-left"), lk, false, "left.isle.test")
	rc := issue(t, root, dn("gw-right"), rk, false, "right.isle.test")
	foreign := issue(t, other, dn("gw-left"), lk, false, "left.isle.test")
	for _, tc := range []struct {
		name        string
		tweak       func(left, right *Config)
		after       func(i, r *IKESA) // after construction, bypassing validation
		wantErr     error             // on the side that checks
		want        string
		responderRe bool // the responder finds the fault (else the initiator)
	}{
		{name: "wrong CA", tweak: func(l, r *Config) { l.Certs = []*x509.Certificate{foreign} },
			wantErr: ErrUntrustedChain, want: "certificate signed by unknown authority", responderRe: true},
		{name: "responder wrong CA", tweak: func(l, r *Config) { l.CACerts = []*x509.Certificate{other.cert} },
			wantErr: ErrUntrustedChain, want: "unknown authority"},
		{name: "unexpected identity", tweak: func(l, r *Config) { r.RemoteID = FQDN("someone.else") },
			wantErr: ErrIdentityMismatch, want: "expected someone.else", responderRe: true},
		{name: "identity not in certificate", tweak: func(l, r *Config) { r.RemoteID = AnyID() },
			after:   func(i, r *IKESA) { i.cfg.LocalID = FQDN("right.isle.test") },
			wantErr: ErrIdentityMismatch, want: "neither the subject nor a subjectAltName", responderRe: true},
		{name: "SAN identity ok but key not the certificate's", tweak: func(l, r *Config) { r.RemoteID = FQDN("left.isle.test") },
			after:   func(i, r *IKESA) { i.cfg.LocalID = FQDN("left.isle.test"); i.cfg.Key = testKey(t, kP256, 4) },
			wantErr: ErrBadSignature, want: "does not verify", responderRe: true},
		{name: "psk where certificate required", tweak: func(l, r *Config) { l.Key, l.Certs, l.PSK = nil, nil, []byte("a secret") },
			wantErr: ErrUnsupportedAuth, want: "pre-shared key", responderRe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			left = certConfig(left, []*x509.Certificate{lc}, lk, root.cert, CertIdentity(rc))
			right = certConfig(right, []*x509.Certificate{rc}, rk, root.cert, CertIdentity(lc))
			if tc.name == "psk where certificate required" {
				right.PSK = []byte("a secret") // for our own AUTH, if it got that far
			}
			tc.tweak(&left, &right)
			if tc.name == "psk where certificate required" {
				left.LocalID = FQDN("gw-left")
				right.RemoteID = AnyID()
			}
			i, r, l := newPair(t, left, right)
			if tc.after != nil {
				tc.after(i, r)
			}
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			l.run(t, i, r)
			checker, other := i, r
			if tc.responderRe {
				checker, other = r, i
			}
			if checker.State() != StateFailed || !errors.Is(checker.Err(), tc.wantErr) || !errors.Is(checker.Err(), ErrAuthentication) ||
				!strings.Contains(checker.Err().Error(), tc.want) {
				t.Fatalf("checking side: %v %v, want %v containing %q", checker.State(), checker.Err(), tc.wantErr, tc.want)
			}
			t.Logf("checking side: %v", checker.Err())
			var ne *NotifyError
			if tc.responderRe {
				if other.State() != StateFailed || !errors.As(other.Err(), &ne) || ne.Type != message.AuthenticationFailed {
					t.Fatalf("initiator: %v %v, want AUTHENTICATION_FAILED", other.State(), other.Err())
				}
				t.Logf("other side: %v", other.Err())
			} else if other.State() != StateFailed || !errors.As(other.Err(), &ne) || ne.Type != message.AuthenticationFailed ||
				len(other.Children()) != 0 {
				// The responder learns it from the initiator's INFORMATIONAL.
				t.Fatalf("responder: %v %v, %d children; want AUTHENTICATION_FAILED", other.State(), other.Err(), len(other.Children()))
			} else {
				t.Logf("other side: %v", other.Err())
			}
		})
	}
}

func TestCertConfigValidation(t *testing.T) {
	root := newTestCA(t, "isle root", kP256, 0)
	k := testKey(t, kP256, 3)
	c := issue(t, root, dn("gw-left"), k, false, "left.isle.test", "192.0.2.1", "gw@isle.test")
	left, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	for _, tc := range []struct {
		id Identity
		ok bool
	}{
		{CertIdentity(c), true}, {FQDN("left.isle.test"), true}, {FQDN("LEFT.isle.test"), true},
		{Identity{Type: message.IDRFC822, Data: []byte("gw@isle.test")}, true},
		{Identity{Type: message.IDIPv4, Data: []byte{192, 0, 2, 1}}, true},
		{FQDN("right.isle.test"), false}, {Identity{Type: message.IDIPv4, Data: []byte{192, 0, 2, 2}}, false},
		{DNIdentity(issue(t, root, dn("gw-x"), k, false).RawSubject), false},
	} {
		cfg := certConfig(left, []*x509.Certificate{c}, k, root.cert, AnyID())
		cfg.LocalID = tc.id
		if err := cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("local ID %v: %v", tc.id, err)
		}
	}
	cfg := certConfig(left, []*x509.Certificate{c}, k, root.cert, AnyID())
	cfg.Certs = nil
	if cfg.validate() == nil {
		t.Error("key without certificate accepted")
	}
}

// TestCertAuthFragmented: a chain of RSA-4096 certificates makes IKE_AUTH
// longer than a fragment in both directions (RFC 7383).
func TestCertAuthFragmented(t *testing.T) {
	root := newTestCA(t, "isle root", kRSA4096, 0)
	im := root.intermediate(t, "isle intermediate", kRSA4096, 1)
	lk, rk := testKey(t, kRSA2048, 0), testKey(t, kP256, 5)
	lc := []*x509.Certificate{issue(t, im, dn("gw-left"), lk, false), im.cert}
	rc := []*x509.Certificate{issue(t, im, dn("gw-right"), rk, false), im.cert}
	left, right := pair(t, "aes256-sha256-modp2048", "aes256-sha256")
	left = certConfig(left, lc, lk, root.cert, CertIdentity(rc[0]))
	right = certConfig(right, rc, rk, root.cert, CertIdentity(lc[0]))
	left.Fragmentation, right.Fragmentation = true, true
	left.FragmentSize, right.FragmentSize = 576, 576
	i, r, l := newPair(t, left, right)
	frags := map[bool]int{}
	l.drop = func(toResponder bool, b []byte) bool {
		if h, err := message.ParseHeader(b); err == nil && h.NextPayload == message.PayloadSKF {
			frags[toResponder]++
		}
		return false
	}
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	errI, errR := l.run(t, i, r)
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("%v/%v: %v %v", i.State(), r.State(), errI, errR)
	}
	if frags[true] < 3 || frags[false] < 3 {
		t.Errorf("fragments: %d to the responder, %d to the initiator", frags[true], frags[false])
	}
	checkChildPair(t, i, r)
}

// FuzzPeerCertificate: whatever a peer puts in its ID and CERT payloads,
// checking it returns an error or nil, never panics.
func FuzzPeerCertificate(f *testing.F) {
	root := newTestCA(f, "isle root", kP256, 0)
	k := testKey(f, kP256, 3)
	c := issue(f, root, dn("gw-left"), k, false, "left.isle.test")
	f.Add(c.RawSubject, c.Raw, uint8(message.IDDerASN1DN))
	f.Add([]byte("left.isle.test"), c.Raw, uint8(message.IDFQDN))
	prf, err := keys.NewPRF(sa.PRFHMACSHA256)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, cert []byte, idType uint8) {
		dnString(id)
		peer := Identity{Type: message.IDType(idType), Data: id}
		_ = peer.String()
		peer.equal(CertIdentity(c))
		certHasIdentity(c, peer)
		s := &IKESA{cfg: Config{CACerts: []*x509.Certificate{root.cert}}, prf: prf,
			keys: &keys.IKESAKeys{SKpi: make([]byte, 32), SKpr: make([]byte, 32)}}
		err := s.verifyCert([]message.Payload{&message.Cert{Encoding: certX509Signature, Data: cert}}, peer,
			&message.ID{IDType: peer.Type, Data: id}, &message.Auth{Method: message.AuthDigitalSignature, Data: id})
		if err == nil {
			t.Fatal("accepted without a valid signature")
		}
	})
}
