// Package e2e runs two `isle run` processes with manual SAs in the
// four-namespace lab and checks that real traffic crosses the tunnel, that
// what is on the wire is ESP/AH an independent implementation (scapy) can
// open with the configured keys, and that replayed, corrupted and
// cleartext packets from the WAN never reach the LAN.
package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/testenv"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// isleBinary builds cmd/isle once per test binary run, unless
// ISLE_E2E_BIN names a binary to test instead.
func isleBinary(t *testing.T) string {
	if p := os.Getenv("ISLE_E2E_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "isle-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "isle")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/isle")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func needLab(t *testing.T) {
	t.Helper()
	if testenv.Short() {
		t.Skip("namespace test; not run with -short")
	}
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip")
	testenv.RequireTool(t, "tcpdump")
	testenv.RequireTool(t, "ping")
	testenv.RequirePythonModule(t, "scapy")
}

// suite describes the manual SA pair both gateways get.
type suite struct {
	name     string
	protocol string // esp | ah
	enc      string // strongSwan keyword, "" for AH
	integ    string // "" for AEAD
	encap    bool
	outer6   bool // IPv6 between the gateways
	nat      bool // a NAT in front of gl (netns.WithNAT); needs encap
	// leftAddr, when set, is gl's outer address instead of its main WAN
	// address (a secondary address the test adds).
	leftAddr string
	spiShift int // added to both SPIs (reload tests)
	esn      bool
	// keys: left→right and right→left, hex without 0x
	encKeyLR, encKeyRL     string
	integKeyLR, integKeyRL string
	// scapy names for open.py
	scapyEnc, scapyInteg string
}

const (
	spiLR = 0x1001
	spiRL = 0x2001
)

func (s suite) config(topo *netns.Topology, dir string, left bool) string {
	local, remote := netns.WanGL4, netns.WanGR4
	if s.outer6 {
		local, remote = netns.WanGL6, netns.WanGR6
	}
	if left {
		// gl's own address: behind the NAT it is not the one gr sees.
		local = topo.GLWan4
		if s.outer6 {
			local = topo.GLWan6
		}
		if s.leftAddr != "" {
			local = s.leftAddr
		}
	}
	lts, rts := `["10.1.0.0/24", "fd00:1::/64"]`, `["10.2.0.0/24", "fd00:2::/64"]`
	outSPI, inSPI := spiLR+s.spiShift, spiRL+s.spiShift
	outEnc, inEnc, outInteg, inInteg := s.encKeyLR, s.encKeyRL, s.integKeyLR, s.integKeyRL
	if !left {
		local, remote, lts, rts = netns.WanGR4, netns.WanGL4, rts, lts
		if s.outer6 {
			local, remote = netns.WanGR6, netns.WanGL6
		}
		if s.leftAddr != "" {
			remote = s.leftAddr
		}
		outSPI, inSPI = inSPI, outSPI
		outEnc, inEnc, outInteg, inInteg = inEnc, outEnc, inInteg, outInteg
	}
	keys := func(spi int, enc, integ string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "spi = \"0x%08x\"\n", spi)
		if s.enc != "" {
			fmt.Fprintf(&b, "enc = %q\nenc_key = \"0x%s\"\n", s.enc, enc)
		}
		if s.integ != "" {
			fmt.Fprintf(&b, "integ = %q\ninteg_key = \"0x%s\"\n", s.integ, integ)
		}
		return b.String()
	}
	side := "left"
	if !left {
		side = "right"
	}
	return fmt.Sprintf(`[gateway]
interface  = "isle0"
mtu        = 1400
log_level  = "debug"
log_format = "json"
control    = %q

[manual.lab]
local_addr    = %q
remote_addr   = %q
local_ts      = %s
remote_ts     = %s
protocol      = %q
encap         = %v
esn           = %v
replay_window = 64

[manual.lab.out]
%s
[manual.lab.in]
%s`, filepath.Join(dir, side+".sock"), local, remote, lts, rts, s.protocol, s.encap, s.esn,
		keys(outSPI, outEnc, outInteg), keys(inSPI, inEnc, inInteg))
}

// gw is one running `isle run`.
type gw struct {
	proc   *netns.Process
	stats  string
	config string
}

type lab struct {
	t           *testing.T
	dir         string
	topo        *netns.Topology
	left, right *gw
}

