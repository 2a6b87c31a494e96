package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// span is a selector compiled for matching: an address range, a protocol
// (0 = any) and a port range. Lookups compare netip.Addr values only, so
// they do not allocate.
type span struct {
	lo, hi         netip.Addr
	proto          uint8
	portLo, portHi uint16
}

func (s span) containsAddr(a netip.Addr) bool {
	return s.lo.Compare(a) <= 0 && a.Compare(s.hi) <= 0
}

func (s span) anyPort() bool { return s.portLo == 0 && s.portHi == 0xffff }

// containsPort matches a packet's port. An opaque packet (ports
// unreadable, or a protocol without ports) matches only selectors that
// accept any port or the OPAQUE selector (portLo > portHi, RFC 4301
// §4.4.1.1); the OPAQUE selector matches nothing else.
func (s span) containsPort(p uint16, opaque bool) bool {
	if s.anyPort() {
		return true
	}
	if opaque || s.portLo > s.portHi {
		return opaque && s.portLo > s.portHi
	}
	return s.portLo <= p && p <= s.portHi
}

// width returns the number of addresses in the range minus one, as a
// 128-bit number (hi, lo), so ranges can be ordered by size.
func (s span) width() (uint64, uint64) {
	a, b := s.lo.As16(), s.hi.As16()
	ah, al := be64(a[:8]), be64(a[8:])
	bh, bl := be64(b[:8]), be64(b[8:])
	l := bl - al
	h := bh - ah
	if bl < al {
		h--
	}
	return h, l
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// compareSpecificity orders a before b (negative) when a is the more
// specific selector: narrower addresses, then a named protocol, then
// narrower ports.
func compareSpecificity(a, b span) int {
	ah, al := a.width()
	bh, bl := b.width()
	if c := cmp.Compare(ah, bh); c != 0 {
		return c
	}
	if c := cmp.Compare(al, bl); c != 0 {
		return c
	}
	if (a.proto == 0) != (b.proto == 0) {
		if a.proto != 0 {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.portWidth(), b.portWidth())
}

func (s span) portWidth() int {
	if s.portLo > s.portHi {
		return 0 // OPAQUE is as specific as one port
	}
	return int(s.portHi - s.portLo)
}

// Policy is the compiled traffic selectors of one SA pair: the cross
// product of its local and remote selectors (RFC 7296 §2.9). It answers
// whether a packet belongs to the SA, in either direction.
type Policy struct {
	local, remote []span
}

// policyFromSpans builds a Policy from compiled selectors.
func policyFromSpans(local, remote []span) (*Policy, error) {
	if len(local) == 0 || len(remote) == 0 {
		return nil, fmt.Errorf("policy needs local and remote selectors (got %d local, %d remote)", len(local), len(remote))
	}
	for _, sp := range append(slices.Clone(local), remote...) {
		if !sp.lo.IsValid() || sp.lo.Is4() != sp.hi.Is4() || sp.hi.Less(sp.lo) {
			return nil, fmt.Errorf("invalid selector address range %v-%v", sp.lo, sp.hi)
		}
	}
	return &Policy{local: slices.Clone(local), remote: slices.Clone(remote)}, nil
}

// MatchOutbound reports whether a packet leaving the protected network
// (source local, destination remote) is covered by the policy.
func (p *Policy) MatchOutbound(t Tuple) bool {
	return matchSide(p.local, t.Src, t.Proto, t.SrcPort, t.Opaque) &&
		matchSide(p.remote, t.Dst, t.Proto, t.DstPort, t.Opaque)
}

// MatchInbound reports whether a decrypted inner packet may have arrived on
// the SA: its source must be among the remote selectors and its
// destination among the local ones (RFC 4301 §5.2, step 4).
func (p *Policy) MatchInbound(t Tuple) bool {
	return matchSide(p.remote, t.Src, t.Proto, t.SrcPort, t.Opaque) &&
		matchSide(p.local, t.Dst, t.Proto, t.DstPort, t.Opaque)
}

func matchSide(spans []span, a netip.Addr, proto uint8, port uint16, opaque bool) bool {
	for i := range spans {
		s := &spans[i]
		if s.containsAddr(a) && (s.proto == 0 || s.proto == proto) && s.containsPort(port, opaque) {
			return true
		}
	}
	return false
}

// Remote returns the remote address ranges as prefixes covering them
// exactly, for the routes the dataplane points at its TUN device.
func (p *Policy) Remote() []netip.Prefix { return prefixesOf(p.remote) }

// Local returns the local address ranges as prefixes covering them exactly.
func (p *Policy) Local() []netip.Prefix { return prefixesOf(p.local) }

func prefixesOf(spans []span) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range spans {
		out = append(out, rangeToPrefixes(s.lo, s.hi)...)
	}
	return out
}

// rangeToPrefixes splits the inclusive range [lo, hi] into the fewest
// prefixes that cover exactly it.
func rangeToPrefixes(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for lo.Compare(hi) <= 0 {
		bits := lo.BitLen()
		// Grow the prefix while it stays aligned on lo and inside hi.
		n := bits
		for n > 0 {
			p := netip.PrefixFrom(lo, n-1).Masked()
			if p.Addr() != lo || lastAddr(p).Compare(hi) > 0 {
				break
			}
			n--
		}
		p := netip.PrefixFrom(lo, n)
		out = append(out, p)
		last := lastAddr(p)
		next := last.Next()
		if !next.IsValid() || last == hi {
			break
		}
		lo = next
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	for i := p.Bits(); i < p.Addr().BitLen(); i++ {
		b[off+i/8] |= 0x80 >> (i % 8)
	}
	if p.Addr().Is4() {
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return netip.AddrFrom16(b)
}

// rule is one (local, remote) selector pair of an installed entry, the
// unit the SPD orders and scans.
type rule[T any] struct {
	local, remote span
	seq           uint64
	entry         *entry[T]
}

type entry[T any] struct {
	name   string
	policy *Policy
	value  T
	seq    uint64
}

// table is an immutable snapshot of the SPD: readers load it with one
// atomic load and never lock.
type table[T any] struct {
	rules   []rule[T]
	entries []*entry[T]
}

// SPD is the Security Policy Database: it maps an outbound packet to the
// SA that must protect it. T is what the caller attaches to an entry (the
// dataplane's outbound SA handle). Lookups are lock-free and do not
// allocate; Install and Remove copy the table and publish the new one
// atomically, so a rekey that re-installs an entry under the same name
// replaces it without a window in which packets find no SA.
type SPD[T any] struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[table[T]]
	seq uint64
}

// Install adds the entry name protecting traffic that matches p, or
// replaces the entry of that name, keeping its place among equally
// specific entries.
func (s *SPD[T]) Install(name string, p *Policy, v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	var entries []*entry[T]
	seq := uint64(0)
	if old != nil {
		for _, e := range old.entries {
			if e.name == name {
				seq = e.seq
				continue
			}
			entries = append(entries, e)
		}
	}
	if seq == 0 {
		s.seq++
		seq = s.seq
	}
	entries = append(entries, &entry[T]{name: name, policy: p, value: v, seq: seq})
	s.cur.Store(build(entries))
}

// Remove deletes the entry name; it reports whether there was one.
func (s *SPD[T]) Remove(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if old == nil {
		return false
	}
	var entries []*entry[T]
	found := false
	for _, e := range old.entries {
		if e.name == name {
			found = true
			continue
		}
		entries = append(entries, e)
	}
	if found {
		s.cur.Store(build(entries))
	}
	return found
}

func build[T any](entries []*entry[T]) *table[T] {
	t := &table[T]{entries: entries}
	for _, e := range entries {
		for _, l := range e.policy.local {
			for _, r := range e.policy.remote {
				t.rules = append(t.rules, rule[T]{local: l, remote: r, seq: e.seq, entry: e})
			}
		}
	}
	// Most specific first: the remote side decides (it is what routes a
	// packet to a peer), then the local side; installation order breaks
	// ties so the result never depends on map or slice accidents.
	slices.SortStableFunc(t.rules, func(a, b rule[T]) int {
		if c := compareSpecificity(a.remote, b.remote); c != 0 {
			return c
		}
		if c := compareSpecificity(a.local, b.local); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return t
}

// Lookup returns the value of the most specific entry whose selectors
// cover an outbound packet, and the entry's name.
func (s *SPD[T]) Lookup(t Tuple) (v T, name string, ok bool) {
	tab := s.cur.Load()
	if tab == nil {
		return v, "", false
	}
	for i := range tab.rules {
		r := &tab.rules[i]
		if matchOne(&r.remote, t.Dst, t.Proto, t.DstPort, t.Opaque) &&
			matchOne(&r.local, t.Src, t.Proto, t.SrcPort, t.Opaque) {
			return r.entry.value, r.entry.name, true
		}
	}
	return v, "", false
}

func matchOne(s *span, a netip.Addr, proto uint8, port uint16, opaque bool) bool {
	return s.containsAddr(a) && (s.proto == 0 || s.proto == proto) && s.containsPort(port, opaque)
}

// Len returns the number of installed entries.
func (s *SPD[T]) Len() int {
	tab := s.cur.Load()
	if tab == nil {
		return 0
	}
	return len(tab.entries)
}

// Names returns the installed entry names in installation order.
func (s *SPD[T]) Names() []string {
	tab := s.cur.Load()
	if tab == nil {
		return nil
	}
	es := slices.Clone(tab.entries)
	slices.SortFunc(es, func(a, b *entry[T]) int { return cmp.Compare(a.seq, b.seq) })
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.name
	}
	return names
}
