package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/sa"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func i64(v int64) *int64 { return &v }

// sample is a gateway with every kind of entry the renderer knows.
func sample() *Status {
	return &Status{
		Connections: []Connection{
			{Name: "office-b", IKESAs: []IKESA{{
				State: "ESTABLISHED", Local: "198.18.0.1:4500", Remote: "198.18.0.2:4500",
				LocalID: "gw-a.example.net", RemoteID: "gw-b.example.net", Initiator: true,
				SPIi: "0102030405060708", SPIr: "1112131415161718",
				Proposal:     "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519",
				EstablishedS: 12, RekeyInS: 14388,
				Children: []Child{
					{Name: "lan", State: "INSTALLED", Protocol: "ESP", Mode: "TUNNEL", Encap: true,
						Proposal: "AES_GCM_16_128", SPIIn: "c1a2b3d4", SPIOut: "c5a6b7d8",
						BytesIn: 840, PacketsIn: 10, BytesOut: 1234567, PacketsOut: 2000,
						LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24", "10.3.0.0/24[tcp/443]"},
						RekeyInS: 3540, InstalledS: 60, LastInS: i64(1), LastOutS: i64(0), ReplayWindow: 64,
						Drops: map[string]uint64{"replay": 2, "auth_failed": 5, "dummy": 2}},
					{Name: "mgmt", State: "INSTALLED", Protocol: "AH", Mode: "TUNNEL",
						Proposal: "HMAC_SHA2_256_128", SPIIn: "00001234", SPIOut: "00005678",
						LocalTS: []string{"192.0.2.1/32"}, RemoteTS: []string{"192.0.2.2/32"}, InstalledS: 90061},
				},
			}}, Traps: []Trap{{Name: "dmz", LocalTS: []string{"10.1.9.0/24"}, RemoteTS: []string{"10.2.9.0/24", "10.3.9.0/24"},
				Reason: "close_action"}}},
			{Name: "branch", IKESAs: []IKESA{{
				State: "CONNECTING", Local: "[2001:db8::1]:500", Remote: "[2001:db8::2]:500",
				SPIi: "a1a2a3a4a5a6a7a8", SPIr: "0000000000000000",
			}}},
			{Name: "idle", Traps: []Trap{{Name: "lan", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"},
				Reason: "start_action"}}},
		},
		Manual: []ManualSA{{Local: "198.18.0.1", Remote: "198.18.0.2", Child: Child{
			Name: "lab", State: "INSTALLED", Protocol: "ESP", Mode: "TUNNEL",
			Proposal: "AES_CBC_256/HMAC_SHA2_256_128/ESN", SPIIn: "00002001", SPIOut: "00001001",
			BytesIn: 1, PacketsIn: 1, LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"},
			InstalledS: 3600, LastInS: i64(7200), ReplayWindow: 1024}}},
		Gateway: &Gateway{Version: "dev", Interface: "isle0", UptimeS: 3600,
			Drops: map[string]uint64{"no_policy": 3, "replay": 2, "auth_failed": 5, "malformed": 0}},
	}
}

// TestTextGolden compares the text layout with testdata/*.golden byte for
// byte; go test ./internal/status -run TestTextGolden -update rewrites them.
func TestTextGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   *Status
	}{
		{"full", sample()},
		{"empty", &Status{}},
		{"manual-only", &Status{Manual: sample().Manual}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, tt.st); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}

