package status

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// WriteText renders st in the layout of `swanctl --list-sas`, so that an
// administrator who knows strongSwan reads it at a glance:
//
//	office-b: ESTABLISHED, IKEv2, 0102030405060708_i* 1112131415161718_r
//	  local  'gw-a.example.net' @ 198.18.0.1[4500]
//	  remote 'gw-b.example.net' @ 198.18.0.2[4500]
//	  AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519
//	  established 12s ago, rekeying in 3h59m48s
//	  lan: INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16_128
//	    installed 12s ago, rekeying in 59m
//	    in  c1a2b3d4,        840 bytes,       10 packets,     1s ago
//	    out c5a6b7d8,        840 bytes,       10 packets,     1s ago
//	    local  10.1.0.0/24
//	    remote 10.2.0.0/24
//	  dmz: TRAPPED (start_action), 10.1.9.0/24 === 10.2.9.0/24
//
// A TRAPPED line is a child with no CHILD_SA whose trap waits for its
// first packet, and the setting that armed it. The star marks our side of the IKE_SA, as in swanctl. Durations are
// compact ("1h2m3s") rather than swanctl's bare seconds.
func WriteText(w io.Writer, st *Status) error {
	p := &printer{w: w}
	if len(st.Connections) == 0 && len(st.Manual) == 0 {
		p.line("no connections")
	}
	for _, c := range st.Connections {
		if len(c.IKESAs) == 0 {
			p.line("%s: no IKE_SA", c.Name)
		}
		for _, ike := range c.IKESAs {
			p.ikeSA(c.Name, &ike)
		}
		for _, tr := range c.Traps {
			p.line("  %s: TRAPPED (%s), %s === %s", tr.Name, tr.Reason,
				strings.Join(tr.LocalTS, " "), strings.Join(tr.RemoteTS, " "))
		}
	}
	for _, m := range st.Manual {
		p.manual(&m)
	}
	if g := st.Gateway; g != nil {
		if d := drops(g.Drops); d != "" {
			p.line("dropped: %s", d)
		}
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) ikeSA(name string, ike *IKESA) {
	i, r := "_i", "_r"
	if ike.Initiator {
		i += "*"
	} else {
		r += "*"
	}
	p.line("%s: %s, IKEv2, %s%s %s%s", name, ike.State, ike.SPIi, i, ike.SPIr, r)
	p.line("  local  %s", endpoint(ike.LocalID, ike.Local))
	p.line("  remote %s", endpoint(ike.RemoteID, ike.Remote))
	if ike.Proposal != "" {
		p.line("  %s", ike.Proposal)
	}
	if ike.EstablishedS > 0 || ike.State == "ESTABLISHED" {
		p.line("  established %s ago%s", dur(ike.EstablishedS), rekeying(ike.RekeyInS))
	}
	for _, ch := range ike.Children {
		p.child("  ", &ch)
	}
}

func (p *printer) manual(m *ManualSA) {
	p.line("%s: MANUAL, %s === %s", m.Name, m.Local, m.Remote)
	p.child("  ", &m.Child)
}

func (p *printer) child(indent string, ch *Child) {
	mode := ch.Mode
	if ch.Encap {
		mode += "-in-UDP"
	}
	p.line("%s%s: %s, %s, %s:%s", indent, ch.Name, ch.State, mode, ch.Protocol, ch.Proposal)
	in := indent + "  "
	replay := ", replay window off"
	if ch.ReplayWindow != 0 {
		replay = fmt.Sprintf(", replay window %d", ch.ReplayWindow)
	}
	p.line("%sinstalled %s ago%s%s", in, dur(ch.InstalledS), rekeying(ch.RekeyInS), replay)
	p.line("%sin  %s, %10d bytes, %8d packets%s", in, ch.SPIIn, ch.BytesIn, ch.PacketsIn, lastUse(ch.LastInS))
	p.line("%sout %s, %10d bytes, %8d packets%s", in, ch.SPIOut, ch.BytesOut, ch.PacketsOut, lastUse(ch.LastOutS))
	p.line("%slocal  %s", in, strings.Join(ch.LocalTS, " "))
	p.line("%sremote %s", in, strings.Join(ch.RemoteTS, " "))
	if d := drops(ch.Drops); d != "" {
		p.line("%sdropped %s", in, d)
	}
}

// endpoint prints "'id' @ addr[port]" as swanctl does; either part may be
// missing.
func endpoint(id, addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = fmt.Sprintf("%s[%d]", ap.Addr(), ap.Port())
	}
	if id == "" {
		return addr
	}
	return fmt.Sprintf("'%s' @ %s", id, addr)
}

func rekeying(s int64) string {
	if s <= 0 {
		return ""
	}
	return ", rekeying in " + dur(s)
}

func lastUse(s *int64) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(", %5s ago", dur(*s))
}

// drops lists nonzero counters by name, largest first, ties by name.
func drops(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var l []kv
	for k, v := range m {
		if v != 0 {
			l = append(l, kv{k, v})
		}
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].v != l[j].v {
			return l[i].v > l[j].v
		}
		return l[i].k < l[j].k
	})
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	return strings.Join(parts, ", ")
}

// dur prints whole seconds compactly: "0s", "59s", "1m", "1h2m3s", "2d3h".
// Days drop the seconds: at that scale they are noise.
func dur(s int64) string {
	if s < 0 {
		s = 0
	}
	d := time.Duration(s) * time.Second
	if d < time.Minute {
		return fmt.Sprintf("%ds", s)
	}
	var b strings.Builder
	if days := s / 86400; days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		s %= 86400
		if h := s / 3600; h > 0 {
			fmt.Fprintf(&b, "%dh", h)
		}
		return b.String()
	}
	if h := s / 3600; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m := s % 3600 / 60; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec := s % 60; sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}
