// Package metrics serves a running gateway's state and counters in the
// Prometheus text exposition format (version 0.0.4) at /metrics. The
// gateway supplies a Source: the same status.Status that `isle status`
// shows, plus the event counters of Counters that the negotiator bumps.
package metrics

import (
	"maps"
	"sync"
)

// Counters are the event counts that no SA snapshot holds: IKE exchanges
// and their failures, and rekeys. The zero value is ready; it is safe for
// concurrent use. Exchange names are IKEv2's ("IKE_SA_INIT", "IKE_AUTH",
// "CREATE_CHILD_SA", "INFORMATIONAL"); failure reasons are short
// snake_case words ("timeout", "auth_failed", "no_proposal_chosen").
type Counters struct {
	mu        sync.Mutex
	exchanges map[string]uint64
	failures  map[[2]string]uint64
	rekeys    map[string]uint64
}

// Exchange counts one completed exchange of the given type.
func (c *Counters) Exchange(exchange string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exchanges == nil {
		c.exchanges = map[string]uint64{}
	}
	c.exchanges[exchange]++
}

// Failure counts one failed exchange of the given type and why.
func (c *Counters) Failure(exchange, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures == nil {
		c.failures = map[[2]string]uint64{}
	}
	c.failures[[2]string{exchange, reason}]++
}

// Rekey counts one rekey of an "ike" or a "child" SA.
func (c *Counters) Rekey(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rekeys == nil {
		c.rekeys = map[string]uint64{}
	}
	c.rekeys[kind]++
}

// Events is a copy of the counts at one moment.
type Events struct {
	Exchanges map[string]uint64    // by exchange type
	Failures  map[[2]string]uint64 // by {exchange type, reason}
	Rekeys    map[string]uint64    // by "ike" | "child"
}

// Snapshot copies the counts.
func (c *Counters) Snapshot() Events {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Events{Exchanges: maps.Clone(c.exchanges), Failures: maps.Clone(c.failures), Rekeys: maps.Clone(c.rekeys)}
}
