package ike

import (
	"bytes"
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
)

// router delivers each datagram to the IKE SA of the receiving side whose
// SPIs it carries, as the gateway's dispatcher will; rekeys add SAs.
type router struct {
	l      *link
	is, rs []*IKESA
}

func (rt *router) pick(list []*IKESA, b []byte) *IKESA {
	h, err := message.ParseHeader(b)
	if err != nil {
		return list[0]
	}
	for _, s := range list {
		if s.spii == h.SPIi && (s.spir == h.SPIr || h.SPIr == 0) {
			return s
		}
	}
	return list[0]
}

func (rt *router) run(t *testing.T) (errs []error) {
	t.Helper()
	for n := 0; len(rt.l.toI)+len(rt.l.toR) > 0; n++ {
		if n > 100 {
			t.Fatal("does not settle")
		}
		if len(rt.l.toR) > 0 {
			b := rt.l.toR[0]
			rt.l.toR = rt.l.toR[1:]
			if rt.l.drop != nil && rt.l.drop(true, b) {
				continue
			}
			if err := rt.pick(rt.rs, b).Handle(b); err != nil {
				errs = append(errs, err)
			}
		}
		if len(rt.l.toI) > 0 {
			b := rt.l.toI[0]
			rt.l.toI = rt.l.toI[1:]
			if rt.l.drop != nil && rt.l.drop(false, b) {
				continue
			}
			if err := rt.pick(rt.is, b).Handle(b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

func TestRekeyIKESA(t *testing.T) {
	for _, byResponder := range []bool{false, true} {
		name := map[bool]string{false: "initiator rekeys", true: "responder rekeys"}[byResponder]
		t.Run(name, func(t *testing.T) {
			left, right := pair(t, "aes256-sha256-modp2048", "aes128gcm16")
			rt := &router{}
			li, lr := &eventLog{}, &eventLog{}
			left.OnChild, right.OnChild = li.record, lr.record
			left.OnRekey = func(_, n *IKESA) { rt.is = append(rt.is, n) }
			right.OnRekey = func(_, n *IKESA) { rt.rs = append(rt.rs, n) }
			i, r, l := newPair(t, left, right)
			rt.l, rt.is, rt.rs = l, []*IKESA{i}, []*IKESA{r}
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			if errs := rt.run(t); len(errs) > 0 {
				t.Fatal(errs)
			}
			child := i.Children()[0]
			rekeyer := i
			if byResponder {
				rekeyer = r
			}
			if err := rekeyer.Rekey(); err != nil {
				t.Fatal(err)
			}
			if errs := rt.run(t); len(errs) > 0 {
				t.Fatal(errs)
			}
			ni, nr := i.Successor(), r.Successor()
			if ni == nil || nr == nil || len(rt.is) != 2 || len(rt.rs) != 2 {
				t.Fatal("no successor IKE SA")
			}
			if i.State() != StateDeleted || r.State() != StateDeleted || ni.State() != StateEstablished || nr.State() != StateEstablished {
				t.Fatalf("states: old %v/%v new %v/%v", i.State(), r.State(), ni.State(), nr.State())
			}
			a, b := ni.SPIs()
			c, d := nr.SPIs()
			oa, ob := i.SPIs()
			if a != c || b != d || a == oa || b == ob {
				t.Fatalf("new SPIs %x/%x vs %x/%x (old %x/%x)", a, b, c, d, oa, ob)
			}
			// The rekeying side is the new IKE SA's original initiator.
			if ni.Initiator() == byResponder || nr.Initiator() != byResponder {
				t.Errorf("roles: new initiator-side %v, responder-side %v", ni.Initiator(), nr.Initiator())
			}
			if !bytes.Equal(ni.keys.SKd, nr.keys.SKd) || bytes.Equal(ni.keys.SKd, i.keys.SKd) {
				t.Error("new SK_d not shared or not new")
			}
			if len(ni.Children()) != 1 || ni.Children()[0] != child || len(i.Children()) != 0 {
				t.Fatal("CHILD_SA did not move to the new IKE SA")
			}
			for _, log := range []*eventLog{li, lr} {
				if up, down := log.kinds(); up != 1 || down != 0 {
					t.Errorf("CHILD_SA events during IKE rekey: %d up, %d down", up, down)
				}
			}
			// The new IKE SA works: a liveness check and a CHILD_SA rekey
			// (whose keys come from the new SK_d).
			if err := nr.CheckLiveness(); err != nil {
				t.Fatal(err)
			}
			if err := ni.RekeyChild(ni.Children()[0]); err != nil {
				t.Fatal(err)
			}
			if errs := rt.run(t); len(errs) > 0 {
				t.Fatal(errs)
			}
			checkLiveChildren(t, ni, nr)
			// Message IDs start again at 0 on the new IKE SA.
			if nr.nextRequestID != 1 || ni.peerNextID != 1 {
				t.Errorf("message IDs: %d, %d", nr.nextRequestID, ni.peerNextID)
			}
		})
	}
}
