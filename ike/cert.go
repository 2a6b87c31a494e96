package ike

import (
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/ike/sig"
)

// Certificate authentication (RFC 7296 §2.15, §3.6, §3.7; RFC 7427): we
// sign with Config.Key and send Config.Certs as CERT payloads; the peer
// must send a certificate chain to one of Config.CACerts whose end
// entity names the identity it claims and whose key verifies its AUTH.

// certX509Signature is the CERT and CERTREQ encoding "X.509 Certificate -
// Signature" (RFC 7296 §3.6).
const certX509Signature = 4

// Why a peer's authentication failed; each wraps ErrAuthentication and
// is wrapped in turn with the details, so that the log says why.
var (
	ErrUntrustedChain   = fmt.Errorf("%w: untrusted certificate chain", ErrAuthentication)
	ErrIdentityMismatch = fmt.Errorf("%w: identity mismatch", ErrAuthentication)
	ErrBadSignature     = fmt.Errorf("%w: bad signature", ErrAuthentication)
	ErrUnsupportedAuth  = fmt.Errorf("%w: unsupported authentication method", ErrAuthentication)
)

// DNIdentity is an ID_DER_ASN1_DN identity from a DER distinguished
// name, such as a certificate's RawSubject.
func DNIdentity(der []byte) Identity {
	return Identity{Type: message.IDDerASN1DN, Data: slices.Clone(der)}
}

// CertIdentity is the subject DN of a certificate, strongSwan's default
// identity for a gateway with a certificate.
func CertIdentity(c *x509.Certificate) Identity { return DNIdentity(c.RawSubject) }

// rdnNames are the attribute names strongSwan writes in identities.
var rdnNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.5": "SN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
	"2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "postalCode",
	"1.2.840.113549.1.9.1": "E", "0.9.2342.19200300.100.1.25": "DC",
}

// dnString writes a DER DN as strongSwan does ("C=CH, O=isle, CN=gw"):
// RDNs in encoded order, joined by ", ". Two encodings of the same name
// (PrintableString or UTF8String) give the same text, so DNs are
// compared by it.
func dnString(der []byte) (string, bool) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdns); err != nil || len(rest) != 0 {
		return "", false
	}
	var parts []string
	for _, rdn := range rdns {
		for _, atv := range rdn {
			key, ok := rdnNames[atv.Type.String()]
			if !ok {
				key = atv.Type.String()
			}
			parts = append(parts, fmt.Sprintf("%s=%v", key, atv.Value))
		}
	}
	return strings.Join(parts, ", "), true
}

// certHasIdentity reports whether a certificate names id: as its subject
// DN, or among its subjectAltNames (DNS, e-mail, IP address).
func certHasIdentity(c *x509.Certificate, id Identity) bool {
	switch id.Type {
	case message.IDDerASN1DN:
		a, ok1 := dnString(id.Data)
		b, ok2 := dnString(c.RawSubject)
		return ok1 && ok2 && a == b
	case message.IDFQDN:
		return slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, string(id.Data)) })
	case message.IDRFC822:
		return slices.ContainsFunc(c.EmailAddresses, func(n string) bool { return strings.EqualFold(n, string(id.Data)) })
	case message.IDIPv4, message.IDIPv6:
		return slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IP(id.Data)) })
	}
	return false
}

// signsWithCert: we authenticate with a signature rather than a PSK.
func (c *Config) signsWithCert() bool { return c.Key != nil }

// wantsCert: the peer must authenticate with a certificate.
func (c *Config) wantsCert() bool { return len(c.CACerts) > 0 }

func (c *Config) usesCerts() bool { return c.signsWithCert() || c.wantsCert() }

// certReq is the CERTREQ payload naming our trust anchors by the SHA-1
// hash of their SubjectPublicKeyInfo (RFC 7296 §3.7).
func (c *Config) certReq() *message.CertReq {
	var data []byte
	for _, ca := range c.CACerts {
		h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		data = append(data, h[:]...)
	}
	return &message.CertReq{Encoding: certX509Signature, Data: data}
}

// hashAlgorithmsNotify announces the hashes we verify RFC 7427
// signatures with (RFC 7427 §4).
func hashAlgorithmsNotify() *message.Notify {
	return &message.Notify{NotifyType: message.SignatureHashAlgorithms, Data: sig.MarshalHashes(sig.Supported)}
}

