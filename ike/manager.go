package ike

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// Peer is one connection: the IKE SA we keep with one peer and the timers
// that drive it.
type Peer struct {
	Name   string
	Config Config
	// Remote is the peer's address; invalid means any peer (responder
	// only). Port 0 means the IKE port 500.
	Remote netip.AddrPort

	DPDDelay  time.Duration // liveness check after this much silence; 0 disables
	RekeyTime time.Duration // IKE SA rekey; 0 disables
	// ChildRekeyTime maps a ChildConfig name to its rekey interval.
	ChildRekeyTime map[string]time.Duration
	// Restart re-initiates the IKE SA (and its CHILD_SAs) when the peer is
	// found dead, as dpd_action = restart does. A DELETE from the peer is
	// not death: what follows it is each CHILD_SA's close_action, which the
	// caller applies on ChildDown events with PeerClosed set (as charon
	// takes close_action, not dpd_action, when the peer deletes the IKE SA).
	Restart bool
}

// Timer is what AfterFunc returns; *time.Timer satisfies it.
type Timer interface{ Stop() bool }

// ManagerConfig wires the manager to its surroundings.
type ManagerConfig struct {
	Peers []Peer
	// Send transmits one IKE message. natt means from and to port 4500
	// with the four-zero-byte non-ESP marker in front (RFC 3948 §2.2);
	// otherwise the IKE port. It must not block for long.
	Send func(to netip.AddrPort, natt bool, b []byte) error
	// OnChild reports CHILD_SAs to install and remove, with the peer's name.
	OnChild func(peer string, ev ChildEvent)
	Log     *slog.Logger
	// AfterFunc schedules timers; nil means time.AfterFunc. Tests pass a
	// fake clock.
	AfterFunc func(d time.Duration, f func()) Timer
	// RetransmitTimeout and RetransmitTries shape retransmission: the n-th
	// resend waits RetransmitTimeout * 1.8^n, as strongSwan's defaults
	// (4s, base 1.8, 5 tries); after the last the peer is dead.
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// Jitter returns a random duration in [0, d) by which a rekey of
	// interval d is brought forward, so that two peers with the same
	// lifetimes do not both rekey at once (strongSwan's rand_time); nil
	// means up to a tenth of the interval, from math/rand.
	Jitter func(d time.Duration) time.Duration

	// CookieThreshold: with this many half-open IKE SAs (we answered
	// IKE_SA_INIT, IKE_AUTH has not come) a new IKE_SA_INIT must carry a
	// COOKIE (RFC 7296 §2.6) before we keep any state for it. 0 means 10,
	// strongSwan's cookie_threshold; negative never asks for cookies.
	CookieThreshold int
	// BlockThreshold limits the half-open IKE SAs of one peer address;
	// further IKE_SA_INITs from it are dropped. 0 means 5, strongSwan's
	// block_threshold; negative means no limit.
	BlockThreshold int
	// HalfOpenTimeout drops a half-open IKE SA that long after its
	// IKE_SA_INIT; 0 means 30 s, strongSwan's half_open_timeout.
	HalfOpenTimeout time.Duration
}

// managed is one IKE SA under the manager's care.
type managed struct {
	peer   *Peer
	sa     *IKESA
	remote netip.AddrPort // where to send: the peer, or the source of its last request
	natt   bool

	retransmits int
	retransmitT Timer
	watchedID   uint32 // request ID the retransmit timer is for
	dpdT        Timer
	rekeyT      Timer
	childT      map[*ChildSA]Timer
	lastHeard   time.Time

	halfOpen  bool                 // counted in Manager.halfOpen: a responder waiting for IKE_AUTH
	halfOpenT Timer                // drops it if IKE_AUTH does not come
	initAddr  netip.Addr           // responder: where its IKE_SA_INIT came from (its byInit key)
	staleT    Timer                // deletes it if replaced by a rekey but kept by the peer
	trapped   map[string]time.Time // CHILD_SAs asked for by Trap, and when
	announced bool                 // "IKE SA established" logged
	goneT     Timer                // forgets it a while after it was replaced and deleted
}

// initKey names a responder by the initiator's address and SPI, which is
// all a retransmitted IKE_SA_INIT request has.
type initKey struct {
	addr netip.Addr
	spii uint64
}

