package sa

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

type replayStep struct {
	lo         uint32
	wantSeq    uint64 // checked only with ESN (without it seq == lo)
	wantCheck  error
	verified   bool  // the ICV verified, so commit follows
	wantCommit error // result of the commit
}

func newInbound(t testing.TB, window uint32, esn bool) *SA {
	t.Helper()
	c := gcmConfig()
	c.Inbound, c.ReplayWindow, c.ESN = true, window, esn
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// ok, dup, and miss build steps: a new number committed, a number the
// pre-check rejects, and a number that passes the pre-check but whose
// ICV fails (so nothing is committed).
func ok(lo uint32) replayStep   { return replayStep{lo: lo, verified: true} }
func dup(lo uint32) replayStep  { return replayStep{lo: lo, wantCheck: ErrReplayed} }
func miss(lo uint32) replayStep { return replayStep{lo: lo} }

func esnOK(lo uint32, seq uint64) replayStep {
	return replayStep{lo: lo, wantSeq: seq, verified: true}
}

func runSteps(t *testing.T, s *SA, steps []replayStep) {
	t.Helper()
	for i, st := range steps {
		seq, err := s.CheckReplay(st.lo)
		if err != st.wantCheck {
			t.Fatalf("step %d: CheckReplay(%#x) = %v, want %v", i, st.lo, err, st.wantCheck)
		}
		if s.ESN() && st.wantSeq != 0 && seq != st.wantSeq {
			t.Fatalf("step %d: CheckReplay(%#x) inferred %#x, want %#x", i, st.lo, seq, st.wantSeq)
		}
		if !s.ESN() && err == nil && seq != uint64(st.lo) {
			t.Fatalf("step %d: seq %d != %d without ESN", i, seq, st.lo)
		}
		if err == nil && st.verified {
			if err := s.CommitReplay(seq); err != st.wantCommit {
				t.Fatalf("step %d: CommitReplay(%#x) = %v, want %v", i, seq, err, st.wantCommit)
			}
		}
	}
}

func TestReplayWindow(t *testing.T) {
	tests := []struct {
		name   string
		window uint32
		esn    bool
		top    uint64 // committed first, when non-zero
		steps  []replayStep
	}{
		{"zero is never valid", 64, false, 0, []replayStep{dup(0), ok(1), dup(0)}},
		{"duplicates and reordering", 32, false, 0, []replayStep{
			ok(1), dup(1), ok(3), ok(2), dup(2), dup(3), ok(4)}},
		{"left edge of a 32 window", 32, false, 100, []replayStep{
			dup(100), dup(68), ok(69), dup(69), ok(99), ok(101), dup(69), ok(70)}},
		{"failed ICV commits nothing", 64, false, 0, []replayStep{
			miss(5), miss(5), ok(5), dup(5)}},
		{"jump clears stale words", 64, false, 0, []replayStep{
			ok(1), ok(2), ok(64), ok(65), ok(1000), ok(999), ok(937), dup(936), dup(65), ok(938), dup(1000)}},
		{"jump of exactly the ring", 64, false, 5, []replayStep{
			ok(5 + 128), ok(5 + 128 - 63), dup(5 + 128 - 64), dup(5), ok(5 + 127), ok(5 + 129)}},
		{"4096 window", 4096, false, 10000, []replayStep{
			ok(10000 - 4095), dup(10000 - 4096), ok(9000), dup(9000), ok(10001), dup(10001 - 4096)}},
		{"odd window size", 100, false, 1000, []replayStep{ok(901), dup(900), ok(950)}},
		{"off accepts duplicates", 0, false, 0, []replayStep{ok(7), ok(7), ok(3), dup(0)}},
		{"32-bit end", 64, false, math.MaxUint32 - 1, []replayStep{
			ok(math.MaxUint32), dup(math.MaxUint32), ok(math.MaxUint32 - 2), dup(0)}},

		// RFC 4303 Appendix A, Case A: the window lies inside one subspace.
		{"esn case A same subspace", 64, true, 5<<32 | 1000, []replayStep{
			esnOK(990, 5<<32|990), esnOK(1001, 5<<32|1001), esnOK(937+1, 5<<32|938)}},
		{"esn case A next subspace", 64, true, 5<<32 | 1000, []replayStep{
			esnOK(900, 6<<32|900), esnOK(2000, 6<<32|2000)}},
		{"esn case A wrap of the low half", 64, true, 0xFFFFFFFF, []replayStep{
			esnOK(0, 1<<32), esnOK(1, 1<<32|1), esnOK(0xFFFFFFFE, 0xFFFFFFFE), dup(0xFFFFFFFF), dup(0)}},
		// Case B: the window spans the end of one subspace and the start of the next.
		{"esn case B previous subspace", 64, true, 5<<32 | 10, []replayStep{
			esnOK(0xFFFFFFF0, 4<<32|0xFFFFFFF0), dup(0xFFFFFFF0), esnOK(0xFFFFFFD3, 4<<32|0xFFFFFFD3)}},
		{"esn case B current subspace", 64, true, 5<<32 | 10, []replayStep{
			esnOK(5, 5<<32|5), esnOK(11, 5<<32|11), esnOK(0xFFFFFF00, 5<<32|0xFFFFFF00)}},
		{"esn case B at the very start", 64, true, 10, []replayStep{
			dup(0xFFFFFFF0), esnOK(9, 9), dup(0), esnOK(11, 11)}},
		{"esn first packet", 64, true, 0, []replayStep{esnOK(1, 1), esnOK(3, 3), esnOK(2, 2), dup(2)}},
		{"esn off still infers", 0, true, 7<<32 | 5, []replayStep{
			esnOK(0xFFFFFFFF, 6<<32|0xFFFFFFFF), esnOK(4, 7<<32|4), esnOK(4, 7<<32|4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newInbound(t, tt.window, tt.esn)
			if tt.top != 0 {
				if err := s.CommitReplay(tt.top); err != nil {
					t.Fatal(err)
				}
			}
			runSteps(t, s, tt.steps)
		})
	}
}

func TestReplayCommitRace(t *testing.T) {
	s := newInbound(t, 64, false)
	a, errA := s.CheckReplay(9)
	b, errB := s.CheckReplay(9)
	if errA != nil || errB != nil {
		t.Fatal("both pre-checks should pass before any commit")
	}
	if err := s.CommitReplay(a); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitReplay(b); err != ErrReplayed {
		t.Fatalf("second commit of the same number = %v, want ErrReplayed", err)
	}
}

// TestReplayMatchesModel drives the window with random, reordered and
// duplicated numbers and compares every decision with a plain set.
func TestReplayMatchesModel(t *testing.T) {
	for _, w := range []uint32{32, 64, 65, 100, 1024, 4096} {
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		s := newInbound(t, w, false)
		seen := map[uint64]bool{}
		var top uint64
		next := uint64(1)
		for i := range 20000 {
			var seq uint64
			switch r := rng.IntN(10); {
			case r < 5:
				seq = next
				next += uint64(rng.IntN(3)) + 1
			case r < 8:
				back := uint64(rng.IntN(int(w) + 40))
				if back >= next {
					back = next - 1
				}
				seq = next - back
			case r < 9:
				next += uint64(rng.IntN(int(w) * 3))
				seq = next
			default:
				seq = 0
			}
			want := seq != 0 && (seq > top || (top-seq < uint64(w) && !seen[seq]))
			got, err := s.CheckReplay(uint32(seq))
			if (err == nil) != want {
				t.Fatalf("w=%d step %d: check(%d) = %v, model says ok=%v (top %d)", w, i, seq, err, want, top)
			}
			if err == nil {
				if err := s.CommitReplay(got); err != nil {
					t.Fatalf("w=%d step %d: commit(%d) = %v", w, i, seq, err)
				}
				seen[seq] = true
				top = max(top, seq)
			}
		}
	}
}

// TestReplayESNInference checks that a receiver following a sender across
// several 2^32 boundaries, with reordering inside the window, always
// reconstructs the sender's 64-bit number.
func TestReplayESNInference(t *testing.T) {
	const w = 128
	s := newInbound(t, w, true)
	rng := rand.New(rand.NewPCG(7, 7))
	seq := uint64(math.MaxUint32 - 5000)
	var pending []uint64
	for range 200000 {
		seq += uint64(rng.IntN(60)) + 1
		if seq > 3<<32+5000 {
			break
		}
		pending = append(pending, seq)
		if len(pending) < 4 && rng.IntN(2) == 0 {
			continue
		}
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		for _, p := range pending {
			got, err := s.CheckReplay(uint32(p))
			if s.HighestSeq() > p && s.HighestSeq()-p >= w {
				continue // left the window while reordered; rejection is right
			}
			if err != nil || got != p {
				t.Fatalf("CheckReplay(%#x) = %#x, %v; want %#x (top %#x)", uint32(p), got, err, p, s.HighestSeq())
			}
			if err := s.CommitReplay(got); err != nil {
				t.Fatal(err)
			}
		}
		pending = pending[:0]
		if seq > 1<<32 && seq < 1<<32+5000 {
			seq += math.MaxUint32 - 20000 // hurry to the next boundary
		}
	}
	if s.HighestSeq() < 2<<32 {
		t.Fatalf("never crossed two boundaries: top %#x", s.HighestSeq())
	}
}

func TestReplayConcurrent(t *testing.T) {
	s := newInbound(t, 1024, false)
	const workers, n = 4, 20000
	var accepted [n + 1]int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint32(1); i <= n; i++ {
				seq, err := s.CheckReplay(i)
				if err != nil {
					continue
				}
				if s.CommitReplay(seq) == nil {
					mu.Lock()
					accepted[i]++
					mu.Unlock()
				}
			}
			_ = w
		}()
	}
	wg.Wait()
	for i, a := range accepted {
		if a > 1 {
			t.Fatalf("sequence number %d accepted %d times", i, a)
		}
	}
}

func TestReplayNoAllocs(t *testing.T) {
	s := newInbound(t, 4096, true)
	var lo uint32
	n := testing.AllocsPerRun(1000, func() {
		lo++
		seq, err := s.CheckReplay(lo)
		if err == nil {
			_ = s.CommitReplay(seq)
		}
		_, _ = s.CheckReplay(lo)
	})
	if n != 0 {
		t.Fatalf("replay check/commit allocates %v per packet", n)
	}
}