// TestTextLines checks, independently of the golden file, the lines an
// operator greps for.
func TestTextLines(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"office-b: ESTABLISHED, IKEv2, 0102030405060708_i* 1112131415161718_r\n",
		"  local  'gw-a.example.net' @ 198.18.0.1[4500]\n",
		"  remote 'gw-b.example.net' @ 198.18.0.2[4500]\n",
		"  established 12s ago, rekeying in 3h59m48s\n",
		"  lan: INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16_128\n",
		"    installed 1m ago, rekeying in 59m, replay window 64\n",
		"    in  c1a2b3d4,        840 bytes,       10 packets,    1s ago\n",
		"    out c5a6b7d8,    1234567 bytes,     2000 packets,    0s ago\n",
		"    remote 10.2.0.0/24 10.3.0.0/24[tcp/443]\n",
		"    dropped auth_failed 5, dummy 2, replay 2\n",
		"  mgmt: INSTALLED, TUNNEL, AH:HMAC_SHA2_256_128\n",
		"    installed 1d1h ago, replay window off\n",
		"branch: CONNECTING, IKEv2, a1a2a3a4a5a6a7a8_i 0000000000000000_r*\n",
		"  local  2001:db8::1[500]\n",
		"idle: no IKE_SA\n  lan: TRAPPED (start_action), 10.1.0.0/24 === 10.2.0.0/24\n",
		"    remote 192.0.2.2/32\n  dmz: TRAPPED (close_action), 10.1.9.0/24 === 10.2.9.0/24 10.3.9.0/24\nbranch:",
		"lab: MANUAL, 198.18.0.1 === 198.18.0.2\n",
		"    in  00002001,          1 bytes,        1 packets,    2h ago\n",
		"dropped: auth_failed 5, no_policy 3, replay 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "malformed") {
		t.Errorf("zero counters must not be listed:\n%s", out)
	}
}

