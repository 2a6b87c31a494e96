package swan

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// ChildKeys is the key material of one CHILD_SA, read from charon's log
// (filelog with chd = 4), so that a test can open strongSwan's ESP itself.
// For AES-GCM the encryption key carries the 4-byte salt at its end, as
// RFC 4106 keying material does.
type ChildKeys struct {
	Name     string // the child's configured name
	UniqueID int    // the {N} in charon's log, ChildSA.UniqueID
	// Initiator says whether this charon initiated the exchange that made
	// the CHILD_SA (IKE_AUTH or CREATE_CHILD_SA); it decides which of the
	// initiator/responder keys protects which direction.
	Initiator bool
	EncrAlg   string // as logged: "AES_GCM_16", "AES_CBC", "CHACHA20_POLY1305"
	IntegAlg  string // "" for AEAD, else e.g. "HMAC_SHA2_256_128"
	SPIIn     uint32
	SPIOut    uint32
	EncrIn    []byte // key of the inbound SA (packets to this charon)
	EncrOut   []byte
	IntegIn   []byte
	IntegOut  []byte
}

// maxKeyLen bounds a logged key: the longest ESP key is 64 bytes.
const maxKeyLen = 256

var (
	// "15:17:57 12[CHD] text": time (our time_format has no spaces),
	// thread, subsystem, message.
	logLine      = regexp.MustCompile(`^\S+ (\d+)\[(\w+)\] (.*)$`)
	parsedMsg    = regexp.MustCompile(`^parsed \S+ (request|response) `)
	childState   = regexp.MustCompile(`^CHILD_SA (\S+)\{(\d+)\} state change: \S+ => INSTALLING$`)
	usingAlg     = regexp.MustCompile(`^\s*using (\S+) for (encryption|integrity)$`)
	keyHeader    = regexp.MustCompile(`^(encryption|integrity) (initiator|responder) key => (\d+) bytes`)
	hexDumpLine  = regexp.MustCompile(`^\s*\d+: ((?:[0-9A-F]{2} )*[0-9A-F]{2})`)
	establishedL = regexp.MustCompile(`^(?:inbound |outbound )?CHILD_SA (\S+)\{(\d+)\} established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o`)
)

// ParseChildKeys reads a charon log and returns the keys of every CHILD_SA
// it shows being installed, in order. Charon logs from several threads at
// once, so the state (the last message parsed, the CHILD_SA being keyed,
// a key being dumped) is kept per thread.
func ParseChildKeys(r io.Reader) ([]ChildKeys, error) {
	type dump struct {
		dst  *[]byte
		want int
	}
	type thread struct {
		lastWasResponse bool
		child           *ChildKeys
		dump            *dump
		encr, integ     [2][]byte // [initiator, responder]
	}
	threads := map[string]*thread{}
	byID := map[int]*ChildKeys{}
	var order []*ChildKeys

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		tid, subsys, text := m[1], m[2], m[3]
		th := threads[tid]
		if th == nil {
			th = &thread{}
			threads[tid] = th
		}
		if th.dump != nil {
			if h := hexDumpLine.FindStringSubmatch(text); h != nil && subsys == "CHD" {
				b, err := hex.DecodeString(strings.ReplaceAll(h[1], " ", ""))
				if err != nil {
					return nil, fmt.Errorf("key dump %q: %w", text, err)
				}
				*th.dump.dst = append(*th.dump.dst, b...)
				if len(*th.dump.dst) >= th.dump.want {
					th.dump = nil
				}
				continue
			}
			return nil, fmt.Errorf("key dump cut short at %q", sc.Text())
		}
		if p := parsedMsg.FindStringSubmatch(text); p != nil {
			th.lastWasResponse = p[1] == "response"
			continue
		}
		if s := childState.FindStringSubmatch(text); s != nil {
			id, _ := strconv.Atoi(s[2])
			// Keys are derived on processing the peer's message: on its
			// response if we initiated the exchange, on its request if not.
			k := &ChildKeys{Name: s[1], UniqueID: id, Initiator: th.lastWasResponse}
			th.child, th.encr, th.integ = k, [2][]byte{}, [2][]byte{}
			byID[id] = k
			order = append(order, k)
			continue
		}
		if e := establishedL.FindStringSubmatch(text); e != nil {
			// Inbound and outbound halves may be reported by different
			// threads; the keys belong to the thread that derived them.
			if k := th.child; k != nil && strconv.Itoa(k.UniqueID) == e[2] {
				// The initiator's keys protect initiator → responder traffic.
				in, out := 1, 0
				if !k.Initiator {
					in, out = 0, 1
				}
				k.EncrIn, k.EncrOut = th.encr[in], th.encr[out]
				k.IntegIn, k.IntegOut = th.integ[in], th.integ[out]
				th.child = nil
			}
			if err := setSPIs(byID, e); err != nil {
				return nil, err
			}
			continue
		}
		if th.child == nil {
			continue
		}
		if u := usingAlg.FindStringSubmatch(text); u != nil {
			if u[2] == "encryption" {
				th.child.EncrAlg = u[1]
			} else {
				th.child.IntegAlg = u[1]
			}
			continue
		}
		if kh := keyHeader.FindStringSubmatch(text); kh != nil {
			n, err := strconv.Atoi(kh[3])
			if err != nil || n == 0 || n > maxKeyLen {
				return nil, fmt.Errorf("implausible key length in %q", text)
			}
			slot := &th.encr
			if kh[1] == "integrity" {
				slot = &th.integ
			}
			i := 0
			if kh[2] == "responder" {
				i = 1
			}
			slot[i] = make([]byte, 0, n)
			th.dump = &dump{dst: &slot[i], want: n}
			continue
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]ChildKeys, 0, len(order))
	for _, k := range order {
		if k.SPIIn != 0 && k.EncrIn != nil {
			out = append(out, *k)
		}
	}
	return out, nil
}

func setSPIs(byID map[int]*ChildKeys, e []string) error {
	id, _ := strconv.Atoi(e[2])
	k := byID[id]
	if k == nil {
		return nil // established without keys logged (chd below 4)
	}
	in, err1 := strconv.ParseUint(e[3], 16, 32)
	out, err2 := strconv.ParseUint(e[4], 16, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("CHILD_SA %s{%d}: bad SPIs %s %s", e[1], id, e[3], e[4])
	}
	k.SPIIn, k.SPIOut = uint32(in), uint32(out)
	return nil
}
