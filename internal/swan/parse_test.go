package swan

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysFromFile(t *testing.T, path string) []ChildKeys {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := ParseChildKeys(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return keys
}

// The testdata logs are from two charons of this harness (gl initiating)
// with one CHILD_SA rekey started by gl: each shows net{2} and net{3}.
func TestParseChildKeysRecorded(t *testing.T) {
	left := keysFromFile(t, "testdata/charon-left-rekey.log")
	right := keysFromFile(t, "testdata/charon-right-rekey.log")
	if len(left) != 2 || len(right) != 2 {
		t.Fatalf("got %d and %d CHILD_SAs, want 2 each", len(left), len(right))
	}
	// Values read off the log by hand.
	want := ChildKeys{
		Name: "net", UniqueID: 2, Initiator: true, EncrAlg: "AES_GCM_16",
		SPIIn: 0x9751fc2b, SPIOut: 0xd4e63b24,
		EncrIn:  mustHex(t, "26 FF C2 A2 87 0C A8 75 43 FF 6A 3B 70 77 89 C7 C5 6D EA 85"),
		EncrOut: mustHex(t, "9F 28 69 17 DF 83 66 3A E0 31 FF 44 3E 61 76 D8 FE 47 54 13"),
	}
	if !reflect.DeepEqual(left[0], want) {
		t.Errorf("left net{2}:\n got %+v\nwant %+v", left[0], want)
	}
	if left[1].UniqueID != 3 || !left[1].Initiator || left[1].SPIIn != 0xd0001958 || left[1].SPIOut != 0x7674c5b9 {
		t.Errorf("left net{3} (rekey gl started): %+v", left[1])
	}
	// The rekey's outbound half is reported by another thread on the right.
	if right[1].UniqueID != 3 || right[1].Initiator || right[1].SPIIn != 0x7674c5b9 || right[1].SPIOut != 0xd0001958 {
		t.Errorf("right net{3}: %+v", right[1])
	}
	for i := range left {
		l, r := left[i], right[i]
		if l.Initiator == r.Initiator {
			t.Errorf("CHILD_SA {%d}: both sides initiator=%v", l.UniqueID, l.Initiator)
		}
		if l.SPIOut != r.SPIIn || l.SPIIn != r.SPIOut {
			t.Errorf("CHILD_SA {%d}: SPIs do not pair: %x/%x vs %x/%x", l.UniqueID, l.SPIIn, l.SPIOut, r.SPIIn, r.SPIOut)
		}
		if !bytes.Equal(l.EncrOut, r.EncrIn) || !bytes.Equal(l.EncrIn, r.EncrOut) || len(l.EncrOut) != 20 {
			t.Errorf("CHILD_SA {%d}: keys do not pair", l.UniqueID)
		}
	}
}

func TestParseChildKeysIntegrityAndErrors(t *testing.T) {
	log := `10:00:00 07[ENC] parsed CREATE_CHILD_SA request 5 [ SA No TSi TSr ]
10:00:00 07[CHD] CHILD_SA cbc{9} state change: CREATED => INSTALLING
10:00:00 07[CHD]   using AES_CBC for encryption
10:00:00 07[CHD]   using HMAC_SHA2_256_128 for integrity
10:00:00 08[NET] unrelated line from another thread
10:00:00 07[CHD] encryption initiator key => 16 bytes @ 0x1
10:00:00 07[CHD]    0: 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F  ................
10:00:00 07[CHD] encryption responder key => 16 bytes @ 0x2
10:00:00 07[CHD]    0: 10 11 12 13 14 15 16 17 18 19 1A 1B 1C 1D 1E 1F  ................
10:00:00 07[CHD] integrity initiator key => 2 bytes @ 0x3
10:00:00 07[CHD]    0: AA BB                                            ..
10:00:00 07[CHD] integrity responder key => 2 bytes @ 0x4
10:00:00 07[CHD]    0: CC DD                                            ..
10:00:00 07[IKE] CHILD_SA cbc{9} established with SPIs 0000abcd_i 12345678_o and TS 10.1.0.0/24 === 10.2.0.0/24
`
	keys, err := ParseChildKeys(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []ChildKeys{{
		Name: "cbc", UniqueID: 9, Initiator: false, EncrAlg: "AES_CBC", IntegAlg: "HMAC_SHA2_256_128",
		SPIIn: 0xabcd, SPIOut: 0x12345678,
		// Responder: inbound traffic is the initiator's.
		EncrIn: mustHex(t, "000102030405060708090A0B0C0D0E0F"), EncrOut: mustHex(t, "101112131415161718191A1B1C1D1E1F"),
		IntegIn: []byte{0xaa, 0xbb}, IntegOut: []byte{0xcc, 0xdd},
	}}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("got %+v\nwant %+v", keys, want)
	}

	for name, bad := range map[string]string{
		"dump cut short": "1 07[CHD] CHILD_SA x{1} state change: CREATED => INSTALLING\n" +
			"1 07[CHD] encryption initiator key => 20 bytes @ 0x1\n1 07[CHD]    0: 00 01\n1 07[CHD] adding inbound ESP SA\n",
		"huge key": "1 07[CHD] CHILD_SA x{1} state change: CREATED => INSTALLING\n" +
			"1 07[CHD] encryption initiator key => 99999999 bytes @ 0x1\n",
	} {
		if _, err := ParseChildKeys(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseChildKeys(f *testing.F) {
	for _, p := range []string{"testdata/charon-left-rekey.log", "testdata/charon-right-rekey.log"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, log []byte) {
		keys, err := ParseChildKeys(bytes.NewReader(log))
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.SPIIn == 0 || k.EncrIn == nil {
				t.Fatalf("incomplete CHILD_SA returned: %+v", k)
			}
		}
	})
}

func TestViciMessageRoundTrip(t *testing.T) {
	msg := &Section{Entries: []Entry{
		{Name: "noblock", Value: "yes"},
		{Name: "s2s", Section: &Section{Entries: []Entry{
			{Name: "local-id", Value: "C=CH, O=Acme, CN=gw-a"},
			{Name: "child-sas", Section: &Section{Entries: []Entry{
				{Name: "net-1", Section: &Section{Entries: []Entry{
					{Name: "spi-in", Value: "c1234567"},
					{Name: "local-ts", IsList: true, List: []string{"10.1.0.0/24", "fd00:1::/64"}},
					{Name: "empty", IsList: true},
				}}},
			}}},
		}}},
	}}
	b, err := encodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msg) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, msg)
	}
	if id := got.Sub("s2s").Get("local-id"); id != "C=CH, O=Acme, CN=gw-a" {
		t.Errorf("a DN with spaces came back as %q", id)
	}
	for name, bad := range map[string][]byte{
		"unclosed section": {elemSectionStart, 1, 'a'},
		"stray end":        {elemSectionEnd},
		"item outside":     {elemListItem, 0, 0},
		"value in list":    {elemListStart, 1, 'l', elemKeyValue, 1, 'k', 0, 0},
		"short value":      {elemKeyValue, 1, 'k', 0, 5, 'x'},
		"unknown type":     {9},
	} {
		if _, err := decodeMessage(bad); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func FuzzViciPacket(f *testing.F) {
	msg, _ := encodeMessage(&Section{Entries: []Entry{
		{Name: "a", Value: "b"},
		{Name: "s", Section: &Section{Entries: []Entry{{Name: "l", IsList: true, List: []string{"x"}}}}},
	}})
	f.Add(append([]byte{pktEvent, 7, 'l', 'i', 's', 't', '-', 's', 'a'}, msg...))
	f.Add(append([]byte{pktCmdResponse}, msg...))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		typ, _, m, err := decodePacket(pkt)
		if err != nil {
			return
		}
		// What decodes must encode back to the same message bytes.
		b, err := encodeMessage(m)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := decodeMessage(b)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("type %d: re-decoding differs: %v", typ, err)
		}
		if typ == pktEvent || typ == pktCmdResponse {
			for _, e := range m.Sections() {
				parseIKESA(e.Name, e.Section) // must not panic
			}
		}
	})
}

