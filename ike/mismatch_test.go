package ike

import (
	"errors"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

func proposalErr(t *testing.T, errs ...error) *ProposalError {
	t.Helper()
	for _, err := range errs {
		var pe *ProposalError
		if errors.As(err, &pe) {
			return pe
		}
	}
	return nil
}

func wantMessage(t *testing.T, side string, pe *ProposalError, want string) {
	t.Helper()
	if pe == nil {
		t.Fatalf("%s: no ProposalError", side)
	}
	if !strings.Contains(pe.Error(), want) {
		t.Errorf("%s:\n got %q\nwant %q", side, pe.Error(), want)
	}
	t.Logf("%s: %v", side, pe)
	var ne *NotifyError
	if !errors.As(pe, &ne) || ne.Type != message.NoProposalChosen {
		t.Errorf("%s: does not unwrap to NO_PROPOSAL_CHOSEN", side)
	}
}

func TestProposalMismatchIKE(t *testing.T) {
	for _, tc := range []struct {
		name, offer, accept string
		responder           string
		initiator           string
	}{
		{"cbc-vs-gcm", "aes256-sha256-modp2048", "aes128gcm16-prfsha256-x25519",
			"sent NO_PROPOSAL_CHOSEN for the IKE SA: peer offered AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048, we accept AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; no match for ENCR, INTEG, KE",
			"peer sent NO_PROPOSAL_CHOSEN for the IKE SA: we offered AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048; the peer does not say what it accepts"},
		{"group-only", "aes128gcm16-prfsha256-ecp384", "aes128gcm16-prfsha256-x25519",
			"peer offered AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_384, we accept AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; no match for KE",
			"we offered AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_384;"},
		{"prf-only, two proposals", "aes128gcm16-prfsha384-x25519,aes256gcm16-prfsha512-x25519", "aes128gcm16-prfsha256-x25519",
			"peer offered AES_GCM_16_128/PRF_HMAC_SHA2_384/CURVE_25519, AES_GCM_16_256/PRF_HMAC_SHA2_512/CURVE_25519, we accept AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; no match for PRF",
			"we offered AES_GCM_16_128/PRF_HMAC_SHA2_384/CURVE_25519, AES_GCM_16_256/PRF_HMAC_SHA2_512/CURVE_25519;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			left.IKEProposals = nil
			for _, p := range strings.Split(tc.offer, ",") {
				left.IKEProposals = append(left.IKEProposals, mustProposals(t, sa.ProtoIKE, p)...)
			}
			right.IKEProposals = mustProposals(t, sa.ProtoIKE, tc.accept)
			i, r, l := newPair(t, left, right)
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			_, errR := l.run(t, i, r)
			wantMessage(t, "responder", proposalErr(t, errR...), tc.responder)
			wantMessage(t, "initiator", proposalErr(t, i.Err()), tc.initiator)
			if pe := proposalErr(t, i.Err()); pe != nil && (pe.Sent || pe.Peer != nil) {
				t.Errorf("initiator claims to know the peer's offer: %+v", pe)
			}
		})
	}
}

func TestProposalMismatchChild(t *testing.T) {
	left, right := pair(t, "aes128gcm16-prfsha256-x25519", "aes256-sha256")
	right.Children[0].Proposals = mustProposals(t, sa.ProtoESP, "aes128gcm16")
	i, r, l := establish(t, left, right)
	wantMessage(t, "responder", proposalErr(t, r.ChildErr()),
		"sent NO_PROPOSAL_CHOSEN for the CHILD_SA net: peer offered AES_CBC_256/HMAC_SHA2_256_128, we accept AES_GCM_16_128; no match for ENCR, INTEG")
	wantMessage(t, "initiator", proposalErr(t, i.ChildErr()),
		"peer sent NO_PROPOSAL_CHOSEN for the CHILD_SA net: we offered AES_CBC_256/HMAC_SHA2_256_128; the peer does not say what it accepts")

	// The same in CREATE_CHILD_SA, with PFS on one side only: the
	// initiator wants a group the responder's proposal lacks.
	left.Children[0].Proposals = mustProposals(t, sa.ProtoESP, "aes128gcm16-modp2048")
	i, r, l = establish(t, left, right)
	if i.ChildSA() == nil {
		t.Fatalf("first CHILD_SA: %v", i.ChildErr())
	}
	if err := i.RekeyChild(i.ChildSA()); err != nil {
		t.Fatal(err)
	}
	errI, errR := l.run(t, i, r)
	wantMessage(t, "responder", proposalErr(t, errR...),
		"sent NO_PROPOSAL_CHOSEN for the CHILD_SA net: peer offered AES_GCM_16_128/MODP_2048, we accept AES_GCM_16_128; no match for KE")
	wantMessage(t, "initiator", proposalErr(t, errI...),
		"peer sent NO_PROPOSAL_CHOSEN for the CHILD_SA net: we offered AES_GCM_16_128/MODP_2048;")
	if len(i.Children()) != 1 || i.State() != StateEstablished {
		t.Errorf("the old CHILD_SA or the IKE SA suffered: %d children, %v", len(i.Children()), i.State())
	}
}

func TestUnmatchedTypes(t *testing.T) {
	for _, tc := range []struct {
		proto        sa.Protocol
		ours, theirs string
		want         string
	}{
		{sa.ProtoESP, "aes128gcm16", "aes128gcm16-esn", "ESN"},
		{sa.ProtoESP, "aes128gcm16-esn-noesn", "aes128gcm16", ""},
		{sa.ProtoESP, "aes256-sha384", "aes256-sha256", "INTEG"},
		{sa.ProtoIKE, "aes256-sha256-prfsha256-modp2048", "aes128-sha256-prfsha256-modp2048", "ENCR"},
	} {
		got := unmatchedTypes(mustProposals(t, tc.proto, tc.ours), mustProposals(t, tc.proto, tc.theirs))
		var names []string
		for _, g := range got {
			names = append(names, g.String())
		}
		if strings.Join(names, ",") != tc.want {
			t.Errorf("%s vs %s: %v, want %s", tc.ours, tc.theirs, names, tc.want)
		}
	}
}
