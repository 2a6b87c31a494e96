package ah

import (
	"fmt"
	"testing"
)

var benchSizes = []int{64, 512, 1420, 8192}

func BenchmarkSeal(b *testing.B) {
	for _, alg := range allIntegs {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				p := newPair(b, alg, 4, true, 0)
				in := innerPacket(4, n)
				head := Overhead(p.out)
				buf := make([]byte, head+n)
				copy(buf[head:], in)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				seq := uint64(0)
				for b.Loop() {
					seq++
					if _, err := Seal(p.out, seq, buf, head, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, alg := range allIntegs {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				// Window 0 so the same packet opens on every iteration;
				// the replay bookkeeping is then a single atomic load.
				p := newPair(b, alg, 4, true, 0)
				pkt := sealCopy(b, p.out, 1, innerPacket(4, n))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := Open(p.in, pkt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
