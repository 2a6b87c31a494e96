package netns

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Ping sends count echo requests from node to the address to (IPv4 or
// IPv6) and fails unless every one is answered.
func (topo *Topology) Ping(from Node, to string, count int) error {
	got, err := topo.PingCount(from, to, count, 200*time.Millisecond)
	if err != nil {
		return err
	}
	if got != count {
		return fmt.Errorf("ping %s → %s: %d of %d replies", topo.NS(from), to, got, count)
	}
	return nil
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// PingCount sends count echo requests at the given interval (as root ping
// allows down to 2ms) and returns how many replies came back; losing some
// is not an error.
func (topo *Topology) PingCount(from Node, to string, count int, interval time.Duration) (int, error) {
	out, err := topo.Run(from, "ping", "-n", "-q", "-c", strconv.Itoa(count),
		"-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "2", to)
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		// ping exits 1 when replies are missing but still prints its
		// summary; without one, something else went wrong.
		return 0, fmt.Errorf("ping %s → %s: no summary: %v", topo.NS(from), to, err)
	}
	return strconv.Atoi(string(m[2]))
}
