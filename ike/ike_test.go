package ike

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/isle-ipsec/isle/ike/internal/ikecap"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

func mustProposals(t testing.TB, proto sa.Protocol, s string) []sa.Proposal {
	t.Helper()
	ps, err := sa.ParseProposal(proto, s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func mustSelectors(t testing.TB, ss ...string) []policy.Selector {
	t.Helper()
	var out []policy.Selector
	for _, s := range ss {
		sel, err := policy.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}

// pair returns matching initiator (left) and responder (right) configs
// like the lab's strongSwan pair.
func pair(t testing.TB, ike, esp string) (left, right Config) {
	left = Config{
		LocalID: FQDN("gw-left"), RemoteID: FQDN("gw-right"), PSK: []byte("lab-psk-0123456789"),
		IKEProposals: mustProposals(t, sa.ProtoIKE, ike),
		Children: []ChildConfig{{Name: "net", Proposals: mustProposals(t, sa.ProtoESP, esp),
			LocalTS: mustSelectors(t, "10.1.0.0/24"), RemoteTS: mustSelectors(t, "10.2.0.0/24")}},
		Local: netip.MustParseAddrPort("198.18.0.1:500"), Remote: netip.MustParseAddrPort("198.18.0.2:500"),
	}
	right = left
	right.LocalID, right.RemoteID = left.RemoteID, left.LocalID
	right.Children = []ChildConfig{{Name: "net", Proposals: mustProposals(t, sa.ProtoESP, esp),
		LocalTS: left.Children[0].RemoteTS, RemoteTS: left.Children[0].LocalTS}}
	right.Local, right.Remote = left.Remote, left.Local
	return left, right
}

// link connects two negotiators over in-memory queues, as crypto/tls
// tests do over net.Pipe; run delivers until both sides are quiet.
type link struct {
	toI, toR [][]byte
	sentByI  int
	sentByR  int
	// drop, when set, may discard a datagram in flight.
	drop func(toResponder bool, b []byte) bool
}

func (l *link) sendI(b []byte) error {
	l.toR = append(l.toR, append([]byte(nil), b...))
	l.sentByI++
	return nil
}

func (l *link) sendR(b []byte) error {
	l.toI = append(l.toI, append([]byte(nil), b...))
	l.sentByR++
	return nil
}

func newPair(t testing.TB, left, right Config) (*IKESA, *IKESA, *link) {
	t.Helper()
	l := &link{}
	i, err := NewInitiator(left, l.sendI)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResponder(right, l.sendR)
	if err != nil {
		t.Fatal(err)
	}
	return i, r, l
}

// run delivers queued datagrams until none are left; it returns the
// errors each side's Handle reported.
func (l *link) run(t testing.TB, i, r *IKESA) (errI, errR []error) {
	t.Helper()
	for n := 0; len(l.toI)+len(l.toR) > 0; n++ {
		if n > 100 {
			t.Fatal("negotiation does not settle")
		}
		if len(l.toR) > 0 {
			b := l.toR[0]
			l.toR = l.toR[1:]
			if l.drop == nil || !l.drop(true, b) {
				if err := r.Handle(b); err != nil {
					errR = append(errR, err)
				}
			}
		}
		if len(l.toI) > 0 {
			b := l.toI[0]
			l.toI = l.toI[1:]
			if l.drop == nil || !l.drop(false, b) {
				if err := i.Handle(b); err != nil {
					errI = append(errI, err)
				}
			}
		}
	}
	return errI, errR
}

func establish(t *testing.T, left, right Config) (*IKESA, *IKESA, *link) {
	t.Helper()
	i, r, l := newPair(t, left, right)
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	errI, errR := l.run(t, i, r)
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("states %v/%v, errors %v / %v", i.State(), r.State(), errI, errR)
	}
	return i, r, l
}

// checkChildPair checks that the two ends of the CHILD_SA mirror each
// other and that the sa package accepts both directions.
func checkChildPair(t *testing.T, i, r *IKESA) {
	t.Helper()
	ci, cr := i.ChildSA(), r.ChildSA()
	if ci == nil || cr == nil {
		t.Fatalf("no CHILD_SA: %v / %v", i.ChildErr(), r.ChildErr())
	}
	if ci.OutboundSPI != cr.InboundSPI || ci.InboundSPI != cr.OutboundSPI || ci.InboundSPI == ci.OutboundSPI {
		t.Errorf("SPIs %08x/%08x vs %08x/%08x", ci.InboundSPI, ci.OutboundSPI, cr.InboundSPI, cr.OutboundSPI)
	}
	if !bytes.Equal(ci.OutboundEncKey, cr.InboundEncKey) || !bytes.Equal(ci.InboundEncKey, cr.OutboundEncKey) ||
		!bytes.Equal(ci.OutboundIntegKey, cr.InboundIntegKey) || !bytes.Equal(ci.InboundIntegKey, cr.OutboundIntegKey) {
		t.Error("keys do not mirror")
	}
	if bytes.Equal(ci.OutboundEncKey, ci.InboundEncKey) {
		t.Error("both directions have the same key")
	}
	if ci.Enc != cr.Enc || ci.Integ != cr.Integ || ci.Mode != cr.Mode {
		t.Errorf("suites differ: %+v / %+v", ci, cr)
	}
	for _, c := range []*ChildSA{ci, cr} {
		in, out := c.SAConfigs()
		for _, cfg := range []sa.Config{in, out} {
			s, err := sa.New(cfg)
			if err != nil {
				t.Fatalf("sa.New: %v", err)
			}
			s.Close()
		}
	}
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		ike, esp, want string
	}{
		{"aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"},
		{"aes256-sha256-modp2048", "aes256-sha256", "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"},
		{"aes256gcm16-prfsha384-ecp256", "aes256gcm16", "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_256"},
		{"chacha20poly1305-prfsha512-ecp384", "chacha20poly1305", "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/ECP_384"},
		{"aes128-sha1-modp3072", "aes128-sha1", "AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_3072"},
	}
	for _, tt := range tests {
		t.Run(tt.ike, func(t *testing.T) {
			left, right := pair(t, tt.ike, tt.esp)
			i, r, _ := establish(t, left, right)
			if i.Proposal() != tt.want || r.Proposal() != tt.want {
				t.Errorf("proposals %q / %q, want %q", i.Proposal(), r.Proposal(), tt.want)
			}
			si, sr := i.SPIs()
			ri, rr := r.SPIs()
			if si != ri || sr != rr || si == 0 || sr == 0 {
				t.Errorf("SPIs %x/%x vs %x/%x", si, sr, ri, rr)
			}
			checkChildPair(t, i, r)
			if got := i.ChildSA().LocalTS[0].String(); got != "10.1.0.0/24" {
				t.Errorf("initiator local TS %s", got)
			}
			if nl, nr := i.NATDetected(); nl || nr {
				t.Errorf("NAT detected without NAT: %v %v", nl, nr)
			}
		})
	}
}

func TestDefaultProposals(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.IKEProposals, right.IKEProposals = sa.DefaultProposals(sa.ProtoIKE), sa.DefaultProposals(sa.ProtoIKE)
	left.Children[0].Proposals, right.Children[0].Proposals = sa.DefaultProposals(sa.ProtoESP), sa.DefaultProposals(sa.ProtoESP)
	i, r, _ := establish(t, left, right)
	checkChildPair(t, i, r)
}

func TestAuthenticationFailure(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(left, right *Config)
	}{
		{"PSK mismatch", func(_, right *Config) { right.PSK = []byte("another key") }},
		{"unexpected initiator identity", func(_, right *Config) { right.RemoteID = FQDN("gw-other") }},
		{"initiator asks for another responder", func(left, _ *Config) { left.RemoteID = FQDN("gw-other") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			tt.mutate(&left, &right)
			i, r, l := newPair(t, left, right)
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			l.run(t, i, r)
			if r.State() != StateFailed || !errors.Is(r.Err(), ErrAuthentication) {
				t.Errorf("responder %v: %v", r.State(), r.Err())
			}
			var ne *NotifyError
			if i.State() != StateFailed || !errors.As(i.Err(), &ne) || ne.Type != message.AuthenticationFailed {
				t.Errorf("initiator %v: %v", i.State(), i.Err())
			}
			if i.ChildSA() != nil || r.ChildSA() != nil {
				t.Error("CHILD_SA created without authentication")
			}
		})
	}
}