// startLab builds the topology, lets prep change it (nil: no change), and
// starts both gateways.
func startLab(t *testing.T, prefix string, s suite, prep func(*netns.Topology)) *lab {
	t.Helper()
	bin := isleBinary(t)
	var opts []netns.Option
	if s.nat {
		opts = append(opts, netns.WithNAT())
	}
	topo := netns.NewTopology(t, prefix, opts...)
	if prep != nil {
		prep(topo)
	}
	dir := t.TempDir()
	l := &lab{t: t, topo: topo, dir: dir}
	for _, left := range []bool{true, false} {
		side, node := "left", netns.GL
		if !left {
			side, node = "right", netns.GR
		}
		cfg := filepath.Join(dir, side+".toml")
		if err := os.WriteFile(cfg, []byte(s.config(topo, dir, left)), 0o600); err != nil {
			t.Fatal(err)
		}
		g := &gw{stats: filepath.Join(dir, side+"-stats.json"), config: cfg}
		cmd := topo.Command(node, bin, "run", "-c", cfg)
		cmd.Env = append(os.Environ(), "ISLE_STATS_FILE="+g.stats)
		p, err := netns.StartCommand(cmd, filepath.Join(topo.LogDir(), "isle-"+side+".log"))
		if err != nil {
			t.Fatal(err)
		}
		g.proc = p
		t.Cleanup(func() {
			p.Stop()
			if t.Failed() {
				t.Logf("isle %s log:\n%s", side, p.Log())
			}
		})
		if left {
			l.left = g
		} else {
			l.right = g
		}
	}
	for _, g := range []*gw{l.left, l.right} {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(g.proc.Log(), "child SA installed") {
			if g.proc.Exited() || time.Now().After(deadline) {
				t.Fatalf("isle did not come up:\n%s", g.proc.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return l
}

// stats asks a gateway for its counters (SIGUSR1 → stats file).
type statsFile struct {
	Drops      map[string]uint64
	MSSClamped uint64
	TooBigSent uint64
	Children   []struct {
		Name    string
		SPIIn   uint32
		In, Out struct {
			Bytes, Packets uint64
			Drops          map[string]uint64
		}
	}
}

func (l *lab) stats(g *gw) statsFile {
	l.t.Helper()
	os.Remove(g.stats)
	if err := g.proc.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		l.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(g.stats)
		if err == nil {
			var st statsFile
			if err := json.Unmarshal(b, &st); err != nil {
				l.t.Fatalf("stats file: %v\n%s", err, b)
			}
			return st
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no stats file after SIGUSR1: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	gcmLR = "00112233445566778899aabbccddeeff01020304"
	gcmRL = "ffeeddccbbaa9988776655443322110005060708"
	cbcLR = "000102030405060708090a0b0c0d0e0f"
	cbcRL = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
	shaLR = "1111111111111111111111111111111111111111111111111111111111111111"
	shaRL = "2222222222222222222222222222222222222222222222222222222222222222"
	// ChaCha20-Poly1305: 32-byte key + 4-byte salt.
	chachaLR = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f07000000"
	chachaRL = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf01020304"
)

var suites = []suite{
	{name: "esp-aes-gcm", protocol: "esp", enc: "aes128gcm16", encKeyLR: gcmLR, encKeyRL: gcmRL, scapyEnc: "AES_GCM_16", scapyInteg: "NONE"},
	{name: "esp-aes-cbc-sha256", protocol: "esp", enc: "aes128", integ: "sha256", encKeyLR: cbcLR, encKeyRL: cbcRL,
		integKeyLR: shaLR, integKeyRL: shaRL, scapyEnc: "AES_CBC", scapyInteg: "HMAC_SHA2_256_128"},
	{name: "esp-in-udp", protocol: "esp", enc: "aes128gcm16", encap: true, encKeyLR: gcmLR, encKeyRL: gcmRL, scapyEnc: "AES_GCM_16", scapyInteg: "NONE"},
	{name: "ah-sha256", protocol: "ah", integ: "sha256", integKeyLR: shaLR, integKeyRL: shaRL, scapyInteg: "HMAC_SHA2_256_128"},
	{name: "esp-chacha20-poly1305", protocol: "esp", enc: "chacha20poly1305", encKeyLR: chachaLR, encKeyRL: chachaRL, scapyEnc: "CHACHA20_POLY1305", scapyInteg: "NONE"},
	{name: "esp-aes256-sha512-esn", protocol: "esp", enc: "aes256", integ: "sha512", esn: true, encKeyLR: shaLR, encKeyRL: shaRL,
		integKeyLR: shaLR + shaRL, integKeyRL: shaRL + shaLR, scapyEnc: "AES_CBC", scapyInteg: "HMAC_SHA2_512_256"},
	{name: "esp-aes-gcm-outer-ipv6", protocol: "esp", enc: "aes128gcm16", outer6: true, encKeyLR: gcmLR, encKeyRL: gcmRL, scapyEnc: "AES_GCM_16", scapyInteg: "NONE"},
	{name: "esp-in-udp-outer-ipv6", protocol: "esp", enc: "aes128gcm16", encap: true, outer6: true, encKeyLR: gcmLR, encKeyRL: gcmRL, scapyEnc: "AES_GCM_16", scapyInteg: "NONE"},
	{name: "ah-sha256-outer-ipv6", protocol: "ah", integ: "sha256", outer6: true, integKeyLR: shaLR, integKeyRL: shaRL, scapyInteg: "HMAC_SHA2_256_128"},
}

func byName(name string) suite {
	for _, s := range suites {
		if s.name == name {
			return s
		}
	}
	panic("no suite " + name)
}

// fromLeft reports whether the outer packet p was sent by gl.
func fromLeft(p []byte) bool {
	if p[0]>>4 == 4 {
		return bytes.Equal(p[12:16], netip.MustParseAddr(netns.WanGL4).AsSlice())
	}
	return bytes.Equal(p[8:24], netip.MustParseAddr(netns.WanGL6).AsSlice())
}

// ipHeaderLen is the length of p's IP header (no IPv6 extension headers
// in this lab's outer packets).
func ipHeaderLen(p []byte) int {
	if p[0]>>4 == 4 {
		return int(p[0]&0x0f) * 4
	}
	return 40
}

// TestManualTunnel: ping and a byte-checked TCP transfer over IPv4 and
// IPv6 inner, the wire checked by scapy, for every suite.
func TestManualTunnel(t *testing.T) {
	needLab(t)
	for i, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			l := startLab(t, fmt.Sprintf("dpt%d", i+1), s, nil)
			wan := l.topo.WANIface(netns.GR)
			filter := map[string]string{"esp": "esp", "ah": "ah"}[s.protocol]
			if s.encap {
				filter = "udp port 4500"
			}
			capt, err := l.topo.Capture(netns.GR, wan, filter)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
				t.Fatalf("ping IPv4 through the tunnel: %v", err)
			}
			if err := l.topo.Ping(netns.HL, netns.HR6, 3); err != nil {
				t.Fatalf("ping IPv6 (inner) over IPv4 (outer): %v", err)
			}
			res, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 4<<20)
			if err != nil {
				t.Fatalf("TCP transfer hl → hr: %v", err)
			}
			t.Logf("TCP 4 MiB: %v", res)
			pcap, err := capt.Stop()
			if err != nil {
				t.Fatal(err)
			}
			pkts := readPcap(t, pcap)
			if len(pkts) < 12 {
				t.Fatalf("only %d outer packets captured on the WAN", len(pkts))
			}
			l.scapyOpen(t, s, pkts)

			st := l.stats(l.right)
			if len(st.Children) != 1 || st.Children[0].In.Packets < 6 {
				t.Fatalf("right gateway counters: %+v", st)
			}
			for _, r := range []string{"auth_failed", "replay", "policy_mismatch", "unknown_spi"} {
				if st.Drops[r] != 0 {
					t.Errorf("right gateway dropped %d packets as %s during clean traffic", st.Drops[r], r)
				}
			}
		})
	}
}

