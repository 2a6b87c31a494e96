// Package gateway owns the lifetime of everything a running isle has: the
// configuration, the SAs made from it, and the dataplane that carries
// them. For now it installs the statically keyed SAs of [manual.*]; the
// IKE negotiator will install negotiated ones through the same dataplane.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/dataplane"
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
}

// Options are the gateway's settings that do not come from the file.
type Options struct {
	Version string // shown by `isle status`
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
	g := &Gateway{cfg: cfg, opts: opts, log: log, manual: map[string]*manualState{}, started: time.Now()}
	natt := int(cfg.Gateway.NATTPort)
	dp, err := dataplane.New(dataplane.Config{
		Interface: cfg.Gateway.Interface,
		MTU:       cfg.Gateway.MTU,
		NATTPort:  natt,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	g.dp = dp
	for _, m := range cfg.Manual {
		if err := g.install(m); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

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

// Apply applies a new configuration: manual SA pairs that did not change
// keep running untouched (their sequence numbers and replay windows too),
// changed ones are replaced, removed ones uninstalled, new ones installed.
// [gateway] settings that need a new device or socket are reported, not
// applied. On error the pairs already handled stay as they are now.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.manual == nil {
		return errors.New("gateway stopped")
	}
	if old, now := g.cfg.Gateway, cfg.Gateway; old.Interface != now.Interface || old.MTU != now.MTU || old.NATTPort != now.NATTPort {
		g.log.Warn("reload: [gateway] interface, mtu and natt_port changes take effect at the next start")
	}
	natt := g.cfg.Gateway.NATTPort
	g.cfg = cfg
	g.cfg.Gateway.NATTPort = natt
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

// Close removes the SAs and the TUN device and clears the keys.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var err error
	if g.dp != nil {
		err = g.dp.Close()
	}
	for _, st := range g.manual {
		st.close()
	}
	g.manual = nil
	return err
}
