package sa

import "math"

// seqRekeyMargin is how many sequence numbers before the end of a 32-bit
// space the SA asks for a rekey, so that the replacement is in place
// before the counter runs out (RFC 4303 §3.3.3 forbids cycling).
const seqRekeyMargin = 1 << 20

// NextSeq hands out the next outbound sequence number. Numbers start at 1
// and are unique across concurrent callers. Without ESN the last number is
// 2^32-1: after it NextSeq returns ErrSeqExhausted (and the SA asks for a
// rekey, if it had not yet). With ESN the counter is 64 bits wide.
// An expired SA returns ErrExpired.
func (s *SA) NextSeq() (uint64, error) {
	if s.state.Load() != stateAlive {
		return 0, ErrExpired
	}
	n := s.seqOut.Add(1)
	if s.esn {
		if n == 0 { // 2^64 packets: only reachable in tests
			s.seqOut.Store(math.MaxUint64)
			s.raiseRekey(LimitSeq)
			return 0, ErrSeqExhausted
		}
		return n, nil
	}
	if n >= math.MaxUint32-seqRekeyMargin {
		if n > math.MaxUint32 {
			s.raiseRekey(LimitSeq)
			return 0, ErrSeqExhausted
		}
		s.raiseRekey(LimitSeq)
	}
	return n, nil
}

// LastSeq returns the last outbound sequence number handed out (0 before
// the first packet). After exhaustion it may exceed the usable space.
func (s *SA) LastSeq() uint64 { return s.seqOut.Load() }