// readPcap returns the IP packets of a pcap file (Ethernet link type).
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.NoCopy)
		if nl := p.NetworkLayer(); nl != nil {
			out = append(out, append([]byte(nil), append(nl.LayerContents(), nl.LayerPayload()...)...))
		}
	}
	return out
}

// scapyOpen hands every captured outer packet to testdata/scapy/open.py
// with the configured keys and checks that each opens to an IP packet
// between the two LANs.
func (l *lab) scapyOpen(t *testing.T, s suite, pkts [][]byte) {
	t.Helper()
	type req struct {
		Name     string `json:"name"`
		Proto    string `json:"proto"`
		Enc      string `json:"enc,omitempty"`
		EncKey   string `json:"enc_key,omitempty"`
		Integ    string `json:"integ"`
		IntegKey string `json:"integ_key,omitempty"`
		SPI      uint32 `json:"spi"`
		ESN      bool   `json:"esn,omitempty"`
		Packet   string `json:"packet,omitempty"`
		ESP      string `json:"esp,omitempty"`
	}
	var reqs []req
	for i, p := range pkts {
		lr := fromLeft(p)
		r := req{Name: fmt.Sprint(i), Proto: strings.ToUpper(s.protocol), Integ: s.scapyInteg, SPI: spiRL, ESN: s.esn}
		r.EncKey, r.IntegKey = s.encKeyRL, s.integKeyRL
		if lr {
			r.SPI, r.EncKey, r.IntegKey = spiLR, s.encKeyLR, s.integKeyLR
		}
		if s.enc == "" {
			r.EncKey = ""
		} else {
			r.Enc = s.scapyEnc
		}
		if s.integ == "" {
			r.IntegKey = ""
		}
		if !s.encap {
			r.Packet = hex.EncodeToString(p)
			reqs = append(reqs, r)
			continue
		}
		for k, e := range espTrain(p[ipHeaderLen(p)+8:]) {
			r.Name, r.ESP = fmt.Sprintf("%d.%d", i, k), hex.EncodeToString(e)
			reqs = append(reqs, r)
		}
	}
	// The oracle must be able to say no: the first packet with one bit of
	// the authenticating key flipped (the integrity key when there is one,
	// else the AEAD key) has to fail.
	wrong := reqs[0]
	key := &wrong.IntegKey
	if wrong.IntegKey == "" {
		key = &wrong.EncKey
	}
	kb, _ := hex.DecodeString(*key)
	kb[0] ^= 1
	*key = hex.EncodeToString(kb)
	win, _ := json.Marshal([]req{wrong})
	wcmd := exec.Command(testenv.Python, filepath.Join(repoRoot(t), "testdata", "scapy", "open.py"))
	wcmd.Stdin = bytes.NewReader(win)
	if out, err := wcmd.Output(); err == nil {
		t.Fatalf("scapy opened a packet with a wrong key: %s", out)
	}

	in, _ := json.Marshal(reqs)
	cmd := exec.Command(testenv.Python, filepath.Join(repoRoot(t), "testdata", "scapy", "open.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scapy could not open isle's packets: %v\n%s\n%.2000s", err, stderr.String(), out)
	}
	var res []struct {
		Name, Inner, Error string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("scapy answered %d of %d packets", len(res), len(reqs))
	}
	for _, r := range res {
		inner, err := hex.DecodeString(r.Inner)
		if r.Error != "" || err != nil || len(inner) < 20 {
			t.Fatalf("packet %s: %s", r.Name, r.Error)
		}
		var src, dst []byte
		if inner[0]>>4 == 4 {
			src, dst = inner[12:16], inner[16:20]
			if !(src[0] == 10 && dst[0] == 10 && src[1] != dst[1]) {
				t.Fatalf("packet %s: inner %v → %v is not LAN to LAN", r.Name, src, dst)
			}
		} else if len(inner) < 40 || inner[8] != 0xfd || inner[24] != 0xfd {
			t.Fatalf("packet %s: inner IPv6 packet not between the LANs", r.Name)
		}
	}
	t.Logf("scapy opened all %d outer packets", len(res))
}

