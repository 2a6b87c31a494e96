package config

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// Load reads and validates the configuration file at path. Relative paths
// inside it are relative to its folder. The error, when not nil, is an
// Errors listing every problem as FILE:LINE: message, FILE being path as
// given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", readErr(err))}}
	}
	base := filepath.Dir(path)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	return Parse(path, data, base)
}

// Parse validates a configuration held in memory; name is used in the
// messages and baseDir resolves relative paths (certificates, keys,
// secret files, the control socket).
func Parse(name string, data []byte, baseDir string) (*Config, error) {
	var root map[string]any
	if _, err := toml.Decode(string(data), &root); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: name, Line: pe.Position.Line, Msg: "TOML syntax error: " + pe.Message}}
		}
		return nil, Errors{{File: name, Msg: "TOML syntax error: " + err.Error()}}
	}
	p := &parser{file: name, base: baseDir, lines: scanKeyLines(string(data))}
	cfg := p.config(&table{p: p, m: root})
	cfg.File = name
	if len(p.errs) > 0 {
		return nil, p.errs.sorted()
	}
	return cfg, nil
}

func (p *parser) config(root *table) *Config {
	root.known("gateway", "connections", "secrets", "manual")
	cfg := &Config{Gateway: p.gateway(root.sub("gateway"))}
	if t := root.sub("secrets"); t != nil {
		for _, st := range t.subs("secret") {
			if s, ok := p.secret(st); ok {
				cfg.Secrets = append(cfg.Secrets, s)
			} else {
				p.badSecrets = true
			}
		}
	}
	if t := root.sub("connections"); t != nil {
		for _, ct := range t.subs("connection") {
			cfg.Connections = append(cfg.Connections, p.connection(ct, cfg))
		}
	}
	if t := root.sub("manual"); t != nil {
		inbound := map[uint64]string{}
		for _, mt := range t.subs("manual SA") {
			cfg.Manual = append(cfg.Manual, p.manual(mt, inbound))
		}
	}
	return cfg
}

func (p *parser) gateway(t *table) Gateway {
	g := Gateway{
		Interface: DefaultInterface, MTU: DefaultMTU, Control: DefaultControl,
		LogLevel: "info", LogFormat: "text", IKEPort: DefaultIKEPort, NATTPort: DefaultNATTPort,
	}
	if t == nil {
		return g
	}
	t.known("interface", "mtu", "control", "log_level", "log_format", "ike_port", "natt_port", "keylog", "metrics")
	if s, ok := t.str("interface", g.Interface); ok {
		if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t%:") {
			t.errorf("interface", "%q is not a valid interface name (1 to 15 characters, no \"/\", \":\", \"%%\" or blanks)", s)
		} else {
			g.Interface = s
		}
	}
	g.MTU = int(t.integer("mtu", DefaultMTU, 576, 65535))
	g.Control = t.filePath("control", DefaultControl)
	if g.Control == "" {
		t.errorf("control", "must not be empty: expected the control socket path, e.g. %q", DefaultControl)
	}
	levels := []string{"debug", "info", "warn", "error"}
	g.LogLevel = levels[t.enum("log_level", 1, levels...)]
	formats := []string{"text", "json"}
	g.LogFormat = formats[t.enum("log_format", 0, formats...)]
	g.IKEPort = uint16(t.integer("ike_port", DefaultIKEPort, 1, 65535))
	g.NATTPort = uint16(t.integer("natt_port", DefaultNATTPort, 1, 65535))
	if g.IKEPort == g.NATTPort {
		key := "natt_port"
		if !t.has(key) {
			key = "ike_port"
		}
		t.errorf(key, "ike_port and natt_port are both %d: IKE and NAT-T need two different ports", g.NATTPort)
	}
	g.Keylog = t.filePath("keylog", "")
	if g.Keylog != "" {
		if fi, err := os.Stat(g.Keylog); err != nil || !fi.IsDir() {
			t.errorf("keylog", "%q is not a directory: expected the folder where the Wireshark key files go", t.written("keylog"))
		}
	}
	if s, _ := t.str("metrics", ""); s != "" {
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || n == 0 {
			t.errorf("metrics", "%q is not HOST:PORT: expected e.g. \"127.0.0.1:9750\"", s)
		} else if _, err := netip.ParseAddr(host); err != nil && host != "localhost" && host != "" {
			t.errorf("metrics", "%q: %q is not an IP address: expected e.g. \"127.0.0.1:9750\" or \"[::1]:9750\"", s, host)
		} else {
			g.Metrics = s
		}
	}
	return g
}

