package keys

// keyPad is the constant RFC 7296 §2.15 mixes into a shared secret so that
// the PSK is never used as a PRF key directly.
const keyPad = "Key Pad for IKEv2"

// SignedOctets builds what the AUTH payload of one side authenticates
// (RFC 7296 §2.15): the side's first message (IKE_SA_INIT request for the
// initiator, response for the responder) as sent, the peer's nonce data,
// and prf(SK_p, RestOfIDPayload) with the side's own SK_pi or SK_pr and
// ID payload body (message.ID.Body).
func SignedOctets(p PRF, firstMessage, peerNonce, skp, idBody []byte) []byte {
	mac := p.Sum(skp, idBody)
	out := make([]byte, 0, len(firstMessage)+len(peerNonce)+len(mac))
	return append(append(append(out, firstMessage...), peerNonce...), mac...)
}

// PSKAuth computes the AUTH data for shared-key authentication:
// prf(prf(Shared Secret, "Key Pad for IKEv2"), signed octets).
func PSKAuth(p PRF, psk, octets []byte) []byte {
	return p.Sum(p.Sum(psk, []byte(keyPad)), octets)
}
