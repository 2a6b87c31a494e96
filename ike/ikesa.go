package ike

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/isle-ipsec/isle/ike/dh"
	"github.com/isle-ipsec/isle/ike/keys"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/ike/sig"
	"github.com/isle-ipsec/isle/ike/sk"
)

// State is where an IKE SA is in its life.
type State int

const (
	StateNew         State = iota // created, nothing sent or received
	StateInitSent                 // initiator: IKE_SA_INIT request sent
	StateInitDone                 // responder: IKE_SA_INIT answered, waiting for IKE_AUTH
	StateAuthSent                 // initiator: IKE_AUTH request sent
	StateEstablished              // authenticated; keys in place
	StateFailed                   // negotiation failed; see Err
	StateDeleted                  // deleted by the peer
)

func (s State) String() string {
	switch s {
	case StateNew:
		return "NEW"
	case StateInitSent:
		return "INIT_SENT"
	case StateInitDone:
		return "INIT_DONE"
	case StateAuthSent:
		return "AUTH_SENT"
	case StateEstablished:
		return "ESTABLISHED"
	case StateFailed:
		return "FAILED"
	case StateDeleted:
		return "DELETED"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// NotifyError is an error notification the peer sent, or that we sent to
// the peer, which ended a negotiation.
type NotifyError struct {
	Type message.NotifyType
	Sent bool // we sent it rather than received it
}

func (e *NotifyError) Error() string {
	if e.Sent {
		return "ike: sent " + e.Type.String()
	}
	return "ike: peer sent " + e.Type.String()
}

// ErrAuthentication means the peer's AUTH payload did not verify.
var ErrAuthentication = errors.New("ike: peer authentication failed")

// IKESA is one IKE SA and the exchanges running on it. It is not safe for
// concurrent use: the caller feeds it one message at a time, as
// strongSwan's IKE SA manager checks an IKE SA out to one thread.
type IKESA struct {
	cfg       Config
	send      func([]byte) error
	rand      io.Reader
	initiator bool
	state     State
	err       error

	spii, spir uint64
	ike        suite
	prf        keys.PRF
	dhKey      *dh.PrivateKey
	ni, nr     []byte
	initReq    []byte // IKE_SA_INIT request and response as on the wire,
	initResp   []byte // signed by the AUTH payloads (RFC 7296 §2.15)
	keys       *keys.IKESAKeys
	out, in    *sk.Cipher
	cookie     []byte

	peerFragments       bool
	natLocal, natRemote bool
	reassembly          sk.Reassembly
	nextRequestID       uint32   // ours
	lastRequest         [][]byte // for Retransmit
	peerNextID          uint32   // the peer's next request
	lastResponse        [][]byte // resent when the peer retransmits
	haveResponse        bool
	child               *ChildSA   // created with IKE_AUTH
	children            []*ChildSA // every live CHILD_SA
	childErr            error
	pending             *request // our outstanding request after IKE_AUTH
	successor           *IKESA   // the IKE SA that replaced this one by a rekey
	psk                 []byte   // the shared key used with this peer
	peerID              Identity // the identity the peer proved
	// peerInitialContact: the peer's IKE_AUTH said this is its only IKE SA with us.
	peerInitialContact bool
	peerHashes         []sig.Hash // the peer's SIGNATURE_HASH_ALGORITHMS; nil if it sent none
	peerScheme         string     // how the peer's certificate signature was made
	queue              []func() error
	childSPI           uint32 // our inbound SPI for the CHILD_SA being created

	// choosePeer, for a responder of a %any peer, may switch the
	// configuration by the identities of IKE_AUTH (the Manager's).
	choosePeer func(idi Identity, idr *Identity) error
	otherCAs   []*x509.Certificate // trust anchors of the other %any peers, for CERTREQ
	otherSigns bool                // another %any peer signs: announce our hashes

	childRekeys map[*ChildSA]*childRekey // our outstanding CHILD_SA rekeys
	ikeRekey    *ikeRekey                // our outstanding IKE SA rekey
}

// NewInitiator prepares an IKE SA that will start the negotiation.
func NewInitiator(cfg Config, send func([]byte) error) (*IKESA, error) {
	return newIKESA(cfg, send, true)
}

// NewResponder prepares an IKE SA that answers an IKE_SA_INIT request.
func NewResponder(cfg Config, send func([]byte) error) (*IKESA, error) {
	return newIKESA(cfg, send, false)
}

func newIKESA(cfg Config, send func([]byte) error, initiator bool) (*IKESA, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	return &IKESA{cfg: cfg, send: send, rand: r, initiator: initiator}, nil
}

// State returns the current state.
func (s *IKESA) State() State { return s.state }

// Err returns why the IKE SA failed, or nil.
func (s *IKESA) Err() error { return s.err }

// SPIs returns the initiator's and responder's IKE SPIs.
func (s *IKESA) SPIs() (spii, spir uint64) { return s.spii, s.spir }

// PeerID is the identity the peer authenticated with (once established).
func (s *IKESA) PeerID() Identity { return s.peerID }

// PeerAuth says how the peer authenticated: "SHARED_KEY_MIC" or the
// signature scheme of its certificate ("ECDSA_WITH_SHA2_256").
func (s *IKESA) PeerAuth() string {
	if s.peerScheme != "" {
		return s.peerScheme
	}
	if s.state == StateEstablished || s.state == StateDeleted {
		return message.AuthSharedKeyMIC.String()
	}
	return ""
}

// Initiator reports whether we are the original initiator.
func (s *IKESA) Initiator() bool { return s.initiator }

// NATDetected reports whether a NAT was found in front of us (local) or
// of the peer (remote) during IKE_SA_INIT; either means UDP encapsulation
// (RFC 3948) and port 4500 from IKE_AUTH on.
func (s *IKESA) NATDetected() (local, remote bool) { return s.natLocal, s.natRemote }

// Proposal describes the negotiated IKE transforms, as strongSwan prints
// them ("AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519").
func (s *IKESA) Proposal() string { return s.ike.String() }

// ChildSA returns the CHILD_SA created with the IKE SA, once established;
// ChildErr tells why none was created while the IKE SA was.
func (s *IKESA) ChildSA() *ChildSA { return s.child }

// ChildErr is why the first CHILD_SA was refused, if it was.
func (s *IKESA) ChildErr() error { return s.childErr }

// Children returns the live CHILD_SAs, oldest first.
func (s *IKESA) Children() []*ChildSA { return append([]*ChildSA(nil), s.children...) }

func (s *IKESA) addChild(c, replaces *ChildSA) {
	s.children = append(s.children, c)
	if s.cfg.OnChild != nil {
		s.cfg.OnChild(ChildEvent{Kind: ChildUp, Child: c, Replaces: replaces})
	}
}

func (s *IKESA) removeChild(c *ChildSA) { s.dropChild(c, false) }

// dropChild removes a CHILD_SA; peerClosed says the peer's DELETE ended it.
func (s *IKESA) dropChild(c *ChildSA, peerClosed bool) {
	for i, x := range s.children {
		if x == c {
			s.children = append(s.children[:i], s.children[i+1:]...)
			if s.cfg.OnChild != nil {
				// A rekey's old SA deleted by the peer is not closed:
				// its successor carries on.
				s.cfg.OnChild(ChildEvent{Kind: ChildDown, Child: c, PeerClosed: peerClosed && !c.replaced})
			}
			return
		}
	}
}

// childByOutbound finds a live CHILD_SA by the SPI the peer receives on.
func (s *IKESA) childByOutbound(proto message.ProtocolID, spi uint32) *ChildSA {
	for _, c := range s.children {
		if message.ProtocolFromSA(c.Protocol) == proto && c.OutboundSPI == spi {
			return c
		}
	}
	return nil
}

// request is an exchange we started after IKE_AUTH, waiting for its
// response.
type request struct {
	exchange   message.ExchangeType
	onResponse func(ps []message.Payload) error
}

// startRequest sends a request, or queues it while another is
// outstanding: we keep a window of one (RFC 7296 §2.3).
func (s *IKESA) startRequest(ex message.ExchangeType, build func() ([]message.Payload, func([]message.Payload) error, error)) error {
	run := func() error {
		if s.state != StateEstablished {
			return fmt.Errorf("ike: IKE SA is %v", s.state)
		}
		ps, onResponse, err := build()
		if err != nil {
			return err
		}
		out, err := s.seal(s.header(ex, false, s.nextRequestID), ps)
		if err != nil {
			return err
		}
		s.pending = &request{exchange: ex, onResponse: onResponse}
		return s.sendRequest(out)
	}
	if s.lastRequest != nil || s.state == StateInitSent || s.state == StateAuthSent {
		s.queue = append(s.queue, run)
		return nil
	}
	return run()
}

// requestDone runs queued requests while none is outstanding.
func (s *IKESA) requestDone() error {
	for len(s.queue) > 0 && s.lastRequest == nil {
		next := s.queue[0]
		s.queue = s.queue[1:]
		if err := next(); err != nil {
			return err
		}
	}
	return nil
}

func (s *IKESA) fail(err error) error {
	s.state, s.err = StateFailed, err
	if s.keys != nil {
		s.keys.Clear()
	}
	return err
}

func (s *IKESA) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return nil, fmt.Errorf("ike: random: %w", err)
	}
	return b, nil
}

