package ike

import (
	"errors"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

// TestInteropProposalMismatch: charon offers what we do not accept, and
// the other way round. Our explanation must name charon's offer exactly
// as charon names it in its own log ("configured proposals: IKE:...").
func TestInteropProposalMismatch(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	const charonIKE, charonESP = "aes256-sha256-modp2048", "aes256-sha256"
	var charonOffer string // as charon names its own proposal
	configured := regexp.MustCompile(`configured proposals: (\S+)`)
	charonSays := func(t *testing.T, c *swan.Charon, proto string) string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			b, _ := os.ReadFile(c.LogPath())
			for _, m := range configured.FindAllStringSubmatch(string(b), -1) {
				if strings.HasPrefix(m[1], proto+":") {
					return strings.TrimPrefix(m[1], proto+":")
				}
			}
		}
		t.Fatalf("charon logged no configured %s proposals", proto)
		return ""
	}

	t.Run("isle-initiates", func(t *testing.T) {
		topo := netns.NewTopology(t, "icp1")
		c := swan.Start(t, topo, netns.GR, charonConfig(charonIKE, charonESP), swan.Options{})
		left, _ := pair(t, charonIKE, "aes128gcm16")
		left.IKEProposals = mustProposals(t, sa.ProtoIKE, "aes128gcm16-prfsha256-x25519")
		e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
		var s *IKESA
		s, err := NewInitiator(left, func(b []byte) error { return e.send(false, b) })
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() >= StateEstablished })
		var pe *ProposalError
		if !errors.As(s.Err(), &pe) || pe.Sent {
			t.Fatalf("initiator: %v", s.Err())
		}
		t.Logf("isle: %v", s.Err())
		if !strings.Contains(s.Err().Error(), "we offered AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; the peer does not say what it accepts") {
			t.Errorf("isle says %q", s.Err())
		}
		charonOffer = charonSays(t, c, "IKE")
		// Charon, for its part, names our offer the way we do.
		received := regexp.MustCompile(`received proposals: IKE:(\S+)`)
		b, _ := os.ReadFile(c.LogPath())
		if m := received.FindStringSubmatch(string(b)); m == nil || m[1] != "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519" {
			t.Errorf("charon received %v", m)
		}
	})
	t.Run("strongswan-initiates", func(t *testing.T) {
		topo := netns.NewTopology(t, "icp0")
		c := swan.Start(t, topo, netns.GR, charonConfig(charonIKE, charonESP), swan.Options{})
		left, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
		var refused error
		// Handle the first IKE_SA_INIT ourselves to catch the error.
		initErr := make(chan error, 1)
		go func() { initErr <- c.Initiate("net", 10*time.Second) }()
		select {
		case d := <-e.in:
			s, err := NewResponder(left, func(b []byte) error { return e.send(d.natt, b) })
			if err != nil {
				t.Fatal(err)
			}
			refused = s.Handle(d.data)
		case <-time.After(10 * time.Second):
			t.Fatal("no IKE_SA_INIT from charon")
		}
		if err := <-initErr; err == nil {
			t.Error("charon's initiate succeeded")
		}
		var pe *ProposalError
		if !errors.As(refused, &pe) || !pe.Sent {
			t.Fatalf("responder: %v", refused)
		}
		t.Logf("isle: %v", refused)
		if charonOffer == "" {
			t.Fatal("charon's own name for its proposal is unknown")
		}
		want := "peer offered " + charonOffer + ", we accept AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; no match for ENCR, INTEG, KE"
		if !strings.Contains(refused.Error(), want) {
			t.Errorf("isle says %q\nwant it to contain %q", refused, want)
		}
	})
	t.Run("child", func(t *testing.T) {
		// IKE matches; charon's ESP proposal does not: the IKE SA stands
		// and the first CHILD_SA is refused with the explanation.
		topo := netns.NewTopology(t, "icp2")
		c := swan.Start(t, topo, netns.GR, charonConfig("aes128gcm16-prfsha256-x25519", charonESP), swan.Options{})
		left, _ := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
		var s *IKESA
		newSA := func() *IKESA {
			var err error
			if s, err = NewResponder(left, func(b []byte) error { return e.send(e.lastNATT, b) }); err != nil {
				t.Fatal(err)
			}
			return s
		}
		initErr := make(chan error, 1)
		go func() { initErr <- c.Initiate("net", 10*time.Second) }()
		e.drive(t, func() *IKESA { return s }, newSA, func() bool { return s != nil && s.State() >= StateEstablished })
		<-initErr
		var pe *ProposalError
		if s.State() != StateEstablished || !errors.As(s.ChildErr(), &pe) || !pe.Sent {
			t.Fatalf("isle: %v, child: %v", s.State(), s.ChildErr())
		}
		t.Logf("isle: %v", s.ChildErr())
		want := "sent NO_PROPOSAL_CHOSEN for the CHILD_SA net: peer offered AES_CBC_256/HMAC_SHA2_256_128, we accept AES_GCM_16_128; no match for ENCR, INTEG"
		if !strings.Contains(s.ChildErr().Error(), want) {
			t.Errorf("isle says %q", s.ChildErr())
		}
		b, _ := os.ReadFile(c.LogPath())
		if !strings.Contains(string(b), "received NO_PROPOSAL_CHOSEN notify") {
			t.Error("charon's log does not show our NO_PROPOSAL_CHOSEN")
		}
	})
}
