package ike

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/isle-ipsec/isle/ike/dh"
	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/ike/sk"
	"github.com/isle-ipsec/isle/sa"
)

// Start sends the IKE_SA_INIT request (RFC 7296 §1.2).
func (s *IKESA) Start() error {
	if !s.initiator || s.state != StateNew {
		return fmt.Errorf("ike: Start on a %v IKE SA in state %v", map[bool]string{true: "initiator", false: "responder"}[s.initiator], s.state)
	}
	var err error
	if s.spii, err = s.randomSPI(); err != nil {
		return s.fail(err)
	}
	if s.ni, err = s.random(NonceSize); err != nil {
		return s.fail(err)
	}
	group := s.cfg.IKEProposals[0].DH[0]
	if s.dhKey, err = dh.GenerateKey(group, s.rand); err != nil {
		return s.fail(err)
	}
	s.state = StateInitSent
	return s.sendInitRequest()
}

// sendInitRequest sends (or, after a COOKIE or INVALID_KE_PAYLOAD
// answer, sends again) the IKE_SA_INIT request with message ID 0.
func (s *IKESA) sendInitRequest() error {
	var ps []message.Payload
	if s.cookie != nil {
		// RFC 7296 §2.6: the cookie comes first.
		ps = append(ps, &message.Notify{NotifyType: message.Cookie, Data: s.cookie})
	}
	ps = append(ps,
		proposalsToWire(s.cfg.IKEProposals, nil),
		&message.KE{Group: s.dhKey.Group(), Data: s.dhKey.PublicKey()},
		&message.Nonce{Data: s.ni},
	)
	natd, err := s.natdPayloads()
	if err != nil {
		return s.fail(err)
	}
	ps = append(ps, natd...)
	if s.cfg.Fragmentation {
		ps = append(ps, &message.Notify{NotifyType: message.IKEv2FragmentationSupported})
	}
	if s.cfg.usesCerts() {
		ps = append(ps, hashAlgorithmsNotify())
	}
	m := &message.Message{Header: s.header(message.IKESAInit, false, 0), Payloads: ps}
	b, err := m.Marshal()
	if err != nil {
		return s.fail(err)
	}
	s.initReq = b
	s.nextRequestID = 0
	return s.sendRequest([][]byte{b})
}

// natdPayloads are NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for the
// current SPIs, when both addresses are known. ForceEncap sends a source
// hash that cannot match, so the peer sees a NAT, as strongSwan does.
func (s *IKESA) natdPayloads() ([]message.Payload, error) {
	if !s.cfg.Local.IsValid() || !s.cfg.Remote.IsValid() {
		return nil, nil
	}
	src := natdHash(s.spii, s.spir, s.cfg.Local)
	if s.cfg.ForceEncap {
		var err error
		if src, err = s.random(len(src)); err != nil {
			return nil, err
		}
	}
	return []message.Payload{
		&message.Notify{NotifyType: message.NATDetectionSourceIP, Data: src},
		&message.Notify{NotifyType: message.NATDetectionDestinationIP, Data: natdHash(s.spii, s.spir, s.cfg.Remote)},
	}, nil
}

// detectNAT compares the peer's NAT detection hashes with what our
// addresses give (RFC 7296 §2.23).
func (s *IKESA) detectNAT(ps []message.Payload) {
	if !s.cfg.Local.IsValid() || !s.cfg.Remote.IsValid() {
		return
	}
	dst := findNotify(ps, message.NATDetectionDestinationIP)
	if dst == nil {
		return // the peer does not do NAT-T
	}
	s.natLocal = s.cfg.ForceEncap || !bytes.Equal(dst.Data, natdHash(s.spii, s.spir, s.cfg.Local))
	s.natRemote = true
	for _, p := range ps {
		if n, ok := p.(*message.Notify); ok && n.NotifyType == message.NATDetectionSourceIP &&
			bytes.Equal(n.Data, natdHash(s.spii, s.spir, s.cfg.Remote)) {
			s.natRemote = false
		}
	}
}

