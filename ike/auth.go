package ike

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// withoutKE drops key exchange methods from CHILD_SA proposals: the
// CHILD_SA of IKE_AUTH uses the IKE SA's key exchange, never its own
// (RFC 7296 §1.2), so a PFS group only matters when rekeying.
func withoutKE(ps []sa.Proposal) []sa.Proposal {
	out := make([]sa.Proposal, len(ps))
	for i, p := range ps {
		p.DH = nil
		out[i] = p
	}
	return out
}

func stripKE(p *message.SA) *message.SA {
	out := &message.SA{}
	for _, pr := range p.Proposals {
		q := pr
		q.Transforms = nil
		for _, t := range pr.Transforms {
			if t.Type != sa.TransformKE {
				q.Transforms = append(q.Transforms, t)
			}
		}
		out.Proposals = append(out.Proposals, q)
	}
	return out
}

func childKeySizes(st suite) (keys.IKESAKeySizes, error) {
	if st.proto == sa.ProtoAH {
		return keys.IKESAKeySizes{Integ: st.integ.KeySize()}, nil
	}
	return keys.KeySizes(st.enc.Alg, st.enc.KeyBits, st.integ)
}

func (s *IKESA) ownID() *message.ID {
	return &message.ID{Responder: !s.initiator, IDType: s.cfg.LocalID.Type, Data: s.cfg.LocalID.Data}
}

// lookupPSK finds the shared key between us and peer, when either side
// authenticates with one.
func (s *IKESA) lookupPSK(peer Identity) error {
	if s.cfg.signsWithCert() && s.cfg.wantsCert() {
		return nil
	}
	s.psk = s.cfg.PSK
	if s.cfg.PSKFor != nil {
		s.psk = s.cfg.PSKFor(s.cfg.LocalID, peer)
	}
	if len(s.psk) == 0 {
		return fmt.Errorf("%w: no pre-shared key for %v and %v", ErrAuthentication, s.cfg.LocalID, peer)
	}
	return nil
}

// verifyPeer checks the peer's identity and AUTH payload.
func (s *IKESA) verifyPeer(ps []message.Payload) error {
	peerIsResponder := s.initiator
	id := find(ps, func(p *message.ID) bool { return p.Responder == peerIsResponder })
	auth := find[*message.Auth](ps, nil)
	if id == nil || auth == nil {
		return fmt.Errorf("%w: no ID or AUTH payload", ErrAuthentication)
	}
	peer := Identity{Type: id.IDType, Data: append([]byte(nil), id.Data...)}
	if peer.IsAny() || (!s.cfg.RemoteID.IsAny() && !peer.equal(s.cfg.RemoteID)) {
		return fmt.Errorf("%w: peer is %v, expected %v", ErrIdentityMismatch, peer, s.cfg.RemoteID)
	}
	if !s.initiator { // the initiator chose its key before sending AUTH
		if err := s.lookupPSK(peer); err != nil {
			return err
		}
	}
	s.peerID = peer
	s.peerInitialContact = findNotify(ps, message.InitialContact) != nil
	if s.cfg.wantsCert() {
		return s.verifyCert(ps, peer, id, auth)
	}
	if auth.Method != message.AuthSharedKeyMIC {
		return fmt.Errorf("%w: %v used method %v, we expect %v", ErrUnsupportedAuth, peer, auth.Method, message.AuthSharedKeyMIC)
	}
	want := keys.PSKAuth(s.prf, s.psk, s.signedOctets(!s.initiator, id))
	if !hmac.Equal(auth.Data, want) {
		return fmt.Errorf("%w: AUTH of %v does not verify (pre-shared keys differ?)", ErrBadSignature, peer)
	}
	return nil
}

func (s *IKESA) sendAuthRequest() error {
	var err error
	if s.childSPI, err = s.allocChildSPI(); err != nil {
		return s.fail(err)
	}
	if err := s.lookupPSK(s.cfg.RemoteID); err != nil {
		return s.fail(err)
	}
	id := s.ownID()
	ps := []message.Payload{id}
	if s.cfg.InitialContact {
		ps = append(ps, &message.Notify{NotifyType: message.InitialContact})
	}
	auth, err := s.ownAuth(id)
	if err != nil {
		return s.fail(err)
	}
	ps = append(ps, auth[:len(auth)-1]...) // our CERT payloads
	if s.cfg.wantsCert() {
		ps = append(ps, s.cfg.certReq())
	}
	if !s.cfg.RemoteID.IsAny() { // name the responder we want (RFC 7296 §3.5)
		ps = append(ps, &message.ID{Responder: true, IDType: s.cfg.RemoteID.Type, Data: s.cfg.RemoteID.Data})
	}
	ps = append(ps, auth[len(auth)-1])
	cc := &s.cfg.Children[0]
	if cc.Mode == sa.ModeTransport {
		ps = append(ps, &message.Notify{NotifyType: message.UseTransportMode})
	}
	var spi [4]byte
	binary.BigEndian.PutUint32(spi[:], s.childSPI)
	ps = append(ps,
		proposalsToWire(withoutKE(cc.Proposals), spi[:]),
		tsToWire(cc.LocalTS, false),
		tsToWire(cc.RemoteTS, true),
	)
	out, err := s.seal(s.header(message.IKEAuth, false, 1), ps)
	if err != nil {
		return s.fail(err)
	}
	s.state = StateAuthSent
	s.nextRequestID = 1
	return s.sendRequest(out)
}

