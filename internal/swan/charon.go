// Package swan runs Debian's strongSwan (charon with kernel-libipsec, that
// is userspace ESP over its own TUN device) inside a namespace of the
// netns lab, as the real peer of isle's interop tests.
//
// Each charon gets a private state directory (strongswan.conf, swanctl.conf,
// credentials, vici socket, log) and its own /run (a mount namespace with a
// tmpfs) for its pid file, so several charons run side by side. It is
// configured from Go structs, driven with swanctl, and read back over vici.
// Its log keeps CHILD_SA keys (chd = 4) so that ChildKeys can hand them to a
// test. Charon is always stopped at cleanup, and its log printed if the
// test failed.
package swan

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
	"github.com/isle-ipsec/isle/internal/testenv"
)

// Binary is Debian's charon daemon.
const Binary = "/usr/lib/ipsec/charon"

// plugins are the ones charon loads: the crypto isle negotiates, kdf (key
// derivation fails without it), and kernel-libipsec, since this kernel has
// no ESP.
const plugins = "random nonce kdf aes sha1 sha2 hmac gcm curve25519 chapoly x509 pubkey pem pkcs1 pkcs8 openssl " +
	"kernel-libipsec kernel-netlink socket-default vici updown"

// Require fails or skips the test unless strongSwan and root are there.
func Require(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "swanctl")
	testenv.RequireTool(t, "unshare")
	if _, err := os.Stat(Binary); err != nil {
		testenv.Missing(t, Binary+" (Debian package strongswan-charon)")
	}
	for _, plugin := range []string{"libstrongswan-kernel-libipsec.so", "libstrongswan-kdf.so", "libstrongswan-vici.so"} {
		if _, err := os.Stat("/usr/lib/ipsec/plugins/" + plugin); err != nil {
			testenv.Missing(t, "strongSwan plugin "+plugin+" (libcharon-extra-plugins, libstrongswan-standard-plugins)")
		}
	}
}

// Options tune a charon beyond its swanctl.conf.
type Options struct {
	// Settings are extra lines inside strongswan.conf's charon section,
	// e.g. "retransmit_tries = 2" or "make_before_break = yes".
	Settings string
	// LogLevels override filelog levels per subsystem; the defaults are
	// default=1 ike=2 cfg=1 esp=1 chd=4 (chd 4 logs the CHILD_SA keys).
	LogLevels map[string]int
	// Files are copied into the state directory before loading, by their
	// path relative to it: "x509/gw.pem", "private/gw.key", "x509ca/ca.pem".
	Files map[string][]byte
}

// Charon is one running strongSwan daemon.
type Charon struct {
	Dir  string // state directory
	Node netns.Node
	topo *netns.Topology
	proc *netns.Process
}

// Start runs charon in node's namespace with cfg loaded (swanctl
// --load-all) and registers its stop at cleanup.
func Start(t testing.TB, topo *netns.Topology, node netns.Node, cfg Config, opts Options) *Charon {
	t.Helper()
	Require(t)
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir := netns.TestDir(t, "swan-"+topo.NS(node))
	c := &Charon{Dir: dir, Node: node, topo: topo}
	if err := c.writeFiles(cfg, opts); err != nil {
		t.Fatalf("swan: %v", err)
	}
	logPath := filepath.Join(dir, "charon.log")
	// The stop registered by topo.Start runs before this (cleanups run
	// last-registered first) and prints charon's stdout on failure; the
	// filelog is printed here.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("charon log of %s (%s):\n%s", topo.NS(node), logPath, netns.ReadTail(logPath, 256<<10))
		}
	})
	script := fmt.Sprintf("mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=%s exec %s", filepath.Join(dir, "strongswan.conf"), Binary)
	c.proc = topo.Start(t, node, filepath.Join(dir, "stdout.log"), "unshare", "-m", "sh", "-c", script)
	if err := c.waitVici(10 * time.Second); err != nil {
		t.Fatalf("swan: charon in %s: %v\n%s", topo.NS(node), err, c.proc.Log())
	}
	if out, err := c.Swanctl("--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
		t.Fatalf("swan: loading configuration in %s: %v\n%s", topo.NS(node), err, out)
	}
	return c
}

