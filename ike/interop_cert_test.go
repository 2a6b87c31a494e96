package ike

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// Certificate authentication against charon: isle in gl, charon in gr,
// each with a certificate of the same throwaway root, in both roles; the
// last case has chains of RSA-4096 intermediates, so that IKE_AUTH must
// be fragmented (RFC 7383) both ways.

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t *testing.T, k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestInteropCertificates(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	const ikeProp, espProp = "aes128gcm16-prfsha256-x25519", "aes128gcm16"
	for n, tc := range []struct {
		name       string
		isle, swan keyKind
		caKey      keyKind
		inter      int
		fragmented bool
		wantCharon string // how charon's signature looks to us
		pss        bool   // both sign with RSASSA-PSS
	}{
		{"ecdsa", kP256, kP256, kP256, 0, false, "ECDSA_WITH_SHA2_256", false},
		{"rsa", kRSA2048, kRSA2048, kP256, 0, false, "RSA_EMSA_PKCS1_SHA2_256", false},
		{"ed25519", kEd25519, kEd25519, kP256, 0, false, "ED25519", false},
		{"rsa4096-chain", kRSA4096, kRSA2048, kRSA4096, 2, true, "RSA_EMSA_PKCS1_SHA2_256", false},
		{"rsa-pss", kRSA2048, kRSA2048, kP256, 0, false, "RSA_EMSA_PSS_SHA2_256", true},
	} {
		root := newTestCA(t, "isle interop root", tc.caKey, 0)
		ca := root
		var inters []*x509.Certificate
		for i := 0; i < tc.inter; i++ {
			ca = ca.intermediate(t, fmt.Sprintf("isle interop intermediate %d", i), tc.caKey, 1+i)
			inters = append([]*x509.Certificate{ca.cert}, inters...)
		}
		isleKey, swanKey := testKey(t, tc.isle, 0), testKey(t, tc.swan, 1)
		isleCert := issue(t, ca, dn("gw-left"), isleKey, false, "gw-left")
		swanCert := issue(t, ca, dn("gw-right"), swanKey, false, "gw-right")

		charon := func(t *testing.T, topo *netns.Topology) *swan.Charon {
			cfg := charonConfig(ikeProp, espProp)
			cfg.Secrets = nil
			cfg.Connections[0].Local = swan.Auth{Auth: "pubkey", ID: swan.IdentityDN(swanCert.Subject), Certs: []string{"gw.pem"}}
			cfg.Connections[0].Remote = swan.Auth{Auth: "pubkey", ID: swan.IdentityDN(isleCert.Subject), CACerts: []string{"ca.pem"}}
			files := map[string][]byte{
				"x509/gw.pem":    pemCert(swanCert),
				"private/gw.pem": pemKey(t, swanKey),
				"x509ca/ca.pem":  pemCert(root.cert),
			}
			for i, c := range inters {
				files[fmt.Sprintf("x509ca/im%d.pem", i)] = pemCert(c)
			}
			opts := swan.Options{Files: files}
			if tc.pss {
				opts.Settings = "  rsa_pss = yes"
			}
			return swan.Start(t, topo, netns.GR, cfg, opts)
		}
		isleConfig := func(t *testing.T) Config {
			left, _ := pair(t, ikeProp, espProp)
			left = certConfig(left, append([]*x509.Certificate{isleCert}, inters...), isleKey, root.cert, CertIdentity(swanCert))
			left.Fragmentation = true
			left.RSAPSS = tc.pss
			return left
		}
		// fragments counts IKE datagrams that are RFC 7383 fragments.
		fragments := func(b []byte, count *int) {
			if h, err := message.ParseHeader(b); err == nil && h.NextPayload == message.PayloadSKF {
				*count++
			}
		}
		checkFragments := func(t *testing.T, sent, received int) {
			t.Helper()
			if tc.fragmented && (sent < 2 || received < 2) {
				t.Errorf("IKE_AUTH fragments: %d sent, %d received; want several each way", sent, received)
			}
			t.Logf("fragments: %d sent, %d received", sent, received)
		}
		checkCharonLog := func(t *testing.T, c *swan.Charon) {
			t.Helper()
			b, err := os.ReadFile(c.LogPath())
			if err != nil {
				t.Fatal(err)
			}
			want := "authentication of '" + swan.IdentityDN(isleCert.Subject) + "' with "
			if !strings.Contains(string(b), want) {
				t.Errorf("charon's log lacks %q", want)
			}
		}

		t.Run("isle-initiates/"+tc.name, func(t *testing.T) {
			topo := netns.NewTopology(t, fmt.Sprintf("ici%d", n))
			c := charon(t, topo)
			e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
			var s *IKESA
			sent, received := 0, 0
			s, err := NewInitiator(isleConfig(t), func(b []byte) error {
				fragments(b, &sent)
				nl, nr := s.NATDetected()
				return e.send(nl || nr, b)
			})
			if err != nil {
				t.Fatal(err)
			}
			e.route = func(b []byte) *IKESA { fragments(b, &received); return s }
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() >= StateEstablished })
			checkAgainstCharon(t, c, s, s.ChildSA())
			if got := s.PeerAuth(); got != tc.wantCharon {
				t.Errorf("charon signed with %s, want %s", got, tc.wantCharon)
			}
			checkFragments(t, sent, received)
			checkCharonLog(t, c)
		})
		t.Run("strongswan-initiates/"+tc.name, func(t *testing.T) {
			topo := netns.NewTopology(t, fmt.Sprintf("icr%d", n))
			c := charon(t, topo)
			e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
			cfg := isleConfig(t)
			cfg.RemoteID = AnyID()
			var s *IKESA
			sent, received := 0, 0
			e.route = func(b []byte) *IKESA {
				fragments(b, &received)
				if s == nil {
					var err error
					s, err = NewResponder(cfg, func(b []byte) error { fragments(b, &sent); return e.send(e.lastNATT, b) })
					if err != nil {
						t.Fatal(err)
					}
				}
				return s
			}
			initErr := make(chan error, 1)
			go func() { initErr <- c.Initiate("net", 15*time.Second) }()
			e.drive(t, func() *IKESA { return s }, nil, func() bool { return s != nil && s.State() >= StateEstablished })
			if err := <-initErr; err != nil {
				t.Fatalf("charon: %v", err)
			}
			checkAgainstCharon(t, c, s, s.ChildSA())
			if got := s.PeerID().String(); got != swan.IdentityDN(swanCert.Subject) {
				t.Errorf("peer %q", got)
			}
			if got := s.PeerAuth(); got != tc.wantCharon {
				t.Errorf("charon signed with %s, want %s", got, tc.wantCharon)
			}
			checkFragments(t, sent, received)
			checkCharonLog(t, c)
		})
	}
}

