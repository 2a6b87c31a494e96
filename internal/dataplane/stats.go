package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/isle-ipsec/isle/sa"
)

// Drop says why the dataplane discarded a packet. Drops that belong to an
// SA (replay, auth failed, ...) are also counted on that SA.
type Drop uint8

const (
	DropNoPolicy       Drop = iota // outbound packet no SPD entry covers
	DropUnknownSPI                 // inbound ESP/AH with an SPI we do not have
	DropReplay                     // sequence number replayed or too old
	DropAuthFailed                 // ICV did not verify
	DropPolicyMismatch             // decrypted inner packet outside the SA's selectors
	DropMalformed                  // unparseable inner or outer packet
	DropTooBig                     // inner packet too big for the tunnel: ICMP sent back
	DropExpired                    // SA hard lifetime reached or sequence numbers used up
	DropSendError                  // the outer socket refused the packet
	DropTUNError                   // writing to the TUN device failed
	DropNotESP                     // non-ESP datagram on the NAT-T port with no IKE handler
	DropDummy                      // ESP dummy packet (next header 59), by design
	numDrops
)

var dropNames = [numDrops]string{
	"no_policy", "unknown_spi", "replay", "auth_failed", "policy_mismatch",
	"malformed", "too_big", "expired", "send_error", "tun_error", "not_esp", "dummy",
}

// String returns a short name usable as a metric label.
func (d Drop) String() string {
	if d < numDrops {
		return dropNames[d]
	}
	return fmt.Sprintf("drop_%d", uint8(d))
}

// dropOf maps an esp/ah error to the dataplane's drop reason.
func dropOf(err error) Drop {
	switch sa.ReasonOf(err) {
	case sa.ReasonAuthFailed:
		return DropAuthFailed
	case sa.ReasonReplayed:
		return DropReplay
	case sa.ReasonUnknownSPI:
		return DropUnknownSPI
	case sa.ReasonSeqExhausted, sa.ReasonExpired:
		return DropExpired
	case sa.ReasonDummy:
		return DropDummy
	}
	return DropMalformed
}

// counters are the dataplane-wide statistics, updated atomically.
type counters struct {
	drops               [numDrops]atomic.Uint64
	keepalives          atomic.Uint64 // NAT-T keepalives received (RFC 3948 §2.3)
	keepalivesSent      atomic.Uint64
	ike                 atomic.Uint64 // datagrams handed to the IKE handler
	mssClamped          atomic.Uint64
	tooBigSent          atomic.Uint64
	packetsOut, packets atomic.Uint64
}

// Stats is a snapshot of the dataplane's counters and of every installed
// child SA's.
type Stats struct {
	Drops          map[string]uint64 // by Drop name; every reason is present
	Keepalives     uint64            // received
	KeepalivesSent uint64
	IKE            uint64
	MSSClamped     uint64
	TooBigSent     uint64
	Children       []ChildStats
}

// ChildStats is the state of one installed SA pair.
type ChildStats struct {
	Name     string
	Protocol string // "ESP" or "AH"
	Encap    bool
	SPIIn    uint32
	SPIOut   uint32
	In, Out  SAStats
	LocalTS  []string
	RemoteTS []string
}

// SAStats are one SA's counters, with its drops by reason name.
type SAStats struct {
	Bytes, Packets uint64
	Drops          map[string]uint64 // only reasons that occurred
	LastUsed       time.Time         // zero if never used
}

func saStats(s *sa.SA) SAStats {
	st := s.Stats()
	out := SAStats{Bytes: st.BytesIn + st.BytesOut, Packets: st.PacketsIn + st.PacketsOut, LastUsed: st.LastUsed}
	for r, n := range st.Drops {
		if n != 0 {
			if out.Drops == nil {
				out.Drops = map[string]uint64{}
			}
			out.Drops[sa.Reason(r).String()] = n
		}
	}
	return out
}
