// Package dataplane moves packets between the TUN device that carries the
// protected networks' cleartext and the sockets that carry ESP and AH to
// the peers:
//
//	outbound: TUN → policy.ParseTuple → SPD lookup → MSS clamp → too big?
//	          (ICMP back into the TUN) → esp/ah Seal in place → socket
//	inbound:  socket → SPI lookup (SAD) → esp/ah Open in place → inner
//	          packet within the SA's selectors? → MSS clamp → TUN
//
// Sockets: one UDP socket on the NAT-T port for ESP in UDP (RFC 3948),
// shared with IKE (non-ESP marker → Config.IKE; SendIKE sends), NAT
// keepalives counted and dropped; raw IP sockets for protocols 50 and 51
// per family, AH with the outer header included (its ICV covers it). ESP
// is sent from the SA's local address (PKTINFO); for ESP in UDP the
// destination follows the source of authenticated packets, so a peer
// behind a NAT stays reachable.
//
// Batches end to end, one goroutine per source, each with its own buffers
// (headroom in front of every packet, tailroom behind it, so that esp and
// ah work in place) and nothing allocated per packet:
//
//   - The TUN device has IFF_VNET_HDR: one read takes a TSO train of up to
//     64 KiB, which wireguard-go's tun package splits into packets; one
//     write hands over a batch, which it coalesces (GRO) into trains.
//   - A batch read from the TUN device takes its sequence numbers in
//     order, is sealed, and goes out in that order in one sendmmsg per
//     socket; on the NAT-T socket, runs of equal-sized ESP packets to one
//     peer go as one UDP GSO message each (UDP_SEGMENT).
//   - Each socket is read with recvmmsg; the NAT-T socket has UDP_GRO, so
//     a train of ESP packets arrives as one datagram, split by its segment
//     size. The inner packets of a batch reach the TUN device in one write.
//
// Spreading the crypto of a batch over further cores was measured on the
// 2-core benchmark machine (both gateways and both iperf3 ends share it)
// and cost more than it gained, so each batch is sealed and opened on the
// goroutine that read it; the replay window's split pre-check and commit
// (package sa) would allow it.
//
// Kernel state: AddChild routes the remote selectors into the TUN device
// and adds policy-routing rules that blackhole cleartext from the remote
// selectors to the local ones unless it comes out of the TUN device (RFC
// 4301 §5.2: traffic that must be protected is dropped when it arrives
// unprotected). Packets to a peer cannot loop back into the TUN device:
// AddChild refuses a peer address inside the remote selectors. AddTrap
// installs the same routes and rules without an SA, for start_action =
// trap: the first packet is dropped and reported to Config.NoPolicy,
// which starts the negotiation. Close removes routes, rules and the
// device.
//
// Path MTU: an inner packet larger than the tunnel carries (outer MTU
// minus the SA's overhead) is answered with ICMP "fragmentation needed" /
// ICMPv6 "packet too big" when it has DF (IPv6: always, down to 1280);
// otherwise ESP's outer packet is fragmented by the kernel, and for AH the
// inner IPv4 packet is fragmented before sealing. TCP SYNs are clamped to
// the tunnel's MSS in both directions.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// Buffer layout: the inner packet is read at headroom, so that the outer
// headers the engines write in front of it fit, and the trailer (padding,
// ICV) fits behind it.
const (
	headroom = 128
	tailroom = 128
	maxPkt   = 65535
	bufSize  = headroom + maxPkt + tailroom
)

// Config is what New needs to bring the dataplane up.
type Config struct {
	Interface string // TUN device name, e.g. "isle0"
	MTU       int    // TUN device MTU
	NATTPort  int    // UDP port of ESP-in-UDP (and IKE NAT-T); 0 = no UDP socket
	// OuterMTU, when non-zero, is the largest outer packet to send; zero
	// means the MTU of the interface the route to each peer goes through.
	OuterMTU int
	// NoMSSClamp turns off TCP MSS clamping, which is on by default.
	NoMSSClamp bool
	// Keepalive is how often a NAT keepalive (RFC 3948 §2.3, one 0xFF
	// byte) goes to each peer of ESP in UDP that nothing was sent to for
	// that long, so the NAT in between keeps its mapping; 0 means 20s
	// (RFC 3948 §4), negative disables.
	Keepalive time.Duration
	Logger    *slog.Logger
	// IKE, when set, receives the datagrams on the NAT-T port that carry
	// the non-ESP marker (RFC 3948 §2.2), without the marker. It must not
	// keep pkt after returning.
	IKE func(pkt []byte, from netip.AddrPort)
	// NoPolicy, when set, is told of each outbound packet that no
	// installed child covers (counted as no_policy and dropped), so that
	// a negotiator can start the CHILD_SA a trap stands for (strongSwan's
	// start_action = trap). It runs on the TUN reader: it must return at
	// once (hand the tuple to another goroutine, dropping it when busy).
	NoPolicy func(t policy.Tuple)
}