func (s *IKESA) handleInitResponse(raw []byte, m *message.Message) error {
	if c := findNotify(m.Payloads, message.Cookie); c != nil {
		if len(c.Data) < 1 || len(c.Data) > 64 {
			return fmt.Errorf("ike: drop: COOKIE of %d bytes", len(c.Data))
		}
		s.cookie = append([]byte(nil), c.Data...)
		return s.sendInitRequest()
	}
	if n := findNotify(m.Payloads, message.InvalidKEPayload); n != nil {
		if len(n.Data) != 2 {
			return fmt.Errorf("ike: drop: INVALID_KE_PAYLOAD with %d bytes", len(n.Data))
		}
		g := sa.DHGroup(binary.BigEndian.Uint16(n.Data))
		offered := slices.ContainsFunc(s.cfg.IKEProposals, func(p sa.Proposal) bool { return slices.Contains(p.DH, g) })
		if !offered || g == s.dhKey.Group() {
			return s.fail(fmt.Errorf("ike: peer asks for key exchange %v, which we did not offer: %w", g, &NotifyError{Type: message.InvalidKEPayload}))
		}
		k, err := dh.GenerateKey(g, s.rand)
		if err != nil {
			return s.fail(err)
		}
		s.dhKey = k
		return s.sendInitRequest()
	}
	if findNotify(m.Payloads, message.NoProposalChosen) != nil {
		return s.fail(&ProposalError{What: "IKE SA", Ours: s.cfg.IKEProposals})
	}
	if n := firstError(m.Payloads); n != nil {
		return s.fail(&NotifyError{Type: n.NotifyType})
	}
	saP := find[*message.SA](m.Payloads, nil)
	ke := find[*message.KE](m.Payloads, nil)
	nonce := find[*message.Nonce](m.Payloads, nil)
	if saP == nil || ke == nil || nonce == nil || m.SPIr == 0 {
		return s.fail(fmt.Errorf("ike: IKE_SA_INIT response without SA, KE, nonce or SPI"))
	}
	st, _, err := checkAccepted(s.cfg.IKEProposals, saP)
	if err != nil {
		return s.fail(fmt.Errorf("ike: IKE_SA_INIT: %w", err))
	}
	if st.dh != s.dhKey.Group() || ke.Group != st.dh {
		return s.fail(fmt.Errorf("ike: responder chose %v but sent a %v key exchange for our %v", st.dh, ke.Group, s.dhKey.Group()))
	}
	s.spir = m.SPIr
	s.nr = nonce.Data
	s.initResp = append([]byte(nil), raw...)
	s.peerFragments = findNotify(m.Payloads, message.IKEv2FragmentationSupported) != nil
	s.detectNAT(m.Payloads)
	s.notePeerHashes(m.Payloads)
	if err := s.deriveIKEKeys(st, ke.Data); err != nil {
		return s.fail(err)
	}
	return s.sendAuthRequest()
}

// deriveIKEKeys completes the key exchange and sets up SK protection.
func (s *IKESA) deriveIKEKeys(st suite, peerKE []byte) error {
	gir, err := s.dhKey.SharedSecret(peerKE)
	if err != nil {
		return fmt.Errorf("ike: key exchange: %w", err)
	}
	defer clear(gir)
	prf, err := keys.NewPRF(st.prf)
	if err != nil {
		return err
	}
	skeyseed := keys.SKEYSEED(prf, s.ni, s.nr, gir)
	defer clear(skeyseed)
	s.dhKey = nil // the ephemeral secret is no longer needed
	return s.installKeys(st, skeyseed)
}

// installKeys derives the IKE SA's keys from SKEYSEED (RFC 7296 §2.14)
// with the negotiated PRF and sets up SK protection in both directions.
func (s *IKESA) installKeys(st suite, skeyseed []byte) error {
	var err error
	if s.prf, err = keys.NewPRF(st.prf); err != nil {
		return err
	}
	sizes, err := keys.KeySizes(st.enc.Alg, st.enc.KeyBits, st.integ)
	if err != nil {
		return err
	}
	if s.keys, err = keys.DeriveIKESA(s.prf, skeyseed, s.ni, s.nr, s.spii, s.spir, sizes); err != nil {
		return err
	}
	ei, ai, er, ar := s.keys.SKei, s.keys.SKai, s.keys.SKer, s.keys.SKar
	if !s.initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	if s.out, err = sk.New(st.enc.Alg, ei, st.integ, ai); err != nil {
		return err
	}
	if s.in, err = sk.New(st.enc.Alg, er, st.integ, ar); err != nil {
		return err
	}
	s.ike = st
	return nil
}

