// Package status is the data model of a running gateway as operators see
// it: the object `isle status --json` prints (its field names are the
// contract of the configuration spec) and the text `isle status` prints in
// the layout of `swanctl --list-sas`. The gateway fills a Status, the
// control socket carries it as JSON, the command line renders it, and the
// metrics endpoint reads its counters: one model for all four.
package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/isle-ipsec/isle/sa"
)

// Status is everything `isle status` shows.
type Status struct {
	Connections []Connection `json:"connections"`
	// Manual holds the statically keyed SA pairs of [manual.*], which
	// have no IKE_SA.
	Manual []ManualSA `json:"manual"`
	// Gateway holds what belongs to no single SA; nil if not known.
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway is the gateway-wide part of the status.
type Gateway struct {
	Version   string `json:"version,omitempty"`
	Interface string `json:"interface,omitempty"` // TUN device
	UptimeS   int64  `json:"uptime_s"`
	// Drops counts discarded packets by reason name (dataplane.Drop
	// names: "no_policy", "replay", ...), over all SAs.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// Connection is one [connections.NAME] with its IKE_SAs (usually one;
// two while an IKE_SA is rekeyed; none when it is down).
type Connection struct {
	Name   string  `json:"name"`
	IKESAs []IKESA `json:"ike_sas"`
	// Traps are the children whose trap is armed and waiting for a
	// packet: none of them has a CHILD_SA installed.
	Traps []Trap `json:"traps,omitempty"`
}

// Trap is a child whose trap (start_action, dpd_action or close_action =
// "trap") is armed in the dataplane: its first packet negotiates it.
type Trap struct {
	Name     string   `json:"name"`
	LocalTS  []string `json:"local_ts"`
	RemoteTS []string `json:"remote_ts"`
	// Reason is the setting that armed it: "start_action", "dpd_action"
	// or "close_action".
	Reason string `json:"reason"`
}

// IKESA is one IKE_SA. SPIs are 16 hex digits, as swanctl prints them.
type IKESA struct {
	State     string `json:"state"` // CONNECTING, ESTABLISHED, REKEYING, DELETING, ...
	Local     string `json:"local"` // address:port
	Remote    string `json:"remote"`
	LocalID   string `json:"local_id,omitempty"`
	RemoteID  string `json:"remote_id,omitempty"`
	Initiator bool   `json:"initiator"`
	SPIi      string `json:"spi_i"`
	SPIr      string `json:"spi_r"`
	// Proposal in strongSwan's notation: "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519".
	Proposal     string  `json:"proposal"`
	EstablishedS int64   `json:"established_s"` // seconds since established
	RekeyInS     int64   `json:"rekey_in_s"`    // seconds until rekey; 0 = never
	Children     []Child `json:"children"`
}

// Child is one CHILD_SA: an inbound and an outbound SA sharing selectors.
// SPIs are 8 hex digits.
type Child struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`    // INSTALLED, REKEYING, DELETING, ...
	Protocol   string   `json:"protocol"` // ESP | AH
	Mode       string   `json:"mode"`     // TUNNEL | TRANSPORT
	Encap      bool     `json:"encap"`    // ESP in UDP (RFC 3948)
	Proposal   string   `json:"proposal"` // "AES_GCM_16_128", "AES_CBC_256/HMAC_SHA2_256_128/ESN"
	SPIIn      string   `json:"spi_in"`
	SPIOut     string   `json:"spi_out"`
	BytesIn    uint64   `json:"bytes_in"`
	PacketsIn  uint64   `json:"packets_in"`
	BytesOut   uint64   `json:"bytes_out"`
	PacketsOut uint64   `json:"packets_out"`
	LocalTS    []string `json:"local_ts"`
	RemoteTS   []string `json:"remote_ts"`
	RekeyInS   int64    `json:"rekey_in_s"` // 0 = never

	InstalledS int64 `json:"installed_s"` // seconds since installed
	// LastInS and LastOutS are the seconds since a packet last used the
	// SA; absent if none ever did.
	LastInS      *int64            `json:"last_in_s,omitempty"`
	LastOutS     *int64            `json:"last_out_s,omitempty"`
	ReplayWindow uint32            `json:"replay_window"` // 0 = anti-replay off
	Drops        map[string]uint64 `json:"drops,omitempty"`
}

// ManualSA is a statically keyed SA pair; its CHILD_SA fields are the
// ones of Child, next to the outer addresses an IKE_SA would carry.
type ManualSA struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	Child
}

// SPI64 formats an IKE SPI as status shows it.
func SPI64(spi uint64) string { return fmt.Sprintf("%016x", spi) }

// SPI32 formats an ESP/AH SPI as status shows it.
func SPI32(spi uint32) string { return fmt.Sprintf("%08x", spi) }

// Seconds rounds d down to whole seconds, never below zero.
func Seconds(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// FillFromSAs sets the fields of c that the SA pair knows: protocol,
// mode, encapsulation, proposal, SPIs, counters, last use, replay window
// and drops (summed over both SAs). Name, State, selectors and RekeyInS
// are the caller's. now is the time the snapshot is taken.
func (c *Child) FillFromSAs(in, out *sa.SA, now time.Time) {
	ref := out
	if ref == nil {
		ref = in
	}
	if ref == nil {
		return
	}
	c.Protocol = ref.Protocol().String()
	c.Mode = ref.Mode().String()
	c.Encap = ref.Encap()
	c.Proposal = ProposalOf(ref)
	c.InstalledS = Seconds(now.Sub(ref.Created()))
	if in != nil {
		st := in.Stats()
		c.SPIIn = SPI32(in.SPI())
		c.BytesIn, c.PacketsIn = st.BytesIn, st.PacketsIn
		c.LastInS = since(st.LastUsed, now)
		c.ReplayWindow = in.ReplayWindow()
		c.addDrops(st)
	}
	if out != nil {
		st := out.Stats()
		c.SPIOut = SPI32(out.SPI())
		c.BytesOut, c.PacketsOut = st.BytesOut, st.PacketsOut
		c.LastOutS = since(st.LastUsed, now)
		c.addDrops(st)
	}
}

func (c *Child) addDrops(st sa.Stats) {
	for r, n := range st.Drops {
		if n == 0 {
			continue
		}
		if c.Drops == nil {
			c.Drops = map[string]uint64{}
		}
		c.Drops[sa.Reason(r).String()] += n
	}
}

func since(t, now time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := Seconds(now.Sub(t))
	return &s
}

// ProposalOf names the algorithms of an ESP or AH SA in strongSwan's
// notation, as `swanctl --list-sas` shows a CHILD_SA's.
func ProposalOf(s *sa.SA) string { return ChildProposal(s, sa.DHNone) }

// ChildProposal is ProposalOf for a CHILD_SA whose keys came from a
// CREATE_CHILD_SA with a key exchange (PFS): swanctl names that group
// too, so the two views of one SA read the same.
func ChildProposal(s *sa.SA, ke sa.DHGroup) string {
	p := sa.Proposal{Protocol: s.Protocol(), ESN: []sa.ESNMode{sa.NoESN}}
	if ke != sa.DHNone {
		p.DH = []sa.DHGroup{ke}
	}
	if s.ESN() {
		p.ESN = []sa.ESNMode{sa.WithESN}
	}
	if s.Protocol() == sa.ProtoESP {
		p.Encr = []sa.Encr{{Alg: s.Enc(), KeyBits: s.EncKeyBits()}}
	}
	if s.Integ() != sa.IntegNone {
		p.Integ = []sa.IntegAlg{s.Integ()}
	}
	return p.String()
}

// MarshalJSON writes lists that are empty as [] rather than null, so
// that `jq '.connections[]'` and the like work on an idle gateway.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status // without this method
	p := plain(s)
	if p.Connections == nil {
		p.Connections = []Connection{}
	}
	if p.Manual == nil {
		p.Manual = []ManualSA{}
	}
	p.Connections = slices.Clone(p.Connections)
	for i := range p.Connections {
		c := &p.Connections[i]
		if c.IKESAs == nil {
			c.IKESAs = []IKESA{}
		}
		c.IKESAs = slices.Clone(c.IKESAs)
		for j := range c.IKESAs {
			ike := &c.IKESAs[j]
			if ike.Children == nil {
				ike.Children = []Child{}
			}
			ike.Children = slices.Clone(ike.Children)
			for k := range ike.Children {
				ike.Children[k].fillLists()
			}
		}
		c.Traps = slices.Clone(c.Traps)
		for j := range c.Traps {
			tr := &c.Traps[j]
			if tr.LocalTS == nil {
				tr.LocalTS = []string{}
			}
			if tr.RemoteTS == nil {
				tr.RemoteTS = []string{}
			}
		}
	}
	p.Manual = slices.Clone(p.Manual)
	for i := range p.Manual {
		p.Manual[i].fillLists()
	}
	return json.Marshal(p)
}

func (c *Child) fillLists() {
	if c.LocalTS == nil {
		c.LocalTS = []string{}
	}
	if c.RemoteTS == nil {
		c.RemoteTS = []string{}
	}
}