// Manager runs the IKE SAs of all peers: it routes datagrams to them by
// SPI, creates responders for new IKE_SA_INIT requests, and keeps the
// retransmission, liveness and rekey timers. All its methods are safe for
// concurrent use; IKE traffic is light, so one lock serializes it.
type Manager struct {
	mu     sync.Mutex
	cfg    ManagerConfig
	log    *slog.Logger
	bySPI  map[uint64]*managed // our SPI of each IKE SA
	byPeer map[string]*managed // the current IKE SA of each peer
	closed bool

	byInit     map[initKey]*managed // responders by initiator address and SPI
	halfOpen   int                  // responders waiting for IKE_AUTH
	halfOpenBy map[netip.Addr]int   // the same, per initiator address
	cookies    *cookieJar
}

// NewManager checks the peers and returns an idle manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Send == nil {
		return nil, errors.New("ike: manager without Send")
	}
	seen := map[string]bool{}
	for i := range cfg.Peers {
		p := &cfg.Peers[i]
		if seen[p.Name] {
			return nil, fmt.Errorf("ike: peer %q twice", p.Name)
		}
		seen[p.Name] = true
		if err := p.Config.validate(); err != nil {
			return nil, fmt.Errorf("ike: peer %q: %w", p.Name, err)
		}
		if p.Remote.IsValid() && p.Remote.Port() == 0 {
			p.Remote = netip.AddrPortFrom(p.Remote.Addr(), 500)
		}
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if cfg.RetransmitTimeout == 0 {
		cfg.RetransmitTimeout = 4 * time.Second
	}
	if cfg.RetransmitTries == 0 {
		cfg.RetransmitTries = 5
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(d time.Duration) time.Duration {
			if d < 10 {
				return 0
			}
			return time.Duration(rand.Int64N(int64(d / 10)))
		}
	}
	if cfg.CookieThreshold == 0 {
		cfg.CookieThreshold = 10
	}
	if cfg.BlockThreshold == 0 {
		cfg.BlockThreshold = 5
	}
	if cfg.HalfOpenTimeout == 0 {
		cfg.HalfOpenTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Manager{cfg: cfg, log: log, bySPI: map[uint64]*managed{}, byPeer: map[string]*managed{},
		byInit: map[initKey]*managed{}, halfOpenBy: map[netip.Addr]int{}, cookies: newCookieJar()}, nil
}

func (m *Manager) peer(name string) *Peer {
	for i := range m.cfg.Peers {
		if m.cfg.Peers[i].Name == name {
			return &m.cfg.Peers[i]
		}
	}
	return nil
}

// ourSPI is the SPI we chose for s.
func ourSPI(s *IKESA) uint64 {
	if s.initiator {
		return s.spii
	}
	return s.spir
}

// newManaged wraps an IKE SA of peer p, wiring its callbacks.
func (m *Manager) newManaged(p *Peer, remote netip.AddrPort, initiator bool) (*managed, error) {
	ms := &managed{peer: p, remote: remote, childT: map[*ChildSA]Timer{}, lastHeard: time.Now()}
	cfg := m.wire(ms, p.Config)
	send := func(b []byte) error {
		if ms.sa != nil && ms.sa.initiator && !ms.natt {
			// RFC 7296 §2.23: once a NAT is found, move to port 4500.
			if nl, nr := ms.sa.NATDetected(); nl || nr {
				ms.natt = true
				ms.remote = netip.AddrPortFrom(ms.remote.Addr(), 4500)
			}
		}
		return m.cfg.Send(ms.remote, ms.natt, b)
	}
	var err error
	if initiator {
		ms.sa, err = NewInitiator(cfg, send)
	} else {
		ms.sa, err = NewResponder(cfg, send)
	}
	return ms, err
}

// wire points a peer's configuration's callbacks at ms.
func (m *Manager) wire(ms *managed, cfg Config) Config {
	userChild := cfg.OnChild
	cfg.OnChild = func(ev ChildEvent) {
		m.childEvent(ms, ev)
		if userChild != nil {
			userChild(ev)
		}
	}
	cfg.OnRekey = func(old, n *IKESA) { m.ikeRekeyed(ms, n) }
	cfg.OnRedundant = func(x *IKESA) { m.redundant(ms, x) }
	return cfg
}

// Initiate starts the IKE SA of a peer, with its first CHILD_SA in
// IKE_AUTH and the others right after.
func (m *Manager) Initiate(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.initiate(name)
}

func (m *Manager) initiate(name string) error {
	p := m.peer(name)
	if p == nil {
		return fmt.Errorf("ike: no peer %q", name)
	}
	if !p.Remote.IsValid() {
		return fmt.Errorf("ike: peer %q has no address to initiate to", name)
	}
	if cur := m.byPeer[name]; cur != nil && cur.sa.State() < StateFailed {
		return nil // already up or coming up
	}
	// Holding no IKE SA with the peer, tell it to drop any it still has.
	fresh := true
	for _, x := range m.bySPI {
		if x.peer == p && x.sa.State() == StateEstablished {
			fresh = false
		}
	}
	ms, err := m.newManaged(p, p.Remote, true)
	if err != nil {
		return err
	}
	ms.sa.cfg.InitialContact = fresh
	if err := ms.sa.Start(); err != nil {
		return err
	}
	for _, c := range p.Config.Children[1:] {
		if err := ms.sa.CreateChild(c.Name); err != nil {
			return err
		}
	}
	m.bySPI[ourSPI(ms.sa)] = ms
	m.byPeer[name] = ms
	m.after(ms)
	return nil
}

// Terminate deletes the IKE SA of a peer and its CHILD_SAs.
func (m *Manager) Terminate(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.byPeer[name]
	if ms == nil {
		return fmt.Errorf("ike: peer %q has no IKE SA", name)
	}
	err := ms.sa.Delete()
	m.forget(ms)
	return err
}

// Handle takes one IKE datagram (non-ESP marker removed) that arrived
// from `from`, on port 4500 if natt.
func (m *Manager) Handle(from netip.AddrPort, natt bool, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	h, err := message.ParseHeader(b)
	if err != nil {
		m.log.Debug("ike: drop datagram", "from", from, "err", err)
		return
	}
	ours := h.SPIi
	if h.Flags&message.FlagInitiator != 0 {
		ours = h.SPIr // the sender is the original initiator
	}
	ms := m.bySPI[ours]
	if ms == nil && ours == 0 && h.Exchange == message.IKESAInit && h.Flags&message.FlagResponse == 0 {
		// A retransmitted request reaches the responder already made.
		if ms = m.byInit[initKey{from.Addr(), h.SPIi}]; ms == nil {
			if !m.admit(from, natt, h, b) {
				return
			}
			if ms = m.responderFor(from); ms == nil {
				return
			}
		}
	}
	if ms == nil {
		m.log.Debug("ike: drop: unknown IKE SA", "from", from, "spii", fmt.Sprintf("%016x", h.SPIi), "spir", fmt.Sprintf("%016x", h.SPIr))
		return
	}
	if !ms.sa.initiator {
		// Answer where the request came from (NAT mappings change).
		ms.remote, ms.natt = from, natt
	}
	err = ms.sa.Handle(b)
	if err != nil {
		m.log.Info("ike", "peer", ms.peer.Name, "err", err)
	}
	ms.lastHeard = time.Now()
	if ms.sa.initiator && ms.sa.State() == StateInitSent && ourSPI(ms.sa) != 0 {
		// (Re)register: the SPI is known from Start on.
		m.bySPI[ourSPI(ms.sa)] = ms
	}
	if !ms.sa.initiator && ms.sa.State() == StateInitDone && !ms.halfOpen {
		m.bySPI[ourSPI(ms.sa)] = ms
		ms.initAddr = from.Addr()
		m.byInit[initKey{ms.initAddr, ms.sa.spii}] = ms
		m.countHalfOpen(ms, true)
		ms.halfOpenT = m.cfg.AfterFunc(m.cfg.HalfOpenTimeout, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if !m.closed && ms.sa.State() == StateInitDone {
				m.log.Info("ike: half-open IKE SA timed out", "peer", ms.peer.Name, "from", ms.remote)
				ms.sa.fail(errors.New("ike: no IKE_AUTH after IKE_SA_INIT"))
				m.forget(ms)
			}
		})
	}
	m.after(ms)
}