func (s *IKESA) randomSPI() (uint64, error) {
	for {
		b, err := s.random(8)
		if err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b); v != 0 {
			return v, nil
		}
	}
}

func (s *IKESA) allocChildSPI() (uint32, error) {
	if s.cfg.AllocSPI != nil {
		return s.cfg.AllocSPI()
	}
	for {
		b, err := s.random(4)
		if err != nil {
			return 0, err
		}
		// SPIs 1-255 are reserved by IANA (RFC 4303 §2.1).
		if v := binary.BigEndian.Uint32(b); v > 255 {
			return v, nil
		}
	}
}

func (s *IKESA) header(ex message.ExchangeType, response bool, id uint32) message.Header {
	h := message.Header{SPIi: s.spii, SPIr: s.spir, Exchange: ex, MessageID: id}
	if s.initiator {
		h.Flags |= message.FlagInitiator
	}
	if response {
		h.Flags |= message.FlagResponse
	}
	return h
}

// sendRequest sends a new request and keeps it for Retransmit.
func (s *IKESA) sendRequest(datagrams [][]byte) error {
	s.lastRequest = datagrams
	s.nextRequestID++
	return s.transmit(datagrams)
}

func (s *IKESA) sendResponse(datagrams [][]byte) error {
	s.lastResponse, s.haveResponse = datagrams, true
	s.peerNextID++
	return s.transmit(datagrams)
}

