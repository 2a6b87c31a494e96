package interop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// A test PKI made at test time: roots, intermediates and gateway
// certificates with ECDSA P-256, RSA-2048 or Ed25519 keys.

type keyKind int

const (
	keyECDSA keyKind = iota
	keyRSA
	keyEd25519
)

func newKey(t *testing.T, k keyKind) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch k {
	case keyECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case keyRSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case keyEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func subject(cn string) pkix.Name {
	return pkix.Name{Country: []string{"CH"}, Organization: []string{"isle interop"}, CommonName: cn}
}

type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
	// chain is this authority's certificate and those above it up to,
	// but not including, the root: what a gateway sends with its own.
	chain []*x509.Certificate
}

func makeCert(t *testing.T, tmpl *x509.Certificate, parent *authority, pub crypto.PublicKey, selfKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	issuer, signer := tmpl, selfKey
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newAuthority makes a root (parent nil) or an intermediate CA.
func newAuthority(t *testing.T, cn string, k keyKind, parent *authority) *authority {
	t.Helper()
	key := newKey(t, k)
	tmpl := &x509.Certificate{
		Subject:               subject(cn),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	a := &authority{cert: makeCert(t, tmpl, parent, key.Public(), key), key: key}
	if parent != nil {
		a.chain = append([]*x509.Certificate{a.cert}, parent.chain...)
	}
	return a
}

// credential is a gateway's certificate, the intermediates it sends with
// it, and its key.
type credential struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.Signer
}

// issue makes a gateway certificate for cn, which is also its DNS
// subjectAltName (so an FQDN identity matches it too).
func (a *authority) issue(t *testing.T, cn string, k keyKind) credential {
	t.Helper()
	key := newKey(t, k)
	tmpl := &x509.Certificate{Subject: subject(cn), KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: []string{cn}}
	return credential{cert: makeCert(t, tmpl, a, key.Public(), nil), chain: a.chain, key: key}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
