package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
)

// TestOpsControlVerbs runs every control verb against running gateways:
// status (text and the JSON contract fields), down (DELETE reaches the
// peer), up, errors for unknown names, reload (SIGHUP and `isle reload`)
// adding and removing an unrelated connection under a continuous ping
// that loses nothing, a changed connection replaced, a broken file
// refused with the reason, a removed connection deleted with the peer,
// and the metrics endpoint.
func TestOpsControlVerbs(t *testing.T) {
	l := startIKELab(t, "gom", ikeOpts{childRekey: "30s", ikeRekey: "1h", metrics: "127.0.0.1:9750"})
	l.waitUp("site", 10*time.Second)
	if err := l.topo.Ping(netns.HL, netns.HR4, 2); err != nil {
		t.Fatal(err)
	}

	// status, text: the layout of swanctl --list-sas.
	out, err := l.isle(l.left, "status")
	if err != nil {
		t.Fatalf("isle status: %v\n%s", err, out)
	}
	for _, want := range []string{"site", "ESTABLISHED", "lan", "INSTALLED", "AES_GCM_16_128", "10.2.0.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("isle status lacks %q:\n%s", want, out)
		}
	}

	// status --json: every contract field of the spec, with values.
	raw, err := l.isle(l.left, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connections []map[string]json.RawMessage `json:"connections"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	var ikeSAs []map[string]json.RawMessage
	json.Unmarshal(doc.Connections[0]["ike_sas"], &ikeSAs)
	if len(ikeSAs) != 1 {
		t.Fatalf("ike_sas: %s", raw)
	}
	for _, k := range []string{"state", "local", "remote", "initiator", "spi_i", "spi_r", "proposal", "established_s", "rekey_in_s", "children"} {
		if _, ok := ikeSAs[0][k]; !ok {
			t.Errorf("IKE_SA lacks %q: %s", k, raw)
		}
	}
	var children []map[string]json.RawMessage
	json.Unmarshal(ikeSAs[0]["children"], &children)
	if len(children) != 1 {
		t.Fatalf("children: %s", raw)
	}
	for _, k := range []string{"name", "state", "protocol", "mode", "encap", "proposal", "spi_in", "spi_out",
		"bytes_in", "packets_in", "bytes_out", "packets_out", "local_ts", "remote_ts", "rekey_in_s"} {
		if _, ok := children[0][k]; !ok {
			t.Errorf("CHILD_SA lacks %q: %s", k, raw)
		}
	}
	st, _ := l.status(l.left)
	s := st.Connections[0].IKESAs[0]
	c := s.Children[0]
	if s.Local != netns.WanGL4+":500" || s.Remote != netns.WanGR4+":500" || !s.Initiator || len(s.SPIi) != 16 || len(s.SPIr) != 16 ||
		s.Proposal != "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519" || *s.RekeyInS < 3000 || *s.RekeyInS > 3600 {
		t.Errorf("IKE_SA fields: %s", raw)
	}
	if c.Protocol != "ESP" || c.Mode != "TUNNEL" || len(c.SPIIn) != 8 || *c.PacketsOut == 0 || *c.PacketsIn == 0 ||
		*c.RekeyInS < 20 || *c.RekeyInS > 30 || strings.Join(c.LocalTS, ",") != "10.1.0.0/24,fd00:1::/64" {
		t.Errorf("CHILD_SA fields: %s", raw)
	}
	rs, _ := l.status(l.right)
	if r := rs.Connections[0].IKESAs[0]; r.Initiator || r.SPIi != s.SPIi || r.Children[0].SPIIn != c.SPIOut {
		t.Errorf("the responder's view does not mirror the initiator's: %+v", r)
	}

	// metrics, scraped inside gl's namespace (with the python the tests
	// need anyway: curl is not among the packages `make deps` installs).
	metrics := string(l.topo.MustRun(netns.GL, "/usr/bin/python3", "-c",
		"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9750/metrics', timeout=5).read().decode())"))
	for _, want := range []string{`isle_connection_up{connection="site"} 1`, `isle_child_sas{connection="site",state="INSTALLED"} 1`,
		`isle_ike_exchanges_total{exchange="IKE_AUTH"} 1`, "isle_child_sa_bytes_total{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	// errors: non-zero exit, one line that says why.
	for _, args := range [][]string{{"down", "nosuch"}, {"up", "nosuch"}, {"up", "site/nochild"}} {
		if out, err := l.isle(l.left, args...); err == nil || !strings.Contains(out, "no") {
			t.Errorf("isle %v: %v %q", args, err, out)
		}
	}

	// down: the peer hears DELETE and drops its SAs too.
	if out, err := l.isle(l.left, "down", "site"); err != nil {
		t.Fatalf("isle down: %v %s", err, out)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ls, _ := l.status(l.left)
		rs, _ := l.status(l.right)
		if len(ls.Connections[0].IKESAs) == 0 && len(rs.Connections[0].IKESAs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after isle down: left %+v right %+v", ls, rs)
		}
	}
	if n, _ := l.topo.PingCount(netns.HL, netns.HR4, 1, 10*time.Millisecond); n != 0 {
		t.Error("ping still answered after isle down")
	}

	// up: back again; up of an installed child is a no-op.
	if out, err := l.isle(l.left, "up", "site"); err != nil {
		t.Fatalf("isle up: %v %s", err, out)
	}
	l.waitUp("site", 5*time.Second)
	if out, err := l.isle(l.left, "up", "site/lan"); err != nil {
		t.Errorf("isle up site/lan while installed: %v %s", err, out)
	}
	before := l.installed(l.left, "site")

	// reload under a continuous ping: an unrelated connection comes and
	// goes (once by SIGHUP, once by isle reload); site keeps its SAs.
	orig, err := os.ReadFile(l.left.config)
	if err != nil {
		t.Fatal(err)
	}
	extra := `
[connections.extra]
remote_addrs = ["198.18.0.77"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = "left.isle.test" }
remote = { auth = "psk", id = "nobody.isle.test" }
[connections.extra.children.x]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.77.0.0/24"]
start_action = "start"
[secrets.extra]
ids = ["nobody.isle.test"]
secret = "another key"
`
	_, got := l.continuousPing(30, 100*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(l.left.config, append(append([]byte{}, orig...), extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.left.proc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog(l.left, "reload: connection added", 5*time.Second)
	st, raw = l.status(l.left)
	if len(st.Connections) != 2 || st.Connections[1].Name != "extra" {
		t.Errorf("after adding extra: %s", raw)
	}
	time.Sleep(500 * time.Millisecond)
	if err := os.WriteFile(l.left.config, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.isle(l.left, "reload"); err != nil {
		t.Fatalf("isle reload: %v %s", err, out)
	}
	l.waitLog(l.left, "reload: connection removed", 5*time.Second)
	n, err := got()
	if err != nil || n != 30 {
		t.Errorf("continuous ping across two reloads: %d of 30: %v", n, err)
	}
	if now := l.installed(l.left, "site"); strings.Join(now, ",") != strings.Join(before, ",") {
		t.Errorf("site's CHILD_SA changed across reloads of other connections: %v → %v", before, now)
	}

	// A broken file changes nothing and says why.
	if err := os.WriteFile(l.left.config, append(append([]byte{}, orig...), "\n[connections.site.children.lan]\nbogus = 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = l.isle(l.left, "reload")
	if err == nil || !strings.Contains(out, "does not load") {
		t.Errorf("reload of a broken file: %v %q", err, out)
	}
	if now := l.installed(l.left, "site"); strings.Join(now, ",") != strings.Join(before, ",") {
		t.Errorf("a broken file changed the SAs: %v → %v", before, now)
	}

	// A changed connection is replaced: new SAs, traffic flows again.
	changed := strings.Replace(string(orig), `rekey_time = "30s"`, `rekey_time = "40s"`, 1)
	if changed == string(orig) {
		t.Fatal("test config has no child rekey_time to change")
	}
	if err := os.WriteFile(l.left.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.isle(l.left, "reload"); err != nil {
		t.Fatalf("isle reload: %v %s", err, out)
	}
	l.waitLog(l.left, "reload: connection changed", 5*time.Second)
	l.waitPing(10 * time.Second)
	if now := l.installed(l.left, "site"); len(now) != 1 || now[0] == before[0] {
		t.Errorf("changed connection not replaced: %v → %v", before, now)
	}

	// A removed connection is deleted with the peer (DELETE).
	i := strings.Index(string(orig), "[connections.site]")
	if i < 0 {
		t.Fatal("no [connections.site] in the test config")
	}
	if err := os.WriteFile(l.left.config, orig[:i], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.isle(l.left, "reload"); err != nil {
		t.Fatalf("isle reload: %v %s", err, out)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rs, raw := l.status(l.right)
		if len(rs.Connections[0].IKESAs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer keeps the SAs of a removed connection: %s", raw)
		}
	}
	if st, raw := l.status(l.left); len(st.Connections) != 0 {
		t.Errorf("removed connection still shown: %s", raw)
	}
}

// TestOpsTwoChildren: a connection with two CHILD_SAs (IPv4 and IPv6
// LANs) brings both up under one IKE SA, each carrying its family; both
// are rekeyed on their own; verbs name a child with NAME/CHILD.
func TestOpsTwoChildren(t *testing.T) {
	l := startIKELab(t, "goq", ikeOpts{splitFamily: true, childRekey: "2s"})
	l.waitUp("site", 10*time.Second)
	for deadline := time.Now().Add(5 * time.Second); len(l.installed(l.left, "site")) != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, raw := l.status(l.left)
			t.Fatalf("two children not installed: %s", raw)
		}
	}
	_, got := l.continuousPing(25, 200*time.Millisecond)
	if err := l.topo.Ping(netns.HL, netns.HR6, 25); err != nil {
		t.Error(err)
	}
	if n, err := got(); n != 25 || err != nil {
		t.Errorf("IPv4 child: %d of 25 pings: %v", n, err)
	}
	st, raw := l.status(l.left)
	s := st.Connections[0].IKESAs[0]
	if len(s.Children) != 2 {
		t.Fatalf("children: %s", raw)
	}
	for _, c := range s.Children {
		if *c.PacketsOut == 0 || *c.PacketsIn == 0 {
			t.Errorf("child %s carried nothing: %s", c.Name, raw)
		}
	}
	for _, name := range []string{"lan", "lan6"} {
		if n := countLog(l.left, "CHILD_SA rekeyed\" conn=site child="+name+" "); n < 2 {
			t.Errorf("child %s rekeyed %d times in 5 s with rekey_time 2s", name, n)
		}
	}
	if out, err := l.isle(l.left, "up", "site/lan6"); err != nil {
		t.Errorf("isle up site/lan6 while installed: %v %s", err, out)
	}
}

// TestOpsChildDownUpClose: `isle down NAME/CHILD` deletes that CHILD_SA
// alone (the IKE SA and the other CHILD_SA keep carrying traffic), `isle
// up NAME/CHILD` brings it back; when the peer deletes a CHILD_SA, its
// close_action decides: start negotiates it again at once, none leaves it
// down.
func TestOpsChildDownUpClose(t *testing.T) {
	l := startIKELab(t, "gca", ikeOpts{splitFamily: true, leftChild: map[string]string{
		"lan": "close_action = \"none\"\n", "lan6": "close_action = \"start\"\n"}})
	l.waitUp("site", 10*time.Second)
	both := []*ikeGW{l.left, l.right}
	l.waitChildren(both, 5*time.Second, "lan", "lan6")
	st, _ := l.status(l.left)
	spi := st.Connections[0].IKESAs[0].SPIi
	lan6Before := l.childSPI(l.left, "lan6")
	ping6 := func() int {
		n, _ := l.topo.PingCount(netns.HL, netns.HR6, 1, 10*time.Millisecond)
		return n
	}

	// Ours: only lan6 goes, on both sides; IPv4 keeps flowing.
	_, got4 := l.continuousPing(20, 100*time.Millisecond)
	if out, err := l.isle(l.left, "down", "site/lan6"); err != nil {
		t.Fatalf("isle down site/lan6: %v %s", err, out)
	}
	l.waitChildren(both, 5*time.Second, "lan")
	if n, err := got4(); n != 20 || err != nil {
		t.Errorf("IPv4 child while lan6 was deleted: %d of 20 pings: %v", n, err)
	}
	if ping6() != 0 {
		t.Error("IPv6 ping answered with lan6 deleted")
	}
	if st, raw := l.status(l.left); st.Connections[0].IKESAs[0].SPIi != spi {
		t.Errorf("the IKE SA changed: %s", raw)
	}
	if out, err := l.isle(l.left, "down", "site/lan6"); err == nil {
		t.Errorf("isle down of a deleted child succeeded: %s", out)
	}

	// Back with isle up, under the same IKE SA.
	if out, err := l.isle(l.left, "up", "site/lan6"); err != nil {
		t.Fatalf("isle up site/lan6: %v %s", err, out)
	}
	l.waitChildren(both, 5*time.Second, "lan", "lan6")
	if err := l.topo.Ping(netns.HL, netns.HR6, 2); err != nil {
		t.Error(err)
	}
	if st, raw := l.status(l.left); st.Connections[0].IKESAs[0].SPIi != spi {
		t.Errorf("the IKE SA changed: %s", raw)
	}
	if n := countLog(l.left, "close_action: initiating again"); n != 0 {
		t.Errorf("our own isle down ran close_action %d times", n)
	}

	// The peer deletes lan6: close_action = start negotiates it again.
	if out, err := l.isle(l.right, "down", "site/lan6"); err != nil {
		t.Fatalf("right: isle down site/lan6: %v %s", err, out)
	}
	l.waitLog(l.left, "msg=\"close_action: initiating again\" conn=site child=lan6 close_action=start", 5*time.Second)
	l.waitChildren(both, 5*time.Second, "lan", "lan6")
	if now := l.childSPI(l.left, "lan6"); now == lan6Before {
		t.Errorf("lan6 not negotiated again: SPI %s", now)
	}
	if err := l.topo.Ping(netns.HL, netns.HR6, 2); err != nil {
		t.Error(err)
	}

	// The peer deletes lan: close_action = none leaves it down.
	if out, err := l.isle(l.right, "down", "site/lan"); err != nil {
		t.Fatalf("right: isle down site/lan: %v %s", err, out)
	}
	l.waitChildren(both, 5*time.Second, "lan6")
	l.waitLog(l.left, "msg=\"CHILD_SA closed by the peer\" conn=site child=lan close_action=none", 5*time.Second)
	if n, _ := l.topo.PingCount(netns.HL, netns.HR4, 1, 10*time.Millisecond); n != 0 {
		t.Error("IPv4 ping answered after the peer deleted lan (close_action = none)")
	}
	l.waitChildren(both, time.Second, "lan6") // still: nothing came back meanwhile
	if err := l.topo.Ping(netns.HL, netns.HR6, 1); err != nil {
		t.Error(err)
	}

	// The peer deletes the IKE SA: lan6's close_action = start initiates a
	// new one, which brings every child of the connection.
	if out, err := l.isle(l.right, "down", "site"); err != nil {
		t.Fatalf("right: isle down site: %v %s", err, out)
	}
	l.waitChildren(both, 5*time.Second, "lan", "lan6")
	if st, raw := l.status(l.left); st.Connections[0].IKESAs[0].SPIi == spi {
		t.Errorf("no new IKE SA after the peer deleted it: %s", raw)
	}
	if n := countLog(l.left, "msg=\"close_action: initiating again\" conn=site child=lan6"); n != 2 {
		t.Errorf("close_action ran %d times for lan6, want 2", n)
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 1); err != nil {
		t.Error(err)
	}
}

// waitChildren waits until each gateway has exactly the named CHILD_SAs
// of "site" installed (one of each).
func (l *ikeLab) waitChildren(gws []*ikeGW, within time.Duration, names ...string) {
	l.t.Helper()
	want := strings.Join(names, ",")
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		ok := true
		var raws []string
		for _, g := range gws {
			st, raw, err := l.tryStatus(g)
			raws = append(raws, raw)
			var got []string
			if err == nil && len(st.Connections) > 0 {
				for _, s := range st.Connections[0].IKESAs {
					for _, c := range s.Children {
						if s.State == "ESTABLISHED" && c.State == "INSTALLED" {
							got = append(got, c.Name)
						}
					}
				}
			}
			slices.Sort(got)
			ok = ok && strings.Join(got, ",") == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("children %s not installed (alone) after %v:\n%s", want, within, strings.Join(raws, "\n"))
		}
	}
}

