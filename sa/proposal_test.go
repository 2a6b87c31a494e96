package sa

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProposal(t *testing.T) {
	tests := []struct {
		proto Protocol
		in    string
		want  Proposal
		str   string
	}{
		{ProtoIKE, "aes128gcm16-prfsha256-x25519",
			Proposal{Protocol: ProtoIKE, Encr: []Encr{{EncAESGCM16, 128}}, PRF: []PRFAlg{PRFHMACSHA256}, DH: []DHGroup{DHCurve25519}},
			"AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519"},
		{ProtoIKE, "aes256-sha256-modp2048", // PRF derived from the integrity algorithm
			Proposal{Protocol: ProtoIKE, Encr: []Encr{{EncAESCBC, 256}}, Integ: []IntegAlg{IntegHMACSHA256128}, PRF: []PRFAlg{PRFHMACSHA256}, DH: []DHGroup{DHMODP2048}},
			"AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"},
		{ProtoIKE, "aes128-aes256-sha1-sha384-ecp256-ecp384",
			Proposal{Protocol: ProtoIKE, Encr: []Encr{{EncAESCBC, 128}, {EncAESCBC, 256}}, Integ: []IntegAlg{IntegHMACSHA1_96, IntegHMACSHA384192},
				PRF: []PRFAlg{PRFHMACSHA1, PRFHMACSHA384}, DH: []DHGroup{DHECP256, DHECP384}},
			"AES_CBC_128/AES_CBC_256/HMAC_SHA1_96/HMAC_SHA2_384_192/PRF_HMAC_SHA1/PRF_HMAC_SHA2_384/ECP_256/ECP_384"},
		{ProtoIKE, "aes192-sha512-prfsha256-curve25519-modp4096", // explicit PRF wins
			Proposal{Protocol: ProtoIKE, Encr: []Encr{{EncAESCBC, 192}}, Integ: []IntegAlg{IntegHMACSHA512256}, PRF: []PRFAlg{PRFHMACSHA256}, DH: []DHGroup{DHCurve25519, DHMODP4096}},
			"AES_CBC_192/HMAC_SHA2_512_256/PRF_HMAC_SHA2_256/CURVE_25519/MODP_4096"},
		{ProtoIKE, "CHACHA20POLY1305-PRFSHA512-MODP3072", // keywords are case-insensitive
			Proposal{Protocol: ProtoIKE, Encr: []Encr{{EncChaCha20Poly1305, 256}}, PRF: []PRFAlg{PRFHMACSHA512}, DH: []DHGroup{DHMODP3072}},
			"CHACHA20_POLY1305/PRF_HMAC_SHA2_512/MODP_3072"},
		{ProtoESP, "aes128gcm16",
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncAESGCM16, 128}}, ESN: []ESNMode{NoESN}},
			"AES_GCM_16_128"},
		{ProtoESP, "aes256gcm16-x25519-esn",
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncAESGCM16, 256}}, DH: []DHGroup{DHCurve25519}, ESN: []ESNMode{WithESN}},
			"AES_GCM_16_256/CURVE_25519/ESN"},
		{ProtoESP, "aes256-sha256",
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncAESCBC, 256}}, Integ: []IntegAlg{IntegHMACSHA256128}, ESN: []ESNMode{NoESN}},
			"AES_CBC_256/HMAC_SHA2_256_128"},
		{ProtoESP, "aes128-sha256-esn-noesn",
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncAESCBC, 128}}, Integ: []IntegAlg{IntegHMACSHA256128}, ESN: []ESNMode{WithESN, NoESN}},
			"AES_CBC_128/HMAC_SHA2_256_128/ESN/NO_EXT_SEQ"},
		{ProtoESP, "null-sha1",
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncNull, 0}}, Integ: []IntegAlg{IntegHMACSHA1_96}, ESN: []ESNMode{NoESN}},
			"NULL/HMAC_SHA1_96"},
		{ProtoESP, "chacha20poly1305-chacha20poly1305", // duplicates collapse
			Proposal{Protocol: ProtoESP, Encr: []Encr{{EncChaCha20Poly1305, 256}}, ESN: []ESNMode{NoESN}},
			"CHACHA20_POLY1305"},
		{ProtoAH, "sha256",
			Proposal{Protocol: ProtoAH, Integ: []IntegAlg{IntegHMACSHA256128}, ESN: []ESNMode{NoESN}},
			"HMAC_SHA2_256_128"},
		{ProtoAH, "sha384-sha512-sha1-ecp384",
			Proposal{Protocol: ProtoAH, Integ: []IntegAlg{IntegHMACSHA384192, IntegHMACSHA512256, IntegHMACSHA1_96}, DH: []DHGroup{DHECP384}, ESN: []ESNMode{NoESN}},
			"HMAC_SHA2_384_192/HMAC_SHA2_512_256/HMAC_SHA1_96/ECP_384"},
	}
	for _, tt := range tests {
		got, err := ParseProposal(tt.proto, tt.in)
		if err != nil {
			t.Errorf("ParseProposal(%v, %q): %v", tt.proto, tt.in, err)
			continue
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
			t.Errorf("ParseProposal(%v, %q) = %+v, want %+v", tt.proto, tt.in, got, tt.want)
			continue
		}
		if s := got[0].String(); s != tt.str {
			t.Errorf("ParseProposal(%v, %q).String() = %q, want %q", tt.proto, tt.in, s, tt.str)
		}
	}
}

