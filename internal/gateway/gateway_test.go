package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/sa"
)

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestManualChild(t *testing.T) {
	cfg := parse(t, `
[manual.lab]
local_addr  = "198.18.0.1"
remote_addr = "198.18.0.2"
local_ts    = ["10.1.0.0/24", "fd00:1::/64"]
remote_ts   = ["10.2.0.0/24", "fd00:2::/64", "10.3.0.0/24"]
encap       = true
replay_window = 128
[manual.lab.out]
spi = "0x00001001"
enc = "aes256"
enc_key = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
integ = "sha256"
integ_key = "0x1111111111111111111111111111111111111111111111111111111111111111"
[manual.lab.in]
spi = "0x00002001"
enc = "aes128gcm16"
enc_key = "0xffeeddccbbaa9988776655443322110005060708"
`)
	c, err := ManualChild(cfg.Manual[0], 4500)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Out.Close()
	defer c.In.Close()
	if c.Name != "lab" || len(c.Local) != 2 || len(c.Remote) != 3 {
		t.Fatalf("child %+v", c)
	}
	for _, tc := range []struct {
		s       *sa.SA
		spi     uint32
		inbound bool
		enc     sa.EncAlg
		bits    int
		integ   sa.IntegAlg
		window  uint32
	}{
		{c.Out, 0x1001, false, sa.EncAESCBC, 256, sa.IntegHMACSHA256128, 0},
		{c.In, 0x2001, true, sa.EncAESGCM16, 128, sa.IntegNone, 128},
	} {
		s := tc.s
		if s.SPI() != tc.spi || s.Inbound() != tc.inbound || s.Enc() != tc.enc || s.EncKeyBits() != tc.bits ||
			s.Integ() != tc.integ || s.ReplayWindow() != tc.window || s.Mode() != sa.ModeTunnel || !s.Encap() {
			t.Errorf("SA %#x: got spi %#x in=%v %v-%d %v window %d encap %v", tc.spi, s.SPI(), s.Inbound(),
				s.Enc(), s.EncKeyBits(), s.Integ(), s.ReplayWindow(), s.Encap())
		}
		if s.Remote() != netip.MustParseAddrPort("198.18.0.2:4500") || s.Local() != netip.MustParseAddrPort("198.18.0.1:4500") {
			t.Errorf("SA %#x: outer %v → %v", tc.spi, s.Local(), s.Remote())
		}
	}
}

func TestManualChildAH(t *testing.T) {
	cfg := parse(t, `
[manual.lab]
local_addr  = "2001:db8::1"
remote_addr = "2001:db8::2"
local_ts    = ["10.1.0.0/24"]
remote_ts   = ["10.2.0.0/24"]
protocol    = "ah"
[manual.lab.out]
spi = "0x00001001"
integ = "sha1"
integ_key = "0x1111111111111111111111111111111111111111"
[manual.lab.in]
spi = "0x00002001"
integ = "sha512"
integ_key = "0x22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222"
`)
	c, err := ManualChild(cfg.Manual[0], 4500)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Out.Close()
	defer c.In.Close()
	if c.Out.Protocol() != sa.ProtoAH || c.Out.Integ() != sa.IntegHMACSHA1_96 || c.In.Integ() != sa.IntegHMACSHA512256 {
		t.Errorf("AH SAs: out %v %v, in %v", c.Out.Protocol(), c.Out.Integ(), c.In.Integ())
	}
	if c.Out.Encap() || c.Out.Remote() != netip.MustParseAddrPort("[2001:db8::2]:0") {
		t.Errorf("AH outer: encap %v remote %v", c.Out.Encap(), c.Out.Remote())
	}
}

// TestDemoConfigs: the demo's two files load, mirror each other
// (addresses, identities, selectors, proposals) and share one PSK, and
// the negotiator accepts the connections built from them.
func TestDemoConfigs(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "demo")
	load := func(name string) (*config.Config, config.Connection) {
		cfg, err := config.Load(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Connections) != 1 || len(cfg.Connections[0].Children) != 1 {
			t.Fatalf("%s: want one connection with one child", name)
		}
		if _, err := peerFor(cfg.Connections[0], cfg.Gateway, cfg.PSK); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return cfg, cfg.Connections[0]
	}
	lc, l := load("left.toml")
	rc, r := load("right.toml")
	if l.LocalAddrs[0] != r.RemoteAddrs[0] || l.RemoteAddrs[0] != r.LocalAddrs[0] {
		t.Error("outer addresses do not mirror")
	}
	if l.Local.ID.String() != r.Remote.ID.String() || l.Remote.ID.String() != r.Local.ID.String() {
		t.Error("identities do not mirror")
	}
	lch, rch := l.Children[0], r.Children[0]
	if fmt.Sprint(lch.LocalTS) != fmt.Sprint(rch.RemoteTS) || fmt.Sprint(lch.RemoteTS) != fmt.Sprint(rch.LocalTS) {
		t.Error("selectors do not mirror")
	}
	if fmt.Sprint(l.Proposals) != fmt.Sprint(r.Proposals) || fmt.Sprint(lch.Proposals) != fmt.Sprint(rch.Proposals) {
		t.Error("proposals differ")
	}
	lk, rk := connPSK(lc, l), connPSK(rc, r)
	if len(lk) == 0 || !bytes.Equal(lk, rk) {
		t.Error("no common pre-shared key")
	}
	if lch.StartAction != config.StartStart || rch.StartAction != config.StartNone {
		t.Error("the left should initiate and the right respond")
	}
}
