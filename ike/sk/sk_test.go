package sk

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/ike/internal/ikecap"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

type suite struct {
	enc   sa.EncAlg
	bits  int
	integ sa.IntegAlg
}

var suites = []suite{
	{sa.EncAESGCM16, 128, sa.IntegNone},
	{sa.EncAESGCM16, 256, sa.IntegNone},
	{sa.EncChaCha20Poly1305, 256, sa.IntegNone},
	{sa.EncAESCBC, 128, sa.IntegHMACSHA1_96},
	{sa.EncAESCBC, 256, sa.IntegHMACSHA256128},
	{sa.EncAESCBC, 192, sa.IntegHMACSHA384192},
	{sa.EncAESCBC, 256, sa.IntegHMACSHA512256},
}

func (s suite) String() string { return s.enc.String() + "-" + s.integ.String() }

func newCipher(t testing.TB, s suite) *Cipher {
	t.Helper()
	ek := make([]byte, s.bits/8+s.enc.SaltSize())
	ik := make([]byte, s.integ.KeySize())
	rand.Read(ek)
	rand.Read(ik)
	c, err := New(s.enc, ek, s.integ, ik)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func authMessage() (*message.Message, []message.Payload) {
	m := &message.Message{Header: message.Header{SPIi: 0x1111, SPIr: 0x2222, Exchange: message.IKEAuth,
		Flags: message.FlagInitiator, MessageID: 1}}
	inner := []message.Payload{
		&message.ID{IDType: message.IDFQDN, Data: []byte("gw-left")},
		&message.Auth{Method: message.AuthSharedKeyMIC, Data: bytes.Repeat([]byte{0xa5}, 32)},
		&message.Notify{NotifyType: message.InitialContact},
	}
	return m, inner
}

func TestSealOpen(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			c := newCipher(t, s)
			m, inner := authMessage()
			b, err := c.Seal(m, inner)
			if err != nil {
				t.Fatal(err)
			}
			pm, err := message.Parse(b)
			if err != nil {
				t.Fatalf("sealed message does not parse: %v", err)
			}
			got, err := c.Open(b, pm)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, inner) {
				t.Fatalf("opened %#v", got)
			}
			// Every byte is covered: header and SK header as associated
			// data or MAC input, the rest as ciphertext or ICV.
			for i := range b {
				bad := append([]byte(nil), b...)
				bad[i] ^= 0x01
				pm, err := message.Parse(bad)
				if err != nil {
					continue // broken framing is caught by the codec
				}
				if _, err := c.Open(bad, pm); err == nil {
					t.Fatalf("flipped byte %d of %d accepted", i, len(b))
				}
			}
			// The other direction's keys do not open it.
			if _, err := newCipher(t, s).Open(b, pm); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("wrong key: err %v", err)
			}
		})
	}
}

