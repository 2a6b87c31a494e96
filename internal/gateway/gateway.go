// Package gateway owns the lifetime of everything a running isle has: the
// configuration, the IKE negotiators of its [connections.*] (one
// ike.Manager each), the statically keyed SAs of [manual.*], the dataplane
// that carries them all, the IKE port's socket, the control socket's
// handler, the key log and the metrics endpoint.
//
// Locks: Gateway.mu guards the configuration and the set of connections;
// each connection's own lock guards its installed CHILD_SAs. The
// negotiator calls back (OnChild) with its own lock held, so nothing here
// calls into a manager while holding a connection's lock.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/dataplane"
	"github.com/isle-ipsec/isle/internal/keylog"
	"github.com/isle-ipsec/isle/internal/metrics"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// Gateway is a running isle.
type Gateway struct {
	mu      sync.Mutex // guards everything below
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	dp      *dataplane.Dataplane
	manual  map[string]*manualState
	started time.Time

	conns      map[string]*conn // by connection name
	order      []string         // connection names in file order
	ike500     *net.UDPConn     // the IKE port's socket
	ikeLog     *ikeLogHandler
	ikeIn      chan datagram
	ikeDropped atomic.Uint64
	trapIn     chan policy.Tuple // packets without an SA, for trap.go
	counters   *metrics.Counters
	keylog     *keylog.Writer // nil unless [gateway] keylog is set
	metricsLn  net.Listener
	stop       chan struct{}
	nattPort   uint16 // fixed at start: the socket is not reopened on reload
	wg         sync.WaitGroup
}

// Options are the gateway's settings that do not come from the file.
type Options struct {
	Version string // shown by `isle status`
	// RetransmitTimeout and RetransmitTries shape IKE retransmissions
	// (zero: strongSwan's 4 s and 5 tries); tests shorten them so that a
	// dead peer is found in seconds.
	RetransmitTimeout time.Duration
	RetransmitTries   int
}

// manualState is an installed [manual.NAME] pair and the table it came
// from, so that a reload can tell whether it changed.
type manualState struct {
	conf    config.ManualSA
	out, in *sa.SA
	older   []*sa.SA // SAs of replaced versions, closed with this one
}

func (m *manualState) close() {
	m.out.Close()
	m.in.Close()
	for _, s := range m.older {
		s.Close()
	}
}

// New brings the dataplane up and installs every manual SA pair. On error
// nothing stays behind (the TUN device is removed).
func New(cfg *config.Config, opts Options, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, opts: opts, log: log, manual: map[string]*manualState{}, started: time.Now(),
		conns: map[string]*conn{}, ikeIn: make(chan datagram, ikeQueue), trapIn: make(chan policy.Tuple, trapQueue), counters: &metrics.Counters{},
		stop: make(chan struct{}), nattPort: cfg.Gateway.NATTPort}
	g.ikeLog = newIKELogHandler(log.Handler(), g.counters)
	if err := g.open(); err != nil {
		g.Close()
		return nil, err
	}
	for _, m := range cfg.Manual {
		if err := g.install(m); err != nil {
			g.Close()
			return nil, err
		}
	}
	for _, members := range groupConnections(cfg.Connections) {
		gr, err := g.newGroup(members, cfg)
		if err != nil {
			g.Close()
			return nil, err
		}
		for name, cs := range gr.conns {
			g.conns[name] = cs
		}
	}
	for _, c := range cfg.Connections {
		g.order = append(g.order, c.Name)
	}
	g.wg.Add(2)
	go g.ikeLoop()
	go g.trapLoop()
	for _, cs := range g.connList() {
		cs.start()
	}
	return g, nil
}

// open brings up the dataplane, the IKE socket, the key log and the
// metrics endpoint.
func (g *Gateway) open() error {
	cfg := g.cfg
	natt := int(cfg.Gateway.NATTPort)
	dp, err := dataplane.New(dataplane.Config{
		Interface: cfg.Gateway.Interface,
		MTU:       cfg.Gateway.MTU,
		NATTPort:  natt,
		Logger:    g.log,
		IKE:       func(b []byte, from netip.AddrPort) { g.enqueueIKE(b, from, true) },
		NoPolicy:  g.enqueueTrap,
	})
	if err != nil {
		return err
	}
	g.dp = dp
	if len(cfg.Connections) > 0 && cfg.Gateway.IKEPort != 0 {
		c, err := openIKESocket(cfg.Gateway.IKEPort)
		if err != nil {
			return err
		}
		g.ike500 = c
		g.wg.Add(1)
		go g.ikeReadLoop(c)
	}
	if dir := cfg.Gateway.Keylog; dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("keylog: %w", err)
		}
		if g.keylog, err = keylog.Open(dir); err != nil {
			return err
		}
		g.log.Warn("keylog: writing every SA's keys for Wireshark (debugging only)", "dir", dir)
	}
	if addr := cfg.Gateway.Metrics; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		g.metricsLn = ln
		ctx, cancel := context.WithCancel(context.Background())
		g.wg.Add(2)
		go func() {
			defer g.wg.Done()
			<-g.stop
			cancel()
		}()
		go func() {
			defer g.wg.Done()
			src := metrics.SourceFunc(func() metrics.Snapshot {
				return metrics.Snapshot{Status: g.Status(), Events: g.counters.Snapshot()}
			})
			if err := metrics.ServeListener(ctx, ln, src); err != nil {
				g.log.Warn("metrics", "err", err)
			}
		}()
		g.log.Info("metrics served", "addr", ln.Addr().String())
	}
	return nil
}