func TestRenderConfig(t *testing.T) {
	yes := false
	cfg := Config{
		Connections: []Connection{{
			Name: "s2s", Version: 2, LocalAddrs: []string{"198.18.0.1"}, RemoteAddrs: []string{"198.18.0.2"},
			Proposals: []string{"aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"}, Encap: true, Mobike: &yes,
			Local:  Auth{Auth: "pubkey", ID: `C=CH, O="Acme", CN=gw-a`, Certs: []string{"/d/x509/a.pem"}},
			Remote: Auth{Auth: "pubkey", ID: "%any", CACerts: []string{"ca.pem"}},
			Children: []Child{{Name: "net", LocalTS: []string{"10.1.0.0/24", "fd00:1::/64"}, RemoteTS: []string{"10.2.0.0/24"},
				ESPProposals: []string{"aes128gcm16"}, StartAction: "none", Options: map[string]string{"dpd_action": "clear", "close_action": "none"}}},
		}},
		Secrets: []Secret{{Type: "ike", IDs: []string{"gw-a", "gw-b"}, Secret: `p"s\k`}, {Type: "private", File: "/d/private/a.key"}},
	}
	got, err := cfg.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"connections {\n  s2s {\n    version = \"2\"\n",
		`    local_addrs = "198.18.0.1"`,
		`    proposals = "aes128gcm16-prfsha256-x25519,aes256-sha256-modp2048"`,
		`    encap = "yes"`,
		`    mobike = "no"`,
		`      id = "C=CH, O=\"Acme\", CN=gw-a"`,
		`      local_ts = "10.1.0.0/24,fd00:1::/64"`,
		"        close_action = \"none\"\n        dpd_action = \"clear\"\n", // sorted
		"  ike-1 {\n    id-1 = \"gw-a\"\n    id-2 = \"gw-b\"\n    secret = \"p\\\"s\\\\k\"\n",
		`    file = "/d/private/a.key"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "{") != strings.Count(got, "}") {
		t.Errorf("unbalanced braces:\n%s", got)
	}
	if _, err := (&Config{Connections: []Connection{{}}}).Render(); err == nil {
		t.Error("a connection without a name rendered")
	}
}