func (p *parser) secret(t *table) (Secret, bool) {
	s := Secret{Name: t.path[len(t.path)-1]}
	t.known("ids", "secret", "secret_file")
	ok := true
	if !validName(s.Name) {
		t.errorf("", "secret name %q may only contain letters, digits, \".\", \"_\" and \"-\"", s.Name)
		ok = false
	}
	ids, _ := t.strs("ids")
	for _, v := range ids {
		id, err := ParseIdentity(v)
		if err != nil {
			t.errorf("ids", "%v", err)
			ok = false
			continue
		}
		s.IDs = append(s.IDs, id)
	}
	val, hasVal := t.str("secret", "")
	file := t.filePath("secret_file", "")
	switch {
	case hasVal && file != "":
		t.errorf("secret_file", "give either secret or secret_file, not both")
		return s, false
	case hasVal:
		key, err := decodeSecret(val)
		if err != nil {
			t.errorf("secret", "%v", err)
			return s, false
		}
		s.Key = key
	case file != "":
		data, err := secretFile(file)
		if err != nil {
			t.errorf("secret_file", "%q %v", t.written("secret_file"), err)
			return s, false
		}
		key, err := decodeSecret(string(data))
		if err != nil {
			t.errorf("secret_file", "%q: %v", t.written("secret_file"), err)
			return s, false
		}
		s.Key = key
	default:
		if !t.has("secret") && !t.has("secret_file") {
			t.errorf("", "no key: add secret = \"...\" or secret_file = \"path\"")
		}
		return s, false
	}
	if len(s.Key) == 0 {
		t.errorf("secret", "the pre-shared key is empty")
		return s, false
	}
	return s, ok
}

// addrs reads a list of IP addresses where "%any" may stand for any.
func (t *table) addrs(key string) (list []netip.Addr, anyAddr, present bool) {
	vals, present := t.strs(key)
	if present && len(vals) == 0 {
		t.errorf(key, "empty: expected IP addresses or [\"%%any\"]")
	}
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if v == "%any" || v == "%any4" || v == "%any6" {
			anyAddr = true
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			t.errorf(key, "%q is not an IP address: expected e.g. \"198.18.0.1\", \"2001:db8::1\" or \"%%any\"", v)
			continue
		}
		list = append(list, a.Unmap())
	}
	return list, anyAddr, present
}

