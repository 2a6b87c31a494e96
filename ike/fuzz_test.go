package ike

import (
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
)

// FuzzAuthenticatedPeer: an authenticated peer is trusted no more than
// anyone else. The fuzzer's payloads are sealed with the real keys of an
// established IKE SA, so they pass the integrity check and reach the
// exchange logic (CREATE_CHILD_SA, INFORMATIONAL, responses to our
// requests); nothing may panic, and the IKE SA must stay usable or fail
// cleanly.
func FuzzAuthenticatedPeer(f *testing.F) {
	seed := func(ps ...message.Payload) []byte {
		first, b, err := message.MarshalPayloads(ps)
		if err != nil {
			f.Fatal(err)
		}
		return append([]byte{byte(first)}, b...)
	}
	left, right := pair(f, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519")
	i0, r0, l0 := newPair(f, left, right)
	i0.Start()
	l0.run(f, i0, r0)
	for _, s := range [][]byte{
		seed(&message.Delete{Protocol: message.ProtoIKE}),
		seed(&message.Delete{Protocol: message.ProtoESP, SPIs: [][]byte{{0, 0, 1, 0}}}),
		seed(&message.Notify{NotifyType: message.RekeySA, Protocol: message.ProtoESP, SPI: []byte{1, 2, 3, 4}},
			proposalsToWire(right.Children[0].Proposals, []byte{9, 9, 9, 9}), &message.Nonce{Data: make([]byte, 32)},
			tsToWire(left.Children[0].LocalTS, false), tsToWire(left.Children[0].RemoteTS, true)),
		seed(proposalsToWire(right.IKEProposals, make([]byte, 8)), &message.Nonce{Data: make([]byte, 32)},
			&message.KE{Group: 31, Data: make([]byte, 32)}),
	} {
		for _, ex := range []uint8{uint8(message.CreateChildSA), uint8(message.Informational)} {
			f.Add(ex, false, s)
		}
	}
	f.Fuzz(func(t *testing.T, exchange uint8, asResponse bool, in []byte) {
		if len(in) == 0 {
			return
		}
		ps, err := message.ParsePayloads(message.PayloadType(in[0]), in[1:])
		if err != nil {
			return
		}
		i, r, l := newPair(t, left, right)
		if err := i.Start(); err != nil {
			t.Fatal(err)
		}
		l.run(t, i, r)
		if r.State() != StateEstablished {
			t.Fatal("setup failed")
		}
		ex := message.ExchangeType(exchange)
		if asResponse {
			// A response from the peer to a request of ours.
			if err := r.CheckLiveness(); err != nil {
				t.Fatal(err)
			}
			if err := r.RekeyChild(r.Children()[0]); err != nil {
				t.Fatal(err)
			}
			l.toI = nil
			b, err := i.seal(i.header(ex, true, r.nextRequestID-1), ps)
			if err != nil {
				return
			}
			for _, d := range b {
				r.Handle(d)
			}
		} else {
			b, err := i.seal(i.header(ex, false, i.nextRequestID), ps)
			if err != nil {
				return
			}
			i.nextRequestID++
			for _, d := range b {
				r.Handle(d)
			}
		}
		// Whatever happened, the responder answers a liveness check if it
		// still stands.
		if r.State() == StateEstablished && r.lastRequest == nil {
			l.toI, l.toR = nil, nil
			if err := i.CheckLiveness(); err == nil {
				l.run(t, i, r)
			}
		}
	})
}
