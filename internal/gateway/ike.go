package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/dataplane"
	"github.com/isle-ipsec/isle/internal/keylog"
	"github.com/isle-ipsec/isle/internal/status"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// Each group of connections (group.go: usually one connection) has its
// own ike.Manager: a reload then adds, replaces or removes a connection
// without touching the IKE SAs of the others. Datagrams reach the right
// manager by the rules of ike.Manager itself: a new IKE_SA_INIT by the
// peer's address (or to the %any group), everything else by SPI (every
// manager sees it; those that do not know the SPI drop it).

// conn is one running [connections.NAME].
type conn struct {
	g    *Gateway
	conf config.Connection
	psk  []byte       // what [secrets] gives its identities, for reload
	mgr  *ike.Manager // its group's
	grp  *group
	log  *slog.Logger

	mu       sync.Mutex            // guards what follows; never held while calling mgr
	children map[uint32]*installed // by inbound SPI
	current  map[string]uint32     // dataplane child name → inbound SPI installed under it
	// pending are rekeyed CHILD_SAs whose inbound SA is installed but
	// whose outbound SA waits until the old SA is deleted (or traffic
	// comes in on the new one), by dataplane name: the peer may not have
	// installed its inbound SA yet (the responder of a rekey installs
	// before the initiator has the answer), as strongSwan does it.
	pending map[string]*installed
	remote  netip.AddrPort // the peer's IKE address when its CHILD_SA was last installed
	ikeSeen map[[2]uint64]time.Time
	// traps are the children whose trap is in the dataplane (trap.go),
	// by [children] name; trapWhy is the setting that armed each, for
	// status.
	traps   map[string]bool
	trapWhy map[string]string
}

// installed is a CHILD_SA in the dataplane.
type installed struct {
	child     string // its [children] name
	dpName    string // its dataplane name, "conn/child"
	in, out   *sa.SA
	inCfg     sa.Config // without keys, for keylog removal
	outCfg    sa.Config
	localTS   []string
	remoteTS  []string
	installed time.Time
	rekey     time.Duration

	localSel, remoteSel []policy.Selector
	waitsFor            uint32 // while pending: the inbound SPI of the SA it replaces
}

// switchOut starts sending on a rekeyed CHILD_SA's new outbound SA (the
// new inbound one is installed already); it reports whether one was
// waiting. Called without cs.mu held.
func (cs *conn) switchOut(name string, why string) bool {
	cs.mu.Lock()
	inst := cs.pending[name]
	if inst == nil || cs.current[name] != inst.in.SPI() {
		delete(cs.pending, name)
		cs.mu.Unlock()
		return false
	}
	delete(cs.pending, name)
	cs.mu.Unlock()
	if err := cs.g.dp.AddChild(dataplane.Child{Name: name, Local: inst.localSel, Remote: inst.remoteSel, Out: inst.out, In: inst.in}); err != nil {
		cs.log.Error("CHILD_SA: switching to the new outbound SA", "child", inst.child, "err", err)
		return false
	}
	cs.log.Debug("CHILD_SA: sending on the new outbound SA", "child", inst.child, "spi_out", status.SPI32(inst.out.SPI()), "because", why)
	return true
}

func dpName(connName, child string) string { return connName + "/" + child }

// newConn is the state of one connection in a group; the group's
// manager negotiates for it.
func (g *Gateway) newConn(c config.Connection, cfg *config.Config, gr *group) *conn {
	return &conn{g: g, conf: c, psk: connPSK(cfg, c), log: g.log.With("conn", c.Name), grp: gr,
		children: map[uint32]*installed{}, current: map[string]uint32{}, pending: map[string]*installed{},
		ikeSeen: map[[2]uint64]time.Time{}, traps: map[string]bool{}}
}

// canInitiate: the connection has a peer address to initiate to.
func (cs *conn) canInitiate() bool { return !cs.conf.RemoteAny && len(cs.conf.RemoteAddrs) > 0 }

// wantsStart: some child says start.
func (cs *conn) wantsStart() bool {
	if !cs.canInitiate() {
		return false
	}
	for _, ch := range cs.conf.Children {
		if ch.StartAction == config.StartStart {
			return true
		}
	}
	return false
}

