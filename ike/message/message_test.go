package message

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/isle-ipsec/isle/ike/internal/ikecap"
	"github.com/isle-ipsec/isle/sa"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// everyPayload is a message that carries one of each payload type the
// codec knows, in an order no real exchange uses but the codec accepts.
func everyPayload() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: IKEAuth,
			Flags: FlagInitiator, MessageID: 7},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{
				{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
					EncTransform(sa.EncAESGCM16, 256), PRFTransform(sa.PRFHMACSHA256), KETransform(sa.DHCurve25519)}},
				{Number: 2, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{
					EncTransform(sa.EncAESCBC, 128), IntegTransform(sa.IntegHMACSHA256128), ESNTransform(false),
					{Type: sa.TransformENCR, ID: 99, Attributes: []Attribute{{Type: 17, Value: []byte("tlv")}}}}},
			}},
			&KE{Group: sa.DHECP256, Data: bytes.Repeat([]byte{0xab}, 64)},
			&ID{IDType: IDFQDN, Data: []byte("gw-left")},
			&ID{Responder: true, IDType: IDIPv4, Data: []byte{198, 18, 0, 2}},
			&Cert{Encoding: 4, Data: []byte{0x30, 0x03, 1, 2, 3}},
			&CertReq{Encoding: 4, Data: bytes.Repeat([]byte{7}, 20)},
			&Auth{Method: AuthSharedKeyMIC, Data: bytes.Repeat([]byte{9}, 32)},
			&Nonce{Data: bytes.Repeat([]byte{5}, 32)},
			&Notify{NotifyType: NATDetectionSourceIP, Data: bytes.Repeat([]byte{1}, 20)},
			&Notify{Protocol: ProtoESP, SPI: []byte{0, 0, 1, 0}, NotifyType: RekeySA},
			&Notify{NotifyType: InvalidKEPayload, Data: []byte{0, 19}},
			&Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
			&Delete{Protocol: ProtoIKE},
			&VendorID{Data: []byte("isle")},
			&TrafficSelectors{Selectors: []TrafficSelector{
				{StartPort: 0, EndPort: 65535, Start: netip.MustParseAddr("10.1.0.0"), End: netip.MustParseAddr("10.1.0.255")},
				{IPProtocol: 6, StartPort: 80, EndPort: 80, Start: netip.MustParseAddr("2001:db8::"), End: netip.MustParseAddr("2001:db8::ffff")},
			}},
			&TrafficSelectors{Responder: true, Selectors: []TrafficSelector{
				{EndPort: 65535, Start: netip.MustParseAddr("10.2.0.0"), End: netip.MustParseAddr("10.2.0.255")}}},
			&Config{CfgType: CfgRequest, Attributes: []ConfigAttribute{{Type: 1}, {Type: 3, Value: []byte{8, 8, 8, 8}}}},
			&EAP{Data: []byte{1, 2, 0, 5, 1}},
			&Encrypted{NextPayload: PayloadIDi, Data: bytes.Repeat([]byte{0xee}, 40)},
		},
	}
}

func TestRoundTripEveryPayload(t *testing.T) {
	m := everyPayload()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal(m)): %v", err)
	}
	m.Length, m.NextPayload = uint32(len(b)), PayloadSA
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
	}
	b2, err := got.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("second marshal differs (err %v)", err)
	}
}

func TestRoundTripFragment(t *testing.T) {
	for _, f := range []*Fragment{
		{Number: 1, Total: 3, NextPayload: PayloadIDi, Data: []byte{1, 2, 3}},
		{Number: 3, Total: 3, Data: []byte{4, 5}},
	} {
		m := &Message{Header: Header{SPIi: 1, SPIr: 2, Exchange: IKEAuth, Flags: FlagResponse, MessageID: 1},
			Payloads: []Payload{f}}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Payloads, m.Payloads) {
			t.Errorf("fragment %d: got %#v", f.Number, got.Payloads[0])
		}
	}
}

func TestInnerPayloadsRoundTrip(t *testing.T) {
	inner := []Payload{
		&ID{IDType: IDFQDN, Data: []byte("gw-left")},
		&Auth{Method: AuthSharedKeyMIC, Data: make([]byte, 32)},
		&Notify{NotifyType: InitialContact},
	}
	first, b, err := MarshalPayloads(inner)
	if err != nil {
		t.Fatal(err)
	}
	if first != PayloadIDi {
		t.Fatalf("first = %v", first)
	}
	got, err := ParsePayloads(first, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, inner) {
		t.Fatalf("got %#v", got)
	}
	// Encryption does not nest.
	_, b, _ = MarshalPayloads([]Payload{&Nonce{Data: make([]byte, 16)}})
	b[0] = byte(PayloadSK)
	b = append(b, 0, 0, 0, 4)
	if _, err := ParsePayloads(PayloadNonce, b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("SK inside SK: err %v", err)
	}
}