func TestParseProposalErrors(t *testing.T) {
	tests := []struct {
		proto   Protocol
		in      string
		wantErr string
	}{
		{ProtoIKE, "", "empty proposal"},
		{ProtoIKE, "aes128--sha256-x25519", "empty keyword"},
		{ProtoIKE, "aes128-sha256-x25519-", "empty keyword"},
		{ProtoIKE, "aes128-sha265-x25519", `unknown algorithm keyword "sha265"`},
		{ProtoIKE, "3des-sha1-modp1024", `unknown algorithm keyword "3des"`},
		{ProtoIKE, "aes128gcm16-sha256-prfsha256-x25519", "remove the integrity algorithm HMAC_SHA2_256_128"},
		{ProtoIKE, "aes128gcm16-x25519", "needs a PRF"},
		{ProtoIKE, "aes128-sha256", "no key exchange"},
		{ProtoIKE, "aes128-x25519", "no integrity algorithm"},
		{ProtoIKE, "sha256-x25519", "no encryption algorithm"},
		{ProtoIKE, "null-sha256-x25519", "null encryption is not allowed"},
		{ProtoIKE, "aes128-sha256-x25519-esn", "not IKE"},
		{ProtoIKE, "aes128gcm16-aes128-sha256-prfsha256-x25519", "cannot be mixed"},
		{ProtoESP, "aes128gcm16-sha256", "remove the integrity algorithm"},
		{ProtoESP, "aes128", "no integrity algorithm"},
		{ProtoESP, "sha256", "no encryption algorithm"},
		{ProtoESP, "aes128gcm16-prfsha256", "IKE proposals only"},
		{ProtoAH, "aes128-sha256", "AH does not encrypt"},
		{ProtoAH, "x25519", "no integrity algorithm"},
		{ProtoAH, "sha256-prfsha256", "IKE proposals only"},
	}
	for _, tt := range tests {
		_, err := ParseProposal(tt.proto, tt.in)
		if err == nil {
			t.Errorf("ParseProposal(%v, %q) succeeded, want error containing %q", tt.proto, tt.in, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParseProposal(%v, %q) error = %q, want the proposal quoted and %q", tt.proto, tt.in, err, tt.wantErr)
		}
	}
}

// TestDefaultProposals checks "default" yields valid proposals that hold
// the algorithms strongSwan 5.9 offers first by default, so either side's
// defaults meet the other's.
func TestDefaultProposals(t *testing.T) {
	for _, proto := range []Protocol{ProtoIKE, ProtoESP, ProtoAH} {
		got, err := ParseProposal(proto, "Default")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("%v: no default proposals", proto)
		}
		for _, p := range got {
			// Every default proposal must pass the same validation as a
			// written one, and survive a copy through complete unchanged.
			q := p
			if err := q.complete(); err != nil || !reflect.DeepEqual(p, q) {
				t.Errorf("%v default proposal %v is not complete: %v", proto, p, err)
			}
		}
	}
	ike := DefaultProposals(ProtoIKE)
	if s := ike[0].String(); !strings.HasPrefix(s, "AES_GCM_16_128/AES_GCM_16_256/CHACHA20_POLY1305/PRF_HMAC_SHA2_256") || !strings.Contains(s, "CURVE_25519") {
		t.Errorf("IKE AEAD default = %s", s)
	}
	if s := ike[1].String(); !strings.Contains(s, "AES_CBC_128") || !strings.Contains(s, "HMAC_SHA2_256_128") || !strings.Contains(s, "MODP_2048") {
		t.Errorf("IKE classic default = %s", s)
	}
	esp := DefaultProposals(ProtoESP)
	if s := esp[0].String(); s != "AES_GCM_16_128/AES_GCM_16_256/CHACHA20_POLY1305" {
		t.Errorf("ESP AEAD default = %s", s)
	}
	if s := esp[1].String(); s != "AES_CBC_128/AES_CBC_256/HMAC_SHA2_256_128/HMAC_SHA2_384_192/HMAC_SHA2_512_256" {
		t.Errorf("ESP classic default = %s", s)
	}
	// The lists of two calls must not share memory: callers may edit theirs.
	a, b := DefaultProposals(ProtoESP), DefaultProposals(ProtoESP)
	a[0].Encr[0].KeyBits = 1
	if b[0].Encr[0].KeyBits != 128 {
		t.Error("DefaultProposals results share memory")
	}
}

