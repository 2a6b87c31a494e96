// Command gencerts writes the test PKI used by testdata/config: a CA and
// three gateway certificates whose keys cover the formats isle reads
// (SEC1 ECDSA, PKCS#8 Ed25519, PKCS#1 RSA). Run it from the repository
// root: go run ./testdata/config/gencerts
package main

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
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const dir = "testdata/config/certs"

func main() {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"CH"}, Organization: []string{"Acme"}, CommonName: "Acme Test CA"},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	check(err)
	ca, err := x509.ParseCertificate(caDER)
	check(err)
	writePEM("ca.pem", "CERTIFICATE", caDER)

	// gw-a: ECDSA P-256, key in SEC1 ("EC PRIVATE KEY").
	a, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	sec1, err := x509.MarshalECPrivateKey(a)
	check(err)
	issue("gw-a", 2, a, ca, caKey, []string{"gw-a.example.net"}, net.ParseIP("198.18.0.1"))
	writePEM("gw-a.key", "EC PRIVATE KEY", sec1)

	// gw-b: Ed25519, key in PKCS#8 ("PRIVATE KEY").
	_, b, err := ed25519.GenerateKey(rand.Reader)
	check(err)
	p8, err := x509.MarshalPKCS8PrivateKey(b)
	check(err)
	issue("gw-b", 3, b, ca, caKey, []string{"gw-b.example.net"}, net.ParseIP("198.18.0.2"))
	writePEM("gw-b.key", "PRIVATE KEY", p8)

	// gw-c: RSA 2048, key in PKCS#1 ("RSA PRIVATE KEY").
	c, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	issue("gw-c", 4, c, ca, caKey, []string{"gw-c.example.net"}, nil)
	writePEM("gw-c.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(c))
}

func issue(name string, serial int64, key crypto.Signer, ca *x509.Certificate, caKey crypto.Signer, dns []string, ip net.IP) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{Country: []string{"CH"}, Organization: []string{"Acme"}, CommonName: name},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     dns,
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	check(err)
	writePEM(name+".pem", "CERTIFICATE", der)
}

func writePEM(name, typ string, der []byte) {
	check(os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