// start arms the traps of the children with start_action = trap and
// initiates if some child says start.
func (cs *conn) start() {
	for _, name := range cs.trappedAtStart() {
		if !cs.canInitiate() {
			cs.log.Warn("start_action = trap needs a peer address to initiate to (remote_addrs); child not trapped", "child", name)
			continue
		}
		cs.armTrap(name, "start_action")
	}
	if !cs.wantsStart() {
		return
	}
	if err := cs.mgr.Initiate(cs.conf.Name); err != nil {
		cs.log.Warn("initiate", "err", err)
		return
	}
	cs.log.Info("initiating", "remote", cs.conf.RemoteAddrs[0].String())
}

// trappedAtStart lists the children with start_action = trap, in file
// order.
func (cs *conn) trappedAtStart() []string {
	var out []string
	for _, ch := range cs.conf.Children {
		if ch.StartAction == config.StartTrap {
			out = append(out, ch.Name)
		}
	}
	return out
}

// observe notes IKE SAs that became established (for status, keylog and
// metrics) and forgets those that are gone.
func (cs *conn) observe() {
	sts := cs.ikeStatus()
	live := map[[2]uint64]bool{}
	var fresh []ike.Status
	cs.mu.Lock()
	for _, st := range sts {
		if st.State != ike.StateEstablished {
			continue
		}
		k := [2]uint64{st.SPIi, st.SPIr}
		live[k] = true
		if _, ok := cs.ikeSeen[k]; !ok {
			cs.ikeSeen[k] = time.Now()
			fresh = append(fresh, st)
		}
	}
	var gone [][2]uint64
	for k := range cs.ikeSeen {
		if !live[k] {
			delete(cs.ikeSeen, k)
			gone = append(gone, k)
		}
	}
	before := len(cs.ikeSeen) - len(fresh)
	cs.mu.Unlock()
	kl := cs.g.keylog
	for _, st := range fresh {
		verb := "IKE_SA up"
		if before > 0 || len(gone) > 0 {
			verb = "IKE_SA rekeyed"
			cs.g.counters.Rekey("ike")
			cs.g.counters.Exchange("CREATE_CHILD_SA")
		} else {
			cs.g.counters.Exchange("IKE_SA_INIT")
			cs.g.counters.Exchange("IKE_AUTH")
		}
		cs.log.Info(verb, "spi_i", status.SPI64(st.SPIi), "spi_r", status.SPI64(st.SPIr),
			"initiator", st.Initiator, "proposal", st.Proposal, "nat_local", st.NATLocal, "nat_remote", st.NATRemote)
		if kl != nil {
			if s := cs.mgr.IKESA(cs.conf.Name); s != nil {
				if i, r := s.SPIs(); i == st.SPIi && r == st.SPIr {
					if k, ok := s.SecretKeys(); ok {
						if err := kl.AddIKE(keylog.IKE{
							SPIi: k.SPIi, SPIr: k.SPIr, Enc: k.Enc.Alg, EncKeyBits: k.Enc.KeyBits,
							SKei: k.SKei, SKer: k.SKer, Integ: k.Integ, SKai: k.SKai, SKar: k.SKar,
						}); err != nil {
							cs.log.Warn("keylog", "err", err)
						}
					}
				}
			}
		}
	}
	for _, k := range gone {
		cs.log.Info("IKE_SA down", "spi_i", status.SPI64(k[0]), "spi_r", status.SPI64(k[1]))
		if kl != nil {
			kl.RemoveIKE(k[0], k[1])
		}
	}
}

// onChild installs and removes CHILD_SAs. It runs inside the manager's
// lock: it must not call the manager.
func (cs *conn) onChild(ev ike.ChildEvent) {
	c := ev.Child
	switch ev.Kind {
	case ike.ChildUp:
		if err := cs.install(c, ev.Replaces); err != nil {
			cs.log.Error("CHILD_SA not installed", "child", c.Name, "spi_in", status.SPI32(c.InboundSPI), "err", err)
		}
	case ike.ChildDown:
		cs.uninstall(c, ev.PeerClosed)
		c.Clear()
	}
}

