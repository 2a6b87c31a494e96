package ike

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/isle-ipsec/isle/policy"
)

// ErrNoPolicy means no configured CHILD_SA of a peer we can initiate to
// covers a trapped packet.
var ErrNoPolicy = errors.New("ike: no connection covers the packet")

// trapHold is how long a trapped negotiation is left to finish before a
// new packet may start it again.
const trapHold = 30 * time.Second

// Trap starts, for the first packet the dataplane holds no SA for, the
// negotiation of the CHILD_SA whose selectors cover it, as strongSwan's
// start_action = trap: the peer's IKE SA with all its CHILD_SAs if there
// is none, else a CREATE_CHILD_SA for that CHILD_SA alone. Packets that
// follow while it is under way start nothing more. The source port is not
// looked at; dstPort is 0 for protocols without ports. It returns the
// peer and CHILD_SA chosen, the first in configuration order.
func (m *Manager) Trap(src, dst netip.Addr, proto uint8, dstPort uint16) (peer, child string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", "", errors.New("ike: manager closed")
	}
	p, cc := m.trapPolicy(src, dst, proto, dstPort)
	if p == nil {
		return "", "", ErrNoPolicy
	}
	ms := m.byPeer[p.Name]
	if ms == nil || ms.sa.State() >= StateFailed {
		return p.Name, cc.Name, m.initiate(p.Name) // brings every CHILD_SA of the peer
	}
	if ms.sa.State() != StateEstablished {
		return p.Name, cc.Name, nil // coming up, with this CHILD_SA
	}
	if slices.ContainsFunc(ms.sa.children, func(c *ChildSA) bool { return c.Name == cc.Name }) {
		return p.Name, cc.Name, nil // installed meanwhile
	}
	if at, ok := ms.trapped[cc.Name]; ok && time.Since(at) < trapHold {
		return p.Name, cc.Name, nil
	}
	if ms.trapped == nil {
		ms.trapped = map[string]time.Time{}
	}
	ms.trapped[cc.Name] = time.Now()
	err = ms.sa.CreateChild(cc.Name)
	m.after(ms)
	return p.Name, cc.Name, err
}

// trapPolicy finds the CHILD_SA configuration, of a peer with an
// address, whose selectors cover the packet: the most specific (one whose
// selectors lie inside another's, as the SPD would choose), then the
// first in configuration order.
func (m *Manager) trapPolicy(src, dst netip.Addr, proto uint8, dstPort uint16) (*Peer, *ChildConfig) {
	type match struct {
		p  *Peer
		cc *ChildConfig
	}
	var ms []match
	for i := range m.cfg.Peers {
		p := &m.cfg.Peers[i]
		if !p.Remote.IsValid() {
			continue
		}
		for j := range p.Config.Children {
			cc := &p.Config.Children[j]
			if slices.ContainsFunc(cc.LocalTS, func(s policy.Selector) bool { return s.ContainsAddr(src) }) &&
				slices.ContainsFunc(cc.RemoteTS, func(s policy.Selector) bool { return s.Contains(dst, proto, dstPort) }) {
				ms = append(ms, match{p, cc})
			}
		}
	}
	inside := func(a, b *ChildConfig) bool { // a strictly inside b
		return within(a.LocalTS, b.LocalTS) && within(a.RemoteTS, b.RemoteTS) &&
			!(within(b.LocalTS, a.LocalTS) && within(b.RemoteTS, a.RemoteTS))
	}
	for _, x := range ms {
		if !slices.ContainsFunc(ms, func(y match) bool { return inside(y.cc, x.cc) }) {
			return x.p, x.cc
		}
	}
	return nil, nil
}
