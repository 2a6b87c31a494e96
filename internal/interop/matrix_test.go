package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/swan"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// tcase is one case of a group: a setup and what to do with it (nil: bring
// the tunnel up, check that both daemons agree, send traffic).
type tcase struct {
	name string
	what string
	s    setup
	run  func(t *testing.T, p *pair)
}

// group is cases sharing one lab, run one after the other; groups run in
// parallel (as many as go test -parallel allows) on their own prefixes.
type group struct {
	name   string
	prefix string // "io…": namespaces of this suite
	nat    bool
	cases  []tcase
}

// runGroups runs the groups; base orders their cases in the results table
// after those of earlier calls.
func runGroups(t *testing.T, base int, groups []group) {
	if testenv.Short() {
		t.Skip("namespace test: not in -short")
	}
	testenv.RequireTool(t, "ping")
	for gi, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			var opts []netns.Option
			if g.nat {
				opts = append(opts, netns.WithNAT())
			}
			topo := netns.NewTopology(t, g.prefix, opts...)
			for ci, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					record(t, g.name, c.what, base+gi*100+ci)
					p := newPair(t, topo, c.s)
					p.start()
					run := c.run
					if run == nil {
						run = basic
					}
					run(t, p)
				})
			}
		})
	}
}

// basic: the tunnel comes up, both sides agree, traffic crosses it.
func basic(t *testing.T, p *pair) {
	p.establish()
	p.traffic()
}

func role(isleInit bool) string {
	if isleInit {
		return "isle-init"
	}
	return "swan-init"
}

// proposalCases: each IKE proposal with one ESP proposal, in both roles,
// and both daemons' defaults.
func proposalCases(isleInit bool) []tcase {
	suites := []struct {
		name             string
		ike, esp         string
		wantIKE, wantESP string
	}{
		{"gcm128-x25519", "aes128gcm16-prfsha256-x25519", "aes128gcm16", "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16_128"},
		{"gcm256-ecp384", "aes256gcm16-prfsha384-ecp384", "aes256gcm16", "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384", "AES_GCM_16_256"},
		{"cbc256-modp2048", "aes256-sha256-modp2048", "aes256-sha256", "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", "AES_CBC_256/HMAC_SHA2_256_128"},
		{"chacha-x25519", "chacha20poly1305-prfsha256-x25519", "chacha20poly1305", "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519", "CHACHA20_POLY1305"},
		{"cbc128-sha1", "aes128-sha1-modp2048", "aes128-sha1", "AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048", "AES_CBC_128/HMAC_SHA1_96"},
	}
	var cases []tcase
	for _, s := range suites {
		cases = append(cases, tcase{
			name: s.name,
			what: fmt.Sprintf("%s: IKE %s, ESP %s on both sides, PSK", role(isleInit), s.ike, s.esp),
			s: setup{isleInit: isleInit, auth: authPSK,
				isleIKE: []string{s.ike}, isleESP: []string{s.esp}, swanIKE: []string{s.ike}, swanESP: []string{s.esp},
				wantIKE: s.wantIKE, wantESP: s.wantESP},
		})
	}
	cases = append(cases, tcase{
		name: "defaults",
		what: role(isleInit) + ": strongSwan's `default` proposals against isle's defaults (no proposal keys)",
		s:    setup{isleInit: isleInit, auth: authPSK},
	})
	return cases
}

func authCases() []tcase {
	var cases []tcase
	for _, a := range []struct {
		name string
		kind authKind
	}{{"rsa", authRSA}, {"ecdsa", authECDSA}, {"ed25519", authEd25519}} {
		for _, init := range []bool{true, false} {
			cases = append(cases, tcase{
				name: a.name + "-" + role(init),
				what: fmt.Sprintf("%s: %s certificates from a CA made at test time, DN identities", role(init), a.name),
				s:    setup{isleInit: init, auth: a.kind, isleIKE: []string{"aes128gcm16-prfsha256-x25519"}},
			})
		}
	}
	for _, init := range []bool{true, false} {
		cases = append(cases, tcase{
			name: "chain-frag-" + role(init),
			what: role(init) + ": RSA certificates under two intermediates sent by both; IKE_AUTH fragmented (RFC 7383) both ways",
			s:    setup{isleInit: init, auth: authChain},
			run: func(t *testing.T, p *pair) {
				p.establish()
				// charon splits what it sends, and reassembles what isle sent.
				p.waitSwanLog(`splitting IKE message .* into \d+ fragments`, time.Second)
				p.waitSwanLog(`reassembled fragmented IKE message`, time.Second)
				p.traffic()
			},
		})
	}
	// Mixed: isle wants PSK both ways, charon certificates: neither can
	// authenticate the other, and both must say so.
	cases = append(cases,
		tcase{
			name: "mixed-isle-init",
			what: "isle-init: isle configured for PSK, strongSwan for certificates: refused, both log why",
			s:    setup{isleInit: true, auth: authPSK, swanAuth: authECDSA},
			run: refused(`(?i)AUTHENTICATION_FAILED|refused us|authentication failed`,
				`no shared key found|constraint check failed|AUTH_FAILED`),
		},
		tcase{
			name: "mixed-swan-init",
			what: "swan-init: isle configured for PSK, strongSwan for certificates: refused, both log why",
			s:    setup{isleInit: false, auth: authPSK, swanAuth: authECDSA},
			run: refused(`(?i)peer authentication failed`,
				`received AUTHENTICATION_FAILED notify error`),
		})
	return cases
}