func TestDur(t *testing.T) {
	for _, tt := range []struct {
		s    int64
		want string
	}{
		{-5, "0s"}, {0, "0s"}, {59, "59s"}, {60, "1m"}, {61, "1m1s"}, {3600, "1h"},
		{3661, "1h1m1s"}, {14388, "3h59m48s"}, {86400, "1d"}, {90061, "1d1h"},
	} {
		if got := dur(tt.s); got != tt.want {
			t.Errorf("dur(%d) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// TestJSONContract checks every field name the configuration spec fixes
// for `isle status --json`, at the place it fixes it.
func TestJSONContract(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	conn := v["connections"].([]any)[0].(map[string]any)
	ike := conn["ike_sas"].([]any)[0].(map[string]any)
	child := ike["children"].([]any)[0].(map[string]any)
	need := func(where string, m map[string]any, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks %q: %v", where, k, m)
			}
		}
	}
	need("connection", conn, "name", "ike_sas")
	need("ike_sa", ike, "state", "local", "remote", "initiator", "spi_i", "spi_r", "proposal",
		"established_s", "rekey_in_s", "children")
	need("child", child, "name", "state", "protocol", "mode", "encap", "proposal", "spi_in", "spi_out",
		"bytes_in", "packets_in", "bytes_out", "packets_out", "local_ts", "remote_ts", "rekey_in_s")
	if child["bytes_out"].(float64) != 1234567 || ike["initiator"] != true || child["encap"] != true {
		t.Errorf("values lost: %s", b)
	}
	trap := conn["traps"].([]any)[0].(map[string]any)
	need("trap", trap, "name", "local_ts", "remote_ts", "reason")
	if trap["reason"] != "close_action" || trap["name"] != "dmz" {
		t.Errorf("trap values lost: %v", trap)
	}
	if _, ok := v["connections"].([]any)[1].(map[string]any)["traps"]; ok {
		t.Errorf("a connection without traps lists them: %s", b)
	}
	manual := v["manual"].([]any)[0].(map[string]any)
	need("manual", manual, "name", "local", "remote", "spi_in", "spi_out", "proposal")

	// And back: nothing is lost in a round trip.
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(back)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("round trip changed the status:\n%s\n%s", b, again)
	}
	if !reflect.DeepEqual(back.Connections[0], sample().Connections[0]) || !reflect.DeepEqual(back.Manual, sample().Manual) {
		t.Errorf("round trip changed the status:\n%+v", back)
	}
}

// TestJSONEmptyLists: an idle gateway's lists are [], never null.
func TestJSONEmptyLists(t *testing.T) {
	st := Status{Connections: []Connection{{Name: "a", IKESAs: []IKESA{{State: "CONNECTING", Children: []Child{{Name: "c"}}}}},
		{Name: "b", Traps: []Trap{{Name: "t", Reason: "dpd_action"}}}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("null")) {
		t.Errorf("null in %s", b)
	}
	for _, want := range []string{`"manual":[]`, `"ike_sas":[]`, `"local_ts":[]`, `"remote_ts":[]`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if !bytes.Contains(b, []byte(`"traps":[{"name":"t","local_ts":[],"remote_ts":[],"reason":"dpd_action"}]`)) {
		t.Errorf("%s: a trap's selector lists must be []", b)
	}
	if bytes.Count(b, []byte(`"traps"`)) != 1 {
		t.Errorf("%s: traps must be omitted where there are none", b)
	}
	if st.Connections[1].IKESAs != nil || st.Connections[0].IKESAs[0].Children[0].LocalTS != nil || st.Connections[1].Traps[0].LocalTS != nil {
		t.Error("MarshalJSON changed the caller's status")
	}
	b, _ = json.Marshal(Status{})
	if string(b) != `{"connections":[],"manual":[]}` {
		t.Errorf("empty status: %s", b)
	}
}

func newSA(t *testing.T, c sa.Config) *sa.SA {
	t.Helper()
	s, err := sa.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestFillFromSAs(t *testing.T) {
	local := netip.MustParseAddrPort("198.18.0.1:4500")
	remote := netip.MustParseAddrPort("198.18.0.2:4500")
	key := make([]byte, 36)
	out := newSA(t, sa.Config{SPI: 0xc5a6b7d8, Protocol: sa.ProtoESP, Enc: sa.EncAESCBC, EncKey: key[:32],
		Integ: sa.IntegHMACSHA256128, IntegKey: key[:32], ESN: true, Encap: true, Local: local, Remote: remote})
	in := newSA(t, sa.Config{SPI: 0x00c1a2b3, Protocol: sa.ProtoESP, Inbound: true, Enc: sa.EncAESCBC, EncKey: key[:32],
		Integ: sa.IntegHMACSHA256128, IntegKey: key[:32], ESN: true, Encap: true, ReplayWindow: 128, Local: local, Remote: remote})
	in.CountIn(100)
	in.CountIn(50)
	in.CountDrop(sa.ReasonReplayed)
	out.CountDrop(sa.ReasonReplayed)
	out.CountDrop(sa.ReasonAuthFailed)

	var c Child
	now := time.Now().Add(90 * time.Second)
	c.FillFromSAs(in, out, now)
	if c.Protocol != "ESP" || c.Mode != "TUNNEL" || !c.Encap || c.Proposal != "AES_CBC_256/HMAC_SHA2_256_128/ESN" {
		t.Errorf("algorithms: %+v", c)
	}
	if c.SPIIn != "00c1a2b3" || c.SPIOut != "c5a6b7d8" || c.ReplayWindow != 128 {
		t.Errorf("SPIs/window: %+v", c)
	}
	if c.BytesIn != 150 || c.PacketsIn != 2 || c.BytesOut != 0 || c.PacketsOut != 0 {
		t.Errorf("counters: %+v", c)
	}
	if c.InstalledS < 89 || c.InstalledS > 92 {
		t.Errorf("installed %ds ago, want about 90", c.InstalledS)
	}
	if c.LastInS == nil || *c.LastInS < 88 || c.LastOutS != nil {
		t.Errorf("last use: in %v out %v", c.LastInS, c.LastOutS)
	}
	var names []string
	for k := range c.Drops {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(c.Drops) != 2 || c.Drops[sa.ReasonReplayed.String()] != 2 || c.Drops[sa.ReasonAuthFailed.String()] != 1 {
		t.Errorf("drops %v", c.Drops)
	}

	gcm := newSA(t, sa.Config{SPI: 0x1001, Protocol: sa.ProtoESP, Enc: sa.EncAESGCM16, EncKey: key[:20], Local: local, Remote: remote})
	ah := newSA(t, sa.Config{SPI: 0x1002, Protocol: sa.ProtoAH, Integ: sa.IntegHMACSHA512256, IntegKey: make([]byte, 64), Local: local, Remote: remote})
	for _, tt := range []struct {
		s    *sa.SA
		want string
	}{{gcm, "AES_GCM_16_128"}, {ah, "HMAC_SHA2_512_256"}} {
		if got := ProposalOf(tt.s); got != tt.want {
			t.Errorf("ProposalOf(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
	if got, want := ChildProposal(gcm, sa.DHCurve25519), "AES_GCM_16_128/CURVE_25519"; got != want {
		t.Errorf("ChildProposal with PFS = %q, want %q", got, want)
	}
	var only Child
	only.FillFromSAs(nil, gcm, now)
	if only.SPIOut != "00001001" || only.SPIIn != "" || only.LastInS != nil {
		t.Errorf("outbound only: %+v", only)
	}
}