func (p *parser) connection(t *table, cfg *Config) Connection {
	c := Connection{
		Name:          t.path[len(t.path)-1],
		DPDDelay:      30 * time.Second,
		RekeyTime:     4 * time.Hour,
		Fragmentation: true,
	}
	t.known("local_addrs", "remote_addrs", "proposals", "encap", "dpd_delay", "rekey_time", "fragmentation", "local", "remote", "children")
	if !validName(c.Name) {
		t.errorf("", "connection name %q may only contain letters, digits, \".\", \"_\" and \"-\" (it is used as `isle up NAME`)", c.Name)
	}
	local, localAny, _ := t.addrs("local_addrs")
	if localAny && len(local) > 0 {
		t.errorf("local_addrs", "\"%%any\" together with addresses: use either")
	}
	c.LocalAddrs = local
	remote, remoteAny, present := t.addrs("remote_addrs")
	switch {
	case !present:
		t.errorf("", "missing remote_addrs: the peer's address, e.g. [\"198.18.0.2\"], or [\"%%any\"] to accept any peer (responder only)")
	case remoteAny && len(remote) > 0:
		t.errorf("remote_addrs", "\"%%any\" together with addresses: use either")
	}
	c.RemoteAddrs, c.RemoteAny = remote, remoteAny && len(remote) == 0
	if len(local) > 0 && len(remote) > 0 && !shareFamily(local, remote) {
		t.errorf("remote_addrs", "no remote address has the address family of local_addrs (IPv4 and IPv6 cannot talk to each other)")
	}
	c.Proposals = t.proposals("proposals", sa.ProtoIKE)
	c.Encap = t.boolean("encap", false)
	c.DPDDelay = t.duration("dpd_delay", c.DPDDelay)
	c.RekeyTime = t.duration("rekey_time", c.RekeyTime)
	c.Fragmentation = t.boolean("fragmentation", true)

	if lt := t.sub("local"); lt != nil {
		c.Local = p.localAuth(lt, c)
	} else if !t.has("local") {
		t.errorf("", "missing [%s] table: auth (\"psk\" or \"pubkey\") and id of this gateway", t.name("local"))
	}
	if rt := t.sub("remote"); rt != nil {
		c.Remote = p.remoteAuth(rt)
	} else if !t.has("remote") {
		t.errorf("", "missing [%s] table: auth (\"psk\" or \"pubkey\") and id of the peer", t.name("remote"))
	}
	if (c.Local.Auth == AuthPSK || c.Remote.Auth == AuthPSK) && !p.badIDs && !p.badSecrets {
		// With a bad identity or secret the check would only add a
		// confusing consequence of the problem already reported.
		p.checkPSK(t, c, cfg)
	}

	if ct := t.sub("children"); ct != nil {
		for _, child := range ct.subs("child") {
			c.Children = append(c.Children, p.child(child, c))
		}
	}
	if len(c.Children) == 0 && !t.has("children") {
		t.errorf("", "no children: add a [%s.children.NAME] table with local_ts and remote_ts", t.name(""))
	}
	return c
}

func shareFamily(a, b []netip.Addr) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Is4() == y.Is4() {
				return true
			}
		}
	}
	return false
}

// proposals reads a list of proposal strings for proto; absent means
// "default".
func (t *table) proposals(key string, proto sa.Protocol) []sa.Proposal {
	vals, ok := t.strs(key)
	if !ok {
		return sa.DefaultProposals(proto)
	}
	if len(vals) == 0 {
		t.errorf(key, "empty: expected strongSwan proposal keywords, or [\"default\"]")
		return nil
	}
	var out []sa.Proposal
	for _, v := range vals {
		ps, err := sa.ParseProposal(proto, v)
		if err != nil {
			t.errorf(key, "%v", err)
			continue
		}
		out = append(out, ps...)
	}
	return out
}

func (t *table) auth(key string) AuthMethod {
	s, ok := t.str(key, "")
	switch {
	case !ok && !t.has(key):
		t.errorf("", "missing auth: expected \"psk\" or \"pubkey\"")
	case s == "psk":
		return AuthPSK
	case s == "pubkey":
		return AuthPubkey
	case ok:
		t.errorf(key, "%q is not valid: expected \"psk\" or \"pubkey\"", s)
	}
	return 0
}

func (t *table) identity(key string) (Identity, bool) {
	s, ok := t.str(key, "")
	if !ok {
		return Identity{}, false
	}
	id, err := ParseIdentity(s)
	if err != nil {
		t.errorf(key, "%v", err)
		t.p.badIDs = true
		return Identity{}, false
	}
	return id, true
}