func selectorCases() []tcase {
	return []tcase{
		{
			name: "narrow-by-swan",
			what: "isle-init proposes 10.1.0.0/16 ↔ 10.2.0.0/16; strongSwan narrows to 10.1.0.0/24 ↔ 10.2.0.0/25",
			s: setup{isleInit: true, auth: authPSK,
				isleLocalTS: []string{"10.1.0.0/16"}, isleRemoteTS: []string{"10.2.0.0/16"},
				swanLocalTS: []string{"10.2.0.0/25"}, swanRemoteTS: []string{netns.LeftLAN4},
				wantIsleLocalTS: []string{netns.LeftLAN4}, wantIsleRemoteTS: []string{"10.2.0.0/25"}},
		},
		{
			name: "narrow-by-isle",
			what: "swan-init proposes 10.2.0.0/16 ↔ 10.1.0.0/16; isle narrows to 10.1.0.2/32 ↔ 10.2.0.0/24",
			s: setup{isleInit: false, auth: authPSK,
				isleLocalTS: []string{"10.1.0.2/32"}, isleRemoteTS: []string{netns.RightLAN4},
				swanLocalTS: []string{"10.2.0.0/16"}, swanRemoteTS: []string{"10.1.0.0/16"},
				wantIsleLocalTS: []string{"10.1.0.2/32"}, wantIsleRemoteTS: []string{netns.RightLAN4}},
		},
	}
}

