package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/isle-ipsec/isle/ah"
	"github.com/isle-ipsec/isle/esp"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// maxInner is the largest inner packet that, sealed with s, still fits in
// an outer packet of outerMTU bytes.
func maxInner(s *sa.SA, outerMTU int) int {
	ipHdr := 20
	if s.Remote().Addr().Unmap().Is6() {
		ipHdr = 40
	}
	if s.Protocol() == sa.ProtoAH {
		return outerMTU - ah.Overhead(s)
	}
	udp := 0
	if s.Encap() {
		udp = 8
	}
	head, _ := esp.Overhead(s)
	// The encrypted part (inner, padding, pad length, next header) is
	// padded to the block size; the ICV follows it.
	avail := outerMTU - ipHdr - udp - head - s.ICVSize()
	bs := s.Enc().BlockSize()
	return avail - avail%bs - 2
}

// pending is a sealed outer packet waiting for the batch's send.
type pending struct {
	c   *child
	pkt []byte
	// fits: the packet is no larger than the path MTU allows, so it may
	// ride in a UDP GSO run with packets of its size.
	fits bool
}

// outPath is the outbound path's per-goroutine state: the packet buffers
// with head- and tailroom that one TUN read fills, the sealed packets
// waiting to be sent, the batch writers, and the scratch for ICMP
// answers.
type outPath struct {
	d        *Dataplane
	buf      []byte // bufs[0]
	bufs     [][]byte
	sizes    []int
	queue    []pending
	icmp     []byte
	icmpBufs [][]byte
	frag     []byte // fragments of inner packets (AH only), made on first use
	udp      *batchWriter
	raw      [2][2]*batchWriter // [ESP, AH][IPv4, IPv6]
	gso      bool
}

// newOutPath makes the buffers for TUN reads of up to the device's batch
// size: one packet of up to maxPkt bytes without offloads, else segments
// of at most the device's MTU.
func newOutPath(d *Dataplane) *outPath {
	o := &outPath{d: d, icmp: make([]byte, headroom+ipv6MinMTU)}
	n := 1
	if d.tun != nil {
		n = max(d.tun.BatchSize(), 1)
	}
	size := bufSize
	if n > 1 {
		size = headroom + d.cfg.MTU + tailroom
	}
	o.bufs = make([][]byte, n)
	for i := range o.bufs {
		o.bufs[i] = make([]byte, size)
	}
	o.buf = o.bufs[0]
	o.sizes = make([]int, n)
	o.queue = make([]pending, 0, n)
	o.icmpBufs = [][]byte{o.icmp}
	if d.udp != nil {
		if rc, err := d.udp.SyscallConn(); err == nil {
			o.udp = newBatchWriter(rc, n)
			o.gso = !d.noGSO.Load()
		}
	}
	for fam := range 2 {
		if r := d.raw[fam][0]; r != nil {
			o.raw[0][fam] = newBatchWriter(r.rc, n)
		}
		if r := d.raw[fam][1]; r != nil {
			o.raw[1][fam] = newBatchWriter(r.rc, n)
		}
	}
	return o
}

// tunLoop is the outbound path: TUN → SPD → seal → socket, a batch at a
// time. Sequence numbers are taken in the order the packets were read,
// and each batch is sent in that order.
func (d *Dataplane) tunLoop() {
	defer d.wg.Done()
	o := newOutPath(d)
	for {
		n, err := d.tun.Read(o.bufs, o.sizes, headroom)
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			// A packet the device could not hand over (a bad offload
			// header): it is lost, the device goes on.
			d.drop(DropMalformed)
			d.log.Debug("reading TUN device", "err", err)
			continue
		}
		for i := range n {
			o.process(o.bufs[i], o.sizes[i])
		}
		o.flush()
	}
}

// handle processes and sends the inner packet of n bytes at
// o.buf[headroom:].
func (o *outPath) handle(n int) {
	o.process(o.buf, n)
	o.flush()
}

