package swan

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/isle-ipsec/isle/internal/netns"
)

// sitePair is the PSK site-to-site configuration of the lab for one side.
func sitePair(localAddr, remoteAddr, localID, remoteID, localTS, remoteTS string) Config {
	return Config{
		Connections: []Connection{{
			Name: "s2s", Version: 2,
			LocalAddrs: []string{localAddr}, RemoteAddrs: []string{remoteAddr},
			Proposals: []string{"aes128gcm16-prfsha256-x25519"},
			Local:     Auth{Auth: "psk", ID: localID},
			Remote:    Auth{Auth: "psk", ID: remoteID},
			Children: []Child{{
				Name: "net", LocalTS: []string{localTS}, RemoteTS: []string{remoteTS},
				ESPProposals: []string{"aes128gcm16"},
			}},
		}},
		Secrets: []Secret{{Type: "ike", IDs: []string{"gw-left", "gw-right"}, Secret: "swan-test-psk-0123456789"}},
	}
}

// Two strongSwan gateways (charon in gl and gr) carry hl → hr traffic: this
// proves the harness and the machine (libipsec, TUN, namespaces), and that
// the keys read from charon's log open its packets.
func TestTwoCharonsPSK(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test left out by -short")
	}
	Require(t)
	topo := netns.NewTopology(t, "sw1")
	left := Start(t, topo, netns.GL, sitePair(netns.WanGL4, netns.WanGR4, "gw-left", "gw-right", netns.LeftLAN4, netns.RightLAN4), Options{})
	right := Start(t, topo, netns.GR, sitePair(netns.WanGR4, netns.WanGL4, "gw-right", "gw-left", netns.RightLAN4, netns.LeftLAN4), Options{})

	if err := left.Initiate("net", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	lIKE, lChild, err := left.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rIKE, rChild, err := right.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	esp, err := topo.Capture(netns.GL, topo.WANIface(netns.GL), "udp port 4500")
	if err != nil {
		t.Fatal(err)
	}
	clear, err := topo.Capture(netns.GL, topo.WANIface(netns.GL), "icmp")
	if err != nil {
		t.Fatal(err)
	}
	const pings = 3
	if err := topo.Ping(netns.HL, netns.HR4, pings); err != nil {
		t.Fatalf("through strongSwan: %v", err)
	}
	if _, err := topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 256<<10); err != nil {
		t.Fatalf("TCP through strongSwan: %v", err)
	}
	espPcap, err := esp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	clearPcap, err := clear.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if n := countPackets(t, clearPcap); n != 0 {
		t.Errorf("%d cleartext ICMP packets on the WAN", n)
	}

	// Both views of the one IKE_SA and CHILD_SA agree.
	checks := []struct {
		what   string
		l, r   any
		mirror bool
	}{
		{"IKE initiator SPI", lIKE.InitiatorSPI, rIKE.InitiatorSPI, false},
		{"IKE responder SPI", lIKE.ResponderSPI, rIKE.ResponderSPI, false},
		{"IKE initiator", lIKE.Initiator, !rIKE.Initiator, false},
		{"IKE encryption", lIKE.EncrAlg + fmt.Sprint(lIKE.EncrKeySize), rIKE.EncrAlg + fmt.Sprint(rIKE.EncrKeySize), false},
		{"IKE PRF", lIKE.PRFAlg, rIKE.PRFAlg, false},
		{"IKE DH", lIKE.DHGroup, rIKE.DHGroup, false},
		{"IKE IDs", lIKE.LocalID + "/" + lIKE.RemoteID, rIKE.RemoteID + "/" + rIKE.LocalID, false},
		{"left SPI in = right SPI out", lChild.SPIIn, rChild.SPIOut, false},
		{"left SPI out = right SPI in", lChild.SPIOut, rChild.SPIIn, false},
		{"ESP encryption", lChild.EncrAlg + fmt.Sprint(lChild.EncrKeySize), rChild.EncrAlg + fmt.Sprint(rChild.EncrKeySize), false},
		{"ESP mode", lChild.Mode + lChild.Protocol, rChild.Mode + rChild.Protocol, false},
		{"selectors", fmt.Sprint(lChild.LocalTS, lChild.RemoteTS), fmt.Sprint(rChild.RemoteTS, rChild.LocalTS), false},
	}
	for _, c := range checks {
		if c.l != c.r {
			t.Errorf("%s: left %v, right %v", c.what, c.l, c.r)
		}
	}
	if lIKE.NATLocal || rIKE.NATLocal {
		t.Errorf("NAT seen without one: left nat-local=%v, right nat-local=%v", lIKE.NATLocal, rIKE.NATLocal)
	}
	if lIKE.State != "ESTABLISHED" || !lIKE.Initiator || lIKE.EncrAlg != "AES_GCM_16" || lIKE.DHGroup != "CURVE_25519" {
		t.Errorf("left IKE_SA: %+v", lIKE)
	}
	if lChild.EncrAlg != "AES_GCM_16" || lChild.EncrKeySize != 128 || lChild.Mode != "TUNNEL" || !lChild.Encap ||
		!slices.Equal(lChild.LocalTS, []string{netns.LeftLAN4}) {
		t.Errorf("left CHILD_SA: %+v", lChild)
	}

	// Counters moved: the traffic went through the tunnel.
	_, lChild, err = left.WaitChild("net", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if lChild.PacketsOut < pings || lChild.PacketsIn < pings {
		t.Errorf("left CHILD_SA counted %d out, %d in, want ≥ %d", lChild.PacketsOut, lChild.PacketsIn, pings)
	}

	// The keys in the logs pair up and match the SPIs charon lists.
	lKeys, rKeys := keysOf(t, left, lChild.UniqueID), keysOf(t, right, rChild.UniqueID)
	if lKeys.SPIIn != lChild.SPIIn || lKeys.SPIOut != lChild.SPIOut || !lKeys.Initiator || rKeys.Initiator {
		t.Errorf("left keys %x/%x initiator=%v, listed SPIs %x/%x; right initiator=%v",
			lKeys.SPIIn, lKeys.SPIOut, lKeys.Initiator, lChild.SPIIn, lChild.SPIOut, rKeys.Initiator)
	}
	if string(lKeys.EncrOut) != string(rKeys.EncrIn) || len(lKeys.EncrOut) != 20 {
		t.Errorf("left's outbound key (%d bytes) is not right's inbound key", len(lKeys.EncrOut))
	}

	// And they open what strongSwan sent: every ESP packet from gl decrypts
	// to an inner IPv4 packet from the left LAN to the right one.
	opened := 0
	for _, p := range udpPayloads(t, espPcap) {
		if len(p.payload) < 8 || binary.BigEndian.Uint32(p.payload) == 0 || p.src != netns.WanGL4 {
			continue // IKE behind the non-ESP marker, or the other way
		}
		inner, err := openGCM(lKeys.EncrOut, p.payload)
		if err != nil {
			t.Fatalf("opening ESP from gl with the logged key: %v", err)
		}
		ip := gopacket.NewPacket(inner, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4)
		if ip == nil || ip.(*layers.IPv4).SrcIP.String() != netns.HL4 || ip.(*layers.IPv4).DstIP.String() != netns.HR4 {
			t.Fatalf("decrypted packet is not hl → hr IPv4: % x", inner[:min(len(inner), 40)])
		}
		opened++
	}
	t.Logf("CHILD_SA %x/%x: opened %d ESP packets from gl with the key from charon's log", lChild.SPIIn, lChild.SPIOut, opened)
	if opened < pings {
		t.Errorf("opened %d ESP packets from gl, want ≥ %d", opened, pings)
	}

	if err := left.Terminate("s2s", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if sas, err := right.SAs(); err != nil || len(sas) != 0 {
		t.Errorf("after terminate the right still lists %+v (%v)", sas, err)
	}
	if got, _ := topo.PingCount(netns.HL, netns.HR4, 1, 10*time.Millisecond); got != 0 {
		t.Error("hl still reaches hr with the tunnel down")
	}
}

func keysOf(t *testing.T, c *Charon, id int) ChildKeys {
	t.Helper()
	keys, err := c.ChildKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.UniqueID == id {
			return k
		}
	}
	t.Fatalf("no keys logged for CHILD_SA {%d} (got %d)", id, len(keys))
	return ChildKeys{}
}

