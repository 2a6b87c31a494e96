package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Tests and benchmarks of the batched paths: sockets with sendmmsg,
// recvmmsg, UDP GSO and GRO over loopback (no root), and the whole
// outbound and inbound pipeline a batch at a time in memory.

func loopbackPair(t testing.TB) (tx, rx *net.UDPConn) {
	t.Helper()
	var err error
	if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	if tx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	if err := setSockoptInt(rx, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err != nil {
		t.Logf("no UDP GRO: %v", err)
	}
	setBuffers(sysfd(t, rx))
	return tx, rx
}

func sysfd(t testing.TB, c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// batchPlan is one sendmmsg: messages of packets; a message with more
// than one packet is a GSO run (all but its last packet of one size).
type batchPlan [][]int

func (p batchPlan) packets(seed byte) [][]byte {
	var out [][]byte
	for _, msg := range p {
		for _, n := range msg {
			b := make([]byte, n)
			for i := range b {
				b[i] = seed + byte(len(out)) + byte(i)
			}
			out = append(out, b)
		}
	}
	return out
}

// queue adds the plan's packets to w.
func (p batchPlan) queue(w *batchWriter, pkts [][]byte, dst netip.AddrPort) {
	k := 0
	for _, msg := range p {
		for j := range msg {
			if j == 0 {
				w.add(pkts[k], dst, nil)
			} else {
				w.extend(pkts[k], msg[0])
			}
			k++
		}
	}
}

// receive reads until want packets arrived (GRO trains split by their
// segment size) and returns them in the reader's buffers.
func receive(t testing.TB, r *batchReader, rx *net.UDPConn, got [][]byte, want int) [][]byte {
	got = got[:0]
	rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(got) < want {
		n, err := r.read()
		if err != nil {
			t.Fatalf("after %d of %d packets: %v", len(got), want, err)
		}
		for i := range n {
			msg, seg := r.msg(i), r.groSize(i)
			if seg <= 0 {
				seg = len(msg)
			}
			for off := 0; off < len(msg); off += seg {
				got = append(got, msg[off:min(off+seg, len(msg))])
			}
		}
	}
	return got
}

func TestBatchSocketsLoopback(t *testing.T) {
	tx, rx := loopbackPair(t)
	txrc, _ := tx.SyscallConn()
	rxrc, _ := rx.SyscallConn()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	_, at := newRecvBufs(recvBatch)
	r := newBatchReader(rxrc, at)
	w := newBatchWriter(txrc, 64)
	plans := map[string]batchPlan{
		"singles":          {{100}, {1400}, {1}, {1400}},
		"gso run":          {{1200, 1200, 1200, 1200, 1200}},
		"gso short tail":   {{1000, 1000, 1000, 300}},
		"runs and singles": {{64}, {1400, 1400, 1400}, {900, 900}, {20}},
	}
	for name, plan := range plans {
		t.Run(name, func(t *testing.T) {
			pkts := plan.packets(byte(len(name)))
			plan.queue(w, pkts, dst)
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			got := receive(t, r, rx, nil, len(pkts))
			if len(got) != len(pkts) {
				t.Fatalf("%d packets arrived, sent %d", len(got), len(pkts))
			}
			for i := range pkts {
				if !bytes.Equal(got[i], pkts[i]) {
					t.Fatalf("packet %d: got %d bytes %x…, sent %d bytes %x…", i, len(got[i]), got[i][:min(8, len(got[i]))], len(pkts[i]), pkts[i][:min(8, len(pkts[i]))])
				}
			}
			if from := r.from(0); from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Errorf("source %v, want %v", from, tx.LocalAddr())
			}
		})
	}
}

// TestBatchSocketsNoAlloc: a sendmmsg with GSO and the recvmmsg that takes
// it in allocate nothing.
func TestBatchSocketsNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	tx, rx := loopbackPair(t)
	txrc, _ := tx.SyscallConn()
	rxrc, _ := rx.SyscallConn()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	_, at := newRecvBufs(recvBatch)
	r := newBatchReader(rxrc, at)
	w := newBatchWriter(txrc, 64)
	plan := batchPlan{{1400, 1400, 1400, 1400, 700}, {60}, {1400}}
	pkts := plan.packets(7)
	got := make([][]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		plan.queue(w, pkts, dst)
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		got = receive(t, r, rx, got, len(pkts))
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

// memBatch joins from's outbound path to to's inbound path a batch at a
// time, as the sockets do: each sealed packet lands in a receive buffer
// of its own, and the inner packets reach to's TUN device in one write
// per batch (flush).
type memBatch struct {
	in   *inbound
	bufs [][]byte
	n    int
}

func newMemBatch(from, to *Dataplane) *memBatch {
	m := &memBatch{in: newInbound(to)}
	m.bufs, _ = newRecvBufs(recvBatch)
	from.sendHook = func(c *child, out []byte) error {
		buf := m.bufs[m.n]
		m.n++
		pkt := buf[headroom : headroom+copy(buf[headroom:], out)]
		var src netip.AddrPort
		if c.Out.Encap() {
			src = c.Out.Local()
		}
		m.in.esp(buf, pkt, src, true)
		return nil
	}
	return m
}

func (m *memBatch) flush() {
	m.in.flush()
	m.n = 0
}

// countTUN is a TUN device that reads batches of up to batch packets
// (none arrive: the tests fill the buffers) and counts what is written.
type countTUN struct {
	tun.Device
	batch           int
	writes, packets int
}

func (c *countTUN) Write(bufs [][]byte, off int) (int, error) {
	c.writes++
	c.packets += len(bufs)
	return len(bufs), nil
}
func (c *countTUN) BatchSize() int { return c.batch }
func (c *countTUN) Close() error   { return nil }

// pipelineCase sets up two in-memory dataplanes with an SA pair and a
// batch of inner packets of size bytes for left's outbound path.
func pipelineCase(t testing.TB, suite string, size int) (o *outPath, link *memBatch, rtun *countTUN, batch []byte) {
	ltun, rtun := &countTUN{batch: recvBatch}, &countTUN{batch: recvBatch}
	left := newDataplane(Config{MTU: 1440, OuterMTU: 1500, Logger: quiet()}, ltun, nil)
	right := newDataplane(Config{MTU: 1440, OuterMTU: 1500, Logger: quiet()}, rtun, nil)
	link = newMemBatch(left, right)
	right.sendHook = func(*child, []byte) error { return nil }
	pair(t, left, right, suites[suite])
	o = newOutPath(left)
	return o, link, rtun, udpPacket(t, "10.1.0.2", "10.2.0.2", size-28, false)
}

// runBatch passes a batch of copies of pkt through the pipeline: outbound
// (SPD, MSS clamp, sequence numbers, seal, send), inbound (SAD, open,
// replay, inbound policy, TUN write).
func runBatch(o *outPath, link *memBatch, pkt []byte) {
	for _, b := range o.bufs {
		o.process(b, copy(b[headroom:], pkt))
	}
	o.flush()
	link.flush()
}

func TestPipelineNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, name := range []string{"aes-gcm-128", "aes-cbc-128-sha256"} {
		t.Run(name, func(t *testing.T) {
			o, link, rtun, pkt := pipelineCase(t, name, 1400)
			runBatch(o, link, pkt) // first use makes what is made lazily
			before := rtun.packets
			allocs := testing.AllocsPerRun(100, func() { runBatch(o, link, pkt) })
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d packets", allocs, recvBatch)
			}
			if got := rtun.packets - before; got < 100*recvBatch {
				t.Fatalf("%d packets arrived, want %d", got, 100*recvBatch)
			}
			if rtun.writes > rtun.packets/recvBatch+1 {
				t.Errorf("%d TUN writes for %d packets: not one per batch", rtun.writes, rtun.packets)
			}
		})
	}
}

