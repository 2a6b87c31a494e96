package interop

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/status"
	"github.com/isle-ipsec/isle/internal/swan"
)

// authKind is how a side authenticates (and expects its peer to).
type authKind int

const (
	authSame authKind = iota // swanAuth only: as isle
	authPSK
	authRSA
	authECDSA
	authEd25519
	authChain // RSA certificates under two intermediates: IKE_AUTH needs fragments
)

func (a authKind) pubkey() bool { return a != authPSK }

// setup is one pairing of isle and charon.
type setup struct {
	isleInit  bool // isle initiates (start_action = start); else charon does (swanctl --initiate)
	isleRight bool // isle in gr and charon in gl (behind the NAT in a NAT lab); default the reverse

	isleIKE, isleESP []string // nil: keys left out, isle's defaults
	swanIKE, swanESP []string // nil: strongSwan's "default"
	wantIKE, wantESP string   // when set, the proposal both must have chosen (strongSwan notation)

	auth     authKind // both sides, unless swanAuth says otherwise
	swanAuth authKind

	// Traffic selectors; nil: each gateway's own LAN and the other's.
	isleLocalTS, isleRemoteTS []string
	swanLocalTS, swanRemoteTS []string
	wantIsleLocalTS           []string // when set, what isle must show after narrowing
	wantIsleRemoteTS          []string

	isleConn  []string // extra TOML lines in [connections.peer]
	isleChild []string // extra TOML lines in [connections.peer.children.net]
	swanConn  func(*swan.Connection)
	swanSet   string // extra strongswan.conf lines in the charon section

	islePSK, swanPSK           string // "": the shared test key
	isleRemoteID, swanRemoteID string // "": the peer's real identity
	untrusted                  string // "isle" or "swan": that side's certificate comes from a CA the other does not trust

	isleRetransmit string // ISLE_IKE_RETRANSMIT for isle run ("1s,3"): find a dead peer in seconds

	outer6 bool // IKE and ESP between the gateways over IPv6
	dual   bool // selectors of both families (IPv4 and IPv6 LANs), traffic of both
}

const testPSK = "isle-interop-psk-0123456789abcdef"

// pair is isle and charon running in one lab, with what each was given.
type pair struct {
	t    *testing.T
	topo *netns.Topology
	s    setup
	dir  string

	isleNode, swanNode netns.Node
	isleAddr, isleSeen string // isle's own address, and charon's as isle addresses it
	swanAddr, swanSeen string

	isleID, swanID string
	isleFiles      map[string][]byte // file name in dir → contents
	swanFiles      map[string][]byte

	isle    *netns.Process
	sock    string
	charon  *swan.Charon
	charons int // how many charons this pair started (log names)
}

// newPair prepares credentials and configurations; start runs the daemons.
func newPair(t *testing.T, topo *netns.Topology, s setup) *pair {
	t.Helper()
	swan.Require(t)
	p := &pair{t: t, topo: topo, s: s, dir: netns.TestDir(t, topo.Prefix), isleFiles: map[string][]byte{}, swanFiles: map[string][]byte{}}
	p.isleNode, p.swanNode = netns.GL, netns.GR
	p.isleAddr, p.isleSeen = topo.GLWan4, netns.WanGR4
	p.swanAddr, p.swanSeen = netns.WanGR4, netns.WanGL4
	if s.isleRight {
		p.isleNode, p.swanNode = netns.GR, netns.GL
		p.isleAddr, p.isleSeen = netns.WanGR4, netns.WanGL4
		p.swanAddr, p.swanSeen = topo.GLWan4, netns.WanGR4
	}
	if s.outer6 {
		p.isleAddr, p.isleSeen = topo.GLWan6, netns.WanGR6
		p.swanAddr, p.swanSeen = netns.WanGR6, netns.WanGL6
		if s.isleRight {
			p.isleAddr, p.isleSeen = netns.WanGR6, netns.WanGL6
			p.swanAddr, p.swanSeen = topo.GLWan6, netns.WanGR6
		}
	}
	// The control socket's path must stay under 108 bytes, which a log
	// directory named after the test may not.
	sockDir, err := os.MkdirTemp("", "io")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	p.sock = filepath.Join(sockDir, "isle.sock")
	p.credentials()
	return p
}