// connList is the running connections in file order.
func (g *Gateway) connList() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*conn, 0, len(g.order))
	for _, n := range g.order {
		if cs := g.conns[n]; cs != nil {
			out = append(out, cs)
		}
	}
	return out
}

func (g *Gateway) cfgNATTPort() uint16 { return g.nattPort }

// install builds and installs (or replaces) one manual SA pair.
func (g *Gateway) install(m config.ManualSA) error {
	c, err := ManualChild(m, int(g.cfg.Gateway.NATTPort))
	if err != nil {
		return err
	}
	if err := g.dp.AddChild(c); err != nil {
		c.Out.Close()
		c.In.Close()
		return fmt.Errorf("manual SA %q: %w", m.Name, err)
	}
	st := &manualState{conf: m, out: c.Out, in: c.In}
	if old := g.manual[m.Name]; old != nil {
		// Nothing tells us when a statically keyed peer has switched,
		// and keys are usually changed because the old ones must die:
		// retire the old inbound SA at once (an unchanged SPI was
		// already replaced in place).
		g.dp.RetireSPI(old.in.SPI())
		st.older = append(old.older, old.out, old.in)
	}
	g.manual[m.Name] = st
	return nil
}

// Apply applies a new configuration. Connections: unchanged ones keep
// their IKE SA and CHILD_SAs untouched (no packet is lost), removed ones
// are deleted with the peer (DELETE), changed ones are deleted and started
// again from the new table, added ones start. Manual SA pairs: unchanged
// ones keep running (sequence numbers and replay windows too), changed
// ones are replaced, removed ones uninstalled. A connection the
// negotiator refuses changes nothing at all. [gateway] settings that need
// a new device or socket are reported, not applied.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.manual == nil {
		return errors.New("gateway stopped")
	}
	// Every new or changed group of connections is built first: one the
	// negotiator refuses leaves everything as it was. A group is kept
	// when it has the same members and none of them changed.
	kept := map[*group]bool{}
	var built []*group
	for _, members := range groupConnections(cfg.Connections) {
		if cur := g.conns[members[0].Name]; cur != nil && cur.grp.sameMembers(members) && func() bool {
			for _, c := range members {
				old := cur.grp.conns[c.Name]
				if !sameConnection(old.conf, c, old.psk, connPSK(cfg, c)) {
					return false
				}
			}
			return true
		}() {
			kept[cur.grp] = true
			continue
		}
		gr, err := g.newGroup(members, cfg)
		if err != nil {
			for _, b := range built {
				b.mgr.Close()
			}
			return fmt.Errorf("nothing changed: %w", err)
		}
		built = append(built, gr)
	}
	if old, now := g.cfg.Gateway, cfg.Gateway; old.Interface != now.Interface || old.MTU != now.MTU ||
		old.NATTPort != now.NATTPort || old.IKEPort != now.IKEPort || old.Keylog != now.Keylog || old.Metrics != now.Metrics {
		g.log.Warn("reload: [gateway] interface, mtu, ike_port, natt_port, keylog and metrics changes take effect at the next start")
	}
	natt, ikePort := g.cfg.Gateway.NATTPort, g.cfg.Gateway.IKEPort
	g.cfg = cfg
	g.cfg.Gateway.NATTPort, g.cfg.Gateway.IKEPort = natt, ikePort
	keep := map[string]bool{}
	var errs []error
	for _, m := range cfg.Manual {
		keep[m.Name] = true
		if cur := g.manual[m.Name]; cur != nil && reflect.DeepEqual(cur.conf, m) {
			continue
		}
		verb := "added"
		if g.manual[m.Name] != nil {
			verb = "changed"
		}
		if err := g.install(m); err != nil {
			errs = append(errs, err)
			continue
		}
		g.log.Info("reload: manual SA "+verb, "name", m.Name)
	}
	for name, st := range g.manual {
		if keep[name] {
			continue
		}
		g.dp.RemoveChild(name)
		st.close()
		delete(g.manual, name)
		g.log.Info("reload: manual SA removed", "name", name)
	}

	wanted := map[string]bool{}
	g.order = g.order[:0]
	for _, c := range cfg.Connections {
		wanted[c.Name] = true
		g.order = append(g.order, c.Name)
	}
	before := g.conns
	g.conns = map[string]*conn{}
	for _, gr := range g.groupsOf(before) {
		if kept[gr] {
			for name, cs := range gr.conns {
				g.conns[name] = cs
			}
			continue
		}
		for _, name := range gr.names {
			cs := gr.conns[name]
			cs.terminate()
			cs.close()
			if !wanted[name] {
				g.log.Info("reload: connection removed", "conn", name)
			}
		}
		gr.mgr.Close()
	}
	if len(built) > 0 && g.ike500 == nil && g.cfg.Gateway.IKEPort != 0 {
		c, err := openIKESocket(g.cfg.Gateway.IKEPort)
		if err != nil {
			errs = append(errs, err)
		} else {
			g.ike500 = c
			g.wg.Add(1)
			go g.ikeReadLoop(c)
		}
	}
	for _, gr := range built {
		for _, name := range gr.names {
			cs := gr.conns[name]
			g.conns[name] = cs
			switch old := before[name]; {
			case old == nil:
				g.log.Info("reload: connection added", "conn", name)
			case sameConnection(old.conf, cs.conf, old.psk, cs.psk):
				g.log.Info("reload: connection started again: it shares its peer address with a changed one", "conn", name)
			default:
				g.log.Info("reload: connection changed, started again", "conn", name)
			}
		}
	}
	for _, gr := range built {
		for _, name := range gr.names {
			gr.conns[name].start()
		}
	}
	return errors.Join(errs...)
}

