package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isle-ipsec/isle/internal/status"
)

// reporter is the part of testing.T the parser needs, so that a test can
// check that the parser fails.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ failed bool }

func (*recorder) Helper()                 {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// series is one parsed sample.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parse reads the text format strictly (version 0.0.4): HELP and TYPE
// once per family and before its samples, a family's samples together,
// valid names, escapes only where allowed, no series twice.
func parse(t reporter, text string) (samples []series, types map[string]string) {
	t.Helper()
	types = map[string]string{}
	help := map[string]bool{}
	done := map[string]bool{} // families whose block has ended
	seen := map[string]bool{}
	current := ""
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("exposition does not end with a line feed")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) { t.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...)) }
		if strings.HasPrefix(line, "#") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 || (f[1] != "HELP" && f[1] != "TYPE") {
				fail("comment that is neither HELP nor TYPE")
				continue
			}
			name := f[2]
			if !metricName.MatchString(name) {
				fail("bad metric name")
			}
			if name != current {
				if done[name] {
					fail("family %s split", name)
				}
				if current != "" {
					done[current] = true
				}
				current = name
			}
			if f[1] == "HELP" {
				if help[name] {
					fail("second HELP")
				}
				help[name] = true
				if strings.Contains(strings.ReplaceAll(f[3], `\\`, ""), `\`) && !strings.Contains(f[3], `\n`) {
					fail("bad escape in HELP")
				}
			} else {
				if _, ok := types[name]; ok {
					fail("second TYPE")
				}
				switch f[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					fail("unknown type")
				}
				types[name] = f[3]
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			fail("%v", err)
			continue
		}
		if s.name != current {
			fail("sample outside its family's block (current %q)", current)
		}
		if _, ok := types[s.name]; !ok || !help[s.name] {
			fail("sample before HELP and TYPE")
		}
		if types[s.name] == "counter" && !strings.HasSuffix(s.name, "_total") {
			fail("counter not named _total")
		}
		key := line[:strings.LastIndexByte(line, ' ')]
		if seen[key] {
			fail("series twice")
		}
		seen[key] = true
		samples = append(samples, s)
	}
	return samples, types
}

func parseSample(line string) (series, error) {
	s := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !metricName.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for rest != "" && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, fmt.Errorf("bad label at %q", rest)
			}
			name := rest[:eq]
			if !labelName.MatchString(name) || strings.HasPrefix(name, "__") {
				return s, fmt.Errorf("bad label name %q", name)
			}
			var v strings.Builder
			j := eq + 2
			for ; j < len(rest) && rest[j] != '"'; j++ {
				c := rest[j]
				if c == '\n' {
					return s, fmt.Errorf("raw line feed in label value")
				}
				if c == '\\' {
					j++
					if j == len(rest) {
						return s, fmt.Errorf("dangling escape")
					}
					switch rest[j] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return s, fmt.Errorf("bad escape \\%c", rest[j])
					}
					continue
				}
				v.WriteByte(c)
			}
			if j == len(rest) {
				return s, fmt.Errorf("unterminated label value")
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %q twice", name)
			}
			s.labels[name] = v.String()
			rest = rest[j+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			}
		}
		if rest == "" {
			return s, fmt.Errorf("unterminated label set")
		}
		rest = rest[1:]
	}
	if !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("no space before the value")
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(rest, " "), 64)
	if err != nil {
		return s, fmt.Errorf("value: %v", err)
	}
	s.value = v
	return s, nil
}

// find returns the value of the one sample of name with exactly labels.
func find(t *testing.T, samples []series, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	found := -1.0
	n := 0
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			found, n = s.value, n+1
		}
	}
	if n != 1 {
		t.Errorf("%s%v: %d samples, want 1", name, labels, n)
	}
	return found
}

func i64(v int64) *int64 { return &v }

func sampleSnapshot() Snapshot {
	var c Counters
	c.Exchange("IKE_SA_INIT")
	c.Exchange("IKE_AUTH")
	c.Exchange("CREATE_CHILD_SA")
	c.Exchange("CREATE_CHILD_SA")
	c.Failure("IKE_AUTH", "auth_failed")
	c.Failure("IKE_SA_INIT", "timeout")
	c.Failure("IKE_SA_INIT", "timeout")
	c.Rekey("child")
	c.Rekey("child")
	c.Rekey("ike")
	return Snapshot{Events: c.Snapshot(), Status: status.Status{
		Connections: []status.Connection{
			{Name: "office-b", IKESAs: []status.IKESA{{State: "ESTABLISHED", Children: []status.Child{
				{Name: "lan", State: "INSTALLED", SPIIn: "c1a2b3d4", SPIOut: "c5a6b7d8", BytesIn: 840, PacketsIn: 10,
					BytesOut: 1 << 60, PacketsOut: 7, LastInS: i64(3), Drops: map[string]uint64{"replay": 2}},
				{Name: "lan", State: "REKEYED", SPIIn: "d1a2b3d4", SPIOut: "d5a6b7d8", BytesIn: 1},
			}}, {State: "DELETING"}}},
			{Name: `we"ird\name` + "\nx", IKESAs: []status.IKESA{{State: "CONNECTING"}}},
			{Name: "down"},
		},
		Manual: []status.ManualSA{{Child: status.Child{Name: "lab", State: "INSTALLED", SPIIn: "00002001", SPIOut: "00001001", PacketsOut: 5}}},
		Gateway: &status.Gateway{Version: "v1.0", Interface: "isle0", UptimeS: 99,
			Drops: map[string]uint64{"no_policy": 4, "auth_failed": 1}},
	}}
}

