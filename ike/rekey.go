package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/isle-ipsec/isle/ike/dh"
	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// Rekey replaces the IKE SA with a new one negotiated in a
// CREATE_CHILD_SA exchange (RFC 7296 §1.3.2): fresh SPIs, nonces and key
// exchange, SKEYSEED from the old SK_d (§2.18). The CHILD_SAs move to the
// new IKE SA, which Config.OnRekey and Successor hand to the caller; the
// old one is then deleted. We become the new IKE SA's original initiator.
func (s *IKESA) Rekey() error {
	return s.rekeyIKE(s.ike.dh)
}

// Successor is the IKE SA that replaced this one by a rekey, or nil.
func (s *IKESA) Successor() *IKESA { return s.successor }

func (s *IKESA) rekeyIKE(group sa.DHGroup) error {
	return s.startRequest(message.CreateChildSA, func() ([]message.Payload, func([]message.Payload) error, error) {
		spi, err := s.randomSPI()
		if err != nil {
			return nil, nil, err
		}
		ni, err := s.random(NonceSize)
		if err != nil {
			return nil, nil, err
		}
		key, err := dh.GenerateKey(group, s.rand)
		if err != nil {
			return nil, nil, err
		}
		props := s.cfg.IKEProposals
		rk := &ikeRekey{ni: ni}
		s.ikeRekey = rk
		ps := []message.Payload{
			proposalsToWire(props, binary.BigEndian.AppendUint64(nil, spi)),
			&message.Nonce{Data: ni},
			&message.KE{Group: group, Data: key.PublicKey()},
		}
		onResponse := func(resp []message.Payload) error {
			s.ikeRekey = nil
			if rk.peerNew != nil && firstError(resp) != nil {
				return nil // the peer's rekey, which crossed ours, stands
			}
			if n := findNotify(resp, message.InvalidKEPayload); n != nil && len(n.Data) == 2 {
				g := sa.DHGroup(binary.BigEndian.Uint16(n.Data))
				if g != group && slices.ContainsFunc(props, func(p sa.Proposal) bool { return slices.Contains(p.DH, g) }) {
					return s.rekeyIKE(g)
				}
			}
			if findNotify(resp, message.NoProposalChosen) != nil {
				return fmt.Errorf("ike: IKE SA rekey refused: %w", &ProposalError{What: "IKE SA rekey", Ours: s.cfg.IKEProposals})
			}
			if n := firstError(resp); n != nil {
				return fmt.Errorf("ike: IKE SA rekey refused: %w", &NotifyError{Type: n.NotifyType})
			}
			saP := find[*message.SA](resp, nil)
			nonce := find[*message.Nonce](resp, nil)
			ke := find[*message.KE](resp, nil)
			if saP == nil || nonce == nil || ke == nil {
				return errors.New("ike: IKE SA rekey response without SA, nonce or KE")
			}
			st, chosen, err := checkAccepted(props, saP)
			if err != nil {
				return fmt.Errorf("ike: IKE SA rekey: %w", err)
			}
			if len(chosen.SPI) != 8 || st.dh != group || ke.Group != group {
				return fmt.Errorf("ike: IKE SA rekey: SPI of %d bytes, group %v for our %v", len(chosen.SPI), ke.Group, group)
			}
			gir, err := key.SharedSecret(ke.Data)
			if err != nil {
				return fmt.Errorf("ike: IKE SA rekey: %w", err)
			}
			defer clear(gir)
			if rk.peerNew != nil {
				return s.settleIKERekeyCollision(rk, st, spi, binary.BigEndian.Uint64(chosen.SPI), ni, nonce.Data, gir)
			}
			if _, err := s.rekeyed(st, true, spi, binary.BigEndian.Uint64(chosen.SPI), ni, nonce.Data, gir); err != nil {
				return err
			}
			return s.Delete() // the old IKE SA, now without CHILD_SAs
		}
		return ps, onResponse, nil
	})
}

// rekeyed builds the IKE SA that replaces s and moves the CHILD_SAs to it.
func (s *IKESA) rekeyed(st suite, weInitiated bool, ourSPI, peerSPI uint64, ni, nr, gir []byte) (*IKESA, error) {
	n, err := s.newRekeyed(st, weInitiated, ourSPI, peerSPI, ni, nr, gir)
	if err != nil {
		return nil, err
	}
	s.handOver(n)
	return n, nil
}