// espTrain splits a UDP payload into the ESP packets it carries. isle
// sends runs of equal-sized ESP packets to one peer as one UDP GSO send,
// and a capture on the veth of the lab sees such a run as one datagram:
// ESP packets of one SPI with consecutive sequence numbers back to back,
// the last one possibly shorter. A lone packet comes back as it is.
func espTrain(p []byte) [][]byte {
	if len(p) < 16 {
		return [][]byte{p}
	}
	spi, seq := p[:4], binary.BigEndian.Uint32(p[4:8])
	for seg := 16; seg+8 <= len(p); seg++ {
		if !bytes.Equal(p[seg:seg+4], spi) || binary.BigEndian.Uint32(p[seg+4:]) != seq+1 {
			continue
		}
		var out [][]byte
		for off := 0; off < len(p); off += seg {
			q := p[off:min(off+seg, len(p))]
			if len(q) < 8 || !bytes.Equal(q[:4], spi) || binary.BigEndian.Uint32(q[4:]) != seq+uint32(len(out)) {
				out = nil
				break
			}
			out = append(out, q)
		}
		if out != nil {
			return out
		}
	}
	return [][]byte{p}
}

// TestManualTunnelRejects: a replayed ESP packet, a corrupted one and
// cleartext claiming to come from the far LAN must not reach hl.
func TestManualTunnelRejects(t *testing.T) {
	needLab(t)
	l := startLab(t, "dp9", byName("esp-aes-gcm"), nil)
	wan := l.topo.WANIface(netns.GL)
	capt, err := l.topo.Capture(netns.GL, wan, "esp")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.topo.Ping(netns.HR, netns.HL4, 2); err != nil {
		t.Fatal(err)
	}
	pcap, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var fromGR []byte
	for _, p := range readPcap(t, pcap) {
		if !fromLeft(p) {
			fromGR = p
			break
		}
	}
	if fromGR == nil {
		t.Fatal("captured no ESP packet from gr")
	}
	before := l.stats(l.left)

	// Replay: the very packet again, sent by gr onto the wire.
	l.inject(netns.GR, fromGR)
	// Corruption: a sequence number far ahead (so the replay check passes)
	// and a flipped ciphertext bit: only the ICV can catch it.
	bad := append([]byte(nil), fromGR...)
	ihl := int(bad[0]&0x0f) * 4
	bad[ihl+7] ^= 0x80
	bad[len(bad)-20] ^= 0x01
	l.inject(netns.GR, bad)
	time.Sleep(300 * time.Millisecond)
	after := l.stats(l.left)
	if d := after.Drops["replay"] - before.Drops["replay"]; d != 1 {
		t.Errorf("replayed packet: replay drops went up by %d, want 1", d)
	}
	if d := after.Drops["auth_failed"] - before.Drops["auth_failed"]; d != 1 {
		t.Errorf("corrupted packet: auth_failed drops went up by %d, want 1", d)
	}
	if got := after.Children[0].In.Drops; got["replayed"] != 1 || got["auth_failed"] != 1 {
		t.Errorf("inbound SA's own drop counters: %v, want replayed 1 and auth_failed 1", got)
	}
	if a, b := after.Children[0].In.Packets, before.Children[0].In.Packets; a != b {
		t.Errorf("inbound SA accepted %d packets from the injected ones", a-b)
	}

	// Cleartext from the WAN: one packet claiming the far LAN as source
	// (must be dropped), one from gr's WAN address (the control: plain
	// forwarding of unprotected traffic works, so the injection does).
	lanCap, err := l.topo.Capture(netns.HL, l.topo.LANIface(netns.HL), "udp port 9999")
	if err != nil {
		t.Fatal(err)
	}
	mac := strings.TrimSpace(string(l.topo.MustRun(netns.GL, "cat", "/sys/class/net/"+wan+"/address")))
	grWan := l.topo.WANIface(netns.GR)
	l.scapy(netns.GR, fmt.Sprintf(`
from scapy.all import Ether, IP, UDP, Raw, sendp
for src, tag in (("10.2.0.2", b"SPOOFED"), ("198.18.0.2", b"CONTROL")):
    sendp(Ether(dst=%q)/IP(src=src, dst="10.1.0.2")/UDP(sport=9999, dport=9999)/Raw(tag), iface=%q, verbose=0)
`, mac, grWan))
	time.Sleep(300 * time.Millisecond)
	lanPcap, err := lanCap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var spoofed, control int
	for _, p := range readPcap(t, lanPcap) {
		switch {
		case bytes.Contains(p, []byte("SPOOFED")):
			spoofed++
		case bytes.Contains(p, []byte("CONTROL")):
			control++
		}
	}
	if control != 1 {
		t.Fatalf("control cleartext packet arrived %d times at hl, want 1 (injection broken?)", control)
	}
	if spoofed != 0 {
		t.Errorf("cleartext packet from the far LAN's address was forwarded to hl %d times", spoofed)
	}
}

