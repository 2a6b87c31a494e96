package netns

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Capture is a tcpdump running in a namespace, writing a pcap file.
type Capture struct {
	Path string // the pcap file, complete once Stop returned
	proc *Process
}

var captureSeq atomic.Int64

// Capture starts tcpdump on iface inside node's namespace with a pcap
// filter ("" for everything) and returns once tcpdump is listening, so no
// packet sent afterwards is missed. Stop it to read the file; cleanup stops
// it otherwise.
func (topo *Topology) Capture(node Node, iface, filter string) (*Capture, error) {
	n := captureSeq.Add(1)
	path := filepath.Join(topo.LogDir(), fmt.Sprintf("%s-%s-%d.pcap", node, iface, n))
	// --immediate-mode hands each packet to tcpdump at once (by default the
	// kernel holds them up to a second, and a stop then loses them); -B
	// gives it a 32 MiB buffer so a burst of traffic is not dropped; -U
	// writes each one as it comes; -Z root keeps the right to write into
	// the root-owned test directory.
	argv := []string{"tcpdump", "-n", "--immediate-mode", "-B", "32768", "-U", "-Z", "root", "-i", iface, "-w", path}
	if filter != "" {
		argv = append(argv, filter)
	}
	proc := topo.Start(topo.t, node, fmt.Sprintf("tcpdump-%s-%s-%d.log", node, iface, n), argv...)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(proc.Log(), "listening on") {
		if proc.Exited() || time.Now().After(deadline) {
			proc.Stop()
			return nil, fmt.Errorf("tcpdump on %s in %s did not start: %s", iface, topo.NS(node), proc.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Capture{Path: path, proc: proc}, nil
}

// Stop ends the capture and returns the path of the pcap file.
func (c *Capture) Stop() (string, error) {
	// Packets still on their way to the interface get a moment to land.
	time.Sleep(100 * time.Millisecond)
	if err := c.proc.Stop(); err != nil {
		return c.Path, fmt.Errorf("tcpdump: %w: %s", err, c.proc.Log())
	}
	return c.Path, nil
}