// Child is one pair of SAs and the selectors they protect, as the manual
// configuration or the negotiator installs it.
type Child struct {
	Name          string
	Local, Remote []policy.Selector
	Out, In       *sa.SA
}

// child is an installed Child with what the hot path needs precomputed.
type child struct {
	Child
	policy   *policy.Policy
	maxInner int    // largest inner packet that fits the outer MTU
	mss4     uint16 // clamp for TCP over IPv4 inside this SA
	mss6     uint16
	// peer is where outbound packets go. For ESP in UDP it follows the
	// source of authenticated inbound packets, so that a peer behind a NAT
	// that changes its mapping stays reachable (RFC 3948 §3.1; IKE
	// will do the same with its own messages, RFC 7296 §2.23).
	peer     atomic.Pointer[outerDst]
	prefixes []netip.Prefix // remote prefixes routed into the TUN
	older    []uint32       // inbound SPIs of the children this one replaced, still in the SAD
}

// Dataplane is a running data path. Its methods are safe for concurrent use.
type Dataplane struct {
	cfg  Config
	log  *slog.Logger
	tun  tun.Device
	link *tunLink

	udp   *net.UDPConn
	raw   [2][2]*rawSocket // [family 0=v4 1=v6][0=ESP 1=AH]
	noGSO atomic.Bool      // the NAT-T socket cannot send UDP GSO

	spd policy.SPD[*child]
	sad atomic.Pointer[map[uint32]*child] // inbound SPI → child; copied on write

	mu       sync.Mutex // serialises AddChild/RemoveChild/AddTrap/RemoveTrap
	children map[string]*child
	// traps route selectors into the TUN device before any SA covers
	// them, so that their first packet reaches Config.NoPolicy; they
	// have no SAs and are not in the SPD.
	traps map[string]*child

	// sendHook, when set (in-memory tests), replaces the sockets for
	// outbound packets.
	sendHook func(c *child, outer []byte) error

	ctr    counters
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// newDataplane assembles a dataplane around a TUN device; link is nil
// for a device the kernel does not know (in-memory tests), which then gets
// no routes.
func newDataplane(cfg Config, dev tun.Device, link *tunLink) *Dataplane {
	d := &Dataplane{cfg: cfg, log: cfg.Logger, tun: dev, link: link, children: map[string]*child{}, traps: map[string]*child{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	empty := map[uint32]*child{}
	d.sad.Store(&empty)
	return d
}

// New creates the TUN device and the sockets and starts the workers. The
// device is up but routes nothing until AddChild installs an SA pair.
func New(cfg Config) (*Dataplane, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	if cfg.MTU < 576 || cfg.MTU > maxPkt-headroom {
		return nil, fmt.Errorf("dataplane: MTU %d out of range", cfg.MTU)
	}
	dev, err := createTUN(cfg.Interface, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("dataplane: TUN %q: %w", cfg.Interface, err)
	}
	link, err := configureTUN(cfg.Interface, cfg.MTU)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("dataplane: TUN %q: %w", cfg.Interface, err)
	}
	d := newDataplane(cfg, dev, link)
	if err := d.openSockets(); err != nil {
		d.Close()
		return nil, err
	}
	d.start()
	d.log.Info("dataplane up", "interface", cfg.Interface, "mtu", cfg.MTU, "natt_port", cfg.NATTPort)
	return d, nil
}

func (d *Dataplane) openSockets() error {
	if d.cfg.NATTPort != 0 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{Port: d.cfg.NATTPort})
		if err != nil {
			return fmt.Errorf("dataplane: NAT-T socket on port %d: %w", d.cfg.NATTPort, err)
		}
		d.udp = c
		if rc, err := c.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { setBuffers(int(fd)) })
		}
		// Let the kernel fragment outer packets rather than refuse them:
		// the inner packets that must not be fragmented were answered
		// with ICMP "too big" before sealing.
		if err := setSockoptInt(c, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
			return fmt.Errorf("dataplane: NAT-T socket: %w", err)
		}
		if err := setSockoptInt(c, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT); err != nil {
			d.log.Debug("NAT-T socket is IPv4 only", "err", err)
		}
		// UDP GRO: the kernel hands over a train of same-sized ESP
		// packets from one peer as one datagram (the segment size comes
		// with it), one system call for up to 64 packets.
		if err := setSockoptInt(c, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err != nil {
			d.log.Debug("no UDP GRO on the NAT-T socket", "err", err)
		}
	}
	for fam := range 2 {
		for i, proto := range []int{unix.IPPROTO_ESP, unix.IPPROTO_AH} {
			r, err := openRaw(fam == 1, proto, proto == unix.IPPROTO_AH)
			if err != nil {
				if fam == 1 {
					// A host without IPv6 still runs IPv4 tunnels.
					d.log.Warn("no IPv6 raw socket; IPv6 outer addresses unavailable", "proto", proto, "err", err)
					continue
				}
				return fmt.Errorf("dataplane: raw socket for IP protocol %d: %w", proto, err)
			}
			d.raw[fam][i] = r
		}
	}
	return nil
}