// inject sends a raw IP packet from node with scapy (L3, so the kernel
// routes it and fills the link header).
func (l *lab) inject(node netns.Node, pkt []byte) {
	l.t.Helper()
	l.scapy(node, fmt.Sprintf(`
from scapy.all import IP, send
send(IP(bytes.fromhex(%q)), verbose=0)
`, hex.EncodeToString(pkt)))
}

func (l *lab) scapy(node netns.Node, script string) {
	l.t.Helper()
	if out, err := l.topo.Run(node, testenv.Python, "-c", script); err != nil {
		l.t.Fatalf("scapy in %s: %v\n%s", node, err, out)
	}
}

// TestManualTunnelPathMTU: with a 1400-byte WAN, inner packets that do not
// fit get ICMP "fragmentation needed" / ICMPv6 "packet too big" with the
// tunnel's MTU, packets without DF are carried in fragmented outer
// packets, and TCP SYNs are clamped so TCP never needs either.
func TestManualTunnelPathMTU(t *testing.T) {
	needLab(t)
	const wanMTU = 1400
	// ESP AES-GCM in IPv4: outer header 20, SPI+seq 8, IV 8, ICV 16; the
	// inner packet plus pad length and next header padded to 4 bytes.
	avail := wanMTU - 20 - 8 - 8 - 16
	espMax := avail - avail%4 - 2
	// AH with HMAC-SHA-256-128 in IPv4: outer header 20, AH 12 + ICV 16.
	ahMax := wanMTU - 20 - 12 - 16
	for i, tc := range []struct {
		s        suite
		maxInner int
	}{{byName("esp-aes-gcm"), espMax}, {byName("ah-sha256"), ahMax}} {
		t.Run(tc.s.name, func(t *testing.T) {
			testPathMTU(t, fmt.Sprintf("dp%d", 10+i), tc.s, wanMTU, tc.maxInner)
		})
	}
}

