package dataplane

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/isle-ipsec/isle/internal/testenv"
)

// inNamespace runs f on a thread moved into a fresh network namespace
// named name, which is deleted afterwards; `ip -n name` sees what f did.
func inNamespace(t *testing.T, name string, f func()) {
	t.Helper()
	if testenv.Short() {
		t.Skip("namespace test; not run with -short")
	}
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		netns.Set(orig)
		ns.Close()
		netns.DeleteNamed(name)
	}()
	f()
}

func ipOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestKernelState: the TUN device, routes and protection rules a child
// installs, and that replacing and removing it and closing the dataplane
// leave nothing behind.
func TestKernelState(t *testing.T) {
	const ns = "dp20"
	inNamespace(t, ns, func() {
		d, err := New(Config{Interface: "isle0", MTU: 1380, OuterMTU: 1500, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if out := ipOut(t, ns, "link", "show", "isle0"); !strings.Contains(out, "mtu 1380") || !strings.Contains(out, "UP") {
			t.Fatalf("TUN device:\n%s", out)
		}
		k := suites["aes-gcm-128"]
		mk := func(remote ...string) Child {
			return Child{Name: "c", Local: sels(t, "10.1.0.0/24", "fd01::/64"), Remote: sels(t, remote...),
				Out: mkSA(t, k, 0x1001, false, "198.18.0.1:0", "198.18.0.2:0", 1),
				In:  mkSA(t, k, 0x2001, true, "198.18.0.1:0", "198.18.0.2:0", 2)}
		}
		if err := d.AddChild(mk("10.2.0.0/24")); err == nil || !strings.Contains(err.Error(), "not an address of this host") {
			t.Fatalf("child with a local address the host lacks: err = %v", err)
		}
		ipOut(t, ns, "link", "add", "dp20wan", "type", "veth", "peer", "name", "dp20peer")
		ipOut(t, ns, "addr", "add", "198.18.0.1/24", "dev", "dp20wan")
		if err := d.AddChild(mk("10.2.0.0/24", "10.9.0.5-10.9.0.6", "fd02::/64")); err != nil {
			t.Fatal(err)
		}
		routes := ipOut(t, ns, "route") + ipOut(t, ns, "-6", "route")
		for _, want := range []string{"10.2.0.0/24 dev isle0", "10.9.0.5 dev isle0", "10.9.0.6 dev isle0", "fd02::/64 dev isle0"} {
			if !strings.Contains(routes, want) {
				t.Errorf("route %q missing:\n%s", want, routes)
			}
		}
		rules := ipOut(t, ns, "rule") + ipOut(t, ns, "-6", "rule")
		for _, want := range []string{
			"from 10.2.0.0/24 to 10.1.0.0/24 iif isle0 lookup main",
			"from 10.2.0.0/24 to 10.1.0.0/24 blackhole",
			"from fd02::/64 to fd01::/64 blackhole",
		} {
			if !strings.Contains(rules, want) {
				t.Errorf("rule %q missing:\n%s", want, rules)
			}
		}

		// Replace: 10.2.0.0/24 stays, the range goes, 10.3.0.0/24 comes.
		if err := d.AddChild(mk("10.2.0.0/24", "10.3.0.0/24", "fd02::/64")); err != nil {
			t.Fatal(err)
		}
		routes = ipOut(t, ns, "route")
		if !strings.Contains(routes, "10.2.0.0/24 dev isle0") || !strings.Contains(routes, "10.3.0.0/24 dev isle0") || strings.Contains(routes, "10.9.0.5") {
			t.Errorf("routes after replacing the child:\n%s", routes)
		}
		if rules := ipOut(t, ns, "rule"); strings.Contains(rules, "10.9.0.5") || !strings.Contains(rules, "from 10.2.0.0/24") {
			t.Errorf("rules after replacing the child:\n%s", rules)
		}

		if !d.RemoveChild("c") {
			t.Fatal("RemoveChild")
		}
		if routes := ipOut(t, ns, "route") + ipOut(t, ns, "-6", "route"); strings.Contains(routes, "10.2.0.0") || strings.Contains(routes, "fd02::") {
			t.Errorf("routes after RemoveChild:\n%s", routes)
		}
		if rules := ipOut(t, ns, "rule") + ipOut(t, ns, "-6", "rule"); strings.Contains(rules, "blackhole") || strings.Contains(rules, "isle0") {
			t.Errorf("rules after RemoveChild:\n%s", rules)
		}

		if err := d.AddChild(mk("10.2.0.0/24")); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ip", "-n", ns, "link", "show", "isle0").CombinedOutput(); err == nil {
			t.Errorf("TUN device still there after Close:\n%s", out)
		}
		if rules := ipOut(t, ns, "rule"); strings.Contains(rules, "blackhole") {
			t.Errorf("rules after Close:\n%s", rules)
		}
	})
}

// TestLocalSource: the route to the far network carries the gateway's own
// address inside the local selectors as preferred source.
func TestLocalSource(t *testing.T) {
	const ns = "dp21"
	inNamespace(t, ns, func() {
		ipOut(t, ns, "link", "add", "dp21lan", "type", "veth", "peer", "name", "dp21peer")
		ipOut(t, ns, "addr", "add", "10.1.0.1/24", "dev", "dp21lan")
		ipOut(t, ns, "link", "set", "dp21lan", "up")
		ipOut(t, ns, "addr", "add", "198.18.0.1/32", "dev", "dp21lan")
		d, err := New(Config{Interface: "isle0", MTU: 1400, OuterMTU: 1500, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		k := suites["aes-gcm-128"]
		c := Child{Name: "c", Local: sels(t, "10.1.0.0/24"), Remote: sels(t, "10.2.0.0/24"),
			Out: mkSA(t, k, 0x1001, false, "198.18.0.1:0", "198.18.0.2:0", 1),
			In:  mkSA(t, k, 0x2001, true, "198.18.0.1:0", "198.18.0.2:0", 2)}
		if err := d.AddChild(c); err != nil {
			t.Fatal(err)
		}
		if routes := ipOut(t, ns, "route", "get", "10.2.0.9"); !strings.Contains(routes, "dev isle0 src 10.1.0.1") {
			t.Errorf("route to the far LAN:\n%s", routes)
		}
	})
}