// TestResponderAuthFailure: the initiator refuses a responder whose AUTH
// does not verify (here: the responder knows another PSK but accepts).
func TestResponderAuthFailure(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := newPair(t, left, right)
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	// The responder verifies with the right key, then signs with another.
	orig := r.send
	r.send = func(b []byte) error {
		if m, _ := message.Parse(b); m.Exchange == message.IKEAuth {
			// Re-sign the response with a different PSK.
			r.psk = []byte("not the shared key")
			id := r.ownID()
			out, err := r.seal(m.Header, []message.Payload{id, &message.Auth{Method: message.AuthSharedKeyMIC, Data: r.authData(false, id)}})
			if err != nil {
				t.Fatal(err)
			}
			return orig(out[0])
		}
		return orig(b)
	}
	l.run(t, i, r)
	if i.State() != StateFailed || !errors.Is(i.Err(), ErrAuthentication) {
		t.Fatalf("initiator %v: %v", i.State(), i.Err())
	}
}

func TestInvalidKEPayload(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519-ecp256", "aes128gcm16")
	right.IKEProposals = mustProposals(t, sa.ProtoIKE, "aes128gcm16-prfsha256-ecp256")
	i, r, l := establish(t, left, right)
	// INIT, INIT again with the right group, AUTH.
	if l.sentByI != 3 || l.sentByR != 3 {
		t.Errorf("sent %d/%d datagrams", l.sentByI, l.sentByR)
	}
	if i.Proposal() != "AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256" {
		t.Errorf("proposal %s", i.Proposal())
	}
	checkChildPair(t, i, r)
}

