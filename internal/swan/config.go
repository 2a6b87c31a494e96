package swan

import (
	"fmt"
	"slices"
	"strings"
)

// Config is a swanctl.conf: connections and secrets. Each level has an
// Options map for swanctl keys the structs do not name (see swanctl.conf(5)),
// so a test can set anything charon knows without changing this package.
type Config struct {
	Connections []Connection
	Secrets     []Secret
}

// Connection is one entry of swanctl.conf's connections section.
type Connection struct {
	Name        string
	Version     int // 0 leaves charon's default; isle speaks only 2
	LocalAddrs  []string
	RemoteAddrs []string
	LocalPort   int // 0: default (500)
	RemotePort  int
	Proposals   []string // IKE proposals, strongSwan keywords
	Encap       bool     // force UDP encapsulation of ESP
	Mobike      *bool    // nil: charon's default (yes)
	DPDDelay    string   // "30s"
	RekeyTime   string
	Local       Auth
	Remote      Auth
	Children    []Child
	Options     map[string]string
}

// Auth is a local or remote authentication round.
type Auth struct {
	Auth    string   // "psk", "pubkey"
	ID      string   // any identity strongSwan parses: FQDN, address, DN
	Certs   []string // certificate files: absolute, or relative to the x509 directory
	CACerts []string // remote: trust anchors, absolute or relative to x509ca
	PubKeys []string // raw public keys, absolute or relative to pubkey
	Options map[string]string
}

// Child is one CHILD_SA configuration of a connection.
type Child struct {
	Name         string
	LocalTS      []string
	RemoteTS     []string
	Mode         string   // "tunnel" (default), "transport"
	ESPProposals []string // strongSwan keywords; empty means charon's default
	AHProposals  []string
	StartAction  string // "none" (default), "start", "trap" (trap does not work with libipsec)
	RekeyTime    string
	Options      map[string]string
}

// Secret is one entry of the secrets section.
type Secret struct {
	// Type is the secret's section type: "ike" (a PSK for IDs), or a key
	// file type: "private", "rsa", "ecdsa", "pkcs8".
	Type   string
	IDs    []string // ike: identities the PSK is for
	Secret string   // ike: the PSK
	File   string   // key file types: absolute, or relative to the type's directory
}

// Render writes the configuration in swanctl.conf syntax.
func (c *Config) Render() (string, error) {
	w := &confWriter{}
	w.open("connections")
	for _, conn := range c.Connections {
		if conn.Name == "" {
			return "", fmt.Errorf("connection without a name")
		}
		w.open(conn.Name)
		if conn.Version != 0 {
			w.kv("version", fmt.Sprint(conn.Version))
		}
		w.list("local_addrs", conn.LocalAddrs)
		w.list("remote_addrs", conn.RemoteAddrs)
		if conn.LocalPort != 0 {
			w.kv("local_port", fmt.Sprint(conn.LocalPort))
		}
		if conn.RemotePort != 0 {
			w.kv("remote_port", fmt.Sprint(conn.RemotePort))
		}
		w.list("proposals", conn.Proposals)
		if conn.Encap {
			w.kv("encap", "yes")
		}
		if conn.Mobike != nil {
			w.kv("mobike", yesNo(*conn.Mobike))
		}
		w.kv("dpd_delay", conn.DPDDelay)
		w.kv("rekey_time", conn.RekeyTime)
		w.options(conn.Options)
		for _, side := range []struct {
			name string
			a    Auth
		}{{"local", conn.Local}, {"remote", conn.Remote}} {
			w.open(side.name)
			w.kv("auth", side.a.Auth)
			w.kv("id", side.a.ID)
			w.list("certs", side.a.Certs)
			w.list("cacerts", side.a.CACerts)
			w.list("pubkeys", side.a.PubKeys)
			w.options(side.a.Options)
			w.close()
		}
		w.open("children")
		for _, ch := range conn.Children {
			if ch.Name == "" {
				return "", fmt.Errorf("connection %s: child without a name", conn.Name)
			}
			w.open(ch.Name)
			w.list("local_ts", ch.LocalTS)
			w.list("remote_ts", ch.RemoteTS)
			w.kv("mode", ch.Mode)
			w.list("esp_proposals", ch.ESPProposals)
			w.list("ah_proposals", ch.AHProposals)
			w.kv("start_action", ch.StartAction)
			w.kv("rekey_time", ch.RekeyTime)
			w.options(ch.Options)
			w.close()
		}
		w.close()
		w.close()
	}
	w.close()
	w.open("secrets")
	for i, s := range c.Secrets {
		if s.Type == "" {
			return "", fmt.Errorf("secret %d without a type", i+1)
		}
		w.open(fmt.Sprintf("%s-%d", s.Type, i+1))
		for j, id := range s.IDs {
			w.kv(fmt.Sprintf("id-%d", j+1), id)
		}
		w.kv("secret", s.Secret)
		w.kv("file", s.File)
		w.close()
	}
	w.close()
	return w.b.String(), nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// confWriter writes strongSwan's settings syntax, every value quoted so
// that identities with spaces or commas (DNs) and secrets survive.
type confWriter struct {
	b     strings.Builder
	depth int
}

func (w *confWriter) indent() { w.b.WriteString(strings.Repeat("  ", w.depth)) }

func (w *confWriter) open(name string) {
	w.indent()
	w.b.WriteString(name + " {\n")
	w.depth++
}

func (w *confWriter) close() {
	w.depth--
	w.indent()
	w.b.WriteString("}\n")
}

// kv writes key = "value"; an empty value is left out (charon's default).
func (w *confWriter) kv(key, value string) {
	if value == "" {
		return
	}
	w.indent()
	w.b.WriteString(key + " = " + quote(value) + "\n")
}

func (w *confWriter) list(key string, values []string) {
	w.kv(key, strings.Join(values, ","))
}

func (w *confWriter) options(opts map[string]string) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable file, easy to read in a failure
	for _, k := range keys {
		w.kv(k, opts[k])
	}
}

func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}