func (p *parser) localAuth(t *table, c Connection) LocalAuth {
	t.known("auth", "id", "cert", "key")
	la := LocalAuth{Auth: t.auth("auth")}
	id, hasID := t.identity("id")
	la.ID = id
	if la.ID.Kind == IDAny && hasID {
		t.errorf("id", "%%any is not an identity this gateway can prove: give its FQDN, address, user@fqdn or DN")
	}
	switch la.Auth {
	case AuthPSK:
		for _, k := range []string{"cert", "key"} {
			if t.has(k) {
				t.errorf(k, "only used with auth = \"pubkey\" (auth is \"psk\")")
			}
		}
		if !hasID && len(c.LocalAddrs) == 1 {
			la.ID = addrIdentity(c.LocalAddrs[0])
		}
	case AuthPubkey:
		la.CertFile = t.filePath("cert", "")
		la.KeyFile = t.filePath("key", "")
		if la.CertFile == "" {
			t.errorf("", "auth = \"pubkey\" needs cert = \"path/to/cert.pem\" (our certificate)")
		} else if certs, err := loadCerts(la.CertFile); err != nil {
			t.errorf("cert", "%q: %v", t.written("cert"), err)
		} else {
			la.Certs = certs
		}
		if la.KeyFile == "" {
			t.errorf("", "auth = \"pubkey\" needs key = \"path/to/key.pem\" (our private key)")
		} else if key, err := loadKey(la.KeyFile); err != nil {
			t.errorf("key", "%q: %v", t.written("key"), err)
		} else {
			la.Key = key
		}
		if len(la.Certs) > 0 && la.Key != nil && !keyMatchesCert(la.Key, la.Certs[0]) {
			t.errorf("key", "%q is not the private key of the certificate %q", t.written("key"), t.written("cert"))
		}
		if len(la.Certs) > 0 {
			cert := la.Certs[0]
			if !hasID {
				if subj, err := IdentityFromSubject(cert.RawSubject); err == nil {
					la.ID = subj
				}
			} else if la.ID.Kind != IDAny && !certHasIdentity(cert, la.ID) {
				t.errorf("id", "%q is neither the subject nor a subjectAltName of the certificate %q (subject %q%s)",
					la.ID, t.written("cert"), subjectString(cert), sanList(cert))
			}
		}
	}
	return la
}

func subjectString(cert *x509.Certificate) string {
	id, err := IdentityFromSubject(cert.RawSubject)
	if err != nil {
		return "?"
	}
	return id.Value
}

func sanList(cert *x509.Certificate) string {
	var names []string
	names = append(names, cert.DNSNames...)
	names = append(names, cert.EmailAddresses...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return ", no subjectAltNames"
	}
	return ", subjectAltNames " + strings.Join(names, ", ")
}

func addrIdentity(a netip.Addr) Identity {
	if a.Is4() {
		return Identity{Kind: IDIPv4, Value: a.String(), Addr: a}
	}
	return Identity{Kind: IDIPv6, Value: a.String(), Addr: a}
}

func (p *parser) remoteAuth(t *table) RemoteAuth {
	t.known("auth", "id", "cacert")
	ra := RemoteAuth{Auth: t.auth("auth"), ID: Identity{Kind: IDAny, Value: "%any"}}
	if id, ok := t.identity("id"); ok {
		ra.ID = id
	}
	switch ra.Auth {
	case AuthPSK:
		if t.has("cacert") {
			t.errorf("cacert", "only used with auth = \"pubkey\" (auth is \"psk\")")
		}
	case AuthPubkey:
		files, _ := t.strs("cacert")
		if len(files) == 0 {
			t.errorf("", "auth = \"pubkey\" needs cacert = \"path/to/ca.pem\" (trust anchor for the peer's certificate)")
		}
		for _, written := range files {
			f := written
			if f == "" {
				t.errorf("cacert", "empty path")
				continue
			}
			if !filepath.IsAbs(f) {
				f = filepath.Join(p.base, f)
			}
			ra.CACertFiles = append(ra.CACertFiles, f)
			certs, err := loadCerts(f)
			if err != nil {
				t.errorf("cacert", "%q: %v", written, err)
				continue
			}
			ra.CACerts = append(ra.CACerts, certs...)
		}
	}
	return ra
}

// checkPSK reports a psk connection that no [secrets] entry serves.
func (p *parser) checkPSK(t *table, c Connection, cfg *Config) {
	local := c.Local.ID
	if _, ok := cfg.PSK(local, c.Remote.ID); ok {
		return
	}
	key := "remote"
	if c.Local.Auth == AuthPSK {
		key = "local"
	}
	var ids []string
	for _, id := range []Identity{local, c.Remote.ID} {
		if id.Kind != IDAny {
			ids = append(ids, strconv.Quote(id.String()))
		}
	}
	at := &table{p: p, path: t.keyPath(key)}
	if len(ids) == 0 {
		at.errorf("auth", "auth = \"psk\" but there is no [secrets] entry: add [secrets.%s] with secret", c.Name)
		return
	}
	at.errorf("auth", "auth = \"psk\" but no [secrets] entry has ids matching %s: add [secrets.%s] with ids = [%s] and secret",
		strings.Join(ids, " or "), c.Name, strings.Join(ids, ", "))
}

