package gateway

import (
	"bytes"
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

// TestDemoConfigs: the demo's two files load and mirror each other (the
// left's out SA is the right's in SA, key for key).
func TestDemoConfigs(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "demo")
	load := func(name string) config.ManualSA {
		cfg, err := config.Load(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Manual) != 1 {
			t.Fatalf("%s: %d manual SAs", name, len(cfg.Manual))
		}
		return cfg.Manual[0]
	}
	l, r := load("left.toml"), load("right.toml")
	if l.LocalAddr != r.RemoteAddr || l.RemoteAddr != r.LocalAddr {
		t.Error("outer addresses do not mirror")
	}
	if l.Out.SPI != r.In.SPI || !bytes.Equal(l.Out.EncKey, r.In.EncKey) ||
		l.In.SPI != r.Out.SPI || !bytes.Equal(l.In.EncKey, r.Out.EncKey) {
		t.Error("SAs do not mirror")
	}
}