// childSPI is the inbound SPI of a gateway's installed CHILD_SA of "site"
// by that name ("" if none).
func (l *ikeLab) childSPI(g *ikeGW, name string) string {
	st, _ := l.status(g)
	for _, s := range st.Connections[0].IKESAs {
		for _, c := range s.Children {
			if c.Name == name && c.State == "INSTALLED" {
				return c.SPIIn
			}
		}
	}
	return ""
}

// second is a second connection between the same two gateways, with
// other identities and selectors; the right side accepts any address for
// both (road-warrior style), and its negotiator tells the two apart by
// the identities of IKE_AUTH.
func second(left bool) string {
	lid, rid, lts, rts, remote, start := "left2.isle.test", "right2.isle.test", "10.11.0.0/24", "10.12.0.0/24", netns.WanGR4, "start"
	if !left {
		lid, rid, lts, rts, remote, start = rid, lid, rts, lts, "%any", "none"
	}
	return fmt.Sprintf(`
[connections.second]
remote_addrs = [%q]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = %q }
remote = { auth = "psk", id = %q }
[connections.second.children.net]
local_ts = [%q]
remote_ts = [%q]
esp_proposals = ["aes256gcm16"]
start_action = %q
[secrets.second]
ids = [%q, %q]
secret = "the second connection's key"
`, remote, lid, rid, lts, rts, start, lid, rid)
}