// ManualChild builds the two SAs of a [manual.NAME] table. The caller owns
// them (Close clears their keys).
func ManualChild(m config.ManualSA, nattPort int) (dataplane.Child, error) {
	port := uint16(0)
	if m.Encap {
		port = uint16(nattPort)
	}
	local := netip.AddrPortFrom(m.LocalAddr, port)
	remote := netip.AddrPortFrom(m.RemoteAddr, port)
	mk := func(k config.ManualKeys, inbound bool) (*sa.SA, error) {
		c := sa.Config{
			SPI:        k.SPI,
			Protocol:   m.Protocol,
			Mode:       sa.ModeTunnel,
			Inbound:    inbound,
			Enc:        k.Enc.Alg,
			EncKeyBits: k.Enc.KeyBits,
			EncKey:     k.EncKey,
			Integ:      k.Integ,
			IntegKey:   k.IntegKey,
			ESN:        m.ESN,
			Encap:      m.Encap,
			Local:      local,
			Remote:     remote,
		}
		if inbound {
			c.ReplayWindow = m.ReplayWindow
		}
		if m.Protocol == sa.ProtoAH {
			c.Enc, c.EncKeyBits, c.EncKey = 0, 0, nil
		}
		return sa.New(c)
	}
	out, err := mk(m.Out, false)
	if err != nil {
		return dataplane.Child{}, fmt.Errorf("manual SA %q, out: %w", m.Name, err)
	}
	in, err := mk(m.In, true)
	if err != nil {
		out.Close()
		return dataplane.Child{}, fmt.Errorf("manual SA %q, in: %w", m.Name, err)
	}
	return dataplane.Child{Name: m.Name, Local: m.LocalTS, Remote: m.RemoteTS, Out: out, In: in}, nil
}

// Run blocks until ctx is done, then stops the gateway.
func (g *Gateway) Run(ctx context.Context) error {
	<-ctx.Done()
	return g.Close()
}

// Stats returns a snapshot of the dataplane's and the SAs' counters.
func (g *Gateway) Stats() dataplane.Stats { return g.dp.Stats() }

// Close deletes every IKE SA with its peer (DELETE), removes the SAs and
// the TUN device and clears the keys.
func (g *Gateway) Close() error {
	conns := g.connList()
	for _, cs := range conns {
		if err := cs.terminate(); err == nil {
			g.log.Info("IKE_SA deleted: stopping", "conn", cs.conf.Name)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	for _, gr := range g.groupsOf(g.conns) {
		for _, cs := range gr.conns {
			cs.close()
		}
		gr.mgr.Close()
	}
	g.conns = map[string]*conn{}
	if g.ike500 != nil {
		g.ike500.Close()
	}
	var err error
	if g.dp != nil {
		err = g.dp.Close()
	}
	for _, st := range g.manual {
		st.close()
	}
	g.manual = nil
	g.mu.Unlock()
	g.wg.Wait()
	g.mu.Lock()
	return err
}