// lans is the LAN behind gateway n: IPv4, and IPv6 too in a dual case.
func (p *pair) lans(n netns.Node) []string {
	lan := []string{netns.RightLAN4, netns.RightLAN6}
	if n == netns.GL {
		lan = []string{netns.LeftLAN4, netns.LeftLAN6}
	}
	if !p.s.dual {
		lan = lan[:1]
	}
	return lan
}

func or(v, def []string) []string {
	if v == nil {
		return def
	}
	return v
}

func (p *pair) swanAuthKind() authKind {
	if p.s.swanAuth != authSame {
		return p.s.swanAuth
	}
	return p.s.auth
}

// credentials makes identities, keys and certificates for both sides.
func (p *pair) credentials() {
	t := p.t
	isleAuth, swanAuth := p.s.auth, p.swanAuthKind()
	// FQDN identities, unless both use certificates: then the subject DNs,
	// strongSwan's default for a certificate.
	p.isleID, p.swanID = "gw-isle.example", "gw-swan.example"
	if !isleAuth.pubkey() && !swanAuth.pubkey() {
		return
	}
	kind := map[authKind]keyKind{authRSA: keyRSA, authECDSA: keyECDSA, authEd25519: keyEd25519, authChain: keyRSA,
		authPSK: keyECDSA}
	caKind := keyECDSA
	if isleAuth == authChain {
		caKind = keyRSA
	}
	root := newAuthority(t, "isle interop root", caKind, nil)
	ca := root
	if isleAuth == authChain {
		ca = newAuthority(t, "isle interop intermediate 1", keyRSA, ca)
		ca = newAuthority(t, "isle interop intermediate 2", keyRSA, ca)
	}
	isleCA, swanCA := ca, ca
	// Both trust root only; an untrusted side's certificate comes from
	// another root with the same name.
	switch p.s.untrusted {
	case "isle":
		isleCA = newAuthority(t, "isle interop root", keyECDSA, nil)
	case "swan":
		swanCA = newAuthority(t, "isle interop root", keyECDSA, nil)
	}
	isleCred := isleCA.issue(t, p.isleID, kind[isleAuth])
	swanCred := swanCA.issue(t, p.swanID, kind[swanAuth])
	if isleAuth.pubkey() && swanAuth.pubkey() {
		p.isleID = swan.IdentityDN(isleCred.cert.Subject)
		p.swanID = swan.IdentityDN(swanCred.cert.Subject)
	}
	if isleAuth.pubkey() {
		var chain []byte
		for _, c := range append([]*x509.Certificate{isleCred.cert}, isleCred.chain...) {
			chain = append(chain, pemCert(c)...)
		}
		p.isleFiles["isle-cert.pem"] = chain
		p.isleFiles["isle-key.pem"] = pemKey(t, isleCred.key)
		p.isleFiles["ca.pem"] = pemCert(root.cert)
	}
	if swanAuth.pubkey() {
		p.swanFiles["x509/gw.pem"] = pemCert(swanCred.cert)
		p.swanFiles["private/gw.pem"] = pemKey(t, swanCred.key)
		p.swanFiles["x509ca/ca.pem"] = pemCert(root.cert)
		for i, c := range swanCred.chain {
			p.swanFiles[fmt.Sprintf("x509ca/im%d.pem", i)] = pemCert(c)
		}
	}
}

