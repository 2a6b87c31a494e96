package ike

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/isle-ipsec/isle/internal/keylog"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// writePcap stores IKE datagrams as UDP/IPv4 frames between the lab's
// gateway addresses (initiator's first), for tshark.
func writePcap(t *testing.T, path string, fromInitiator []bool, datagrams [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	a, b := net.IPv4(198, 18, 0, 1), net.IPv4(198, 18, 0, 2)
	for n, d := range datagrams {
		src, dst := a, b
		if !fromInitiator[n] {
			src, dst = b, a
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		udp := &layers.UDP{SrcPort: 500, DstPort: 500}
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, udp, gopacket.Payload(d)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(n), 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyLogWireshark: Wireshark, given our key log line, decrypts and
// verifies an IKE_AUTH exchange we made — an oracle for SK protection
// that shares no code with us.
func TestKeyLogWireshark(t *testing.T) {
	tshark := testenv.RequireTool(t, "tshark")
	for _, suite := range []struct{ ike, esp string }{
		{"aes128gcm16-prfsha256-x25519", "aes128gcm16"},
		{"aes256-sha256-modp2048", "aes256-sha256"},
		{"aes128-sha1-ecp256", "aes128-sha1"},
	} {
		t.Run(suite.ike, func(t *testing.T) {
			left, right := pair(t, suite.ike, suite.esp)
			var datagrams [][]byte
			var dirs []bool
			l := &link{}
			i, err := NewInitiator(left, func(b []byte) error {
				datagrams, dirs = append(datagrams, b), append(dirs, true)
				return l.sendI(b)
			})
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewResponder(right, func(b []byte) error {
				datagrams, dirs = append(datagrams, b), append(dirs, false)
				return l.sendR(b)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := i.Start(); err != nil {
				t.Fatal(err)
			}
			l.run(t, i, r)
			ik, ok := i.SecretKeys()
			if !ok || r.State() != StateEstablished {
				t.Fatalf("no keys (%v)", r.State())
			}
			if rk, _ := r.SecretKeys(); !reflect.DeepEqual(ik, rk) {
				t.Fatalf("the two ends have different keys:\n%+v\n%+v", ik, rk)
			}
			dir := t.TempDir()
			writePcap(t, filepath.Join(dir, "ike.pcap"), dirs, datagrams)
			if err := os.MkdirAll(filepath.Join(dir, "wireshark"), 0o700); err != nil {
				t.Fatal(err)
			}
			kl, err := keylog.Open(filepath.Join(dir, "wireshark"))
			if err != nil {
				t.Fatal(err)
			}
			if err := kl.AddIKE(keylogIKE(ik)); err != nil {
				t.Fatal(err)
			}
			line, err := os.ReadFile(filepath.Join(dir, "wireshark", keylog.IKEFile))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(tshark, "-r", filepath.Join(dir, "ike.pcap"), "-V")
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			text := string(out)
			for _, want := range []string{"ID_FQDN: gw-left", "ID_FQDN: gw-right", "Decrypted Data"} {
				if !strings.Contains(text, want) {
					t.Errorf("tshark output lacks %q", want)
				}
			}
			if strings.Contains(suite.esp, "sha") && strings.Count(text, "[correct]") != 2 {
				t.Errorf("tshark verified %d integrity checksums, want 2", strings.Count(text, "[correct]"))
			}
			if t.Failed() {
				t.Logf("key log line: %s\n%s", line, text)
			}
		})
	}
	left, right := pair(t, "chacha20poly1305-prfsha256-x25519", "aes128gcm16")
	i, _, _ := establish(t, left, right)
	k, _ := i.SecretKeys()
	kl, err := keylog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := kl.AddIKE(keylogIKE(k)); !errors.Is(err, keylog.ErrUnsupported) {
		t.Errorf("a ChaCha20 key log line Wireshark cannot use: %v", err)
	}
}

// keylogIKE is what the gateway hands the key log for an IKE SA.
func keylogIKE(k SecretKeys) keylog.IKE {
	return keylog.IKE{SPIi: k.SPIi, SPIr: k.SPIr, Enc: k.Enc.Alg, EncKeyBits: k.Enc.KeyBits,
		SKei: k.SKei, SKer: k.SKer, Integ: k.Integ, SKai: k.SKai, SKar: k.SKar}
}
