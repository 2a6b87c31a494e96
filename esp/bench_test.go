package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/sa"
)

var benchSizes = []int{64, 512, 1420, 8192}

// BenchmarkBareGCM is the ceiling for AES-GCM-128: crypto/cipher sealing
// the same number of bytes in place, with nothing around it.
func BenchmarkBareGCM(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, n, n+16)
			nonce := make([]byte, 12)
			aad := make([]byte, 8)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				aead.Seal(buf[:0], nonce, buf, aad)
			}
		})
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, su := range suites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", su.name, n), func(b *testing.B) {
				out, _ := su.pair(b, pairOpts{esn: true})
				head, tail := Overhead(out)
				buf := make([]byte, head+n, head+n+tail)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					buf[head] = 0x45 // the previous round left ciphertext here
					seq, err := out.NextSeq()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := Seal(out, seq, buf, head, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpen opens the same packet again and again: the window is off
// so that it is not a replay, and each round first restores the
// ciphertext that the previous in-place open overwrote (a memmove of the
// packet, included in the time).
func BenchmarkOpen(b *testing.B) {
	for _, su := range suites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", su.name, n), func(b *testing.B) {
				out, in := su.pair(b, pairOpts{esn: true, window: 0})
				pkt := sealInto(b, out, 1, ipPacket(false, n, 1))
				work := make([]byte, len(pkt))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(work, pkt)
					if _, _, err := Open(in, work); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpenReplayWindow measures Open with a 1024-packet window over
// fresh sequence numbers, as a receiver sees them.
func BenchmarkOpenReplayWindow(b *testing.B) {
	su := suites[0]
	const n = 1420
	out, in := su.pair(b, pairOpts{esn: true, window: 1024})
	const ring = 256
	var pkts [ring][]byte
	work := make([]byte, 0, 2048)
	b.SetBytes(n)
	b.ReportAllocs()
	seq := uint64(0)
	for i := range ring {
		pkts[i] = sealInto(b, out, uint64(i+1), ipPacket(false, n, 1))
	}
	_ = sa.ErrReplayed
	for b.Loop() {
		seq++
		p := pkts[(seq-1)%ring]
		if seq > ring { // re-seal the ring slot with a fresh number, off the clock
			b.StopTimer()
			p = sealInto(b, out, seq, ipPacket(false, n, 1))
			pkts[(seq-1)%ring] = p
			b.StartTimer()
		}
		work = append(work[:0], p...)
		if _, _, err := Open(in, work); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealVsBareGCM interleaves short runs of bare AES-GCM-128 and
// of esp.Seal at 1420 bytes and keeps the fastest run of each, so that a
// shared, noisy machine affects both alike. It reports the ratio
// bare/seal ("of-bare"): 1.0 means Seal costs nothing beyond the cipher.
func BenchmarkSealVsBareGCM(b *testing.B) {
	const n, chunk = 1420, 2000
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	bare := make([]byte, n, n+16)
	nonce, aad := make([]byte, 12), make([]byte, 8)

	out, _ := suites[0].pair(b, pairOpts{})
	head, tail := Overhead(out)
	buf := make([]byte, head+n, head+n+tail)

	bestBare, bestSeal := time.Duration(1<<62), time.Duration(1<<62)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		for range chunk {
			aead.Seal(bare[:0], nonce, bare, aad)
		}
		bestBare = min(bestBare, time.Since(start))
		start = time.Now()
		for range chunk {
			buf[head] = 0x45
			seq, err := out.NextSeq()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Seal(out, seq, buf, head, n); err != nil {
				b.Fatal(err)
			}
		}
		bestSeal = min(bestSeal, time.Since(start))
	}
	b.ReportMetric(float64(bestBare.Nanoseconds())/chunk, "bare-ns/pkt")
	b.ReportMetric(float64(bestSeal.Nanoseconds())/chunk, "seal-ns/pkt")
	b.ReportMetric(float64(bestBare)/float64(bestSeal), "of-bare")
}
