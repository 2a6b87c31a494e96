package swan

import (
	"fmt"
	"strconv"
)

// IKESA is one IKE_SA as charon lists it (vici list-sas). Algorithm names
// are strongSwan's ("AES_GCM_16", "PRF_HMAC_SHA2_256", "CURVE_25519").
type IKESA struct {
	Name         string // the connection's name
	UniqueID     int
	Version      int
	State        string // CONNECTING, ESTABLISHED, REKEYING, DELETING, ...
	LocalHost    string
	LocalPort    int
	LocalID      string
	RemoteHost   string
	RemotePort   int
	RemoteID     string
	Initiator    bool
	InitiatorSPI string // 16 hex digits
	ResponderSPI string
	NATLocal     bool // this side is behind a NAT
	NATRemote    bool // the peer is behind a NAT
	EncrAlg      string
	EncrKeySize  int
	IntegAlg     string
	PRFAlg       string
	DHGroup      string
	Children     []ChildSA
}

// ChildSA is one CHILD_SA of an IKESA.
type ChildSA struct {
	Name        string // the child's configured name
	UniqueID    int
	ReqID       int
	State       string // INSTALLED, REKEYED, ...
	Mode        string // TUNNEL, TRANSPORT
	Protocol    string // ESP, AH
	Encap       bool   // UDP-encapsulated
	SPIIn       uint32
	SPIOut      uint32
	EncrAlg     string
	EncrKeySize int
	IntegAlg    string
	DHGroup     string
	ESN         bool
	BytesIn     uint64
	PacketsIn   uint64
	BytesOut    uint64
	PacketsOut  uint64
	LocalTS     []string
	RemoteTS    []string
}

// parseIKESA turns one list-sa event (a section named after the connection)
// into an IKESA.
func parseIKESA(name string, s *Section) (IKESA, error) {
	var p fieldParser
	sa := IKESA{
		Name:         name,
		UniqueID:     p.int(s, "uniqueid"),
		Version:      p.int(s, "version"),
		State:        s.Get("state"),
		LocalHost:    s.Get("local-host"),
		LocalPort:    p.int(s, "local-port"),
		LocalID:      s.Get("local-id"),
		RemoteHost:   s.Get("remote-host"),
		RemotePort:   p.int(s, "remote-port"),
		RemoteID:     s.Get("remote-id"),
		Initiator:    s.Get("initiator") == "yes",
		InitiatorSPI: s.Get("initiator-spi"),
		ResponderSPI: s.Get("responder-spi"),
		NATLocal:     s.Get("nat-local") == "yes",
		NATRemote:    s.Get("nat-remote") == "yes",
		EncrAlg:      s.Get("encr-alg"),
		EncrKeySize:  p.int(s, "encr-keysize"),
		IntegAlg:     s.Get("integ-alg"),
		PRFAlg:       s.Get("prf-alg"),
		DHGroup:      s.Get("dh-group"),
	}
	if children := s.Sub("child-sas"); children != nil {
		for _, e := range children.Sections() {
			c := e.Section
			sa.Children = append(sa.Children, ChildSA{
				Name:        c.Get("name"),
				UniqueID:    p.int(c, "uniqueid"),
				ReqID:       p.int(c, "reqid"),
				State:       c.Get("state"),
				Mode:        c.Get("mode"),
				Protocol:    c.Get("protocol"),
				Encap:       c.Get("encap") == "yes",
				SPIIn:       p.spi(c, "spi-in"),
				SPIOut:      p.spi(c, "spi-out"),
				EncrAlg:     c.Get("encr-alg"),
				EncrKeySize: p.int(c, "encr-keysize"),
				IntegAlg:    c.Get("integ-alg"),
				DHGroup:     c.Get("dh-group"),
				ESN:         c.Get("esn") == "1" || c.Get("esn") == "yes",
				BytesIn:     p.uint(c, "bytes-in"),
				PacketsIn:   p.uint(c, "packets-in"),
				BytesOut:    p.uint(c, "bytes-out"),
				PacketsOut:  p.uint(c, "packets-out"),
				LocalTS:     c.GetList("local-ts"),
				RemoteTS:    c.GetList("remote-ts"),
			})
		}
	}
	if p.err != nil {
		return IKESA{}, fmt.Errorf("IKE_SA %s: %w", name, p.err)
	}
	return sa, nil
}

// fieldParser converts numeric fields, keeping the first error; a missing
// field is zero.
type fieldParser struct{ err error }

func (p *fieldParser) uint(s *Section, name string) uint64 {
	v := s.Get(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %w", name, err)
	}
	return n
}

func (p *fieldParser) int(s *Section, name string) int {
	v := s.Get(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %w", name, err)
	}
	return n
}

func (p *fieldParser) spi(s *Section, name string) uint32 {
	v := s.Get(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 16, 32)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %w", name, err)
	}
	return uint32(n)
}