// notePeerHashes records the peer's SIGNATURE_HASH_ALGORITHMS from its
// IKE_SA_INIT message; without one we sign with the classic methods.
func (s *IKESA) notePeerHashes(ps []message.Payload) {
	if n := findNotify(ps, message.SignatureHashAlgorithms); n != nil {
		s.peerHashes = sig.ParseHashes(n.Data)
		if s.peerHashes == nil {
			s.peerHashes = []sig.Hash{} // announced, but empty: not nil
		}
	}
}

// signedOctets is what one side's AUTH payload covers (RFC 7296 §2.15):
// the initiator signs its IKE_SA_INIT request with Nr and SK_pi, the
// responder its response with Ni and SK_pr.
func (s *IKESA) signedOctets(ofInitiator bool, id *message.ID) []byte {
	first, nonce, skp := s.initReq, s.nr, s.keys.SKpi
	if !ofInitiator {
		first, nonce, skp = s.initResp, s.ni, s.keys.SKpr
	}
	return keys.SignedOctets(s.prf, first, nonce, skp, id.Body())
}

// ownAuth returns our CERT payloads (when we sign) and AUTH payload.
func (s *IKESA) ownAuth(id *message.ID) ([]message.Payload, error) {
	octets := s.signedOctets(s.initiator, id)
	if !s.cfg.signsWithCert() {
		return []message.Payload{&message.Auth{Method: message.AuthSharedKeyMIC, Data: keys.PSKAuth(s.prf, s.psk, octets)}}, nil
	}
	method, scheme, err := sig.Choose(s.cfg.Key.Public(), s.peerHashes, s.cfg.RSAPSS)
	if err != nil {
		return nil, fmt.Errorf("ike: cannot sign for this peer: %w", err)
	}
	data, err := sig.Sign(s.cfg.Key, method, scheme, octets, s.rand)
	if err != nil {
		return nil, fmt.Errorf("ike: %w", err)
	}
	var ps []message.Payload
	for _, c := range s.cfg.Certs {
		ps = append(ps, &message.Cert{Encoding: certX509Signature, Data: c.Raw})
	}
	return append(ps, &message.Auth{Method: method, Data: data}), nil
}

// verifyCert checks the peer's certificate chain against our trust
// anchors, its identity against the end-entity certificate, and its AUTH
// signature with that certificate's key.
func (s *IKESA) verifyCert(ps []message.Payload, peer Identity, id *message.ID, auth *message.Auth) error {
	if auth.Method == message.AuthSharedKeyMIC {
		return fmt.Errorf("%w: %v used a pre-shared key, we require a certificate signature", ErrUnsupportedAuth, peer)
	}
	var chain []*x509.Certificate
	for _, p := range ps {
		c, ok := p.(*message.Cert)
		if !ok {
			continue
		}
		if c.Encoding != certX509Signature {
			return fmt.Errorf("%w: %v sent a certificate of encoding %d, we take X.509 (4) only", ErrUntrustedChain, peer, c.Encoding)
		}
		cert, err := x509.ParseCertificate(c.Data)
		if err != nil {
			return fmt.Errorf("%w: %v sent an unparsable certificate: %v", ErrUntrustedChain, peer, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return fmt.Errorf("%w: %v sent no certificate", ErrUntrustedChain, peer)
	}
	leaf := chain[0] // the first CERT holds the key of AUTH (RFC 7296 §3.6)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, ca := range s.cfg.CACerts {
		roots.AddCert(ca)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	now := time.Now()
	if s.cfg.Now != nil {
		now = s.cfg.Now()
	}
	subject, _ := dnString(leaf.RawSubject)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: certificate %q of %v: %v", ErrUntrustedChain, subject, peer, err)
	}
	if !certHasIdentity(leaf, peer) {
		return fmt.Errorf("%w: %v is neither the subject nor a subjectAltName of its certificate %q", ErrIdentityMismatch, peer, subject)
	}
	scheme, err := sig.Verify(leaf.PublicKey, auth.Method, auth.Data, s.signedOctets(!s.initiator, id))
	switch {
	case errors.Is(err, sig.ErrUnsupported):
		return fmt.Errorf("%w: %v: %v", ErrUnsupportedAuth, peer, err)
	case err != nil:
		return fmt.Errorf("%w: AUTH of %v with certificate %q: %v", ErrBadSignature, peer, subject, err)
	}
	s.peerScheme = scheme.String()
	return nil
}