func (c *Charon) writeFiles(cfg Config, opts Options) error {
	// swanctl looks for credentials next to the --file it loads.
	for _, sub := range []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl",
		"pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, sub), 0o700); err != nil {
			return err
		}
	}
	for name, data := range opts.Files {
		p := filepath.Join(c.Dir, filepath.Clean("/"+name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	swanctl, err := cfg.Render()
	if err != nil {
		return fmt.Errorf("swanctl.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "swanctl.conf"), []byte(swanctl), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "strongswan.conf"), []byte(c.strongswanConf(opts)), 0o600)
}

func (c *Charon) strongswanConf(opts Options) string {
	levels := map[string]int{"default": 1, "ike": 2, "cfg": 1, "esp": 1, "chd": 4}
	for k, v := range opts.LogLevels {
		levels[k] = v
	}
	var lv strings.Builder
	for _, k := range []string{"default", "ike", "cfg", "esp", "chd", "knl", "net", "enc", "mgr", "lib", "job", "dmn", "asn", "tls", "tnc", "imc", "imv", "pts"} {
		if v, ok := levels[k]; ok {
			fmt.Fprintf(&lv, "      %s = %d\n", k, v)
		}
	}
	// Logs (charon.log) are what a failing interop test has to go on; the
	// time format has no spaces, which ParseChildKeys relies on.
	return fmt.Sprintf(`# generated by isle's internal/swan
charon {
  load = %s
  port = 500
  port_nat_t = 4500
  install_routes = yes
%s
  filelog {
    main {
      path = %s
      time_format = %%H:%%M:%%S
      append = no
      flush_line = yes
%s    }
  }
  plugins {
    vici { socket = unix://%s }
    kernel-libipsec { allow_peer_ts = yes }
  }
}
swanctl {
  socket = unix://%s
}
`, plugins, opts.Settings, filepath.Join(c.Dir, "charon.log"), lv.String(), c.Socket(), c.Socket())
}

// Socket is the path of charon's vici socket.
func (c *Charon) Socket() string { return filepath.Join(c.Dir, "charon.vici") }

// LogPath is charon's filelog.
func (c *Charon) LogPath() string { return filepath.Join(c.Dir, "charon.log") }

func (c *Charon) waitVici(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.Dial("unix", c.Socket())
		if err == nil {
			conn.Close()
			return nil
		}
		if c.proc.Exited() {
			return fmt.Errorf("charon exited: %v", c.proc.Wait(0))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no vici socket after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Swanctl runs swanctl against this charon with args and returns its output.
// swanctl talks to charon over the unix socket, so it runs in the root
// namespace.
func (c *Charon) Swanctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swanctl", append(args, "--uri", "unix://"+c.Socket())...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.Dir, "strongswan.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swanctl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Initiate brings up child (and its IKE_SA if needed) and waits for the
// result, at most timeout.
func (c *Charon) Initiate(child string, timeout time.Duration) error {
	out, err := c.Swanctl("--initiate", "--child", child, "--timeout", fmt.Sprint(int(timeout.Seconds())))
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 15))
	}
	return nil
}

// Terminate deletes the IKE_SA of connection ike (with its CHILD_SAs).
func (c *Charon) Terminate(ike string, timeout time.Duration) error {
	out, err := c.Swanctl("--terminate", "--ike", ike, "--timeout", fmt.Sprint(int(timeout.Seconds())))
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 15))
	}
	return nil
}

// Rekey starts a rekey of child's CHILD_SA (it returns once queued).
func (c *Charon) Rekey(child string) error {
	out, err := c.Swanctl("--rekey", "--child", child)
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 15))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// SAs lists charon's IKE_SAs with their CHILD_SAs.
func (c *Charon) SAs() ([]IKESA, error) {
	v, err := dialVici(c.Socket())
	if err != nil {
		return nil, err
	}
	defer v.Close()
	events, resp, err := v.streamedCommand("list-sas", "list-sa", &Section{Entries: []Entry{{Name: "noblock", Value: "yes"}}})
	if err != nil {
		return nil, err
	}
	if err := checkResponse("list-sas", resp); err != nil {
		return nil, err
	}
	var sas []IKESA
	for _, ev := range events {
		for _, e := range ev.Sections() {
			sa, err := parseIKESA(e.Name, e.Section)
			if err != nil {
				return nil, err
			}
			sas = append(sas, sa)
		}
	}
	return sas, nil
}

// WaitChild waits until child is INSTALLED under an ESTABLISHED IKE_SA and
// returns both.
func (c *Charon) WaitChild(child string, timeout time.Duration) (IKESA, ChildSA, error) {
	deadline := time.Now().Add(timeout)
	for {
		sas, err := c.SAs()
		if err != nil {
			return IKESA{}, ChildSA{}, err
		}
		for _, sa := range sas {
			for _, ch := range sa.Children {
				if sa.State == "ESTABLISHED" && ch.Name == child && ch.State == "INSTALLED" {
					return sa, ch, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return IKESA{}, ChildSA{}, fmt.Errorf("CHILD_SA %s not installed after %v (SAs: %+v)", child, timeout, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ChildKeys returns the keys of every CHILD_SA charon has installed so far,
// read from its log.
func (c *Charon) ChildKeys() ([]ChildKeys, error) {
	f, err := os.Open(c.LogPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseChildKeys(f)
}

// Stop ends charon now (cleanup does it otherwise).
func (c *Charon) Stop() error { return c.proc.Stop() }
