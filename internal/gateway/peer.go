package gateway

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/isle-ipsec/isle/ike"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/config"
)

// ikeIdentity is the negotiator's form of a configured identity.
func ikeIdentity(id config.Identity) ike.Identity {
	if id.Kind == config.IDAny {
		return ike.AnyID()
	}
	return ike.Identity{Type: message.IDType(id.Kind), Data: id.Data()}
}

// configIdentity is the configuration's form of an identity a peer sent,
// so that [secrets] can be searched for it.
func configIdentity(id ike.Identity) (config.Identity, bool) {
	switch {
	case id.IsAny():
		return config.Identity{Kind: config.IDAny}, true
	case id.Type == message.IDIPv4 || id.Type == message.IDIPv6:
		a, ok := netip.AddrFromSlice(id.Data)
		if !ok {
			return config.Identity{}, false
		}
		return config.Identity{Kind: config.IDKind(id.Type), Value: a.String(), Addr: a}, true
	case id.Type == message.IDFQDN || id.Type == message.IDRFC822:
		return config.Identity{Kind: config.IDKind(id.Type), Value: string(id.Data)}, true
	case id.Type == message.IDDerASN1DN:
		c, err := config.IdentityFromSubject(id.Data)
		return c, err == nil
	}
	return config.Identity{}, false
}

// Hard lifetimes are the rekey interval plus a tenth, as strongSwan's
// life_time defaults to rekey_time + 10%: time for the rekey to finish;
// but at least minTimeHeadroom, so that a rekey whose first request is
// lost (retransmitted after 4 s) still ends before the SA does.
const minTimeHeadroom = 10 * time.Second

func hardOf(soft time.Duration) time.Duration { return soft + max(soft/10, minTimeHeadroom) }

// Byte and packet limits get a tenth more too, but at least what a fast
// link moves while a rekey runs (a 2 MB limit is crossed in milliseconds
// at line rate; the hard limit only guards against a rekey that never
// happens).
const (
	minByteHeadroom   = 1 << 30
	minPacketHeadroom = 1 << 20
)

func hardBytes(soft uint64) uint64   { return hardCount(soft, minByteHeadroom) }
func hardPackets(soft uint64) uint64 { return hardCount(soft, minPacketHeadroom) }

func hardCount(soft, headroom uint64) uint64 {
	if soft == 0 {
		return 0
	}
	h := max(soft/10, headroom)
	if soft > ^uint64(0)-h {
		return ^uint64(0)
	}
	return soft + h
}

// peerFor builds the negotiator's view of one connection. psk looks up
// [secrets] of the configuration the connection came from.
func peerFor(c config.Connection, gw config.Gateway, psk func(l, r config.Identity) ([]byte, bool)) (ike.Peer, error) {
	cfg := ike.Config{
		LocalID:       ikeIdentity(c.Local.ID),
		RemoteID:      ikeIdentity(c.Remote.ID),
		IKEProposals:  c.Proposals,
		ForceEncap:    c.Encap,
		Fragmentation: c.Fragmentation,
	}
	if c.Local.Auth == config.AuthPubkey {
		cfg.Certs, cfg.Key = c.Local.Certs, c.Local.Key
	}
	if c.Remote.Auth == config.AuthPubkey {
		cfg.CACerts = c.Remote.CACerts
	}
	if c.Local.Auth == config.AuthPSK || c.Remote.Auth == config.AuthPSK {
		cfg.PSKFor = func(local, remote ike.Identity) []byte {
			l, ok1 := configIdentity(local)
			r, ok2 := configIdentity(remote)
			if !ok1 || !ok2 {
				return nil
			}
			k, ok := psk(l, r)
			if !ok {
				return nil
			}
			return k
		}
	}
	p := ike.Peer{
		Name:           c.Name,
		DPDDelay:       c.DPDDelay,
		RekeyTime:      c.RekeyTime,
		ChildRekeyTime: map[string]time.Duration{},
	}
	for _, ch := range c.Children {
		cfg.Children = append(cfg.Children, ike.ChildConfig{
			Name: ch.Name, Proposals: ch.Proposals, Mode: ch.Mode,
			LocalTS: ch.LocalTS, RemoteTS: ch.RemoteTS,
		})
		if ch.RekeyTime > 0 {
			p.ChildRekeyTime[ch.Name] = ch.RekeyTime
		}
		// dpd_action = trap is the gateway's: it arms the child's trap
		// once the dead IKE SA's CHILD_SAs are cleared (conn.reconcile).
		if ch.DPDAction == config.DPDRestart {
			p.Restart = true
		}
	}
	if !c.RemoteAny && len(c.RemoteAddrs) > 0 {
		remote := c.RemoteAddrs[0]
		p.Remote = netip.AddrPortFrom(remote, gw.IKEPort)
		cfg.Remote = p.Remote
		if local, err := localAddrFor(c, remote); err == nil {
			cfg.Local = netip.AddrPortFrom(local, gw.IKEPort)
		}
	}
	p.Config = cfg
	return p, nil
}

// localAddrFor is the address we talk to remote from: the configured one
// of its family, else the one the kernel's route picks.
func localAddrFor(c config.Connection, remote netip.Addr) (netip.Addr, error) {
	for _, a := range c.LocalAddrs {
		if a.Is4() == remote.Unmap().Is4() {
			return a, nil
		}
	}
	return routeSource(remote)
}

// routeSource asks the kernel which source address it would use towards
// dst (connecting a UDP socket sends nothing).
func routeSource(dst netip.Addr) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.Unmap(), 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to %v: %w", dst, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// sameConnection reports whether a reload may keep a connection's SAs:
// the table and the pre-shared key it uses are unchanged. Certificates
// and keys are compared by their encodings (freshly loaded values are
// new pointers).
func sameConnection(a, b config.Connection, pskA, pskB []byte) bool {
	if string(pskA) != string(pskB) {
		return false
	}
	if !sameCerts(a.Local.Certs, b.Local.Certs) || !sameCerts(a.Remote.CACerts, b.Remote.CACerts) {
		return false
	}
	if (a.Local.Key == nil) != (b.Local.Key == nil) {
		return false
	}
	if a.Local.Key != nil {
		ka, errA := x509.MarshalPKCS8PrivateKey(a.Local.Key)
		kb, errB := x509.MarshalPKCS8PrivateKey(b.Local.Key)
		if errA != nil || errB != nil || string(ka) != string(kb) {
			return false
		}
	}
	a.Local.Certs, a.Local.Key, a.Remote.CACerts = nil, nil, nil
	b.Local.Certs, b.Local.Key, b.Remote.CACerts = nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i].Raw) != string(b[i].Raw) {
			return false
		}
	}
	return true
}

// connPSK is the key a connection's configured identities find in
// [secrets] (nil for none): part of what a reload compares.
func connPSK(cfg *config.Config, c config.Connection) []byte {
	k, _ := cfg.PSK(c.Local.ID, c.Remote.ID)
	return k
}