// TestOpsTwoConnectionsOnePeer: two connections between the same two
// gateways come up side by side (the responder's two %any connections
// told apart by identity; both use the same IKE proposals, which are
// chosen at IKE_SA_INIT, before any identity is known), each with its own
// ESP proposals; a reload that changes one starts both again (they share a
// negotiator) and the tunnel of the other carries traffic afterwards.
func TestOpsTwoConnectionsOnePeer(t *testing.T) {
	l := startIKELab(t, "gor", ikeOpts{rightAny: true, leftExtra: second(true), rightExtra: second(false)})
	l.waitUp("site", 10*time.Second)
	l.waitUp("second", 10*time.Second)
	st, raw := l.status(l.right)
	if len(st.Connections) != 2 || st.Connections[1].IKESAs[0].Children[0].Proposal != "AES_GCM_16_256" ||
		st.Connections[0].IKESAs[0].SPIi == st.Connections[1].IKESAs[0].SPIi {
		t.Errorf("two IKE SAs expected: %s", raw)
	}
	if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.left.config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), `"the second connection's key"`, `"the second connection's key"`, 1)
	changed = strings.Replace(changed, "[connections.second]\n", "[connections.second]\ndpd_delay = \"20s\"\n", 1)
	if err := os.WriteFile(l.left.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.isle(l.left, "reload"); err != nil {
		t.Fatalf("isle reload: %v %s", err, out)
	}
	l.waitLog(l.left, "reload: connection changed", 5*time.Second)
	l.waitLog(l.left, "shares its peer address", 5*time.Second)
	l.waitUp("second", 10*time.Second)
	l.waitPing(10 * time.Second)
}
