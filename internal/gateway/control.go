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

// Status is what `isle status` shows: the manual SA pairs with their
// counters, the configured connections (without IKE_SAs until the
// negotiator runs), and the dataplane's drops by reason.
func (g *Gateway) Status() status.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	st := status.Status{Gateway: &status.Gateway{
		Version:   g.opts.Version,
		Interface: g.cfg.Gateway.Interface,
		UptimeS:   status.Seconds(now.Sub(g.started)),
	}}
	for _, c := range g.cfg.Connections {
		st.Connections = append(st.Connections, status.Connection{Name: c.Name})
	}
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

// Up would initiate a connection; until the IKE negotiator runs there is
// nothing to initiate, and manual SAs are always up.
func (g *Gateway) Up(name, child string) error { return g.noIKE(name) }

// Down would delete a connection's SAs with the peer; see Up.
func (g *Gateway) Down(name, child string) error { return g.noIKE(name) }

func (g *Gateway) noIKE(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.cfg.Connection(name); ok {
		return fmt.Errorf("connection %q: IKE is not running in this version; only [manual] SAs are installed", name)
	}
	if g.manual[name] != nil {
		return fmt.Errorf("%q is a manual SA: it is installed while the gateway runs (edit the file and reload to change it)", name)
	}
	return fmt.Errorf("no connection named %q", name)
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