// BenchmarkPipeline: one batch of packets through both gateways' paths in
// memory, without the kernel. ns/pkt is per packet.
func BenchmarkPipeline(b *testing.B) {
	for _, name := range []string{"aes-gcm-128", "chacha20-poly1305", "aes-cbc-128-sha256"} {
		for _, size := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				o, link, _, pkt := pipelineCase(b, name, size)
				b.SetBytes(int64(recvBatch * len(pkt)))
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					runBatch(o, link, pkt)
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*recvBatch), "ns/pkt")
			})
		}
	}
}

// recordTUN keeps a copy of every packet written to it, in order.
type recordTUN struct {
	countTUN
	got [][]byte
}

func (r *recordTUN) Write(bufs [][]byte, off int) (int, error) {
	for _, b := range bufs {
		r.got = append(r.got, append([]byte(nil), b[off:]...))
	}
	return r.countTUN.Write(bufs, off)
}

// TestPipelineOrder: a batch of one SA's packets arrives complete and in
// the order it was read, every inner packet byte for byte.
func TestPipelineOrder(t *testing.T) {
	ltun, rtun := &countTUN{batch: recvBatch}, &recordTUN{countTUN: countTUN{batch: recvBatch}}
	left := newDataplane(Config{MTU: 1440, OuterMTU: 1500, Logger: quiet()}, ltun, nil)
	right := newDataplane(Config{MTU: 1440, OuterMTU: 1500, Logger: quiet()}, rtun, nil)
	link := newMemBatch(left, right)
	right.sendHook = func(*child, []byte) error { return nil }
	pair(t, left, right, suites["aes-gcm-128"])
	o := newOutPath(left)
	var sent [][]byte
	for i, b := range o.bufs {
		p := udpPacket(t, "10.1.0.2", "10.2.0.2", 100+37*i, false)
		sent = append(sent, p)
		o.process(b, copy(b[headroom:], p))
	}
	o.flush()
	link.flush()
	if len(rtun.got) != len(sent) {
		t.Fatalf("%d of %d packets arrived", len(rtun.got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(rtun.got[i], sent[i]) {
			t.Fatalf("packet %d differs or is out of order: got %d bytes, sent %d", i, len(rtun.got[i]), len(sent[i]))
		}
	}
	if rtun.writes != 1 {
		t.Errorf("%d TUN writes for one batch", rtun.writes)
	}
}
