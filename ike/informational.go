package ike

import (
	"errors"

	"github.com/isle-ipsec/isle/ike/message"
)

// CheckLiveness sends an empty INFORMATIONAL request (dead peer
// detection, RFC 7296 §2.4); the peer must answer it. The caller's
// retransmission timer decides when the peer is dead.
func (s *IKESA) CheckLiveness() error {
	return s.sendInformational(nil)
}

// Delete asks the peer to delete the IKE SA and with it every CHILD_SA
// (RFC 7296 §1.4.1); the IKE SA is deleted on our side at once.
func (s *IKESA) Delete() error {
	err := s.sendInformational([]message.Payload{&message.Delete{Protocol: message.ProtoIKE}})
	if err == nil {
		s.state = StateDeleted
	}
	return err
}

func (s *IKESA) sendInformational(ps []message.Payload) error {
	if s.state != StateEstablished {
		return errors.New("ike: IKE SA is not established")
	}
	if s.lastRequest != nil {
		return errors.New("ike: a request is still outstanding") // window size 1 (§2.3)
	}
	out, err := s.seal(s.header(message.Informational, false, s.nextRequestID), ps)
	if err != nil {
		return err
	}
	return s.sendRequest(out)
}