func TestNoProposalChosen(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	right.IKEProposals = mustProposals(t, sa.ProtoIKE, "aes256-sha384-ecp384")
	i, r, l := newPair(t, left, right)
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	var ne *NotifyError
	if i.State() != StateFailed || !errors.As(i.Err(), &ne) || ne.Type != message.NoProposalChosen {
		t.Fatalf("initiator %v: %v", i.State(), i.Err())
	}
}

func TestChildRefused(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(right *Config)
		want   message.NotifyType
	}{
		{"no common ESP proposal", func(right *Config) {
			right.Children[0].Proposals = mustProposals(t, sa.ProtoESP, "aes256-sha512")
		}, message.NoProposalChosen},
		{"disjoint traffic selectors", func(right *Config) {
			right.Children[0].RemoteTS = mustSelectors(t, "10.9.0.0/24")
		}, message.TSUnacceptable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			tt.mutate(&right)
			i, r, _ := establish(t, left, right) // the IKE SA stands (RFC 7296 §1.2)
			var ne *NotifyError
			if i.ChildSA() != nil || !errors.As(i.ChildErr(), &ne) || ne.Type != tt.want {
				t.Errorf("initiator child %v, err %v", i.ChildSA(), i.ChildErr())
			}
			if r.ChildSA() != nil || r.ChildErr() == nil {
				t.Errorf("responder child %v, err %v", r.ChildSA(), r.ChildErr())
			}
		})
	}
}

func TestNarrowing(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.Children[0].LocalTS, left.Children[0].RemoteTS = mustSelectors(t, "10.1.0.0/16"), mustSelectors(t, "10.2.0.0/16")
	right.Children[0].LocalTS, right.Children[0].RemoteTS = mustSelectors(t, "10.2.0.0/24[tcp]"), mustSelectors(t, "10.1.0.0/24")
	i, r, _ := establish(t, left, right)
	checkChildPair(t, i, r)
	ci, cr := i.ChildSA(), r.ChildSA()
	if ci.LocalTS[0].String() != "10.1.0.0/24" || ci.RemoteTS[0].String() != "10.2.0.0/24[tcp]" {
		t.Errorf("initiator TS %v === %v", ci.LocalTS, ci.RemoteTS)
	}
	if cr.LocalTS[0] != ci.RemoteTS[0] || cr.RemoteTS[0] != ci.LocalTS[0] {
		t.Errorf("responder TS %v === %v", cr.LocalTS, cr.RemoteTS)
	}
}

func TestTransportMode(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.Children[0].Mode, right.Children[0].Mode = sa.ModeTransport, sa.ModeTransport
	i, r, _ := establish(t, left, right)
	if i.ChildSA().Mode != sa.ModeTransport || r.ChildSA().Mode != sa.ModeTransport {
		t.Errorf("modes %v/%v", i.ChildSA().Mode, r.ChildSA().Mode)
	}
	right.Children[0].Mode = sa.ModeTunnel
	i, r, _ = establish(t, left, right)
	if i.ChildSA().Mode != sa.ModeTunnel || r.ChildSA().Mode != sa.ModeTunnel {
		t.Errorf("tunnel-only responder: modes %v/%v", i.ChildSA().Mode, r.ChildSA().Mode)
	}
}