// initErrorResponse answers an IKE_SA_INIT request with one notification
// and keeps no state (RFC 7296 §2.6 spirit: no state for failed INITs).
func (s *IKESA) initErrorResponse(req *message.Message, n *message.Notify) error {
	h := message.Header{SPIi: req.SPIi, Exchange: message.IKESAInit, Flags: message.FlagResponse, MessageID: 0}
	b, err := (&message.Message{Header: h, Payloads: []message.Payload{n}}).Marshal()
	if err != nil {
		return err
	}
	return s.send(b)
}

func (s *IKESA) handleInitRequest(raw []byte, m *message.Message) error {
	saP := find[*message.SA](m.Payloads, nil)
	ke := find[*message.KE](m.Payloads, nil)
	nonce := find[*message.Nonce](m.Payloads, nil)
	if saP == nil || ke == nil || nonce == nil || m.SPIr != 0 || m.SPIi == 0 {
		s.initErrorResponse(m, &message.Notify{NotifyType: message.InvalidSyntax})
		return &NotifyError{Type: message.InvalidSyntax, Sent: true}
	}
	// Prefer a proposal that accepts the group the initiator guessed, to
	// save the INVALID_KE_PAYLOAD round trip.
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
			s.initErrorResponse(m, &message.Notify{NotifyType: message.NoProposalChosen})
			return refusedProposal("IKE SA", s.cfg.IKEProposals, saP)
		}
		var g [2]byte
		binary.BigEndian.PutUint16(g[:], uint16(st.dh))
		s.initErrorResponse(m, &message.Notify{NotifyType: message.InvalidKEPayload, Data: g[:]})
		return &NotifyError{Type: message.InvalidKEPayload, Sent: true}
	}
	if len(chosen.SPI) != 0 {
		s.initErrorResponse(m, &message.Notify{NotifyType: message.InvalidSyntax})
		return &NotifyError{Type: message.InvalidSyntax, Sent: true}
	}
	if s.dhKey, err = dh.GenerateKey(st.dh, s.rand); err != nil {
		return s.fail(err)
	}
	s.spii = m.SPIi
	s.detectNAT(m.Payloads) // the request's hashes were made with SPIr = 0
	if s.spir, err = s.randomSPI(); err != nil {
		return s.fail(err)
	}
	if s.nr, err = s.random(NonceSize); err != nil {
		return s.fail(err)
	}
	s.ni = nonce.Data
	s.initReq = append([]byte(nil), raw...)
	s.peerFragments = findNotify(m.Payloads, message.IKEv2FragmentationSupported) != nil
	ps := []message.Payload{
		suiteToWire(st, chosen.Number, nil),
		&message.KE{Group: s.dhKey.Group(), Data: s.dhKey.PublicKey()},
		&message.Nonce{Data: s.nr},
	}
	natd, err := s.natdPayloads()
	if err != nil {
		return s.fail(err)
	}
	ps = append(ps, natd...)
	if s.cfg.Fragmentation {
		ps = append(ps, &message.Notify{NotifyType: message.IKEv2FragmentationSupported})
	}
	// A responder that may yet become another %any peer (choosePeer)
	// asks for the certificates any of them would need.
	certCfg := s.cfg
	if len(s.otherCAs) > 0 {
		certCfg.CACerts = append(append([]*x509.Certificate(nil), s.cfg.CACerts...), s.otherCAs...)
	}
	if certCfg.wantsCert() {
		ps = append(ps, certCfg.certReq())
	}
	if certCfg.usesCerts() || s.otherSigns {
		ps = append(ps, hashAlgorithmsNotify())
	}
	s.notePeerHashes(m.Payloads)
	if err := s.deriveIKEKeys(st, ke.Data); err != nil {
		// An invalid KE value: refuse like a syntax error, keep nothing.
		s.initErrorResponse(m, &message.Notify{NotifyType: message.InvalidSyntax})
		return s.fail(err)
	}
	b, err := (&message.Message{Header: s.header(message.IKESAInit, true, 0), Payloads: ps}).Marshal()
	if err != nil {
		return s.fail(err)
	}
	s.initResp = b
	s.state = StateInitDone
	return s.sendResponse([][]byte{b})
}