// countHalfOpen adds or removes a responder from the half-open counts.
func (m *Manager) countHalfOpen(ms *managed, open bool) {
	if ms.halfOpen == open {
		return
	}
	ms.halfOpen = open
	addr := ms.initAddr
	if open {
		m.halfOpen++
		m.halfOpenBy[addr]++
		return
	}
	m.halfOpen--
	if m.halfOpenBy[addr]--; m.halfOpenBy[addr] <= 0 {
		delete(m.halfOpenBy, addr)
	}
	if ms.halfOpenT != nil {
		ms.halfOpenT.Stop()
	}
}

// admit decides whether a new IKE_SA_INIT request may make a responder:
// not beyond the per-address limit, and above the cookie threshold only
// with a valid COOKIE; otherwise it is answered with one, statelessly.
func (m *Manager) admit(from netip.AddrPort, natt bool, h message.Header, b []byte) bool {
	if m.cfg.BlockThreshold > 0 && m.halfOpenBy[from.Addr()] >= m.cfg.BlockThreshold {
		m.log.Debug("ike: drop IKE_SA_INIT: too many half-open IKE SAs from this address", "from", from)
		return false
	}
	if m.cfg.CookieThreshold < 0 || m.halfOpen < m.cfg.CookieThreshold {
		return true
	}
	req, err := message.Parse(b)
	if err != nil {
		return false
	}
	nonce := find[*message.Nonce](req.Payloads, nil)
	if nonce == nil {
		return false
	}
	// RFC 7296 §2.6: the cookie is the first payload.
	if n, ok := req.Payloads[0].(*message.Notify); ok && n.NotifyType == message.Cookie &&
		m.cookies.valid(n.Data, nonce.Data, from.Addr(), h.SPIi) {
		return true
	}
	resp := &message.Message{
		Header:   message.Header{SPIi: h.SPIi, Exchange: message.IKESAInit, Flags: message.FlagResponse},
		Payloads: []message.Payload{&message.Notify{NotifyType: message.Cookie, Data: m.cookies.make(nonce.Data, from.Addr(), h.SPIi)}},
	}
	if out, err := resp.Marshal(); err == nil {
		m.cfg.Send(from, natt, out)
	}
	return false
}