func TestParseEncrInteg(t *testing.T) {
	for _, tt := range []struct {
		word  string
		want  Encr
		bytes int
	}{
		{"aes128gcm16", Encr{EncAESGCM16, 128}, 20},
		{"aes256gcm16", Encr{EncAESGCM16, 256}, 36},
		{"chacha20poly1305", Encr{EncChaCha20Poly1305, 256}, 36},
		{"aes128", Encr{EncAESCBC, 128}, 16},
		{"aes192", Encr{EncAESCBC, 192}, 24},
		{"aes256", Encr{EncAESCBC, 256}, 32},
		{"null", Encr{EncNull, 0}, 0},
	} {
		got, err := ParseEncr(tt.word)
		if err != nil || got != tt.want || got.KeyMaterialSize() != tt.bytes {
			t.Errorf("ParseEncr(%q) = %v (%d bytes), %v; want %v (%d bytes)", tt.word, got, got.KeyMaterialSize(), err, tt.want, tt.bytes)
		}
		if !got.Alg.KeyBitsOK(got.KeyBits) {
			t.Errorf("ParseEncr(%q): key size %d not valid for %v", tt.word, got.KeyBits, got.Alg)
		}
	}
	for _, bad := range []string{"sha256", "x25519", "des", ""} {
		if _, err := ParseEncr(bad); err == nil {
			t.Errorf("ParseEncr(%q) succeeded", bad)
		}
	}
	for word, want := range map[string]IntegAlg{"sha1": IntegHMACSHA1_96, "sha256": IntegHMACSHA256128, "sha384": IntegHMACSHA384192, "sha512": IntegHMACSHA512256} {
		if got, err := ParseInteg(word); err != nil || got != want {
			t.Errorf("ParseInteg(%q) = %v, %v; want %v", word, got, err, want)
		}
	}
	if _, err := ParseInteg("aes128"); err == nil {
		t.Error("ParseInteg(aes128) succeeded")
	}
}

func FuzzParseProposal(f *testing.F) {
	for _, s := range []string{"aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048", "default", "sha256-esn", "null-sha1"} {
		f.Add(uint8(1), s)
		f.Add(uint8(50), s)
		f.Add(uint8(51), s)
	}
	f.Fuzz(func(t *testing.T, proto uint8, s string) {
		ps, err := ParseProposal(Protocol(proto), s)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Protocol != Protocol(proto) {
				t.Fatalf("%q: protocol %v, want %v", s, p.Protocol, Protocol(proto))
			}
			_ = p.String()
		}
	})
}
