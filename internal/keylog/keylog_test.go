package keylog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/esp"
	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/ike/sk"
	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

var (
	gwA = netip.MustParseAddr("198.18.0.1")
	gwB = netip.MustParseAddr("198.18.0.2")
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// key returns n bytes counting up from first, so that keys are easy to
// recognise in the files.
func key(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	// A previous run's table is replaced, not appended to.
	os.WriteFile(filepath.Join(dir, ESPFile), []byte("\"IPv4\",\"1.1.1.1\",\"2.2.2.2\",\"0x1\",\"NULL\",\"\",\"NULL\",\"\"\n"), 0o644)
	w, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ESPFile, IKEFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi.Mode(), err)
		}
		if got := read(t, filepath.Join(dir, name)); got != header {
			t.Errorf("%s after Open: %q", name, got)
		}
	}

	gcm := ESP{Src: gwA, Dst: gwB, SPI: 0xc1a2b3d4, Enc: sa.EncAESGCM16, EncKey: key(0, 20)}
	cbc := ESP{Src: netip.MustParseAddr("2001:db8::2"), Dst: netip.MustParseAddr("2001:db8::1"), SPI: 0x1001,
		Enc: sa.EncAESCBC, EncKey: key(0x10, 16), Integ: sa.IntegHMACSHA256128, IntegKey: key(0x40, 32)}
	if err := w.AddESP(gcm); err != nil {
		t.Fatal(err)
	}
	if err := w.AddESP(cbc); err != nil {
		t.Fatal(err)
	}
	want := header +
		`"IPv4","198.18.0.1","198.18.0.2","0xc1a2b3d4","AES-GCM with 16 octet ICV [RFC4106]","0x000102030405060708090a0b0c0d0e0f10111213","NULL",""` + "\n" +
		`"IPv6","2001:db8::2","2001:db8::1","0x00001001","AES-CBC [RFC3602]","0x101112131415161718191a1b1c1d1e1f","HMAC-SHA-256-128 [RFC4868]","0x404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"` + "\n"
	if got := read(t, filepath.Join(dir, ESPFile)); got != want {
		t.Errorf("esp_sa:\n%s\nwant:\n%s", got, want)
	}
	// The same SA again replaces its line in place.
	gcm.EncKey = key(0xa0, 20)
	w.AddESP(gcm)
	if got := read(t, filepath.Join(dir, ESPFile)); strings.Count(got, "0xc1a2b3d4") != 1 || !strings.Contains(got, "0xa0a1") ||
		strings.Index(got, "0xc1a2b3d4") > strings.Index(got, "0x00001001") {
		t.Errorf("after re-adding:\n%s", got)
	}
	if err := w.RemoveESP(gwB, 0xc1a2b3d4); err != nil {
		t.Fatal(err)
	}
	w.RemoveESP(gwB, 0x1001) // wrong destination: nothing happens
	if got := read(t, filepath.Join(dir, ESPFile)); strings.Contains(got, "c1a2b3d4") || !strings.Contains(got, "0x00001001") {
		t.Errorf("after RemoveESP:\n%s", got)
	}

	ike := IKE{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Enc: sa.EncAESCBC, EncKeyBits: 256,
		SKei: key(0, 32), SKer: key(0x20, 32), Integ: sa.IntegHMACSHA256128, SKai: key(0x40, 32), SKar: key(0x60, 32)}
	if err := w.AddIKE(ike); err != nil {
		t.Fatal(err)
	}
	aead := IKE{SPIi: 0xa, SPIr: 0xb, Enc: sa.EncAESGCM16, EncKeyBits: 128, SKei: key(0, 20), SKer: key(0x80, 20)}
	if err := w.AddIKE(aead); err != nil {
		t.Fatal(err)
	}
	want = header +
		`0102030405060708,1112131415161718,000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f,` +
		`202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f,"AES-CBC-256 [RFC3602]",` +
		`404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f,606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f,"HMAC_SHA2_256_128 [RFC4868]"` + "\n" +
		`000000000000000a,000000000000000b,000102030405060708090a0b0c0d0e0f10111213,808182838485868788898a8b8c8d8e8f90919293,` +
		`"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"` + "\n"
	if got := read(t, filepath.Join(dir, IKEFile)); got != want {
		t.Errorf("ikev2_decryption_table:\n%s\nwant:\n%s", got, want)
	}
	w.RemoveIKE(ike.SPIi, ike.SPIr)
	if got := read(t, filepath.Join(dir, IKEFile)); strings.Contains(got, "\n0102030405060708,") || !strings.Contains(got, "\n000000000000000a,") {
		t.Errorf("after RemoveIKE:\n%s", got)
	}

	// Nothing but the two tables is left in the directory.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries: %v", len(ents), ents)
	}
}

