package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/isle-ipsec/isle/ike/dh"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// RekeyChild replaces c with a new CHILD_SA negotiated in a
// CREATE_CHILD_SA exchange (RFC 7296 §1.3.3, §2.8), with a fresh key
// exchange when the CHILD_SA proposals name a group (PFS). The new
// CHILD_SA comes up with Replaces = c; c is then deleted. The IKE SA is
// unaffected if the rekey fails.
func (s *IKESA) RekeyChild(c *ChildSA) error {
	return s.createChild(c.Name, c, sa.DHNone)
}

// CreateChild negotiates an additional CHILD_SA from the configuration
// named name (RFC 7296 §1.3.1). Requested before the IKE SA is
// established, it runs right after IKE_AUTH.
func (s *IKESA) CreateChild(name string) error {
	if s.childConfig(name) == nil {
		return fmt.Errorf("ike: no CHILD_SA configuration %q", name)
	}
	return s.createChild(name, nil, sa.DHNone)
}

func (s *IKESA) createChild(name string, old *ChildSA, group sa.DHGroup) error {
	return s.startRequest(message.CreateChildSA, func() ([]message.Payload, func([]message.Payload) error, error) {
		if old != nil && !slices.Contains(s.children, old) {
			return nil, nil, errors.New("ike: rekey of a CHILD_SA that is gone")
		}
		if old != nil && (old.replaced || old.deleting) {
			return nil, nil, fmt.Errorf("ike: CHILD_SA %s %08x is already rekeyed or being deleted", old.Name, old.InboundSPI)
		}
		cc := s.childConfig(name)
		if cc == nil {
			return nil, nil, fmt.Errorf("ike: CHILD_SA %s is no longer configured", name)
		}
		spi, err := s.allocChildSPI()
		if err != nil {
			return nil, nil, err
		}
		ni, err := s.random(NonceSize)
		if err != nil {
			return nil, nil, err
		}
		props := cc.Proposals
		if group == sa.DHNone && len(props[0].DH) > 0 {
			group = props[0].DH[0]
		}
		var key *dh.PrivateKey
		if group != sa.DHNone {
			if key, err = dh.GenerateKey(group, s.rand); err != nil {
				return nil, nil, err
			}
		}
		localTS, remoteTS, mode := cc.LocalTS, cc.RemoteTS, cc.Mode
		var ps []message.Payload
		if old != nil {
			localTS, remoteTS, mode = old.LocalTS, old.RemoteTS, old.Mode
			ps = append(ps, &message.Notify{Protocol: message.ProtocolFromSA(old.Protocol),
				SPI: binary.BigEndian.AppendUint32(nil, old.InboundSPI), NotifyType: message.RekeySA})
		}
		if mode == sa.ModeTransport {
			ps = append(ps, &message.Notify{NotifyType: message.UseTransportMode})
		}
		ps = append(ps, proposalsToWire(props, binary.BigEndian.AppendUint32(nil, spi)), &message.Nonce{Data: ni})
		if key != nil {
			ps = append(ps, &message.KE{Group: key.Group(), Data: key.PublicKey()})
		}
		ps = append(ps, tsToWire(localTS, false), tsToWire(remoteTS, true))
		what := "creation of CHILD_SA " + name
		var rk *childRekey
		if old != nil {
			what = fmt.Sprintf("rekey of CHILD_SA %s %08x", name, old.InboundSPI)
			rk = &childRekey{ni: ni}
			if s.childRekeys == nil {
				s.childRekeys = map[*ChildSA]*childRekey{}
			}
			s.childRekeys[old] = rk
		}

		onResponse := func(resp []message.Payload) error {
			if old != nil {
				delete(s.childRekeys, old)
			}
			gone := old != nil && !slices.Contains(s.children, old)
			if n := findNotify(resp, message.InvalidKEPayload); n != nil && len(n.Data) == 2 && !gone && (rk == nil || rk.peerChild == nil) {
				g := sa.DHGroup(binary.BigEndian.Uint16(n.Data))
				if (key == nil || g != key.Group()) && slices.ContainsFunc(props, func(p sa.Proposal) bool { return slices.Contains(p.DH, g) }) {
					return s.createChild(name, old, g)
				}
			}
			if firstError(resp) != nil && (gone || rk != nil && rk.peerChild != nil) {
				// The peer deleted the CHILD_SA (§2.25.1), or replaced it
				// with its own rekey, while our request was out: nothing
				// is missing.
				return nil
			}
			if findNotify(resp, message.NoProposalChosen) != nil {
				return fmt.Errorf("ike: %s refused: %w", what, &ProposalError{What: "CHILD_SA " + name, Ours: props})
			}
			if n := firstError(resp); n != nil {
				return fmt.Errorf("ike: %s refused: %w", what, &NotifyError{Type: n.NotifyType})
			}
			child, err := s.acceptCreatedChild(name, resp, props, key, spi, ni, localTS, remoteTS, mode)
			if err != nil {
				return fmt.Errorf("ike: %s: %w", what, err)
			}
			nonce := find[*message.Nonce](resp, nil)
			if rk != nil && rk.peerChild != nil && compareNonces(lowerNonce(ni, nonce.Data), rk.peerLow) < 0 {
				// We lost the collision: ours is the redundant CHILD_SA,
				// never installed; the peer deletes the old one.
				return s.deleteRedundantChild(child)
			}
			if gone {
				s.addChild(child, nil) // the peer deleted the old one meanwhile
				return nil
			}
			s.addChild(child, old)
			if old != nil {
				old.replaced = true
				return s.DeleteChild(old)
			}
			return nil
		}
		return ps, onResponse, nil
	})
}