// TestStrongSwanCaptures parses every IKE message a real strongSwan 5.9.8
// exchanged in testdata/ike and checks that marshalling reproduces the
// datagram byte for byte.
func TestStrongSwanCaptures(t *testing.T) {
	caps, err := ikecap.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caps {
		for i, cm := range c.Messages {
			m, err := Parse(cm.Data)
			if err != nil {
				t.Errorf("%s message %d: %v", c.Name, i, err)
				continue
			}
			b, err := m.Marshal()
			if err != nil {
				t.Errorf("%s message %d: marshal: %v", c.Name, i, err)
				continue
			}
			if !bytes.Equal(b, cm.Data) {
				t.Errorf("%s message %d: re-marshalled bytes differ\n got %x\nwant %x", c.Name, i, b, cm.Data)
			}
		}
	}
}

// TestStrongSwanInitRequest checks the decoded fields of strongSwan's
// IKE_SA_INIT request against what tshark's dissector shows for it.
func TestStrongSwanInitRequest(t *testing.T) {
	c, err := ikecap.Load("strongswan-gcm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(c.Messages[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.SPIi != 0xf3d3427bd4f72549 || m.SPIr != 0 || m.Exchange != IKESAInit || m.Flags != FlagInitiator ||
		m.MessageID != 0 || m.Length != 232 {
		t.Errorf("header %+v", m.Header)
	}
	var types []PayloadType
	var notifies []NotifyType
	for _, p := range m.Payloads {
		types = append(types, p.Type())
		if n, ok := p.(*Notify); ok {
			notifies = append(notifies, n.NotifyType)
		}
	}
	wantTypes := []PayloadType{PayloadSA, PayloadKE, PayloadNonce, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("payloads %v, want %v", types, wantTypes)
	}
	wantN := []NotifyType{NATDetectionSourceIP, NATDetectionDestinationIP, IKEv2FragmentationSupported, SignatureHashAlgorithms, RedirectSupported}
	if !reflect.DeepEqual(notifies, wantN) {
		t.Errorf("notifies %v, want %v", notifies, wantN)
	}
	wantSA := &SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
		EncTransform(sa.EncAESGCM16, 128), PRFTransform(sa.PRFHMACSHA256), KETransform(sa.DHCurve25519)}}}}
	if !reflect.DeepEqual(m.Payloads[0], wantSA) {
		t.Errorf("SA %#v", m.Payloads[0])
	}
	if bits, ok := wantSA.Proposals[0].Transforms[0].KeyLength(); !ok || bits != 128 {
		t.Errorf("KeyLength() = %d, %v", bits, ok)
	}
	ke := m.Payloads[1].(*KE)
	if ke.Group != sa.DHCurve25519 || !bytes.Equal(ke.Data, mustHex(t, "1150b7cd86acea0fd93d2e42fd9093dde81f9876b5bbf341ef1054872a9a6553")) {
		t.Errorf("KE %v %x", ke.Group, ke.Data)
	}
	if n := m.Payloads[2].(*Nonce); !bytes.Equal(n.Data, mustHex(t, "260b26620d108a7369c82a8ef5136a14c81cff8d4fadd4419ae2bd637b32bb98")) {
		t.Errorf("nonce %x", n.Data)
	}
	// The IKE_AUTH request is encrypted: only the SK framing is visible.
	auth, err := Parse(c.Messages[2].Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth.Payloads) != 1 {
		t.Fatalf("IKE_AUTH payloads %v", auth.Payloads)
	}
	sk, ok := auth.Payloads[0].(*Encrypted)
	if !ok || sk.NextPayload != PayloadIDi || len(sk.Data) != len(c.Messages[2].Data)-HeaderSize-4 {
		t.Errorf("IKE_AUTH SK payload %#v", auth.Payloads[0])
	}
}

func validInit(t *testing.T) []byte {
	c, err := ikecap.Load("strongswan-gcm")
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), c.Messages[0].Data...)
}