func (p *parser) child(t *table, c Connection) Child {
	ch := Child{
		Name:         t.path[len(t.path)-1],
		Mode:         sa.ModeTunnel,
		Protocol:     sa.ProtoESP,
		RekeyTime:    time.Hour,
		ReplayWindow: 64,
		StartAction:  StartStart,
		DPDAction:    DPDRestart,
		CloseAction:  CloseNone,
	}
	if c.RemoteAny {
		// A responder for any peer has no address to initiate to.
		ch.StartAction, ch.DPDAction = StartNone, DPDClear
	}
	t.known("local_ts", "remote_ts", "mode", "esp_proposals", "ah_proposals", "rekey_time", "rekey_bytes",
		"rekey_packets", "replay_window", "start_action", "dpd_action", "close_action")
	if !validName(ch.Name) {
		t.errorf("", "child name %q may only contain letters, digits, \".\", \"_\" and \"-\" (it is used as `isle up NAME/CHILD`)", ch.Name)
	}
	ch.LocalTS, ch.RemoteTS = t.selectorPair()
	modes := []string{"tunnel", "transport"}
	if m := t.enum("mode", 0, modes...); m != 0 {
		t.errorf("mode", "\"transport\" is not supported yet: expected \"tunnel\"")
	}
	switch {
	case t.has("esp_proposals") && t.has("ah_proposals"):
		t.errorf("ah_proposals", "a child uses ESP or AH, not both: remove esp_proposals or ah_proposals")
	case t.has("ah_proposals"):
		ch.Protocol = sa.ProtoAH
		ch.Proposals = t.proposals("ah_proposals", sa.ProtoAH)
	default:
		ch.Proposals = t.proposals("esp_proposals", sa.ProtoESP)
	}
	ch.RekeyTime = t.duration("rekey_time", ch.RekeyTime)
	ch.RekeyBytes = uint64(t.integer("rekey_bytes", 0, 0, 1<<62))
	ch.RekeyPackets = uint64(t.integer("rekey_packets", 0, 0, 1<<62))
	ch.ReplayWindow = uint32(t.integer("replay_window", 64, 0, 65536))
	ch.StartAction = StartAction(t.enum("start_action", int(ch.StartAction), "none", "start", "trap"))
	ch.DPDAction = DPDAction(t.enum("dpd_action", int(ch.DPDAction), "clear", "restart", "trap"))
	ch.CloseAction = CloseAction(t.enum("close_action", int(ch.CloseAction), "none", "start", "trap"))
	if c.RemoteAny {
		const why = "remote_addrs is [\"%%any\"], so this gateway only responds and cannot initiate: expected %s"
		if ch.StartAction != StartNone {
			t.errorf("start_action", why, `"none"`)
		}
		if ch.DPDAction != DPDClear {
			t.errorf("dpd_action", why, `"clear"`)
		}
		if ch.CloseAction != CloseNone {
			t.errorf("close_action", why, `"none"`)
		}
	}
	return ch
}

// selectorPair reads local_ts and remote_ts, both required, and checks
// that every address family on one side has a partner on the other.
func (t *table) selectorPair() (local, remote []policy.Selector) {
	local = t.selectors("local_ts")
	remote = t.selectors("remote_ts")
	if len(local) == 0 || len(remote) == 0 {
		return local, remote
	}
	for _, fam := range []int{4, 6} {
		l, r := hasFamily(local, fam), hasFamily(remote, fam)
		if l && !r {
			t.errorf("remote_ts", "local_ts has IPv%d selectors but remote_ts has none: both sides need the same address families", fam)
		} else if r && !l {
			t.errorf("local_ts", "remote_ts has IPv%d selectors but local_ts has none: both sides need the same address families", fam)
		}
	}
	return local, remote
}