// HalfOpen is the number of IKE SAs we answered IKE_SA_INIT for that
// wait for IKE_AUTH.
func (m *Manager) HalfOpen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.halfOpen
}

// responderFor finds the peer an IKE_SA_INIT request is for, by address,
// and makes a responder for it.
func (m *Manager) responderFor(from netip.AddrPort) *managed {
	var p *Peer
	for i := range m.cfg.Peers {
		q := &m.cfg.Peers[i]
		if q.Remote.Addr() == from.Addr() || (!q.Remote.IsValid() && p == nil) {
			p = q
			if q.Remote.IsValid() {
				break
			}
		}
	}
	if p == nil {
		m.log.Info("ike: IKE_SA_INIT from an unknown peer", "from", from)
		return nil
	}
	ms, err := m.newManaged(p, from, false)
	if err != nil {
		m.log.Warn("ike: responder", "peer", p.Name, "err", err)
		return nil
	}
	if !p.Remote.IsValid() {
		// Several peers may take anyone: the identities in IKE_AUTH
		// decide which one this is, as strongSwan picks a peer_cfg.
		ms.sa.choosePeer = func(idi Identity, idr *Identity) error { return m.choosePeer(ms, idi, idr) }
		for i := range m.cfg.Peers {
			if q := &m.cfg.Peers[i]; q != p && !q.Remote.IsValid() {
				ms.sa.otherCAs = append(ms.sa.otherCAs, q.Config.CACerts...)
				ms.sa.otherSigns = ms.sa.otherSigns || q.Config.usesCerts()
			}
		}
	}
	return ms
}

