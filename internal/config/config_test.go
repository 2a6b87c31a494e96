package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

const validDir = "../../testdata/config/valid"

func load(t *testing.T, name string) *Config {
	t.Helper()
	cfg, err := Load(filepath.Join(validDir, name))
	if err != nil {
		t.Fatalf("Load(%s):\n%v", name, err)
	}
	return cfg
}

func mustSel(t *testing.T, s ...string) []policy.Selector {
	t.Helper()
	var out []policy.Selector
	for _, x := range s {
		sel, err := policy.ParseSelector(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}

func TestSitePSK(t *testing.T) {
	cfg := load(t, "site-psk.toml")
	if cfg.Gateway.Metrics != "127.0.0.1:9750" || cfg.Gateway.MTU != 1400 || cfg.Gateway.Interface != "isle0" {
		t.Errorf("gateway = %+v", cfg.Gateway)
	}
	if len(cfg.Connections) != 1 {
		t.Fatalf("%d connections", len(cfg.Connections))
	}
	c := cfg.Connections[0]
	if c.Name != "office-b" || !reflect.DeepEqual(c.LocalAddrs, []netip.Addr{netip.MustParseAddr("198.18.0.1")}) ||
		!reflect.DeepEqual(c.RemoteAddrs, []netip.Addr{netip.MustParseAddr("198.18.0.2")}) || c.RemoteAny {
		t.Errorf("addresses: %+v %+v any=%v", c.LocalAddrs, c.RemoteAddrs, c.RemoteAny)
	}
	var props []string
	for _, p := range c.Proposals {
		props = append(props, p.String())
	}
	if want := []string{"AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"}; !reflect.DeepEqual(props, want) {
		t.Errorf("proposals = %q, want %q", props, want)
	}
	if c.DPDDelay != 30*time.Second || c.RekeyTime != 4*time.Hour || !c.Fragmentation || c.Encap {
		t.Errorf("timers/flags: %+v", c)
	}
	if c.Local.Auth != AuthPSK || c.Local.ID.Kind != IDFQDN || c.Local.ID.Value != "gw-a.example.net" ||
		c.Remote.Auth != AuthPSK || c.Remote.ID.Value != "gw-b.example.net" {
		t.Errorf("auth: %+v %+v", c.Local, c.Remote)
	}
	if len(c.Children) != 2 || c.Children[0].Name != "lan" || c.Children[1].Name != "dns" {
		t.Fatalf("children not in file order: %+v", c.Children)
	}
	lan, dns := c.Children[0], c.Children[1]
	if !reflect.DeepEqual(lan.LocalTS, mustSel(t, "10.1.0.0/24")) || !reflect.DeepEqual(lan.RemoteTS, mustSel(t, "10.2.0.0/24")) {
		t.Errorf("lan selectors %v %v", lan.LocalTS, lan.RemoteTS)
	}
	if lan.Protocol != sa.ProtoESP || lan.Mode != sa.ModeTunnel || lan.RekeyTime != time.Hour || lan.ReplayWindow != 64 ||
		lan.StartAction != StartStart || lan.DPDAction != DPDRestart || lan.CloseAction != CloseNone {
		t.Errorf("lan = %+v", lan)
	}
	if len(lan.Proposals) != 2 || lan.Proposals[0].String() != "AES_GCM_16_128" || lan.Proposals[1].String() != "AES_CBC_256/HMAC_SHA2_256_128" {
		t.Errorf("lan proposals = %v", lan.Proposals)
	}
	if !reflect.DeepEqual(dns.LocalTS, mustSel(t, "10.1.0.53[udp/53]", "fd01::/64")) || dns.StartAction != StartTrap {
		t.Errorf("dns = %+v", dns)
	}
	if dns.Proposals[0].String() != "CHACHA20_POLY1305/CURVE_25519/ESN" {
		t.Errorf("dns proposal = %v", dns.Proposals[0])
	}
	key, ok := cfg.PSK(c.Local.ID, c.Remote.ID)
	if !ok || string(key) != "correct horse battery staple, but longer" {
		t.Errorf("PSK = %q, %v", key, ok)
	}
}

func TestMinimalDefaults(t *testing.T) {
	cfg := load(t, "minimal.toml")
	g := cfg.Gateway
	want := Gateway{Interface: "isle0", MTU: 1400, Control: "/run/isle/isle.sock", LogLevel: "info", LogFormat: "text", IKEPort: 500, NATTPort: 4500}
	if g != want {
		t.Errorf("gateway defaults = %+v, want %+v", g, want)
	}
	c := cfg.Connections[0]
	if c.LocalAddrs != nil || c.DPDDelay != 30*time.Second || c.RekeyTime != 4*time.Hour || !c.Fragmentation || c.Encap {
		t.Errorf("connection defaults: %+v", c)
	}
	if !reflect.DeepEqual(c.Proposals, sa.DefaultProposals(sa.ProtoIKE)) {
		t.Errorf("IKE proposals = %v, want the default", c.Proposals)
	}
	ch := c.Children[0]
	if !reflect.DeepEqual(ch.Proposals, sa.DefaultProposals(sa.ProtoESP)) || ch.Mode != sa.ModeTunnel || ch.RekeyTime != time.Hour ||
		ch.ReplayWindow != 64 || ch.StartAction != StartStart || ch.DPDAction != DPDRestart || ch.CloseAction != CloseNone ||
		ch.RekeyBytes != 0 || ch.RekeyPackets != 0 {
		t.Errorf("child defaults: %+v", ch)
	}
	// "0s" base64 notation of strongSwan.
	if key, _ := cfg.PSK(c.Local.ID, c.Remote.ID); string(key) != "secret key of the minimal example" {
		t.Errorf("PSK = %q", key)
	}
}

func TestCerts(t *testing.T) {
	cfg := load(t, "certs.toml")
	if len(cfg.Connections) != 3 {
		t.Fatalf("%d connections", len(cfg.Connections))
	}
	a := cfg.Connections[0]
	if a.Local.ID.Kind != IDDN || a.Local.ID.Value != "C=CH, O=Acme, CN=gw-a" || !reflect.DeepEqual(a.Local.ID.DER, a.Local.Certs[0].RawSubject) {
		t.Errorf("local id from certificate = %+v", a.Local.ID)
	}
	if _, ok := a.Local.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("gw-a key is %T", a.Local.Key)
	}
	if !filepath.IsAbs(a.Local.CertFile) || !strings.HasSuffix(a.Local.CertFile, "testdata/config/certs/gw-a.pem") {
		t.Errorf("cert path not resolved against the file's folder: %s", a.Local.CertFile)
	}
	if a.Remote.ID.Kind != IDDN || len(a.Remote.CACerts) != 1 || !a.Remote.CACerts[0].IsCA {
		t.Errorf("remote = %+v", a.Remote)
	}
	subj, err := IdentityFromSubject(cfg.Connections[1].Local.Certs[0].RawSubject)
	if err != nil || !a.Remote.ID.Matches(subj) {
		t.Errorf("configured remote DN %q does not match gw-b's certificate subject %q", a.Remote.ID, subj)
	}
	rw := cfg.Connections[1]
	if !rw.RemoteAny || rw.Remote.ID.Kind != IDAny || rw.Children[0].StartAction != StartNone || rw.Children[0].DPDAction != DPDClear {
		t.Errorf("responder defaults: %+v", rw)
	}
	if _, ok := rw.Local.Key.(ed25519.PrivateKey); !ok {
		t.Errorf("gw-b key is %T", rw.Local.Key)
	}
	rsaConn := cfg.Connections[2]
	if _, ok := rsaConn.Local.Key.(*rsa.PrivateKey); !ok || rsaConn.Local.ID.Value != "gw-c.example.net" {
		t.Errorf("rsa connection: %T %v", rsaConn.Local.Key, rsaConn.Local.ID)
	}
	if !reflect.DeepEqual(rsaConn.Children[0].LocalTS, mustSel(t, "fd01::/64")) {
		t.Errorf("dotted keys: %+v", rsaConn.Children)
	}
}

func TestManual(t *testing.T) {
	gcm := load(t, "manual-gcm.toml").Manual[0]
	if gcm.Protocol != sa.ProtoESP || gcm.Out.SPI != 0x1001 || gcm.In.SPI != 0x2001 || gcm.Out.Enc != (sa.Encr{Alg: sa.EncAESGCM16, KeyBits: 128}) ||
		len(gcm.Out.EncKey) != 20 || gcm.Out.EncKey[19] != 0x13 || gcm.Out.Integ != sa.IntegNone || gcm.ReplayWindow != 64 {
		t.Errorf("gcm = %+v", gcm)
	}
	cbc := load(t, "manual-cbc.toml").Manual[0]
	if cbc.Out.SPI != 4097 || cbc.In.SPI != 8193 || !cbc.Encap || !cbc.ESN || cbc.Out.Integ != sa.IntegHMACSHA256128 ||
		len(cbc.Out.IntegKey) != 32 || len(cbc.In.EncKey) != 32 || cbc.In.EncKey[0] != 0x60 {
		t.Errorf("cbc = %+v", cbc)
	}
	ah := load(t, "manual-ah.toml").Manual[0]
	if ah.Protocol != sa.ProtoAH || ah.Out.Enc.Alg != 0 || ah.Out.Integ != sa.IntegHMACSHA512256 || len(ah.In.IntegKey) != 64 ||
		ah.ReplayWindow != 0 || !ah.LocalAddr.Is6() {
		t.Errorf("ah = %+v", ah)
	}
}

// parse runs Parse on an in-memory document and returns its problems.
func parse(t *testing.T, doc string) Errors {
	t.Helper()
	_, err := Parse("t.toml", []byte(doc), t.TempDir())
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v is not Errors", err)
	}
	return es
}

