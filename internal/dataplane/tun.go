package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// createTUN opens a TUN device with IFF_VNET_HDR, so that the kernel
// hands over TCP (and UDP) segmentation offload trains of up to 64 KiB in
// one read, which wireguard-go's tun package splits into packets (TSO), and
// takes coalesced trains in one write (GRO). The device is not persistent,
// so it disappears when the dataplane closes it, even if the process dies.
func createTUN(name string, mtu int) (tun.Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return tun.CreateTUNFromFile(os.NewFile(uintptr(fd), "/dev/net/tun"), mtu)
}

// tunLink is the TUN device as netlink sees it, with the routes and rules
// the dataplane added (and must remove).
type tunLink struct {
	name  string
	index int
}

func configureTUN(name string, mtu int) (*tunLink, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return nil, fmt.Errorf("set MTU: %w", err)
	}
	// No IPv6 link-local address: the device would otherwise send router
	// solicitations and MLD reports into the tunnel, which no policy
	// covers. Hosts without IPv6 refuse this; that is fine.
	_ = netlink.LinkSetIP6AddrGenMode(l, 1 /* IN6_ADDR_GEN_MODE_NONE */)
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	return &tunLink{name: name, index: l.Attrs().Index}, nil
}

// Rule priorities for the inbound-protection rules (see route). They sit
// before the main table's rule (32766).
const (
	rulePrioAccept    = 9000
	rulePrioBlackhole = 9001
)

// route points every remote selector at the TUN device, with the
// gateway's own address inside the local selectors as preferred source, so
// that traffic the gateway itself sends to the far network matches the
// policy too. It also adds two policy-routing rules per (remote, local)
// prefix pair: packets from the remote network to the local one are
// routed normally when they come out of the TUN device (i.e. were
// decrypted and checked), and blackholed when they arrive any other way —
// the kernel's forwarding path would otherwise pass cleartext from the WAN
// that claims to come from the far network (RFC 4301 §5.2: traffic that an
// SPD entry says must be protected is discarded when it arrives
// unprotected).
func (d *Dataplane) route(c *child) error {
	if d.link == nil {
		return nil // in-memory tests: no kernel device
	}
	local := c.policy.Local()
	src := localSources(local)
	for _, p := range c.policy.Remote() {
		r := &netlink.Route{LinkIndex: d.link.index, Dst: prefixNet(p), Scope: netlink.SCOPE_LINK}
		if a, ok := src[p.Addr().Is4()]; ok {
			r.Src = a.AsSlice()
		}
		if err := netlink.RouteReplace(r); err != nil {
			d.unroute(c)
			return fmt.Errorf("route %v via %s: %w", p, d.link.name, err)
		}
		c.prefixes = append(c.prefixes, p)
		for _, l := range local {
			if l.Addr().Is4() != p.Addr().Is4() {
				continue
			}
			for _, r := range protectRules(d.link.name, p, l) {
				if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
					d.unroute(c)
					return fmt.Errorf("rule %v: %w", r, err)
				}
			}
		}
	}
	return nil
}

func protectRules(tunName string, remote, local netip.Prefix) []*netlink.Rule {
	fam := unix.AF_INET
	if remote.Addr().Is6() {
		fam = unix.AF_INET6
	}
	accept := netlink.NewRule()
	accept.Family, accept.Priority = fam, rulePrioAccept
	accept.Src, accept.Dst = prefixNet(remote), prefixNet(local)
	accept.IifName = tunName
	accept.Table = unix.RT_TABLE_MAIN
	hole := netlink.NewRule()
	hole.Family, hole.Priority = fam, rulePrioBlackhole
	hole.Src, hole.Dst = prefixNet(remote), prefixNet(local)
	hole.Type = unix.RTN_BLACKHOLE
	return []*netlink.Rule{accept, hole}
}

// unroute removes what route added; errors are logged, not returned,
// because a half-removed child must still be forgotten.
func (d *Dataplane) unroute(c *child) {
	if d.link == nil {
		return
	}
	local := c.policy.Local()
	for _, p := range c.prefixes {
		if !d.stillUsed(c, p, netip.Prefix{}) {
			r := &netlink.Route{LinkIndex: d.link.index, Dst: prefixNet(p), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
				d.log.Warn("removing route", "dst", p.String(), "err", err)
			}
		}
		for _, l := range local {
			if l.Addr().Is4() != p.Addr().Is4() || d.stillUsed(c, p, l) {
				continue
			}
			for _, r := range protectRules(d.link.name, p, l) {
				if err := netlink.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
					d.log.Warn("removing rule", "src", p.String(), "dst", l.String(), "err", err)
				}
			}
		}
	}
	c.prefixes = nil
}

// stillUsed reports whether an installed child or trap other than c
// routes the remote prefix p (and, when local is valid, protects p
// towards local); called with d.mu held. After Close nothing is in use.
func (d *Dataplane) stillUsed(c *child, p, local netip.Prefix) bool {
	if d.closed.Load() {
		return false
	}
	for _, set := range []map[string]*child{d.children, d.traps} {
		for _, o := range set {
			if o == c || !slices.Contains(o.prefixes, p) {
				continue
			}
			if !local.IsValid() || slices.Contains(o.policy.Local(), local) {
				return true
			}
		}
	}
	return false
}

// checkLocal refuses an outer source address this host does not have:
// every packet sent from it would fail.
func checkLocal(a netip.Addr) error {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing local addresses: %w", err)
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			return nil
		}
	}
	return fmt.Errorf("local address %v is not an address of this host", a)
}

// localSources finds, per family (true = IPv4), an address of this host
// inside one of the local prefixes.
func localSources(local []netip.Prefix) map[bool]netip.Addr {
	out := map[bool]netip.Addr{}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return out
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		for _, p := range local {
			if _, have := out[ip.Is4()]; !have && p.Contains(ip) {
				out[ip.Is4()] = ip
			}
		}
	}
	return out
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// routeMTU returns the MTU towards dst: the route's own MTU if it has
// one, else its interface's.
func routeMTU(dst netip.Addr) (int, error) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return 0, err
	}
	if len(routes) == 0 {
		return 0, errors.New("no route")
	}
	if routes[0].MTU > 0 {
		return routes[0].MTU, nil
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return 0, err
	}
	return l.Attrs().MTU, nil
}
