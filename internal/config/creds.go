package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// readErr shortens file errors to what an administrator acts on.
func readErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such file")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("permission denied")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadCerts reads every CERTIFICATE block of a PEM file, in order.
func loadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readErr(err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New(`no "-----BEGIN CERTIFICATE-----" block: expected a PEM certificate`)
	}
	return certs, nil
}

// loadKey reads a PEM private key: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA
// PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"); RSA, ECDSA or Ed25519.
func loadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readErr(err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block: expected PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)")
		}
		if _, encrypted := b.Headers["DEK-Info"]; encrypted || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the key is encrypted with a passphrase: isle needs it unencrypted (protect it with file permissions)")
		}
		var key any
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue // EC PARAMETERS and the like
		}
		if err != nil {
			return nil, fmt.Errorf("%s block does not parse: %v", b.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported key type %T: expected RSA, ECDSA or Ed25519", key)
	}
}

// keyMatchesCert reports whether key is the private half of cert's key.
func keyMatchesCert(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// certHasIdentity reports whether id is the certificate's subject or one
// of its subjectAltNames, which is what a peer checks.
func certHasIdentity(cert *x509.Certificate, id Identity) bool {
	switch id.Kind {
	case IDDN:
		subj, err := IdentityFromSubject(cert.RawSubject)
		return err == nil && id.Matches(subj)
	case IDFQDN:
		for _, n := range cert.DNSNames {
			if strings.EqualFold(n, id.Value) {
				return true
			}
		}
	case IDEmail:
		for _, n := range cert.EmailAddresses {
			if strings.EqualFold(n, id.Value) {
				return true
			}
		}
	case IDIPv4, IDIPv6:
		for _, ip := range cert.IPAddresses {
			if a, ok := addrFromIP(ip); ok && a == id.Addr {
				return true
			}
		}
	}
	return false
}

// secretFile reads a pre-shared key file, refusing one that others on the
// machine can read or write.
func secretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, readErr(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("is accessible by group or others (mode %04o): run chmod 600 on it", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readErr(err)
	}
	return []byte(strings.TrimRight(string(data), "\r\n")), nil
}

// decodeSecret reads strongSwan's secret notation: "0x" hex, "0s" base64,
// anything else is the key itself.
func decodeSecret(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "0x"):
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, errors.New("starts with 0x but is not hex")
		}
		return b, nil
	case strings.HasPrefix(s, "0s"):
		b, err := base64.StdEncoding.DecodeString(s[2:])
		if err != nil {
			return nil, errors.New("starts with 0s but is not base64")
		}
		return b, nil
	}
	return []byte(s), nil
}

func addrFromIP(ip []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