// handOver makes n the successor of s, carrying its CHILD_SAs.
func (s *IKESA) handOver(n *IKESA) {
	n.children, s.children = s.children, nil
	n.child = s.child
	s.successor = n
	if s.cfg.OnRekey != nil {
		s.cfg.OnRekey(s, n)
	}
}

// newRekeyed builds an IKE SA rekeying s (RFC 7296 §2.18), without
// CHILD_SAs yet.
func (s *IKESA) newRekeyed(st suite, weInitiated bool, ourSPI, peerSPI uint64, ni, nr, gir []byte) (*IKESA, error) {
	n := &IKESA{
		cfg: s.cfg, send: s.send, rand: s.rand, initiator: weInitiated, state: StateEstablished,
		ni: append([]byte(nil), ni...), nr: append([]byte(nil), nr...),
		peerFragments: s.peerFragments, natLocal: s.natLocal, natRemote: s.natRemote,
		psk: s.psk, peerID: s.peerID,
	}
	n.spii, n.spir = ourSPI, peerSPI
	if !weInitiated {
		n.spii, n.spir = peerSPI, ourSPI
	}
	skeyseed := keys.RekeySKEYSEED(s.prf, s.keys.SKd, gir, ni, nr)
	defer clear(skeyseed)
	if err := n.installKeys(st, skeyseed); err != nil {
		return nil, fmt.Errorf("ike: IKE SA rekey: %w", err)
	}
	return n, nil
}

// handleIKERekeyRequest answers the peer's rekey of the IKE SA.
func (s *IKESA) handleIKERekeyRequest(ps []message.Payload, saP *message.SA, nonce *message.Nonce,
	respond func(...message.Payload) error, refuse func(*message.Notify) error) error {
	ke := find[*message.KE](ps, nil)
	if ke == nil {
		return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
	}
	if s.successor != nil || s.ikeRekey == nil && s.lastRequest != nil && s.pending != nil && s.pending.exchange == message.CreateChildSA {
		// Rekeyed already, or a CHILD_SA exchange of ours is out: the
		// peer may try again later. A crossing IKE SA rekey of ours is
		// answered and settled by the nonces (RFC 7296 §2.8.2).
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	var guessed []sa.Proposal
	for _, p := range s.cfg.IKEProposals {
		if slices.Contains(p.DH, ke.Group) {
			q := p
			q.DH = []sa.DHGroup{ke.Group}
			guessed = append(guessed, q)
		}
	}
	st, chosen, err := selectProposal(guessed, saP)
	if err != nil {
		if st, _, err = selectProposal(s.cfg.IKEProposals, saP); err != nil {
			if err := respond(&message.Notify{NotifyType: message.NoProposalChosen}); err != nil {
				return err
			}
			return refusedProposal("IKE SA rekey", s.cfg.IKEProposals, saP)
		}
		return refuse(&message.Notify{NotifyType: message.InvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, uint16(st.dh))})
	}
	if len(chosen.SPI) != 8 {
		return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
	}
	spi, err := s.randomSPI()
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	nr, err := s.random(NonceSize)
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	key, err := dh.GenerateKey(st.dh, s.rand)
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.TemporaryFailure})
	}
	gir, err := key.SharedSecret(ke.Data)
	if err != nil {
		return refuse(&message.Notify{NotifyType: message.InvalidSyntax})
	}
	defer clear(gir)
	if err := respond(suiteToWire(st, chosen.Number, binary.BigEndian.AppendUint64(nil, spi)),
		&message.Nonce{Data: nr}, &message.KE{Group: st.dh, Data: key.PublicKey()}); err != nil {
		return err
	}
	n, err := s.rekeyed(st, false, spi, binary.BigEndian.Uint64(chosen.SPI), nonce.Data, nr, gir)
	if err == nil && s.ikeRekey != nil {
		s.ikeRekey.peerNew, s.ikeRekey.peerLow = n, lowerNonce(nonce.Data, nr)
	}
	return err
}