func TestExposition(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	samples, types := parse(t, b.String())
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"isle_info", []string{"version", "v1.0", "interface", "isle0"}, 1},
		{"isle_uptime_seconds", nil, 99},
		{"isle_connection_up", []string{"connection", "office-b"}, 1},
		{"isle_connection_up", []string{"connection", `we"ird\name` + "\nx"}, 0},
		{"isle_connection_up", []string{"connection", "down"}, 0},
		{"isle_ike_sas", []string{"connection", "office-b", "state", "ESTABLISHED"}, 1},
		{"isle_ike_sas", []string{"connection", "office-b", "state", "DELETING"}, 1},
		{"isle_ike_sas", []string{"connection", `we"ird\name` + "\nx", "state", "CONNECTING"}, 1},
		{"isle_child_sas", []string{"connection", "office-b", "state", "INSTALLED"}, 1},
		{"isle_child_sas", []string{"connection", "office-b", "state", "REKEYED"}, 1},
		{"isle_manual_sas", nil, 1},
		{"isle_child_sa_bytes_total", []string{"connection", "office-b", "child", "lan", "spi", "c1a2b3d4", "direction", "in"}, 840},
		{"isle_child_sa_bytes_total", []string{"connection", "office-b", "child", "lan", "spi", "c5a6b7d8", "direction", "out"}, 1 << 60},
		{"isle_child_sa_bytes_total", []string{"connection", "office-b", "child", "lan", "spi", "d1a2b3d4", "direction", "in"}, 1},
		{"isle_child_sa_packets_total", []string{"connection", "office-b", "child", "lan", "spi", "c5a6b7d8", "direction", "out"}, 7},
		{"isle_child_sa_packets_total", []string{"connection", "lab", "child", "lab", "spi", "00001001", "direction", "out"}, 5},
		{"isle_child_sa_last_used_seconds", []string{"connection", "office-b", "child", "lan", "spi", "c1a2b3d4", "direction", "in"}, 3},
		{"isle_child_sa_drops_total", []string{"connection", "office-b", "child", "lan", "spi", "c1a2b3d4", "reason", "replay"}, 2},
		{"isle_drops_total", []string{"reason", "no_policy"}, 4},
		{"isle_drops_total", []string{"reason", "auth_failed"}, 1},
		{"isle_ike_exchanges_total", []string{"exchange", "CREATE_CHILD_SA"}, 2},
		{"isle_ike_exchange_failures_total", []string{"exchange", "IKE_SA_INIT", "reason", "timeout"}, 2},
		{"isle_rekeys_total", []string{"kind", "child"}, 2},
		{"isle_rekeys_total", []string{"kind", "ike"}, 1},
	} {
		if got := find(t, samples, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%q = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Exactness of big counters: 2^60 must print as an integer.
	if !strings.Contains(b.String(), ` 1152921504606846976`+"\n") {
		t.Errorf("2^60 bytes not printed exactly")
	}
	// The raw escaping, once, by eye of the spec.
	if !strings.Contains(b.String(), `connection="we\"ird\\name\nx"`) {
		t.Errorf("label value not escaped as the format says:\n%s", b.String())
	}
	// Never-used SAs have no last-used sample.
	for _, s := range samples {
		if s.name == "isle_child_sa_last_used_seconds" && s.labels["spi"] != "c1a2b3d4" {
			t.Errorf("last used for an unused SA: %v", s)
		}
	}
	if types["isle_child_sa_bytes_total"] != "counter" || types["isle_ike_sas"] != "gauge" {
		t.Errorf("types %v", types)
	}
	// The same state gives the same bytes.
	var again bytes.Buffer
	Write(&again, sampleSnapshot())
	if again.String() != b.String() {
		t.Error("two expositions of one state differ")
	}
}

// TestEmpty: an idle gateway still declares its families, and nothing else.
func TestEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Snapshot{}); err != nil {
		t.Fatal(err)
	}
	samples, types := parse(t, b.String())
	if len(samples) != 1 || samples[0].name != "isle_manual_sas" || samples[0].value != 0 {
		t.Errorf("samples of an empty snapshot: %v", samples)
	}
	for _, name := range []string{"isle_ike_sas", "isle_child_sa_bytes_total", "isle_ike_exchanges_total", "isle_rekeys_total", "isle_drops_total"} {
		if _, ok := types[name]; !ok {
			t.Errorf("family %s not declared", name)
		}
	}
}