func tomlList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// isleConfig is isle.toml for this pair.
func (p *pair) isleConfig() string {
	s := p.s
	var b strings.Builder
	fmt.Fprintf(&b, "[gateway]\ninterface = \"isle0\"\nmtu = 1400\ncontrol = %q\nlog_level = \"debug\"\nlog_format = \"text\"\n\n", p.sock)
	fmt.Fprintf(&b, "[connections.peer]\nlocal_addrs = [%q]\nremote_addrs = [%q]\nfragmentation = true\n", p.isleAddr, p.isleSeen)
	if s.isleIKE != nil {
		fmt.Fprintf(&b, "proposals = %s\n", tomlList(s.isleIKE))
	}
	for _, l := range s.isleConn {
		b.WriteString(l + "\n")
	}
	remoteID := p.swanID
	if s.isleRemoteID != "" {
		remoteID = s.isleRemoteID
	}
	if s.auth.pubkey() {
		fmt.Fprintf(&b, "\n[connections.peer.local]\nauth = \"pubkey\"\nid = %q\ncert = %q\nkey = %q\n", p.isleID,
			filepath.Join(p.dir, "isle-cert.pem"), filepath.Join(p.dir, "isle-key.pem"))
		fmt.Fprintf(&b, "\n[connections.peer.remote]\nauth = \"pubkey\"\nid = %q\ncacert = %q\n", remoteID, filepath.Join(p.dir, "ca.pem"))
	} else {
		fmt.Fprintf(&b, "\n[connections.peer.local]\nauth = \"psk\"\nid = %q\n", p.isleID)
		fmt.Fprintf(&b, "\n[connections.peer.remote]\nauth = \"psk\"\nid = %q\n", remoteID)
	}
	start := "none"
	if s.isleInit {
		start = "start"
	}
	fmt.Fprintf(&b, "\n[connections.peer.children.net]\nlocal_ts = %s\nremote_ts = %s\nstart_action = %q\n",
		tomlList(or(s.isleLocalTS, p.lans(p.isleNode))), tomlList(or(s.isleRemoteTS, p.lans(p.swanNode))), start)
	if s.isleESP != nil {
		fmt.Fprintf(&b, "esp_proposals = %s\n", tomlList(s.isleESP))
	}
	for _, l := range s.isleChild {
		b.WriteString(l + "\n")
	}
	if !s.auth.pubkey() {
		psk := testPSK
		if s.islePSK != "" {
			psk = s.islePSK
		}
		fmt.Fprintf(&b, "\n[secrets.peer]\nids = %s\nsecret = %q\n", tomlList([]string{p.isleID, remoteID}), psk)
	}
	return b.String()
}

// swanConfig is charon's swanctl.conf for this pair.
func (p *pair) swanConfig() swan.Config {
	s := p.s
	remoteID := p.isleID
	if s.swanRemoteID != "" {
		remoteID = s.swanRemoteID
	}
	conn := swan.Connection{
		Name: "peer", Version: 2,
		LocalAddrs: []string{p.swanAddr}, RemoteAddrs: []string{p.swanSeen},
		Proposals: or(s.swanIKE, []string{"default"}),
		Children: []swan.Child{{
			Name:         "net",
			LocalTS:      or(s.swanLocalTS, p.lans(p.swanNode)),
			RemoteTS:     or(s.swanRemoteTS, p.lans(p.isleNode)),
			ESPProposals: or(s.swanESP, []string{"default"}),
		}},
	}
	var cfg swan.Config
	if p.swanAuthKind().pubkey() {
		conn.Local = swan.Auth{Auth: "pubkey", ID: p.swanID, Certs: []string{"gw.pem"}}
		conn.Remote = swan.Auth{Auth: "pubkey", ID: remoteID, CACerts: []string{"ca.pem"}}
	} else {
		conn.Local = swan.Auth{Auth: "psk", ID: p.swanID}
		conn.Remote = swan.Auth{Auth: "psk", ID: remoteID}
		psk := testPSK
		if s.swanPSK != "" {
			psk = s.swanPSK
		}
		cfg.Secrets = []swan.Secret{{Type: "ike", IDs: []string{p.swanID, remoteID}, Secret: psk}}
	}
	if s.swanConn != nil {
		s.swanConn(&conn)
	}
	cfg.Connections = []swan.Connection{conn}
	return cfg
}

// start runs both daemons; the initiator's peer first, so that it is ready
// when the first IKE_SA_INIT comes.
func (p *pair) start() {
	if p.s.isleInit {
		p.startCharon()
		p.startIsle()
	} else {
		p.startIsle()
		p.startCharon()
	}
}

func (p *pair) startCharon() {
	t := p.t
	t.Helper()
	p.charons++
	settings := "  retransmit_timeout = 1\n  retransmit_tries = 3\n" + p.s.swanSet
	p.charon = swan.Start(t, p.topo, p.swanNode, p.swanConfig(), swan.Options{Settings: settings, Files: p.swanFiles})
	recorder.Lock()
	defer recorder.Unlock()
	if recorder.strongSwan == "" {
		if out, err := p.charon.Swanctl("--version", "--daemon"); err == nil {
			recorder.strongSwan = daemonVersion(out) + " (charon with kernel-libipsec)"
		}
	}
}

var versionLine = regexp.MustCompile(`strongSwan\s+\S+`)

// daemonVersion picks "strongSwan 5.9.8" out of swanctl --version --daemon.
func daemonVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "version") || strings.Contains(line, "daemon") {
			if m := regexp.MustCompile(`\d+\.\d+\.\d+`).FindString(line); m != "" {
				return "strongSwan " + m
			}
		}
	}
	if m := versionLine.FindString(out); m != "" {
		return m
	}
	return "strongSwan (unknown version)"
}

