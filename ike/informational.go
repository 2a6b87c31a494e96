package ike

import (
	"encoding/binary"
	"fmt"

	"github.com/isle-ipsec/isle/ike/message"
)

// CheckLiveness sends an empty INFORMATIONAL request (dead peer
// detection, RFC 7296 §2.4); the peer must answer it. The caller's
// retransmission timer decides when the peer is dead.
func (s *IKESA) CheckLiveness() error {
	return s.startRequest(message.Informational, func() ([]message.Payload, func([]message.Payload) error, error) {
		return nil, func([]message.Payload) error { return nil }, nil
	})
}

// Delete asks the peer to delete the IKE SA and with it every CHILD_SA
// (RFC 7296 §1.4.1); the IKE SA is deleted on our side at once.
func (s *IKESA) Delete() error {
	if s.state != StateEstablished {
		return fmt.Errorf("ike: IKE SA is %v", s.state)
	}
	out, err := s.seal(s.header(message.Informational, false, s.nextRequestID), []message.Payload{&message.Delete{Protocol: message.ProtoIKE}})
	if err != nil {
		return err
	}
	s.queue, s.pending = nil, nil
	if err := s.sendRequest(out); err != nil {
		return err
	}
	for _, c := range s.Children() {
		s.removeChild(c)
	}
	s.state = StateDeleted
	return nil
}

// DeleteChild asks the peer to delete a CHILD_SA pair (RFC 7296 §1.4.1).
// Ours goes down when the peer confirms, or at once if it is no longer
// known to the peer.
func (s *IKESA) DeleteChild(c *ChildSA) error {
	return s.startRequest(message.Informational, func() ([]message.Payload, func([]message.Payload) error, error) {
		c.deleting = true
		d := &message.Delete{Protocol: message.ProtocolFromSA(c.Protocol), SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.InboundSPI)}}
		return []message.Payload{d}, func([]message.Payload) error {
			s.removeChild(c)
			return nil
		}, nil
	})
}
