package keys

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/ike/internal/ikecap"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPRF(t testing.TB, alg sa.PRFAlg) PRF {
	t.Helper()
	p, err := NewPRF(alg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPRFHMAC checks each PRF against RFC 2202 (HMAC-SHA1) and RFC 4231
// (HMAC-SHA2) test cases 1 and 2.
func TestPRFHMAC(t *testing.T) {
	tc1key := bytes.Repeat([]byte{0x0b}, 20)
	tests := []struct {
		alg       sa.PRFAlg
		key, data []byte
		want      string
	}{
		{sa.PRFHMACSHA1, tc1key, []byte("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"},
		{sa.PRFHMACSHA1, []byte("Jefe"), []byte("what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{sa.PRFHMACSHA256, tc1key, []byte("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{sa.PRFHMACSHA256, []byte("Jefe"), []byte("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{sa.PRFHMACSHA384, tc1key, []byte("Hi There"), "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
		{sa.PRFHMACSHA384, []byte("Jefe"), []byte("what do ya want for nothing?"), "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"},
		{sa.PRFHMACSHA512, tc1key, []byte("Hi There"), "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
		{sa.PRFHMACSHA512, []byte("Jefe"), []byte("what do ya want for nothing?"), "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
	}
	for _, tt := range tests {
		p := mustPRF(t, tt.alg)
		// Split the data to check that Sum concatenates its arguments.
		got := p.Sum(tt.key, tt.data[:3], tt.data[3:])
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("%v(%q): got %x, want %s", tt.alg, tt.key, got, tt.want)
		}
		if p.Size() != len(got) {
			t.Errorf("%v: Size %d, output %d", tt.alg, p.Size(), len(got))
		}
	}
	if _, err := NewPRF(sa.PRFAlg(4)); err == nil { // AES128_XCBC: not offered
		t.Error("NewPRF accepted PRF_AES128_XCBC")
	}
}

// TestPRFPlusDefinition checks prf+ against its definition in RFC 7296
// §2.13 written out for the first three blocks, and its 255-block limit.
func TestPRFPlusDefinition(t *testing.T) {
	p := mustPRF(t, sa.PRFHMACSHA256)
	key, seed := []byte("key"), []byte("seed")
	t1 := p.Sum(key, seed, []byte{1})
	t2 := p.Sum(key, t1, seed, []byte{2})
	t3 := p.Sum(key, t2, seed, []byte{3})
	want := append(append(append([]byte(nil), t1...), t2...), t3[:5]...)
	got, err := p.Plus(key, seed, 69)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("prf+ = %x, %v; want %x", got, err, want)
	}
	if _, err := p.Plus(key, seed, 255*32); err != nil {
		t.Errorf("255 blocks: %v", err)
	}
	if _, err := p.Plus(key, seed, 255*32+1); err == nil {
		t.Error("prf+ beyond 255 blocks accepted")
	}
}

// cavsVectors are the IKEv2 samples of NIST's CAVS SP 800-135 KDF test
// vectors (ikev2.rsp), as carried by NSS
// (gtests/common/testvectors/ike-sha{1,256,384}-vectors.h, "from the NIST
// samples") and by libreswan (programs/cavp, the SHA-1 child DKMs).
var cavsVectors = []struct {
	alg                         sa.PRFAlg
	gir, girNew, ni, nr         string
	spii, spir                  string
	skeyseed, dkm               string
	dkmChild, dkmChildDH, rekey string
}{
	{
		alg:    sa.PRFHMACSHA1,
		gir:    "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
		girNew: "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
		ni:     "32b50d5f4a3763f3", nr: "9206a04b26564cb1",
		spii: "34c9e7c188868785", spir: "3ff77d760d2b2199",
		skeyseed:   "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
		dkm:        "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4",
		dkmChild:   "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4",
		dkmChildDH: "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c",
		rekey:      "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
	},
	{
		alg:    sa.PRFHMACSHA256,
		gir:    "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29",
		girNew: "25f3b12d6f282739256e39bf54eda53b60ffcf379bb7bcc90c27b4c4c578616c",
		ni:     "3f302be1abcb28e1", nr: "8c332ee006064c9b",
		spii: "40dac39e1e1a8640", spir: "8619a1cf9a6e4c07",
		skeyseed: "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe",
		dkm:      "0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ece98aca531188d16041b3bb936d2dbb3b4993a6e768a809160de45d0283f273a6cdf6854379e31be72b8d3d1fa990cf9c5b015ca9f918a7df6253c958114a09d4e1c19bdcd4db14b29d98db1a74ad405c588662c14a04d0d36aa4ab55e90f8986d12d4aad",
		rekey:    "2d63f6debc92048b4fef3889c4c99ca67d6496e0fac14a2bca9a2d6566ff2398",
	},
	{
		alg:    sa.PRFHMACSHA384,
		gir:    "d3288cd87565101e88fe3bad918f31939d8dd26ff1071f8b2d7f447524e58d7c",
		girNew: "3358f620539473aee8d07e779764c4c6a9aabddc79a28e136b3bac021dbde44a",
		ni:     "fd1b572a8e735591", nr: "6013b0ef88dacd3d",
		spii: "2116ad07ce61f749", spir: "24880e55f11a65b7",
		skeyseed: "69fe7a1ac94adaeb711295f5fe004b1a8d6a0b65d05692758ce8ad2f7a45f59d7d0b596f51f7dfcf3330061888f6a94f",
		dkm:      "4f904c2025c90c817ea5ff9b662a6fdb445a73b57cdf09eacd379b95e1f03cacb04cd6deeda4f952191dd9bc1f7a9502471a648d74dc06d38112de48a42501f6b1a3ad55c2099cd9a648e5f17e5bf3e34bf9b5953decb768a34f875fe2b78dca0c2fcca81ec1a412006dfaed38fa06882e61f4c148105fb8e231fdb33c4d484c001721d4",
		rekey:    "e0548c1682e13bce454026b3b1bdf42985b24e4e7408095a7c529de38c3d1fcb04c9fe6868042a34c9614c6c99e3fcea",
	},
}

func TestCAVSIKEv2KDF(t *testing.T) {
	for _, v := range cavsVectors {
		t.Run(v.alg.String(), func(t *testing.T) {
			p := mustPRF(t, v.alg)
			ni, nr := unhex(t, v.ni), unhex(t, v.nr)
			skeyseed := SKEYSEED(p, ni, nr, unhex(t, v.gir))
			if hex.EncodeToString(skeyseed) != v.skeyseed {
				t.Fatalf("SKEYSEED %x, want %s", skeyseed, v.skeyseed)
			}
			// DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), 1056 bits.
			seed := append(append(append([]byte(nil), ni...), nr...), append(unhex(t, v.spii), unhex(t, v.spir)...)...)
			dkm, err := p.Plus(skeyseed, seed, 132)
			if err != nil || hex.EncodeToString(dkm) != v.dkm {
				t.Fatalf("DKM %x, %v; want %s", dkm, err, v.dkm)
			}
			// DeriveIKESA takes its keys from the front of the same stream.
			spii := binary.BigEndian.Uint64(unhex(t, v.spii))
			spir := binary.BigEndian.Uint64(unhex(t, v.spir))
			k, err := DeriveIKESA(p, skeyseed, ni, nr, spii, spir, IKESAKeySizes{Integ: 1, Enc: 2})
			if err != nil {
				t.Fatal(err)
			}
			split := bytes.Join([][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr}, nil)
			stream, _ := p.Plus(skeyseed, seed, len(split))
			if !bytes.Equal(split, stream) || len(k.SKd) != p.Size() || len(k.SKei) != 2 || len(k.SKpr) != p.Size() {
				t.Fatalf("DeriveIKESA split %x from DKM %x", split, dkm)
			}
			rekey := RekeySKEYSEED(p, k.SKd, unhex(t, v.girNew), ni, nr)
			if hex.EncodeToString(rekey) != v.rekey {
				t.Errorf("SKEYSEED(rekey) %x, want %s", rekey, v.rekey)
			}
			if v.dkmChild == "" {
				return
			}
			// 132 bytes = two directions of 66: split as 50 + 16.
			childSizes := IKESAKeySizes{Enc: 50, Integ: 16}
			for _, c := range []struct {
				gir  []byte
				want string
			}{{nil, v.dkmChild}, {unhex(t, v.girNew), v.dkmChildDH}} {
				ck, err := DeriveChildSA(p, k.SKd, c.gir, ni, nr, childSizes)
				if err != nil {
					t.Fatal(err)
				}
				got := bytes.Join([][]byte{ck.InitiatorEnc, ck.InitiatorInteg, ck.ResponderEnc, ck.ResponderInteg}, nil)
				if hex.EncodeToString(got) != c.want {
					t.Errorf("child DKM (g^ir new %v) %x, want %s", c.gir != nil, got, c.want)
				}
			}
		})
	}
}

func TestKeySizes(t *testing.T) {
	tests := []struct {
		enc     sa.EncAlg
		bits    int
		integ   sa.IntegAlg
		want    IKESAKeySizes
		wantErr bool
	}{
		{sa.EncAESGCM16, 128, sa.IntegNone, IKESAKeySizes{Enc: 20}, false},
		{sa.EncAESGCM16, 256, sa.IntegNone, IKESAKeySizes{Enc: 36}, false},
		{sa.EncChaCha20Poly1305, 256, sa.IntegNone, IKESAKeySizes{Enc: 36}, false},
		{sa.EncAESCBC, 256, sa.IntegHMACSHA256128, IKESAKeySizes{Enc: 32, Integ: 32}, false},
		{sa.EncAESCBC, 128, sa.IntegHMACSHA1_96, IKESAKeySizes{Enc: 16, Integ: 20}, false},
		{sa.EncAESCBC, 128, sa.IntegNone, IKESAKeySizes{}, true},
		{sa.EncAESGCM16, 128, sa.IntegHMACSHA256128, IKESAKeySizes{}, true},
		{sa.EncAESCBC, 100, sa.IntegHMACSHA256128, IKESAKeySizes{}, true},
	}
	for _, tt := range tests {
		got, err := KeySizes(tt.enc, tt.bits, tt.integ)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("KeySizes(%v, %d, %v) = %+v, %v", tt.enc, tt.bits, tt.integ, got, err)
		}
	}
}

// strongSwanSuites describes the captures in testdata/ike: the IKE and ESP
// proposals each run negotiated (see its sas.txt).
var strongSwanSuites = []struct {
	name       string
	prf        sa.PRFAlg
	enc        sa.EncAlg
	bits       int
	integ      sa.IntegAlg
	childEnc   sa.EncAlg
	childBits  int
	childInteg sa.IntegAlg
}{
	{"strongswan-gcm", sa.PRFHMACSHA256, sa.EncAESGCM16, 128, sa.IntegNone, sa.EncAESGCM16, 128, sa.IntegNone},
	{"strongswan-cbc", sa.PRFHMACSHA256, sa.EncAESCBC, 256, sa.IntegHMACSHA256128, sa.EncAESCBC, 256, sa.IntegHMACSHA256128},
	{"strongswan-ecp", sa.PRFHMACSHA384, sa.EncAESGCM16, 256, sa.IntegNone, sa.EncAESGCM16, 256, sa.IntegNone},
	{"strongswan-chacha", sa.PRFHMACSHA512, sa.EncChaCha20Poly1305, 256, sa.IntegNone, sa.EncChaCha20Poly1305, 256, sa.IntegNone},
}

// initExchange returns strongSwan's IKE_SA_INIT request and response.
func initExchange(t *testing.T, c *ikecap.Capture) (req, resp []byte, ni, nr []byte, spii, spir uint64) {
	t.Helper()
	req, resp = c.Messages[0].Data, c.Messages[1].Data
	nonce := func(b []byte) []byte {
		m, err := message.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Payloads {
			if n, ok := p.(*message.Nonce); ok {
				return n.Data
			}
		}
		t.Fatal("no nonce")
		return nil
	}
	m, err := message.Parse(resp)
	if err != nil {
		t.Fatal(err)
	}
	return req, resp, nonce(req), nonce(resp), m.SPIi, m.SPIr
}

// TestStrongSwanKeySchedule recomputes, from the captured IKE_SA_INIT and
// the Diffie-Hellman secret charon logged, every key and AUTH value
// strongSwan 5.9.8 logged for the same IKE SA.
func TestStrongSwanKeySchedule(t *testing.T) {
	for _, s := range strongSwanSuites {
		t.Run(s.name, func(t *testing.T) {
			c, err := ikecap.Load(s.name)
			if err != nil {
				t.Fatal(err)
			}
			key := func(name string) []byte {
				k, err := c.Key(name)
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			check := func(what string, got []byte, logName string) {
				t.Helper()
				if want := key(logName); !bytes.Equal(got, want) {
					t.Errorf("%s: got %x, strongSwan %x", what, got, want)
				}
			}
			p := mustPRF(t, s.prf)
			req, resp, ni, nr, spii, spir := initExchange(t, c)
			skeyseed := SKEYSEED(p, ni, nr, key("shared Diffie Hellman secret"))
			check("SKEYSEED", skeyseed, "SKEYSEED")
			sizes, err := KeySizes(s.enc, s.bits, s.integ)
			if err != nil {
				t.Fatal(err)
			}
			k, err := DeriveIKESA(p, skeyseed, ni, nr, spii, spir, sizes)
			if err != nil {
				t.Fatal(err)
			}
			check("SK_d", k.SKd, "Sk_d secret")
			check("SK_ei", k.SKei, "Sk_ei secret")
			check("SK_er", k.SKer, "Sk_er secret")
			check("SK_pi", k.SKpi, "Sk_pi secret")
			check("SK_pr", k.SKpr, "Sk_pr secret")
			if s.integ != sa.IntegNone {
				check("SK_ai", k.SKai, "Sk_ai secret")
				check("SK_ar", k.SKar, "Sk_ar secret")
			}

			// AUTH: charon (the initiator here) logs its own octets and
			// AUTH first, then those it expects from the responder.
			psk := key("secret")
			octI := SignedOctets(p, req, nr, k.SKpi, key("IDx'"))
			check("initiator signed octets", octI, "octets = message + nonce + prf(Sk_px, IDx')")
			check("initiator AUTH", PSKAuth(p, psk, octI), "AUTH = prf(prf(secret, keypad), octets)")
			octR := SignedOctets(p, resp, ni, k.SKpr, key("IDx'#2"))
			check("responder signed octets", octR, "octets = message + nonce + prf(Sk_px, IDx')#2")
			check("responder AUTH", PSKAuth(p, psk, octR), "AUTH = prf(prf(secret, keypad), octets)#2")

			csizes, err := KeySizes(s.childEnc, s.childBits, s.childInteg)
			if err != nil {
				t.Fatal(err)
			}
			ck, err := DeriveChildSA(p, k.SKd, nil, ni, nr, csizes)
			if err != nil {
				t.Fatal(err)
			}
			check("CHILD_SA encryption i->r", ck.InitiatorEnc, "encryption initiator key")
			check("CHILD_SA encryption r->i", ck.ResponderEnc, "encryption responder key")
			if s.childInteg != sa.IntegNone {
				check("CHILD_SA integrity i->r", ck.InitiatorInteg, "integrity initiator key")
				check("CHILD_SA integrity r->i", ck.ResponderInteg, "integrity responder key")
			}
		})
	}
}