const okConn = `
[connections.c]
remote_addrs = ["198.18.0.2"]
local  = { auth = "psk", id = "a.example" }
remote = { auth = "psk", id = "b.example" }
[connections.c.children.x]
local_ts  = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
[secrets.s]
ids = ["a.example"]
secret = "k"
`

// TestProblems checks individual validation rules: the line each problem
// is reported at and what the message says.
func TestProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		line      int
		want      string
	}{
		{"ok", okConn, 0, ""},
		{"unknown top", "gatway = 1\n", 1, `unknown key "gatway" at the top level: did you mean "gateway"?`},
		{"unknown far", "[gateway]\n\nfoo = 1\n", 3, `unknown key "foo" in [gateway]: expected "interface", "mtu"`},
		{"mtu type", "[gateway]\nmtu = \"1400\"\n", 2, `gateway.mtu: expected an integer, got string "1400"`},
		{"mtu range", "[gateway]\nmtu = 100\n", 2, `gateway.mtu: 100 is out of range: expected 576 to 65535`},
		{"ports equal", "[gateway]\nike_port = 4500\n", 2, `gateway.ike_port: ike_port and natt_port are both 4500`},
		{"log level", "[gateway]\nlog_level = \"verbose\"\n", 2, `gateway.log_level: "verbose" is not valid: expected "debug", "info", "warn" or "error"`},
		{"metrics", "[gateway]\nmetrics = \"9750\"\n", 2, `gateway.metrics: "9750" is not HOST:PORT`},
		{"interface", "[gateway]\ninterface = \"a/b\"\n", 2, `not a valid interface name`},
		{"keylog", "[gateway]\nkeylog = \"no-such-dir\"\n", 2, `gateway.keylog: "no-such-dir" is not a directory`},
		{"keylog ok", "[gateway]\nkeylog = \".\"\n", 0, ""},
		{"duration", strings.Replace(okConn, "[connections.c]\n", "[connections.c]\ndpd_delay = \"30x\"\n", 1), 3, `connections.c.dpd_delay: bad duration "30x"`},
		{"remote any default", strings.Replace(okConn, `"198.18.0.2"`, `"%any"`, 1), 0, ""},
		{"remote any start", strings.Replace(strings.Replace(okConn, `"198.18.0.2"`, `"%any"`, 1), "[secrets.s]", "start_action = \"start\"\n[secrets.s]", 1), 9, `connections.c.children.x.start_action: remote_addrs is ["%any"], so this gateway only responds and cannot initiate: expected "none"`},
		{"no remote", strings.Replace(okConn, "remote_addrs = [\"198.18.0.2\"]\n", "", 1), 2, `connections.c: missing remote_addrs`},
		{"psk no secret", strings.Replace(okConn, `ids = ["a.example"]`, `ids = ["z.example"]`, 1), 4, `connections.c.local.auth: auth = "psk" but no [secrets] entry has ids matching "a.example" or "b.example"`},
		{"families", strings.Replace(okConn, `remote_ts = ["10.2.0.0/24"]`, `remote_ts = ["fd00::/64"]`, 1), 7, `remote_ts has IPv6 selectors but local_ts has none`},
		{"both secret", "[secrets.s]\nsecret = \"a\"\nsecret_file = \"x\"\n", 3, `give either secret or secret_file`},
		{"hex secret", "[secrets.s]\nsecret = \"0xzz\"\n", 2, `starts with 0x but is not hex`},
		{"bad name", strings.Replace(okConn, "[connections.c]", "[connections.\"a/b\"]", 1), 2, `connection name "a/b" may only contain`},
		{"ah enc", `[manual.m]
local_addr = "1.1.1.1"
remote_addr = "2.2.2.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
protocol = "ah"
out = { spi = 300, enc = "aes128", integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
in = { spi = 301, integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
`, 7, `manual.m.out.enc: AH does not encrypt`},
		{"spi reserved", `[manual.m]
local_addr = "1.1.1.1"
remote_addr = "2.2.2.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
[manual.m.out]
spi = "0xff"
enc = "chacha20poly1305"
enc_key = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
[manual.m.in]
spi = 256
enc = "chacha20poly1305"
enc_key = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
`, 7, `manual.m.out.spi: 255 is reserved`},
		{"dup inbound spi", `[manual.a]
local_addr = "1.1.1.1"
remote_addr = "2.2.2.2"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
protocol = "ah"
out = { spi = 300, integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
in = { spi = 301, integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
[manual.b]
local_addr = "1.1.1.1"
remote_addr = "3.3.3.3"
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.3.0.0/24"]
protocol = "ah"
out = { spi = 302, integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
in = { spi = 301, integ = "sha1", integ_key = "0x0000000000000000000000000000000000000000" }
`, 16, `manual.b.in.spi: 0x0000012d is already the inbound SPI of [manual.a]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parse(t, tt.doc)
			if tt.want == "" {
				if es != nil {
					t.Fatalf("unexpected problems:\n%v", es)
				}
				return
			}
			for _, e := range es {
				if strings.Contains(e.Msg, tt.want) {
					if tt.line != 0 && e.Line != tt.line {
						t.Errorf("%q reported at line %d, want %d", e.Msg, e.Line, tt.line)
					}
					return
				}
			}
			t.Errorf("no problem containing %q in:\n%v", tt.want, es)
		})
	}
}

func TestSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "psk")
	if err := os.WriteFile(path, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(okConn, `secret = "k"`, `secret_file = "psk"`, 1)
	cfg, err := Parse("t.toml", []byte(doc), dir)
	if err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
	if string(cfg.Secrets[0].Key) != "from a file" {
		t.Errorf("key = %q (trailing newline must go)", cfg.Secrets[0].Key)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Parse("t.toml", []byte(doc), dir)
		if err == nil || !strings.Contains(err.Error(), "is accessible by group or others") {
			t.Errorf("mode %04o accepted: %v", mode, err)
		}
	}
}

func TestErrorsSortedAndComplete(t *testing.T) {
	doc := "[gateway]\nmtu = 1\nlog_level = \"x\"\nbogus = 2\n[connections.c]\nremote_addrs = [\"nope\"]\n"
	es := parse(t, doc)
	if len(es) < 5 {
		t.Fatalf("want every problem, got:\n%v", es)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Fatalf("not sorted by line:\n%v", es)
		}
	}
	if !strings.HasPrefix(es.Error(), "t.toml:2: gateway.mtu") || strings.Count(es.Error(), "\n") != len(es)-1 {
		t.Errorf("Errors.Error() =\n%s", es.Error())
	}
}

func TestSyntaxError(t *testing.T) {
	es := parse(t, "[gateway]\nmtu = 1400\nlog_level = \"info\n")
	if len(es) != 1 || es[0].Line != 3 || !strings.HasPrefix(es[0].Msg, "TOML syntax error: ") {
		t.Errorf("got %v", es)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if err == nil || !strings.Contains(err.Error(), "none.toml: cannot read the configuration: no such file") {
		t.Errorf("err = %v", err)
	}
}

func TestKeyLines(t *testing.T) {
	doc := `# comment [not.a.table]
a = 1
[t]
b = """
x = 1
"""
c = [
  "d = 2",
  3, # e = 4
]
"quoted.key" = 'lit'
f.g = 5
[t."sub x".y]
h = 6
[[arr]]
i = 7
`
	kl := scanKeyLines(doc)
	want := map[string]int{
		"a": 2, "t": 3, "t\x00b": 4, "t\x00c": 7, "t\x00quoted.key": 11, "t\x00f": 12, "t\x00f\x00g": 12,
		"t\x00sub x\x00y": 13, "t\x00sub x\x00y\x00h": 14, "arr": 15, "arr\x00i": 16,
	}
	if !reflect.DeepEqual(map[string]int(kl), want) {
		t.Errorf("lines =\n%v\nwant\n%v", kl, want)
	}
	if l := kl.line([]string{"t", "sub x"}); l != 13 {
		t.Errorf("implicit table line = %d, want 13", l)
	}
	if l := kl.line([]string{"t", "nope"}); l != 3 {
		t.Errorf("missing key falls back to its table: %d, want 3", l)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "1h": time.Hour, "4h": 4 * time.Hour, "0s": 0, "3600": time.Hour,
		"1d": 24 * time.Hour, "2d12h": 60 * time.Hour, "1h30m": 90 * time.Minute, "0": 0,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1s", "1x", "d", "1d-1h", "30 s"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) succeeded", in)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in    string
		kind  IDKind
		value string
	}{
		{"gw-a.example.net", IDFQDN, "gw-a.example.net"},
		{"@gw-a", IDFQDN, "gw-a"},
		{"198.18.0.1", IDIPv4, "198.18.0.1"},
		{"2001:db8::1", IDIPv6, "2001:db8::1"},
		{"admin@example.net", IDEmail, "admin@example.net"},
		{"C=CH, O=Acme, CN=gw-a", IDDN, "C=CH, O=Acme, CN=gw-a"},
		{"/C=CH/O=Acme/CN=gw-a", IDDN, "C=CH, O=Acme, CN=gw-a"},
		{`c=CH,o="Acme, Inc.",cn=gw\,a`, IDDN, `C=CH, O="Acme, Inc.", CN="gw,a"`},
		{"%any", IDAny, "%any"},
	}
	for _, tt := range tests {
		id, err := ParseIdentity(tt.in)
		if err != nil || id.Kind != tt.kind || id.Value != tt.value {
			t.Errorf("ParseIdentity(%q) = %v %q, %v; want %v %q", tt.in, id.Kind, id.Value, err, tt.kind, tt.value)
		}
	}
	for _, bad := range []string{"", "gw a", "a..b", "-a.b", "@", "user@", "@@x", "XX=1", "CN=", "CN=\"x", "fe80::1%eth0"} {
		if id, err := ParseIdentity(bad); err == nil {
			t.Errorf("ParseIdentity(%q) = %+v, want an error", bad, id)
		}
	}
	// The DER of a configured DN matches what Go's x509 writes for the
	// same name, and Data carries it.
	dn, _ := ParseIdentity("C=CH, O=Acme, CN=gw-a")
	cfgCerts := load(t, "certs.toml")
	if raw := cfgCerts.Connections[0].Local.Certs[0].RawSubject; string(dn.Data()) != string(raw) {
		t.Errorf("DN DER differs from the certificate's subject:\n%x\n%x", dn.Data(), raw)
	}
	ip, _ := ParseIdentity("198.18.0.1")
	if d := ip.Data(); len(d) != 4 || d[0] != 198 {
		t.Errorf("IPv4 Data = %x", d)
	}
}

func TestPSKPreference(t *testing.T) {
	id := func(s string) Identity { i, _ := ParseIdentity(s); return i }
	cfg := &Config{Secrets: []Secret{
		{Name: "any", Key: []byte("any")},
		{Name: "one", IDs: []Identity{id("a.example")}, Key: []byte("one")},
		{Name: "both", IDs: []Identity{id("a.example"), id("b.example")}, Key: []byte("both")},
	}}
	for _, tt := range []struct{ l, r, want string }{
		{"a.example", "b.example", "both"},
		{"a.example", "c.example", "one"},
		{"x.example", "y.example", "any"},
		{"a.example", "%any", "one"}, // %any pairs with any listed id: the first fitting secret wins
	} {
		if k, ok := cfg.PSK(id(tt.l), id(tt.r)); !ok || string(k) != tt.want {
			t.Errorf("PSK(%s, %s) = %q, want %q", tt.l, tt.r, k, tt.want)
		}
	}
	cfg.Secrets = cfg.Secrets[1:2]
	if _, ok := cfg.PSK(id("x.example"), id("y.example")); ok {
		t.Error("a secret for other ids matched")
	}
}

// FuzzParse: no input may panic the loader, and a document it accepts has
// the invariants the other packages rely on.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/config/*/*.toml")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(okConn))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, dir)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is not a non-empty Errors", err)
			}
			return
		}
		for _, c := range cfg.Connections {
			if len(c.Children) == 0 || (len(c.RemoteAddrs) == 0) != c.RemoteAny {
				t.Fatalf("accepted connection %+v", c)
			}
		}
	})
}

func TestActionNames(t *testing.T) {
	if StartTrap.String() != "trap" || DPDClear.String() != "clear" || CloseStart.String() != "start" || StartAction(9).String() != "action(9)" {
		t.Error("action names")
	}
}

// FuzzParseIdentity: identities come from the file and, through the same
// type, are compared with what peers present.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"gw-a.example.net", "C=CH, O=Acme, CN=gw-a", "/C=CH/CN=\"a,b\"", "a@b.c", "@x", "2001:db8::1", "%any", "1.2.3.4=5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		_ = id.Data()
		if !id.Matches(id) {
			t.Fatalf("%q does not match itself", s)
		}
		back, err := ParseIdentity(id.String())
		if err != nil || !back.Matches(id) || !id.Matches(back) {
			t.Fatalf("%q: String() %q does not parse back to the same identity: %v", s, id.String(), err)
		}
	})
}