func testPathMTU(t *testing.T, prefix string, s suite, wanMTU, maxInner int) {
	l := startLab(t, prefix, s, func(topo *netns.Topology) {
		for _, n := range []netns.Node{netns.GL, netns.GR} {
			topo.MustRun(n, "ip", "link", "set", topo.WANIface(n), "mtu", fmt.Sprint(wanMTU))
		}
	})
	// TCP first, while no host has learned the path MTU: the SYNs carry
	// the hosts' full MSS and must be clamped.
	if _, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 2<<20); err != nil {
		t.Fatalf("TCP over the small-MTU tunnel: %v", err)
	}
	ping := func(args ...string) (string, error) {
		out, err := l.topo.Run(netns.HL, append([]string{"ping", "-n", "-c", "1", "-W", "2"}, args...)...)
		return string(out), err
	}
	wan := l.topo.WANIface(netns.GR)
	capt, err := l.topo.Capture(netns.GR, wan, "ip[6:2] & 0x3fff != 0")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ping("-M", "dont", "-s", "1372", netns.HR4); err != nil {
		t.Fatalf("ping without DF, 1400 bytes: %v\n%s", err, out)
	}
	pcap, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// ESP's outer packets are fragmented by the kernel; AH's cannot be,
	// so isle fragments the inner packet and no outer fragment appears.
	frags := len(readPcap(t, pcap))
	if s.protocol == "esp" && frags < 4 {
		t.Errorf("want the outer packets both ways fragmented (>= 4 fragments), saw %d", frags)
	}
	if s.protocol == "ah" && frags != 0 {
		t.Errorf("AH: %d outer fragments on the WAN, want none (inner pre-fragmentation)", frags)
	}

	// Now DF: hl learns the tunnel's MTU from the answers.
	var out string
	out, err = ping("-M", "do", "-s", fmt.Sprint(maxInner-28+1), netns.HR4)
	if err == nil || !strings.Contains(out, fmt.Sprintf("mtu = %d", maxInner)) {
		t.Fatalf("DF ping one byte too big: want frag needed with mtu = %d, got (%v):\n%s", maxInner, err, out)
	}
	if out, err := ping("-M", "do", "-s", fmt.Sprint(maxInner-28), netns.HR4); err != nil {
		t.Fatalf("DF ping that just fits: %v\n%s", err, out)
	}
	out, err = ping("-s", fmt.Sprint(maxInner-48+1), netns.HR6)
	if err == nil || !strings.Contains(out, fmt.Sprintf("mtu=%d", maxInner)) {
		t.Fatalf("IPv6 ping one byte too big: want packet too big, mtu=%d, got (%v):\n%s", maxInner, err, out)
	}

	left, right := l.stats(l.left), l.stats(l.right)
	if left.TooBigSent < 2 || left.Drops["too_big"] != left.TooBigSent {
		t.Errorf("left gateway: %d too-big answers (%d drops), want >= 2", left.TooBigSent, left.Drops["too_big"])
	}
	if left.MSSClamped < 1 || right.MSSClamped < 1 {
		t.Errorf("MSS clamped %d times on the left, %d on the right; want SYN and SYN-ACK clamped", left.MSSClamped, right.MSSClamped)
	}
}

// TestShutdown: SIGTERM stops `isle run` with status 0, after it removed
// its TUN device, routes and rules, and logged its final counters.
func TestShutdown(t *testing.T) {
	needLab(t)
	l := startLab(t, "dp12", byName("esp-aes-gcm"), nil)
	if err := l.topo.Ping(netns.HL, netns.HR4, 1); err != nil {
		t.Fatal(err)
	}
	if out := string(l.topo.MustRun(netns.GL, "ip", "rule")); !strings.Contains(out, "blackhole") {
		t.Fatalf("no protection rule while running:\n%s", out)
	}
	p := l.left.proc
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(5 * time.Second); err != nil {
		t.Fatalf("isle run after SIGTERM: %v\n%s", err, p.Log())
	}
	log := p.Log()
	if !strings.Contains(log, `"msg":"stats"`) || !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("no final stats or stop line in the log:\n%s", log)
	}
	if out, err := l.topo.Run(netns.GL, "ip", "link", "show", "isle0"); err == nil {
		t.Errorf("TUN device still there:\n%s", out)
	}
	if out := string(l.topo.MustRun(netns.GL, "ip", "rule")); strings.Contains(out, "10.2.0.0/24") {
		t.Errorf("rules left behind:\n%s", out)
	}
	if out := string(l.topo.MustRun(netns.GL, "ip", "-6", "rule")); strings.Contains(out, "fd00:2::/64") {
		t.Errorf("IPv6 rules left behind:\n%s", out)
	}
	if out := string(l.topo.MustRun(netns.GL, "ip", "route")); strings.Contains(out, "10.2.0.0/24") {
		t.Errorf("routes left behind:\n%s", out)
	}
	// The key material is never logged.
	for _, k := range []string{gcmLR, gcmRL} {
		if strings.Contains(strings.ToLower(log), k[:16]) {
			t.Errorf("a key appears in the log")
		}
	}
}

