package dataplane

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched socket I/O: recvmmsg and sendmmsg through Go's poller, with
// every structure the kernel reads or writes allocated once, so that a
// batch costs one system call and no allocation. golang.org/x/net's
// ReadBatch would do the syscalls too, but it allocates a net.Addr per
// message.

// mmsghdr is struct mmsghdr from <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// sockaddrSize is room for either address family.
const sockaddrSize = unix.SizeofSockaddrInet6

// oobSize is room for the control messages we ask for: UDP_GRO's segment
// size, or IPV6_PKTINFO.
const oobSize = 64

// batchReader receives up to len(bufs) datagrams per system call. It
// belongs to one goroutine.
type batchReader struct {
	rc    syscall.RawConn
	bufs  [][]byte
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []byte // sockaddrSize per message
	oob   []byte // oobSize per message
	n     int
	err   error
	fn    func(fd uintptr) bool
}

// newBatchReader reads into bufs, which it keeps.
func newBatchReader(rc syscall.RawConn, bufs [][]byte) *batchReader {
	n := len(bufs)
	r := &batchReader{rc: rc, bufs: bufs, msgs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]byte, n*sockaddrSize), oob: make([]byte, n*oobSize)}
	for i := range r.msgs {
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		h := &r.msgs[i].hdr
		h.Iov = &r.iovs[i]
		h.Iovlen = 1
		h.Name = &r.names[i*sockaddrSize]
		h.Control = &r.oob[i*oobSize]
	}
	r.fn = r.recv
	return r
}

func (r *batchReader) recv(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), 0, 0, 0)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	r.n, r.err = int(n), nil
	if errno != 0 {
		r.n, r.err = 0, errno
	}
	return true
}

// read blocks until at least one datagram arrived and returns how many.
func (r *batchReader) read() (int, error) {
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Namelen = sockaddrSize
		h.SetControllen(oobSize)
		h.Flags = 0
	}
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// msg returns the i-th datagram of the last read.
func (r *batchReader) msg(i int) []byte { return r.bufs[i][:r.msgs[i].n] }

// from returns the source of the i-th datagram (port 0 for raw sockets).
func (r *batchReader) from(i int) netip.AddrPort {
	sa := r.names[i*sockaddrSize : (i+1)*sockaddrSize]
	switch binary.NativeEndian.Uint16(sa) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), binary.BigEndian.Uint16(sa[2:4]))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])).Unmap(), binary.BigEndian.Uint16(sa[2:4]))
	}
	return netip.AddrPort{}
}

// control returns the control messages of the i-th datagram.
func (r *batchReader) control(i int) []byte {
	return r.oob[i*oobSize : i*oobSize+int(r.msgs[i].hdr.Controllen)]
}

// findCmsg returns the data of the first control message of level and
// typ in oob, without allocating.
func findCmsg(oob []byte, level, typ int32) []byte {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return nil
		}
		if h.Level == level && h.Type == typ {
			return data
		}
		oob = rest
	}
	return nil
}

// groSize returns the segment size the kernel coalesced the i-th datagram
// with (UDP_GRO), or 0 if it is a single datagram.
func (r *batchReader) groSize(i int) int {
	d := findCmsg(r.control(i), unix.SOL_UDP, unix.UDP_GRO)
	if len(d) < 2 {
		return 0
	}
	if len(d) >= 4 {
		return int(binary.NativeEndian.Uint32(d))
	}
	return int(binary.NativeEndian.Uint16(d))
}

// pktinfoDst returns the destination address of the i-th datagram from
// IPV6_PKTINFO.
func (r *batchReader) pktinfoDst(i int) (netip.Addr, bool) {
	d := findCmsg(r.control(i), unix.IPPROTO_IPV6, unix.IPV6_PKTINFO)
	if len(d) < 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(d[:16])), true
}

// maxGSOSegments is the most segments one UDP_SEGMENT send may carry
// (UDP_MAX_SEGMENTS of older kernels), and maxGSOBytes the most bytes.
const (
	maxGSOSegments = 64
	maxGSOBytes    = 65000
)