func (cs *conn) install(c *ike.ChildSA, replaces *ike.ChildSA) error {
	chConf, ok := cs.conf.Child(c.Name)
	if !ok {
		return fmt.Errorf("no child %q in the configuration", c.Name)
	}
	from, natt := cs.grp.last()
	cs.mu.Lock()
	cs.remote = from
	cs.mu.Unlock()
	remote := from.Addr().Unmap()
	if !remote.IsValid() {
		return errors.New("no peer address")
	}
	local, err := localAddrFor(cs.conf, remote)
	if err != nil {
		return err
	}
	inCfg, outCfg := c.SAConfigs()
	encap := natt && c.Protocol == sa.ProtoESP
	var lp, rp uint16
	if encap {
		lp, rp = cs.g.cfgNATTPort(), from.Port()
	}
	life := sa.Lifetime{}
	if chConf.RekeyTime > 0 {
		life.Hard.Time = hardOf(chConf.RekeyTime)
	}
	life.Soft.Bytes, life.Hard.Bytes = chConf.RekeyBytes, hardBytes(chConf.RekeyBytes)
	life.Soft.Packets, life.Hard.Packets = chConf.RekeyPackets, hardPackets(chConf.RekeyPackets)
	inSPI := c.InboundSPI
	var rekeyOnce sync.Once // both SAs of the pair may reach a soft limit
	notify := func(e sa.Event) {
		if e.Kind != sa.EventRekey {
			dir := "out"
			if e.SA.Inbound() {
				dir = "in"
			}
			cs.log.Info("CHILD_SA expired", "child", c.Name, "spi_in", status.SPI32(inSPI), "sa", dir,
				"spi", status.SPI32(e.SA.SPI()), "limit", e.Limit.String())
			return
		}
		// Not from the packet path, and never inside the manager.
		rekeyOnce.Do(func() {
			go func() {
				cs.log.Info("CHILD_SA soft limit reached, rekeying", "child", c.Name, "spi_in", status.SPI32(inSPI), "limit", e.Limit.String())
				if err := cs.mgr.RekeyChild(cs.conf.Name, inSPI); err != nil {
					cs.log.Info("CHILD_SA rekey", "child", c.Name, "err", err)
				}
			}()
		})
	}
	for _, x := range []*sa.Config{&inCfg, &outCfg} {
		x.Encap = encap
		x.Local = netip.AddrPortFrom(local, lp)
		x.Remote = netip.AddrPortFrom(remote, rp)
		x.Lifetime = life
		x.Notify = notify
	}
	inCfg.ReplayWindow = chConf.ReplayWindow
	in, err := sa.New(inCfg)
	if err != nil {
		return fmt.Errorf("inbound SA: %w", err)
	}
	out, err := sa.New(outCfg)
	if err != nil {
		in.Close()
		return fmt.Errorf("outbound SA: %w", err)
	}
	name := dpName(cs.conf.Name, c.Name)
	// Make before break: a rekey installs the new inbound SA next to the
	// old one at once, but keeps sending on the old outbound SA until
	// the old pair is deleted (switchOut).
	sendWith := out
	cs.mu.Lock()
	var old *installed
	if replaces != nil && cs.current[name] == replaces.InboundSPI {
		old = cs.children[replaces.InboundSPI]
	}
	cs.mu.Unlock()
	if old != nil {
		sendWith = old.out
	}
	if err := cs.g.dp.AddChild(dataplane.Child{Name: name, Local: c.LocalTS, Remote: c.RemoteTS, Out: sendWith, In: in}); err != nil {
		in.Close()
		out.Close()
		return err
	}
	if kl := cs.g.keylog; kl != nil {
		for _, x := range []sa.Config{inCfg, outCfg} {
			if err := kl.AddSA(x); err != nil {
				cs.log.Warn("keylog", "err", err)
			}
		}
	}
	inst := &installed{child: c.Name, dpName: name, in: in, out: out, installed: time.Now(), rekey: chConf.RekeyTime,
		localSel: c.LocalTS, remoteSel: c.RemoteTS, waitsFor: 0}
	if old != nil {
		inst.waitsFor = replaces.InboundSPI
	}
	inst.inCfg, inst.outCfg = withoutKeys(inCfg), withoutKeys(outCfg)
	for _, s := range c.LocalTS {
		inst.localTS = append(inst.localTS, s.String())
	}
	for _, s := range c.RemoteTS {
		inst.remoteTS = append(inst.remoteTS, s.String())
	}
	if chConf.StartAction != config.StartTrap {
		// A trap armed by dpd_action or close_action has done its job;
		// start_action = trap stays armed for the next time it is down.
		cs.disarmTrap(c.Name)
	}
	cs.mu.Lock()
	cs.children[c.InboundSPI] = inst
	cs.current[name] = c.InboundSPI
	if old != nil {
		cs.pending[name] = inst
	} else {
		delete(cs.pending, name)
	}
	cs.mu.Unlock()
	verb := "CHILD_SA up"
	if replaces != nil {
		verb = "CHILD_SA rekeyed"
		cs.g.counters.Rekey("child")
		cs.g.counters.Exchange("CREATE_CHILD_SA")
	}
	args := []any{"child", c.Name, "spi_in", status.SPI32(c.InboundSPI), "spi_out", status.SPI32(c.OutboundSPI),
		"protocol", c.Protocol.String(), "proposal", status.ProposalOf(out), "encap", encap,
		"local_ts", fmt.Sprint(c.LocalTS), "remote_ts", fmt.Sprint(c.RemoteTS)}
	if c.PFS != sa.DHNone {
		args = append(args, "pfs", c.PFS.String())
	}
	if replaces != nil {
		args = append(args, "old_spi_in", status.SPI32(replaces.InboundSPI), "old_spi_out", status.SPI32(replaces.OutboundSPI))
	}
	cs.log.Info(verb, args...)
	return nil
}

