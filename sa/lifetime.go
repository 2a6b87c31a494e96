package sa

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind tells the negotiator what an SA needs.
type EventKind uint8

const (
	// EventRekey: a soft limit was reached (or the sequence space is
	// nearly used up); negotiate a replacement. Raised at most once.
	EventRekey EventKind = iota + 1
	// EventExpired: a hard limit was reached; the SA no longer processes
	// packets. Raised at most once.
	EventExpired
)

func (k EventKind) String() string {
	switch k {
	case EventRekey:
		return "rekey"
	case EventExpired:
		return "expired"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Limit names what triggered an event.
type Limit uint8

const (
	LimitTime    Limit = iota + 1 // Lifetime.*.Time
	LimitBytes                    // Lifetime.*.Bytes
	LimitPackets                  // Lifetime.*.Packets
	LimitSeq                      // sequence number space (RFC 4303 §3.3.3)
	LimitManual                   // Expire or Close was called
)

func (l Limit) String() string {
	switch l {
	case LimitTime:
		return "time"
	case LimitBytes:
		return "bytes"
	case LimitPackets:
		return "packets"
	case LimitSeq:
		return "sequence"
	case LimitManual:
		return "manual"
	}
	return fmt.Sprintf("Limit(%d)", uint8(l))
}

// Event is a lifetime notification for the negotiator.
type Event struct {
	SA    *SA
	Kind  EventKind
	Limit Limit
}

// Events returns a channel on which the SA delivers its (at most two)
// lifetime events. It is buffered so that delivery never blocks a packet
// worker; a negotiator that prefers a callback sets Config.Notify instead
// and may ignore the channel.
func (s *SA) Events() <-chan Event { return s.events }

func (s *SA) emit(kind EventKind, limit Limit) {
	ev := Event{SA: s, Kind: kind, Limit: limit}
	select {
	case s.events <- ev:
	default:
	}
	if s.notify != nil {
		s.notify(ev)
	}
}

// raiseRekey signals the soft limit once.
func (s *SA) raiseRekey(limit Limit) {
	if s.softDone.CompareAndSwap(false, true) {
		s.emit(EventRekey, limit)
	}
}

// expire moves the SA to the expired state and signals it once. An
// expired SA no longer raises a separate rekey event: EventExpired
// already tells the negotiator that a replacement is needed.
func (s *SA) expire(limit Limit) {
	s.state.CompareAndSwap(stateAlive, stateExpired)
	if limit == LimitManual {
		s.hardDone.Store(true)
		return
	}
	if s.hardDone.CompareAndSwap(false, true) {
		s.softDone.Store(true)
		s.emit(EventExpired, limit)
	}
}

func (s *SA) startTimers() {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if d := s.lifetime.Soft.Time; d > 0 {
		s.timers = append(s.timers, time.AfterFunc(d, func() { s.raiseRekey(LimitTime) }))
	}
	if d := s.lifetime.Hard.Time; d > 0 {
		s.timers = append(s.timers, time.AfterFunc(d, func() { s.expire(LimitTime) }))
	}
}

func (s *SA) stopTimers() {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.timers = nil
}

// validate rejects soft limits that the hard limits would pre-empt: the
// SA would expire without ever asking for its replacement.
func (l Lifetime) validate() error {
	if l.Soft.Time < 0 || l.Hard.Time < 0 {
		return fmt.Errorf("negative lifetime")
	}
	if l.Hard.Time != 0 && l.Soft.Time >= l.Hard.Time {
		return fmt.Errorf("soft lifetime %v not below hard lifetime %v", l.Soft.Time, l.Hard.Time)
	}
	if l.Hard.Bytes != 0 && l.Soft.Bytes >= l.Hard.Bytes {
		return fmt.Errorf("soft byte limit %d not below hard limit %d", l.Soft.Bytes, l.Hard.Bytes)
	}
	if l.Hard.Packets != 0 && l.Soft.Packets >= l.Hard.Packets {
		return fmt.Errorf("soft packet limit %d not below hard limit %d", l.Soft.Packets, l.Hard.Packets)
	}
	return nil
}

// limitOrMax turns "0 = no limit" into a value a counter never reaches,
// so that the per-packet check is a plain comparison.
func limitOrMax(v uint64) uint64 {
	if v == 0 {
		return math.MaxUint64
	}
	return v
}

// counters are the SA's statistics, updated atomically by the workers.
type counters struct {
	bytesIn, packetsIn   atomic.Uint64
	bytesOut, packetsOut atomic.Uint64
	drops                [NumReasons]atomic.Uint64
	lastUsed             atomic.Int64 // unix nanoseconds, coarse clock
}

// Stats is a snapshot of an SA's counters.
type Stats struct {
	BytesIn, PacketsIn   uint64
	BytesOut, PacketsOut uint64
	Drops                [NumReasons]uint64 // indexed by Reason
	LastUsed             time.Time          // zero if never used; about 250ms resolution
}

// Stats returns a snapshot of the counters.
func (s *SA) Stats() Stats {
	st := Stats{
		BytesIn:    s.ctr.bytesIn.Load(),
		PacketsIn:  s.ctr.packetsIn.Load(),
		BytesOut:   s.ctr.bytesOut.Load(),
		PacketsOut: s.ctr.packetsOut.Load(),
	}
	for i := range st.Drops {
		st.Drops[i] = s.ctr.drops[i].Load()
	}
	if ns := s.ctr.lastUsed.Load(); ns != 0 {
		st.LastUsed = time.Unix(0, ns)
	}
	return st
}

// CountIn records a packet of n inner bytes accepted on this SA and
// enforces the byte and packet lifetimes.
func (s *SA) CountIn(n int) {
	p := s.ctr.packetsIn.Add(1)
	b := s.ctr.bytesIn.Add(uint64(n))
	s.touch()
	s.checkLimits(p, b)
}

// CountOut records a packet of n inner bytes sent on this SA and enforces
// the byte and packet lifetimes.
func (s *SA) CountOut(n int) {
	p := s.ctr.packetsOut.Add(1)
	b := s.ctr.bytesOut.Add(uint64(n))
	s.touch()
	s.checkLimits(p, b)
}

// CountDrop records a packet dropped for reason r.
func (s *SA) CountDrop(r Reason) {
	if int(r) < NumReasons {
		s.ctr.drops[r].Add(1)
	}
}

func (s *SA) touch() {
	now := clock.Load()
	// Skip the store when the value is current: it keeps the cache line
	// shared between workers instead of bouncing it on every packet.
	if s.ctr.lastUsed.Load() != now {
		s.ctr.lastUsed.Store(now)
	}
}

func (s *SA) checkLimits(packets, bytes uint64) {
	l := &s.lifetime
	if packets >= limitOrMax(l.Hard.Packets) {
		s.expire(LimitPackets)
	} else if bytes >= limitOrMax(l.Hard.Bytes) {
		s.expire(LimitBytes)
	} else if packets >= limitOrMax(l.Soft.Packets) {
		s.raiseRekey(LimitPackets)
	} else if bytes >= limitOrMax(l.Soft.Bytes) {
		s.raiseRekey(LimitBytes)
	}
}

// clock is a coarse wall clock (unix nanoseconds) for last-used times:
// reading time.Now costs about 45ns here, a sixth of sealing a full-size
// packet, while a 250ms resolution is plenty for "idle since".
var (
	clock     atomic.Int64
	clockOnce sync.Once
)

func startClock() {
	clockOnce.Do(func() {
		clock.Store(time.Now().UnixNano())
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			for now := range t.C {
				clock.Store(now.UnixNano())
			}
		}()
	})
}
