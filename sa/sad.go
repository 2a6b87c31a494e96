package sa

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SAD is the Security Association Database for inbound lookups: SPI →
// SA. Lookups are lock-free (an atomic pointer to an immutable map), so
// every packet worker can read it at once; changes copy the map under a
// mutex, which suits the negotiator's rare Add/Replace/Delete. The zero
// value is an empty SAD ready to use.
type SAD struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[uint32]*SA]
}

// Lookup returns the SA for spi, or nil.
func (d *SAD) Lookup(spi uint32) *SA {
	m := d.m.Load()
	if m == nil {
		return nil
	}
	return (*m)[spi]
}

// Len returns the number of SAs.
func (d *SAD) Len() int {
	if m := d.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// All returns a snapshot of the SAs, in no particular order.
func (d *SAD) All() []*SA {
	m := d.m.Load()
	if m == nil {
		return nil
	}
	out := make([]*SA, 0, len(*m))
	for _, s := range *m {
		out = append(out, s)
	}
	return out
}

// update copies the map, lets f change the copy and publishes it.
func (d *SAD) update(f func(map[uint32]*SA) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.m.Load()
	next := make(map[uint32]*SA, d.Len()+1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if err := f(next); err != nil {
		return err
	}
	d.m.Store(&next)
	return nil
}

// Add inserts s; it fails if its SPI is already present.
func (d *SAD) Add(s *SA) error {
	return d.update(func(m map[uint32]*SA) error {
		if _, ok := m[s.spi]; ok {
			return fmt.Errorf("sad: SPI %#08x already installed", s.spi)
		}
		m[s.spi] = s
		return nil
	})
}

// Replace inserts s, returning the SA it displaced (nil if none). The old
// SA is not closed: packets in flight may still hold it.
func (d *SAD) Replace(s *SA) (old *SA) {
	_ = d.update(func(m map[uint32]*SA) error {
		old = m[s.spi]
		m[s.spi] = s
		return nil
	})
	return old
}

// Remove takes the SA for spi out of the SAD without closing it and
// returns it (nil if absent).
func (d *SAD) Remove(spi uint32) (old *SA) {
	_ = d.update(func(m map[uint32]*SA) error {
		old = m[spi]
		delete(m, spi)
		return nil
	})
	return old
}

// CloseGrace is how long Delete waits between expiring an SA and
// clearing its keys: a worker that looked the SA up just before may still
// be sealing or opening a packet with it.
const CloseGrace = time.Second

// Delete removes the SA for spi and expires it at once, so no new packet
// is processed with it; its keys are cleared (Close) CloseGrace later. It
// reports whether an SA was found.
func (d *SAD) Delete(spi uint32) bool {
	old := d.Remove(spi)
	if old != nil {
		old.Expire()
		time.AfterFunc(CloseGrace, old.Close)
	}
	return old != nil
}