// TestManualTunnelNAT: ESP in UDP from behind a NAT that rewrites gl's
// address and source port. gr learns the mapped address:port from gl's
// authenticated packets and answers there.
func TestManualTunnelNAT(t *testing.T) {
	needLab(t)
	s := byName("esp-in-udp") // ESP-in-UDP, AES-GCM
	s.nat = true
	l := startLab(t, "dp13", s, nil)
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatalf("ping through the NAT: %v", err)
	}
	if _, err := l.topo.TCPTransfer(netns.HR, netns.HL, netns.HL4, 1<<20); err != nil {
		t.Fatalf("TCP hr → hl through the NAT: %v", err)
	}
	log := l.right.proc.Log()
	if !strings.Contains(log, `"msg":"peer moved"`) || !strings.Contains(log, `"to":"198.18.0.1:`) {
		t.Errorf("gr did not follow the NAT mapping:\n%s", log)
	}
}

// TestManualTunnelLocalAddr: gl sends from its configured local_addr, a
// secondary address of its WAN interface, not from the address the route
// would pick (the main one).
func TestManualTunnelLocalAddr(t *testing.T) {
	needLab(t)
	for i, tc := range []struct {
		s    suite
		addr string
	}{
		{byName("esp-aes-gcm"), "198.18.0.11"},
		{byName("esp-in-udp"), "198.18.0.11"},
		{byName("esp-aes-gcm-outer-ipv6"), "2001:db8:18::11"},
	} {
		t.Run(tc.s.name, func(t *testing.T) {
			s := tc.s
			s.leftAddr = tc.addr
			l := startLab(t, fmt.Sprintf("dp%d", 14+i), s, func(topo *netns.Topology) {
				bits := "24"
				if strings.Contains(tc.addr, ":") {
					bits = "64"
				}
				topo.MustRun(netns.GL, "ip", "addr", "add", tc.addr+"/"+bits, "dev", topo.WANIface(netns.GL), "nodad")
			})
			filter := "esp"
			if s.encap {
				filter = "udp port 4500"
			}
			capt, err := l.topo.Capture(netns.GR, l.topo.WANIface(netns.GR), filter)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.topo.Ping(netns.HL, netns.HR4, 2); err != nil {
				t.Fatal(err)
			}
			pcap, err := capt.Stop()
			if err != nil {
				t.Fatal(err)
			}
			want := netip.MustParseAddr(tc.addr).AsSlice()
			var fromGL int
			for _, p := range readPcap(t, pcap) {
				src, dst := p[12:16], p[16:20]
				if p[0]>>4 == 6 {
					src, dst = p[8:24], p[24:40]
				}
				if bytes.Equal(dst, want) {
					continue // gr's packets to gl
				}
				fromGL++
				if !bytes.Equal(src, want) {
					got, _ := netip.AddrFromSlice(src)
					t.Errorf("gl sent from %v, want %s", got, tc.addr)
				}
			}
			if fromGL < 2 {
				t.Fatalf("captured %d packets from gl", fromGL)
			}
		})
	}
}

