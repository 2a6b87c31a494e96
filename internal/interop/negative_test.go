package interop

import (
	"testing"
	"time"
)

// refused: the negotiation fails, isle's log matches isleRe, charon's
// swanRe, and neither side ends up with an installed CHILD_SA.
func refused(isleRe, swanRe string) func(t *testing.T, p *pair) {
	return func(t *testing.T, p *pair) {
		if !p.s.isleInit {
			if err := p.charon.Initiate("net", 15*time.Second); err == nil {
				t.Errorf("charon's initiate succeeded; want a refusal")
			}
		}
		t.Logf("isle: %s", p.waitIsleLog(isleRe, 20*time.Second))
		t.Logf("charon: %s", p.waitSwanLog(swanRe, 20*time.Second))
		isleSAs, err := p.isleSAs()
		if err != nil {
			t.Fatal(err)
		}
		for _, sa := range isleSAs {
			for _, c := range sa.Children {
				if c.State == "INSTALLED" {
					t.Errorf("isle installed CHILD_SA %s (%s/%s) despite the refusal", c.Name, c.SPIIn, c.SPIOut)
				}
			}
		}
		swanSAs, err := p.swanSAs()
		if err != nil {
			t.Fatal(err)
		}
		for _, sa := range swanSAs {
			for _, c := range sa.Children {
				if c.State == "INSTALLED" {
					t.Errorf("charon installed CHILD_SA %s despite the refusal", c.Name)
				}
			}
		}
	}
}

const (
	isleOffer = "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"
	swanOffer = "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"
	// isle's log when the peer refused our AUTH, and when it failed ours.
	isleRefused    = `(?i)AUTHENTICATION_FAILED|refused us`
	isleAuthError  = `(?i)peer authentication failed`
	swanGotRefusal = `received AUTHENTICATION_FAILED notify error`
)

func negativeCases() []tcase {
	mismatch := func(init bool) setup {
		return setup{isleInit: init, auth: authPSK,
			isleIKE: []string{"aes128gcm16-prfsha256-x25519"}, swanIKE: []string{"aes256-sha384-ecp384"}}
	}
	return []tcase{
		{
			name: "proposal-isle-init",
			what: "isle-init offers only AES-GCM/X25519, strongSwan only AES-CBC/ECP-384: NO_PROPOSAL_CHOSEN; isle names its offer, charon both",
			s:    mismatch(true),
			run: refused(`NO_PROPOSAL_CHOSEN.*`+isleOffer,
				`received proposals: IKE:`+isleOffer+`(?s:.*)configured proposals: IKE:`+swanOffer),
		},
		{
			name: "proposal-swan-init",
			what: "swan-init with the same mismatch: isle's log names both offers, charon receives NO_PROPOSAL_CHOSEN",
			s:    mismatch(false),
			run:  refused(`NO_PROPOSAL_CHOSEN.*`+swanOffer+`.*`+isleOffer, `received NO_PROPOSAL_CHOSEN notify error`),
		},
		{
			name: "psk-isle-init",
			what: "isle-init with a different PSK: charon's MAC check fails, isle is told AUTHENTICATION_FAILED",
			s:    setup{isleInit: true, auth: authPSK, islePSK: "not-the-right-key-0123456789abcd"},
			run:  refused(isleRefused, `tried \d+ shared keys? for .* but MAC mismatched`),
		},
		{
			name: "psk-swan-init",
			what: "swan-init with a different PSK: isle's check fails and it says so, charon gets AUTHENTICATION_FAILED",
			s:    setup{isleInit: false, auth: authPSK, islePSK: "not-the-right-key-0123456789abcd"},
			run:  refused(isleAuthError, swanGotRefusal),
		},
		{
			name: "id-isle-init",
			what: "isle-init while strongSwan expects another identity: no peer config at charon, isle told AUTHENTICATION_FAILED",
			s:    setup{isleInit: true, auth: authPSK, swanRemoteID: "gw-nobody.example"},
			run:  refused(isleRefused, `no matching peer config found`),
		},
		{
			name: "id-swan-init",
			what: "swan-init while isle expects another identity: isle refuses and says which, charon gets AUTHENTICATION_FAILED",
			s:    setup{isleInit: false, auth: authPSK, isleRemoteID: "gw-nobody.example"},
			run:  refused(`(?i)peer authentication failed.*(identity|no pre-shared key)|gw-nobody`, swanGotRefusal),
		},
		{
			name: "untrusted-isle-init",
			what: "isle-init with a certificate of a CA strongSwan does not trust: charon finds no trusted key, isle told AUTHENTICATION_FAILED",
			s:    setup{isleInit: true, auth: authECDSA, untrusted: "isle"},
			run:  refused(isleRefused, `no trusted \S+ public key found`),
		},
		{
			name: "untrusted-swan-init",
			what: "swan-init with a certificate of a CA isle does not trust: isle says untrusted chain, charon gets AUTHENTICATION_FAILED",
			s:    setup{isleInit: false, auth: authECDSA, untrusted: "swan"},
			run:  refused(`(?i)untrusted certificate chain`, swanGotRefusal),
		},
		{
			name: "ts-isle-init",
			what: "isle-init asks for 10.1.0.0/24 ↔ 10.9.0.0/24, strongSwan allows only 10.2.0.0/24: TS_UNACCEPTABLE, IKE_SA without CHILD_SA",
			s:    setup{isleInit: true, auth: authPSK, isleRemoteTS: []string{"10.9.0.0/24"}},
			run:  refused(`TS_UNACCEPTABLE`, `(?i)traffic selectors .* unacceptable|no acceptable traffic selectors`),
		},
		{
			name: "ts-swan-init",
			what: "swan-init asks for 10.2.0.0/24 ↔ 10.9.0.0/24, isle allows only 10.1.0.0/24: isle answers TS_UNACCEPTABLE",
			s:    setup{isleInit: false, auth: authPSK, swanRemoteTS: []string{"10.9.0.0/24"}},
			run:  refused(`(?i)TS_UNACCEPTABLE|traffic selector`, `received TS_UNACCEPTABLE notify`),
		},
	}
}

func TestNegative(t *testing.T) {
	t.Parallel()
	runGroups(t, 10000, []group{{name: "refuse", prefix: "ioneg", cases: negativeCases()}})
}