// TestRetransmission: a lost response makes the initiator resend its
// request; the responder answers it again with the same bytes.
func TestRetransmission(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := newPair(t, left, right)
	var authResponses [][]byte
	dropped := false
	l.drop = func(toResponder bool, b []byte) bool {
		m, _ := message.Parse(b)
		if !toResponder && m.Exchange == message.IKEAuth {
			authResponses = append(authResponses, b)
			if !dropped {
				dropped = true
				return true
			}
		}
		return false
	}
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	if i.State() != StateAuthSent || r.State() != StateEstablished {
		t.Fatalf("after the loss: %v/%v", i.State(), r.State())
	}
	if err := i.Retransmit(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	if i.State() != StateEstablished {
		t.Fatalf("initiator %v: %v", i.State(), i.Err())
	}
	if len(authResponses) != 2 || !bytes.Equal(authResponses[0], authResponses[1]) {
		t.Fatalf("responder answered the retransmission differently (%d responses)", len(authResponses))
	}
	checkChildPair(t, i, r)
}

// TestTamperedRequest: a forged or corrupted IKE_AUTH is dropped without
// harming the IKE SA; the genuine one still succeeds.
func TestTamperedRequest(t *testing.T) {
	left, right := pair(t, "aes256-sha256-modp2048", "aes256-sha256")
	i, r, l := newPair(t, left, right)
	l.drop = func(toResponder bool, b []byte) bool {
		if m, _ := message.Parse(b); toResponder && m.Exchange == message.IKEAuth {
			bad := append([]byte(nil), b...)
			bad[len(bad)-20] ^= 0x80
			if err := r.Handle(bad); err == nil || r.State() != StateInitDone {
				t.Fatalf("tampered IKE_AUTH: err %v, state %v", err, r.State())
			}
		}
		return false
	}
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("states %v/%v", i.State(), r.State())
	}
}

func TestFragmentation(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	for _, c := range []*Config{&left, &right} {
		c.Fragmentation, c.FragmentSize = true, 120
	}
	i, r, l := establish(t, left, right)
	if l.sentByI < 3 || l.sentByR < 3 {
		t.Errorf("IKE_AUTH not fragmented: %d/%d datagrams", l.sentByI, l.sentByR)
	}
	checkChildPair(t, i, r)
}

func TestNATDetection(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	// The initiator sits behind a NAT: it knows its private address, the
	// responder sees the NAT's.
	left.Local = netip.MustParseAddrPort("10.1.0.1:500")
	right.Remote = netip.MustParseAddrPort("198.18.0.1:4500")
	i, r, _ := establish(t, left, right)
	if nl, nr := i.NATDetected(); !nl || nr {
		t.Errorf("initiator: NAT local %v remote %v", nl, nr)
	}
	if nl, nr := r.NATDetected(); nl || !nr {
		t.Errorf("responder: NAT local %v remote %v", nl, nr)
	}
	// ForceEncap pretends a NAT, as strongSwan's encap = yes.
	left, right = pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	left.ForceEncap = true
	i, r, _ = establish(t, left, right)
	if nl, _ := i.NATDetected(); !nl {
		t.Error("ForceEncap: initiator sees no NAT")
	}
	if _, nr := r.NATDetected(); !nr {
		t.Error("ForceEncap: responder sees no NAT")
	}
}

// TestNATDHashStrongSwan checks the NAT detection hash against the one
// strongSwan computed for its IKE_SA_INIT response in testdata/ike.
func TestNATDHashStrongSwan(t *testing.T) {
	c, err := ikecap.Load("strongswan-gcm")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"natd_chunk#3", "natd_chunk#4"} {
		chunk, err := c.Key(n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.Key("natd_hash" + n[len("natd_chunk"):])
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netip.AddrFromSlice(chunk[16:20])
		ap := netip.AddrPortFrom(addr, uint16(chunk[20])<<8|uint16(chunk[21]))
		spii := uint64(0)
		spir := uint64(0)
		for k := 0; k < 8; k++ {
			spii = spii<<8 | uint64(chunk[k])
			spir = spir<<8 | uint64(chunk[8+k])
		}
		if got := natdHash(spii, spir, ap); !bytes.Equal(got, want) {
			t.Errorf("%s (%v): %x, strongSwan %x", n, ap, got, want)
		}
	}
}