func (d *Dataplane) start() {
	d.wg.Add(1)
	go d.tunLoop()
	if d.udp != nil {
		d.wg.Add(2)
		go d.udpLoop()
		go d.keepaliveLoop()
	}
	for fam := range 2 {
		for i := range 2 {
			if r := d.raw[fam][i]; r != nil {
				d.wg.Add(1)
				go d.rawLoop(r, fam == 1, i == 1)
			}
		}
	}
}

// Close stops the workers, removes the routes and rules, and deletes the
// TUN device. It is idempotent.
func (d *Dataplane) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	d.cancel()
	d.mu.Lock()
	for _, c := range d.children {
		d.unroute(c)
	}
	for _, c := range d.traps {
		d.unroute(c)
	}
	d.mu.Unlock()
	var errs []error
	if d.udp != nil {
		errs = append(errs, d.udp.Close())
	}
	for fam := range 2 {
		for i := range 2 {
			if r := d.raw[fam][i]; r != nil {
				errs = append(errs, r.Close())
			}
		}
	}
	if d.tun != nil {
		errs = append(errs, d.tun.Close())
	}
	d.wg.Wait()
	d.log.Info("dataplane down", "interface", d.cfg.Interface)
	return errors.Join(errs...)
}

// AddChild installs an SA pair: inbound SPI into the SAD, selectors into
// the SPD, and routes for the remote selectors through the TUN device. A
// child of the same name is replaced make-before-break, as a CHILD_SA
// rekey needs: the new outbound SA is used from the moment the call
// returns, while the old inbound SPI keeps accepting the peer's packets in
// flight until RetireSPI (the negotiator deleted the old SA) or
// RemoveChild.
func (d *Dataplane) AddChild(c Child) error {
	if c.Out == nil || c.In == nil {
		return fmt.Errorf("dataplane: child %q needs an inbound and an outbound SA", c.Name)
	}
	if c.Out.Inbound() || !c.In.Inbound() {
		return fmt.Errorf("dataplane: child %q: SA directions swapped", c.Name)
	}
	pol, err := policy.NewPolicy(c.Local, c.Remote)
	if err != nil {
		return fmt.Errorf("dataplane: child %q: %w", c.Name, err)
	}
	peer := c.Out.Remote().Addr().Unmap()
	if err := checkNoLoop(peer, pol); err != nil {
		return fmt.Errorf("dataplane: child %q: %w", c.Name, err)
	}
	if c.Out.Mode() != sa.ModeTunnel {
		return fmt.Errorf("dataplane: child %q: only tunnel mode is supported", c.Name)
	}
	fam := 0
	if peer.Is6() {
		fam = 1
	}
	if c.Out.Encap() && d.udp == nil && d.sendHook == nil {
		return fmt.Errorf("dataplane: child %q: UDP encapsulation needs natt_port", c.Name)
	}
	if !c.Out.Encap() && d.sendHook == nil && d.raw[fam][protoIndex(c.Out.Protocol())] == nil {
		return fmt.Errorf("dataplane: child %q: no raw socket for %v over IPv%d", c.Name, c.Out.Protocol(), 4+2*fam)
	}
	if d.link != nil {
		if err := checkLocal(c.Out.Local().Addr()); err != nil {
			return fmt.Errorf("dataplane: child %q: %w", c.Name, err)
		}
	}
	ch := &child{Child: c, policy: pol}
	dst := newOuterDst(c.Out.Remote(), c.Out.Local().Addr(), d.cfg.NATTPort)
	ch.peer.Store(&dst)
	outerMTU := d.cfg.OuterMTU
	if outerMTU == 0 {
		if outerMTU, err = routeMTU(peer); err != nil {
			return fmt.Errorf("dataplane: child %q: route to peer %v: %w", c.Name, peer, err)
		}
	}
	ch.maxInner = min(maxInner(c.Out, outerMTU), d.cfg.MTU)
	// MSS = largest inner packet minus the IP and TCP headers (RFC 879,
	// RFC 8200 §8.3 for IPv6).
	ch.mss4 = uint16(max(ch.maxInner-40, 536))
	ch.mss6 = uint16(max(ch.maxInner-60, 1220))

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return errors.New("dataplane: closed")
	}
	old := d.children[c.Name]
	sad := *d.sad.Load()
	if other, ok := sad[c.In.SPI()]; ok && other.Name != c.Name {
		return fmt.Errorf("dataplane: child %q: inbound SPI %#08x already used by %q", c.Name, c.In.SPI(), other.Name)
	}
	if err := d.route(ch); err != nil {
		return fmt.Errorf("dataplane: child %q: %w", c.Name, err)
	}
	next := make(map[uint32]*child, len(sad)+1)
	for k, v := range sad {
		next[k] = v
	}
	next[c.In.SPI()] = ch
	d.sad.Store(&next)
	d.spd.Install(c.Name, pol, ch)
	d.children[c.Name] = ch
	if old != nil {
		ch.older = old.older
		if old.In.SPI() != c.In.SPI() {
			ch.older = append(ch.older, old.In.SPI())
		}
		d.unroute(old) // only what the new child does not route too
	}
	d.log.Info("child SA installed", "child", c.Name, "protocol", c.Out.Protocol().String(),
		"spi_in", fmt.Sprintf("%08x", c.In.SPI()), "spi_out", fmt.Sprintf("%08x", c.Out.SPI()),
		"encap", c.Out.Encap(), "peer", c.Out.Remote().String(), "outer_mtu", outerMTU,
		"max_inner", ch.maxInner, "local_ts", fmt.Sprint(c.Local), "remote_ts", fmt.Sprint(c.Remote))
	return nil
}