func (t *table) selectors(key string) []policy.Selector {
	vals, ok := t.strs(key)
	if !ok {
		t.errorf("", "missing %s: expected traffic selectors, e.g. %s = [\"10.1.0.0/24\"]", key, key)
		return nil
	}
	if len(vals) == 0 {
		t.errorf(key, "empty: expected at least one traffic selector, e.g. [\"10.1.0.0/24\"]")
	}
	var out []policy.Selector
	for _, v := range vals {
		sel, err := policy.ParseSelector(v)
		if err != nil {
			t.errorf(key, "%v", err)
			continue
		}
		out = append(out, sel)
	}
	return out
}

func hasFamily(sels []policy.Selector, fam int) bool {
	for _, s := range sels {
		if s.Family() == fam {
			return true
		}
	}
	return false
}

func (p *parser) manual(t *table, inbound map[uint64]string) ManualSA {
	m := ManualSA{Name: t.path[len(t.path)-1], Protocol: sa.ProtoESP, ReplayWindow: 64}
	t.known("local_addr", "remote_addr", "local_ts", "remote_ts", "protocol", "encap", "esn", "replay_window", "out", "in")
	if !validName(m.Name) {
		t.errorf("", "manual SA name %q may only contain letters, digits, \".\", \"_\" and \"-\"", m.Name)
	}
	m.LocalAddr = t.addr("local_addr")
	m.RemoteAddr = t.addr("remote_addr")
	if m.LocalAddr.IsValid() && m.RemoteAddr.IsValid() && m.LocalAddr.Is4() != m.RemoteAddr.Is4() {
		t.errorf("remote_addr", "%v and local_addr %v are of different address families", m.RemoteAddr, m.LocalAddr)
	}
	m.LocalTS, m.RemoteTS = t.selectorPair()
	if t.enum("protocol", 0, "esp", "ah") == 1 {
		m.Protocol = sa.ProtoAH
	}
	m.Encap = t.boolean("encap", false)
	if m.Encap && m.Protocol == sa.ProtoAH {
		t.errorf("encap", "UDP encapsulation is for ESP only (RFC 3948): remove it or use protocol = \"esp\"")
	}
	m.ESN = t.boolean("esn", false)
	m.ReplayWindow = uint32(t.integer("replay_window", 64, 0, 65536))
	for _, dir := range []string{"out", "in"} {
		kt := t.sub(dir)
		if kt == nil {
			if !t.has(dir) {
				what := "the SA we send with"
				if dir == "in" {
					what = "the SA the peer sends with"
				}
				t.errorf("", "missing [%s] table (%s: spi and keys)", t.name(dir), what)
			}
			continue
		}
		keys := p.manualKeys(kt, m.Protocol)
		if dir == "out" {
			m.Out = keys
			continue
		}
		m.In = keys
		if keys.SPI != 0 {
			k := uint64(m.Protocol)<<32 | uint64(keys.SPI)
			if other, dup := inbound[k]; dup {
				kt.errorf("spi", "0x%08x is already the inbound SPI of [manual.%s]: inbound SPIs must be unique", keys.SPI, other)
			} else {
				inbound[k] = m.Name
			}
		}
	}
	return m
}