func (s *IKESA) transmit(datagrams [][]byte) error {
	for _, d := range datagrams {
		if err := s.send(d); err != nil {
			return fmt.Errorf("ike: send: %w", err)
		}
	}
	return nil
}

// Retransmit resends the outstanding request, for the caller's
// retransmission timer (RFC 7296 §2.1).
func (s *IKESA) Retransmit() error {
	if s.lastRequest == nil {
		return errors.New("ike: no request outstanding")
	}
	return s.transmit(s.lastRequest)
}

// seal protects inner payloads, fragmenting when the peer supports it and
// the message is too long (RFC 7383).
func (s *IKESA) seal(h message.Header, inner []message.Payload) ([][]byte, error) {
	m := &message.Message{Header: h}
	b, err := s.out.Seal(m, inner)
	if err != nil {
		return nil, err
	}
	size := s.cfg.FragmentSize
	if size == 0 {
		size = 1280
	}
	if s.cfg.Fragmentation && s.peerFragments && len(b) > size && h.Exchange != message.IKESAInit {
		return s.out.SealFragments(m, inner, size)
	}
	return [][]byte{b}, nil
}

// open returns the decrypted payloads of m; complete is false while
// fragments of it are still missing (RFC 7383).
func (s *IKESA) open(raw []byte, m *message.Message) (ps []message.Payload, complete bool, err error) {
	if len(m.Payloads) == 1 {
		if _, ok := m.Payloads[0].(*message.Fragment); ok {
			f, plain, err := s.in.OpenFragment(raw, m)
			if err != nil {
				return nil, false, err
			}
			done, err := s.reassembly.Add(f, plain)
			if err != nil || !done {
				return nil, false, err
			}
			ps, err := s.reassembly.Payloads()
			s.reassembly = sk.Reassembly{}
			return ps, err == nil, err
		}
	}
	ps, err = s.in.Open(raw, m)
	return ps, err == nil, err
}

