package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
)

// crossing records, for each of two crossing CREATE_CHILD_SA exchanges,
// its nonces and the SPIs each side put in its SA payload, read from the
// wire with the receiving side's keys.
type crossing struct {
	ni, nr      []byte
	spiReq      []byte // SPI in the request's SA payload (the exchange initiator's)
	spiResp     []byte // SPI in the response's
	initiatedBy string // "i" or "r"
}

// watch decrypts the CREATE_CHILD_SA messages of the IKE SA pair (i, r)
// that cross the link; exchanges are keyed by who initiated them.
func watch(l *link, i, r *IKESA) map[string]*crossing {
	ex := map[string]*crossing{}
	spii, spir := i.SPIs()
	l.drop = func(toResponder bool, b []byte) bool {
		m, err := message.Parse(b)
		if err != nil || m.Exchange != message.CreateChildSA || m.SPIi != spii || m.SPIr != spir {
			return false
		}
		recv := r
		if !toResponder {
			recv = i
		}
		ps, err := recv.in.Open(b, m)
		if err != nil {
			return false
		}
		response := m.Flags&message.FlagResponse != 0
		by := "r"
		if toResponder != response { // a request from i, or a response to i
			by = "i"
		}
		e := ex[by]
		if e == nil {
			e = &crossing{initiatedBy: by}
			ex[by] = e
		}
		nonce := find[*message.Nonce](ps, nil)
		saP := find[*message.SA](ps, nil)
		if nonce == nil || saP == nil {
			return false // a refusal
		}
		if response {
			e.nr, e.spiResp = nonce.Data, saP.Proposals[0].SPI
		} else {
			e.ni, e.spiReq = nonce.Data, saP.Proposals[0].SPI
		}
		return false
	}
	return ex
}

// winner is the exchange whose lower nonce is the higher: the other made
// the redundant SA (RFC 7296 §2.8.1).
func winner(t *testing.T, ex map[string]*crossing) *crossing {
	t.Helper()
	a, b := ex["i"], ex["r"]
	if a == nil || b == nil || a.nr == nil || b.nr == nil {
		t.Fatalf("the two exchanges did not both complete: %+v %+v", a, b)
	}
	if compareNonces(lowerNonce(a.ni, a.nr), lowerNonce(b.ni, b.nr)) < 0 {
		return b
	}
	return a
}