func (s *IKESA) handleAuthResponse(raw []byte, m *message.Message) error {
	ps, complete, err := s.open(raw, m)
	if err != nil {
		return fmt.Errorf("ike: drop: %w", err)
	}
	if !complete {
		return nil // more fragments to come
	}
	s.lastRequest = nil
	if findNotify(ps, message.AuthenticationFailed) != nil {
		return s.fail(fmt.Errorf("%w: the peer refused us as %v (its log says why)", &NotifyError{Type: message.AuthenticationFailed}, s.cfg.LocalID))
	}
	if err := s.verifyPeer(ps); err != nil {
		// Tell the responder, which holds an IKE SA it thinks is up
		// (RFC 7296 §2.21.2); no answer is awaited.
		if out, serr := s.seal(s.header(message.Informational, false, s.nextRequestID), []message.Payload{
			&message.Notify{NotifyType: message.AuthenticationFailed}}); serr == nil {
			s.transmit(out)
		}
		return s.fail(err)
	}
	s.state = StateEstablished
	// The IKE SA stands even if its first CHILD_SA was refused (§1.2).
	if n := firstError(ps); n != nil {
		s.childErr = &NotifyError{Type: n.NotifyType}
		if n.NotifyType == message.NoProposalChosen {
			cc := &s.cfg.Children[0]
			s.childErr = &ProposalError{What: "CHILD_SA " + cc.Name, Ours: withoutKE(cc.Proposals)}
		}
		return s.requestDone()
	}
	child, err := s.acceptChild(ps)
	if err != nil {
		s.childErr = err
	} else {
		s.child = child
		s.addChild(child, nil)
	}
	return s.requestDone() // CHILD_SAs asked for meanwhile
}

// acceptChild is the initiator's side of the first CHILD_SA: check the
// responder's choice and narrowing, then derive the keys.
func (s *IKESA) acceptChild(ps []message.Payload) (*ChildSA, error) {
	saP := find[*message.SA](ps, nil)
	tsi := find(ps, func(p *message.TrafficSelectors) bool { return !p.Responder })
	tsr := find(ps, func(p *message.TrafficSelectors) bool { return p.Responder })
	if saP == nil || tsi == nil || tsr == nil {
		return nil, errors.New("ike: IKE_AUTH response without SA or traffic selectors")
	}
	cc := &s.cfg.Children[0]
	st, chosen, err := checkAccepted(withoutKE(cc.Proposals), saP)
	if err != nil {
		return nil, fmt.Errorf("ike: CHILD_SA %s: %w", cc.Name, err)
	}
	if len(chosen.SPI) != 4 {
		return nil, fmt.Errorf("ike: CHILD_SA %s: responder SPI of %d bytes", cc.Name, len(chosen.SPI))
	}
	local, remote := tsFromWire(tsi), tsFromWire(tsr)
	if !within(local, cc.LocalTS) || !within(remote, cc.RemoteTS) {
		return nil, fmt.Errorf("ike: CHILD_SA %s: responder widened the traffic selectors", cc.Name)
	}
	mode := sa.ModeTunnel
	if cc.Mode == sa.ModeTransport && findNotify(ps, message.UseTransportMode) != nil {
		mode = sa.ModeTransport
	}
	return s.makeChild(cc.Name, st, mode, s.childSPI, binary.BigEndian.Uint32(chosen.SPI), local, remote, nil, s.ni, s.nr, s.initiator)
}