// TestReload: SIGHUP re-reads the file. New keys and SPIs on both sides
// take over (the old SPIs are gone from the wire); a file that does not
// load leaves the running SAs alone.
func TestReload(t *testing.T) {
	needLab(t)
	s := byName("esp-aes-gcm")
	l := startLab(t, "dp17", s, nil)
	if err := l.topo.Ping(netns.HL, netns.HR4, 1); err != nil {
		t.Fatal(err)
	}
	waitLog := func(g *gw, msg string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(g.proc.Log(), msg) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %s in the log:\n%s", msg, g.proc.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The same file again: nothing is replaced.
	l.left.proc.Cmd.Process.Signal(syscall.SIGHUP)
	waitLog(l.left, `"msg":"reloaded"`, 1)
	if strings.Contains(l.left.proc.Log(), "manual SA changed") {
		t.Fatal("an unchanged manual SA was replaced")
	}
	// A broken file: rejected, nothing changes.
	for _, g := range []*gw{l.left, l.right} {
		if err := os.WriteFile(g.config, []byte("[gateway\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g.proc.Cmd.Process.Signal(syscall.SIGHUP)
		waitLog(g, "the running configuration stays", 1)
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 1); err != nil {
		t.Fatalf("after a rejected reload: %v", err)
	}

	s.spiShift = 0x100
	s.encKeyLR, s.encKeyRL = gcmRL, gcmLR
	for i, g := range []*gw{l.left, l.right} {
		if err := os.WriteFile(g.config, []byte(s.config(l.topo, l.dir, i == 0)), 0o600); err != nil {
			t.Fatal(err)
		}
		g.proc.Cmd.Process.Signal(syscall.SIGHUP)
		waitLog(g, "manual SA changed", 1)
	}
	capt, err := l.topo.Capture(netns.GR, l.topo.WANIface(netns.GR), "esp")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatalf("after reloading new keys: %v", err)
	}
	pcap, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	pkts := readPcap(t, pcap)
	if len(pkts) < 6 {
		t.Fatalf("%d ESP packets", len(pkts))
	}
	for _, p := range pkts {
		spi := binary.BigEndian.Uint32(p[ipHeaderLen(p):])
		if spi != spiLR+0x100 && spi != spiRL+0x100 {
			t.Fatalf("ESP with SPI %#x after the reload", spi)
		}
	}
	st := l.stats(l.left)
	if len(st.Children) != 1 || st.Children[0].SPIIn != spiRL+0x100 {
		t.Fatalf("left children after reload: %+v", st.Children)
	}
	if !strings.Contains(l.left.proc.Log(), "manual SA changed") {
		t.Error("reload did not report the changed SA")
	}
}

// TestStatus: `isle status` reads the running gateway's manual SAs and
// counters over the control socket; `isle reload` re-reads the file;
// `isle up` explains that manual SAs need no initiation.
func TestStatus(t *testing.T) {
	needLab(t)
	l := startLab(t, "dp18", byName("esp-aes-cbc-sha256"), nil)
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(l.dir, "left.sock")
	isle := func(args ...string) (string, error) {
		out, err := exec.Command(isleBinary(t), args...).CombinedOutput()
		return string(out), err
	}
	out, err := isle("status", "--json", "--socket", sock)
	if err != nil {
		t.Fatalf("isle status --json: %v\n%s", err, out)
	}
	var st struct {
		Connections []any `json:"connections"`
		Manual      []struct {
			Name       string   `json:"name"`
			State      string   `json:"state"`
			Protocol   string   `json:"protocol"`
			Proposal   string   `json:"proposal"`
			Local      string   `json:"local"`
			Remote     string   `json:"remote"`
			SPIIn      string   `json:"spi_in"`
			SPIOut     string   `json:"spi_out"`
			PacketsIn  uint64   `json:"packets_in"`
			PacketsOut uint64   `json:"packets_out"`
			BytesIn    uint64   `json:"bytes_in"`
			LocalTS    []string `json:"local_ts"`
			RemoteTS   []string `json:"remote_ts"`
		} `json:"manual"`
		Gateway struct {
			Interface string `json:"interface"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(st.Manual) != 1 {
		t.Fatalf("status: %s", out)
	}
	m := st.Manual[0]
	if m.Name != "lab" || m.State != "INSTALLED" || m.Protocol != "ESP" || !strings.HasPrefix(m.Proposal, "AES_CBC_128/HMAC_SHA2_256_128") ||
		m.Local != "198.18.0.1:0" || m.Remote != "198.18.0.2:0" || m.SPIIn != "00002001" || m.SPIOut != "00001001" ||
		m.PacketsIn < 3 || m.PacketsOut < 3 || m.BytesIn < 3*84 ||
		strings.Join(m.LocalTS, ",") != "10.1.0.0/24,fd00:1::/64" || strings.Join(m.RemoteTS, ",") != "10.2.0.0/24,fd00:2::/64" ||
		st.Gateway.Interface != "isle0" {
		t.Errorf("status does not describe the manual SA: %+v\n%s", m, out)
	}
	text, err := isle("status", "--socket", sock)
	if err != nil || !strings.Contains(text, "lab") || !strings.Contains(text, "00002001") {
		t.Errorf("isle status (text): %v\n%s", err, text)
	}
	if out, err := isle("reload", "--socket", sock); err != nil {
		t.Errorf("isle reload: %v\n%s", err, out)
	}
	out, err = isle("up", "lab", "--socket", sock)
	if err == nil || !strings.Contains(out, "manual SA") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("isle up on a manual SA: %v\n%s", err, out)
	}
}