// TestInteropCertificateRefused: isle does not trust charon's CA; it says
// why, and charon learns of it from AUTHENTICATION_FAILED in both roles.
func TestInteropCertificateRefused(t *testing.T) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	swan.Require(t)
	const ikeProp, espProp = "aes128gcm16-prfsha256-x25519", "aes128gcm16"
	root := newTestCA(t, "isle interop root", kP256, 0)
	stranger := newTestCA(t, "a root isle does not trust", kP256, 6)
	isleKey, swanKey := testKey(t, kP256, 7), testKey(t, kP256, 8)
	isleCert := issue(t, root, dn("gw-left"), isleKey, false)
	swanCert := issue(t, root, dn("gw-right"), swanKey, false)
	start := func(t *testing.T, topo *netns.Topology) *swan.Charon {
		cfg := charonConfig(ikeProp, espProp)
		cfg.Secrets = nil
		cfg.Connections[0].Local = swan.Auth{Auth: "pubkey", ID: swan.IdentityDN(swanCert.Subject), Certs: []string{"gw.pem"}}
		cfg.Connections[0].Remote = swan.Auth{Auth: "pubkey", ID: swan.IdentityDN(isleCert.Subject), CACerts: []string{"ca.pem"}}
		return swan.Start(t, topo, netns.GR, cfg, swan.Options{Files: map[string][]byte{
			"x509/gw.pem": pemCert(swanCert), "private/gw.pem": pemKey(t, swanKey), "x509ca/ca.pem": pemCert(root.cert)}})
	}
	left, _ := pair(t, ikeProp, espProp)
	left = certConfig(left, []*x509.Certificate{isleCert}, isleKey, stranger.cert, CertIdentity(swanCert))
	charonSaw := func(t *testing.T, c *swan.Charon, want ...string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			b, _ := os.ReadFile(c.LogPath())
			missing := ""
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					missing = w
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("charon's log lacks %q", missing)
			}
		}
	}
	t.Run("isle-initiates", func(t *testing.T) {
		topo := netns.NewTopology(t, "icf0")
		c := start(t, topo)
		e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
		var s *IKESA
		s, err := NewInitiator(left, func(b []byte) error {
			nl, nr := s.NATDetected()
			return e.send(nl || nr, b)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		e.drive(t, func() *IKESA { return s }, nil, func() bool { return s.State() >= StateEstablished })
		if s.State() != StateFailed || !errors.Is(s.Err(), ErrUntrustedChain) {
			t.Fatalf("isle: %v %v", s.State(), s.Err())
		}
		t.Logf("isle: %v", s.Err())
		// Charon drops the IKE SA it had thought established.
		charonSaw(t, c, "INFORMATIONAL request 2 [ N(AUTH_FAILED) ]", "IKE_SA deleted")
	})
	t.Run("strongswan-initiates", func(t *testing.T) {
		topo := netns.NewTopology(t, "icf1")
		c := start(t, topo)
		e := newUDPEndpoint(t, topo.NS(netns.GL), netip.MustParseAddr(netns.WanGL4), netip.MustParseAddr(netns.WanGR4))
		var s *IKESA
		e.route = func([]byte) *IKESA {
			if s == nil {
				var err error
				if s, err = NewResponder(left, func(b []byte) error { return e.send(e.lastNATT, b) }); err != nil {
					t.Fatal(err)
				}
			}
			return s
		}
		initErr := make(chan error, 1)
		go func() { initErr <- c.Initiate("net", 10*time.Second) }()
		e.drive(t, func() *IKESA { return s }, nil, func() bool { return s != nil && s.State() >= StateEstablished })
		if s.State() != StateFailed || !errors.Is(s.Err(), ErrUntrustedChain) {
			t.Fatalf("isle: %v %v", s.State(), s.Err())
		}
		t.Logf("isle: %v", s.Err())
		if err := <-initErr; err == nil {
			t.Error("charon's initiate succeeded")
		}
		charonSaw(t, c, "received AUTHENTICATION_FAILED")
	})
}