// choosePeer settles which %any peer a responder's IKE SA belongs to, by
// the initiator's identity and the one it asks us to be: the first peer
// expecting exactly that identity, else the first expecting %any, whose
// IKE proposals allow what IKE_SA_INIT chose.
func (m *Manager) choosePeer(ms *managed, idi Identity, idr *Identity) error {
	var best *Peer
	bestScore := 0
	for i := range m.cfg.Peers {
		q := &m.cfg.Peers[i]
		if q.Remote.IsValid() || (idr != nil && !idr.equal(q.Config.LocalID)) || !acceptsSuite(q.Config.IKEProposals, ms.sa.ike) {
			continue
		}
		score := 0
		switch {
		case q.Config.RemoteID.equal(idi):
			score = 2
		case q.Config.RemoteID.IsAny():
			score = 1
		}
		if score > bestScore {
			best, bestScore = q, score
		}
	}
	if best == nil {
		return fmt.Errorf("%w: no connection takes peer %v", ErrIdentityMismatch, idi)
	}
	if best != ms.peer {
		m.log.Info("ike: peer chosen by identity", "peer", best.Name, "id", idi.String())
		ms.peer = best
		cfg := m.wire(ms, best.Config)
		cfg.Local, cfg.Remote = ms.sa.cfg.Local, ms.sa.cfg.Remote
		ms.sa.cfg = cfg
	}
	return nil
}

// acceptsSuite reports whether one of ps contains every transform of st.
func acceptsSuite(ps []sa.Proposal, st suite) bool {
	for _, p := range ps {
		if p.Protocol == st.proto && slices.Contains(p.Encr, st.enc) && slices.Contains(p.PRF, st.prf) && slices.Contains(p.DH, st.dh) &&
			(st.integ == sa.IntegNone && len(p.Integ) == 0 || slices.Contains(p.Integ, st.integ)) {
			return true
		}
	}
	return false
}

// after looks at an IKE SA once it has acted, and sets its timers.
func (m *Manager) after(ms *managed) {
	s := ms.sa
	if ms.halfOpen && s.State() != StateInitDone {
		m.countHalfOpen(ms, false)
	}
	switch s.State() {
	case StateFailed, StateDeleted:
		if m.byPeer[ms.peer.Name] == ms {
			if s.State() == StateFailed {
				m.log.Warn("ike: IKE SA failed", "peer", ms.peer.Name, "err", s.Err())
			}
			m.forget(ms)
		} else if s.Successor() == nil {
			m.forget(ms)
		} else if ms.goneT == nil {
			// Replaced by a rekey: kept a while to answer the peer's
			// retransmitted Delete, then forgotten.
			ms.goneT = m.cfg.AfterFunc(replacedLinger, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				if !m.closed {
					m.forget(ms)
				}
			})
		}
		return
	case StateEstablished:
		if s.peerInitialContact {
			s.peerInitialContact = false
			m.dropOthers(ms)
		}
		if m.byPeer[ms.peer.Name] != ms && s.Successor() == nil {
			// A second IKE SA with the same peer (both sides initiated, or
			// the peer restarted) becomes the current one; the other stays
			// until it is deleted or dies, as strongSwan's unique = no.
			m.byPeer[ms.peer.Name] = ms
		}
		if !ms.announced {
			// Once per IKE SA, initiator or responder (a rekey's
			// successor is announced by ikeRekeyed).
			ms.announced = true
			m.log.Info("ike: IKE SA established", "peer", ms.peer.Name, "proposal", s.Proposal(), "peer_id", s.PeerID().String(), "auth", s.PeerAuth())
			if err := s.ChildErr(); err != nil {
				m.log.Warn("ike: first CHILD_SA refused", "peer", ms.peer.Name, "err", err)
			}
		}
		if ms.rekeyT == nil && ms.peer.RekeyTime > 0 {
			ms.rekeyT = m.cfg.AfterFunc(m.rekeyDelay(ms.peer.RekeyTime), func() { m.timer(ms, func() error { return ms.sa.Rekey() }) })
		}
		m.armDPD(ms)
	}
	m.armRetransmit(ms)
}

func (m *Manager) armRetransmit(ms *managed) {
	s := ms.sa
	if s.lastRequest == nil {
		if ms.retransmitT != nil {
			ms.retransmitT.Stop()
			ms.retransmitT = nil
		}
		return
	}
	id := s.nextRequestID - 1
	if ms.retransmitT != nil && ms.watchedID == id {
		return // this request is already watched
	}
	if ms.retransmitT != nil {
		ms.retransmitT.Stop()
	}
	ms.watchedID, ms.retransmits = id, 0
	m.scheduleRetransmit(ms)
}

