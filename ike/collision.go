package ike

import (
	"bytes"
	"encoding/binary"

	"github.com/isle-ipsec/isle/ike/message"
)

// Rekey collisions (RFC 7296 §2.8.1, §2.8.2): both peers rekey the same
// CHILD_SA, or the IKE SA, at once. Each answers the other's request as
// usual, so two new SAs come up; the one whose exchange has the lowest of
// the four nonces is redundant and is deleted by the peer that initiated
// that exchange. The other peer, the winner, deletes the old SA as after
// any rekey. As in strongSwan's child_rekey and ike_rekey tasks, each side
// notes the crossing request while its own is outstanding and decides when
// its own response arrives.

// childRekey is our outstanding rekey of one CHILD_SA.
type childRekey struct {
	ni []byte // our nonce in the request
	// peerChild is the CHILD_SA we made answering the peer's rekey of the
	// same CHILD_SA while ours was out, peerLow that exchange's lower nonce.
	peerChild *ChildSA
	peerLow   []byte
}

// ikeRekey is our outstanding rekey of the IKE SA.
type ikeRekey struct {
	ni      []byte
	peerNew *IKESA // the IKE SA we made answering the peer's crossing rekey
	peerLow []byte
}

// lowerNonce is the lower of an exchange's two nonces, compared as
// strongSwan does: over their common length, then the shorter first.
func lowerNonce(a, b []byte) []byte {
	if compareNonces(a, b) < 0 {
		return a
	}
	return b
}

func compareNonces(a, b []byte) int {
	n := min(len(a), len(b))
	if c := bytes.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	return len(a) - len(b)
}

// deleteRedundantChild deletes the CHILD_SA we made in a rekey collision
// we lost. It was never installed, so no events are reported.
func (s *IKESA) deleteRedundantChild(c *ChildSA) error {
	c.deleting = true
	return s.startRequest(message.Informational, func() ([]message.Payload, func([]message.Payload) error, error) {
		d := &message.Delete{Protocol: message.ProtocolFromSA(c.Protocol), SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.InboundSPI)}}
		return []message.Payload{d}, func([]message.Payload) error { c.Clear(); return nil }, nil
	})
}

// settleIKERekeyCollision ends our IKE SA rekey after the peer's crossed
// it (RFC 7296 §2.8.2). Its IKE SA, peerNew, already carries the CHILD_SAs.
// If our exchange has the lowest nonce, our new IKE SA is redundant: we
// delete it and leave the old one for the peer to delete. Otherwise ours
// takes the CHILD_SAs over from peerNew, which the peer deletes, and we
// delete the old IKE SA as after any rekey.
func (s *IKESA) settleIKERekeyCollision(rk *ikeRekey, st suite, ourSPI, peerSPI uint64, ni, nr, gir []byte) error {
	ours, err := s.newRekeyed(st, true, ourSPI, peerSPI, ni, nr, gir)
	if err != nil {
		return err
	}
	if compareNonces(lowerNonce(ni, nr), rk.peerLow) < 0 {
		err := ours.Delete()
		if s.cfg.OnRedundant != nil {
			s.cfg.OnRedundant(ours)
		}
		return err
	}
	rk.peerNew.handOver(ours)
	return s.Delete()
}
