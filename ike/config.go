// Package ike is the IKEv2 negotiator (RFC 7296): one IKESA value per IKE
// SA runs its exchanges (IKE_SA_INIT, IKE_AUTH with the first CHILD_SA)
// over a send function it is handed, so it does no I/O of its own and two
// negotiators can talk over an in-memory pipe in tests. The wire codec is
// ike/message, the key schedule ike/keys, key exchange ike/dh and message
// protection ike/sk.
package ike

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// Identity is an IKE identity (RFC 7296 §3.5) as carried in IDi/IDr.
type Identity struct {
	Type message.IDType
	Data []byte
}

// FQDN is an ID_FQDN identity, strongSwan's default for a plain name.
func FQDN(name string) Identity { return Identity{Type: message.IDFQDN, Data: []byte(name)} }

// AddrIdentity is an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func AddrIdentity(a netip.Addr) Identity {
	if a.Is4() {
		return Identity{Type: message.IDIPv4, Data: a.AsSlice()}
	}
	return Identity{Type: message.IDIPv6, Data: a.AsSlice()}
}

// AnyID is the wildcard remote identity, strongSwan's %any.
func AnyID() Identity { return Identity{} }

// IsAny reports whether id is the wildcard.
func (id Identity) IsAny() bool { return id.Type == 0 }

func (id Identity) String() string {
	if id.IsAny() {
		return "%any"
	}
	switch id.Type {
	case message.IDIPv4, message.IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case message.IDFQDN, message.IDRFC822:
		return string(id.Data)
	case message.IDDerASN1DN:
		if dn, ok := dnString(id.Data); ok {
			return dn
		}
	}
	return fmt.Sprintf("%v:%x", id.Type, id.Data)
}

func (id Identity) equal(o Identity) bool {
	if id.Type == message.IDDerASN1DN && o.Type == message.IDDerASN1DN {
		// The same name may be encoded with other string types.
		a, ok1 := dnString(id.Data)
		b, ok2 := dnString(o.Data)
		if ok1 && ok2 {
			return a == b
		}
	}
	return id.Type == o.Type && string(id.Data) == string(o.Data)
}

// Config is what one side of an IKE SA needs: who it is, whom it expects,
// the pre-shared key, what it proposes and accepts, and the traffic its
// CHILD_SA carries. The gateway builds it from the configuration file.
type Config struct {
	LocalID Identity
	// RemoteID is the identity the peer must prove; the zero Identity
	// (AnyID, "%any") accepts any identity that authenticates.
	RemoteID Identity
	// PSK is the shared key for both directions (AUTH method 2). PSKFor,
	// when set, is asked instead with the two identities, as strongSwan
	// looks up its secrets; nil means no key for them.
	PSK    []byte
	PSKFor func(local, remote Identity) []byte

	// Certificate authentication (RFC 7427 signatures). With Key set we
	// sign our AUTH with it and send Certs (ours first, then any
	// intermediates) as CERT payloads; LocalID must be the certificate's
	// subject DN or one of its subjectAltNames. With CACerts set the peer
	// must authenticate with a certificate chaining to one of them (its
	// intermediates taken from its CERT payloads) that names its identity.
	// Either side left unset uses the PSK.
	Certs   []*x509.Certificate
	Key     crypto.Signer
	CACerts []*x509.Certificate
	// RSAPSS signs with RSASSA-PSS instead of PKCS#1 v1.5 when Key is an
	// RSA key (strongSwan's rsa_pss = yes).
	RSAPSS bool
	// Now is the time certificates are checked at; nil means time.Now.
	Now func() time.Time

	IKEProposals []sa.Proposal // Protocol ProtoIKE, in order of preference

	// Children are the CHILD_SAs this IKE SA may carry. As initiator the
	// first is negotiated with IKE_AUTH and others with CreateChild; as
	// responder the first whose selectors and proposals fit a request is
	// chosen (RFC 7296 §2.9).
	Children []ChildConfig

	// Local and Remote are the outer addresses, for NAT detection (RFC
	// 7296 §2.23). Either may be zero when unknown.
	Local, Remote netip.AddrPort
	// ForceEncap makes NAT detection report a NAT, so that the peer and we
	// use UDP encapsulation even without one (strongSwan's encap = yes).
	ForceEncap bool

	// InitialContact sends INITIAL_CONTACT in IKE_AUTH: we hold no other
	// IKE SA with this peer, so it may drop any it still has (RFC 7296
	// §3.10.1), as after a restart.
	InitialContact bool

	// Fragmentation enables IKE fragmentation (RFC 7383) when the peer
	// supports it; messages longer than FragmentSize are split.
	Fragmentation bool
	FragmentSize  int // 0 means 1280

	// Rand is the source of SPIs, nonces and key exchange secrets; nil
	// means crypto/rand.
	Rand io.Reader
	// AllocSPI returns an unused inbound SPI for a CHILD_SA; nil means a
	// random one from Rand. The gateway hands in the SAD's allocator.
	AllocSPI func() (uint32, error)

	// OnChild, when set, is told about every CHILD_SA that comes up or
	// goes down; it runs inside Handle and must not call back into the
	// IKE SA.
	OnChild func(ChildEvent)
	// OnRekey, when set, is told when an IKE SA is replaced by a rekey;
	// the new one has other SPIs, so datagrams must be routed to it. The
	// CHILD_SAs move over without ChildDown/ChildUp events.
	OnRekey func(old, new *IKESA)
	// OnRedundant, when set, is told about the IKE SA of a rekey
	// collision we lost (RFC 7296 §2.8.2): it has sent its Delete, which
	// must be retransmitted until answered, like any request.
	OnRedundant func(*IKESA)
}

