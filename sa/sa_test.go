package sa

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func key(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func gcmConfig() Config {
	return Config{SPI: 0x1001, Protocol: ProtoESP, Enc: EncAESGCM16, EncKey: key(20, 1)}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"gcm128 ok", func(c *Config) {}, ""},
		{"gcm256 ok", func(c *Config) { c.EncKey = key(36, 1) }, ""},
		{"gcm explicit bits mismatch", func(c *Config) { c.EncKeyBits = 256 }, "want 36"},
		{"gcm bad key length", func(c *Config) { c.EncKey = key(17, 1) }, "does not take"},
		{"gcm with integ", func(c *Config) { c.Integ, c.IntegKey = IntegHMACSHA256128, key(32, 2) }, "AEAD"},
		{"chacha ok", func(c *Config) { c.Enc, c.EncKey = EncChaCha20Poly1305, key(36, 1) }, ""},
		{"chacha 128 bits", func(c *Config) { c.Enc, c.EncKey = EncChaCha20Poly1305, key(20, 1) }, "does not take"},
		{"cbc without integ", func(c *Config) { c.Enc, c.EncKey = EncAESCBC, key(16, 1) }, "needs an integrity"},
		{"cbc sha256 ok", func(c *Config) {
			c.Enc, c.EncKey, c.Integ, c.IntegKey = EncAESCBC, key(32, 1), IntegHMACSHA256128, key(32, 2)
		}, ""},
		{"cbc short integ key", func(c *Config) {
			c.Enc, c.EncKey, c.Integ, c.IntegKey = EncAESCBC, key(16, 1), IntegHMACSHA512256, key(32, 2)
		}, "want 64"},
		{"null sha1 ok", func(c *Config) {
			c.Enc, c.EncKey, c.Integ, c.IntegKey = EncNull, nil, IntegHMACSHA1_96, key(20, 2)
		}, ""},
		{"null with key", func(c *Config) { c.Enc, c.Integ, c.IntegKey = EncNull, IntegHMACSHA1_96, key(20, 2) }, "want 0"},
		{"ah ok", func(c *Config) {
			c.Protocol, c.Enc, c.EncKey, c.Integ, c.IntegKey = ProtoAH, 0, nil, IntegHMACSHA384192, key(48, 2)
		}, ""},
		{"ah with enc", func(c *Config) { c.Protocol, c.Integ, c.IntegKey = ProtoAH, IntegHMACSHA1_96, key(20, 2) }, "AH takes no"},
		{"ah without integ", func(c *Config) { c.Protocol, c.Enc, c.EncKey = ProtoAH, 0, nil }, "AH needs"},
		{"reserved spi", func(c *Config) { c.SPI = 255 }, "at least 256"},
		{"unknown enc", func(c *Config) { c.Enc = 99 }, "unsupported encryption"},
		{"unknown protocol", func(c *Config) { c.Protocol = ProtoIKE }, "not ESP or AH"},
		{"huge window", func(c *Config) { c.ReplayWindow = MaxReplayWindow + 1 }, "replay window"},
		{"integ key without alg", func(c *Config) { c.IntegKey = key(32, 1) }, "without integrity"},
		{"soft time after hard", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Time: time.Hour}, Hard: Limits{Time: time.Minute}} }, "soft lifetime"},
		{"soft bytes equal hard", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Bytes: 5}, Hard: Limits{Bytes: 5}} }, "soft byte"},
		{"soft packets after hard", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Packets: 9}, Hard: Limits{Packets: 5}} }, "soft packet"},
		{"soft only is fine", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Packets: 9, Bytes: 1, Time: time.Hour}} }, ""},
		{"negative time", func(c *Config) { c.Lifetime.Soft.Time = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gcmConfig()
			tt.mutate(&c)
			s, err := New(c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewCopiesKeyAndCloseClears(t *testing.T) {
	c := gcmConfig()
	c.EncKey = key(20, 7)
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	clear(c.EncKey) // the caller's copy must not matter
	if !bytes.Equal(s.encKey, key(20, 7)) {
		t.Fatal("SA shares the caller's key slice")
	}
	s.Close()
	if !bytes.Equal(s.encKey, make([]byte, 20)) || s.salt != [4]byte{} {
		t.Fatal("Close left key material behind")
	}
	if !errors.Is(s.Err(), ErrExpired) {
		t.Fatalf("Err after Close = %v", s.Err())
	}
	if _, err := s.NextSeq(); err != ErrExpired {
		t.Fatalf("NextSeq after Close = %v", err)
	}
	s.Close() // idempotent
}

func TestNextSeq(t *testing.T) {
	tests := []struct {
		name     string
		esn      bool
		start    uint64
		want     []uint64 // nil entry means ErrSeqExhausted expected
		rekeyed  bool
		exhausts int // index at which exhaustion begins, -1 none
	}{
		{"starts at one", false, 0, []uint64{1, 2, 3}, false, -1},
		{"32-bit last number", false, math.MaxUint32 - 2, []uint64{math.MaxUint32 - 1, math.MaxUint32}, true, 2},
		{"32-bit stays exhausted", false, math.MaxUint32, nil, true, 0},
		{"esn crosses 2^32", true, math.MaxUint32 - 1, []uint64{math.MaxUint32, 1 << 32, 1<<32 + 1}, false, -1},
		{"esn end", true, math.MaxUint64 - 1, []uint64{math.MaxUint64}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gcmConfig()
			c.ESN = tt.esn
			s, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetSeqForTest(tt.start)
			for _, w := range tt.want {
				got, err := s.NextSeq()
				if err != nil || got != w {
					t.Fatalf("NextSeq = %d, %v; want %d", got, err, w)
				}
			}
			if tt.exhausts >= 0 {
				for range 3 {
					if _, err := s.NextSeq(); err != ErrSeqExhausted {
						t.Fatalf("NextSeq after the end = %v, want ErrSeqExhausted", err)
					}
				}
			}
			ev := drain(s)
			if got := len(ev) > 0 && ev[0].Kind == EventRekey && ev[0].Limit == LimitSeq; got != tt.rekeyed {
				t.Fatalf("rekey event %v, want %v (events %v)", got, tt.rekeyed, ev)
			}
			if len(ev) > 1 {
				t.Fatalf("more than one event: %v", ev)
			}
		})
	}
}

func TestNextSeqConcurrentUnique(t *testing.T) {
	s, err := New(gcmConfig())
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 2000
	seen := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				n, err := s.NextSeq()
				if err != nil {
					t.Error(err)
					return
				}
				seen[w] = append(seen[w], n)
			}
		}()
	}
	wg.Wait()
	all := map[uint64]bool{}
	for _, l := range seen {
		for _, n := range l {
			if all[n] {
				t.Fatalf("sequence number %d handed out twice", n)
			}
			all[n] = true
		}
	}
	for n := uint64(1); n <= workers*each; n++ {
		if !all[n] {
			t.Fatalf("sequence number %d skipped", n)
		}
	}
}

