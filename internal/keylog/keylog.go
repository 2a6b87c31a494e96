// Package keylog writes the keys of live SAs where Wireshark reads them,
// as strongSwan's save-keys plugin does: the ESP SA table "esp_sa" and the
// IKEv2 decryption table "ikev2_decryption_table", in Wireshark's UAT
// (user access table) format. Point Wireshark's personal configuration
// directory at the key directory (or copy the two files into it) and it
// decrypts captured IKE and ESP traffic.
//
// Unlike save-keys, which appends forever, each file is rewritten whole,
// atomically (a temporary file renamed over it), whenever an SA comes or
// goes, so that it always holds exactly the SAs that are installed. Both
// files are mode 0600: they hold every secret of the gateway's tunnels,
// which is why this is for debugging only.
package keylog

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/isle-ipsec/isle/sa"
)

// Names of the files in the key directory, fixed by Wireshark.
const (
	ESPFile  = "esp_sa"
	IKEFile  = "ikev2_decryption_table"
	fileMode = 0o600
)

// ErrUnsupported reports an algorithm Wireshark has no name for; the SA
// is not written (strongSwan's plugin skips such SAs too).
var ErrUnsupported = errors.New("keylog: algorithm Wireshark cannot decrypt")

// ESP is one direction of an ESP SA: packets from Src to Dst with SPI.
type ESP struct {
	Src, Dst netip.Addr
	SPI      uint32
	Enc      sa.EncAlg
	EncKey   []byte // as sa.Config takes it: with the 4-byte salt for AES-GCM and ChaCha20-Poly1305
	Integ    sa.IntegAlg
	IntegKey []byte
}

// ESPOf describes the SA that c configures; ok is false for AH, whose
// packets Wireshark reads without keys.
func ESPOf(c sa.Config) (e ESP, ok bool) {
	if c.Protocol != sa.ProtoESP {
		return ESP{}, false
	}
	src, dst := c.Local.Addr(), c.Remote.Addr()
	if c.Inbound {
		src, dst = dst, src
	}
	return ESP{Src: src, Dst: dst, SPI: c.SPI, Enc: c.Enc, EncKey: c.EncKey, Integ: c.Integ, IntegKey: c.IntegKey}, true
}

// IKE is one IKE_SA's protection keys (RFC 7296 §2.14).
type IKE struct {
	SPIi, SPIr uint64
	Enc        sa.EncAlg
	EncKeyBits int    // cipher key size without salt
	SKei, SKer []byte // with the 4-byte salt for AES-GCM
	Integ      sa.IntegAlg
	SKai, SKar []byte // empty with AEAD
}

type espKey struct {
	dst netip.Addr
	spi uint32
}

// Writer keeps the two tables of a key directory. It is safe for
// concurrent use.
type Writer struct {
	dir string

	mu       sync.Mutex
	esp      map[espKey]string // the line of each SA
	espOrder []espKey          // first come first written, as save-keys appends
	ike      map[[2]uint64]string
	ikeOrder [][2]uint64
}

// Open starts empty tables in dir, which must exist: whatever a previous
// run left there is replaced.
func Open(dir string) (*Writer, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keylog: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("keylog: %s is not a directory", dir)
	}
	w := &Writer{dir: dir, esp: map[espKey]string{}, ike: map[[2]uint64]string{}}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.writeESP(); err != nil {
		return nil, err
	}
	if err := w.writeIKE(); err != nil {
		return nil, err
	}
	return w, nil
}

// Dir is the key directory.
func (w *Writer) Dir() string { return w.dir }

// AddESP writes e's keys; an SA with the same destination and SPI is
// replaced.
func (w *Writer) AddESP(e ESP) error {
	enc, integ, err := espNames(e)
	if err != nil {
		return err
	}
	family := "IPv4"
	if !e.Src.Unmap().Is4() {
		family = "IPv6"
	}
	line := fmt.Sprintf(`"%s","%s","%s","0x%08x","%s","0x%x","%s","%s"`,
		family, e.Src.Unmap(), e.Dst.Unmap(), e.SPI, enc, e.EncKey, integ, hexKey(e.IntegKey))
	k := espKey{e.Dst.Unmap(), e.SPI}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.esp[k]; !ok {
		w.espOrder = append(w.espOrder, k)
	}
	w.esp[k] = line
	return w.writeESP()
}

// AddSA writes the keys of the SA that c configures (as the gateway
// passes it to sa.New, with the outer addresses set). AH SAs are skipped:
// Wireshark needs no keys to read AH.
func (w *Writer) AddSA(c sa.Config) error {
	e, ok := ESPOf(c)
	if !ok {
		return nil
	}
	return w.AddESP(e)
}

// RemoveSA forgets the SA that c configures.
func (w *Writer) RemoveSA(c sa.Config) error {
	e, ok := ESPOf(c)
	if !ok {
		return nil
	}
	return w.RemoveESP(e.Dst, e.SPI)
}

// RemoveESP forgets the SA with this destination and SPI.
func (w *Writer) RemoveESP(dst netip.Addr, spi uint32) error {
	k := espKey{dst.Unmap(), spi}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.esp[k]; !ok {
		return nil
	}
	delete(w.esp, k)
	w.espOrder = deleteKey(w.espOrder, k)
	return w.writeESP()
}

