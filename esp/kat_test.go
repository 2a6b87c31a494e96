package esp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aeadVector is an ESP packet from a published AEAD test: the AAD gives
// SPI and sequence number (12 bytes with ESN), the nonce is salt || IV,
// and the plaintext ends with padding, pad length and next header.
type aeadVector struct {
	name                     string
	enc                      sa.EncAlg
	mode                     sa.Mode
	key, nonce, aad, pt, ctt string // ctt: ciphertext then tag
}

// The AES-GCM ESP test cases of draft-mcgrew-gcm-test-01 §4 (all but the
// one with SPI 0, which RFC 4303 §2.1 forbids on the wire and sa.New
// rejects), and the ChaCha20-Poly1305 ESP example of RFC 7634 Appendix A.
var aeadVectors = []aeadVector{
	{"mcgrew 1: AES-128 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"4c80cdefbb5d10da906ac73c3613a634", "2e443b684956ed7e3b244cfe", "000043218765432100000000",
		"45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f756470037369700963796265726369747902646b000021000101020201",
		"fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732" +
			"459018148f6cbe722fd04796562dfdb4"},
	{"mcgrew 2: AES-128", sa.EncAESGCM16, sa.ModeTransport,
		"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "0000a5f80000000a",
		"4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d001000001000000000000037369700963796265726369747902646b00000100010001",
		"deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1" +
			"83b70d3aa8bc6ee4c309e9d85a41ad4a"},
	{"mcgrew 3: AES-256", sa.EncAESGCM16, sa.ModeTransport,
		"abbccddef00112233445566778899aababbccddef00112233445566778899aab", "112233440102030405060708", "4a2cbfe300000002",
		"4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201",
		"ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8e" +
			"b335f4eecfdbf831824b4c4915956c96"},
	{"mcgrew 5: AES-128 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3", "42f67e3f1010101010101010",
		"4500003c99c300008001cb7c40679318010101010800085c020043006162636465666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
		"fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c35791765acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a" +
			"e0d731cc978ecafaeae88f00e80d6e48"},
	{"mcgrew 6: AES-128 ESN short", sa.EncAESGCM16, sa.ModeTransport,
		"3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3", "42f67e3f1010101010101010",
		"4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
		"fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed" +
			"369f071f35e034be95f112e4e7d05d35"},
	{"mcgrew 7: AES-192", sa.EncAESGCM16, sa.ModeTransport,
		"feffe9928665731c6d6a8f9467308308feffe9928665731c", "cafebabefacedbaddecaf888", "0000a5f80000000a",
		"45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e501016d075680001",
		"a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0315b27452144cc77" +
			"95457b9652037f5318027b5b4cd7a636"},
	{"mcgrew 8: AES-128 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"abbccddef00112233445566778899aab", "decaf888cafedebaceface74", "000001000000000000000001",
		"4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d500004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec959b6266c04722b14923010101",
		"18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c226f2127b27db35724e7845d68" +
			"651f57e65f354f75ff17015769623436"},
	{"mcgrew 9: AES-256 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"abbccddef00112233445566778899aababbccddef00112233445566778899aab", "73616c74616e640169766563", "17405e67156f3126dd0db99b",
		"45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d540001",
		"f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e" +
			"451626c2415771e3b7eebca614c89b35"},
	{"mcgrew 10: AES-128 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3", "42f67e3f1010101010101010",
		"45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b325ae270c03899493915010101",
		"fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d54182800cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39ab533163aad4550ee5160975" +
			"cdb608c5769189609763b8e18caa81e2"},
	{"mcgrew 11: AES-256 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"abbccddef00112233445566778899aababbccddef00112233445566778899aab", "73616c74616e640169766563", "17405e67156f3126dd0db99b",
		"636973636f0172756c657301746865016e6574776501646566696e6501746865746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f72726f7701020201",
		"d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b012a49363412364f8" +
			"c0cac587f249e56b11e24f30e44ccc76"},
	{"mcgrew 12: AES-128 empty payload", sa.EncAESGCM16, sa.ModeTransport,
		"7d773d00c144c525ac619d18c84a3f47", "d966426743457e9182443bc6", "335467aeffffffff",
		"01020201",
		"437f866b" + "cb3f699fe9b0822bac961c4504bef270"},
	{"mcgrew 13: AES-128 ESN", sa.EncAESGCM16, sa.ModeTransport,
		"abbccddef00112233445566778899aab", "decaf888cafedebaceface74", "000001000000000000000001",
		"746f016265016f72016e6f7401746f0162650001",
		"29c9fc69a197d038ccdd14e2ddfcaa0543332164" + "412503524303ed3c6c5f283843af8c3e"},
	{"mcgrew 14: AES-256 ESN last number", sa.EncAESGCM16, sa.ModeTransport,
		"6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961", "7475726e333021696765746d", "796b6963ffffffffffffffff",
		"45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d6e6f707172737401020201",
		"f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b42458fb57dbe821dcc63b9" +
			"d0937ba2945f669368661a329fb4c053"},
	{"RFC 7634 A: ChaCha20-Poly1305 tunnel", sa.EncChaCha20Poly1305, sa.ModeTunnel,
		"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "a0a1a2a31011121314151617", "0102030400000005",
		`45 00 00 54 a6 f2 00 00 40 01 e7 78 c6 33 64 05 c0 00 02 05 08 00 5b 7a 3a 08 00 00 55 3b ec 10
		 00 07 36 27 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23
		 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37 01 02 02 04`,
		`24 03 94 28 b9 7f 41 7e 3c 13 75 3a 4f 05 08 7b 67 c3 52 e6 a7 fa b1 b9 82 d4 66 ef 40 7a e5 c6
		 14 ee 80 99 d5 28 44 eb 61 aa 95 df ab 4c 02 f7 2a a7 1e 7c 4c 4f 64 c9 be fe 2f ac c6 38 e8 f3
		 cb ec 16 3f ac 46 9b 50 27 73 f6 fb 94 e6 64 da 91 65 b8 28 29 f6 41 e0
		 76 aa a8 26 6b 7f b0 f7 b1 1b 36 99 07 e1 ad 43`},
}