// TestParserRejects makes sure the checks above can fail.
func TestParserRejects(t *testing.T) {
	for _, line := range []string{
		`m{a="x} 1`, `m{a="\x"} 1`, `m{a=x} 1`, `m{1a="x"} 1`, `m{a="x"}1`, `m 1 2 3`, `9m 1`, `m{a="x",a="y"} 1`,
	} {
		if _, err := parseSample(line); err == nil {
			t.Errorf("parseSample(%q) accepted it", line)
		}
	}
	for _, text := range []string{
		"# HELP a x\n# TYPE a gauge\na 1\n# HELP b y\n# TYPE b gauge\nb 1\na 2\n", // split family
		"a 1\n",                               // no HELP/TYPE
		"# HELP a x\n# TYPE a counter\na 1\n", // counter without _total
		"# HELP a x\n# TYPE a gauge\na{b=\"1\"} 1\na{b=\"1\"} 2\n", // series twice
		"# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n",        // TYPE twice
		"# HELP a x\n# TYPE a gauge\na 1",                          // no final line feed
	} {
		r := &recorder{}
		parse(r, text)
		if !r.failed {
			t.Errorf("parse accepted %q", text)
		}
	}
}

func TestCountersConcurrent(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Exchange("INFORMATIONAL")
				c.Failure("IKE_AUTH", "timeout")
				c.Rekey("child")
				_ = c.Snapshot()
			}
		}()
	}
	wg.Wait()
	e := c.Snapshot()
	if e.Exchanges["INFORMATIONAL"] != 8000 || e.Failures[[2]string{"IKE_AUTH", "timeout"}] != 8000 || e.Rekeys["child"] != 8000 {
		t.Errorf("%+v", e)
	}
	c.Rekey("ike")
	if e.Rekeys["ike"] != 0 {
		t.Error("a snapshot shares memory with the counters")
	}
}

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var scrapes atomic.Int32
	go func() {
		done <- ServeListener(ctx, l, SourceFunc(func() Snapshot { scrapes.Add(1); return sampleSnapshot() }))
	}()
	url := "http://" + l.Addr().String()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("GET /metrics: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	samples, _ := parse(t, string(body))
	if find(t, samples, "isle_manual_sas") != 1 || scrapes.Load() != 1 {
		t.Errorf("scrape: %d scrapes, body:\n%s", scrapes.Load(), body)
	}
	if resp, err := http.Post(url+"/metrics", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp.Status, err)
	}
	if resp, err := http.Get(url + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %v %v", resp.Status, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("still listening after cancel")
	}
	if err := Serve(context.Background(), "256.0.0.1:1", nil); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Errorf("Serve on a bad address: %v", err)
	}
}
