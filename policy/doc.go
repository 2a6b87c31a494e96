// Package policy is isle's Security Policy Database (RFC 4301 §4.4.1):
// traffic selectors (Selector, in strongSwan's swanctl.conf syntax), the
// compiled selectors of one SA pair (Policy), and the SPD that maps an
// outbound packet to the SA pair protecting it (SPD).
//
// The hot path is two calls per packet, neither of which allocates:
// ParseTuple reads a packet's addresses, protocol and ports (walking IPv6
// extension headers, treating non-first fragments as OPAQUE), and
// SPD.Lookup returns the most specific entry covering it — narrower remote
// addresses first, then narrower local ones, a named protocol before any,
// narrower ports, and installation order last, so the answer never depends
// on chance. Readers load an immutable table with one atomic load; Install
// and Remove build a new table and publish it, which makes a rekey that
// re-installs an entry under its name atomic for readers.
//
// Inbound, Policy.MatchInbound checks that a decrypted packet's source and
// destination lie in the remote and local selectors of the SA it arrived
// on (RFC 4301 §5.2), so a peer cannot inject traffic outside what was
// agreed.
package policy