func (m *Manager) scheduleRetransmit(ms *managed) {
	d := time.Duration(float64(m.cfg.RetransmitTimeout) * math.Pow(1.8, float64(ms.retransmits)))
	ms.retransmitT = m.cfg.AfterFunc(d, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		s := ms.sa
		if m.closed || s.lastRequest == nil || s.nextRequestID-1 != ms.watchedID {
			return
		}
		if ms.retransmits >= m.cfg.RetransmitTries {
			m.log.Warn("ike: peer does not answer", "peer", ms.peer.Name, "tries", ms.retransmits)
			s.fail(errors.New("ike: peer not responding"))
			m.forget(ms)
			if ms.peer.Restart && ms.peer.Remote.IsValid() {
				m.initiate(ms.peer.Name)
			}
			return
		}
		ms.retransmits++
		if err := s.Retransmit(); err != nil {
			m.log.Info("ike: retransmit", "peer", ms.peer.Name, "err", err)
		}
		m.scheduleRetransmit(ms)
	})
}

func (m *Manager) armDPD(ms *managed) {
	if ms.peer.DPDDelay <= 0 {
		return
	}
	if ms.dpdT != nil {
		ms.dpdT.Stop()
	}
	ms.dpdT = m.cfg.AfterFunc(ms.peer.DPDDelay, func() {
		m.timer(ms, func() error {
			if ms.sa.lastRequest != nil {
				return nil // a request is out: its retransmissions test the peer
			}
			return ms.sa.CheckLiveness()
		})
	})
}

// timer runs a timed action on an IKE SA that is still current.
func (m *Manager) timer(ms *managed, action func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || ms.sa.State() != StateEstablished || ms.sa.Successor() != nil {
		return
	}
	if err := action(); err != nil {
		m.log.Info("ike: timer", "peer", ms.peer.Name, "err", err)
	}
	m.after(ms)
}

func (m *Manager) childEvent(ms *managed, ev ChildEvent) {
	switch ev.Kind {
	case ChildUp:
		delete(ms.trapped, ev.Child.Name)
		if d := ms.peer.ChildRekeyTime[ev.Child.Name]; d > 0 {
			c := ev.Child
			ms.childT[c] = m.cfg.AfterFunc(m.rekeyDelay(d), func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				cur := m.current(ms) // the CHILD_SA may have moved by an IKE SA rekey
				if m.closed || cur.sa.State() != StateEstablished || !slices.Contains(cur.sa.children, c) {
					return
				}
				if err := cur.sa.RekeyChild(c); err != nil {
					m.log.Info("ike: CHILD_SA rekey", "peer", cur.peer.Name, "err", err)
				}
				m.after(cur)
			})
		}
	case ChildDown:
		if t := ms.childT[ev.Child]; t != nil {
			t.Stop()
			delete(ms.childT, ev.Child)
		}
	}
	if m.cfg.OnChild != nil {
		m.cfg.OnChild(ms.peer.Name, ev)
	}
}

// rekeyDelay is a rekey interval brought forward by the jitter.
func (m *Manager) rekeyDelay(d time.Duration) time.Duration {
	j := m.cfg.Jitter(d)
	if j < 0 || j >= d {
		j = 0
	}
	return d - j
}

// current follows rekeys to the IKE SA that now carries ms's CHILD_SAs;
// the IKE SAs in between may be forgotten already.
func (m *Manager) current(ms *managed) *managed {
	s := ms.sa
	for s.Successor() != nil {
		s = s.Successor()
	}
	if n := m.bySPI[ourSPI(s)]; n != nil && n.sa == s {
		return n
	}
	return ms
}

// replacedLinger is how long an IKE SA replaced by a rekey and deleted is
// kept to answer retransmissions of the peer's Delete.
const replacedLinger = 30 * time.Second

