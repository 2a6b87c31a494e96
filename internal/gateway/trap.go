package gateway

import (
	"errors"
	"slices"
	"time"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/internal/status"
	"github.com/isle-ipsec/isle/policy"
)

// Traps (strongSwan's start_action, dpd_action and close_action = trap):
// the dataplane routes a trapped child's remote selectors into its TUN
// device without an SA (dataplane.AddTrap); the first packet there finds
// no SA, is dropped and reported (dataplane.Config.NoPolicy), and the
// trap goroutine asks the manager of the connection whose trap covers it
// to negotiate (ike.Manager.Trap: the IKE SA with its CHILD_SAs, or a
// CREATE_CHILD_SA). Once the CHILD_SA is installed its packets no longer
// reach the trap. start_action = trap stays armed for the child's whole
// life, so it comes back with its next packet whenever it goes down;
// dpd_action and close_action = trap arm it when the child went down that
// way, until it is up again.

// trapQueue bounds the packets waiting for the trap goroutine; beyond it
// they are dropped (the sender retries, and one is enough to start).
const trapQueue = 64

// trapSpacing is how often one child's trap is handed to its manager at
// most: the packets that follow the first while the negotiation runs
// change nothing (the manager ignores them too), and must not keep taking
// its lock.
const trapSpacing = time.Second

// enqueueTrap is the dataplane's NoPolicy: it runs on the TUN reader, so
// it never blocks.
func (g *Gateway) enqueueTrap(t policy.Tuple) {
	select {
	case g.trapIn <- t:
	default:
	}
}

// trapLoop hands trapped packets to the managers.
func (g *Gateway) trapLoop() {
	defer g.wg.Done()
	last := map[string]time.Time{} // "conn/child" → when its trap last fired
	for {
		select {
		case <-g.stop:
			return
		case t := <-g.trapIn:
			g.trap(t, last)
		}
	}
}

// trap starts the negotiation for one packet no SA covers, through the
// first connection (in file order) with an armed trap covering it.
func (g *Gateway) trap(t policy.Tuple, last map[string]time.Time) {
	for _, cs := range g.connList() {
		child, ok := cs.trapFor(t)
		if !ok {
			continue
		}
		key := dpName(cs.conf.Name, child)
		if at, ok := last[key]; ok && time.Since(at) < trapSpacing {
			return
		}
		last[key] = time.Now()
		peer, got, err := cs.mgr.Trap(t.Src, t.Dst, t.Proto, t.DstPort)
		switch {
		case errors.Is(err, ike.ErrNoPolicy):
			cs.log.Warn("trap: the negotiator has no child for the packet", "child", child, "packet", t.String())
		case err != nil:
			cs.log.Warn("trap: cannot initiate", "child", child, "packet", t.String(), "err", err)
		default:
			cs.log.Info("trap: packet without an SA, negotiating", "child", child, "packet", t.String(),
				"negotiated_conn", peer, "negotiated_child", got)
		}
		return
	}
}

// trapFor finds the child with an armed trap whose selectors cover the
// packet, the first in file order.
func (cs *conn) trapFor(t policy.Tuple) (string, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, ch := range cs.conf.Children {
		if !cs.traps[ch.Name] {
			continue
		}
		if slices.ContainsFunc(ch.LocalTS, func(s policy.Selector) bool { return s.ContainsAddr(t.Src) }) &&
			slices.ContainsFunc(ch.RemoteTS, func(s policy.Selector) bool { return s.Contains(t.Dst, t.Proto, t.DstPort) }) {
			return ch.Name, true
		}
	}
	return "", false
}

// armTrap installs a child's trap in the dataplane. It does not call the
// manager, so the manager's OnChild may call it.
func (cs *conn) armTrap(child, why string) {
	ch, ok := cs.conf.Child(child)
	if !ok {
		return
	}
	cs.mu.Lock()
	armed := cs.traps[child]
	cs.mu.Unlock()
	if armed {
		return
	}
	if err := cs.g.dp.AddTrap(dpName(cs.conf.Name, child), ch.LocalTS, ch.RemoteTS); err != nil {
		cs.log.Error("trap not armed", "child", child, "because", why, "err", err)
		return
	}
	cs.mu.Lock()
	cs.traps[child] = true
	if cs.trapWhy == nil {
		cs.trapWhy = map[string]string{}
	}
	cs.trapWhy[child] = why
	cs.mu.Unlock()
	cs.log.Info("trap armed: the first packet for the child negotiates it", "child", child, "because", why)
}

// disarmTrap removes a child's trap, if armed.
func (cs *conn) disarmTrap(child string) {
	cs.mu.Lock()
	armed := cs.traps[child]
	delete(cs.traps, child)
	delete(cs.trapWhy, child)
	cs.mu.Unlock()
	if armed {
		cs.g.dp.RemoveTrap(dpName(cs.conf.Name, child))
		cs.log.Debug("trap removed", "child", child)
	}
}

// disarmAll removes every trap of the connection (it stops or is
// replaced).
func (cs *conn) disarmAll() {
	cs.mu.Lock()
	var names []string
	for name := range cs.traps {
		names = append(names, name)
	}
	cs.mu.Unlock()
	for _, name := range names {
		cs.disarmTrap(name)
	}
}

// waitingTraps lists, in file order, the children whose trap is armed and
// still waiting: a start_action trap stays armed while its CHILD_SA is
// up, but then it is not what the child's traffic meets, so status shows
// it only while no CHILD_SA of that name is installed. cs.mu is held.
func (cs *conn) waitingTraps() []status.Trap {
	var out []status.Trap
	for _, ch := range cs.conf.Children {
		if !cs.traps[ch.Name] {
			continue
		}
		if _, up := cs.current[dpName(cs.conf.Name, ch.Name)]; up {
			continue
		}
		tr := status.Trap{Name: ch.Name, Reason: cs.trapWhy[ch.Name]}
		for _, s := range ch.LocalTS {
			tr.LocalTS = append(tr.LocalTS, s.String())
		}
		for _, s := range ch.RemoteTS {
			tr.RemoteTS = append(tr.RemoteTS, s.String())
		}
		out = append(out, tr)
	}
	return out
}
