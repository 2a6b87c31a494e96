package esp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

func TestRoundTrip(t *testing.T) {
	sizes := []int{40, 41, 42, 43, 64, 100, 1420, 8192}
	for _, su := range suites {
		for _, esn := range []bool{false, true} {
			out, in := su.pair(t, pairOpts{esn: esn, window: 64})
			if esn { // start near the 2^32 boundary to exercise the high half
				if err := in.CommitReplay(math.MaxUint32 - 3); err != nil {
					t.Fatal(err)
				}
			}
			seq := uint64(math.MaxUint32 - 2)
			if !esn {
				seq = 1
			}
			var bytesIn int
			for _, n := range sizes {
				for _, v6 := range []bool{false, true} {
					inner := ipPacket(v6, n, seq)
					pkt := sealInto(t, out, seq, inner)
					head, tail := Overhead(out)
					bs := su.enc.BlockSize()
					if ct := len(pkt) - head - out.ICVSize(); ct%bs != 0 || ct < n+2 || ct > n+2+bs-1 {
						t.Fatalf("%s n=%d: payload %d not aligned to %d", su.name, n, ct, bs)
					}
					if len(pkt) > head+n+tail {
						t.Fatalf("%s: packet longer than Overhead promised", su.name)
					}
					p := Packet(pkt)
					if p.SPI() != out.SPI() || p.Seq() != uint32(seq) {
						t.Fatalf("%s: header SPI %x seq %d", su.name, p.SPI(), p.Seq())
					}
					if su.enc != sa.EncNull && bytes.Contains(pkt, inner[1:min(n, 16)]) && n > 8 {
						t.Fatalf("%s: plaintext visible in packet", su.name)
					}
					got, nh, err := Open(in, pkt)
					if err != nil {
						t.Fatalf("%s esn=%v n=%d v6=%v seq=%#x: Open: %v", su.name, esn, n, v6, seq, err)
					}
					want := NextHeaderIPv4
					if v6 {
						want = NextHeaderIPv6
					}
					if nh != want {
						t.Fatalf("%s: next header %d want %d", su.name, nh, want)
					}
					mustEqual(t, su.name+" inner", got, inner)
					bytesIn += n
					seq++
				}
			}
			st := in.Stats()
			if st.PacketsIn != uint64(2*len(sizes)) || st.BytesIn != uint64(bytesIn) {
				t.Fatalf("%s: inbound counters %+v", su.name, st)
			}
			if so := out.Stats(); so.PacketsOut != st.PacketsIn || so.BytesOut != st.BytesIn {
				t.Fatalf("%s: outbound counters %+v", su.name, so)
			}
		}
	}
}