func TestSealKeepsUnencryptedPayloads(t *testing.T) {
	c := newCipher(t, suites[0])
	m, inner := authMessage()
	m.Exchange = message.IKESAInit // e.g. IKE_INTERMEDIATE-like layouts
	m.Payloads = []message.Payload{&message.Notify{NotifyType: message.Cookie, Data: []byte{1, 2, 3}}}
	b, err := c.Seal(m, inner)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := message.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Payloads) != 2 || pm.Payloads[0].Type() != message.PayloadNotify {
		t.Fatalf("payloads %v", pm.Payloads)
	}
	if _, err := c.Open(b, pm); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		enc   sa.EncAlg
		ek    int
		integ sa.IntegAlg
		ik    int
	}{
		{"GCM without salt", sa.EncAESGCM16, 16, sa.IntegNone, 0},
		{"GCM with integrity", sa.EncAESGCM16, 20, sa.IntegHMACSHA256128, 32},
		{"CBC without integrity", sa.EncAESCBC, 16, sa.IntegNone, 0},
		{"CBC short integrity key", sa.EncAESCBC, 16, sa.IntegHMACSHA256128, 16},
		{"CBC odd key", sa.EncAESCBC, 17, sa.IntegHMACSHA256128, 32},
		{"NULL", sa.EncNull, 0, sa.IntegHMACSHA256128, 32},
	}
	for _, tt := range tests {
		if _, err := New(tt.enc, make([]byte, tt.ek), tt.integ, make([]byte, tt.ik)); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// strongSwanSuites are the IKE proposals of the captures in testdata/ike.
var strongSwanSuites = map[string]suite{
	"strongswan-gcm":    {sa.EncAESGCM16, 128, sa.IntegNone},
	"strongswan-cbc":    {sa.EncAESCBC, 256, sa.IntegHMACSHA256128},
	"strongswan-ecp":    {sa.EncAESGCM16, 256, sa.IntegNone},
	"strongswan-chacha": {sa.EncChaCha20Poly1305, 256, sa.IntegNone},
}

// TestOpenStrongSwan opens every encrypted message strongSwan 5.9.8
// exchanged, with the SK_e/SK_a keys charon logged, and checks what the
// IKE_AUTH exchange carries.
func TestOpenStrongSwan(t *testing.T) {
	for name, s := range strongSwanSuites {
		t.Run(name, func(t *testing.T) {
			c, err := ikecap.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			key := func(n string) []byte {
				if s.integ == sa.IntegNone && strings.HasPrefix(n, "Sk_a") {
					return nil
				}
				k, err := c.Key(n)
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			fromI, err := New(s.enc, key("Sk_ei secret"), s.integ, key("Sk_ai secret"))
			if err != nil {
				t.Fatal(err)
			}
			fromR, err := New(s.enc, key("Sk_er secret"), s.integ, key("Sk_ar secret"))
			if err != nil {
				t.Fatal(err)
			}
			// Compare addresses only: the exchange moves from port 500 to 4500.
			initiator := strings.Fields(c.Messages[0].Src)[0]
			opened := 0
			for i, cm := range c.Messages {
				m, err := message.Parse(cm.Data)
				if err != nil {
					t.Fatal(err)
				}
				if m.Exchange == message.IKESAInit {
					continue
				}
				ci := fromR
				if strings.Fields(cm.Src)[0] == initiator {
					ci = fromI
				}
				ps, err := ci.Open(cm.Data, m)
				if err != nil {
					t.Fatalf("message %d (%v): %v", i, m.Exchange, err)
				}
				opened++
				if m.Exchange != message.IKEAuth {
					continue
				}
				var id *message.ID
				var auth *message.Auth
				var tsi, tsr *message.TrafficSelectors
				for _, p := range ps {
					switch p := p.(type) {
					case *message.ID:
						// A request may name the wanted responder in IDr too.
						if p.Responder == (m.Flags&message.FlagResponse != 0) {
							id = p
						}
					case *message.Auth:
						auth = p
					case *message.TrafficSelectors:
						if p.Responder {
							tsr = p
						} else {
							tsi = p
						}
					}
				}
				if id == nil || auth == nil || tsi == nil || tsr == nil {
					t.Fatalf("IKE_AUTH message %d lacks ID, AUTH or TS: %v", i, ps)
				}
				wantID, wantAuth := "gw-left", key("AUTH = prf(prf(secret, keypad), octets)")
				if m.Flags&message.FlagResponse != 0 {
					wantID, wantAuth = "gw-right", key("AUTH = prf(prf(secret, keypad), octets)#2")
				}
				if string(id.Data) != wantID || id.IDType != message.IDFQDN || !bytes.Equal(auth.Data, wantAuth) {
					t.Errorf("IKE_AUTH message %d: ID %v %q, AUTH %x", i, id.IDType, id.Data, auth.Data)
				}
				if got := tsi.Selectors[0].Start.String() + "-" + tsr.Selectors[0].Start.String(); got != "10.1.0.0-10.2.0.0" {
					t.Errorf("IKE_AUTH message %d: TSi-TSr %s", i, got)
				}
			}
			if opened < 4 {
				t.Errorf("opened only %d messages", opened)
			}
		})
	}
}

func TestFragments(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			c := newCipher(t, s)
			m, inner := authMessage()
			inner = append(inner, &message.Cert{Encoding: 4, Data: bytes.Repeat([]byte{0x30}, 1500)})
			frags, err := c.SealFragments(m, inner, 576)
			if err != nil {
				t.Fatal(err)
			}
			if len(frags) < 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			var r Reassembly
			// Deliver in reverse, with one duplicate.
			order := []int{len(frags) - 1}
			for i := len(frags) - 1; i >= 0; i-- {
				order = append(order, i)
			}
			for n, i := range order {
				b := frags[i]
				if len(b) > 576 {
					t.Fatalf("fragment %d is %d bytes", i+1, len(b))
				}
				pm, err := message.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				f, plain, err := c.OpenFragment(b, pm)
				if err != nil {
					t.Fatal(err)
				}
				done, err := r.Add(f, plain)
				if err != nil {
					t.Fatal(err)
				}
				if done != (n == len(order)-1) {
					t.Fatalf("complete=%v after %d of %d", done, n+1, len(order))
				}
			}
			got, err := r.Payloads()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, inner) {
				t.Fatal("reassembled payloads differ")
			}
		})
	}
	var r Reassembly
	if _, err := r.Add(&message.Fragment{Number: 2, Total: 1}, nil); err == nil {
		t.Error("fragment 2 of 1 accepted")
	}
	if _, err := r.Add(&message.Fragment{Number: 1, Total: MaxFragments + 1}, nil); err == nil {
		t.Error("too many fragments accepted")
	}
}

