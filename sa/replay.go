package sa

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// replayWindow is the receiver's anti-replay state (RFC 4303 §3.4.3):
// a sliding window of the last `size` sequence numbers right of the
// highest one received, kept as a ring of 64-bit words in the manner of
// RFC 6479, so that sliding clears whole words instead of shifting bits.
//
// The check is split in two so that the ICV is verified between them by
// parallel workers:
//
//   - check is read-only and lock-free. It may wrongly accept a packet
//     that races with another one (commit catches that), but it never
//     wrongly rejects: a set bit always belongs to the sequence number
//     being checked or to one far enough to the right that the checked
//     number has left the window.
//   - commit runs under a small mutex, repeats the check authoritatively
//     and records the number.
type replayWindow struct {
	size  uint32 // W, in packets; 0 = anti-replay off
	words uint64 // len(bits), a power of two; (words-1)*64 >= size
	top   atomic.Uint64
	mu    sync.Mutex
	bits  []atomic.Uint64
}

func (w *replayWindow) init(size uint32) {
	w.size = size
	if size == 0 {
		return
	}
	need := uint64(size+63)/64 + 1
	w.words = 1 << bits.Len64(need-1)
	w.bits = make([]atomic.Uint64, w.words)
}

// inferSeq reconstructs the full 64-bit sequence number from the 32 bits
// on the wire. Without ESN that is the number itself. With ESN it follows
// RFC 4303 Appendix A: the high half is guessed from where the window
// sits, before the ICV (which covers the high half) confirms the guess.
// ok is false when the guess would leave the 64-bit space.
func (w *replayWindow) inferSeq(lo uint32, esn bool) (seq uint64, ok bool) {
	if !esn {
		return uint64(lo), true
	}
	t := w.top.Load()
	tl, th := uint32(t), uint32(t>>32)
	win := w.size
	if win == 0 {
		// No window, but the high half still has to be guessed: pick the
		// candidate nearest to the highest number seen.
		win = 1 << 31
	}
	bottom := tl - win + 1 // lowest number in the window, mod 2^32
	if tl >= win-1 {
		// Case A: the window lies within one 2^32 subspace.
		if lo >= bottom {
			return uint64(th)<<32 | uint64(lo), true
		}
		if th == math.MaxUint32 {
			return 0, false
		}
		return uint64(th+1)<<32 | uint64(lo), true
	}
	// Case B: the window spans two subspaces.
	if lo >= bottom {
		if th == 0 {
			return 0, false // before the first subspace: impossible
		}
		return uint64(th-1)<<32 | uint64(lo), true
	}
	return uint64(th)<<32 | uint64(lo), true
}

func (w *replayWindow) bit(seq uint64) (*atomic.Uint64, uint64) {
	return &w.bits[(seq>>6)&(w.words-1)], 1 << (seq & 63)
}

// check reports whether seq may be new. Lock-free and read-only.
func (w *replayWindow) check(seq uint64) bool {
	if seq == 0 {
		return false // never sent: counters start at 1
	}
	if w.size == 0 {
		return true
	}
	top := w.top.Load()
	if seq > top {
		return true
	}
	if top-seq >= uint64(w.size) {
		return false
	}
	word, mask := w.bit(seq)
	return word.Load()&mask == 0
}

// commit records seq after its ICV verified; false if it was seen before
// or has left the window meanwhile.
func (w *replayWindow) commit(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if w.size == 0 {
		for { // only track the highest number, for ESN inference
			top := w.top.Load()
			if seq <= top || w.top.CompareAndSwap(top, seq) {
				return true
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	top := w.top.Load()
	if seq > top {
		n := seq>>6 - top>>6
		if n > w.words {
			n = w.words
		}
		for i := uint64(1); i <= n; i++ {
			w.bits[(top>>6+i)&(w.words-1)].Store(0)
		}
		w.top.Store(seq)
	} else if top-seq >= uint64(w.size) {
		return false
	}
	word, mask := w.bit(seq)
	old := word.Load()
	if old&mask != 0 {
		return false
	}
	word.Store(old | mask)
	return true
}

// CheckReplay is the read-only anti-replay pre-check, done before the
// ICV is verified. lo is the sequence number field of the packet; the
// result is the full sequence number (high half inferred with ESN, RFC
// 4303 Appendix A), which the ICV computation must use. It returns
// ErrReplayed for a duplicate, a number left of the window, or 0.
func (s *SA) CheckReplay(lo uint32) (uint64, error) {
	seq, ok := s.replay.inferSeq(lo, s.esn)
	if !ok || !s.replay.check(seq) {
		return seq, ErrReplayed
	}
	return seq, nil
}

// CommitReplay records seq in the window after the ICV verified. It
// returns ErrReplayed if a concurrent worker committed the same number
// first or the window moved past it.
func (s *SA) CommitReplay(seq uint64) error {
	if !s.replay.commit(seq) {
		return ErrReplayed
	}
	return nil
}

// HighestSeq returns the highest sequence number committed inbound.
func (s *SA) HighestSeq() uint64 { return s.replay.top.Load() }
