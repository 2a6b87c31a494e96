package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
)

// ikeLab is two `isle run` gateways that negotiate their SAs with IKEv2.
type ikeLab struct {
	t           *testing.T
	dir         string
	topo        *netns.Topology
	o           ikeOpts
	left, right *ikeGW
}

// ikeGW is one gateway of an ikeLab.
type ikeGW struct {
	side    string
	node    netns.Node
	config  string
	sock    string
	proc    *netns.Process
	logs    []string // logs of earlier runs (restarts)
	started time.Time
	mu      sync.Mutex
}

// ikeOpts shapes the two configurations.
type ikeOpts struct {
	nat         bool
	loss        int
	outer6      bool
	encap       bool
	childRekey  string // child rekey_time, "" = none
	ikeRekey    string // connection rekey_time, "" = none
	dpd         string // dpd_delay, "" = none
	dpdAction   string // left's dpd_action (default clear)
	rightStart  string // right's start_action (default none: responder)
	rightAny    bool   // right accepts any peer (remote_addrs = ["%any"])
	cert        bool   // pubkey authentication with the config testdata's PKI
	keylog      bool
	metrics     string            // left's metrics address
	retransmit  string            // ISLE_IKE_RETRANSMIT for both
	leftExtra   string            // appended to left's file
	rightExtra  string            // appended to right's file
	childExtra  string            // lines added to both children tables
	leftChild   map[string]string // lines added to one of left's children tables, by child name
	leftPSK     string            // left's secret, when it should differ from right's
	rightProps  string            // right's IKE proposals, when they should differ
	splitFamily bool              // two children: lan (IPv4) and lan6 (IPv6) instead of one for both
	proposals   string
	espProposal string
}

func (o ikeOpts) config(topo *netns.Topology, dir string, left bool) string {
	side, local, remote := "left", topo.GLWan4, netns.WanGR4
	lid, rid := "left.isle.test", "right.isle.test"
	lts, rts := `["10.1.0.0/24", "fd00:1::/64"]`, `["10.2.0.0/24", "fd00:2::/64"]`
	start, dpdAction := "start", o.dpdAction
	if o.outer6 {
		local, remote = topo.GLWan6, netns.WanGR6
	}
	if !left {
		side, local, remote = "right", netns.WanGR4, netns.WanGL4
		if o.outer6 {
			local, remote = netns.WanGR6, netns.WanGL6
		}
		lid, rid, lts, rts = rid, lid, rts, lts
		start, dpdAction = o.rightStart, "clear"
		if start == "" {
			start = "none"
		}
	}
	if dpdAction == "" {
		dpdAction = "clear"
	}
	props, esp := o.proposals, o.espProposal
	if props == "" {
		props = "aes128gcm16-prfsha256-x25519"
	}
	if !left && o.rightProps != "" {
		props = o.rightProps
	}
	if esp == "" {
		esp = "aes128gcm16"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[gateway]\ninterface = \"isle0\"\nlog_level = \"debug\"\ncontrol = %q\n", filepath.Join(dir, side+".sock"))
	if o.keylog {
		fmt.Fprintf(&b, "keylog = %q\n", filepath.Join(dir, side+"-keys"))
	}
	if left && o.metrics != "" {
		fmt.Fprintf(&b, "metrics = %q\n", o.metrics)
	}
	remoteAddrs := fmt.Sprintf("%q", remote)
	if !left && o.rightAny {
		remoteAddrs = `"%any"`
	}
	fmt.Fprintf(&b, "\n[connections.site]\nlocal_addrs = [%q]\nremote_addrs = [%s]\nproposals = [%q]\nencap = %v\n", local, remoteAddrs, props, o.encap)
	if o.dpd != "" {
		fmt.Fprintf(&b, "dpd_delay = %q\n", o.dpd)
	}
	if o.ikeRekey != "" {
		fmt.Fprintf(&b, "rekey_time = %q\n", o.ikeRekey)
	}
	if o.cert {
		certs := filepath.Join(repoRoot(nil), "testdata", "config", "certs")
		lname, rname := "gw-a", "gw-b"
		if !left {
			lname, rname = rname, lname
		}
		_ = rname
		fmt.Fprintf(&b, "\n[connections.site.local]\nauth = \"pubkey\"\ncert = %q\nkey = %q\n",
			filepath.Join(certs, lname+".pem"), filepath.Join(certs, lname+".key"))
		fmt.Fprintf(&b, "\n[connections.site.remote]\nauth = \"pubkey\"\nid = \"%%any\"\ncacert = %q\n", filepath.Join(certs, "ca.pem"))
	} else {
		fmt.Fprintf(&b, "\n[connections.site.local]\nauth = \"psk\"\nid = %q\n", lid)
		fmt.Fprintf(&b, "\n[connections.site.remote]\nauth = \"psk\"\nid = %q\n", rid)
	}
	type childTS struct{ name, l, r string }
	children := []childTS{{"lan", lts, rts}}
	if o.splitFamily {
		l4, r4, l6, r6 := `["10.1.0.0/24"]`, `["10.2.0.0/24"]`, `["fd00:1::/64"]`, `["fd00:2::/64"]`
		if !left {
			l4, r4, l6, r6 = r4, l4, r6, l6
		}
		children = []childTS{{"lan", l4, r4}, {"lan6", l6, r6}}
	}
	for _, ch := range children {
		fmt.Fprintf(&b, "\n[connections.site.children.%s]\nlocal_ts = %s\nremote_ts = %s\nesp_proposals = [%q]\nstart_action = %q\ndpd_action = %q\n",
			ch.name, ch.l, ch.r, esp, start, dpdAction)
		if o.childRekey != "" {
			fmt.Fprintf(&b, "rekey_time = %q\n", o.childRekey)
		}
		b.WriteString(o.childExtra)
		if left {
			b.WriteString(o.leftChild[ch.name])
		}
	}
	if !o.cert {
		secret := "a pre-shared key for the isle e2e tests"
		if left && o.leftPSK != "" {
			secret = o.leftPSK
		}
		fmt.Fprintf(&b, "\n[secrets.site]\nids = [%q, %q]\nsecret = %q\n", lid, rid, secret)
	}
	if left {
		b.WriteString(o.leftExtra)
	} else {
		b.WriteString(o.rightExtra)
	}
	return b.String()
}

