package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/isle-ipsec/isle/internal/status"
)

// Snapshot is what one scrape shows.
type Snapshot struct {
	Status status.Status
	Events Events
}

// Source gives the gateway's state at the moment of a scrape.
type Source interface {
	Snapshot() Snapshot
}

// SourceFunc lets a function be a Source.
type SourceFunc func() Snapshot

// Snapshot calls f.
func (f SourceFunc) Snapshot() Snapshot { return f() }

// ContentType is the media type of the text format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Serve listens on addr ("127.0.0.1:9750") and serves /metrics from src
// until ctx is done. It returns an error if it cannot listen.
func Serve(ctx context.Context, addr string, src Source) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return ServeListener(ctx, l, src)
}

// ServeListener serves /metrics on l (see Serve) and closes it.
func ServeListener(ctx context.Context, l net.Listener, src Source) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(src))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics: %w", err)
}

// Handler answers GET and HEAD with the exposition of src's snapshot.
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		if r.Method == http.MethodHead {
			return
		}
		_ = Write(w, src.Snapshot())
	})
}

// Write renders s in the text exposition format. Every family has its
// HELP and TYPE lines, even without samples, and appears once; samples
// are sorted so that two scrapes of the same state are identical.
func Write(w io.Writer, s Snapshot) error {
	e := &exposition{}
	st := &s.Status

	if g := st.Gateway; g != nil {
		info := e.family("isle_info", "gauge", "Always 1; the labels say which isle this is.")
		if g.Version != "" || g.Interface != "" {
			info.add(1, "version", g.Version, "interface", g.Interface)
		}
		e.family("isle_uptime_seconds", "gauge", "Seconds since the gateway started.").add(uint64(max(g.UptimeS, 0)))
	}

	up := e.family("isle_connection_up", "gauge", "1 if the connection has an ESTABLISHED IKE_SA, else 0.")
	ikeSAs := e.family("isle_ike_sas", "gauge", "IKE_SAs by connection and state.")
	childSAs := e.family("isle_child_sas", "gauge", "CHILD_SAs by connection and state.")
	for _, c := range st.Connections {
		established := uint64(0)
		ikeByState := map[string]uint64{}
		childByState := map[string]uint64{}
		for _, ike := range c.IKESAs {
			ikeByState[ike.State]++
			if ike.State == "ESTABLISHED" {
				established = 1
			}
			for _, ch := range ike.Children {
				childByState[ch.State]++
			}
		}
		up.add(established, "connection", c.Name)
		for state, n := range ikeByState {
			ikeSAs.add(n, "connection", c.Name, "state", state)
		}
		for state, n := range childByState {
			childSAs.add(n, "connection", c.Name, "state", state)
		}
	}
	e.family("isle_manual_sas", "gauge", "Statically keyed SA pairs ([manual.*]) installed.").add(uint64(len(st.Manual)))

	bytes := e.family("isle_child_sa_bytes_total", "counter",
		"Bytes through a CHILD_SA (inner packets), by direction; manual SAs have connection = child = their name.")
	packets := e.family("isle_child_sa_packets_total", "counter", "Packets through a CHILD_SA, by direction.")
	lastUsed := e.family("isle_child_sa_last_used_seconds", "gauge", "Seconds since a packet last used the SA; absent if none did.")
	drops := e.family("isle_child_sa_drops_total", "counter", "Packets a CHILD_SA discarded, by reason.")
	child := func(conn string, ch *status.Child) {
		for _, d := range []struct {
			dir, spi       string
			bytes, packets uint64
			last           *int64
		}{
			{"in", ch.SPIIn, ch.BytesIn, ch.PacketsIn, ch.LastInS},
			{"out", ch.SPIOut, ch.BytesOut, ch.PacketsOut, ch.LastOutS},
		} {
			if d.spi == "" {
				continue
			}
			labels := []string{"connection", conn, "child", ch.Name, "spi", d.spi, "direction", d.dir}
			bytes.add(d.bytes, labels...)
			packets.add(d.packets, labels...)
			if d.last != nil {
				lastUsed.add(uint64(max(*d.last, 0)), labels...)
			}
		}
		for reason, n := range ch.Drops {
			drops.add(n, "connection", conn, "child", ch.Name, "spi", ch.SPIIn, "reason", reason)
		}
	}
	for _, c := range st.Connections {
		for _, ike := range c.IKESAs {
			for i := range ike.Children {
				child(c.Name, &ike.Children[i])
			}
		}
	}
	for i := range st.Manual {
		child(st.Manual[i].Name, &st.Manual[i].Child)
	}

	gwDrops := e.family("isle_drops_total", "counter", "Packets the dataplane discarded, by reason, over all SAs.")
	if g := st.Gateway; g != nil {
		for reason, n := range g.Drops {
			gwDrops.add(n, "reason", reason)
		}
	}

	ex := e.family("isle_ike_exchanges_total", "counter", "IKE exchanges completed, by exchange type.")
	for t, n := range s.Events.Exchanges {
		ex.add(n, "exchange", t)
	}
	fail := e.family("isle_ike_exchange_failures_total", "counter", "IKE exchanges that failed, by exchange type and reason.")
	for k, n := range s.Events.Failures {
		fail.add(n, "exchange", k[0], "reason", k[1])
	}
	rk := e.family("isle_rekeys_total", "counter", "Rekeys completed, by kind (ike or child).")
	for kind, n := range s.Events.Rekeys {
		rk.add(n, "kind", kind)
	}

	bw := bufio.NewWriter(w)
	e.write(bw)
	return bw.Flush()
}

type exposition struct{ families []*family }

type family struct {
	name, typ, help string
	samples         []string // "{labels} value", sorted at write
}

func (e *exposition) family(name, typ, help string) *family {
	f := &family{name: name, typ: typ, help: help}
	e.families = append(e.families, f)
	return f
}

// add records a sample; labels come as name, value pairs.
func (f *family) add(v uint64, labels ...string) {
	var b strings.Builder
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(v, 10))
	f.samples = append(f.samples, b.String())
}

func (e *exposition) write(w *bufio.Writer) {
	for _, f := range e.families {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
		sort.Strings(f.samples)
		for _, s := range f.samples {
			w.WriteString(f.name)
			w.WriteString(s)
			w.WriteByte('\n')
		}
	}
}

// escapeLabel escapes a label value as the text format requires:
// backslash, double quote and line feed.
var escapeLabel = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace

// escapeHelp escapes HELP text: backslash and line feed.
var escapeHelp = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace
