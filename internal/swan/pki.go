package swan

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
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// A throwaway certificate authority for pubkey interop tests, so that
// neither strongSwan's pki tool nor openssl is needed: one CA, and
// certificates for gateways named by a distinguished name and
// subjectAltNames (FQDNs, e-mail, addresses), with ECDSA P-256, RSA or
// Ed25519 keys.

// KeyType chooses a certificate's key algorithm.
type KeyType int

const (
	ECDSAP256 KeyType = iota
	RSA2048
	Ed25519
)

// CA signs test certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// Credential is a certificate with its private key, both PEM (the key as
// PKCS#8).
type Credential struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

func newKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key type %d", kt)
}

// NewCA makes a self-signed ECDSA P-256 CA with the given common name.
func NewCA(commonName string) (*CA, error) {
	key, err := newKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"CH"}, Organization: []string{"isle test"}, CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Issue makes a certificate for subject, with each of sans as a
// subjectAltName: an IP address, an e-mail ("user@host") or a DNS name.
func (ca *CA) Issue(subject pkix.Name, kt KeyType, sans ...string) (*Credential, error) {
	key, err := newKey(kt)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing %s: %w", subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Credential{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

// Files lays a credential and its CA out as Options.Files expects, under
// the names swanctl --load-all picks up by itself; it returns them with the
// certificate's file name, for Auth.Certs.
func (ca *CA) Files(name string, c *Credential) (map[string][]byte, string) {
	return map[string][]byte{
		"x509/" + name + ".pem":    c.CertPEM,
		"private/" + name + ".pem": c.KeyPEM,
		"x509ca/ca.pem":            ca.CertPEM,
	}, name + ".pem"
}

// rdnNames are the attribute names strongSwan prints in identities.
var rdnNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.5": "SN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
	"2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "postalCode",
}

// IdentityDN writes a certificate subject the way strongSwan writes and
// matches DN identities: RDNs in certificate order, joined by ", "
// ("C=CH, O=isle test, CN=gw-left"). Go's Name.String is RFC 2253 instead:
// reversed and unspaced, which strongSwan does not match.
func IdentityDN(name pkix.Name) string {
	var parts []string
	for _, rdn := range name.ToRDNSequence() {
		for _, atv := range rdn {
			key, ok := rdnNames[atv.Type.String()]
			if !ok {
				key = atv.Type.String()
			}
			parts = append(parts, fmt.Sprintf("%s=%v", key, atv.Value))
		}
	}
	return strings.Join(parts, ", ")
}
