package sa

import (
	"errors"
	"fmt"
)

// Reason says why a packet was not sent or not accepted. The packet
// engines return the matching sentinel error on the hot path without
// wrapping it, so that the dataplane can count drops by reason with a type
// switch and no allocation: ReasonOf(err) costs one comparison.
//
// Reason implements error, so every Reason value is its own sentinel:
// errors.Is(err, sa.ErrReplayed) works, and so does a switch on
// sa.ReasonOf(err).
type Reason uint8

const (
	ReasonNone         Reason = iota // no error
	ReasonAuthFailed                 // ICV did not verify
	ReasonReplayed                   // sequence number seen before or left of the window
	ReasonMalformed                  // too short, bad padding, bad next header, misaligned
	ReasonUnknownSPI                 // no SA for this SPI (or the packet is for another SA)
	ReasonSeqExhausted               // outbound sequence number space used up; rekey
	ReasonExpired                    // hard lifetime reached or SA closed
	ReasonDummy                      // a valid dummy packet (next header 59), dropped silently
	ReasonNoRoom                     // caller's buffer lacks head- or tailroom
	numReasons
)

// NumReasons is the number of Reason values, for arrays of counters
// indexed by Reason.
const NumReasons = int(numReasons)

// The sentinel errors the packet engines return (unwrapped) on the hot path.
var (
	ErrAuthFailed   error = ReasonAuthFailed
	ErrReplayed     error = ReasonReplayed
	ErrMalformed    error = ReasonMalformed
	ErrUnknownSPI   error = ReasonUnknownSPI
	ErrSeqExhausted error = ReasonSeqExhausted
	ErrExpired      error = ReasonExpired
	ErrDummy        error = ReasonDummy
	ErrNoRoom       error = ReasonNoRoom
)

func (r Reason) Error() string {
	switch r {
	case ReasonNone:
		return "no error"
	case ReasonAuthFailed:
		return "integrity check failed"
	case ReasonReplayed:
		return "replayed or too old sequence number"
	case ReasonMalformed:
		return "malformed packet"
	case ReasonUnknownSPI:
		return "unknown SPI"
	case ReasonSeqExhausted:
		return "sequence numbers exhausted"
	case ReasonExpired:
		return "SA expired"
	case ReasonDummy:
		return "dummy packet"
	case ReasonNoRoom:
		return "not enough head- or tailroom in buffer"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// String returns a short name usable as a metric label.
func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonAuthFailed:
		return "auth_failed"
	case ReasonReplayed:
		return "replayed"
	case ReasonMalformed:
		return "malformed"
	case ReasonUnknownSPI:
		return "unknown_spi"
	case ReasonSeqExhausted:
		return "seq_exhausted"
	case ReasonExpired:
		return "expired"
	case ReasonDummy:
		return "dummy"
	case ReasonNoRoom:
		return "no_room"
	}
	return fmt.Sprintf("reason_%d", uint8(r))
}

// ReasonOf maps an error returned by sa, esp or ah to its Reason without
// allocating. Errors that are not (or do not wrap) a Reason map to
// ReasonMalformed, so that a counter always moves.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonNone
	}
	if r, ok := err.(Reason); ok {
		return r
	}
	var r Reason
	if errors.As(err, &r) { // wrapped with context: off the hot path
		return r
	}
	return ReasonMalformed
}