// openGCM opens one ESP packet (RFC 4303 with AES-GCM per RFC 4106: 8-byte
// IV, 16-byte ICV; key material is the key followed by a 4-byte salt) and
// returns the inner packet without its trailer.
func openGCM(keymat, esp []byte) ([]byte, error) {
	if len(keymat) < 4 || len(esp) < 8+8+16+2 {
		return nil, errors.New("too short")
	}
	block, err := aes.NewCipher(keymat[:len(keymat)-4])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := append(slices.Clone(keymat[len(keymat)-4:]), esp[8:16]...)
	plain, err := aead.Open(nil, nonce, esp[16:], esp[:8])
	if err != nil {
		return nil, err
	}
	padLen, next := int(plain[len(plain)-2]), plain[len(plain)-1]
	if next != 4 || padLen+2 > len(plain) {
		return nil, fmt.Errorf("trailer: next header %d, pad %d", next, padLen)
	}
	return plain[:len(plain)-2-padLen], nil
}

type udpPayload struct {
	src     string
	payload []byte
}

func readPcap(t *testing.T, path string, each func(gopacket.Packet)) {
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
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		each(gopacket.NewPacket(data, r.LinkType(), gopacket.Default))
	}
}

func udpPayloads(t *testing.T, path string) []udpPayload {
	var out []udpPayload
	readPcap(t, path, func(p gopacket.Packet) {
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		ip, ok4 := p.NetworkLayer().(*layers.IPv4)
		if ok && ok4 {
			out = append(out, udpPayload{src: ip.SrcIP.String(), payload: udp.Payload})
		}
	})
	return out
}