func (m *Manager) ikeRekeyed(old *managed, n *IKESA) {
	ms := &managed{peer: old.peer, sa: n, remote: old.remote, natt: old.natt, childT: old.childT, lastHeard: time.Now(), announced: true}
	old.childT = map[*ChildSA]Timer{}
	// The successor reports to the same callbacks (cfg is shared), but
	// those closures name old: rewire them to the successor.
	cfg := n.cfg
	userChild := old.peer.Config.OnChild
	cfg.OnChild = func(ev ChildEvent) {
		m.childEvent(ms, ev)
		if userChild != nil {
			userChild(ev)
		}
	}
	cfg.OnRekey = func(_, nn *IKESA) { m.ikeRekeyed(ms, nn) }
	cfg.OnRedundant = func(x *IKESA) { m.redundant(ms, x) }
	n.cfg = cfg
	n.send = func(b []byte) error { return m.cfg.Send(ms.remote, ms.natt, b) }
	m.bySPI[ourSPI(n)] = ms
	m.byPeer[old.peer.Name] = ms
	if old.rekeyT != nil {
		old.rekeyT.Stop()
	}
	if old.dpdT != nil {
		old.dpdT.Stop()
	}
	m.log.Info("ike: IKE SA rekeyed", "peer", old.peer.Name)
	// The peer deletes the IKE SA it replaced, or the redundant one of a
	// collision it lost. Should it not (it may not have noticed the
	// collision), we delete it ourselves after a while.
	old.staleT = m.cfg.AfterFunc(2*m.cfg.RetransmitTimeout, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.closed && old.sa.State() == StateEstablished && old.sa.Successor() != nil {
			m.log.Info("ike: deleting a replaced IKE SA the peer kept", "peer", old.peer.Name)
			if err := old.sa.Delete(); err != nil {
				m.log.Info("ike: delete", "peer", old.peer.Name, "err", err)
			}
			m.after(old)
		}
	})
	m.after(ms)
}

// redundant takes the IKE SA of a rekey collision we lost, whose Delete
// is out: its retransmissions and the answer go through the tables, and
// it is forgotten once answered or given up.
func (m *Manager) redundant(of *managed, x *IKESA) {
	ms := &managed{peer: of.peer, sa: x, remote: of.remote, natt: of.natt, childT: map[*ChildSA]Timer{}, lastHeard: time.Now()}
	x.send = func(b []byte) error { return m.cfg.Send(ms.remote, ms.natt, b) }
	m.bySPI[ourSPI(x)] = ms
	m.log.Info("ike: IKE SA rekey collision lost, deleting the redundant IKE SA", "peer", of.peer.Name)
	m.armRetransmit(ms)
}

// dropOthers removes, without telling the peer, every other IKE SA with
// the peer and identity of ms, after the peer's INITIAL_CONTACT: it has
// restarted and forgotten them (RFC 7296 §3.10.1).
func (m *Manager) dropOthers(ms *managed) {
	for _, x := range m.bySPI {
		if x == ms || x.peer != ms.peer || !x.sa.peerID.equal(ms.sa.peerID) || x.sa.State() != StateEstablished {
			continue
		}
		m.log.Info("ike: peer restarted, dropping its old IKE SA", "peer", x.peer.Name)
		for _, c := range x.sa.Children() {
			x.sa.removeChild(c)
		}
		x.sa.state = StateDeleted
		m.forget(x)
	}
}

// forget drops an IKE SA from the tables and stops its timers.
func (m *Manager) forget(ms *managed) {
	for _, t := range []Timer{ms.retransmitT, ms.dpdT, ms.rekeyT, ms.staleT, ms.goneT} {
		if t != nil {
			t.Stop()
		}
	}
	for c, t := range ms.childT {
		t.Stop()
		delete(ms.childT, c)
	}
	m.countHalfOpen(ms, false)
	for spi, x := range m.bySPI {
		if x == ms {
			delete(m.bySPI, spi)
		}
	}
	if k := (initKey{ms.initAddr, ms.sa.spii}); m.byInit[k] == ms {
		delete(m.byInit, k)
	}
	if m.byPeer[ms.peer.Name] == ms {
		delete(m.byPeer, ms.peer.Name)
	}
}

// IKESA returns the current IKE SA of a peer, or nil. Its fields must only
// be read while no datagram or timer is being handled; Status is the safe
// way to look.
func (m *Manager) IKESA(name string) *IKESA {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms := m.byPeer[name]; ms != nil {
		return ms.sa
	}
	return nil
}