// process handles the inner packet buf[headroom:headroom+n]: a sealed
// packet is queued for flush, which must come before buf is reused.
func (o *outPath) process(buf []byte, n int) {
	d := o.d
	pkt := buf[headroom : headroom+n]
	t, err := policy.ParseTuple(pkt)
	if err != nil {
		d.drop(DropMalformed)
		return
	}
	c, _, ok := d.spd.Lookup(t)
	if !ok {
		d.drop(DropNoPolicy)
		if f := d.cfg.NoPolicy; f != nil {
			f(t)
		}
		return
	}
	if !d.cfg.NoMSSClamp {
		mss := c.mss4
		if t.Src.Is6() {
			mss = c.mss6
		}
		if clampMSS(pkt, mss) {
			d.ctr.mssClamped.Add(1)
		}
	}
	if n > c.maxInner && wantsTooBig(pkt, c.maxInner) {
		// Tell the sender the tunnel's MTU, so that its path MTU
		// discovery works through the tunnel (RFC 4301 §8.2).
		m := tooBig(o.icmp[headroom:], pkt, c.maxInner)
		o.icmpBufs[0] = o.icmp[:headroom+m]
		if _, err := d.tun.Write(o.icmpBufs, headroom); err != nil {
			d.drop(DropTUNError)
		}
		d.drop(DropTooBig)
		d.ctr.tooBigSent.Add(1)
		return
	}
	if n > c.maxInner && c.Out.Protocol() == sa.ProtoAH && pkt[0]>>4 == 4 {
		// The kernel cannot fragment the outer packet of AH (we send it
		// with its header, and AH's ICV covers the Identification), so
		// fragment the inner packet instead, as a router on its way
		// would (RFC 4301 §8.1 pre-fragmentation).
		if !o.fragment4(c, pkt) {
			d.drop(DropTooBig)
		}
		return
	}
	o.seal(c, buf, n)
}

// seal seals the inner packet buf[headroom:headroom+n] with c's outbound
// SA and queues it for the peer.
func (o *outPath) seal(c *child, buf []byte, n int) {
	d := o.d
	s := c.Out
	seq, err := s.NextSeq()
	if err != nil {
		s.CountDrop(sa.ReasonOf(err))
		d.drop(dropOf(err))
		return
	}
	var out []byte
	if s.Protocol() == sa.ProtoAH {
		out, err = ah.Seal(s, seq, buf, headroom, n)
	} else {
		out, err = esp.Seal(s, seq, buf, headroom, n)
	}
	if err != nil {
		d.drop(dropOf(err))
		return
	}
	o.queue = append(o.queue, pending{c: c, pkt: out, fits: n <= c.maxInner})
}

// flush sends the queued packets in order: ESP in UDP as runs of
// equal-sized packets to one peer in one UDP GSO message each, where the
// kernel allows it, and everything in one sendmmsg per socket.
func (o *outPath) flush() {
	d := o.d
	var (
		runDst  netip.AddrPort
		runSeg  int // size of the run's packets; 0: no run open
		runN    int
		runSize int
	)
	for _, p := range o.queue {
		c, s := p.c, p.c.Out
		dst := c.peer.Load()
		if d.sendHook != nil {
			if err := d.sendHook(c, p.pkt); err != nil {
				d.drop(DropSendError)
			}
			continue
		}
		if s.Encap() {
			w := o.udp
			if o.gso && p.fits && runSeg != 0 && dst.udp == runDst && len(p.pkt) <= runSeg &&
				runN < maxGSOSegments && runSize+len(p.pkt) <= maxGSOBytes && w.niov < len(w.iovs) {
				w.extend(p.pkt, runSeg)
				runN++
				runSize += len(p.pkt)
				if len(p.pkt) < runSeg {
					runSeg = 0 // a shorter packet ends the run
				}
				continue
			}
			if w.full() {
				o.flushUDP()
			}
			w.add(p.pkt, dst.udp, dst.oob)
			runDst, runSeg, runN, runSize = dst.udp, 0, 1, len(p.pkt)
			if p.fits {
				runSeg = len(p.pkt)
			}
			continue
		}
		fam := 0
		if dst.udp.Addr().Is6() {
			fam = 1
		}
		w := o.raw[protoIndex(s.Protocol())][fam]
		if w.full() {
			o.flushRaw(w)
		}
		// Raw sockets take no port. AH goes with its header, source
		// included: no PKTINFO.
		var oob []byte
		if s.Protocol() == sa.ProtoESP {
			oob = dst.oob
		}
		w.add(p.pkt, netip.AddrPortFrom(dst.udp.Addr(), 0), oob)
	}
	o.queue = o.queue[:0]
	if o.udp != nil {
		o.flushUDP()
	}
	for i := range o.raw {
		for _, w := range o.raw[i] {
			if w != nil {
				o.flushRaw(w)
			}
		}
	}
}