func drain(s *SA) []Event {
	var out []Event
	for {
		select {
		case ev := <-s.Events():
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestLifetimeCounts(t *testing.T) {
	tests := []struct {
		name      string
		life      Lifetime
		packets   int // packets of 100 bytes
		wantKinds []EventKind
		wantLimit Limit
		expired   bool
	}{
		{"no limits", Lifetime{}, 50, nil, 0, false},
		{"soft packets", Lifetime{Soft: Limits{Packets: 10}}, 50, []EventKind{EventRekey}, LimitPackets, false},
		{"soft bytes", Lifetime{Soft: Limits{Bytes: 1000}}, 50, []EventKind{EventRekey}, LimitBytes, false},
		{"below soft", Lifetime{Soft: Limits{Packets: 51}}, 50, nil, 0, false},
		{"hard packets", Lifetime{Soft: Limits{Packets: 10}, Hard: Limits{Packets: 20}}, 20,
			[]EventKind{EventRekey, EventExpired}, LimitPackets, true},
		{"hard bytes only", Lifetime{Hard: Limits{Bytes: 2000}}, 20, []EventKind{EventExpired}, LimitBytes, true},
		{"just below hard", Lifetime{Hard: Limits{Packets: 21}}, 20, nil, 0, false},
	}
	for _, tt := range tests {
		for _, inbound := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				var notified []Event
				c := gcmConfig()
				c.Inbound = inbound
				c.Lifetime = tt.life
				c.Notify = func(ev Event) { notified = append(notified, ev) }
				s, err := New(c)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for range tt.packets {
					if inbound {
						s.CountIn(100)
					} else {
						s.CountOut(100)
					}
				}
				ev := drain(s)
				if len(ev) != len(tt.wantKinds) || len(notified) != len(ev) {
					t.Fatalf("events %v, notified %v, want kinds %v", ev, notified, tt.wantKinds)
				}
				for i, k := range tt.wantKinds {
					if ev[i].Kind != k || ev[i].SA != s || notified[i] != ev[i] {
						t.Fatalf("event %d = %+v, want kind %v", i, ev[i], k)
					}
				}
				if len(ev) > 0 && ev[0].Limit != tt.wantLimit {
					t.Fatalf("limit %v, want %v", ev[0].Limit, tt.wantLimit)
				}
				if got := s.Err() != nil; got != tt.expired {
					t.Fatalf("expired = %v, want %v", got, tt.expired)
				}
				st := s.Stats()
				n := st.PacketsOut + st.PacketsIn
				b := st.BytesOut + st.BytesIn
				if n != uint64(tt.packets) || b != uint64(tt.packets*100) {
					t.Fatalf("stats %+v", st)
				}
				if st.LastUsed.IsZero() || time.Since(st.LastUsed) > 2*time.Second {
					t.Fatalf("last used %v", st.LastUsed)
				}
			})
		}
	}
}

