// Package ah implements the IP Authentication Header (RFC 4302) in tunnel
// mode over IPv4 and IPv6 outer headers, with HMAC-SHA1-96 and
// HMAC-SHA2-256-128/384-192/512-256 (RFC 2404, RFC 4868).
//
// AH authenticates the outer IP header too, so unlike esp, Seal builds the
// whole outer packet and Open takes the whole outer packet. Both work in
// place on caller-owned buffers and allocate nothing: Seal writes the outer
// IP header and AH in the Overhead(s) bytes of headroom in front of the
// inner packet, Open returns the inner packet as a subslice.
//
// Keys, the replay window and the sequence counter live in the sa.SA; the
// caller takes sequence numbers from SA.NextSeq for Seal, and Open performs
// the replay pre-check before the ICV and commits after it. Errors are the
// unwrapped sentinels of package sa, so sa.ReasonOf(err) costs nothing.
//
// Transport mode is not implemented: SAs with sa.ModeTransport are refused
// with sa.ErrMalformed.
//
// The package does no I/O, starts no goroutines and logs nothing.
package ah