// startIKELab builds the topology and starts both gateways (right first,
// the responder), without waiting for the tunnel.
func startIKELab(t *testing.T, prefix string, o ikeOpts) *ikeLab {
	t.Helper()
	needLab(t)
	bin := isleBinary(t)
	var opts []netns.Option
	if o.nat {
		opts = append(opts, netns.WithNAT())
	}
	if o.loss > 0 {
		opts = append(opts, netns.WithLoss(o.loss))
	}
	topo := netns.NewTopology(t, prefix, opts...)
	dir := t.TempDir()
	l := &ikeLab{t: t, dir: dir, topo: topo, o: o}
	l.right = &ikeGW{side: "right", node: netns.GR}
	l.left = &ikeGW{side: "left", node: netns.GL}
	for _, g := range []*ikeGW{l.right, l.left} {
		g.config = filepath.Join(dir, g.side+".toml")
		g.sock = filepath.Join(dir, g.side+".sock")
		if err := os.WriteFile(g.config, []byte(o.config(topo, dir, g == l.left)), 0o600); err != nil {
			t.Fatal(err)
		}
		if o.keylog {
			os.MkdirAll(filepath.Join(dir, g.side+"-keys"), 0o700)
		}
	}
	l.start(l.right)
	l.waitListening(l.right)
	l.start(l.left)
	_ = bin
	return l
}

// start runs (or runs again) a gateway.
func (l *ikeLab) start(g *ikeGW) {
	l.t.Helper()
	cmd := l.topo.Command(g.node, isleBinary(l.t), "run", "-c", g.config)
	cmd.Env = os.Environ()
	if l.o.retransmit != "" {
		cmd.Env = append(cmd.Env, "ISLE_IKE_RETRANSMIT="+l.o.retransmit)
	}
	g.mu.Lock()
	n := len(g.logs)
	g.mu.Unlock()
	p, err := netns.StartCommand(cmd, filepath.Join(l.topo.LogDir(), fmt.Sprintf("isle-%s-%d.log", g.side, n)))
	if err != nil {
		l.t.Fatal(err)
	}
	g.mu.Lock()
	g.proc = p
	g.started = time.Now()
	g.mu.Unlock()
	l.t.Cleanup(func() {
		p.Stop()
		if l.t.Failed() {
			l.t.Logf("isle %s (run %d) log:\n%s", g.side, n, p.Log())
		}
	})
}

// waitListening waits until a gateway answers on its control socket: its
// sockets are open from then on.
func (l *ikeLab) waitListening(g *ikeGW) {
	l.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, err := l.tryStatus(g); err == nil {
			return
		}
		if time.Now().After(deadline) || g.proc.Exited() {
			l.t.Fatalf("%s gateway does not answer:\n%s", g.side, g.proc.Log())
		}
	}
}

// isle runs the command line client against a gateway's control socket.
func (l *ikeLab) isle(g *ikeGW, args ...string) (string, error) {
	args = append(args, "--socket", g.sock)
	out, err := exec.Command(isleBinary(l.t), args...).CombinedOutput()
	return string(out), err
}