// TestTamper flips every bit position class of every byte of a sealed
// packet: no modified packet may open.
func TestTamper(t *testing.T) {
	for _, su := range suites {
		for _, esn := range []bool{false, true} {
			out, _ := su.pair(t, pairOpts{esn: esn})
			pkt := sealInto(t, out, 7, ipPacket(false, 61, 1))
			for i := range pkt {
				for _, flip := range []byte{0x01, 0x80, 0xff} {
					_, in := su.pair(t, pairOpts{esn: esn, window: 64})
					bad := append([]byte(nil), pkt...)
					bad[i] ^= flip
					if _, _, err := Open(in, bad); err == nil {
						t.Fatalf("%s esn=%v: byte %d ^ %#x opened", su.name, esn, i, flip)
					}
				}
			}
			for _, cut := range []int{1, 4, len(pkt) - 1, len(pkt)} {
				_, in := su.pair(t, pairOpts{esn: esn, window: 64})
				short := append([]byte(nil), pkt[:len(pkt)-cut]...)
				if _, _, err := Open(in, short); err == nil {
					t.Fatalf("%s: truncated by %d opened", su.name, cut)
				}
			}
			_, in := su.pair(t, pairOpts{esn: esn, window: 64})
			if _, _, err := Open(in, pkt); err != nil {
				t.Fatalf("%s: the untouched packet did not open: %v", su.name, err)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, su := range suites {
		t.Run(su.name, func(t *testing.T) {
			out, in := su.pair(t, pairOpts{window: 64})
			bs := su.enc.BlockSize()
			// raw payloads: inner || pad || padlen || nh, 48 bytes so
			// that every block size is met without padding.
			v4 := ipPacket(false, 46, 3)
			v6 := ipPacket(true, 46, 3)
			tfc := ipPacket(false, 46, 3)
			binary.BigEndian.PutUint16(tfc[2:], 30) // 16 bytes of TFC padding
			long := ipPacket(true, 46, 3)
			binary.BigEndian.PutUint16(long[4:], 7) // claims 47 bytes
			tests := []struct {
				name    string
				seq     uint64
				payload []byte
				want    error
			}{
				{"good", 1, append(append([]byte{}, v4...), 0, 4), nil},
				{"bad pad byte", 2, append(append([]byte{}, v4[:len(v4)-2]...), 1, 3, 2, 4), sa.ErrMalformed},
				{"pad length too long", 3, append(append([]byte{}, v4...), 200, 4), sa.ErrMalformed},
				{"next header not IP", 4, append(append([]byte{}, v4...), 0, 17), sa.ErrMalformed},
				{"v4 next header on v6", 5, append(append([]byte{}, v6...), 0, 4), sa.ErrMalformed},
				{"v6 next header on v4", 6, append(append([]byte{}, v4...), 0, 41), sa.ErrMalformed},
				{"dummy", 7, append(append([]byte{}, v4...), 0, 59), sa.ErrDummy},
				{"empty inner", 8, append(make([]byte, 0, bs), seqPad(bs-2)...), sa.ErrMalformed},
				{"IPv6 longer than payload", 9, append(append([]byte{}, long...), 0, 41), sa.ErrMalformed},
				{"IPv4 shorter than header", 10, append(append([]byte{0x45, 0, 0, 19}, v4[4:]...), 0, 4), sa.ErrMalformed},
			}
			for _, tt := range tests {
				pkt := sealRaw(t, out, tt.seq, tt.payload)
				_, _, err := Open(in, pkt)
				if err != tt.want {
					t.Fatalf("%s: Open = %v, want %v", tt.name, err, tt.want)
				}
				// Authentic packets consume their sequence number, whatever the trailer.
				if _, _, err := Open(in, sealRaw(t, out, tt.seq, tt.payload)); err != sa.ErrReplayed {
					t.Fatalf("%s: second Open = %v, want ErrReplayed", tt.name, err)
				}
			}
			st := in.Stats()
			if st.Drops[sa.ReasonMalformed] != 8 || st.Drops[sa.ReasonDummy] != 1 || st.Drops[sa.ReasonReplayed] != uint64(len(tests)) {
				t.Fatalf("drop counters %v", st.Drops)
			}

			// TFC padding after the inner packet is cut off.
			got, _, err := Open(in, sealRaw(t, out, 11, append(append([]byte{}, tfc...), 0, 4)))
			if err != nil {
				t.Fatalf("TFC: %v", err)
			}
			mustEqual(t, "inner without TFC padding", got, tfc[:30])

			// Wrong SPI, too short, seq 0.
			pkt := sealInto(t, out, 100, ipPacket(false, 40, 1))
			other := append([]byte(nil), pkt...)
			other[3] ^= 1
			if _, _, err := Open(in, other); err != sa.ErrUnknownSPI {
				t.Fatalf("other SPI: %v", err)
			}
			if _, _, err := Open(in, pkt[:HeaderLen+su.enc.IVSize()+in.ICVSize()+1]); err != sa.ErrMalformed {
				t.Fatalf("short: %v", err)
			}
			zero := sealRaw(t, out, 0, append(append([]byte{}, v4...), 0, 4))
			if _, _, err := Open(in, zero); err != sa.ErrReplayed {
				t.Fatalf("seq 0: %v", err)
			}
		})
	}
}

func seqPad(n int) []byte {
	p := make([]byte, n+2)
	for i := range n {
		p[i] = byte(i + 1)
	}
	p[n] = byte(n)
	p[n+1] = 4
	return p
}

func TestOpenReplay(t *testing.T) {
	out, in := suites[0].pair(t, pairOpts{window: 32})
	var pkts [][]byte
	for seq := uint64(1); seq <= 40; seq++ {
		pkts = append(pkts, sealInto(t, out, seq, ipPacket(false, 30, seq)))
	}
	open := func(i int) error {
		_, _, err := Open(in, append([]byte(nil), pkts[i]...))
		return err
	}
	steps := []struct {
		idx  int // seq-1
		want error
	}{{0, nil}, {0, sa.ErrReplayed}, {39, nil}, {7, sa.ErrReplayed}, {8, nil}, {8, sa.ErrReplayed}, {38, nil}}
	for _, st := range steps {
		if err := open(st.idx); err != st.want {
			t.Fatalf("open seq %d = %v, want %v", st.idx+1, err, st.want)
		}
	}
}

// TestESNHighHalfAuthenticated shows that the high 32 bits, which are
// never sent, are covered by the ICV: a receiver whose window is in
// another 2^32 subspace cannot open the packet.
func TestESNHighHalfAuthenticated(t *testing.T) {
	for _, su := range suites {
		out, in := su.pair(t, pairOpts{esn: true, window: 64})
		pkt := sealInto(t, out, 3<<32|5, ipPacket(true, 80, 9))
		if err := in.CommitReplay(2<<32 | 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(in, append([]byte(nil), pkt...)); err != sa.ErrAuthFailed {
			t.Fatalf("%s: wrong subspace: %v, want ErrAuthFailed", su.name, err)
		}
		if err := in.CommitReplay(3<<32 | 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(in, pkt); err != nil {
			t.Fatalf("%s: right subspace: %v", su.name, err)
		}
		if in.HighestSeq() != 3<<32|5 {
			t.Fatalf("%s: window top %#x", su.name, in.HighestSeq())
		}
	}
}

func TestSealErrors(t *testing.T) {
	for _, su := range suites {
		out, _ := su.pair(t, pairOpts{})
		head, tail := Overhead(out)
		inner := ipPacket(false, 33, 1)
		buf := make([]byte, head+len(inner), head+len(inner)+tail)
		copy(buf[head:], inner)
		bs := su.enc.BlockSize()
		need := (bs-(len(inner)+2)%bs)%bs + 2 + out.ICVSize()
		short := buf[: head+len(inner) : head+len(inner)+need-1]
		tests := []struct {
			name string
			seq  uint64
			buf  []byte
			off  int
			want error
		}{
			{"no headroom", 1, buf[1:], head - 1, sa.ErrNoRoom},
			{"no tailroom", 1, short, head, sa.ErrNoRoom},
			{"seq zero", 0, buf, head, sa.ErrSeqExhausted},
			{"seq beyond 32 bits", 1 << 32, buf, head, sa.ErrSeqExhausted},
		}
		for _, tt := range tests {
			_, err := Seal(out, tt.seq, tt.buf, tt.off, len(inner))
			if err != tt.want {
				t.Fatalf("%s %s: %v, want %v", su.name, tt.name, err, tt.want)
			}
		}
		notIP := make([]byte, head+10, head+10+tail)
		if _, err := Seal(out, 1, notIP, head, 10); err != sa.ErrMalformed {
			t.Fatalf("%s: non-IP inner: %v", su.name, err)
		}
		if _, err := SealNextHeader(out, 1, NextHeaderDummy, notIP, head, 10); err != nil {
			t.Fatalf("%s: dummy: %v", su.name, err)
		}
		if st := out.Stats(); st.Drops[sa.ReasonNoRoom] != 2 || st.Drops[sa.ReasonSeqExhausted] != 2 || st.PacketsOut != 1 {
			t.Fatalf("%s: counters %+v", su.name, st)
		}
	}
}

func TestExactTailroom(t *testing.T) {
	// Seal must fit when the buffer has exactly the padding this size
	// needs, not the worst case.
	for _, su := range suites {
		out, in := su.pair(t, pairOpts{})
		head, _ := Overhead(out)
		for n := 20; n < 60; n++ {
			bs := su.enc.BlockSize()
			need := (bs-(n+2)%bs)%bs + 2 + out.ICVSize()
			buf := make([]byte, head+n, head+n+need)
			copy(buf[head:], ipPacket(false, n, 2))
			pkt, err := Seal(out, uint64(n), buf, head, n)
			if err != nil {
				t.Fatalf("%s n=%d: %v", su.name, n, err)
			}
			if _, _, err := Open(in, pkt); err != nil {
				t.Fatalf("%s n=%d: %v", su.name, n, err)
			}
		}
	}
}

func TestExpiry(t *testing.T) {
	for _, su := range suites {
		life := sa.Lifetime{Hard: sa.Limits{Packets: 3}}
		out, in := su.pair(t, pairOpts{window: 64, life: life})
		var pkts [][]byte
		for seq := uint64(1); seq <= 4; seq++ {
			inner := ipPacket(false, 40, seq)
			head, tail := Overhead(out)
			buf := make([]byte, head+40, head+40+tail)
			copy(buf[head:], inner)
			pkt, err := Seal(out, seq, buf, head, 40)
			if seq <= 3 && err != nil {
				t.Fatalf("%s: seal %d: %v", su.name, seq, err)
			}
			if seq == 4 {
				if err != sa.ErrExpired {
					t.Fatalf("%s: seal after hard limit: %v", su.name, err)
				}
				// Build the fourth from a fresh SA to test the inbound side.
				o2, _ := su.pair(t, pairOpts{})
				pkt = sealInto(t, o2, seq, inner)
			}
			pkts = append(pkts, pkt)
		}
		for i, pkt := range pkts {
			_, _, err := Open(in, pkt)
			if i < 3 && err != nil {
				t.Fatalf("%s: open %d: %v", su.name, i, err)
			}
			if i == 3 && err != sa.ErrExpired {
				t.Fatalf("%s: open after hard limit: %v", su.name, err)
			}
		}
		if !errors.Is(in.Err(), sa.ErrExpired) {
			t.Fatalf("%s: inbound SA not expired", su.name)
		}
	}
}

func TestTransportModeAnyNextHeader(t *testing.T) {
	out, in := suites[2].pair(t, pairOpts{mode: sa.ModeTransport, window: 64})
	head, tail := Overhead(out)
	payload := []byte("a UDP datagram, say")
	buf := make([]byte, head+len(payload), head+len(payload)+tail)
	copy(buf[head:], payload)
	pkt, err := SealNextHeader(out, 1, 17, buf, head, len(payload))
	if err != nil {
		t.Fatal(err)
	}
	got, nh, err := Open(in, pkt)
	if err != nil || nh != 17 {
		t.Fatalf("Open = %v, nh %d", err, nh)
	}
	mustEqual(t, "payload", got, payload)
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, su := range suites {
		out, in := su.pair(t, pairOpts{esn: true, window: 1024})
		head, tail := Overhead(out)
		inner := ipPacket(false, 1420, 1)
		buf := make([]byte, head+len(inner), head+len(inner)+tail)
		seq := uint64(0)
		n := testing.AllocsPerRun(200, func() {
			seq++
			copy(buf[head:], inner)
			pkt, err := Seal(out, seq, buf, head, len(inner))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := Open(in, pkt); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Open(in, pkt); err != sa.ErrReplayed { // the error path too
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per seal+open", su.name, n)
		}
	}
}

func TestConcurrentWorkers(t *testing.T) {
	for _, su := range suites[:4] {
		out, in := su.pair(t, pairOpts{window: 4096})
		const workers, each = 4, 300
		pkts := make(chan []byte, workers*each)
		done := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := range each {
					seq, err := out.NextSeq()
					if err != nil {
						done <- err
						return
					}
					head, tail := Overhead(out)
					inner := ipPacket(w%2 == 1, 100+i, seq)
					buf := make([]byte, head+len(inner), head+len(inner)+tail)
					copy(buf[head:], inner)
					pkt, err := Seal(out, seq, buf, head, len(inner))
					if err != nil {
						done <- err
						return
					}
					pkts <- pkt
				}
				done <- nil
			}()
		}
		for range workers {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		close(pkts)
		var all [][]byte
		for p := range pkts {
			all = append(all, p, append([]byte(nil), p...)) // each packet twice
		}
		errs := make(chan [2]int, workers)
		for w := range workers {
			go func() {
				var ok, replayed int
				for i := w; i < len(all); i += workers {
					_, _, err := Open(in, all[i])
					switch err {
					case nil:
						ok++
					case sa.ErrReplayed:
						replayed++
					default:
						t.Error(err)
					}
				}
				errs <- [2]int{ok, replayed}
			}()
		}
		var ok, replayed int
		for range workers {
			r := <-errs
			ok += r[0]
			replayed += r[1]
		}
		if ok != workers*each || replayed != workers*each {
			t.Fatalf("%s: %d opened, %d replayed; want %d each", su.name, ok, replayed, workers*each)
		}
	}
}

func TestClassifyUDP(t *testing.T) {
	tests := []struct {
		in   []byte
		want Kind
	}{
		{[]byte{0xff}, KindKeepalive},
		{[]byte{0, 0, 0, 0, 1, 2, 3}, KindIKE},
		{[]byte{0, 0, 0, 0}, KindInvalid},
		{[]byte{0, 0, 0, 1, 0, 0, 0, 1}, KindESP},
		{[]byte{0, 0, 0, 1, 0, 0, 0}, KindInvalid},
		{[]byte{0xff, 0xff}, KindInvalid},
		{nil, KindInvalid},
		{[]byte{0xfe}, KindInvalid},
	}
	for _, tt := range tests {
		if got := ClassifyUDP(tt.in); got != tt.want {
			t.Errorf("ClassifyUDP(%x) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPacketAccessors(t *testing.T) {
	p := Packet{0xde, 0xad, 0xbe, 0xef, 0, 0, 1, 2, 9, 9}
	if p.SPI() != 0xdeadbeef || p.Seq() != 258 || !bytes.Equal(p.Payload(), []byte{9, 9}) {
		t.Fatal("accessors")
	}
	if spi, ok := SPI(p); !ok || spi != 0xdeadbeef {
		t.Fatal("SPI")
	}
	if _, ok := SPI(p[:7]); ok {
		t.Fatal("SPI of a short packet")
	}
}

func TestMaxOverhead(t *testing.T) {
	for _, su := range suites {
		out, _ := su.pair(t, pairOpts{})
		head, tail := Overhead(out)
		if head > MaxHead || tail > MaxTail {
			t.Fatalf("%s: Overhead %d/%d beyond MaxHead/MaxTail", su.name, head, tail)
		}
	}
}