func (o *outPath) flushUDP() {
	if err := o.udp.flush(); err != nil {
		o.d.drop(DropSendError)
		o.d.log.Debug("sending ESP in UDP", "err", err)
	}
	if o.udp.gsoErr {
		// Sends with several segments fail here (no UDP GSO on the
		// route's device): send one packet per message from now on.
		o.udp.gsoErr = false
		o.gso = false
		if o.d.noGSO.CompareAndSwap(false, true) {
			o.d.log.Info("UDP GSO unavailable; sending one datagram per packet", "err", o.udp.err)
		}
	}
}

func (o *outPath) flushRaw(w *batchWriter) {
	if err := w.flush(); err != nil {
		o.d.drop(DropSendError)
		o.d.log.Debug("sending on raw socket", "err", err)
	}
}

// fragment4 splits the IPv4 packet pkt (DF clear) into fragments of at
// most c.maxInner bytes and seals and sends each (RFC 791 §3.2). Packets
// with IP options are not fragmented (which options to copy is not worth
// the code for packets that rare): it returns false for them.
func (o *outPath) fragment4(c *child, pkt []byte) bool {
	if pkt[0]&0x0f != 5 || len(pkt) < 20 {
		return false
	}
	total := min(int(binary.BigEndian.Uint16(pkt[2:4])), len(pkt))
	step := (c.maxInner - 20) &^ 7
	if step <= 0 || total <= 20 {
		return false
	}
	flags := binary.BigEndian.Uint16(pkt[6:8])
	baseOff := int(flags & 0x1fff)
	lastMF := flags & 0x2000
	if o.frag == nil {
		o.frag = make([]byte, headroom+c.maxInner+tailroom+64)
	}
	for off := 20; off < total; off += step {
		end := min(off+step, total)
		need := headroom + 20 + (end - off) + tailroom
		if len(o.frag) < need {
			o.frag = make([]byte, need)
		}
		f := o.frag[headroom : headroom+20+end-off]
		copy(f[:20], pkt[:20])
		copy(f[20:], pkt[off:end])
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		fo := uint16(baseOff + (off-20)/8)
		if end < total {
			fo |= 0x2000
		} else {
			fo |= lastMF
		}
		binary.BigEndian.PutUint16(f[6:], fo)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:], checksum(f[:20], 0))
		// o.frag is reused for the next fragment: send this one now.
		o.seal(c, o.frag, len(f))
		o.flush()
	}
	return true
}

// Inbound batches: how many datagrams one recvmmsg takes, and where the
// inner packets start in the buffers handed to the TUN device (room for
// the virtio header the device writes in front with offloads).
const (
	recvBatch = 32
	tunOff    = headroom
)

// newRecvBufs makes n receive buffers of bufSize; each datagram is read
// at headroom, and each buffer has its own array, so that an inner packet
// handed to the TUN device can grow in place when the device coalesces
// the packets that follow it (GRO).
func newRecvBufs(n int) (full, at [][]byte) {
	full, at = make([][]byte, n), make([][]byte, n)
	for i := range full {
		full[i] = make([]byte, bufSize)
		at[i] = full[i][headroom : headroom+maxPkt]
	}
	return full, at
}