// underTraffic waits, under traffic, until changed says the SAs moved on from
// before, then checks that the pings got through and the tunnel still
// carries a byte-checked stream.
func underTraffic(t *testing.T, p *pair, pings int, act func(before snapshot), changed func(before, now snapshot) bool, timeout time.Duration) (before, after snapshot) {
	before = p.establish()
	type result struct {
		got int
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := p.topo.PingCount(netns.HL, netns.HR4, pings, 100*time.Millisecond)
		done <- result{got, err}
	}()
	time.Sleep(500 * time.Millisecond)
	if act != nil {
		act(before)
	}
	deadline := time.Now().Add(timeout)
	for {
		now, err := p.compare(false)
		if err == nil && changed(before, now) {
			after = now
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rekey seen after %v (last: %v)", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if lost := pings - r.got; lost*20 > pings {
		t.Errorf("%d of %d pings lost across the rekey (more than 5%%)", lost, pings)
	}
	// The old SAs go away on both sides, and the new ones carry traffic.
	p.waitAgree(15*time.Second, true)
	p.traffic()
	return before, after
}

// childKept checks that an IKE_SA rekey moved the CHILD_SA over unchanged.
func childKept(t *testing.T, before, after snapshot) {
	if before.isleChild.SPIIn != after.isleChild.SPIIn || before.isleChild.SPIOut != after.isleChild.SPIOut {
		t.Errorf("the IKE_SA rekey replaced the CHILD_SA (%s/%s → %s/%s); want it moved over",
			before.isleChild.SPIIn, before.isleChild.SPIOut, after.isleChild.SPIIn, after.isleChild.SPIOut)
	}
}

// pfsShown checks that a CHILD_SA rekeyed with PFS used group on
// charon's side and that isle's status names the group as swanctl does
// ("AES_GCM_16_128/CURVE_25519").
func pfsShown(t *testing.T, after snapshot, group string) {
	if after.swanChild.DHGroup != group {
		t.Errorf("charon's rekeyed CHILD_SA has key exchange %q, want %s", after.swanChild.DHGroup, group)
	}
	if !strings.HasSuffix(after.isleChild.Proposal, "/"+group) {
		t.Errorf("isle status shows the rekeyed CHILD_SA's proposal as %q, charon as %q: the PFS group %s is missing",
			after.isleChild.Proposal, joinAlgs(swanChildProposal(after.swanChild), after.swanChild.DHGroup), group)
	}
}

func childRekeyed(before, now snapshot) bool {
	return now.isleChild.SPIIn != before.isleChild.SPIIn && now.isleChild.SPIOut != before.isleChild.SPIOut
}

func ikeRekeyed(before, now snapshot) bool {
	return now.isleIKE.SPIi != before.isleIKE.SPIi && now.isleIKE.SPIr != before.isleIKE.SPIr
}

func rekeyCases(byIsle bool) []tcase {
	if byIsle {
		return []tcase{
			{
				name: "child-pfs-by-isle",
				what: "isle's CHILD_SA rekey_time (8s) with ESP aes256gcm16-ecp384 (PFS) under ping traffic",
				s: setup{isleInit: true, auth: authPSK, isleChild: []string{`rekey_time = "8s"`},
					isleESP: []string{"aes256gcm16-ecp384"}, swanESP: []string{"aes256gcm16-ecp384"}},
				run: func(t *testing.T, p *pair) {
					_, after := underTraffic(t, p, 120, nil, childRekeyed, 25*time.Second)
					pfsShown(t, after, "ECP_384")
				},
			},
			{
				name: "child-by-isle",
				what: "isle's CHILD_SA rekey_time (8s) under ping traffic: new SPIs on both sides, ≤5% loss, old SA gone",
				s:    setup{isleInit: true, auth: authPSK, isleChild: []string{`rekey_time = "8s"`}},
				run: func(t *testing.T, p *pair) {
					underTraffic(t, p, 120, nil, childRekeyed, 25*time.Second)
				},
			},
			{
				name: "ike-by-isle",
				what: "isle's IKE_SA rekey_time (8s) under ping traffic: new IKE SPIs on both sides, CHILD_SA kept",
				s:    setup{isleInit: false, auth: authPSK, isleConn: []string{`rekey_time = "8s"`}},
				run: func(t *testing.T, p *pair) {
					before, after := underTraffic(t, p, 120, nil, ikeRekeyed, 25*time.Second)
					childKept(t, before, after)
				},
			},
		}
	}
	return []tcase{
		{
			name: "child-pfs-by-swan",
			what: "swanctl --rekey --child with ESP aes128gcm16-x25519 (PFS: a fresh X25519 exchange in CREATE_CHILD_SA) under ping traffic",
			s:    setup{isleInit: false, auth: authPSK, isleESP: []string{"aes128gcm16-x25519"}, swanESP: []string{"aes128gcm16-x25519"}},
			run: func(t *testing.T, p *pair) {
				_, after := underTraffic(t, p, 40, func(snapshot) {
					if err := p.charon.Rekey("net"); err != nil {
						t.Fatal(err)
					}
				}, childRekeyed, 15*time.Second)
				pfsShown(t, after, "CURVE_25519")
			},
		},
		{
			name: "child-by-swan",
			what: "swanctl --rekey --child under ping traffic: new SPIs on both sides, ≤5% loss, old SA gone",
			s:    setup{isleInit: true, auth: authPSK},
			run: func(t *testing.T, p *pair) {
				underTraffic(t, p, 40, func(snapshot) {
					if err := p.charon.Rekey("net"); err != nil {
						t.Fatal(err)
					}
				}, childRekeyed, 15*time.Second)
			},
		},
		{
			name: "ike-by-swan",
			what: "swanctl --rekey --ike under ping traffic: new IKE SPIs on both sides, CHILD_SA kept",
			s:    setup{isleInit: false, auth: authPSK},
			run: func(t *testing.T, p *pair) {
				before, after := underTraffic(t, p, 40, func(snapshot) {
					if out, err := p.charon.Swanctl("--rekey", "--ike", "peer"); err != nil {
						t.Fatalf("%v: %s", err, out)
					}
				}, ikeRekeyed, 15*time.Second)
				childKept(t, before, after)
			},
		},
	}
}

// noSAs waits until isle (and charon, when swanToo) have no IKE_SA left.
func (p *pair) waitNoSAs(timeout time.Duration, swanToo bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		isle, err1 := p.isleSAs()
		var sw []swan.IKESA
		var err2 error
		if swanToo {
			sw, err2 = p.swanSAs()
		}
		if err1 == nil && err2 == nil && len(isle) == 0 && len(sw) == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("after %v: isle has %d IKE_SAs (%v), charon %d (%v); want none", timeout, len(isle), err1, len(sw), err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// noTraffic checks that hl no longer reaches hr.
func (p *pair) noTraffic() {
	p.t.Helper()
	if got, _ := p.topo.PingCount(netns.HL, netns.HR4, 1, 100*time.Millisecond); got != 0 {
		p.t.Errorf("hl still reaches hr with no SA")
	}
}

func lifecycleCases() []tcase {
	return []tcase{
		{
			name: "dpd-by-isle",
			what: "isle's dpd_delay (2s) on an idle tunnel: charon answers the empty INFORMATIONAL, the SAs stay",
			s:    setup{isleInit: true, auth: authPSK, isleConn: []string{`dpd_delay = "2s"`}},
			run: func(t *testing.T, p *pair) {
				before := p.establish()
				p.waitSwanLog(`parsed INFORMATIONAL request \d+ \[ \]`, 10*time.Second)
				p.waitSwanLog(`generating INFORMATIONAL response \d+ \[ \]`, time.Second)
				if now := p.waitAgree(5*time.Second, true); now.isleIKE.SPIi != before.isleIKE.SPIi {
					t.Errorf("the IKE_SA changed during DPD")
				}
				p.traffic()
			},
		},
		{
			name: "dead-peer-by-isle",
			what: "isle's DPD (2s, retransmits 1s×3) finds charon silent, and with dpd_action = restart initiates again once it answers: new IKE_SA, old one gone on both sides",
			s: setup{isleInit: true, auth: authPSK, isleConn: []string{`dpd_delay = "2s"`},
				isleChild: []string{`dpd_action = "restart"`}, isleRetransmit: "1s,3"},
			run: func(t *testing.T, p *pair) {
				before := p.establish()
				lift := p.block(p.swanNode, "input")
				p.waitIsleLog(`peer does not answer`, 30*time.Second)
				lift()
				after := p.waitAgree(30*time.Second, true)
				if after.isleIKE.SPIi == before.isleIKE.SPIi {
					t.Errorf("the IKE_SA is still the old one")
				}
				p.traffic()
			},
		},
		{
			name: "dpd-by-swan",
			what: "charon's dpd_delay (2s): isle answers; then isle goes silent and charon declares it dead and clears the SAs",
			s: setup{isleInit: false, auth: authPSK, swanConn: func(c *swan.Connection) { c.DPDDelay = "2s" },
				swanSet: "  retransmit_tries = 2\n"},
			run: func(t *testing.T, p *pair) {
				p.establish()
				p.waitSwanLog(`sending DPD request`, 10*time.Second)
				p.waitSwanLog(`parsed INFORMATIONAL response \d+ \[ \]`, 5*time.Second)
				p.traffic()
				lift := p.block(p.isleNode, "input")
				p.waitSwanLog(`giving up after \d+ retransmits`, 30*time.Second)
				deadline := time.Now().Add(10 * time.Second)
				for {
					sas, err := p.swanSAs()
					if err == nil && len(sas) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("charon still has %d IKE_SAs after declaring isle dead (%v)", len(sas), err)
					}
					time.Sleep(200 * time.Millisecond)
				}
				lift()
			},
		},
		{
			name: "delete-by-isle",
			what: "`isle down peer`: charon receives the DELETE and drops the SAs; both show none and traffic stops",
			s:    setup{isleInit: true, auth: authPSK, isleChild: []string{`dpd_action = "clear"`}},
			run: func(t *testing.T, p *pair) {
				p.establish()
				if _, err := p.isleCmd("down", "peer"); err != nil {
					t.Fatal(err)
				}
				p.waitSwanLog(`received DELETE for IKE_SA`, 10*time.Second)
				p.waitNoSAs(10*time.Second, true)
				p.noTraffic()
			},
		},
		{
			name: "delete-by-swan",
			what: "swanctl --terminate: isle receives the DELETE and drops the SAs; both show none and traffic stops",
			s:    setup{isleInit: false, auth: authPSK, isleChild: []string{`dpd_action = "clear"`}},
			run: func(t *testing.T, p *pair) {
				p.establish()
				if err := p.charon.Terminate("peer", 10*time.Second); err != nil {
					t.Fatal(err)
				}
				p.waitNoSAs(10*time.Second, true)
				p.noTraffic()
			},
		},
		{
			name: "swan-restart",
			what: "charon stopped with its DELETE lost, started again and initiating: isle drops the stale SAs (INITIAL_CONTACT), tunnel back",
			s:    setup{isleInit: false, auth: authPSK, isleChild: []string{`dpd_action = "clear"`}},
			run: func(t *testing.T, p *pair) {
				old := p.establish()
				lift := p.block(p.swanNode, "output")
				if err := p.charon.Stop(); err != nil {
					t.Fatalf("stopping charon: %v", err)
				}
				lift()
				if sas, err := p.isleSAs(); err != nil || len(sas) != 1 {
					t.Fatalf("isle should still hold the stale IKE_SA: %d (%v)", len(sas), err)
				}
				p.startCharon()
				now := p.establish()
				p.waitIsleLog(`peer restarted`, 5*time.Second)
				if now.isleIKE.SPIi == old.isleIKE.SPIi {
					t.Errorf("isle shows the old IKE_SA after the restart")
				}
				p.traffic()
			},
		},
	}
}

func natCases() []tcase {
	return []tcase{
		{
			name: "isle-behind-nat",
			what: "isle (initiator) behind a NAT that rewrites ports: ESP in UDP through it, charon sees the mapped port",
			s:    setup{isleInit: true, auth: authPSK},
			run: func(t *testing.T, p *pair) {
				snap := p.establish()
				if port := snap.swanIKE.RemotePort; port < netns.NATPortMin || port > netns.NATPortMax {
					t.Errorf("charon talks to isle on port %d, want the NAT's mapping (%d-%d)", port, netns.NATPortMin, netns.NATPortMax)
				}
				if !snap.isleChild.Encap {
					t.Errorf("isle's CHILD_SA is not UDP-encapsulated")
				}
				p.traffic()
			},
		},
		{
			name: "swan-behind-nat",
			what: "strongSwan (initiator) behind a NAT that rewrites ports: isle answers the mapped port, traffic both ways",
			s:    setup{isleInit: false, isleRight: true, auth: authPSK},
			run: func(t *testing.T, p *pair) {
				snap := p.establish()
				if snap.swanIKE.LocalHost != netns.BehindNATGL4 {
					t.Errorf("charon's local address %s, want %s behind the NAT", snap.swanIKE.LocalHost, netns.BehindNATGL4)
				}
				if !snap.isleChild.Encap {
					t.Errorf("isle's CHILD_SA is not UDP-encapsulated")
				}
				p.traffic()
			},
		},
	}
}

func familyCases() []tcase {
	return []tcase{
		{
			name: "dual-stack-ts",
			what: "isle-init over IPv4 with selectors of both families (10.x/24 and fd00:x::/64): IPv4 and IPv6 traffic",
			s:    setup{isleInit: true, auth: authPSK, dual: true},
		},
		{
			name: "outer-ipv6",
			what: "swan-init with IKE and ESP-in-UDP over IPv6 between the gateways, selectors of both families",
			s:    setup{isleInit: false, auth: authPSK, dual: true, outer6: true},
			run: func(t *testing.T, p *pair) {
				snap := p.establish()
				if snap.swanIKE.LocalHost != netns.WanGR6 || snap.swanIKE.RemoteHost != netns.WanGL6 {
					t.Errorf("charon's IKE_SA runs between %s and %s, want IPv6", snap.swanIKE.LocalHost, snap.swanIKE.RemoteHost)
				}
				if !strings.Contains(snap.isleIKE.Remote, netns.WanGR6) {
					t.Errorf("isle's IKE_SA peer is %s, want %s", snap.isleIKE.Remote, netns.WanGR6)
				}
				p.traffic()
			},
		},
	}
}

func TestMatrix(t *testing.T) {
	t.Parallel()
	runGroups(t, 0, []group{
		{name: "prop-isle", prefix: "iopi", cases: proposalCases(true)},
		{name: "prop-swan", prefix: "iopr", cases: proposalCases(false)},
		{name: "auth", prefix: "ioau", cases: authCases()},
		{name: "ts", prefix: "iots", cases: selectorCases()},
		{name: "rekey-isle", prefix: "iork", cases: rekeyCases(true)},
		{name: "rekey-swan", prefix: "iors", cases: rekeyCases(false)},
		{name: "life", prefix: "iolc", cases: lifecycleCases()},
		{name: "nat", prefix: "ionat", nat: true, cases: natCases()},
		{name: "family", prefix: "iofam", cases: familyCases()},
	})
}