// acceptCreatedChild checks a CREATE_CHILD_SA response for a CHILD_SA we
// asked for and derives its keys.
func (s *IKESA) acceptCreatedChild(name string, ps []message.Payload, props []sa.Proposal, key *dh.PrivateKey, spi uint32, ni []byte,
	localTS, remoteTS []policy.Selector, wantMode sa.Mode) (*ChildSA, error) {
	saP := find[*message.SA](ps, nil)
	nonce := find[*message.Nonce](ps, nil)
	tsi := find(ps, func(p *message.TrafficSelectors) bool { return !p.Responder })
	tsr := find(ps, func(p *message.TrafficSelectors) bool { return p.Responder })
	if saP == nil || nonce == nil || tsi == nil || tsr == nil {
		return nil, errors.New("response without SA, nonce or traffic selectors")
	}
	st, chosen, err := checkAccepted(props, saP)
	if err != nil {
		return nil, err
	}
	if len(chosen.SPI) != 4 {
		return nil, fmt.Errorf("responder SPI of %d bytes", len(chosen.SPI))
	}
	var gir []byte
	ke := find[*message.KE](ps, nil)
	switch {
	case key == nil && st.dh == sa.DHNone && ke == nil:
	case key != nil && st.dh == key.Group() && ke != nil && ke.Group == st.dh:
		if gir, err = key.SharedSecret(ke.Data); err != nil {
			return nil, err
		}
		defer clear(gir)
	default:
		return nil, fmt.Errorf("key exchange mismatch: chose %v", st.dh)
	}
	local, remote := tsFromWire(tsi), tsFromWire(tsr)
	if !within(local, localTS) || !within(remote, remoteTS) {
		return nil, errors.New("responder widened the traffic selectors")
	}
	mode := sa.ModeTunnel
	if wantMode == sa.ModeTransport && findNotify(ps, message.UseTransportMode) != nil {
		mode = sa.ModeTransport
	}
	return s.makeChild(name, st, mode, spi, binary.BigEndian.Uint32(chosen.SPI), local, remote, gir, ni, nonce.Data, true)
}

