package e2e

import (
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/netns"
)

// TestIKEUp: two gateways negotiate with IKEv2 (PSK, then certificates)
// and carry ping and byte-checked TCP, IPv4 and IPv6 inside.
func TestIKEUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		o      ikeOpts
	}{
		{"psk", "gka", ikeOpts{}},
		{"cert", "gkb", ikeOpts{cert: true}},
		{"psk-aes-cbc-sha256-modp2048", "gkc", ikeOpts{proposals: "aes256-sha256-modp2048", espProposal: "aes128-sha256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startIKELab(t, tc.prefix, tc.o)
			took := l.waitUp("site", 10*time.Second)
			t.Logf("IKE_SA and CHILD_SA up on both sides %v after the initiator started", took)
			if took > time.Second {
				t.Errorf("negotiation took %v, want well under a second", took)
			}
			if err := l.topo.Ping(netns.HL, netns.HR4, 3); err != nil {
				t.Fatal(err)
			}
			if err := l.topo.Ping(netns.HL, netns.HR6, 3); err != nil {
				t.Fatal(err)
			}
			res, err := l.topo.TCPTransfer(netns.HL, netns.HR, netns.HR4, 4<<20)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("TCP 4 MiB hl → hr byte-checked: %.0f Mbit/s", res.Mbps())
			st, raw := l.status(l.left)
			s := st.Connections[0].IKESAs[0]
			if !s.Initiator || s.Children[0].PacketsOut == nil || *s.Children[0].PacketsOut == 0 {
				t.Errorf("left status: %s", raw)
			}
		})
	}
}
