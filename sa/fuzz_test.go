package sa

import "testing"

// FuzzReplayWindow drives the anti-replay window with arbitrary walks of
// sequence numbers and compares every decision with a plain set.
func FuzzReplayWindow(f *testing.F) {
	f.Add(uint16(64), []byte{1, 1, 0x85, 3, 3, 0xff, 0x40})
	f.Add(uint16(4096), []byte{0xff, 0xff, 0xff, 10, 200, 0x81})
	f.Fuzz(func(t *testing.T, window uint16, walk []byte) {
		w := uint32(window)%4096 + 1
		s := newInbound(t, w, false)
		seen := map[uint64]bool{}
		var top, cur uint64
		for i := 0; i+1 < len(walk); i += 2 {
			step := uint64(walk[i+1]) << (walk[i] & 7)
			if walk[i]&0x80 != 0 {
				cur += step
			} else if step <= cur {
				cur -= step
			} else {
				cur = 0
			}
			cur &= 0xffffffff
			want := cur != 0 && (cur > top || (top-cur < uint64(w) && !seen[cur]))
			got, err := s.CheckReplay(uint32(cur))
			if (err == nil) != want {
				t.Fatalf("check(%d) = %v, model ok=%v (top %d, w %d)", cur, err, want, top, w)
			}
			if err != nil {
				continue
			}
			if walk[i]&0x40 != 0 { // this packet's ICV "failed": no commit
				continue
			}
			if err := s.CommitReplay(got); err != nil {
				t.Fatalf("commit(%d) = %v", cur, err)
			}
			seen[cur] = true
			top = max(top, cur)
		}
	})
}