// FuzzOpen: nothing a peer sends makes Open panic.
func FuzzOpen(f *testing.F) {
	ciphers := []*Cipher{newCipher(f, suites[0]), newCipher(f, suites[4])}
	for _, c := range ciphers {
		m, inner := authMessage()
		b, err := c.Seal(m, inner)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := message.Parse(b)
		if err != nil {
			return
		}
		for _, c := range ciphers {
			c.Open(b, m)
			c.OpenFragment(b, m)
		}
	})
}

// TestResealStrongSwan re-encrypts the payloads of each of strongSwan's
// IKE_AUTH messages with the IV strongSwan chose and expects its datagram
// byte for byte: same padding length, same AAD coverage, same cipher
// output (for CBC up to the last block, whose padding strongSwan
// randomizes).
func TestResealStrongSwan(t *testing.T) {
	for name, s := range strongSwanSuites {
		t.Run(name, func(t *testing.T) {
			c, err := ikecap.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			for i, dir := range []string{"i", "r"} {
				raw := c.Messages[2+i].Data
				ek, _ := c.Key("Sk_e" + dir + " secret")
				ak, _ := c.Key("Sk_a" + dir + " secret")
				ci, err := New(s.enc, ek, s.integ, ak)
				if err != nil {
					t.Fatal(err)
				}
				m, err := message.Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				inner, err := ci.Open(raw, m)
				if err != nil {
					t.Fatal(err)
				}
				ci.fixedIV = m.Payloads[0].(*message.Encrypted).Data[:s.enc.IVSize()]
				outer := *m
				outer.Payloads = nil
				b, err := ci.Seal(&outer, inner)
				if err != nil {
					t.Fatal(err)
				}
				if s.enc == sa.EncAESCBC {
					// strongSwan fills CBC padding with random bytes: the
					// last block and the ICV differ, all before must not.
					cut := len(raw) - s.integ.ICVSize() - 16
					b, raw = b[:cut], raw[:cut]
				}
				if !bytes.Equal(b, raw) {
					t.Errorf("IKE_AUTH %s: resealed\n%x\nstrongSwan\n%x", dir, b, raw)
				}
			}
		})
	}
}