func countPackets(t *testing.T, path string) int {
	n := 0
	readPcap(t, path, func(gopacket.Packet) { n++ })
	return n
}

// gl behind the NAT, IKE and ESP over IPv6, both address families inside:
// the NAT option, NAT-T and IPv6 of the lab, with strongSwan on both ends.
func TestTwoCharonsNATIPv6(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test left out by -short")
	}
	Require(t)
	topo := netns.NewTopology(t, "sw2", netns.WithNAT())
	leftCfg := sitePair(topo.GLWan6, netns.WanGR6, "gw-left", "gw-right", netns.LeftLAN4, netns.RightLAN4)
	rightCfg := sitePair(netns.WanGR6, netns.WanGL6, "gw-right", "gw-left", netns.RightLAN4, netns.LeftLAN4)
	leftCfg.Connections[0].Children[0].LocalTS = append(leftCfg.Connections[0].Children[0].LocalTS, netns.LeftLAN6)
	leftCfg.Connections[0].Children[0].RemoteTS = append(leftCfg.Connections[0].Children[0].RemoteTS, netns.RightLAN6)
	rightCfg.Connections[0].Children[0].LocalTS = append(rightCfg.Connections[0].Children[0].LocalTS, netns.RightLAN6)
	rightCfg.Connections[0].Children[0].RemoteTS = append(rightCfg.Connections[0].Children[0].RemoteTS, netns.LeftLAN6)
	left := Start(t, topo, netns.GL, leftCfg, Options{})
	right := Start(t, topo, netns.GR, rightCfg, Options{})

	if err := left.Initiate("net", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	lIKE, _, err := left.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rIKE, _, err := right.WaitChild("net", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// (Without a NAT each libipsec charon claims one too, so nat-remote
	// alone proves nothing; nat-local does.)
	if !lIKE.NATLocal || !rIKE.NATRemote || rIKE.NATLocal {
		t.Errorf("NAT detection: left nat-local=%v, right nat-remote=%v nat-local=%v", lIKE.NATLocal, rIKE.NATRemote, rIKE.NATLocal)
	}
	if rIKE.RemoteHost != netns.WanGL6 || rIKE.RemotePort < netns.NATPortMin || rIKE.RemotePort > netns.NATPortMax {
		t.Errorf("right sees the left at [%s]:%d, want the NAT's address and a mapped port", rIKE.RemoteHost, rIKE.RemotePort)
	}
	for _, to := range []string{netns.HR4, netns.HR6} {
		if err := topo.Ping(netns.HL, to, 3); err != nil {
			t.Errorf("through strongSwan behind NAT: %v", err)
		}
	}
	if _, err := topo.TCPTransfer(netns.HL, netns.HR, netns.HR6, 256<<10); err != nil {
		t.Errorf("TCP over IPv6 through strongSwan behind NAT: %v", err)
	}
}

// Certificates from NewCA, identities that are DNs with spaces and commas,
// and three key types: pubkey authentication between two charons.
func TestTwoCharonsPubkey(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test left out by -short")
	}
	Require(t)
	ca, err := NewCA("isle test CA")
	if err != nil {
		t.Fatal(err)
	}
	for i, kt := range []struct {
		name        string
		left, right KeyType
	}{{"ecdsa", ECDSAP256, ECDSAP256}, {"rsa-ed25519", RSA2048, Ed25519}} {
		t.Run(kt.name, func(t *testing.T) {
			dn := func(cn string) pkix.Name {
				return pkix.Name{Country: []string{"CH"}, Organization: []string{"isle test"}, CommonName: cn}
			}
			// The DN as strongSwan reports it, written out by hand.
			id := func(cn string) string { return "C=CH, O=isle test, CN=" + cn }
			leftCred, err := ca.Issue(dn("gw-left"), kt.left, "left.isle.test")
			if err != nil {
				t.Fatal(err)
			}
			rightCred, err := ca.Issue(dn("gw-right"), kt.right, "right.isle.test")
			if err != nil {
				t.Fatal(err)
			}
			topo := netns.NewTopology(t, fmt.Sprintf("sw3%d", i))
			side := func(name string, cred *Credential, local, remote, localTS, remoteTS, peerDN string) (Config, Options) {
				files, cert := ca.Files(name, cred)
				cfg := sitePair(local, remote, "", "", localTS, remoteTS)
				cfg.Secrets = nil
				cfg.Connections[0].Local = Auth{Auth: "pubkey", ID: IdentityDN(cred.Cert.Subject), Certs: []string{cert}}
				cfg.Connections[0].Remote = Auth{Auth: "pubkey", ID: peerDN, CACerts: []string{"ca.pem"}}
				return cfg, Options{Files: files}
			}
			lc, lo := side("left", leftCred, netns.WanGL4, netns.WanGR4, netns.LeftLAN4, netns.RightLAN4, IdentityDN(rightCred.Cert.Subject))
			rc, ro := side("right", rightCred, netns.WanGR4, netns.WanGL4, netns.RightLAN4, netns.LeftLAN4, IdentityDN(leftCred.Cert.Subject))
			left := Start(t, topo, netns.GL, lc, lo)
			right := Start(t, topo, netns.GR, rc, ro)
			if err := left.Initiate("net", 20*time.Second); err != nil {
				t.Fatal(err)
			}
			lIKE, _, err := left.WaitChild("net", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := right.WaitChild("net", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if lIKE.RemoteID != id("gw-right") {
				t.Errorf("left authenticated %q, want %q", lIKE.RemoteID, id("gw-right"))
			}
			if err := topo.Ping(netns.HL, netns.HR4, 2); err != nil {
				t.Error(err)
			}
		})
	}
}