// udpLoop is the NAT-T socket: ESP in UDP, IKE behind the non-ESP marker,
// keepalives. With UDP GRO one datagram may hold several ESP packets of
// one size back to back.
func (d *Dataplane) udpLoop() {
	defer d.wg.Done()
	rc, err := d.udp.SyscallConn()
	if err != nil {
		d.log.Error("NAT-T socket", "err", err)
		return
	}
	full, at := newRecvBufs(recvBatch)
	r := newBatchReader(rc, at)
	in := newInbound(d)
	for {
		n, err := r.read()
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			d.log.Error("reading NAT-T socket", "err", err)
			return
		}
		for i := range n {
			from := r.from(i)
			msg := r.msg(i)
			seg := r.groSize(i)
			if seg <= 0 || seg >= len(msg) {
				in.udp(full[i], msg, from, true)
				continue
			}
			for off := 0; off < len(msg); off += seg {
				end := min(off+seg, len(msg))
				in.udp(full[i], msg[off:end], from, end == len(msg))
			}
		}
		in.flush()
	}
}

// udp handles one UDP payload on the NAT-T port that lies inside buf;
// last says that nothing after it in buf is still needed.
func (in *inbound) udp(buf, pkt []byte, from netip.AddrPort, last bool) {
	d := in.d
	switch esp.ClassifyUDP(pkt) {
	case esp.KindKeepalive:
		d.ctr.keepalives.Add(1)
	case esp.KindIKE:
		if d.cfg.IKE == nil {
			d.drop(DropNotESP)
			return
		}
		d.ctr.ike.Add(1)
		d.cfg.IKE(pkt[esp.NonESPMarkerLen:], from)
	case esp.KindESP:
		in.esp(buf, pkt, from, last)
	default:
		d.drop(DropMalformed)
	}
}

// rawLoop reads ESP or AH from a raw IP socket.
func (d *Dataplane) rawLoop(s *rawSocket, v6, isAH bool) {
	defer d.wg.Done()
	full, at := newRecvBufs(recvBatch)
	r := newBatchReader(s.rc, at)
	in := newInbound(d)
	for {
		n, err := r.read()
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			d.log.Error("reading raw socket", "ipv6", v6, "ah", isAH, "err", err)
			return
		}
		for i := range n {
			in.raw(r, i, full[i], v6, isAH)
		}
		in.flush()
	}
}