func withoutKeys(c sa.Config) sa.Config {
	c.EncKey, c.IntegKey, c.Notify = nil, nil, nil
	return c
}

// uninstall removes a CHILD_SA that went down: the whole child if it is
// the one installed under its name, else only its inbound SPI (a rekey's
// old SA, make-before-break). peerClosed: the peer's DELETE ended it,
// and its close_action decides what follows.
func (cs *conn) uninstall(c *ike.ChildSA, peerClosed bool) {
	cs.mu.Lock()
	inst := cs.children[c.InboundSPI]
	if inst == nil {
		cs.mu.Unlock()
		return
	}
	delete(cs.children, c.InboundSPI)
	isCurrent := cs.current[inst.dpName] == c.InboundSPI
	if isCurrent {
		delete(cs.current, inst.dpName)
	}
	peerClosed = peerClosed && isCurrent
	switchFirst := false
	if p := cs.pending[inst.dpName]; p != nil && p.waitsFor == c.InboundSPI {
		switchFirst = true
	}
	cs.mu.Unlock()
	if switchFirst {
		cs.switchOut(inst.dpName, "the old SA is deleted")
	}
	cs.remove(inst, c.InboundSPI, isCurrent)
	if isCurrent {
		cs.log.Info("CHILD_SA down", "child", c.Name, "spi_in", status.SPI32(c.InboundSPI), "spi_out", status.SPI32(c.OutboundSPI))
	} else {
		cs.log.Debug("CHILD_SA retired after rekey", "child", c.Name, "spi_in", status.SPI32(c.InboundSPI))
	}
	if peerClosed {
		cs.closed(c.Name)
	}
}