// RemoveChild uninstalls the SA pair name; it reports whether there was one.
func (d *Dataplane) RemoveChild(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.children[name]
	if !ok {
		return false
	}
	d.spd.Remove(name)
	d.dropSPI(c.In.SPI())
	for _, spi := range c.older {
		d.dropSPI(spi)
	}
	delete(d.children, name)
	d.unroute(c)
	d.log.Info("child SA removed", "child", name)
	return true
}

// AddTrap routes the remote selectors into the TUN device and adds the
// same protection rules as AddChild, without any SA: an outbound packet
// they cover then reaches Config.NoPolicy (and is dropped) until a child
// covering it is installed. A trap of the same name is replaced; routes
// a child or another trap still needs stay.
func (d *Dataplane) AddTrap(name string, local, remote []policy.Selector) error {
	pol, err := policy.NewPolicy(local, remote)
	if err != nil {
		return fmt.Errorf("dataplane: trap %q: %w", name, err)
	}
	tr := &child{Child: Child{Name: name, Local: local, Remote: remote}, policy: pol}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return errors.New("dataplane: closed")
	}
	if err := d.route(tr); err != nil {
		return fmt.Errorf("dataplane: trap %q: %w", name, err)
	}
	old := d.traps[name]
	d.traps[name] = tr
	if old != nil {
		d.unroute(old)
	}
	d.log.Info("trap installed", "trap", name, "local_ts", fmt.Sprint(local), "remote_ts", fmt.Sprint(remote))
	return nil
}

// RemoveTrap removes the trap name; it reports whether there was one.
// Routes and rules an installed child or another trap needs stay.
func (d *Dataplane) RemoveTrap(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	tr, ok := d.traps[name]
	if !ok {
		return false
	}
	delete(d.traps, name)
	d.unroute(tr)
	d.log.Info("trap removed", "trap", name)
	return true
}

