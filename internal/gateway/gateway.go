// Package gateway owns the lifetime of everything a running isle has: the
// configuration, the SAs made from it, and the dataplane that carries
// them. For now it installs the statically keyed SAs of [manual.*]; the
// IKE negotiator will install negotiated ones through the same dataplane.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/dataplane"
	"github.com/isle-ipsec/isle/sa"
)

// Gateway is a running isle.
type Gateway struct {
	cfg *config.Config
	log *slog.Logger
	dp  *dataplane.Dataplane
	sas []*sa.SA
}

// New brings the dataplane up and installs every manual SA pair. On error
// nothing stays behind (the TUN device is removed).
func New(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: log}
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
		c, err := ManualChild(m, natt)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.sas = append(g.sas, c.Out, c.In)
		if err := dp.AddChild(c); err != nil {
			g.Close()
			return nil, fmt.Errorf("manual SA %q: %w", m.Name, err)
		}
	}
	return g, nil
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
	var err error
	if g.dp != nil {
		err = g.dp.Close()
	}
	for _, s := range g.sas {
		s.Close()
	}
	return err
}