// closed applies a child's close_action after the peer deleted it: none
// leaves it down; start negotiates it again at once (CREATE_CHILD_SA, or
// a new IKE SA with all the connection's children if the peer deleted
// the IKE SA); trap arms its trap, so that its next packet negotiates it.
func (cs *conn) closed(child string) {
	ch, ok := cs.conf.Child(child)
	if !ok || ch.CloseAction == config.CloseNone || !cs.canInitiate() {
		cs.log.Info("CHILD_SA closed by the peer", "child", child, "close_action", "none")
		return
	}
	if ch.CloseAction == config.CloseTrap {
		cs.log.Info("CHILD_SA closed by the peer", "child", child, "close_action", "trap")
		cs.armTrap(child, "close_action") // the dataplane only: safe inside the manager's lock
		return
	}
	// The manager's lock is held here (we are inside its OnChild): ask
	// it from another goroutine, once it has finished with the DELETE.
	go func() {
		if cs.g.stopping() {
			return
		}
		if err := cs.createChild(child); err != nil {
			cs.log.Warn("close_action: cannot initiate again", "child", child, "close_action", ch.CloseAction.String(), "err", err)
			return
		}
		cs.log.Info("close_action: initiating again", "child", child, "close_action", ch.CloseAction.String())
	}()
}

func (cs *conn) remove(inst *installed, inSPI uint32, isCurrent bool) {
	if !isCurrent && !cs.g.stopping() {
		// The old SA of a rekey: the peer's last packets on it may still
		// wait in the ESP socket while the DELETE exchange that ends it
		// has already been handled on the IKE socket. Keep it a moment.
		time.AfterFunc(retireGrace, func() { cs.retire(inst, inSPI) })
		return
	}
	if isCurrent {
		cs.g.dp.RemoveChild(inst.dpName)
	}
	cs.retire(inst, inSPI)
}

// retireGrace is how long the inbound SA a rekey replaced keeps
// accepting packets after its DELETE.
const retireGrace = time.Second

// retire drops an inbound SPI (if it is not current) and wipes the pair.
func (cs *conn) retire(inst *installed, inSPI uint32) {
	cs.g.dp.RetireSPI(inSPI)
	if kl := cs.g.keylog; kl != nil {
		kl.RemoveSA(inst.inCfg)
		kl.RemoveSA(inst.outCfg)
	}
	inst.in.Close()
	inst.out.Close()
}

// reconcile removes CHILD_SAs whose IKE SA is gone without telling (the
// peer died, or restarted and we dropped its old IKE SA): the manager
// reports no ChildDown for those.
func (cs *conn) reconcile() {
	cs.mu.Lock()
	var ready []string
	for name, inst := range cs.pending {
		if inst.in.Stats().PacketsIn > 0 || time.Since(inst.installed) > 5*time.Second {
			ready = append(ready, name)
		}
	}
	cs.mu.Unlock()
	for _, name := range ready {
		cs.switchOut(name, "the peer sends on the new SA, or its DELETE is late")
	}
	live := map[uint32]bool{}
	for _, st := range cs.ikeStatus() {
		for _, c := range st.Children {
			live[c.InboundSPI] = true
		}
	}
	var stale []*installed
	var spis []uint32
	var cur []bool
	cs.mu.Lock()
	for spi, inst := range cs.children {
		if live[spi] || time.Since(inst.installed) < 2*time.Second {
			continue
		}
		isCurrent := cs.current[inst.dpName] == spi
		if isCurrent {
			delete(cs.current, inst.dpName)
		}
		delete(cs.children, spi)
		stale, spis, cur = append(stale, inst), append(spis, spi), append(cur, isCurrent)
	}
	cs.mu.Unlock()
	for i, inst := range stale {
		cs.remove(inst, spis[i], cur[i])
		cs.log.Info("CHILD_SA cleared: its IKE_SA is gone", "child", inst.child, "spi_in", status.SPI32(spis[i]))
		// The IKE SA went without a DELETE: the peer was found dead (or
		// restarted). dpd_action = trap waits for the next packet.
		if ch, ok := cs.conf.Child(inst.child); ok && cur[i] && ch.DPDAction == config.DPDTrap && cs.canInitiate() {
			cs.armTrap(inst.child, "dpd_action")
		}
	}
	cs.observe()
}

// terminate deletes the IKE SA with the peer (DELETE) and everything
// installed for it.
func (cs *conn) terminate() error {
	err := cs.mgr.Terminate(cs.conf.Name)
	cs.observe()
	return err
}

