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

// outPath is the outbound path's per-goroutine state: the packet buffer
// with head- and tailroom and the scratch for ICMP answers.
type outPath struct {
	d        *Dataplane
	buf      []byte
	bufs     [][]byte
	sizes    []int
	icmp     []byte
	icmpBufs [][]byte
	frag     []byte           // fragments of inner packets (AH only), made on first use
	writers  [2][2]*rawWriter // [ESP, AH][IPv4, IPv6]
}

func newOutPath(d *Dataplane) *outPath {
	o := &outPath{d: d, buf: make([]byte, bufSize), sizes: []int{0}, icmp: make([]byte, headroom+ipv6MinMTU)}
	o.bufs = [][]byte{o.buf}
	o.icmpBufs = [][]byte{o.icmp}
	o.writers = [2][2]*rawWriter{d.espTx, d.ahTx}
	return o
}

// tunLoop is the outbound path: TUN → SPD → seal → socket.
func (d *Dataplane) tunLoop() {
	defer d.wg.Done()
	o := newOutPath(d)
	for {
		_, err := d.tun.Read(o.bufs[:1], o.sizes, headroom)
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			d.log.Error("reading TUN device", "err", err)
			return
		}
		o.handle(o.sizes[0])
	}
}

// handle processes the inner packet of n bytes at o.buf[headroom:].
func (o *outPath) handle(n int) {
	d := o.d
	pkt := o.buf[headroom : headroom+n]
	t, err := policy.ParseTuple(pkt)
	if err != nil {
		d.drop(DropMalformed)
		return
	}
	c, _, ok := d.spd.Lookup(t)
	if !ok {
		d.drop(DropNoPolicy)
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
	o.sealSend(c, o.buf, n)
}

// sealSend seals the inner packet buf[headroom:headroom+n] with c's
// outbound SA and sends it to the peer.
func (o *outPath) sealSend(c *child, buf []byte, n int) {
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
	dst := c.peer.Load()
	if d.sendHook != nil {
		err = d.sendHook(c, out)
	} else if s.Encap() {
		_, _, err = d.udp.WriteMsgUDPAddrPort(out, dst.oob, dst.udp)
	} else {
		fam := 0
		if dst.udp.Addr().Is6() {
			fam = 1
		}
		err = o.writers[protoIndex(s.Protocol())][fam].send(out, dst, s.Protocol() == sa.ProtoESP)
	}
	if err != nil {
		d.drop(DropSendError)
		d.log.Debug("sending outer packet", "child", c.Name, "err", err)
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
		o.sealSend(c, o.frag, len(f))
	}
	return true
}

// udpLoop is the NAT-T socket: ESP in UDP, IKE behind the non-ESP marker,
// keepalives.
func (d *Dataplane) udpLoop() {
	defer d.wg.Done()
	buf := make([]byte, bufSize)
	in := newInbound(d)
	for {
		n, from, err := d.udp.ReadFromUDPAddrPort(buf[headroom:])
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			d.log.Error("reading NAT-T socket", "err", err)
			return
		}
		pkt := buf[headroom : headroom+n]
		switch esp.ClassifyUDP(pkt) {
		case esp.KindKeepalive:
			d.ctr.keepalives.Add(1)
		case esp.KindIKE:
			if d.cfg.IKE == nil {
				d.drop(DropNotESP)
				continue
			}
			d.ctr.ike.Add(1)
			d.cfg.IKE(pkt[esp.NonESPMarkerLen:], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		case esp.KindESP:
			in.esp(buf, pkt, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		default:
			d.drop(DropMalformed)
		}
	}
}

// rawLoop reads ESP or AH from a raw IP socket.
func (d *Dataplane) rawLoop(s *rawSocket, v6, isAH bool) {
	defer d.wg.Done()
	buf := make([]byte, bufSize)
	r := newRawReader(s, buf[headroom:], isAH)
	in := newInbound(d)
	for {
		n, err := r.next()
		if err != nil {
			if isClosed(err) || d.ctx.Err() != nil {
				return
			}
			d.log.Error("reading raw socket", "ipv6", v6, "ah", isAH, "err", err)
			return
		}
		pkt := buf[headroom : headroom+n]
		if !v6 {
			// IPv4 raw sockets deliver the IP header too.
			if n < 20 || pkt[0]>>4 != 4 {
				d.drop(DropMalformed)
				continue
			}
			if isAH {
				in.ah(buf, pkt)
				continue
			}
			ihl := int(pkt[0]&0x0f) * 4
			if ihl < 20 || ihl > n {
				d.drop(DropMalformed)
				continue
			}
			in.esp(buf, pkt[ihl:], netip.AddrPort{})
			continue
		}
		if !isAH {
			in.esp(buf, pkt, netip.AddrPort{})
			continue
		}
		// AH's ICV covers the outer IPv6 header, which the IPv6 raw
		// socket does not deliver: rebuild it in the headroom from the
		// addresses the kernel reports.
		src, dst, ok := r.v6Addrs()
		if !ok {
			d.drop(DropMalformed)
			continue
		}
		whole, err := ah.RebuildIPv6Header(buf, headroom, n, src, dst)
		if err != nil {
			d.drop(DropMalformed)
			continue
		}
		in.ah(buf, whole)
	}
}

// inbound holds one reader goroutine's scratch for delivering to the TUN.
type inbound struct {
	d    *Dataplane
	bufs [][]byte
}

func newInbound(d *Dataplane) *inbound { return &inbound{d: d, bufs: make([][]byte, 1)} }

func (in *inbound) lookup(spi uint32) *child {
	return (*in.d.sad.Load())[spi]
}

// esp opens an ESP packet (SPI first) that lies inside buf. from is the
// UDP source for ESP in UDP, and invalid for ESP over raw IP.
func (in *inbound) esp(buf, pkt []byte, from netip.AddrPort) {
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
	in.deliver(c, buf, inner)
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
	in.deliver(c, buf, inner)
}

// deliver checks a decrypted inner packet against the SA's selectors and
// writes it to the TUN device. inner is a sub-slice of buf.
func (in *inbound) deliver(c *child, buf, inner []byte) {
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
	off := cap(buf) - cap(inner)
	in.bufs[0] = buf[:off+len(inner)]
	if _, err := d.tun.Write(in.bufs, off); err != nil {
		d.drop(DropTUNError)
		d.log.Debug("writing TUN device", "child", c.Name, "err", err)
	}
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