func (t *table) addr(key string) netip.Addr {
	s, ok := t.str(key, "")
	if !ok {
		if !t.has(key) {
			t.errorf("", "missing %s: expected an IP address", key)
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		t.errorf(key, "%q is not an IP address: expected e.g. \"198.18.0.1\" or \"2001:db8::1\"", s)
		return netip.Addr{}
	}
	return a.Unmap()
}

func (p *parser) manualKeys(t *table, proto sa.Protocol) ManualKeys {
	var k ManualKeys
	t.known("spi", "enc", "enc_key", "integ", "integ_key")
	k.SPI = t.spi("spi")
	enc, hasEnc := t.str("enc", "")
	integ, hasInteg := t.str("integ", "")
	hasInteg = hasInteg && integ != ""
	if proto == sa.ProtoAH {
		for _, key := range []string{"enc", "enc_key"} {
			if t.has(key) {
				t.errorf(key, "AH does not encrypt (protocol = \"ah\"): remove %s", key)
			}
		}
	} else {
		switch {
		case !hasEnc && !t.has("enc"):
			t.errorf("", "missing enc: expected the ESP cipher, e.g. \"aes128gcm16\" or \"aes256\" (with integ)")
		case hasEnc:
			e, err := sa.ParseEncr(enc)
			if err != nil {
				t.errorf("enc", "%v", err)
				break
			}
			k.Enc = e
			k.EncKey = t.hexKey("enc_key", e.KeyMaterialSize(), encKeyWhat(e, enc))
		}
	}
	aead := k.Enc.Alg.AEAD()
	switch {
	case aead && hasInteg:
		t.errorf("integ", "%q: the AEAD cipher %q has its own integrity protection: remove integ and integ_key", integ, enc)
	case aead:
		if t.has("integ_key") {
			t.errorf("integ_key", "the AEAD cipher %q has its own integrity protection: remove integ_key", enc)
		}
	case hasInteg:
		a, err := sa.ParseInteg(integ)
		if err != nil {
			t.errorf("integ", "%v", err)
			break
		}
		k.Integ = a
		k.IntegKey = t.hexKey("integ_key", a.KeySize(), fmt.Sprintf("HMAC key of %s", integ))
	case proto == sa.ProtoAH || hasEnc && k.Enc.Alg != 0:
		t.errorf("", "missing integ: %s needs an integrity algorithm, e.g. integ = \"sha256\" with integ_key", map[bool]string{true: "AH", false: fmt.Sprintf("the cipher %q", enc)}[proto == sa.ProtoAH])
	}
	return k
}

func encKeyWhat(e sa.Encr, word string) string {
	if salt := e.Alg.SaltSize(); salt > 0 {
		return fmt.Sprintf("%d-byte key + %d-byte salt for %s", e.KeyBits/8, salt, word)
	}
	return fmt.Sprintf("key of %s", word)
}

// spi reads an SPI: "0x00001001", "4097" or 4097. 0-255 are reserved.
func (t *table) spi(key string) uint32 {
	v, ok := t.m[key]
	if !ok {
		t.errorf("", "missing spi: expected e.g. spi = \"0x00001001\"")
		return 0
	}
	var n uint64
	switch v := v.(type) {
	case int64:
		if v < 0 || v > 0xffffffff {
			t.errorf(key, "%d is out of range: an SPI has 32 bits", v)
			return 0
		}
		n = uint64(v)
	case string:
		var err error
		s := strings.TrimSpace(v)
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
			n, err = strconv.ParseUint(h, 16, 32)
		} else {
			n, err = strconv.ParseUint(s, 10, 32)
		}
		if err != nil {
			t.errorf(key, "%q is not an SPI: expected 32-bit hex \"0x00001001\" or decimal", v)
			return 0
		}
	default:
		t.errorf(key, "expected an SPI such as \"0x00001001\", got %s", typeName(v))
		return 0
	}
	if n < 256 {
		t.errorf(key, "%d is reserved (SPIs 0-255, RFC 4303 §2.1): expected 256 or more", n)
		return 0
	}
	return uint32(n)
}

// hexKey reads "0x..." key material of exactly size bytes.
func (t *table) hexKey(key string, size int, what string) []byte {
	s, ok := t.str(key, "")
	if !ok {
		if !t.has(key) && size > 0 {
			t.errorf("", "missing %s: expected %d bytes (%s) as \"0x\" and %d hex digits", key, size, what, 2*size)
		}
		return nil
	}
	h, ok := strings.CutPrefix(strings.TrimSpace(s), "0x")
	if !ok {
		t.errorf(key, "expected \"0x\" followed by %d hex digits (%d bytes: %s)", 2*size, size, what)
		return nil
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		t.errorf(key, "not hex after \"0x\": expected %d hex digits (%d bytes: %s)", 2*size, size, what)
		return nil
	}
	if len(b) != size {
		t.errorf(key, "%d bytes, expected %d bytes (%d hex digits: %s)", len(b), size, 2*size, what)
		return nil
	}
	return b
}