// close removes what is still installed for the connection (its group
// stops the manager).
func (cs *conn) close() {
	cs.mu.Lock()
	children, current := cs.children, cs.current
	cs.children, cs.current = map[uint32]*installed{}, map[string]uint32{}
	cs.mu.Unlock()
	for spi, inst := range children {
		cs.remove(inst, spi, current[inst.dpName] == spi)
	}
	cs.disarmAll()
	if kl := cs.g.keylog; kl != nil {
		cs.mu.Lock()
		for k := range cs.ikeSeen {
			kl.RemoveIKE(k[0], k[1])
		}
		cs.mu.Unlock()
	}
}

// status describes the connection's IKE SA and CHILD_SAs.
func (cs *conn) status(now time.Time) status.Connection {
	out := status.Connection{Name: cs.conf.Name}
	sts := cs.ikeStatus()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, st := range sts {
		is := status.IKESA{
			State:     st.State.String(),
			Initiator: st.Initiator,
			SPIi:      status.SPI64(st.SPIi),
			SPIr:      status.SPI64(st.SPIr),
			Proposal:  st.Proposal,
			LocalID:   cs.conf.Local.ID.String(),
			RemoteID:  cs.conf.Remote.ID.String(),
		}
		switch st.State {
		case ike.StateNew, ike.StateInitSent, ike.StateInitDone, ike.StateAuthSent:
			is.State = "CONNECTING"
		}
		peer := cs.remote
		if !peer.IsValid() && cs.canInitiate() {
			peer = netip.AddrPortFrom(cs.conf.RemoteAddrs[0], cs.g.cfg.Gateway.IKEPort)
		}
		if peer.IsValid() {
			is.Remote = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port()).String()
			port := cs.g.cfgNATTPort()
			if peer.Port() == cs.g.cfg.Gateway.IKEPort {
				port = cs.g.cfg.Gateway.IKEPort
			}
			if local, err := localAddrFor(cs.conf, peer.Addr().Unmap()); err == nil {
				is.Local = netip.AddrPortFrom(local, port).String()
			}
		}
		if t, ok := cs.ikeSeen[[2]uint64{st.SPIi, st.SPIr}]; ok {
			is.EstablishedS = status.Seconds(now.Sub(t))
			if cs.conf.RekeyTime > 0 {
				is.RekeyInS = max(status.Seconds(t.Add(cs.conf.RekeyTime).Sub(now)), 1)
			}
		}
		for _, c := range st.Children {
			inst := cs.children[c.InboundSPI]
			ch := status.Child{Name: c.Name, State: "INSTALLED"}
			if inst == nil {
				ch.State = "NOT_INSTALLED"
				ch.Protocol, ch.SPIIn, ch.SPIOut = c.Protocol.String(), status.SPI32(c.InboundSPI), status.SPI32(c.OutboundSPI)
			} else {
				ch.FillFromSAs(inst.in, inst.out, now)
				if c.PFS != sa.DHNone && inst.out != nil {
					ch.Proposal = status.ChildProposal(inst.out, c.PFS)
				}
				ch.LocalTS, ch.RemoteTS = inst.localTS, inst.remoteTS
				if cs.current[inst.dpName] != c.InboundSPI {
					ch.State = "REKEYED"
				}
				if inst.rekey > 0 {
					ch.RekeyInS = max(status.Seconds(inst.installed.Add(inst.rekey).Sub(now)), 1)
				}
			}
			is.Children = append(is.Children, ch)
		}
		out.IKESAs = append(out.IKESAs, is)
	}
	out.Traps = cs.waitingTraps()
	return out
}

// ikeSocket is the IKE port's socket (500): the dataplane only opens the
// NAT-T port.
func openIKESocket(port uint16) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
	if err != nil {
		return nil, fmt.Errorf("IKE socket on port %d: %w", port, err)
	}
	return c, nil
}

// datagram is one IKE message waiting for the negotiator.
type datagram struct {
	from netip.AddrPort
	natt bool
	b    []byte
}

// ikeQueue bounds the IKE messages waiting; beyond it they are dropped
// (a flood must not grow memory; the peers retransmit).
const ikeQueue = 512

