package sa

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits is one set of lifetime limits; a zero field means "no limit".
type Limits struct {
	Time    time.Duration // since the SA was created
	Bytes   uint64        // inner (cleartext) bytes processed
	Packets uint64        // packets processed
}

// Lifetime holds the soft limits, at which the SA asks to be rekeyed
// (once), and the hard limits, at which it expires and refuses to process
// further packets.
type Lifetime struct {
	Soft, Hard Limits
}

// Config describes one unidirectional Security Association: everything
// `ip xfrm state add` would take. Keys are copied by New; the caller may
// clear its own copies afterwards.
type Config struct {
	SPI      uint32
	Protocol Protocol // ProtoESP or ProtoAH
	Mode     Mode
	Inbound  bool // true: we receive with this SA; false: we send with it

	Enc        EncAlg // ESP only; zero for AH
	EncKeyBits int    // cipher key size without salt; 0 = derive from len(EncKey)
	// EncKey is the cipher key followed, for AES-GCM and ChaCha20-Poly1305,
	// by the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2), as ip xfrm takes it.
	EncKey []byte

	Integ    IntegAlg // HMAC for AH and for non-AEAD ESP; IntegNone with AEAD
	IntegKey []byte

	ESN          bool   // 64-bit extended sequence numbers (RFC 4303 §2.2.1)
	ReplayWindow uint32 // anti-replay window in packets (inbound only); 0 = off

	Encap         bool           // ESP in UDP (RFC 3948)
	Local, Remote netip.AddrPort // outer addresses; ports matter with Encap

	Lifetime Lifetime

	// Notify, when set, is called once per lifetime event (soft limit
	// reached, SA expired). It runs on the goroutine that processed the
	// packet or on a timer goroutine, so it must not block. Events are
	// also delivered on the channel returned by Events.
	Notify func(Event)
}

// MaxReplayWindow is the largest anti-replay window New accepts.
const MaxReplayWindow = 1 << 16

// SA state values.
const (
	stateAlive uint32 = iota
	stateExpired
	stateClosed
)

// SA is one Security Association. All methods are safe for concurrent use;
// the per-packet ones (NextSeq, CheckReplay, CommitReplay, Crypto,
// Count*) do not allocate.
type SA struct {
	// Immutable after New.
	spi      uint32
	proto    Protocol
	mode     Mode
	inbound  bool
	enc      EncAlg
	encBits  int
	integ    IntegAlg
	esn      bool
	encap    bool
	local    netip.AddrPort
	remote   netip.AddrPort
	lifetime Lifetime
	notify   func(Event)
	created  time.Time

	// Key material we own, cleared by Close.
	encKey   []byte
	integKey []byte
	salt     [4]byte

	// Crypto state built once by New.
	aead    cipher.AEAD  // AES-GCM or ChaCha20-Poly1305
	block   cipher.Block // AES for CBC
	ivBlock cipher.Block // per-SA random AES key that makes CBC IVs
	mac     *macKey      // HMAC pads, nil without integrity transform
	pool    sync.Pool    // *Crypto scratch, one per concurrent worker

	_      [64]byte // keep the hot sequence counter off the config's line
	seqOut atomic.Uint64
	ivCtr  atomic.Uint64
	_      [48]byte

	replay replayWindow

	state    atomic.Uint32
	softDone atomic.Bool
	hardDone atomic.Bool
	timerMu  sync.Mutex
	timers   []*time.Timer
	events   chan Event

	ctr counters
}

// New validates cfg and builds the SA with its crypto state.
func New(cfg Config) (*SA, error) {
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("sa: SPI %#08x: %w", cfg.SPI, err)
	}
	s := &SA{
		spi:      cfg.SPI,
		proto:    cfg.Protocol,
		mode:     cfg.Mode,
		inbound:  cfg.Inbound,
		enc:      cfg.Enc,
		encBits:  cfg.EncKeyBits,
		integ:    cfg.Integ,
		esn:      cfg.ESN,
		encap:    cfg.Encap,
		local:    cfg.Local,
		remote:   cfg.Remote,
		lifetime: cfg.Lifetime,
		notify:   cfg.Notify,
		created:  time.Now(),
		encKey:   append([]byte(nil), cfg.EncKey...),
		integKey: append([]byte(nil), cfg.IntegKey...),
		events:   make(chan Event, 4),
	}
	if err := s.initCrypto(); err != nil {
		s.wipe()
		return nil, fmt.Errorf("sa: SPI %#08x: %w", cfg.SPI, err)
	}
	s.pool.New = func() any { return s.newCrypto() }
	if cfg.Inbound {
		s.replay.init(cfg.ReplayWindow)
	}
	s.startTimers()
	startClock()
	return s, nil
}