// ikeStatus is the part of `isle status --json` the tests read.
type ikeStatus struct {
	Gateway struct {
		Drops map[string]uint64 `json:"drops"`
	} `json:"gateway"`
	Connections []struct {
		Name   string `json:"name"`
		IKESAs []struct {
			State        string `json:"state"`
			Local        string `json:"local"`
			Remote       string `json:"remote"`
			Initiator    bool   `json:"initiator"`
			SPIi         string `json:"spi_i"`
			SPIr         string `json:"spi_r"`
			Proposal     string `json:"proposal"`
			EstablishedS *int64 `json:"established_s"`
			RekeyInS     *int64 `json:"rekey_in_s"`
			Children     []struct {
				Name       string   `json:"name"`
				State      string   `json:"state"`
				Protocol   string   `json:"protocol"`
				Mode       string   `json:"mode"`
				Encap      bool     `json:"encap"`
				Proposal   string   `json:"proposal"`
				SPIIn      string   `json:"spi_in"`
				SPIOut     string   `json:"spi_out"`
				BytesIn    *uint64  `json:"bytes_in"`
				PacketsIn  *uint64  `json:"packets_in"`
				BytesOut   *uint64  `json:"bytes_out"`
				PacketsOut *uint64  `json:"packets_out"`
				LocalTS    []string `json:"local_ts"`
				RemoteTS   []string `json:"remote_ts"`
				RekeyInS   *int64   `json:"rekey_in_s"`
			} `json:"children"`
		} `json:"ike_sas"`
	} `json:"connections"`
}

func (l *ikeLab) status(g *ikeGW) (ikeStatus, string) {
	l.t.Helper()
	st, out, err := l.tryStatus(g)
	if err != nil {
		l.t.Fatal(err)
	}
	return st, out
}

// tryStatus is status for a gateway that may not be listening yet.
func (l *ikeLab) tryStatus(g *ikeGW) (ikeStatus, string, error) {
	var st ikeStatus
	out, err := l.isle(g, "status", "--json")
	if err != nil {
		return st, out, fmt.Errorf("isle status --json (%s): %v\n%s", g.side, err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, out, fmt.Errorf("isle status --json (%s): %v\n%s", g.side, err, out)
	}
	return st, out, nil
}

// installed lists the inbound SPIs of the installed CHILD_SAs of
// connection conn on a gateway.
func (l *ikeLab) installed(g *ikeGW, conn string) []string {
	st, _, err := l.tryStatus(g)
	if err != nil {
		return nil
	}
	var spis []string
	for _, c := range st.Connections {
		if c.Name != conn {
			continue
		}
		for _, s := range c.IKESAs {
			if s.State != "ESTABLISHED" {
				continue
			}
			for _, ch := range s.Children {
				if ch.State == "INSTALLED" {
					spis = append(spis, ch.SPIIn)
				}
			}
		}
	}
	return spis
}

// waitUp waits until both gateways have an established IKE SA with an
// installed CHILD_SA for conn and returns how long it took since the left
// gateway (the initiator) was started.
func (l *ikeLab) waitUp(conn string, within time.Duration) time.Duration {
	l.t.Helper()
	start := l.left.started
	for {
		if len(l.installed(l.left, conn)) > 0 && len(l.installed(l.right, conn)) > 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			_, ls := l.status(l.left)
			_, rs := l.status(l.right)
			l.t.Fatalf("tunnel %q not up after %v\nleft: %s\nright: %s", conn, within, ls, rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits for a log line of a gateway's current run to contain s.
func (l *ikeLab) waitLog(g *ikeGW, s string, within time.Duration) {
	l.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(g.proc.Log(), s) {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: no %q in the log after %v", g.side, s, within)
		}
	}
}

// countLog counts the log lines of a gateway's current run containing s
// (the whole file, not only its tail).
func countLog(g *ikeGW, s string) int {
	b, err := os.ReadFile(g.proc.LogPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}

// continuousPing pings hl → hr every interval until stop is closed and
// reports sent and received (ping's own summary).
func (l *ikeLab) continuousPing(count int, interval time.Duration) (sent int, got func() (int, error)) {
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		defer close(done)
		n, err = l.topo.PingCount(netns.HL, netns.HR4, count, interval)
	}()
	return count, func() (int, error) {
		<-done
		return n, err
	}
}

// kill9 kills a gateway without letting it say goodbye (no DELETE).
func (l *ikeLab) kill9(g *ikeGW) {
	l.t.Helper()
	if err := g.proc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		l.t.Fatal(err)
	}
	g.proc.Wait(5 * time.Second)
	g.mu.Lock()
	g.logs = append(g.logs, g.proc.LogPath)
	g.mu.Unlock()
}

// waitPing waits until a ping through the tunnel is answered.
func (l *ikeLab) waitPing(within time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		if n, _ := l.topo.PingCount(netns.HL, netns.HR4, 1, 10*time.Millisecond); n == 1 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			_, ls, _ := l.tryStatus(l.left)
			_, rs, _ := l.tryStatus(l.right)
			l.t.Fatalf("no ping through the tunnel after %v\nleft: %s\nright: %s", within, ls, rs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTime is the time stamp of the first line of a gateway's current log
// that contains s (text log format: time=RFC3339 first).
func logTime(t *testing.T, g *ikeGW, s string) time.Time {
	t.Helper()
	b, err := os.ReadFile(g.proc.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, s) || !strings.HasPrefix(line, "time=") {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("log time %q: %v", stamp, err)
		}
		return ts
	}
	t.Fatalf("%s: no log line with %q", g.side, s)
	return time.Time{}
}