// Traps lists the names of the installed traps, sorted.
func (d *Dataplane) Traps() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.traps))
	for name := range d.traps {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// checkNoLoop refuses a peer address inside the remote selectors: the
// route for those selectors points into the TUN device, so the sealed
// packets to the peer would come back in and be sealed again, forever.
func checkNoLoop(peer netip.Addr, pol *policy.Policy) error {
	for _, p := range pol.Remote() {
		if p.Contains(peer) {
			return fmt.Errorf("peer address %v lies inside remote selector %v: "+
				"packets to the peer would be routed back into the tunnel", peer, p)
		}
	}
	return nil
}

// RetireSPI removes an inbound SPI that a replacing AddChild left in
// place. It refuses (false) the inbound SPI of a current child.
func (d *Dataplane) RetireSPI(spi uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := (*d.sad.Load())[spi]
	if !ok || d.children[c.Name] == c {
		return false
	}
	d.dropSPI(spi)
	if cur := d.children[c.Name]; cur != nil {
		cur.older = slices.DeleteFunc(cur.older, func(s uint32) bool { return s == spi })
	}
	d.log.Info("old inbound SA retired", "child", c.Name, "spi_in", fmt.Sprintf("%08x", spi))
	return true
}

func (d *Dataplane) dropSPI(spi uint32) {
	sad := *d.sad.Load()
	next := make(map[uint32]*child, len(sad))
	for k, v := range sad {
		if k != spi {
			next[k] = v
		}
	}
	d.sad.Store(&next)
}

func protoIndex(p sa.Protocol) int {
	if p == sa.ProtoAH {
		return 1
	}
	return 0
}

// Stats returns a snapshot of the counters.
func (d *Dataplane) Stats() Stats {
	st := Stats{
		Drops:          make(map[string]uint64, numDrops),
		Keepalives:     d.ctr.keepalives.Load(),
		KeepalivesSent: d.ctr.keepalivesSent.Load(),
		IKE:            d.ctr.ike.Load(),
		MSSClamped:     d.ctr.mssClamped.Load(),
		TooBigSent:     d.ctr.tooBigSent.Load(),
	}
	for i := range numDrops {
		st.Drops[i.String()] = d.ctr.drops[i].Load()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range d.spd.Names() {
		c := d.children[name]
		cs := ChildStats{
			Name: name, Protocol: c.Out.Protocol().String(), Encap: c.Out.Encap(),
			SPIIn: c.In.SPI(), SPIOut: c.Out.SPI(), In: saStats(c.In), Out: saStats(c.Out),
		}
		for _, s := range c.Local {
			cs.LocalTS = append(cs.LocalTS, s.String())
		}
		for _, s := range c.Remote {
			cs.RemoteTS = append(cs.RemoteTS, s.String())
		}
		st.Children = append(st.Children, cs)
	}
	return st
}

func (d *Dataplane) drop(r Drop) { d.ctr.drops[r].Add(1) }

// keepaliveLoop sends NAT keepalives to the peers of idle ESP-in-UDP SAs.
func (d *Dataplane) keepaliveLoop() {
	defer d.wg.Done()
	every := d.cfg.Keepalive
	if every == 0 {
		every = 20 * time.Second
	}
	if every < 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	ka := []byte{0xff}
	for {
		select {
		case <-d.ctx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			var to []*outerDst
			for _, c := range d.children {
				if c.Out.Encap() && now.Sub(c.Out.Stats().LastUsed) >= every {
					to = append(to, c.peer.Load())
				}
			}
			d.mu.Unlock()
			for _, dst := range to {
				if _, _, err := d.udp.WriteMsgUDPAddrPort(ka, dst.oob, dst.udp); err == nil {
					d.ctr.keepalivesSent.Add(1)
				}
			}
		}
	}
}

// SendIKE sends an IKE message from the NAT-T port to `to`, behind the
// non-ESP marker (RFC 3948 §2.2), so that IKE and ESP in UDP share the
// socket and the peer's NAT mapping.
func (d *Dataplane) SendIKE(to netip.AddrPort, msg []byte) error {
	if d.udp == nil {
		return errors.New("dataplane: no NAT-T socket")
	}
	b := make([]byte, 4+len(msg))
	copy(b[4:], msg)
	if _, err := d.udp.WriteToUDPAddrPort(b, to); err != nil {
		return fmt.Errorf("dataplane: sending IKE to %v: %w", to, err)
	}
	return nil
}

func setSockoptInt(c *net.UDPConn, level, opt, value int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		return err
	}
	return serr
}

// isClosed reports whether err means the socket or device was closed by
// Close, which ends a reader loop quietly.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF)
}