// Status describes one peer's IKE SA for `isle status`.
type Status struct {
	Peer       string
	State      State
	Initiator  bool
	SPIi, SPIr uint64
	Proposal   string
	NATLocal   bool
	NATRemote  bool
	Children   []ChildSA // copies without keys
	PeerID     Identity  // the identity the peer proved (once established)
	PeerAuth   string    // how it proved it: "SHARED_KEY_MIC", "ECDSA_WITH_SHA2_256", ...
}

// Status lists the IKE SAs, one per peer that has one.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, p := range m.cfg.Peers {
		ms := m.byPeer[p.Name]
		if ms == nil {
			continue
		}
		s := ms.sa
		st := Status{Peer: p.Name, State: s.State(), Initiator: s.initiator, SPIi: s.spii, SPIr: s.spir, Proposal: s.Proposal(),
			PeerID: s.PeerID(), PeerAuth: s.PeerAuth()}
		st.NATLocal, st.NATRemote = s.NATDetected()
		for _, c := range s.children {
			cc := *c
			cc.InboundEncKey, cc.InboundIntegKey, cc.OutboundEncKey, cc.OutboundIntegKey = nil, nil, nil, nil
			st.Children = append(st.Children, cc)
		}
		out = append(out, st)
	}
	return out
}

// Close stops every timer; IKE SAs are left as they are (the caller
// deletes them first with Terminate if the peers should know).
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, ms := range m.bySPI {
		m.forget(ms)
	}
	for _, ms := range m.byPeer {
		m.forget(ms)
	}
}

// CheckLiveness sends a liveness check to a peer now (dead peer detection
// on demand); the retransmission timers decide if the peer is dead.
func (m *Manager) CheckLiveness(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.byPeer[name]
	if ms == nil {
		return fmt.Errorf("ike: peer %q has no IKE SA", name)
	}
	err := ms.sa.CheckLiveness()
	m.after(ms)
	return err
}

// RekeyChild rekeys the CHILD_SA of a peer that receives on inboundSPI,
// for the gateway to call when an SA reaches its soft byte or packet
// limit (sa.Event).
func (m *Manager) RekeyChild(name string, inboundSPI uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.byPeer[name]
	if ms == nil {
		return fmt.Errorf("ike: peer %q has no IKE SA", name)
	}
	for _, c := range ms.sa.children {
		if c.InboundSPI == inboundSPI {
			err := ms.sa.RekeyChild(c)
			m.after(ms)
			return err
		}
	}
	return fmt.Errorf("ike: peer %q has no CHILD_SA %08x", name, inboundSPI)
}

// RekeyIKE rekeys the IKE SA of a peer now (swanctl --rekey --ike).
func (m *Manager) RekeyIKE(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.byPeer[name]
	if ms == nil {
		return fmt.Errorf("ike: peer %q has no IKE SA", name)
	}
	err := ms.sa.Rekey()
	m.after(ms)
	return err
}

// DeleteChild deletes one CHILD_SA of a peer, by its configured name,
// with an INFORMATIONAL DELETE for that pair alone (RFC 7296 §1.4.1); the
// IKE SA and the other CHILD_SAs stay. Ours goes down when the peer's
// answer (naming its side of the pair) arrives, reported as ChildDown. A
// CHILD_SA caught between a rekey and the deletion of its old pair has
// two pairs of that name: both are deleted.
func (m *Manager) DeleteChild(peer, child string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.byPeer[peer]
	if ms == nil {
		return fmt.Errorf("ike: peer %q has no IKE SA", peer)
	}
	if st := ms.sa.State(); st != StateEstablished {
		return fmt.Errorf("ike: peer %q: IKE SA is %v", peer, st)
	}
	n := 0
	for _, c := range ms.sa.Children() {
		if c.Name != child || c.deleting {
			continue
		}
		if err := ms.sa.DeleteChild(c); err != nil {
			return fmt.Errorf("ike: peer %q: deleting CHILD_SA %q: %w", peer, child, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("ike: peer %q has no CHILD_SA %q", peer, child)
	}
	delete(ms.trapped, child) // a later Trap or `isle up` may start it again at once
	m.after(ms)
	return nil
}