// batchWriter sends a batch of messages, each one packet or, with UDP
// GSO, a run of equal-sized packets to one destination, in one sendmmsg.
// It belongs to one goroutine.
type batchWriter struct {
	rc    syscall.RawConn
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []byte // sockaddrSize per message
	oob   []byte // oobSize per message
	nmsg  int
	niov  int
	off   int // messages sent so far
	err   error
	// gsoErr is set when a message with several segments failed: the
	// kernel or the route cannot do UDP GSO.
	gsoErr bool
	fn     func(fd uintptr) bool
}

func newBatchWriter(rc syscall.RawConn, maxMsgs int) *batchWriter {
	w := &batchWriter{rc: rc, msgs: make([]mmsghdr, maxMsgs), iovs: make([]unix.Iovec, maxMsgs),
		names: make([]byte, maxMsgs*sockaddrSize), oob: make([]byte, maxMsgs*oobSize)}
	w.fn = w.send
	return w
}

// full reports whether no further packet fits.
func (w *batchWriter) full() bool { return w.nmsg == len(w.msgs) || w.niov == len(w.iovs) }

// add queues pkt as a message of its own to dst, with the control
// messages oob (PKTINFO for the source address, or none); the caller
// checks full first. pkt must stay untouched until flush.
func (w *batchWriter) add(pkt []byte, dst netip.AddrPort, oob []byte) {
	w.iovs[w.niov].Base = &pkt[0]
	w.iovs[w.niov].SetLen(len(pkt))
	m := &w.msgs[w.nmsg]
	m.hdr = unix.Msghdr{Iov: &w.iovs[w.niov], Iovlen: 1}
	m.hdr.Namelen = putSockaddr(w.names[w.nmsg*sockaddrSize:], dst)
	m.hdr.Name = &w.names[w.nmsg*sockaddrSize]
	if len(oob) > 0 {
		c := w.oob[w.nmsg*oobSize : (w.nmsg+1)*oobSize]
		m.hdr.Control = &c[0]
		m.hdr.SetControllen(copy(c, oob))
	}
	w.nmsg++
	w.niov++
}

// extend appends pkt to the last message as a further GSO segment: the
// caller made sure it goes to the same destination, is no longer than the
// message's first packet, and that the first packets are all alike.
func (w *batchWriter) extend(pkt []byte, segSize int) {
	w.iovs[w.niov].Base = &pkt[0]
	w.iovs[w.niov].SetLen(len(pkt))
	w.niov++
	i := w.nmsg - 1
	m := &w.msgs[i]
	if m.hdr.Iovlen == 1 {
		// The segment size follows whatever control message add put
		// there (PKTINFO, at most 40 bytes).
		c := w.oob[i*oobSize : (i+1)*oobSize]
		at := int(m.hdr.Controllen)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[at]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(c[at+unix.CmsgLen(0):], uint16(segSize))
		m.hdr.Control = &c[0]
		m.hdr.SetControllen(at + unix.CmsgSpace(2))
	}
	m.hdr.Iovlen++
}

func putSockaddr(b []byte, a netip.AddrPort) uint32 {
	clear(b[:sockaddrSize])
	if a.Addr().Is4() {
		binary.NativeEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], a.Port())
		ip := a.Addr().As4()
		copy(b[4:8], ip[:])
		return unix.SizeofSockaddrInet4
	}
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], a.Port())
	ip := a.Addr().As16()
	copy(b[8:24], ip[:])
	return unix.SizeofSockaddrInet6
}

func (w *batchWriter) send(fd uintptr) bool {
	for w.off < w.nmsg {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[w.off])), uintptr(w.nmsg-w.off), 0, 0, 0)
		switch errno {
		case 0:
			w.off += int(n)
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			// The message at w.off failed: report it, skip it.
			w.err = errno
			if w.msgs[w.off].hdr.Iovlen > 1 {
				w.gsoErr = true
			}
			w.off++
		}
	}
	return true
}

// flush sends everything queued; it returns the last error, if any
// message failed (the others are sent all the same).
func (w *batchWriter) flush() (err error) {
	if w.nmsg == 0 {
		return nil
	}
	w.off, w.err = 0, nil
	if err := w.rc.Write(w.fn); err != nil {
		w.err = err
	}
	err = w.err
	w.nmsg, w.niov, w.err = 0, 0, nil
	return err
}
