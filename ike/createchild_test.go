package ike

import (
	"bytes"
	"errors"
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// eventLog records OnChild events.
type eventLog struct{ events []ChildEvent }

func (e *eventLog) record(ev ChildEvent) { e.events = append(e.events, ev) }

func (e *eventLog) kinds() (up, down int) {
	for _, ev := range e.events {
		if ev.Kind == ChildUp {
			up++
		} else {
			down++
		}
	}
	return up, down
}

func establishLogged(t *testing.T, left, right Config) (*IKESA, *IKESA, *link, *eventLog, *eventLog) {
	t.Helper()
	li, lr := &eventLog{}, &eventLog{}
	left.OnChild, right.OnChild = li.record, lr.record
	i, r, l := establish(t, left, right)
	return i, r, l, li, lr
}

// checkLiveChildren checks both sides hold exactly one mirrored CHILD_SA
// and returns the initiator's.
func checkLiveChildren(t *testing.T, i, r *IKESA) (*ChildSA, *ChildSA) {
	t.Helper()
	ci, cr := i.Children(), r.Children()
	if len(ci) != 1 || len(cr) != 1 {
		t.Fatalf("live CHILD_SAs: %d / %d", len(ci), len(cr))
	}
	a, b := ci[0], cr[0]
	if a.OutboundSPI != b.InboundSPI || a.InboundSPI != b.OutboundSPI ||
		!bytes.Equal(a.OutboundEncKey, b.InboundEncKey) || !bytes.Equal(a.InboundEncKey, b.OutboundEncKey) ||
		!bytes.Equal(a.OutboundIntegKey, b.InboundIntegKey) || !bytes.Equal(a.InboundIntegKey, b.OutboundIntegKey) {
		t.Fatal("CHILD_SA ends do not mirror each other")
	}
	return a, b
}

func TestRekeyChild(t *testing.T) {
	tests := []struct {
		name           string
		espI, espR     string
		byResponder    bool
		wantPFS        sa.DHGroup
		wantDatagramsI int // sent by the side that rekeys, for the rekey and the delete
	}{
		{"initiator rekeys", "aes128gcm16", "aes128gcm16", false, sa.DHNone, 2},
		{"responder rekeys", "aes256-sha256", "aes256-sha256", true, sa.DHNone, 2},
		{"with PFS", "aes128gcm16-x25519", "aes128gcm16-x25519", false, sa.DHCurve25519, 2},
		{"PFS group guessed wrong", "aes128gcm16-x25519-ecp256", "aes128gcm16-ecp256", false, sa.DHECP256, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", tt.espI)
			right.Children[0].Proposals = mustProposals(t, sa.ProtoESP, tt.espR)
			i, r, l, li, lr := establishLogged(t, left, right)
			oldI, _ := checkLiveChildren(t, i, r)
			rekeyer, rekeyed := i, oldI
			if tt.byResponder {
				rekeyer, rekeyed = r, r.Children()[0]
			}
			sentI, sentR := l.sentByI, l.sentByR
			if err := rekeyer.RekeyChild(rekeyed); err != nil {
				t.Fatal(err)
			}
			errI, errR := l.run(t, i, r)
			for _, err := range append(errI, errR...) {
				// Refusing a wrong group guess is reported, and expected.
				var ne *NotifyError
				if !errors.As(err, &ne) || ne.Type != message.InvalidKEPayload || tt.wantDatagramsI != 3 {
					t.Fatalf("rekey: %v / %v", errI, errR)
				}
			}
			newI, _ := checkLiveChildren(t, i, r)
			if newI == oldI || newI.InboundSPI == oldI.InboundSPI || bytes.Equal(newI.OutboundEncKey, oldI.OutboundEncKey) {
				t.Fatal("the CHILD_SA was not replaced")
			}
			if newI.PFS != tt.wantPFS {
				t.Errorf("PFS %v, want %v", newI.PFS, tt.wantPFS)
			}
			if newI.LocalTS[0] != oldI.LocalTS[0] || newI.RemoteTS[0] != oldI.RemoteTS[0] {
				t.Errorf("selectors changed: %v/%v", newI.LocalTS, newI.RemoteTS)
			}
			sent := l.sentByI - sentI
			if tt.byResponder {
				sent = l.sentByR - sentR
			}
			if sent != tt.wantDatagramsI {
				t.Errorf("rekeying side sent %d requests, want %d", sent, tt.wantDatagramsI)
			}
			for _, log := range []*eventLog{li, lr} {
				if up, down := log.kinds(); up != 2 || down != 1 {
					t.Errorf("events: %d up, %d down", up, down)
				}
				if ev := log.events[1]; ev.Kind != ChildUp || ev.Replaces == nil || ev.Replaces != log.events[0].Child {
					t.Errorf("rekey event %+v does not name its predecessor", ev)
				}
				if ev := log.events[2]; ev.Kind != ChildDown || ev.Child != log.events[0].Child {
					t.Errorf("old CHILD_SA not taken down: %+v", ev)
				}
			}
			for _, c := range []*ChildSA{newI} {
				in, out := c.SAConfigs()
				for _, cfg := range []sa.Config{in, out} {
					s, err := sa.New(cfg)
					if err != nil {
						t.Fatalf("sa.New: %v", err)
					}
					s.Close()
				}
			}
		})
	}
}

func TestRekeyUnknownChild(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := establish(t, left, right)
	r.removeChild(r.Children()[0]) // the responder forgot it
	if err := i.RekeyChild(i.Children()[0]); err != nil {
		t.Fatal(err)
	}
	errI, _ := l.run(t, i, r)
	var ne *NotifyError
	if len(errI) != 1 || !errors.As(errI[0], &ne) || ne.Type != message.ChildSANotFound {
		t.Fatalf("initiator errors %v", errI)
	}
	if i.State() != StateEstablished || len(i.Children()) != 1 {
		t.Fatalf("IKE SA %v with %d children after a refused rekey", i.State(), len(i.Children()))
	}
}

