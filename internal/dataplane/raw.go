package dataplane

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawSocket is a raw IP socket for one protocol (ESP or AH) and family,
// driven through Go's poller so that reads block without a thread and
// Close wakes them.
type rawSocket struct {
	f  *os.File
	rc syscall.RawConn
	v6 bool
}

// ipv6HdrIncl is IPV6_HDRINCL (Linux 4.5+): send IPv6 packets with their
// header, as AH needs because its ICV covers that header.
const ipv6HdrIncl = 36

func openRaw(v6 bool, proto int, hdrIncl bool) (*rawSocket, error) {
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, err
	}
	setBuffers(fd)
	if hdrIncl {
		if v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, ipv6HdrIncl, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("header-included mode: %w", err)
		}
	} else {
		// Kernel-built outer headers may be fragmented (see the NAT-T
		// socket for why).
		if v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("IP_MTU_DISCOVER: %w", err)
		}
	}
	if v6 {
		// The IPv6 raw socket hands us the payload only; the destination
		// address (for AH's ICV) comes with IPV6_PKTINFO.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("IPV6_RECVPKTINFO: %w", err)
		}
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("raw-ip-%d", proto))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rawSocket{f: f, rc: rc, v6: v6}, nil
}

func (r *rawSocket) Close() error { return r.f.Close() }

// socketBuffer is the receive and send buffer the outer sockets ask for:
// one reader goroutine drains each socket, and a burst of a TCP window's
// worth of packets must not overflow the kernel's default (~200 KiB).
const socketBuffer = 4 << 20

// setBuffers enlarges fd's buffers, beyond net.core.rmem_max when we have
// CAP_NET_ADMIN (the FORCE options), else as far as the limit allows.
func setBuffers(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	}
}

// outerDst is a peer address prepared once per SA in every form a send
// needs, so sends do not build socket addresses per packet.
type outerDst struct {
	udp netip.AddrPort
	sa  unix.Sockaddr
	// oob is a PKTINFO control message that makes the kernel send from
	// the SA's local address (local_addr) rather than whichever address
	// the route prefers; empty when the SA has none.
	oob []byte
}

func newOuterDst(remote netip.AddrPort, local netip.Addr, nattPort int) outerDst {
	a := remote.Addr().Unmap()
	port := remote.Port()
	if port == 0 {
		port = uint16(nattPort)
	}
	d := outerDst{udp: netip.AddrPortFrom(a, port)}
	if a.Is4() {
		d.sa = &unix.SockaddrInet4{Addr: a.As4()}
	} else {
		d.sa = &unix.SockaddrInet6{Addr: a.As16()}
	}
	local = local.Unmap()
	if local.IsValid() && !local.IsUnspecified() && local.Is4() == a.Is4() {
		if a.Is4() {
			d.oob = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: local.As4()})
		} else {
			d.oob = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: local.As16()})
		}
	}
	return d
}