// TestChildRekeyCollision: both peers rekey the same CHILD_SA at once.
// Whichever way the nonces fall, both end with the one CHILD_SA of the
// winning exchange, the redundant one deleted by its creator, the old
// one by the winner, and no TEMPORARY_FAILURE.
func TestChildRekeyCollision(t *testing.T) {
	seen := map[string]bool{}
	for round := 0; round < 64 && len(seen) < 2; round++ {
		left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		i, r, l, li, lr := establishLogged(t, left, right)
		old := i.Children()[0]
		ex := watch(l, i, r)
		if err := i.RekeyChild(i.Children()[0]); err != nil {
			t.Fatal(err)
		}
		if err := r.RekeyChild(r.Children()[0]); err != nil {
			t.Fatal(err)
		}
		errI, errR := l.run(t, i, r)
		if len(errI)+len(errR) > 0 {
			t.Fatalf("errors: %v / %v", errI, errR)
		}
		w := winner(t, ex)
		seen[w.initiatedBy] = true
		ci, cr := checkLiveChildren(t, i, r)
		// The survivor is the winning exchange's CHILD_SA: i's inbound
		// SPI is the one i put in its SA payload of that exchange.
		iSPI := w.spiReq
		if w.initiatedBy == "r" {
			iSPI = w.spiResp
		}
		if ci.InboundSPI != binary.BigEndian.Uint32(iSPI) || ci == old {
			t.Fatalf("round %d: i kept %08x, the winning exchange (by %s) made %x", round, ci.InboundSPI, w.initiatedBy, iSPI)
		}
		if cr.OutboundSPI != ci.InboundSPI {
			t.Fatalf("r's CHILD_SA does not mirror i's")
		}
		// Events: the winner's SA came up on both sides (replacing the
		// old one); on the winner's side the peer's redundant SA came
		// up and went; the loser never installed its own.
		winLog, loseLog := li, lr
		if w.initiatedBy == "r" {
			winLog, loseLog = lr, li
		}
		if up, down := winLog.kinds(); up != 3 || down != 2 {
			t.Errorf("winner's events: %d up, %d down; want 3, 2", up, down)
		}
		if up, down := loseLog.kinds(); up != 2 || down != 1 {
			t.Errorf("loser's events: %d up, %d down; want 2, 1", up, down)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("only %v won in 64 rounds", seen)
	}
}

// TestChildDeleteDuringRekey: one peer rekeys a CHILD_SA while the other
// deletes it (RFC 7296 §2.25.1): the deleter answers TEMPORARY_FAILURE,
// the rekeyer gives up quietly, and the CHILD_SA is gone on both sides.
func TestChildDeleteDuringRekey(t *testing.T) {
	for _, rekeyerIsI := range []bool{true, false} {
		left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		i, r, l, li, lr := establishLogged(t, left, right)
		rekeyer, deleter := i, r
		if !rekeyerIsI {
			rekeyer, deleter = r, i
		}
		if err := rekeyer.RekeyChild(rekeyer.Children()[0]); err != nil {
			t.Fatal(err)
		}
		if err := deleter.DeleteChild(deleter.Children()[0]); err != nil {
			t.Fatal(err)
		}
		errI, errR := l.run(t, i, r)
		// The deleter refuses the rekey (its Handle reports what it sent).
		var ne *NotifyError
		errD, errK := errR, errI
		if !rekeyerIsI {
			errD, errK = errI, errR
		}
		if len(errK) > 0 || len(errD) != 1 || !errors.As(errD[0], &ne) || ne.Type != message.TemporaryFailure || !ne.Sent {
			t.Fatalf("errors: rekeyer %v, deleter %v", errK, errD)
		}
		if len(i.Children())+len(r.Children()) != 0 || i.State() != StateEstablished || r.State() != StateEstablished {
			t.Fatalf("children %d/%d, states %v/%v", len(i.Children()), len(r.Children()), i.State(), r.State())
		}
		for _, log := range []*eventLog{li, lr} {
			if up, down := log.kinds(); up != 1 || down != 1 {
				t.Errorf("events: %d up, %d down; want 1, 1", up, down)
			}
		}
		// A rekey of a CHILD_SA being deleted is refused, not run.
		if err := i.CheckLiveness(); err != nil {
			t.Fatal(err)
		}
		l.run(t, i, r)
	}
}

// TestIKERekeyCollision: both peers rekey the IKE SA at once (RFC 7296
// §2.8.2). Both end on the winning exchange's IKE SA, with the CHILD_SA,
// the redundant IKE SA and the old one deleted, with no CHILD_SA events.
func TestIKERekeyCollision(t *testing.T) {
	seen := map[string]bool{}
	for round := 0; round < 64 && len(seen) < 2; round++ {
		left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
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
		ex := watch(l, i, r)
		if err := i.Rekey(); err != nil {
			t.Fatal(err)
		}
		if err := r.Rekey(); err != nil {
			t.Fatal(err)
		}
		// The loser's redundant IKE SA is never handed to the caller: the
		// answer to its Delete finds nobody (one error at most).
		if errs := rt.run(t); len(errs) > 1 || len(errs) == 1 && !strings.Contains(errs[0].Error(), "IKE SA is DELETED") {
			t.Fatal(errs)
		}
		w := winner(t, ex)
		seen[w.initiatedBy] = true
		last := func(s *IKESA) *IKESA {
			for s.Successor() != nil {
				s = s.Successor()
			}
			return s
		}
		fi, fr := last(i), last(r)
		a, b := fi.SPIs()
		c, d := fr.SPIs()
		if a != c || b != d || a != binary.BigEndian.Uint64(w.spiReq) || b != binary.BigEndian.Uint64(w.spiResp) {
			t.Fatalf("round %d: ended on %x/%x and %x/%x; the winner (by %s) made %x/%x", round, a, b, c, d, w.initiatedBy, w.spiReq, w.spiResp)
		}
		if fi.State() != StateEstablished || fr.State() != StateEstablished || i.State() != StateDeleted || r.State() != StateDeleted {
			t.Fatalf("states: new %v/%v, old %v/%v", fi.State(), fr.State(), i.State(), r.State())
		}
		if len(fi.Children()) != 1 || fi.Children()[0] != child || len(fr.Children()) != 1 {
			t.Fatal("the CHILD_SA is not on the surviving IKE SA")
		}
		// The redundant IKE SA is gone on the winner's side too.
		for _, list := range [][]*IKESA{rt.is, rt.rs} {
			for _, s := range list {
				if s != fi && s != fr && s.State() == StateEstablished {
					t.Fatalf("a second IKE SA %x is still up", s.spii)
				}
			}
		}
		for _, log := range []*eventLog{li, lr} {
			if up, down := log.kinds(); up != 1 || down != 0 {
				t.Errorf("CHILD_SA events: %d up, %d down", up, down)
			}
		}
		// The survivor works: a CHILD_SA rekey under it.
		if err := fi.RekeyChild(fi.Children()[0]); err != nil {
			t.Fatal(err)
		}
		if errs := rt.run(t); len(errs) > 0 {
			t.Fatal(errs)
		}
		checkLiveChildren(t, fi, fr)
	}
	if len(seen) != 2 {
		t.Fatalf("only %v won in 64 rounds", seen)
	}
}

func TestCompareNonces(t *testing.T) {
	for _, tc := range []struct {
		a, b []byte
		want int
	}{
		{[]byte{1, 2}, []byte{1, 3}, -1}, {[]byte{2}, []byte{1, 9}, 1}, {[]byte{1}, []byte{1, 0}, -1}, {[]byte{5, 5}, []byte{5, 5}, 0},
	} {
		got := compareNonces(tc.a, tc.b)
		if (got < 0) != (tc.want < 0) || (got > 0) != (tc.want > 0) {
			t.Errorf("%x vs %x: %d", tc.a, tc.b, got)
		}
	}
	if !bytes.Equal(lowerNonce([]byte{9}, []byte{3}), []byte{3}) {
		t.Error("lowerNonce")
	}
	_ = errors.New
}

// TestManagerRekeyCollisions: two Managers rekey the CHILD_SA, then the
// IKE SA, at the same moment; each time one CHILD_SA and one IKE SA
// remain, and the timers carry on on the survivor.
func TestManagerRekeyCollisions(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		pa.ChildRekeyTime = map[string]time.Duration{"net": time.Hour}
	})
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	sa, sb := tb.established(t)
	if err := tb.a.RekeyChild("to-b", sa.Children[0].InboundSPI); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.RekeyChild("to-a", sb.Children[0].InboundSPI); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	sa, sb = tb.established(t)
	if len(sa.Children) != 1 || len(sb.Children) != 1 || sa.Children[0].InboundSPI != sb.Children[0].OutboundSPI {
		t.Fatalf("after the CHILD_SA collision: %+v / %+v", sa.Children, sb.Children)
	}
	if tb.la.count("to-b:UP:net:rekey")-tb.la.count("to-b:DOWN:net") != 0 || tb.lb.count("to-a:UP:net:rekey")-tb.lb.count("to-a:DOWN:net") != 0 {
		t.Fatalf("events do not balance: %v / %v", tb.la.events, tb.lb.events)
	}

	before := sa.SPIi
	if err := tb.a.RekeyIKE("to-b"); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.RekeyIKE("to-a"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	sa, sb = tb.established(t)
	if sa.SPIi == before || len(sa.Children) != 1 || len(sb.Children) != 1 {
		t.Fatalf("after the IKE SA collision: %+v / %+v", sa, sb)
	}
	// The CHILD_SA timer moved with the CHILD_SA to the surviving IKE SA.
	n := tb.la.count("to-b:UP:net:rekey")
	tb.advance(61 * time.Minute)
	if tb.la.count("to-b:UP:net:rekey") != n+1 {
		t.Fatalf("CHILD_SA rekey timer after the collisions: %v", tb.la.events)
	}
	if _, sb := tb.established(t); len(sb.Children) != 1 {
		t.Fatalf("B: %+v", sb)
	}
}