// raw handles the i-th datagram of r, which lies in buf at headroom.
func (in *inbound) raw(r *batchReader, i int, buf []byte, v6, isAH bool) {
	d := in.d
	pkt := r.msg(i)
	n := len(pkt)
	if !v6 {
		// IPv4 raw sockets deliver the IP header too.
		if n < 20 || pkt[0]>>4 != 4 {
			d.drop(DropMalformed)
			return
		}
		if isAH {
			in.ah(buf, pkt)
			return
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || ihl > n {
			d.drop(DropMalformed)
			return
		}
		in.esp(buf, pkt[ihl:], netip.AddrPort{}, true)
		return
	}
	if !isAH {
		in.esp(buf, pkt, netip.AddrPort{}, true)
		return
	}
	// AH's ICV covers the outer IPv6 header, which the IPv6 raw socket
	// does not deliver: rebuild it in the headroom from the addresses
	// the kernel reports.
	src := r.from(i).Addr()
	dst, ok := r.pktinfoDst(i)
	if !ok || !src.IsValid() {
		d.drop(DropMalformed)
		return
	}
	whole, err := ah.RebuildIPv6Header(buf, headroom, n, netip.AddrFrom16(src.As16()), dst)
	if err != nil {
		d.drop(DropMalformed)
		return
	}
	in.ah(buf, whole)
}

// inbound holds one reader goroutine's batch of inner packets for the
// TUN device.
type inbound struct {
	d *Dataplane
	// out is what the next TUN write hands over: inner packets at
	// tunOff, each in a buffer of its own with room to grow to maxPkt.
	out [][]byte
	// spare are buffers for inner packets that share their receive
	// buffer with others (UDP GRO) and are copied out of it.
	spare  [][]byte
	nspare int
}

func newInbound(d *Dataplane) *inbound {
	return &inbound{d: d, out: make([][]byte, 0, recvBatch), spare: make([][]byte, recvBatch)}
}

func (in *inbound) lookup(spi uint32) *child {
	return (*in.d.sad.Load())[spi]
}

// esp opens an ESP packet (SPI first) that lies inside buf. from is the
// UDP source for ESP in UDP, and invalid for ESP over raw IP. last says
// that nothing after pkt in buf is needed any more, so that the inner
// packet may stay where it is.
func (in *inbound) esp(buf, pkt []byte, from netip.AddrPort, last bool) {
	encap := from.IsValid()
	spi, ok := esp.SPI(pkt)
	if !ok {
		in.d.drop(DropMalformed)
		return
	}
	c := in.lookup(spi)
	if c == nil || c.In.Protocol() != sa.ProtoESP || c.In.Encap() != encap {
		in.d.drop(DropUnknownSPI)
		return
	}
	inner, _, err := esp.Open(c.In, pkt)
	if err != nil {
		in.d.drop(dropOf(err))
		return
	}
	if encap {
		if cur := c.peer.Load(); cur.udp != from {
			in.d.movePeer(c, from)
		}
	}
	in.deliver(c, buf, inner, last)
}

// ah opens an AH packet (outer IP header first) that lies inside buf.
func (in *inbound) ah(buf, pkt []byte) {
	off := 40
	if pkt[0]>>4 == 4 {
		off = int(pkt[0]&0x0f) * 4
	}
	if len(pkt) < off+8 {
		in.d.drop(DropMalformed)
		return
	}
	spi := binary.BigEndian.Uint32(pkt[off+4:])
	c := in.lookup(spi)
	if c == nil || c.In.Protocol() != sa.ProtoAH {
		in.d.drop(DropUnknownSPI)
		return
	}
	inner, _, err := ah.Open(c.In, pkt)
	if err != nil {
		in.d.drop(dropOf(err))
		return
	}
	in.deliver(c, buf, inner, true)
}

// deliver checks a decrypted inner packet against the SA's selectors and
// queues it for the TUN device. inner is a sub-slice of buf; unless last,
// it is copied out, because the device may grow it in place.
func (in *inbound) deliver(c *child, buf, inner []byte, last bool) {
	d := in.d
	t, err := policy.ParseTuple(inner)
	if err != nil {
		d.drop(DropMalformed)
		return
	}
	if !c.policy.MatchInbound(t) {
		d.drop(DropPolicyMismatch)
		return
	}
	if !d.cfg.NoMSSClamp {
		mss := c.mss4
		if t.Src.Is6() {
			mss = c.mss6
		}
		if clampMSS(inner, mss) {
			d.ctr.mssClamped.Add(1)
		}
	}
	if len(in.out) == cap(in.out) || in.nspare == len(in.spare) {
		in.flush()
	}
	off := cap(buf) - cap(inner)
	if last && off >= tunOff {
		in.out = append(in.out, buf[off-tunOff:off+len(inner)])
		return
	}
	b := in.spare[in.nspare]
	if b == nil {
		b = make([]byte, tunOff+maxPkt)
		in.spare[in.nspare] = b
	}
	in.nspare++
	in.out = append(in.out, b[:tunOff+copy(b[tunOff:], inner)])
}

// flush writes the queued inner packets to the TUN device in one call.
func (in *inbound) flush() {
	if len(in.out) == 0 {
		return
	}
	d := in.d
	if _, err := d.tun.Write(in.out, tunOff); err != nil {
		d.drop(DropTUNError)
		d.log.Debug("writing TUN device", "err", err)
	}
	clear(in.out)
	in.out = in.out[:0]
	in.nspare = 0
}

// movePeer sends c's packets to from from now on: an authenticated packet
// arrived from there, so the peer (or the NAT in front of it) moved.
func (d *Dataplane) movePeer(c *child, from netip.AddrPort) {
	old := c.peer.Load()
	dst := newOuterDst(from, c.Out.Local().Addr(), d.cfg.NATTPort)
	if !c.peer.CompareAndSwap(old, &dst) {
		return
	}
	d.log.Info("peer moved", "child", c.Name, "from", old.udp.String(), "to", from.String())
}