// Handle processes one IKE message from the peer (without the non-ESP
// marker of port 4500). Errors about the message itself (garbage, wrong
// SPI, failed integrity) leave the IKE SA as it was; a failed negotiation
// moves it to StateFailed and is returned too.
func (s *IKESA) Handle(b []byte) error {
	m, err := message.Parse(b)
	if err != nil {
		return fmt.Errorf("ike: drop: %w", err)
	}
	if s.state == StateDeleted && m.Flags&message.FlagResponse != 0 && m.Exchange == message.Informational &&
		m.MessageID+1 == s.nextRequestID && s.lastRequest != nil {
		s.lastRequest = nil // the answer to our Delete: nothing left to do
		return nil
	}
	if s.state == StateDeleted && m.Flags&message.FlagResponse == 0 && s.haveResponse && m.MessageID == s.peerNextID-1 &&
		m.SPIi == s.spii && m.SPIr == s.spir {
		// The peer did not get our answer to its Delete: answer again.
		return s.transmit(s.lastResponse)
	}
	if s.state == StateFailed || s.state == StateDeleted {
		return fmt.Errorf("ike: drop: IKE SA is %v", s.state)
	}
	response := m.Flags&message.FlagResponse != 0
	if (m.Flags&message.FlagInitiator != 0) == s.initiator {
		return errors.New("ike: drop: initiator flag does not match our role")
	}
	if !s.initiator && !response && s.state == StateInitDone && m.Exchange == message.IKESAInit &&
		m.SPIi == s.spii && m.SPIr == 0 && m.MessageID == 0 {
		// The initiator did not get our IKE_SA_INIT response (it still
		// has no SPIr to send): the same answer again (RFC 7296 §2.1).
		return s.transmit([][]byte{s.initResp})
	}
	if s.state != StateNew && (m.SPIi != s.spii || (m.SPIr != s.spir && !(response && s.state == StateInitSent))) {
		return fmt.Errorf("ike: drop: SPIs %016x/%016x, not ours", m.SPIi, m.SPIr)
	}
	if response {
		if m.MessageID != s.nextRequestID-1 || s.lastRequest == nil {
			return fmt.Errorf("ike: drop: response %d to no outstanding request", m.MessageID)
		}
		switch {
		case m.Exchange == message.IKESAInit && s.state == StateInitSent:
			return s.handleInitResponse(b, m)
		case m.Exchange == message.IKEAuth && s.state == StateAuthSent:
			return s.handleAuthResponse(b, m)
		case s.state == StateEstablished && s.pending != nil && m.Exchange == s.pending.exchange:
			ps, complete, err := s.open(b, m)
			if err != nil {
				return fmt.Errorf("ike: drop: %w", err)
			}
			if !complete {
				return nil
			}
			done := s.pending.onResponse
			s.lastRequest, s.pending = nil, nil
			err = done(ps)
			if qerr := s.requestDone(); err == nil {
				err = qerr
			}
			return err
		}
		return fmt.Errorf("ike: drop: %v response in state %v", m.Exchange, s.state)
	}
	if s.haveResponse && m.MessageID == s.peerNextID-1 {
		return s.transmit(s.lastResponse) // the peer retransmitted (RFC 7296 §2.1)
	}
	if m.MessageID != s.peerNextID {
		return fmt.Errorf("ike: drop: request %d, expected %d", m.MessageID, s.peerNextID)
	}
	switch {
	case m.Exchange == message.IKESAInit && s.state == StateNew && !s.initiator:
		return s.handleInitRequest(b, m)
	case m.Exchange == message.IKEAuth && s.state == StateInitDone:
		return s.handleAuthRequest(b, m)
	case m.Exchange == message.Informational && s.state == StateEstablished:
		return s.handleInformational(b, m)
	case m.Exchange == message.CreateChildSA && s.state == StateEstablished:
		return s.handleCreateChildRequest(b, m)
	}
	return fmt.Errorf("ike: drop: %v request in state %v", m.Exchange, s.state)
}