func (p *pair) startIsle() {
	t := p.t
	t.Helper()
	for name, data := range p.isleFiles {
		if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(p.dir, "isle.toml")
	if err := os.WriteFile(cfg, []byte(p.isleConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := isleBinary(t)
	if out, err := exec.Command(bin, "check", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("isle check refuses the generated configuration: %v\n%s\n%s", err, out, p.isleConfig())
	}
	cmd := p.topo.Command(p.isleNode, bin, "run", "-c", cfg)
	if p.s.isleRetransmit != "" {
		cmd.Env = append(os.Environ(), "ISLE_IKE_RETRANSMIT="+p.s.isleRetransmit)
	}
	proc, err := netns.StartCommand(cmd, filepath.Join(p.dir, "isle.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.isle = proc
	t.Cleanup(func() {
		proc.Stop()
		if t.Failed() {
			t.Logf("isle configuration:\n%s\nisle log (%s):\n%s", p.isleConfig(), proc.LogPath, proc.Log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := p.status(); err == nil {
			return
		}
		if proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("isle run did not come up (control socket):\n%s", proc.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isleCmd runs an isle control verb against this pair's gateway.
func (p *pair) isleCmd(args ...string) (string, error) {
	args = append(args, "--socket", p.sock)
	out, err := exec.Command(isleBinary(p.t), args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("isle %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p *pair) status() (status.Status, error) {
	out, err := p.isleCmd("status", "--json")
	if err != nil {
		return status.Status{}, err
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("isle status --json: %w: %s", err, out)
	}
	return st, nil
}

// isleSAs is isle's IKE_SAs of the connection "peer".
func (p *pair) isleSAs() ([]status.IKESA, error) {
	st, err := p.status()
	if err != nil {
		return nil, err
	}
	for _, c := range st.Connections {
		if c.Name == "peer" {
			return c.IKESAs, nil
		}
	}
	return nil, nil
}

func (p *pair) swanSAs() ([]swan.IKESA, error) {
	sas, err := p.charon.SAs()
	if err != nil {
		return nil, err
	}
	var out []swan.IKESA
	for _, sa := range sas {
		if sa.Name == "peer" {
			out = append(out, sa)
		}
	}
	return out, nil
}

// snapshot is one moment where both daemons agree on one IKE_SA with one
// CHILD_SA.
type snapshot struct {
	isleIKE   status.IKESA
	isleChild status.Child
	swanIKE   swan.IKESA
	swanChild swan.ChildSA
}

// swanIKEProposal writes charon's IKE algorithms as isle's status does.
func swanIKEProposal(sa swan.IKESA) string {
	return joinAlgs(encName(sa.EncrAlg, sa.EncrKeySize), sa.IntegAlg, sa.PRFAlg, sa.DHGroup)
}

// swanChildProposal writes charon's ESP algorithms as isle's status does,
// leaving out the key exchange of a PFS rekey: the cases that use PFS
// check that apart (see pfsShown), so that its absence from isle's status
// does not hide whether the rest agrees.
func swanChildProposal(c swan.ChildSA) string {
	esn := ""
	if c.ESN {
		esn = "ESN"
	}
	return joinAlgs(encName(c.EncrAlg, c.EncrKeySize), c.IntegAlg, esn)
}

// dropKE removes a key exchange group from a status proposal string.
func dropKE(proposal string) string {
	var keep []string
	for _, part := range strings.Split(proposal, "/") {
		if !strings.HasPrefix(part, "MODP_") && !strings.HasPrefix(part, "ECP_") && !strings.HasPrefix(part, "CURVE_") {
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, "/")
}

func encName(alg string, bits int) string {
	if strings.HasPrefix(alg, "AES_") && bits > 0 {
		return fmt.Sprintf("%s_%d", alg, bits)
	}
	return alg
}

func joinAlgs(parts ...string) string {
	var keep []string
	for _, s := range parts {
		if s != "" {
			keep = append(keep, s)
		}
	}
	return strings.Join(keep, "/")
}

func sortedTS(v []string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// compare takes one look at both daemons and says where they disagree.
// strict also wants no other IKE_SA or CHILD_SA (old ones of a rekey)
// left on either side.
func (p *pair) compare(strict bool) (snapshot, error) {
	var snap snapshot
	isleSAs, err := p.isleSAs()
	if err != nil {
		return snap, err
	}
	swanSAs, err := p.swanSAs()
	if err != nil {
		return snap, fmt.Errorf("charon's SAs: %w", err)
	}
	var ie []status.IKESA
	for _, sa := range isleSAs {
		if sa.State == "ESTABLISHED" {
			ie = append(ie, sa)
		}
	}
	var se []swan.IKESA
	for _, sa := range swanSAs {
		if sa.State == "ESTABLISHED" {
			se = append(se, sa)
		}
	}
	if len(ie) != 1 || len(se) != 1 || strict && (len(isleSAs) != 1 || len(swanSAs) != 1) {
		return snap, fmt.Errorf("IKE_SAs: isle has %d (%d established), charon %d (%d established)", len(isleSAs), len(ie), len(swanSAs), len(se))
	}
	snap.isleIKE, snap.swanIKE = ie[0], se[0]
	var ic []status.Child
	for _, c := range snap.isleIKE.Children {
		if c.Name == "net" && c.State == "INSTALLED" {
			ic = append(ic, c)
		}
	}
	var sc []swan.ChildSA
	for _, c := range snap.swanIKE.Children {
		if c.Name == "net" && c.State == "INSTALLED" {
			sc = append(sc, c)
		}
	}
	if len(ic) != 1 || len(sc) != 1 || strict && (len(snap.isleIKE.Children) != 1 || len(snap.swanIKE.Children) != 1) {
		return snap, fmt.Errorf("CHILD_SAs: isle has %d (%d installed), charon %d (%d installed)",
			len(snap.isleIKE.Children), len(ic), len(snap.swanIKE.Children), len(sc))
	}
	snap.isleChild, snap.swanChild = ic[0], sc[0]
	i, s, ic0, sc0 := snap.isleIKE, snap.swanIKE, snap.isleChild, snap.swanChild
	var diffs []string
	diff := func(what string, isle, swan any) {
		if fmt.Sprint(isle) != fmt.Sprint(swan) {
			diffs = append(diffs, fmt.Sprintf("%s: isle %v, charon %v", what, isle, swan))
		}
	}
	diff("IKE SPIi", strings.ToLower(i.SPIi), strings.ToLower(s.InitiatorSPI))
	diff("IKE SPIr", strings.ToLower(i.SPIr), strings.ToLower(s.ResponderSPI))
	diff("IKE initiator (isle's flag vs not charon's)", i.Initiator, !s.Initiator)
	diff("IKE proposal", i.Proposal, swanIKEProposal(s))
	diff("ESP SPI isle in / charon out", strings.ToLower(ic0.SPIIn), fmt.Sprintf("%08x", sc0.SPIOut))
	diff("ESP SPI isle out / charon in", strings.ToLower(ic0.SPIOut), fmt.Sprintf("%08x", sc0.SPIIn))
	diff("ESP proposal", dropKE(ic0.Proposal), swanChildProposal(sc0))
	diff("protocol", ic0.Protocol, sc0.Protocol)
	diff("mode", ic0.Mode, sc0.Mode)
	diff("UDP encapsulation", ic0.Encap, sc0.Encap)
	diff("isle local_ts / charon remote_ts", sortedTS(ic0.LocalTS), sortedTS(sc0.RemoteTS))
	diff("isle remote_ts / charon local_ts", sortedTS(ic0.RemoteTS), sortedTS(sc0.LocalTS))
	if p.s.wantIKE != "" && i.Proposal != p.s.wantIKE {
		diffs = append(diffs, fmt.Sprintf("IKE proposal %s, want %s", i.Proposal, p.s.wantIKE))
	}
	if p.s.wantESP != "" && ic0.Proposal != p.s.wantESP {
		diffs = append(diffs, fmt.Sprintf("ESP proposal %s, want %s", ic0.Proposal, p.s.wantESP))
	}
	if w := p.s.wantIsleLocalTS; w != nil && !slices.Equal(sortedTS(ic0.LocalTS), sortedTS(w)) {
		diffs = append(diffs, fmt.Sprintf("isle local_ts %v, want %v", ic0.LocalTS, w))
	}
	if w := p.s.wantIsleRemoteTS; w != nil && !slices.Equal(sortedTS(ic0.RemoteTS), sortedTS(w)) {
		diffs = append(diffs, fmt.Sprintf("isle remote_ts %v, want %v", ic0.RemoteTS, w))
	}
	if len(diffs) > 0 {
		return snap, fmt.Errorf("isle and charon disagree:\n  %s", strings.Join(diffs, "\n  "))
	}
	return snap, nil
}

// waitAgree waits until both daemons show the same single IKE_SA and
// CHILD_SA (strict: and nothing else).
func (p *pair) waitAgree(timeout time.Duration, strict bool) snapshot {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		snap, err := p.compare(strict)
		if err == nil {
			return snap
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// establish brings the tunnel up (charon initiates unless isle does at
// start) and returns the agreed SAs.
func (p *pair) establish() snapshot {
	p.t.Helper()
	if !p.s.isleInit {
		if err := p.charon.Initiate("net", 20*time.Second); err != nil {
			p.t.Fatalf("charon could not initiate: %v", err)
		}
	}
	snap := p.waitAgree(20*time.Second, true)
	// Only the first IKE_SA: a rekey makes its initiator the new one's.
	if snap.isleIKE.Initiator != p.s.isleInit {
		p.t.Errorf("isle is initiator=%v of the IKE_SA, the case wants %v", snap.isleIKE.Initiator, p.s.isleInit)
	}
	return snap
}

// traffic sends pings and a byte-checked TCP stream each way between the
// hosts and checks that both daemons counted packets on the CHILD_SA.
func (p *pair) traffic() {
	t := p.t
	t.Helper()
	const size = 256 << 10
	pairs := [][2]string{{netns.HL4, netns.HR4}}
	if p.s.dual {
		pairs = append(pairs, [2]string{netns.HL6, netns.HR6})
	}
	for _, a := range pairs {
		hl, hr := a[0], a[1]
		if err := p.topo.Ping(netns.HL, hr, 3); err != nil {
			t.Fatalf("hl → hr: %v", err)
		}
		if err := p.topo.Ping(netns.HR, hl, 3); err != nil {
			t.Fatalf("hr → hl: %v", err)
		}
		if _, err := p.topo.TCPTransfer(netns.HL, netns.HR, hr, size); err != nil {
			t.Fatalf("TCP hl → hr (%s): %v", hr, err)
		}
		if _, err := p.topo.TCPTransfer(netns.HR, netns.HL, hl, size); err != nil {
			t.Fatalf("TCP hr → hl (%s): %v", hl, err)
		}
	}
	snap := p.waitAgree(10*time.Second, false)
	// Both ways carried at least the two streams.
	if c := snap.isleChild; c.BytesIn < size || c.BytesOut < size {
		t.Errorf("isle's CHILD_SA counted %d bytes in, %d out; want at least %d each way", c.BytesIn, c.BytesOut, size)
	}
	if c := snap.swanChild; c.BytesIn < size || c.BytesOut < size {
		t.Errorf("charon's CHILD_SA counted %d bytes in, %d out; want at least %d each way", c.BytesIn, c.BytesOut, size)
	}
}

// waitLog waits until the file at path has a line matching re.
func waitLog(t *testing.T, who, path, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if loc := rx.FindIndex(b); loc != nil {
			// The whole line (or lines) of the match, for the test's log.
			start := bytes.LastIndexByte(b[:loc[0]], '\n') + 1
			end := len(b)
			if i := bytes.IndexByte(b[loc[1]:], '\n'); i >= 0 {
				end = loc[1] + i
			}
			return string(b[start:end])
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's log has no line matching %q after %v", who, re, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *pair) waitIsleLog(re string, timeout time.Duration) string {
	p.t.Helper()
	return waitLog(p.t, "isle", p.isle.LogPath, re, timeout)
}

func (p *pair) waitSwanLog(re string, timeout time.Duration) string {
	p.t.Helper()
	return waitLog(p.t, "charon", p.charon.LogPath(), re, timeout)
}

// block drops IKE and ESP-in-UDP that node sends (out) or receives (in),
// until the returned function (also run at cleanup) lifts it.
func (p *pair) block(node netns.Node, hook string) func() {
	t := p.t
	t.Helper()
	rules := fmt.Sprintf("table inet ioblock {\n  chain c {\n    type filter hook %s priority 0;\n    udp dport { 500, 4500 } drop\n    udp sport { 500, 4500 } drop\n  }\n}\n", hook)
	cmd := p.topo.Command(node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	lifted := false
	lift := func() {
		if !lifted {
			lifted = true
			p.topo.Run(node, "nft", "delete", "table", "inet", "ioblock")
		}
	}
	t.Cleanup(lift)
	return lift
}