// makeChild derives a CHILD_SA's keys (RFC 7296 §2.17) from SK_d, the
// exchange's nonces and, with PFS, its new shared secret, and orients
// them: the initiator of the exchange sends with the first half.
func (s *IKESA) makeChild(name string, st suite, mode sa.Mode, ourSPI, peerSPI uint32, local, remote []policy.Selector,
	gir, ni, nr []byte, exchangeInitiator bool) (*ChildSA, error) {
	sizes, err := childKeySizes(st)
	if err != nil {
		return nil, err
	}
	k, err := keys.DeriveChildSA(s.prf, s.keys.SKd, gir, ni, nr, sizes)
	if err != nil {
		return nil, err
	}
	c := &ChildSA{
		Name: name, Protocol: st.proto, Mode: mode, Enc: st.enc, Integ: st.integ, ESN: st.esn == sa.WithESN, PFS: st.dh,
		InboundSPI: ourSPI, OutboundSPI: peerSPI, LocalTS: local, RemoteTS: remote,
	}
	if exchangeInitiator {
		c.OutboundEncKey, c.OutboundIntegKey = k.InitiatorEnc, k.InitiatorInteg
		c.InboundEncKey, c.InboundIntegKey = k.ResponderEnc, k.ResponderInteg
	} else {
		c.OutboundEncKey, c.OutboundIntegKey = k.ResponderEnc, k.ResponderInteg
		c.InboundEncKey, c.InboundIntegKey = k.InitiatorEnc, k.InitiatorInteg
	}
	return c, nil
}

func (s *IKESA) handleAuthRequest(raw []byte, m *message.Message) error {
	ps, complete, err := s.open(raw, m)
	if err != nil {
		return fmt.Errorf("ike: drop: %w", err)
	}
	if !complete {
		return nil // more fragments to come
	}
	h := s.header(message.IKEAuth, true, m.MessageID)
	if idi := find(ps, func(p *message.ID) bool { return !p.Responder }); idi != nil && s.choosePeer != nil {
		var idr *Identity
		if want := find(ps, func(p *message.ID) bool { return p.Responder }); want != nil {
			idr = &Identity{Type: want.IDType, Data: want.Data}
		}
		if err := s.choosePeer(Identity{Type: idi.IDType, Data: idi.Data}, idr); err != nil {
			out, serr := s.seal(h, []message.Payload{&message.Notify{NotifyType: message.AuthenticationFailed}})
			if serr == nil {
				s.sendResponse(out)
			}
			return s.fail(err)
		}
	}
	if err := s.verifyPeer(ps); err != nil {
		out, serr := s.seal(h, []message.Payload{&message.Notify{NotifyType: message.AuthenticationFailed}})
		if serr == nil {
			s.sendResponse(out)
		}
		return s.fail(err)
	}
	// A request may name the identity it wants us to be (IDr).
	if want := find(ps, func(p *message.ID) bool { return p.Responder }); want != nil &&
		!(Identity{Type: want.IDType, Data: want.Data}).equal(s.cfg.LocalID) {
		out, serr := s.seal(h, []message.Payload{&message.Notify{NotifyType: message.AuthenticationFailed}})
		if serr == nil {
			s.sendResponse(out)
		}
		return s.fail(fmt.Errorf("%w: peer wants to talk to %v, we are %v", ErrAuthentication, Identity{Type: want.IDType, Data: want.Data}, s.cfg.LocalID))
	}
	id := s.ownID()
	auth, err := s.ownAuth(id)
	if err != nil {
		out, serr := s.seal(h, []message.Payload{&message.Notify{NotifyType: message.AuthenticationFailed}})
		if serr == nil {
			s.sendResponse(out)
		}
		return s.fail(err)
	}
	resp := append([]message.Payload{id}, auth...)
	childPayloads, child, childErr := s.offerChild(ps)
	resp = append(resp, childPayloads...)
	out, err := s.seal(h, resp)
	if err != nil {
		return s.fail(err)
	}
	s.state = StateEstablished
	s.child, s.childErr = child, childErr
	if err := s.sendResponse(out); err != nil {
		return err
	}
	if child != nil {
		s.addChild(child, nil)
	}
	return nil
}