// AddIKE writes the keys of an IKE_SA; one with the same SPIs is replaced.
func (w *Writer) AddIKE(k IKE) error {
	enc, integ, err := ikeNames(k)
	if err != nil {
		return err
	}
	// SPIs and keys are hex byte fields, unquoted; names are strings.
	line := fmt.Sprintf(`%016x,%016x,%x,%x,"%s",%x,%x,"%s"`,
		k.SPIi, k.SPIr, k.SKei, k.SKer, enc, k.SKai, k.SKar, integ)
	key := [2]uint64{k.SPIi, k.SPIr}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ike[key]; !ok {
		w.ikeOrder = append(w.ikeOrder, key)
	}
	w.ike[key] = line
	return w.writeIKE()
}

// RemoveIKE forgets the IKE_SA with these SPIs.
func (w *Writer) RemoveIKE(spii, spir uint64) error {
	key := [2]uint64{spii, spir}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ike[key]; !ok {
		return nil
	}
	delete(w.ike, key)
	w.ikeOrder = deleteKey(w.ikeOrder, key)
	return w.writeIKE()
}

func deleteKey[K comparable](order []K, k K) []K {
	for i, o := range order {
		if o == k {
			return append(order[:i], order[i+1:]...)
		}
	}
	return order
}

func (w *Writer) writeESP() error {
	lines := make([]string, len(w.espOrder))
	for i, k := range w.espOrder {
		lines[i] = w.esp[k]
	}
	return w.replace(ESPFile, lines)
}

func (w *Writer) writeIKE() error {
	lines := make([]string, len(w.ikeOrder))
	for i, k := range w.ikeOrder {
		lines[i] = w.ike[k]
	}
	return w.replace(IKEFile, lines)
}

// header is the comment Wireshark itself puts at the top of UAT files.
const header = "# This file is automatically generated, DO NOT MODIFY.\n"

// replace writes lines to name through a temporary file in the same
// directory, so that a reader sees the old table or the new, never half.
func (w *Writer) replace(name string, lines []string) error {
	var b strings.Builder
	b.WriteString(header)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	f, err := os.CreateTemp(w.dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("keylog: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(fileMode) // CreateTemp makes 0600 already; say it where it matters
	if err == nil {
		_, err = f.WriteString(b.String())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keylog: writing %s: %w", name, err)
	}
	return nil
}

func hexKey(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	return fmt.Sprintf("0x%x", k)
}

// espNames gives Wireshark's names (packet-ipsec.c's ESP UAT) for the
// SA's algorithms.
func espNames(e ESP) (enc, integ string, err error) {
	switch e.Enc {
	case sa.EncAESGCM16:
		// The name that carries the ICV length; the auth column is then NULL.
		return "AES-GCM with 16 octet ICV [RFC4106]", "NULL", nil
	case sa.EncChaCha20Poly1305:
		// Known to Wireshark 4.2 and later; older ones skip the line.
		return "ChaCha20 with Poly1305 [RFC7634]", "NULL", nil
	case sa.EncAESCBC:
		enc = "AES-CBC [RFC3602]"
	case sa.EncNull:
		enc = "NULL"
	default:
		return "", "", fmt.Errorf("%w: ESP %v", ErrUnsupported, e.Enc)
	}
	switch e.Integ {
	case sa.IntegHMACSHA1_96:
		integ = "HMAC-SHA-1-96 [RFC2404]"
	case sa.IntegHMACSHA256128:
		integ = "HMAC-SHA-256-128 [RFC4868]"
	case sa.IntegHMACSHA384192:
		integ = "HMAC-SHA-384-192 [RFC4868]"
	case sa.IntegHMACSHA512256:
		integ = "HMAC-SHA-512-256 [RFC4868]"
	default:
		return "", "", fmt.Errorf("%w: ESP %v with %v", ErrUnsupported, e.Enc, e.Integ)
	}
	return enc, integ, nil
}

// ikeNames gives Wireshark's names (packet-isakmp.c's IKEv2 UAT).
func ikeNames(k IKE) (enc, integ string, err error) {
	bits := k.EncKeyBits
	if bits != 128 && bits != 192 && bits != 256 {
		return "", "", fmt.Errorf("%w: IKE %v with a %d-bit key", ErrUnsupported, k.Enc, bits)
	}
	switch k.Enc {
	case sa.EncAESGCM16:
		return fmt.Sprintf("AES-GCM-%d with 16 octet ICV [RFC5282]", bits), "NONE [RFC4306]", nil
	case sa.EncAESCBC:
		enc = fmt.Sprintf("AES-CBC-%d [RFC3602]", bits)
	default:
		// Wireshark has no IKEv2 decryption for ChaCha20-Poly1305.
		return "", "", fmt.Errorf("%w: IKE %v", ErrUnsupported, k.Enc)
	}
	switch k.Integ {
	case sa.IntegHMACSHA1_96:
		integ = "HMAC_SHA1_96 [RFC2404]"
	case sa.IntegHMACSHA256128:
		integ = "HMAC_SHA2_256_128 [RFC4868]"
	case sa.IntegHMACSHA384192:
		integ = "HMAC_SHA2_384_192 [RFC4868]"
	case sa.IntegHMACSHA512256:
		integ = "HMAC_SHA2_512_256 [RFC4868]"
	default:
		return "", "", fmt.Errorf("%w: IKE %v with %v", ErrUnsupported, k.Enc, k.Integ)
	}
	return enc, integ, nil
}
