// Package config reads isle.toml into typed, validated values.
//
// The vocabulary follows strongSwan's swanctl.conf (see
// /work/shared/spec/config.md in the project notes and the README's config
// reference). Load and Parse check the whole file and report every
// problem at once, each as FILE:LINE: message, sorted by line; unknown
// keys are problems too. A *Config that Load returns without error is
// complete: defaults are filled in, relative paths are resolved against
// the file's folder, certificates and keys are loaded and match, every
// psk connection has a secret, manual SA keys have the right lengths.
//
// Consumers:
//   - the IKE negotiator reads Config.Connections (proposals as
//     []sa.Proposal, identities, credentials, children with their
//     traffic selectors and actions) and Config.PSK;
//   - the dataplane builds statically keyed SAs from Config.Manual;
//   - the gateway reads Config.Gateway and compares Connections on reload.
package config

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net/netip"
	"time"

	"github.com/isle-ipsec/isle/policy"
	"github.com/isle-ipsec/isle/sa"
)

// DefaultPath is where `isle run` and `isle check` look without -c.
const DefaultPath = "/etc/isle/isle.toml"

// Defaults of [gateway].
const (
	DefaultInterface = "isle0"
	DefaultMTU       = 1400
	DefaultControl   = "/run/isle/isle.sock"
	DefaultIKEPort   = 500
	DefaultNATTPort  = 4500
)

// Config is a whole, validated isle.toml.
type Config struct {
	File        string       // the path it was loaded from, as given
	Gateway     Gateway      // [gateway]
	Connections []Connection // [connections.NAME], in file order
	Secrets     []Secret     // [secrets.NAME], in file order
	Manual      []ManualSA   // [manual.NAME], in file order
}

// Gateway is the [gateway] table.
type Gateway struct {
	Interface string // TUN device name, default "isle0"
	MTU       int    // of that device, default 1400
	Control   string // control socket path (absolute), default /run/isle/isle.sock
	LogLevel  string // debug | info | warn | error, default info
	LogFormat string // text | json, default text
	IKEPort   uint16 // default 500
	NATTPort  uint16 // default 4500
	Keylog    string // directory for Wireshark key files (absolute), "" = off
	Metrics   string // host:port of the Prometheus endpoint, "" = off
}

// Connection is one [connections.NAME] table: one peer, one IKE_SA.
type Connection struct {
	Name string
	// LocalAddrs are the addresses IKE may use locally; empty means any.
	LocalAddrs []netip.Addr
	// RemoteAddrs are the peer's addresses; empty exactly when RemoteAny.
	RemoteAddrs []netip.Addr
	// RemoteAny is remote_addrs = ["%any"]: accept any peer, never initiate.
	RemoteAny     bool
	Proposals     []sa.Proposal // IKE proposals, "default" expanded
	Encap         bool          // force ESP in UDP even without NAT
	DPDDelay      time.Duration // 0 = no liveness checks
	RekeyTime     time.Duration // IKE_SA rekey interval, 0 = never
	Fragmentation bool          // RFC 7383 IKE fragmentation
	Local         LocalAuth
	Remote        RemoteAuth
	Children      []Child // in file order
}

// AuthMethod is how one side proves its identity.
type AuthMethod uint8

const (
	AuthPSK    AuthMethod = iota + 1 // pre-shared key from [secrets]
	AuthPubkey                       // certificate and private key
)

func (m AuthMethod) String() string {
	switch m {
	case AuthPSK:
		return "psk"
	case AuthPubkey:
		return "pubkey"
	}
	return "unknown"
}

// LocalAuth is [connections.NAME.local].
type LocalAuth struct {
	Auth AuthMethod
	// ID is our identity. When not configured: the certificate's subject
	// DN for pubkey, the local address for psk with one local address.
	ID       Identity
	CertFile string              // pubkey: absolute path of our certificate (PEM)
	KeyFile  string              // pubkey: absolute path of our private key (PEM)
	Certs    []*x509.Certificate // pubkey: our certificate first, then any chain in the file
	Key      crypto.Signer       // pubkey: *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
}

// RemoteAuth is [connections.NAME.remote].
type RemoteAuth struct {
	Auth AuthMethod
	// ID is the identity the peer must prove; IDAny accepts any that
	// authenticates. When not configured: the peer's address if there is
	// exactly one.
	ID          Identity
	CACertFiles []string            // pubkey: absolute paths of the trust anchors
	CACerts     []*x509.Certificate // pubkey: every certificate of those files
}