func TestSAConfigAndLines(t *testing.T) {
	w, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := sa.Config{SPI: 0xc1a2b3d4, Protocol: sa.ProtoESP, Inbound: true, Enc: sa.EncAESGCM16, EncKey: key(0, 20),
		Local: netip.AddrPortFrom(gwA, 4500), Remote: netip.AddrPortFrom(gwB, 4500)}
	out := in
	out.SPI, out.Inbound = 0xc5a6b7d8, false
	ah := sa.Config{SPI: 0x3001, Protocol: sa.ProtoAH, Integ: sa.IntegHMACSHA256128, IntegKey: key(0, 32),
		Local: netip.AddrPortFrom(gwA, 0), Remote: netip.AddrPortFrom(gwB, 0)}
	for _, c := range []sa.Config{in, out, ah} {
		if err := w.AddSA(c); err != nil {
			t.Fatal(err)
		}
	}
	got := read(t, filepath.Join(w.Dir(), ESPFile))
	// The peer sends with the inbound SA: from gwB to gwA.
	if !strings.Contains(got, `"IPv4","198.18.0.2","198.18.0.1","0xc1a2b3d4"`) || !strings.Contains(got, `"IPv4","198.18.0.1","198.18.0.2","0xc5a6b7d8"`) ||
		strings.Count(got, "\n") != 3 {
		t.Errorf("esp_sa:\n%s", got)
	}
	w.RemoveSA(in)
	w.RemoveSA(ah)
	if got := read(t, filepath.Join(w.Dir(), ESPFile)); strings.Contains(got, "c1a2b3d4") || !strings.Contains(got, "c5a6b7d8") {
		t.Errorf("after RemoveSA:\n%s", got)
	}

	line := `0000000000000001,0000000000000002,00,01,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"`
	if err := w.AddIKE(IKE{SPIi: 1, SPIr: 2, Enc: sa.EncAESGCM16, EncKeyBits: 128, SKei: []byte{0}, SKer: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(w.Dir(), IKEFile)); got != header+line+"\n" {
		t.Errorf("ikev2_decryption_table: %q", got)
	}
	w.RemoveIKE(1, 2)
	if got := read(t, filepath.Join(w.Dir(), IKEFile)); got != header {
		t.Errorf("after RemoveIKE: %q", got)
	}
}

func TestUnsupported(t *testing.T) {
	w, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []ESP{
		{Src: gwA, Dst: gwB, SPI: 0x1000, Enc: sa.EncAESCBC, EncKey: key(0, 16)}, // CBC without integrity
		{Src: gwA, Dst: gwB, SPI: 0x1000, Enc: sa.EncAlg(3), EncKey: key(0, 24), Integ: sa.IntegHMACSHA1_96},
	} {
		if err := w.AddESP(e); !errors.Is(err, ErrUnsupported) {
			t.Errorf("AddESP(%v/%v): %v", e.Enc, e.Integ, err)
		}
	}
	for _, k := range []IKE{
		{Enc: sa.EncChaCha20Poly1305, EncKeyBits: 256},
		{Enc: sa.EncAESCBC, EncKeyBits: 128},  // no integrity
		{Enc: sa.EncAESGCM16, EncKeyBits: 64}, // no such key size
	} {
		if err := w.AddIKE(k); !errors.Is(err, ErrUnsupported) {
			t.Errorf("AddIKE(%v-%d/%v): %v", k.Enc, k.EncKeyBits, k.Integ, err)
		}
	}
	if got := read(t, filepath.Join(w.Dir(), ESPFile)) + read(t, filepath.Join(w.Dir(), IKEFile)); got != header+header {
		t.Errorf("unsupported SAs were written: %q", got)
	}
	if _, ok := ESPOf(sa.Config{Protocol: sa.ProtoAH}); ok {
		t.Error("ESPOf accepted an AH SA")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
}

// tshark runs tshark on pcap with the personal configuration directory
// holding the key files of dir (XDG_CONFIG_HOME/wireshark).
func tshark(t *testing.T, home, pcap string, args ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "tshark")
	cmd := exec.Command(bin, append([]string{"-r", pcap}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	return string(out)
}

// wiresharkDir makes HOME/.config/wireshark, Wireshark's personal
// configuration directory, and opens a Writer on it.
func wiresharkDir(t *testing.T) (home string, w *Writer) {
	home = t.TempDir()
	dir := filepath.Join(home, ".config", "wireshark")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return home, w
}

type espSuite struct {
	name    string
	spi     uint32
	enc     sa.EncAlg
	encKey  []byte
	integ   sa.IntegAlg
	intKey  []byte
	encap   bool
	inbound bool // the keys are logged from the receiver's side
}

var espSuites = []espSuite{
	{"aes128gcm16", 0x1001, sa.EncAESGCM16, key(0x01, 20), sa.IntegNone, nil, false, false},
	{"aes256gcm16-in-udp", 0x1002, sa.EncAESGCM16, key(0x21, 36), sa.IntegNone, nil, true, false},
	{"aes256-sha256", 0x1003, sa.EncAESCBC, key(0x41, 32), sa.IntegHMACSHA256128, key(0x61, 32), false, false},
	{"aes128-sha1-inbound", 0x1004, sa.EncAESCBC, key(0x81, 16), sa.IntegHMACSHA1_96, key(0x91, 20), false, true},
	{"aes128-sha384-in-udp", 0x1005, sa.EncAESCBC, key(0xa1, 16), sa.IntegHMACSHA384192, key(0xb1, 48), true, false},
	{"aes192-sha512", 0x1006, sa.EncAESCBC, key(0xc1, 24), sa.IntegHMACSHA512256, key(0xd1, 64), false, false},
}

// espCapture seals one ICMP echo per suite with isle's ESP and returns the
// capture's packets; logKeys gets the sa.Config of the SA as the gateway
// would have it (the receiver's for inbound suites).
func espCapture(t *testing.T, logKeys func(sa.Config)) [][]byte {
	var packets [][]byte
	for _, s := range espSuites {
		port := uint16(0)
		if s.encap {
			port = 4500
		}
		c := sa.Config{SPI: s.spi, Protocol: sa.ProtoESP, Enc: s.enc, EncKey: s.encKey, Integ: s.integ, IntegKey: s.intKey,
			Encap: s.encap, Local: netip.AddrPortFrom(gwA, port), Remote: netip.AddrPortFrom(gwB, port)}
		sender, err := sa.New(c)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		defer sender.Close()
		logged := c
		if s.inbound { // as gwB would log the SA it receives with
			logged.Inbound = true
			logged.Local, logged.Remote = c.Remote, c.Local
		}
		logKeys(logged)

		inner := ipv4(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"), 1,
			icmpEcho(0x15e, uint16(s.spi), []byte("isle "+s.name)))
		head, tail := esp.Overhead(sender)
		buf := make([]byte, head+len(inner)+tail)
		copy(buf[head:], inner)
		pkt, err := esp.Seal(sender, 1, buf, head, len(inner))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.encap {
			packets = append(packets, ipv4(gwA, gwB, 17, udp(4500, 4500, pkt)))
		} else {
			packets = append(packets, ipv4(gwA, gwB, 50, pkt))
		}
	}
	return packets
}

// TestTsharkESP: Wireshark decrypts isle's ESP, and checks its ICVs,
// with nothing but the esp_sa file this package wrote.
func TestTsharkESP(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	home, w := wiresharkDir(t)
	packets := espCapture(t, func(c sa.Config) {
		e, ok := ESPOf(c)
		if !ok {
			t.Fatal("ESPOf refused an ESP SA")
		}
		if err := w.AddESP(e); err != nil {
			t.Fatal(err)
		}
	})
	pcap := filepath.Join(home, "esp.pcap")
	writePcap(t, pcap, packets)
	fields := []string{"-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
		"-T", "fields", "-E", "separator=|", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "icmp.type", "-e", "icmp.seq", "-e", "data.data"}
	out := tshark(t, home, pcap, fields...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(espSuites) {
		t.Fatalf("tshark printed %d lines for %d packets:\n%s", len(lines), len(espSuites), out)
	}
	for i, s := range espSuites {
		want := fmt.Sprintf("0x%08x|1|8|%d|%s", s.spi, s.spi, hex.EncodeToString([]byte("isle "+s.name)))
		// icv_good prints as 1 or True depending on the version.
		got := strings.Replace(lines[i], "|True|", "|1|", 1)
		if got != want {
			t.Errorf("%s: tshark shows %q, want %q", s.name, lines[i], want)
		}
	}

	// The negative control: with every key off by one bit Wireshark
	// decrypts nothing, so the check above can fail.
	home2, w2 := wiresharkDir(t)
	espCapture(t, func(c sa.Config) {
		e, _ := ESPOf(c)
		e.EncKey = bytes.Clone(e.EncKey)
		e.EncKey[0] ^= 1
		if len(e.IntegKey) > 0 {
			e.IntegKey = bytes.Clone(e.IntegKey)
			e.IntegKey[0] ^= 1
		}
		w2.AddESP(e)
	})
	out = tshark(t, home2, pcap, fields...)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "|"); len(f) < 3 || f[2] == "8" || f[1] == "1" || f[1] == "True" {
			t.Errorf("decrypted or verified with wrong keys: %q", line)
		}
	}
}

type ikeSuite struct {
	name     string
	enc      sa.EncAlg
	bits     int
	ei, er   []byte
	integ    sa.IntegAlg
	ai, ar   []byte
	spi      uint64
	response bool // sealed by the responder with SK_er/SK_ar
}

var ikeSuites = []ikeSuite{
	{"aes128gcm16", sa.EncAESGCM16, 128, key(0x01, 20), key(0x31, 20), sa.IntegNone, nil, nil, 0x1001, false},
	{"aes256gcm16-response", sa.EncAESGCM16, 256, key(0x02, 36), key(0x32, 36), sa.IntegNone, nil, nil, 0x1002, true},
	{"aes256-sha256", sa.EncAESCBC, 256, key(0x03, 32), key(0x33, 32), sa.IntegHMACSHA256128, key(0x63, 32), key(0x93, 32), 0x1003, false},
	{"aes128-sha1-response", sa.EncAESCBC, 128, key(0x04, 16), key(0x34, 16), sa.IntegHMACSHA1_96, key(0x64, 20), key(0x94, 20), 0x1004, true},
	{"aes192-sha512", sa.EncAESCBC, 192, key(0x05, 24), key(0x35, 24), sa.IntegHMACSHA512256, key(0x65, 64), key(0x95, 64), 0x1005, false},
	{"aes128-sha384-response", sa.EncAESCBC, 128, key(0x06, 16), key(0x36, 16), sa.IntegHMACSHA384192, key(0x66, 48), key(0x96, 48), 0x1006, true},
}

// TestTsharkIKE: Wireshark decrypts IKE messages sealed by isle's SK
// payload code, in both directions, with the ikev2_decryption_table this
// package wrote, and finds their integrity check data correct.
func TestTsharkIKE(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	home, w := wiresharkDir(t)
	var packets [][]byte
	for _, s := range ikeSuites {
		if err := w.AddIKE(IKE{SPIi: s.spi, SPIr: s.spi << 32, Enc: s.enc, EncKeyBits: s.bits,
			SKei: s.ei, SKer: s.er, Integ: s.integ, SKai: s.ai, SKar: s.ar}); err != nil {
			t.Fatal(err)
		}
		ek, ik, flags := s.ei, s.ai, message.FlagInitiator
		src, dst := gwA, gwB
		if s.response {
			ek, ik, flags = s.er, s.ar, message.FlagResponse
			src, dst = gwB, gwA
		}
		c, err := sk.New(s.enc, ek, s.integ, ik)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		m := &message.Message{Header: message.Header{SPIi: s.spi, SPIr: s.spi << 32, Exchange: message.IKEAuth, Flags: flags, MessageID: 1}}
		b, err := c.Seal(m, []message.Payload{
			&message.ID{IDType: message.IDFQDN, Data: []byte(s.name + ".example")},
			&message.Notify{NotifyType: message.InitialContact},
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		packets = append(packets, ipv4(src, dst, 17, udp(500, 500, b)))
	}
	pcap := filepath.Join(home, "ike.pcap")
	writePcap(t, pcap, packets)
	out := tshark(t, home, pcap, "-T", "fields", "-E", "separator=|", "-e", "isakmp.ispi", "-e", "isakmp.id.data.fqdn", "-e", "isakmp.notify.msgtype")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(ikeSuites) {
		t.Fatalf("tshark printed %d lines for %d packets:\n%s", len(lines), len(ikeSuites), out)
	}
	for i, s := range ikeSuites {
		if want := fmt.Sprintf("%016x|%s.example|16384", s.spi, s.name); lines[i] != want {
			t.Errorf("%s: tshark shows %q, want %q", s.name, lines[i], want)
		}
	}
	// Wireshark verifies the ICV of every message (AEAD tag or HMAC).
	verbose := tshark(t, home, pcap, "-V")
	if n := len(regexp.MustCompile(`(?m)Integrity Checksum Data: [0-9a-f]+ \(\d+ bytes\).*\[correct\]$`).FindAllString(verbose, -1)); n != len(ikeSuites) {
		t.Errorf("%d of %d integrity checks correct:\n%s", n, len(ikeSuites), verbose)
	}

	// Negative control: without the table nothing is decrypted.
	w.RemoveIKE(ikeSuites[0].spi, ikeSuites[0].spi<<32)
	out = tshark(t, home, pcap, "-T", "fields", "-E", "separator=|", "-e", "isakmp.ispi", "-e", "isakmp.id.data.fqdn")
	if first := strings.Split(out, "\n")[0]; first != fmt.Sprintf("%016x|", ikeSuites[0].spi) {
		t.Errorf("decrypted without its keys: %q", first)
	}
}