// handleCreateChildRequest answers the peer's CREATE_CHILD_SA: a new or
// rekeyed CHILD_SA (RFC 7296 §1.3.1, §1.3.3), or a rekey of the IKE SA
// (§1.3.2).
func (s *IKESA) handleCreateChildRequest(raw []byte, m *message.Message) error {
	ps, complete, err := s.open(raw, m)
	if err != nil {
		return fmt.Errorf("ike: drop: %w", err)
	}
	if !complete {
		return nil
	}
	respond := func(payloads ...message.Payload) error {
		out, err := s.seal(s.header(message.CreateChildSA, true, m.MessageID), payloads)
		if err != nil {
			return err
		}
		return s.sendResponse(out)
	}
	refuse := func(n *message.Notify) error {
		if err := respond(n); err != nil {
			return err
		}
		return &NotifyError{Type: n.NotifyType, Sent: true}
	}
	saP := find[*message.SA](ps, nil)
	nonce := find[*message.Nonce](ps, nil)
	tsi := find(ps, func(p *message.TrafficSelectors) bool { return !p.Responder })
	tsr := find(ps, func(p *message.TrafficSelectors) bool { return p.Responder })
	if saP == nil || nonce == nil {
		return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
	}
	if len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == message.ProtoIKE {
		if findNotify(ps, message.RekeySA) != nil {
			return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
		}
		return s.handleIKERekeyRequest(ps, saP, nonce, respond, refuse)
	}
	if tsi == nil || tsr == nil {
		return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
	}
	var old *ChildSA
	if n := findNotify(ps, message.RekeySA); n != nil {
		if len(n.SPI) != 4 {
			return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
		}
		if old = s.childByOutbound(n.Protocol, binary.BigEndian.Uint32(n.SPI)); old == nil {
			return refuse(&message.Notify{Protocol: n.Protocol, SPI: n.SPI, NotifyType: message.ChildSANotFound})
		}
		if old.deleting {
			// We are deleting it: the peer will see our Delete (RFC 7296
			// §2.25.1), as strongSwan answers.
			return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
		}
	}
	ke := find[*message.KE](ps, nil)
	only := ""
	if old != nil {
		only = old.Name
	}
	cc, st, chosen, local, remote, err := s.chooseChild(saP, ke, tsFromWire(tsi), tsFromWire(tsr), false, only)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) && r.n.NotifyType != message.NoProposalChosen {
			return refuse(r.n)
		}
		if err := respond(&message.Notify{NotifyType: message.NoProposalChosen}); err != nil {
			return err
		}
		what, ours := s.childProposals(only, false)
		return refusedProposal(what, ours, saP)
	}
	var resp []message.Payload
	mode := sa.ModeTunnel
	if findNotify(ps, message.UseTransportMode) != nil && cc.Mode == sa.ModeTransport {
		mode = sa.ModeTransport
		resp = append(resp, &message.Notify{NotifyType: message.UseTransportMode})
	}
	spi, err := s.allocChildSPI()
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	nr, err := s.random(NonceSize)
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	var gir []byte
	var ourKE *message.KE
	if st.dh != sa.DHNone {
		key, err := dh.GenerateKey(st.dh, s.rand)
		if err != nil {
			return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
		}
		if gir, err = key.SharedSecret(ke.Data); err != nil {
			return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
		}
		defer clear(gir)
		ourKE = &message.KE{Group: st.dh, Data: key.PublicKey()}
	}
	child, err := s.makeChild(cc.Name, st, mode, spi, binary.BigEndian.Uint32(chosen.SPI), local, remote, gir, nonce.Data, nr, false)
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.NoProposalChosen})
	}
	resp = append(resp, suiteToWire(st, chosen.Number, binary.BigEndian.AppendUint32(nil, spi)), &message.Nonce{Data: nr})
	if ourKE != nil {
		resp = append(resp, ourKE)
	}
	resp = append(resp, tsToWire(remote, false), tsToWire(local, true))
	if err := respond(resp...); err != nil {
		return err
	}
	if old != nil {
		old.replaced = true
		if rk := s.childRekeys[old]; rk != nil {
			// Our own rekey of it is out: a collision, settled when our
			// response arrives.
			rk.peerChild, rk.peerLow = child, lowerNonce(nonce.Data, nr)
		}
	}
	s.addChild(child, old)
	return nil
}

// selectChildProposal chooses the CHILD_SA transforms of a CREATE_CHILD_SA
// request from one configuration's proposals, preferring one that takes
// the key exchange the peer already sent; a wrong guess is answered with
// INVALID_KE_PAYLOAD.
func selectChildProposal(ours []sa.Proposal, theirs *message.SA, ke *message.KE) (suite, message.Proposal, error) {
	if ke != nil {
		var guessed []sa.Proposal
		for _, p := range ours {
			if slices.Contains(p.DH, ke.Group) {
				q := p
				q.DH = []sa.DHGroup{ke.Group}
				guessed = append(guessed, q)
			}
		}
		if st, chosen, err := selectProposal(guessed, theirs); err == nil && len(chosen.SPI) == 4 {
			return st, chosen, nil
		}
	}
	st, chosen, err := selectProposal(ours, theirs)
	if err != nil || len(chosen.SPI) != 4 {
		return suite{}, message.Proposal{}, &refusal{&message.Notify{NotifyType: message.NoProposalChosen}}
	}
	if st.dh != sa.DHNone {
		// The proposal needs a key exchange the request lacks or guessed wrong.
		return suite{}, message.Proposal{}, &refusal{&message.Notify{NotifyType: message.InvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, uint16(st.dh))}}
	}
	if ke != nil {
		return suite{}, message.Proposal{}, &refusal{&message.Notify{NotifyType: message.NoProposalChosen}}
	}
	return st, chosen, nil
}

// refusal carries the notification a CREATE_CHILD_SA request is refused with.
type refusal struct{ n *message.Notify }

func (r *refusal) Error() string { return "ike: refuse with " + r.n.NotifyType.String() }

func (s *IKESA) childConfig(name string) *ChildConfig {
	for i := range s.cfg.Children {
		if s.cfg.Children[i].Name == name {
			return &s.cfg.Children[i]
		}
	}
	return nil
}