func TestLifetimeTime(t *testing.T) {
	c := gcmConfig()
	// Far apart, so that a loaded machine cannot reorder the two timers.
	c.Lifetime = Lifetime{Soft: Limits{Time: 20 * time.Millisecond}, Hard: Limits{Time: 500 * time.Millisecond}}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Err() != nil {
		t.Fatal("expired at birth")
	}
	ev := <-s.Events()
	if ev.Kind != EventRekey || ev.Limit != LimitTime {
		t.Fatalf("first event %+v", ev)
	}
	if s.Err() != nil {
		t.Fatal("expired at the soft limit")
	}
	ev = <-s.Events()
	if ev.Kind != EventExpired || ev.Limit != LimitTime {
		t.Fatalf("second event %+v", ev)
	}
	if s.Err() != ErrExpired {
		t.Fatalf("Err = %v after hard time", s.Err())
	}
	if _, err := s.NextSeq(); err != ErrExpired {
		t.Fatalf("NextSeq = %v after hard time", err)
	}
}

func TestCloseStopsTimers(t *testing.T) {
	c := gcmConfig()
	c.Lifetime.Soft.Time = 200 * time.Millisecond
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	time.Sleep(300 * time.Millisecond)
	if ev := drain(s); len(ev) != 0 {
		t.Fatalf("events after Close: %v", ev)
	}
}

func TestDropCounters(t *testing.T) {
	s, err := New(gcmConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.CountDrop(ReasonReplayed)
	s.CountDrop(ReasonReplayed)
	s.CountDrop(ReasonAuthFailed)
	s.CountDrop(Reason(200)) // ignored, not a panic
	st := s.Stats()
	if st.Drops[ReasonReplayed] != 2 || st.Drops[ReasonAuthFailed] != 1 || st.Drops[ReasonMalformed] != 0 {
		t.Fatalf("drops %v", st.Drops)
	}
}

func TestReasonOf(t *testing.T) {
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ReasonNone},
		{ErrAuthFailed, ReasonAuthFailed},
		{ErrReplayed, ReasonReplayed},
		{ErrDummy, ReasonDummy},
		{errors.Join(errors.New("ctx"), ErrExpired), ReasonExpired},
		{wrap(ErrUnknownSPI), ReasonUnknownSPI},
		{errors.New("other"), ReasonMalformed},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = ReasonOf(ErrReplayed) }); n != 0 {
		t.Errorf("ReasonOf allocates %v", n)
	}
}

type wrapped struct{ err error }

func (w wrapped) Error() string { return "ctx: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }
func wrap(err error) error      { return wrapped{err} }

func TestString(t *testing.T) {
	s, err := New(gcmConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "ESP/out SPI 0x00001001 AES_GCM_16-128"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}