func TestParseRejects(t *testing.T) {
	// Offsets into strongSwan's IKE_SA_INIT request: header 0..27, SA
	// payload at 28 (length 40), its proposal at 32, transforms from 40;
	// KE at 68, Nonce at 108.
	tests := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"short header", func(b []byte) []byte { return b[:27] }},
		{"length field too large", func(b []byte) []byte { b[27]++; return b }},
		{"truncated datagram", func(b []byte) []byte { return b[:len(b)-1] }},
		{"trailing byte", func(b []byte) []byte { b = append(b, 0); b[27]++; return b }},
		{"payload length below 4", func(b []byte) []byte { b[30], b[31] = 0, 3; return b }},
		{"payload overruns message", func(b []byte) []byte { b[30], b[31] = 0xff, 0xff; return b }},
		{"proposal overruns SA", func(b []byte) []byte { b[35] += 4; return b }},
		{"proposal last-substruc 1", func(b []byte) []byte { b[32] = 1; return b }},
		{"more proposals announced", func(b []byte) []byte { b[32] = 2; return b }},
		{"transform count too high", func(b []byte) []byte { b[39]++; return b }},
		{"transform count too low", func(b []byte) []byte { b[39]--; return b }},
		{"IKE proposal SPI size 4", func(b []byte) []byte { b[38] = 4; return b }},
		{"transform length below 8", func(b []byte) []byte { b[42], b[43] = 0, 4; return b }},
		{"nonce too short", func(b []byte) []byte {
			m, _ := Parse(b)
			m.Payloads[2] = &Nonce{Data: make([]byte, 15)}
			out, _ := m.Marshal()
			return out
		}},
		{"SK not last", func(b []byte) []byte {
			m, _ := Parse(b)
			out, _ := m.Marshal()
			// make the last Notify announce an SK payload that is followed by more bytes
			skAt := len(out)
			out = append(out, byte(PayloadNonce), 0, 0, 4)
			out = append(out, 0, 0, 0, 20)
			out = append(out, make([]byte, 16)...)
			last := lastPayloadOffset(out[:skAt])
			out[last] = byte(PayloadSK)
			setLen(out)
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(validInit(t))
			if _, err := Parse(b); err == nil {
				t.Fatalf("Parse accepted %x", b)
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v is not ErrMalformed", err)
			}
		})
	}
	b := validInit(t)
	b[17] = 0x30
	var ve *InvalidMajorVersionError
	if _, err := Parse(b); !errors.As(err, &ve) || ve.Major != 3 {
		t.Fatalf("major version 3: err %v", err)
	}
}

// lastPayloadOffset walks a well-formed message to its last payload.
func lastPayloadOffset(b []byte) int {
	off := HeaderSize
	for {
		next := b[off]
		l := int(b[off+2])<<8 | int(b[off+3])
		if next == 0 || off+l >= len(b) {
			return off
		}
		off += l
	}
}

func setLen(b []byte) {
	n := len(b)
	b[24], b[25], b[26], b[27] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

func TestUnknownPayloads(t *testing.T) {
	b := validInit(t)
	last := lastPayloadOffset(b)
	b[last] = 200 // the last Notify now announces a payload of type 200
	b = append(b, 0, 0, 0, 6, 0xaa, 0xbb)
	setLen(b)
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("non-critical unknown payload: %v", err)
	}
	if len(m.Payloads) != 8 {
		t.Fatalf("unknown payload not skipped: %d payloads", len(m.Payloads))
	}
	b[len(b)-5] = 0x80 // critical bit
	var ce *UnsupportedCriticalPayloadError
	if _, err := Parse(b); !errors.As(err, &ce) || ce.Type != 200 {
		t.Fatalf("critical unknown payload: err %v", err)
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		ps   []Payload
	}{
		{"SK not last", []Payload{&Encrypted{NextPayload: PayloadIDi}, &Nonce{Data: make([]byte, 16)}}},
		{"TS mixed families", []Payload{&TrafficSelectors{Selectors: []TrafficSelector{
			{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("::1")}}}}},
		{"TS without address", []Payload{&TrafficSelectors{Selectors: []TrafficSelector{{}}}}},
		{"delete ESP SPI size", []Payload{&Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2}}}}},
		{"TV attribute of 3 bytes", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE,
			Transforms: []Transform{{Type: sa.TransformENCR, ID: 12, Attributes: []Attribute{{Type: 14, TV: true, Value: []byte{1, 2, 3}}}}}}}}}},
		{"payload too long", []Payload{&VendorID{Data: make([]byte, 70000)}}},
	}
	for _, tt := range tests {
		m := &Message{Header: Header{Exchange: IKEAuth}, Payloads: tt.ps}
		if b, err := m.Marshal(); err == nil {
			t.Errorf("%s: marshalled %x", tt.name, b)
		}
	}
}

// FuzzParseMessage: no input panics, and whatever parses re-marshals to
// bytes that parse to the same structure.
func FuzzParseMessage(f *testing.F) {
	if caps, err := ikecap.All(); err == nil {
		for _, c := range caps {
			for _, m := range c.Messages {
				f.Add(m.Data)
			}
		}
	}
	if b, err := everyPayload().Marshal(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-marshalled message does not parse: %v", err)
		}
		// Length and NextPayload are wire facts: skipped unknown payloads change them.
		m.Length, m2.Length = 0, 0
		m.NextPayload, m2.NextPayload = 0, 0
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n%#v\n%#v", m, m2)
		}
	})
}

// FuzzParsePayloads covers the decrypted content of SK payloads.
func FuzzParsePayloads(f *testing.F) {
	first, b, _ := MarshalPayloads(everyPayload().Payloads[:17])
	f.Add(uint8(first), b)
	f.Fuzz(func(t *testing.T, first uint8, b []byte) {
		ps, err := ParsePayloads(PayloadType(first), b)
		if err != nil {
			return
		}
		ft, out, err := MarshalPayloads(ps)
		if err != nil {
			t.Fatalf("parsed payloads do not marshal: %v", err)
		}
		ps2, err := ParsePayloads(ft, out)
		if err != nil || !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("round trip: err %v\n%#v\n%#v", err, ps, ps2)
		}
	})
}