// Child is one [connections.NAME.children.CHILD] table: one CHILD_SA.
type Child struct {
	Name         string
	LocalTS      []policy.Selector
	RemoteTS     []policy.Selector
	Mode         sa.Mode     // only tunnel so far
	Protocol     sa.Protocol // ESP, or AH when ah_proposals is set
	Proposals    []sa.Proposal
	RekeyTime    time.Duration // 0 = never
	RekeyBytes   uint64        // 0 = no limit
	RekeyPackets uint64        // 0 = no limit
	ReplayWindow uint32        // 0 = anti-replay off
	StartAction  StartAction
	DPDAction    DPDAction
	CloseAction  CloseAction
}

// StartAction is what the gateway does with a child at startup.
type StartAction uint8

const (
	StartNone  StartAction = iota // wait for the peer
	StartStart                    // initiate at startup
	StartTrap                     // initiate on the first packet that matches
)

func (a StartAction) String() string { return actionName(uint8(a), "none", "start", "trap") }

// DPDAction is what happens to a child when the peer stops answering.
type DPDAction uint8

const (
	DPDClear   DPDAction = iota // remove it
	DPDRestart                  // initiate again at once
	DPDTrap                     // initiate again on the next matching packet
)

func (a DPDAction) String() string { return actionName(uint8(a), "clear", "restart", "trap") }

// CloseAction is what happens when the peer deletes the CHILD_SA.
type CloseAction uint8

const (
	CloseNone  CloseAction = iota // nothing
	CloseStart                    // initiate it again
	CloseTrap                     // initiate again on the next matching packet
)

func (a CloseAction) String() string { return actionName(uint8(a), "none", "start", "trap") }

// actionName names an action as the configuration spells it.
func actionName(a uint8, names ...string) string {
	if int(a) < len(names) {
		return names[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// Secret is one [secrets.NAME] table: a pre-shared key.
type Secret struct {
	Name string
	IDs  []Identity // identities it is valid between; empty = any
	Key  []byte     // never logged
}

// ManualSA is one [manual.NAME] table: a statically keyed pair of SAs, as
// `ip xfrm state add` would install, with the policy between the
// selectors. No IKE runs for it.
type ManualSA struct {
	Name         string
	LocalAddr    netip.Addr // outer source address of what we send
	RemoteAddr   netip.Addr // outer destination (same family)
	LocalTS      []policy.Selector
	RemoteTS     []policy.Selector
	Protocol     sa.Protocol // ProtoESP (default) or ProtoAH
	Encap        bool        // ESP in UDP on the gateway's natt_port (ESP only)
	ESN          bool
	ReplayWindow uint32
	Out          ManualKeys // the SA we send with
	In           ManualKeys // the SA the peer sends with
}

// ManualKeys is one direction of a ManualSA.
type ManualKeys struct {
	SPI uint32
	// Enc is the cipher for ESP (zero for AH). EncKey is its keying
	// material as `ip xfrm` takes it: for AES-GCM and ChaCha20-Poly1305
	// the cipher key followed by the 4-byte salt.
	Enc    sa.Encr
	EncKey []byte
	// Integ is the integrity algorithm for AH and non-AEAD ESP
	// (IntegNone with AEAD); IntegKey its key of Integ.KeySize() bytes.
	Integ    sa.IntegAlg
	IntegKey []byte
}

// Connection returns the connection called name.
func (c *Config) Connection(name string) (*Connection, bool) {
	for i := range c.Connections {
		if c.Connections[i].Name == name {
			return &c.Connections[i], true
		}
	}
	return nil, false
}

// Child returns the child called name.
func (c *Connection) Child(name string) (*Child, bool) {
	for i := range c.Children {
		if c.Children[i].Name == name {
			return &c.Children[i], true
		}
	}
	return nil, false
}

// PSK finds the pre-shared key between local and remote, preferring as
// strongSwan does a secret whose ids list both, then one that lists
// either, then one with no ids. A configured %any identity matches any id
// in a list. Among equals the first in the file wins.
func (c *Config) PSK(local, remote Identity) ([]byte, bool) {
	best, bestScore := -1, -1
	for i, s := range c.Secrets {
		score := 0
		if len(s.IDs) > 0 {
			l, r := listed(s.IDs, local), listed(s.IDs, remote)
			switch {
			case l && r:
				score = 3
			case l || r:
				score = 2
			default:
				continue
			}
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil, false
	}
	return c.Secrets[best].Key, true
}

func listed(ids []Identity, id Identity) bool {
	for _, x := range ids {
		if x.Matches(id) || id.Kind == IDAny {
			return true
		}
	}
	return false
}
