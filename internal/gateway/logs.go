package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/isle-ipsec/isle/internal/metrics"
)

// ikeLogHandler is the negotiator's log: what a peer (or anyone who can
// send a datagram) triggers is rate limited per message, so that a flood
// cannot flood the log; failures are counted for the metrics endpoint.
type ikeLogHandler struct {
	next     slog.Handler
	counters *metrics.Counters
	lim      *limiter
}

// limiter allows a burst of lines per key and interval, then counts what
// it suppressed and says so once the interval is over.
type limiter struct {
	mu       sync.Mutex
	burst    int
	interval time.Duration
	keys     map[string]*window
}

type window struct {
	start      time.Time
	n          int
	suppressed int
}

func newLimiter(burst int, interval time.Duration) *limiter {
	return &limiter{burst: burst, interval: interval, keys: map[string]*window{}}
}

// allow reports whether a line with key may be written now, and how many
// were suppressed in the previous interval.
func (l *limiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil || now.Sub(w.start) >= l.interval {
		if w != nil {
			suppressed = w.suppressed
		}
		if len(l.keys) > 1024 {
			clear(l.keys) // bounded memory whatever the keys
		}
		w = &window{start: now}
		l.keys[key] = w
	}
	if w.n >= l.burst {
		w.suppressed++
		return false, 0
	}
	w.n++
	return true, suppressed
}

func newIKELogHandler(next slog.Handler, c *metrics.Counters) *ikeLogHandler {
	return &ikeLogHandler{next: next, counters: c, lim: newLimiter(5, 10*time.Second)}
}

func (h *ikeLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *ikeLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var errText string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			errText = a.Value.String()
		}
		return true
	})
	if r.Message == "ike: IKE SA failed" || r.Message == "ike: peer does not answer" {
		exchange, reason := failureOf(r.Message, errText)
		h.counters.Failure(exchange, reason)
	}
	ok, suppressed := h.lim.allow(r.Message, r.Time)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed_before", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *ikeLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &ikeLogHandler{next: h.next.WithAttrs(as), counters: h.counters, lim: h.lim}
}

func (h *ikeLogHandler) WithGroup(name string) slog.Handler {
	return &ikeLogHandler{next: h.next.WithGroup(name), counters: h.counters, lim: h.lim}
}

// note logs one line of the gateway's own about peer-triggered events,
// under the same limit.
func (h *ikeLogHandler) note(msg, from string) {
	if ok, _ := h.lim.allow(msg, time.Now()); ok {
		slog.New(h.next).Info(msg, "from", from)
	}
}

// failureOf names a failed exchange and its reason, as the metrics
// counters want them, from the negotiator's error text.
func failureOf(msg, err string) (exchange, reason string) {
	e := strings.ToLower(err)
	switch {
	case msg == "ike: peer does not answer" || strings.Contains(e, "not responding"):
		return "INFORMATIONAL", "timeout"
	case strings.Contains(e, "no_proposal_chosen") || strings.Contains(e, "proposal"):
		return "IKE_SA_INIT", "no_proposal_chosen"
	case strings.Contains(e, "authentication") || strings.Contains(e, "auth"):
		return "IKE_AUTH", "auth_failed"
	case strings.Contains(e, "ike_auth"):
		return "IKE_AUTH", "timeout"
	}
	return "IKE_AUTH", "other"
}