// handleInformational answers liveness checks (an empty request), and
// deletes the IKE SA or CHILD_SAs the peer deletes (RFC 7296 §1.4.1),
// naming in the response our SPIs of the CHILD_SAs deleted.
func (s *IKESA) handleInformational(raw []byte, m *message.Message) error {
	ps, complete, err := s.open(raw, m)
	if err != nil {
		return fmt.Errorf("ike: drop: %w", err)
	}
	if !complete {
		return nil
	}
	var resp []message.Payload
	deleteIKE := false
	var gone []*ChildSA
	for _, p := range ps {
		d, ok := p.(*message.Delete)
		if !ok {
			continue
		}
		if d.Protocol == message.ProtoIKE {
			deleteIKE = true
			continue
		}
		ours := &message.Delete{Protocol: d.Protocol}
		for _, spi := range d.SPIs {
			if c := s.childByOutbound(d.Protocol, binary.BigEndian.Uint32(spi)); c != nil {
				ours.SPIs = append(ours.SPIs, binary.BigEndian.AppendUint32(nil, c.InboundSPI))
				gone = append(gone, c)
			}
		}
		if len(ours.SPIs) > 0 {
			resp = append(resp, ours)
		}
	}
	// An initiator that could not authenticate us says so in a request
	// of its own (RFC 7296 §2.21.2): the IKE SA we thought up is gone.
	refused := findNotify(ps, message.AuthenticationFailed) != nil
	if deleteIKE || refused {
		resp = nil // the response to an IKE SA deletion is empty
	}
	out, err := s.seal(s.header(message.Informational, true, m.MessageID), resp)
	if err != nil {
		return err
	}
	if err := s.sendResponse(out); err != nil {
		return err
	}
	for _, c := range gone {
		s.dropChild(c, true)
	}
	if deleteIKE || refused {
		for _, c := range s.Children() {
			s.dropChild(c, deleteIKE)
		}
		s.state = StateDeleted
	}
	if refused && !deleteIKE {
		return s.fail(fmt.Errorf("%w: the peer refused our authentication as %v (its log says why)",
			&NotifyError{Type: message.AuthenticationFailed}, s.cfg.LocalID))
	}
	return nil
}

// findNotify returns the first notification of type t.
func findNotify(ps []message.Payload, t message.NotifyType) *message.Notify {
	for _, p := range ps {
		if n, ok := p.(*message.Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// firstError returns the first error notification, if any.
func firstError(ps []message.Payload) *message.Notify {
	for _, p := range ps {
		if n, ok := p.(*message.Notify); ok && n.NotifyType.IsError() {
			return n
		}
	}
	return nil
}

func find[T message.Payload](ps []message.Payload, match func(T) bool) T {
	var zero T
	for _, p := range ps {
		if v, ok := p.(T); ok && (match == nil || match(v)) {
			return v
		}
	}
	return zero
}