func validate(c *Config) error {
	if c.SPI < 256 {
		// RFC 4303 §2.1: 0 is local-only and 1–255 are reserved by IANA.
		return fmt.Errorf("SPI must be at least 256")
	}
	if c.Mode != ModeTunnel && c.Mode != ModeTransport {
		return fmt.Errorf("unknown mode %v", c.Mode)
	}
	if err := c.Lifetime.validate(); err != nil {
		return err
	}
	if c.ReplayWindow > MaxReplayWindow {
		return fmt.Errorf("replay window %d larger than %d", c.ReplayWindow, MaxReplayWindow)
	}
	if c.Integ != IntegNone {
		if c.Integ.KeySize() == 0 {
			return fmt.Errorf("unsupported integrity algorithm %v", c.Integ)
		}
		if len(c.IntegKey) != c.Integ.KeySize() {
			return fmt.Errorf("%v key is %d bytes, want %d", c.Integ, len(c.IntegKey), c.Integ.KeySize())
		}
	} else if len(c.IntegKey) != 0 {
		return errors.New("integrity key given without integrity algorithm")
	}
	switch c.Protocol {
	case ProtoAH:
		if c.Enc != 0 || len(c.EncKey) != 0 {
			return errors.New("AH takes no encryption algorithm")
		}
		if c.Integ == IntegNone {
			return errors.New("AH needs an integrity algorithm")
		}
		return nil
	case ProtoESP:
	default:
		return fmt.Errorf("protocol %v is not ESP or AH", c.Protocol)
	}
	switch c.Enc {
	case EncNull, EncAESCBC, EncAESGCM16, EncChaCha20Poly1305:
	default:
		return fmt.Errorf("unsupported encryption algorithm %v", c.Enc)
	}
	if c.EncKeyBits == 0 {
		c.EncKeyBits = (len(c.EncKey) - c.Enc.SaltSize()) * 8
		if c.Enc == EncNull {
			c.EncKeyBits = 0
		}
	}
	if !c.Enc.KeyBitsOK(c.EncKeyBits) {
		return fmt.Errorf("%v does not take %d-bit keys", c.Enc, c.EncKeyBits)
	}
	if want := c.EncKeyBits/8 + c.Enc.SaltSize(); len(c.EncKey) != want {
		return fmt.Errorf("%v-%d key (with salt) is %d bytes, want %d", c.Enc, c.EncKeyBits, len(c.EncKey), want)
	}
	if c.Enc.AEAD() && c.Integ != IntegNone {
		return fmt.Errorf("%v is an AEAD and takes no integrity algorithm", c.Enc)
	}
	if !c.Enc.AEAD() && c.Integ == IntegNone {
		// RFC 8221 §4: ESP without integrity is not allowed.
		return fmt.Errorf("%v needs an integrity algorithm", c.Enc)
	}
	return nil
}

// SPI returns the Security Parameters Index.
func (s *SA) SPI() uint32 { return s.spi }

// Protocol returns ProtoESP or ProtoAH.
func (s *SA) Protocol() Protocol { return s.proto }

// Mode returns the encapsulation mode.
func (s *SA) Mode() Mode { return s.mode }

// Inbound reports whether this SA receives (true) or sends (false).
func (s *SA) Inbound() bool { return s.inbound }

// Enc returns the encryption algorithm (zero for AH).
func (s *SA) Enc() EncAlg { return s.enc }

// EncKeyBits returns the cipher key size in bits, salt excluded.
func (s *SA) EncKeyBits() int { return s.encBits }

// Integ returns the integrity algorithm (IntegNone with an AEAD).
func (s *SA) Integ() IntegAlg { return s.integ }

// ESN reports whether 64-bit extended sequence numbers are in use.
func (s *SA) ESN() bool { return s.esn }

// Encap reports whether ESP is carried in UDP (RFC 3948).
func (s *SA) Encap() bool { return s.encap }

// Local returns the local outer address (and UDP port with Encap).
func (s *SA) Local() netip.AddrPort { return s.local }

// Remote returns the peer's outer address (and UDP port with Encap).
func (s *SA) Remote() netip.AddrPort { return s.remote }

// Lifetime returns the configured limits.
func (s *SA) Lifetime() Lifetime { return s.lifetime }

// Created returns when New built the SA.
func (s *SA) Created() time.Time { return s.created }

// ReplayWindow returns the anti-replay window size (0 = off).
func (s *SA) ReplayWindow() uint32 { return s.replay.size }

// ICVSize is the length of the integrity check value on the wire.
func (s *SA) ICVSize() int {
	if s.enc.AEAD() {
		return s.enc.ICVSize()
	}
	return s.integ.ICVSize()
}

// Err returns nil while the SA may process packets, ErrExpired once a
// hard lifetime was reached or the SA was closed.
func (s *SA) Err() error {
	if s.state.Load() != stateAlive {
		return ErrExpired
	}
	return nil
}

// Expire marks the SA as expired (as a hard lifetime would) without
// clearing its keys, e.g. when the negotiator deletes it but workers
// may still hold it.
func (s *SA) Expire() { s.expire(LimitManual) }

// Close expires the SA, stops its timers and clears the key material it
// owns (keys, salt, HMAC pad states). Go cannot reach into the key
// schedules kept inside crypto/aes, the pooled CBC modes and x/crypto, so
// those are left to the garbage collector. Workers that may still hold
// the SA should stop first: SAD.Delete expires at once and closes later.
// Close is idempotent.
func (s *SA) Close() {
	s.expire(LimitManual)
	if !s.state.CompareAndSwap(stateExpired, stateClosed) {
		return
	}
	s.stopTimers()
	s.wipe()
}

func (s *SA) wipe() {
	clear(s.encKey)
	clear(s.integKey)
	clear(s.salt[:])
	if s.mac != nil {
		s.mac.wipe()
	}
}

func (s *SA) String() string {
	dir := "out"
	if s.inbound {
		dir = "in"
	}
	if s.proto == ProtoAH {
		return fmt.Sprintf("%v/%s SPI %#08x %v", s.proto, dir, s.spi, s.integ)
	}
	if s.enc.AEAD() {
		return fmt.Sprintf("%v/%s SPI %#08x %v-%d", s.proto, dir, s.spi, s.enc, s.encBits)
	}
	return fmt.Sprintf("%v/%s SPI %#08x %v-%d/%v", s.proto, dir, s.spi, s.enc, s.encBits, s.integ)
}
