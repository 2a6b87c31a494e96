package gateway

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/internal/config"
)

// A group is the connections one ike.Manager negotiates for. Connections
// are grouped when an IKE_SA_INIT cannot tell them apart, because they
// share a peer address or accept any (%any): the manager then tells them
// apart by the identities of IKE_AUTH. Every other connection has a
// manager of its own, so that a reload adds, replaces or removes it
// without touching the IKE SAs of the others (ike.Manager's peers are
// fixed when it is made).
type group struct {
	g     *Gateway
	mgr   *ike.Manager
	names []string         // members, in file order
	conns map[string]*conn // by name

	mu       sync.Mutex
	lastFrom netip.AddrPort // where the datagram being handled came from
	lastNATT bool           // ... and whether on the NAT-T port
}

// groupConnections partitions connections into groups, in file order:
// two connections are in one group when they share a remote address or
// both accept any peer.
func groupConnections(conns []config.Connection) [][]config.Connection {
	parent := make([]int, len(conns))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, c := range conns {
		keys := []string{}
		if c.RemoteAny || len(c.RemoteAddrs) == 0 {
			keys = append(keys, "%any")
		}
		for _, a := range c.RemoteAddrs {
			keys = append(keys, a.Unmap().String())
		}
		for _, k := range keys {
			if j, ok := owner[k]; ok {
				parent[find(i)] = find(j)
			} else {
				owner[k] = i
			}
		}
	}
	var out [][]config.Connection
	index := map[int]int{}
	for i, c := range conns {
		r := find(i)
		k, ok := index[r]
		if !ok {
			k = len(out)
			index[r] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], c)
	}
	return out
}

// newGroup builds the manager of a group of connections; it does not
// initiate.
func (g *Gateway) newGroup(members []config.Connection, cfg *config.Config) (*group, error) {
	gr := &group{g: g, conns: map[string]*conn{}}
	var peers []ike.Peer
	for _, c := range members {
		p, err := peerFor(c, cfg.Gateway, cfg.PSK)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %w", c.Name, err)
		}
		peers = append(peers, p)
		gr.names = append(gr.names, c.Name)
		gr.conns[c.Name] = g.newConn(c, cfg, gr)
	}
	mgr, err := ike.NewManager(ike.ManagerConfig{
		Peers:             peers,
		Send:              gr.send,
		OnChild:           gr.onChild,
		Log:               slog.New(g.ikeLog),
		RetransmitTimeout: g.opts.RetransmitTimeout,
		RetransmitTries:   g.opts.RetransmitTries,
	})
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", gr.names[0], err)
	}
	gr.mgr = mgr
	for _, cs := range gr.conns {
		cs.mgr = mgr
	}
	return gr, nil
}

// sameMembers reports whether the group holds exactly these connections.
func (gr *group) sameMembers(members []config.Connection) bool {
	names := make([]string, 0, len(members))
	for _, c := range members {
		names = append(names, c.Name)
	}
	return slices.Equal(gr.names, names)
}

// send is the manager's Send: port 4500 through the dataplane's socket
// (behind the non-ESP marker), else the IKE port's socket.
func (gr *group) send(to netip.AddrPort, natt bool, b []byte) error {
	if natt {
		return gr.g.dp.SendIKE(to, b)
	}
	return gr.g.sendIKE(to, b)
}

// handle passes one datagram to the manager and notes what changed.
func (gr *group) handle(from netip.AddrPort, natt bool, b []byte) {
	gr.mu.Lock()
	gr.lastFrom, gr.lastNATT = from, natt
	gr.mu.Unlock()
	gr.mgr.Handle(from, natt, b)
	for _, name := range gr.names {
		gr.conns[name].observe()
	}
}

// last is where the datagram being handled came from: the peer's IKE
// address for the CHILD_SAs it installs.
func (gr *group) last() (netip.AddrPort, bool) {
	gr.mu.Lock()
	defer gr.mu.Unlock()
	return gr.lastFrom, gr.lastNATT
}

func (gr *group) onChild(peer string, ev ike.ChildEvent) {
	if cs := gr.conns[peer]; cs != nil {
		cs.onChild(ev)
	}
}

// ikeStatus is the manager's view of this connection's IKE SA.
func (cs *conn) ikeStatus() []ike.Status {
	var out []ike.Status
	for _, st := range cs.mgr.Status() {
		if st.Peer == cs.conf.Name {
			out = append(out, st)
		}
	}
	return out
}

// groupList is the running groups, in file order of their first member.
func (g *Gateway) groupList() []*group {
	var out []*group
	seen := map[*group]bool{}
	for _, cs := range g.connList() {
		if !seen[cs.grp] {
			seen[cs.grp] = true
			out = append(out, cs.grp)
		}
	}
	return out
}

// groupsOf lists the distinct groups of a set of connections.
func (g *Gateway) groupsOf(conns map[string]*conn) []*group {
	var out []*group
	seen := map[*group]bool{}
	for _, cs := range conns {
		if !seen[cs.grp] {
			seen[cs.grp] = true
			out = append(out, cs.grp)
		}
	}
	return out
}

// stopping reports whether the gateway is shutting down.
func (g *Gateway) stopping() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}
