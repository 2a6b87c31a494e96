package gateway

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/control"
	"github.com/isle-ipsec/isle/internal/status"
)

// The Gateway answers the control socket (internal/control.Handler).
var _ control.Handler = (*Gateway)(nil)

// Status is what `isle status` shows: every configured connection with
// its IKE SA and CHILD_SAs, the manual SA pairs with their counters, and
// the dataplane's drops by reason.
func (g *Gateway) Status() status.Status {
	now := time.Now()
	var conns []status.Connection
	for _, cs := range g.connList() {
		conns = append(conns, cs.status(now))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := status.Status{Gateway: &status.Gateway{
		Version:   g.opts.Version,
		Interface: g.cfg.Gateway.Interface,
		UptimeS:   status.Seconds(now.Sub(g.started)),
	}}
	st.Connections = conns
	if g.dp == nil {
		return st
	}
	dps := g.dp.Stats()
	for name, n := range dps.Drops {
		if n == 0 {
			continue
		}
		if st.Gateway.Drops == nil {
			st.Gateway.Drops = map[string]uint64{}
		}
		st.Gateway.Drops[name] = n
	}
	for _, m := range g.cfg.Manual {
		cur := g.manual[m.Name]
		if cur == nil {
			continue
		}
		port := uint16(0)
		if m.Encap {
			port = g.cfg.Gateway.NATTPort
		}
		ms := status.ManualSA{
			Local:  outer(m.LocalAddr, port),
			Remote: outer(m.RemoteAddr, port),
			Child:  status.Child{Name: m.Name, State: "INSTALLED"},
		}
		ms.FillFromSAs(cur.in, cur.out, now)
		for _, s := range m.LocalTS {
			ms.LocalTS = append(ms.LocalTS, s.String())
		}
		for _, s := range m.RemoteTS {
			ms.RemoteTS = append(ms.RemoteTS, s.String())
		}
		st.Manual = append(st.Manual, ms)
	}
	return st
}

func outer(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return "%any"
	}
	return netip.AddrPortFrom(a, port).String()
}

// Up initiates a connection's IKE SA with its CHILD_SAs; NAME/CHILD with
// the IKE SA up negotiates that CHILD_SA alone (CREATE_CHILD_SA).
func (g *Gateway) Up(name, child string) error {
	cs, err := g.lookup(name, child)
	if err != nil {
		return err
	}
	if !cs.canInitiate() {
		return fmt.Errorf("connection %q has remote_addrs = [\"%%any\"]: it only responds", name)
	}
	if child != "" && cs.hasChild(child) {
		return nil
	}
	if child != "" {
		if err := cs.createChild(child); err != nil {
			return err
		}
		cs.log.Info("initiating (isle up)", "child", child)
		return nil
	}
	if err := cs.mgr.Initiate(name); err != nil {
		return err
	}
	cs.log.Info("initiating (isle up)")
	return nil
}

// Down deletes a connection's IKE SA and CHILD_SAs with the peer
// (DELETE). NAME/CHILD deletes that CHILD_SA alone (an INFORMATIONAL
// DELETE for its pair), as `swanctl --terminate --child` does: the IKE SA
// and the other CHILD_SAs stay, and ours is removed when the peer
// answers.
func (g *Gateway) Down(name, child string) error {
	cs, err := g.lookup(name, child)
	if err != nil {
		return err
	}
	if child != "" {
		if err := cs.mgr.DeleteChild(name, child); err != nil {
			return fmt.Errorf("connection %q: nothing to delete: %w", name, err)
		}
		cs.log.Info("CHILD_SA deleting (isle down)", "child", child)
		return nil
	}
	if err := cs.terminate(); err != nil {
		return fmt.Errorf("connection %q: nothing to delete: %w", name, err)
	}
	cs.log.Info("IKE_SA deleted (isle down)")
	return nil
}

// lookup finds a running connection and checks the child name.
func (g *Gateway) lookup(name, child string) (*conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cs := g.conns[name]
	if cs == nil {
		if g.manual[name] != nil {
			return nil, fmt.Errorf("%q is a manual SA: it is installed while the gateway runs (edit the file and reload to change it)", name)
		}
		return nil, fmt.Errorf("no connection named %q", name)
	}
	if child != "" {
		if _, ok := cs.conf.Child(child); !ok {
			return nil, fmt.Errorf("connection %q has no child %q", name, child)
		}
	}
	return cs, nil
}

// Reload re-reads the file the configuration came from and applies it; a
// file that does not load changes nothing. It is the control socket's
// reload and SIGHUP's.
func (g *Gateway) Reload() error {
	g.mu.Lock()
	path := g.cfg.File
	g.mu.Unlock()
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("%s does not load, the running configuration stays: %w", path, err)
	}
	return g.Apply(cfg)
}