// TestManagerDeletesStaleReplacedSA: if the peer never deletes an IKE SA
// it replaced (its Delete lost, or a collision it did not notice), the
// Manager deletes it after a while.
func TestManagerDeletesStaleReplacedSA(t *testing.T) {
	tb := newTestbed(t, nil)
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	old, _ := tb.established(t)
	tb.net.drop = func(p packet) bool {
		h, err := message.ParseHeader(p.data)
		return err == nil && p.from.Addr() == addrA && h.Exchange == message.Informational && h.SPIi == old.SPIi
	}
	if err := tb.a.RekeyIKE("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	oldAtB := func() State {
		tb.b.mu.Lock()
		defer tb.b.mu.Unlock()
		for _, ms := range tb.b.bySPI {
			if ms.sa.spii == old.SPIi {
				return ms.sa.State()
			}
		}
		return StateNew
	}
	if st := oldAtB(); st != StateEstablished {
		t.Fatalf("B's old IKE SA: %v, want it kept while A's Delete is lost", st)
	}
	tb.advance(9 * time.Second) // A's Delete (and any resend) still lost
	if st := oldAtB(); st != StateDeleted {
		t.Fatalf("B's old IKE SA after 9 s: %v", st)
	}
	if now, _ := tb.established(t); now.SPIi == old.SPIi || len(now.Children) != 1 {
		t.Fatalf("current IKE SA: %+v", now)
	}
}

// TestManagerForgetsReplacedSAs: IKE SAs replaced by rekeys do not pile
// up in the Manager, and CHILD_SA timers keep working across a chain of
// IKE SA rekeys.
func TestManagerForgetsReplacedSAs(t *testing.T) {
	tb := newTestbed(t, func(pa, pb *Peer) {
		pa.RekeyTime = 10 * time.Minute
		pa.ChildRekeyTime = map[string]time.Duration{"net": 25 * time.Minute}
	})
	if err := tb.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	tb.net.pump()
	tb.advance(2 * time.Hour)
	st, _ := tb.established(t)
	if len(st.Children) != 1 {
		t.Fatalf("%+v", st)
	}
	if n := tb.la.count("to-b:UP:net:rekey"); n < 4 {
		t.Errorf("%d CHILD_SA rekeys in 2 h at 25 min", n)
	}
	for name, m := range map[string]*Manager{"A": tb.a, "B": tb.b} {
		m.mu.Lock()
		n := len(m.bySPI)
		m.mu.Unlock()
		if n > 2 {
			t.Errorf("%s keeps %d IKE SAs after 11 rekeys", name, n)
		}
	}
}