// offerChild is the responder's side of the first CHILD_SA: choose a
// proposal, narrow the selectors, derive the keys. On failure it returns
// the error notification to send instead (§1.2: the IKE SA still stands).
func (s *IKESA) offerChild(ps []message.Payload) ([]message.Payload, *ChildSA, error) {
	refuse := func(t message.NotifyType) ([]message.Payload, *ChildSA, error) {
		return []message.Payload{&message.Notify{NotifyType: t}}, nil, &NotifyError{Type: t, Sent: true}
	}
	saP := find[*message.SA](ps, nil)
	tsi := find(ps, func(p *message.TrafficSelectors) bool { return !p.Responder })
	tsr := find(ps, func(p *message.TrafficSelectors) bool { return p.Responder })
	if saP == nil || tsi == nil || tsr == nil {
		return refuse(message.InvalidSyntax)
	}
	cc, st, chosen, local, remote, err := s.chooseChild(saP, nil, tsFromWire(tsi), tsFromWire(tsr), true, "")
	if err != nil {
		var r *refusal
		if errors.As(err, &r) && r.n.NotifyType != message.NoProposalChosen {
			return refuse(r.n.NotifyType)
		}
		what, ours := s.childProposals("", true)
		return []message.Payload{&message.Notify{NotifyType: message.NoProposalChosen}}, nil, refusedProposal(what, ours, stripKE(saP))
	}
	mode := sa.ModeTunnel
	var out []message.Payload
	if findNotify(ps, message.UseTransportMode) != nil && cc.Mode == sa.ModeTransport {
		mode = sa.ModeTransport
		out = append(out, &message.Notify{NotifyType: message.UseTransportMode})
	}
	if s.childSPI, err = s.allocChildSPI(); err != nil {
		return refuse(message.TemporaryFailure)
	}
	child, err := s.makeChild(cc.Name, st, mode, s.childSPI, binary.BigEndian.Uint32(chosen.SPI), local, remote, nil, s.ni, s.nr, s.initiator)
	if err != nil {
		return refuse(message.NoProposalChosen)
	}
	var spi [4]byte
	binary.BigEndian.PutUint32(spi[:], s.childSPI)
	out = append(out, suiteToWire(st, chosen.Number, spi[:]), tsToWire(remote, false), tsToWire(local, true))
	return out, child, nil
}

// chooseChild picks the child configuration for the peer's request (RFC
// 7296 §2.9): the first, in our order, whose selectors meet the proposed
// ones and whose proposals match. In IKE_AUTH key exchange methods are
// left out; in CREATE_CHILD_SA the peer's KE payload takes part. only,
// when set, restricts the choice to that configuration (a rekey).
func (s *IKESA) chooseChild(theirs *message.SA, ke *message.KE, tsi, tsr []policy.Selector, inIKEAuth bool, only string) (
	cc *ChildConfig, st suite, chosen message.Proposal, local, remote []policy.Selector, err error) {
	var first *refusal
	tsMet := false
	// First pass: configurations that cover the proposed traffic whole;
	// second: any that meets it, narrowed. A request for one of several
	// children thus finds its own rather than the first that overlaps.
	// Within a pass the most specific configuration is tried first: one
	// whose selectors lie inside another's.
	inside := func(a, b *ChildConfig) bool { // a strictly inside b
		return within(a.LocalTS, b.LocalTS) && within(a.RemoteTS, b.RemoteTS) &&
			!(within(b.LocalTS, a.LocalTS) && within(b.RemoteTS, a.RemoteTS))
	}
	var order, rest []*ChildConfig
	for i := range s.cfg.Children {
		rest = append(rest, &s.cfg.Children[i])
	}
	for len(rest) > 0 {
		for i, c := range rest {
			if !slices.ContainsFunc(rest, func(d *ChildConfig) bool { return inside(d, c) }) {
				order = append(order, c)
				rest = append(rest[:i:i], rest[i+1:]...)
				break
			}
		}
	}
	for pass := 0; pass < 2; pass++ {
		for _, c := range order {
			if only != "" && c.Name != only {
				continue
			}
			remote, local = narrow(tsi, c.RemoteTS), narrow(tsr, c.LocalTS)
			if len(remote) == 0 || len(local) == 0 {
				continue
			}
			if pass == 0 && !(within(tsi, remote) && within(tsr, local)) {
				continue
			}
			tsMet = true
			if inIKEAuth {
				st, chosen, err = selectProposal(withoutKE(c.Proposals), stripKE(theirs))
				if err == nil && len(chosen.SPI) == 4 {
					return c, st, chosen, local, remote, nil
				}
				continue
			}
			st, chosen, err = selectChildProposal(c.Proposals, theirs, ke)
			if err == nil {
				return c, st, chosen, local, remote, nil
			}
			var r *refusal
			if first == nil && errors.As(err, &r) {
				first = r
			}
		}
	}
	switch {
	case !tsMet:
		return nil, suite{}, message.Proposal{}, nil, nil, &refusal{&message.Notify{NotifyType: message.TSUnacceptable}}
	case first != nil:
		return nil, suite{}, message.Proposal{}, nil, nil, first
	}
	return nil, suite{}, message.Proposal{}, nil, nil, &refusal{&message.Notify{NotifyType: message.NoProposalChosen}}
}

// authData is the shared-key AUTH payload data of one side (RFC 7296
// §2.15): prf(prf(PSK, "Key Pad for IKEv2"), signed octets).
func (s *IKESA) authData(ofInitiator bool, id *message.ID) []byte {
	return keys.PSKAuth(s.prf, s.psk, s.signedOctets(ofInitiator, id))
}