// ChildConfig is one CHILD_SA of a connection.
type ChildConfig struct {
	Name              string
	Proposals         []sa.Proposal     // Protocol ProtoESP or ProtoAH; a DH group means PFS when rekeying
	Mode              sa.Mode           // tunnel, or transport (USE_TRANSPORT_MODE)
	LocalTS, RemoteTS []policy.Selector // our side and the peer's side
}

// NonceSize is the size of the nonces we send: at least half the key size
// of the negotiated PRF (RFC 7296 §2.10) for every PRF we support.
const NonceSize = 32

func (c *Config) validate() error {
	if len(c.PSK) == 0 && c.PSKFor == nil && !(c.signsWithCert() && c.wantsCert()) {
		return errors.New("ike: no pre-shared key")
	}
	if c.Key != nil {
		if len(c.Certs) == 0 {
			return errors.New("ike: a private key without its certificate")
		}
		if !certHasIdentity(c.Certs[0], c.LocalID) {
			return fmt.Errorf("ike: local identity %v is neither the subject nor a subjectAltName of our certificate", c.LocalID)
		}
	}
	if len(c.LocalID.Data) == 0 {
		return errors.New("ike: a local identity is required")
	}
	if !c.RemoteID.IsAny() && len(c.RemoteID.Data) == 0 {
		return errors.New("ike: remote identity without data")
	}
	if len(c.IKEProposals) == 0 {
		return errors.New("ike: IKE proposals are required")
	}
	if len(c.Children) == 0 {
		return errors.New("ike: at least one CHILD_SA configuration is required")
	}
	for _, p := range c.IKEProposals {
		if p.Protocol != sa.ProtoIKE {
			return fmt.Errorf("ike: IKE proposal for %v", p.Protocol)
		}
	}
	for _, ch := range c.Children {
		if len(ch.Proposals) == 0 {
			return fmt.Errorf("ike: CHILD_SA %q: no proposals", ch.Name)
		}
		for _, p := range ch.Proposals {
			if p.Protocol != sa.ProtoESP && p.Protocol != sa.ProtoAH {
				return fmt.Errorf("ike: CHILD_SA %q: proposal for %v", ch.Name, p.Protocol)
			}
		}
		if len(ch.LocalTS) == 0 || len(ch.RemoteTS) == 0 {
			return fmt.Errorf("ike: CHILD_SA %q: local and remote traffic selectors are required", ch.Name)
		}
	}
	return nil
}