func TestRekeyRefusedPFS(t *testing.T) {
	// The responder insists on PFS with a group the initiator does not offer.
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	right.Children[0].Proposals = mustProposals(t, sa.ProtoESP, "aes128gcm16-modp3072")
	i, r, l := establish(t, left, right) // IKE_AUTH ignores the group
	if err := i.RekeyChild(i.Children()[0]); err != nil {
		t.Fatal(err)
	}
	errI, _ := l.run(t, i, r)
	var ne *NotifyError
	if len(errI) != 1 || !errors.As(errI[0], &ne) || ne.Type != message.NoProposalChosen {
		t.Fatalf("initiator errors %v", errI)
	}
	if len(i.Children()) != 1 || len(r.Children()) != 1 {
		t.Fatal("the old CHILD_SA did not survive the failed rekey")
	}
}

func TestDeleteChild(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l, li, lr := establishLogged(t, left, right)
	if err := r.DeleteChild(r.Children()[0]); err != nil {
		t.Fatal(err)
	}
	if errI, errR := l.run(t, i, r); len(errI)+len(errR) > 0 {
		t.Fatalf("%v / %v", errI, errR)
	}
	if len(i.Children())+len(r.Children()) != 0 {
		t.Fatalf("children left: %d / %d", len(i.Children()), len(r.Children()))
	}
	for _, log := range []*eventLog{li, lr} {
		if up, down := log.kinds(); up != 1 || down != 1 {
			t.Errorf("events: %d up, %d down", up, down)
		}
	}
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("IKE SA %v/%v", i.State(), r.State())
	}
}

// TestRequestQueue: requests started while one is outstanding wait their
// turn (window size 1) and all complete.
func TestRequestQueue(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := establish(t, left, right)
	if err := i.CheckLiveness(); err != nil {
		t.Fatal(err)
	}
	if err := i.RekeyChild(i.Children()[0]); err != nil {
		t.Fatal(err)
	}
	if err := i.CheckLiveness(); err != nil {
		t.Fatal(err)
	}
	if len(l.toR) != 1 {
		t.Fatalf("%d requests in flight", len(l.toR))
	}
	if errI, errR := l.run(t, i, r); len(errI)+len(errR) > 0 {
		t.Fatalf("%v / %v", errI, errR)
	}
	checkLiveChildren(t, i, r)
	if i.lastRequest != nil || len(i.queue) != 0 {
		t.Fatal("requests left over")
	}
	// INIT, AUTH, liveness, rekey, delete, liveness.
	if l.sentByI != 6 {
		t.Errorf("initiator sent %d datagrams", l.sentByI)
	}
}

// TestMultipleChildren: a second CHILD_SA, asked for before the IKE SA is
// up, follows IKE_AUTH in a CREATE_CHILD_SA; the responder finds each
// request's own configuration by its selectors, whatever its order.
func TestMultipleChildren(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.Children = append(left.Children, ChildConfig{Name: "dns", Proposals: mustProposals(t, sa.ProtoESP, "aes128gcm16"),
		LocalTS: mustSelectors(t, "10.1.0.0/24[udp]"), RemoteTS: mustSelectors(t, "10.2.0.53[udp/53]")})
	right.Children = append([]ChildConfig{{Name: "resolver", Proposals: mustProposals(t, sa.ProtoESP, "aes128gcm16"),
		LocalTS: mustSelectors(t, "10.2.0.53[udp/53]"), RemoteTS: mustSelectors(t, "10.1.0.0/24[udp]")}}, right.Children...)
	li, lr := &eventLog{}, &eventLog{}
	left.OnChild, right.OnChild = li.record, lr.record
	i, r, l := newPair(t, left, right)
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	if err := i.CreateChild("dns"); err != nil {
		t.Fatal(err)
	}
	if err := i.CreateChild("nonexistent"); err == nil {
		t.Error("CreateChild of an unknown configuration accepted")
	}
	if errI, errR := l.run(t, i, r); len(errI)+len(errR) > 0 {
		t.Fatalf("%v / %v", errI, errR)
	}
	ci, cr := i.Children(), r.Children()
	if len(ci) != 2 || len(cr) != 2 {
		t.Fatalf("children %d / %d", len(ci), len(cr))
	}
	names := func(cs []*ChildSA) string { return cs[0].Name + "," + cs[1].Name }
	if names(ci) != "net,dns" || names(cr) != "net,resolver" {
		t.Errorf("children %s / %s", names(ci), names(cr))
	}
	if got := ci[1].RemoteTS[0].String(); got != "10.2.0.53/32[udp/53]" {
		t.Errorf("dns remote TS %s", got)
	}
	if ci[1].OutboundSPI != cr[1].InboundSPI || !bytes.Equal(ci[1].OutboundEncKey, cr[1].InboundEncKey) {
		t.Error("second CHILD_SA does not mirror")
	}
	// Rekeying the second keeps it within its own configuration.
	if err := r.RekeyChild(cr[1]); err != nil {
		t.Fatal(err)
	}
	if errI, errR := l.run(t, i, r); len(errI)+len(errR) > 0 {
		t.Fatalf("%v / %v", errI, errR)
	}
	if ci, cr = i.Children(), r.Children(); len(ci) != 2 || names(ci) != "net,dns" || names(cr) != "net,resolver" {
		t.Fatalf("after rekey: %d children", len(ci))
	}
}