// enqueueIKE copies a datagram for the IKE goroutine; it never blocks the
// socket's reader.
func (g *Gateway) enqueueIKE(b []byte, from netip.AddrPort, natt bool) {
	if len(b) < message.HeaderSize {
		return
	}
	d := datagram{from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), natt: natt, b: append([]byte(nil), b...)}
	select {
	case g.ikeIn <- d:
	default:
		g.ikeDropped.Add(1)
	}
}

// ikeLoop hands datagrams to the managers, and runs the periodic check
// that clears CHILD_SAs of dead IKE SAs.
func (g *Gateway) ikeLoop() {
	defer g.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case d := <-g.ikeIn:
			g.dispatch(d)
		case <-tick.C:
			for _, cs := range g.connList() {
				cs.reconcile()
			}
			if n := g.ikeDropped.Swap(0); n > 0 {
				g.log.Warn("IKE datagrams dropped: more arrived than the negotiator could take (flood?)", "dropped", n)
			}
		}
	}
}

// dispatch routes a datagram: a new IKE_SA_INIT request goes to the
// connection for the sender's address (or the first %any one); anything
// else to every manager, where only the one with the SPI acts.
func (g *Gateway) dispatch(d datagram) {
	h, err := message.ParseHeader(d.b)
	if err != nil {
		return
	}
	conns := g.connList()
	if h.Exchange == message.IKESAInit && h.Flags&message.FlagResponse == 0 && h.SPIr == 0 {
		var pick *conn
		for _, cs := range conns {
			for _, a := range cs.conf.RemoteAddrs {
				if a == d.from.Addr() {
					pick = cs
					break
				}
			}
			if pick != nil {
				break
			}
		}
		if pick == nil {
			for _, cs := range conns {
				if cs.conf.RemoteAny {
					pick = cs
					break
				}
			}
		}
		if pick == nil {
			g.ikeLog.note("IKE_SA_INIT from an unknown peer", d.from.Addr().String())
			return
		}
		pick.grp.handle(d.from, d.natt, d.b)
		return
	}
	for _, gr := range g.groupList() {
		gr.handle(d.from, d.natt, d.b)
	}
}

// ikeReadLoop reads the IKE port's socket.
func (g *Gateway) ikeReadLoop(c *net.UDPConn) {
	defer g.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-g.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		g.enqueueIKE(buf[:n], from, false)
	}
}

func (g *Gateway) sendIKE(to netip.AddrPort, b []byte) error {
	if g.ike500 == nil {
		return errors.New("no IKE socket")
	}
	// A send that cannot go out at once (a send buffer full of answers
	// to spoofed addresses still being resolved) must not stall the
	// negotiator: the peer retransmits.
	g.ike500.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := g.ike500.WriteToUDPAddrPort(b, to)
	return err
}

// createChild negotiates one CHILD_SA of the connection: with the IKE SA
// up, a CREATE_CHILD_SA for it alone (through the negotiator's trap, with
// a packet that only its selectors cover); else the whole IKE SA.
func (cs *conn) createChild(name string) error {
	ch, ok := cs.conf.Child(name)
	if !ok || len(ch.LocalTS) == 0 || len(ch.RemoteTS) == 0 {
		return fmt.Errorf("connection %q has no child %q", cs.conf.Name, name)
	}
	l, r := ch.LocalTS[0], ch.RemoteTS[0]
	if l.Start.Is4() != r.Start.Is4() {
		for _, x := range ch.RemoteTS {
			if x.Start.Is4() == l.Start.Is4() {
				r = x
				break
			}
		}
	}
	proto := r.Proto
	if proto == 0 {
		proto = l.Proto
	}
	peer, got, err := cs.mgr.Trap(l.Start, r.Start, proto, r.PortStart)
	if err != nil {
		return err
	}
	if peer != cs.conf.Name || got != name {
		return fmt.Errorf("child %q: its selectors are covered by the more specific child %s/%s", name, peer, got)
	}
	return nil
}

// hasChild reports whether a CHILD_SA of that name is installed.
func (cs *conn) hasChild(child string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.current[dpName(cs.conf.Name, child)]
	return ok
}