func TestLivenessAndDelete(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := establish(t, left, right)
	for _, side := range []*IKESA{i, r, i} { // both directions, and a second request from i
		if err := side.CheckLiveness(); err != nil {
			t.Fatal(err)
		}
		if errI, errR := l.run(t, i, r); len(errI)+len(errR) > 0 {
			t.Fatalf("liveness: %v / %v", errI, errR)
		}
		if side.lastRequest != nil {
			t.Fatalf("liveness check of initiator=%v not answered", side.initiator)
		}
	}
	if err := r.Delete(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	if i.State() != StateDeleted || r.State() != StateDeleted {
		t.Fatalf("after delete: %v/%v", i.State(), r.State())
	}
}

func TestConfigValidation(t *testing.T) {
	left, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	bad := left
	bad.PSK = nil
	if _, err := NewInitiator(bad, func([]byte) error { return nil }); err == nil {
		t.Error("config without PSK accepted")
	}
	bad = left
	bad.Children = []ChildConfig{{Name: "x", Proposals: left.IKEProposals, LocalTS: left.Children[0].LocalTS, RemoteTS: left.Children[0].RemoteTS}}
	if _, err := NewInitiator(bad, func([]byte) error { return nil }); err == nil {
		t.Error("IKE proposals as child proposals accepted")
	}
}

// FuzzResponder: no datagram makes a fresh responder, or one waiting for
// IKE_AUTH, panic.
func FuzzResponder(f *testing.F) {
	left, right := pair(f, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := newPair(f, left, right)
	i.Start()
	f.Add(l.toR[0])
	r.Handle(l.toR[0])
	i.Handle(l.toI[0])
	f.Add(l.toR[1])
	if c, err := ikecap.Load("strongswan-gcm"); err == nil {
		for _, m := range c.Messages {
			f.Add(m.Data)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fresh, err := NewResponder(right, func([]byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		fresh.Handle(b)
		waiting, err := NewResponder(right, func([]byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if waiting.Handle(l.toR[0]) == nil {
			waiting.Handle(b)
		}
	})
}

// TestCookie: a responder under load answers with a COOKIE (RFC 7296
// §2.6); the initiator repeats its request with the cookie first.
func TestCookie(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r, l := newPair(t, left, right)
	cookie := []byte("a cookie of the responder")
	var retried *message.Message
	l.drop = func(toResponder bool, b []byte) bool {
		m, _ := message.Parse(b)
		if !toResponder || m.Exchange != message.IKESAInit {
			return false
		}
		if n, ok := m.Payloads[0].(*message.Notify); ok && n.NotifyType == message.Cookie {
			retried = m
			return false // the retry goes through
		}
		// The first request: answer with a cookie instead of the responder.
		resp := &message.Message{Header: message.Header{SPIi: m.SPIi, Exchange: message.IKESAInit, Flags: message.FlagResponse},
			Payloads: []message.Payload{&message.Notify{NotifyType: message.Cookie, Data: cookie}}}
		out, err := resp.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		l.toI = append(l.toI, out)
		return true
	}
	if err := i.Start(); err != nil {
		t.Fatal(err)
	}
	l.run(t, i, r)
	if retried == nil || !bytes.Equal(retried.Payloads[0].(*message.Notify).Data, cookie) || retried.MessageID != 0 {
		t.Fatalf("no retry with the cookie: %+v", retried)
	}
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("states %v/%v", i.State(), r.State())
	}
	checkChildPair(t, i, r)
}

// TestAnyRemoteIdentity: a responder configured for %any accepts any
// identity for which it has a pre-shared key, and names it.
func TestAnyRemoteIdentity(t *testing.T) {
	secrets := map[string]string{"gw-left": "lab-psk-0123456789", "gw-other": "another key"}
	for _, tt := range []struct {
		id, psk string
		ok      bool
	}{
		{"gw-left", "lab-psk-0123456789", true},
		{"gw-other", "another key", true},
		{"gw-other", "lab-psk-0123456789", false}, // a key that is not the one for this identity
		{"gw-unknown", "lab-psk-0123456789", false},
	} {
		t.Run(tt.id+"/"+tt.psk, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			left.LocalID, left.PSK = FQDN(tt.id), []byte(tt.psk)
			left.RemoteID = AnyID() // no IDr sent
			right.RemoteID, right.PSK = AnyID(), nil
			right.PSKFor = func(local, remote Identity) []byte {
				if local.String() != "gw-right" {
					return nil
				}
				return []byte(secrets[remote.String()])
			}
			i, r, l := newPair(t, left, right)
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			l.run(t, i, r)
			if got := r.State() == StateEstablished && i.State() == StateEstablished; got != tt.ok {
				t.Fatalf("established %v, want %v (%v / %v)", got, tt.ok, i.Err(), r.Err())
			}
			if tt.ok && (r.PeerID().String() != tt.id || i.PeerID().String() != "gw-right") {
				t.Errorf("peer IDs %v / %v", r.PeerID(), i.PeerID())
			}
		})
	}
}