func TestAEADKnownAnswers(t *testing.T) {
	for _, v := range aeadVectors {
		t.Run(v.name, func(t *testing.T) {
			key, nonce, aad, pt := unhex(t, v.key), unhex(t, v.nonce), unhex(t, v.aad), unhex(t, v.pt)
			spi := binary.BigEndian.Uint32(aad)
			esn := len(aad) == 12
			var seq uint64
			if esn {
				seq = binary.BigEndian.Uint64(aad[4:])
			} else {
				seq = uint64(binary.BigEndian.Uint32(aad[4:]))
			}
			// The packet on the wire: SPI, low half of seq, IV, ciphertext, tag.
			want := append([]byte(nil), aad[:4]...)
			want = binary.BigEndian.AppendUint32(want, uint32(seq))
			want = append(want, nonce[4:]...)
			want = append(want, unhex(t, v.ctt)...)

			mk := func(inbound bool) *sa.SA {
				s, err := sa.New(sa.Config{SPI: spi, Protocol: sa.ProtoESP, Mode: v.mode, Inbound: inbound,
					Enc: v.enc, EncKey: append(key, nonce[:4]...), ESN: esn, ReplayWindow: 64})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				return s
			}
			padLen := int(pt[len(pt)-2])
			nh := pt[len(pt)-1]
			inner := pt[:len(pt)-2-padLen]

			// Open the published packet.
			in := mk(true)
			if seq > 1 { // put the window where the sender is, so the high half is inferred
				if err := in.CommitReplay(seq - 1); err != nil {
					t.Fatal(err)
				}
			}
			got, gotNH, err := Open(in, append([]byte(nil), want...))
			if err != nil {
				t.Fatalf("Open of the published packet: %v", err)
			}
			if gotNH != nh {
				t.Fatalf("next header %d, want %d", gotNH, nh)
			}
			mustEqual(t, "opened payload", got, inner)

			// Seal the same payload with the published IV: the same bytes.
			out := mk(false)
			head, tail := Overhead(out)
			buf := make([]byte, head+len(inner), head+len(inner)+tail)
			copy(buf[head:], inner)
			sealed, err := seal(out, seq, nh, nonce[4:], buf, head, len(inner))
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "sealed packet", sealed, want)
		})
	}
}

// RFC 3602 §4 cases 5–8 are ESP packets with AES-128-CBC and no ICV. An
// ESP SA here always has integrity, so the ICV is computed with a
// reference HMAC-SHA-256 over the published bytes and appended.
func TestCBCKnownAnswers(t *testing.T) {
	vectors := []struct {
		name    string
		key     string
		seq     uint64
		nh      uint8
		mode    sa.Mode
		payload string
		packet  string // SPI, seq, IV, ciphertext
	}{
		{"RFC 3602 case 5", "90d382b410eeba7ad938c46cec1a82bf", 1, 1, sa.ModeTransport,
			"08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
			"0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6"},
		{"RFC 3602 case 6", "90d382b410eeba7ad938c46cec1a82bf", 8, 1, sa.ModeTransport,
			"0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
			"000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75"},
		{"RFC 3602 case 7", "0123456789abcdef0123456789abcdef", 2, 4, sa.ModeTunnel,
			"45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
			"0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"},
		{"RFC 3602 case 8", "0123456789abcdef0123456789abcdef", 5, 4, sa.ModeTunnel,
			"45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
			"000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892"},
	}
	integKey := unhex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			packet, payload := unhex(t, v.packet), unhex(t, v.payload)
			spi := binary.BigEndian.Uint32(packet)
			mk := func(inbound bool) *sa.SA {
				s, err := sa.New(sa.Config{SPI: spi, Protocol: sa.ProtoESP, Mode: v.mode, Inbound: inbound,
					Enc: sa.EncAESCBC, EncKey: unhex(t, v.key), Integ: sa.IntegHMACSHA256128, IntegKey: integKey,
					ReplayWindow: 64})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				return s
			}
			mac := hmac.New(sha256.New, integKey)
			mac.Write(packet)
			want := mac.Sum(append([]byte(nil), packet...))[:len(packet)+16]

			got, nh, err := Open(mk(true), append([]byte(nil), want...))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if nh != v.nh {
				t.Fatalf("next header %d, want %d", nh, v.nh)
			}
			mustEqual(t, "payload", got, payload)

			out := mk(false)
			head, tail := Overhead(out)
			buf := make([]byte, head+len(payload), head+len(payload)+tail)
			copy(buf[head:], payload)
			sealed, err := seal(out, v.seq, v.nh, packet[8:24], buf, head, len(payload))
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "sealed packet", sealed, want)
		})
	}
}
