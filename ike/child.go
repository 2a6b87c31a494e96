package ike

import (
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// ChildSA is a negotiated CHILD_SA pair with its keys, ready to be
// installed in the SAD (sa) and the SPD (policy).
type ChildSA struct {
	Name     string      // of its ChildConfig
	Protocol sa.Protocol // ESP or AH
	Mode     sa.Mode
	Enc      sa.Encr     // zero for AH
	Integ    sa.IntegAlg // IntegNone with AEAD
	ESN      bool
	PFS      sa.DHGroup // key exchange of the CREATE_CHILD_SA that made it; DHNone otherwise

	InboundSPI, OutboundSPI uint32 // we receive with InboundSPI, which we chose

	// Keys as sa.Config takes them: the encryption key followed by the salt
	// for AEAD, then the integrity key.
	InboundEncKey, InboundIntegKey   []byte
	OutboundEncKey, OutboundIntegKey []byte

	LocalTS, RemoteTS []policy.Selector // after narrowing

	replaced bool // rekeyed (by either peer): not to be rekeyed again
	deleting bool // our Delete for it is out
}

// SAConfigs returns the two sa.Config values of the pair. The caller adds
// what the negotiator does not decide: UDP encapsulation and outer
// addresses, replay window, lifetimes and notifications.
func (c *ChildSA) SAConfigs() (in, out sa.Config) {
	base := sa.Config{
		Protocol: c.Protocol, Mode: c.Mode,
		Enc: c.Enc.Alg, EncKeyBits: c.Enc.KeyBits, Integ: c.Integ, ESN: c.ESN,
	}
	if c.Protocol == sa.ProtoAH {
		base.Enc, base.EncKeyBits = 0, 0
	}
	in, out = base, base
	in.SPI, in.Inbound, in.EncKey, in.IntegKey = c.InboundSPI, true, c.InboundEncKey, c.InboundIntegKey
	out.SPI, out.EncKey, out.IntegKey = c.OutboundSPI, c.OutboundEncKey, c.OutboundIntegKey
	return in, out
}

// Clear overwrites the keys.
func (c *ChildSA) Clear() {
	for _, k := range [][]byte{c.InboundEncKey, c.InboundIntegKey, c.OutboundEncKey, c.OutboundIntegKey} {
		clear(k)
	}
}

// ChildEventKind says what happened to a CHILD_SA.
type ChildEventKind int

const (
	ChildUp   ChildEventKind = iota // negotiated: install it
	ChildDown                       // deleted: remove it
)

func (k ChildEventKind) String() string {
	if k == ChildUp {
		return "UP"
	}
	return "DOWN"
}

// ChildEvent is reported through Config.OnChild. A rekeyed CHILD_SA comes
// up with Replaces set to its predecessor, which stays installed until
// its own ChildDown (make-before-break, RFC 7296 §2.8).
type ChildEvent struct {
	Kind     ChildEventKind
	Child    *ChildSA
	Replaces *ChildSA
	// PeerClosed marks a ChildDown the peer caused by deleting the
	// CHILD_SA, or the IKE SA that carried it (its DELETE), rather than
	// our own deletion or a rekey replacing it: what strongSwan's
	// close_action reacts to.
	PeerClosed bool
}
