package esp

// The scapy oracle for ESP: isle opens every packet scapy made
// (testdata/scapy/esp_vectors.json, see gen_vectors.py there), reproduces
// them byte for byte when given scapy's IV, and scapy
// (testdata/scapy/open.py) opens every packet isle seals.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

type scapyESPVector struct {
	Name       string `json:"name"`
	Enc        string `json:"enc"`
	EncID      uint16 `json:"enc_id"`
	EncKeyBits int    `json:"enc_key_bits"`
	EncKey     string `json:"enc_key"`
	Integ      string `json:"integ"`
	IntegID    uint16 `json:"integ_id"`
	IntegKey   string `json:"integ_key"`
	SPI        uint32 `json:"spi"`
	ESN        bool   `json:"esn"`
	Seq        uint64 `json:"seq"`
	OuterSrc   string `json:"outer_src"`
	OuterDst   string `json:"outer_dst"`
	IV         string `json:"iv"`
	Inner      string `json:"inner"`
	ESP        string `json:"esp"`
	ICVBy      string `json:"icv_by"`

	encKey, integKey, iv, in, esp []byte
}

func loadScapyESPVectors(t *testing.T) []scapyESPVector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "scapy", "esp_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []scapyESPVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := range doc.Vectors {
		v := &doc.Vectors[i]
		v.encKey, v.integKey, v.iv, v.in, v.esp = dec(v.EncKey), dec(v.IntegKey), dec(v.IV), dec(v.Inner), dec(v.ESP)
		// The vector's names must be sa's names for the same IANA IDs.
		if sa.EncAlg(v.EncID).String() != v.Enc || sa.IntegAlg(v.IntegID).String() != v.Integ {
			t.Fatalf("%s: IDs %d/%d are %v/%v in sa", v.Name, v.EncID, v.IntegID, sa.EncAlg(v.EncID), sa.IntegAlg(v.IntegID))
		}
	}
	return doc.Vectors
}

type oracleSAParams struct {
	enc           sa.EncAlg
	encBits       int
	encKey        []byte
	integ         sa.IntegAlg
	integKey      []byte
	spi           uint32
	esn, inbound  bool
	local, remote string
}

func newOracleSA(t *testing.T, p oracleSAParams) *sa.SA {
	t.Helper()
	window := uint32(0)
	if p.inbound {
		window = 64
	}
	s, err := sa.New(sa.Config{
		SPI: p.spi, Protocol: sa.ProtoESP, Mode: sa.ModeTunnel, Inbound: p.inbound,
		Enc: p.enc, EncKeyBits: p.encBits, EncKey: p.encKey,
		Integ: p.integ, IntegKey: p.integKey,
		ESN: p.esn, ReplayWindow: window,
		Local:  netip.AddrPortFrom(netip.MustParseAddr(p.local), 0),
		Remote: netip.AddrPortFrom(netip.MustParseAddr(p.remote), 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func (v *scapyESPVector) params(inbound bool) oracleSAParams {
	p := oracleSAParams{enc: sa.EncAlg(v.EncID), encBits: v.EncKeyBits, encKey: v.encKey,
		integ: sa.IntegAlg(v.IntegID), integKey: v.integKey, spi: v.SPI, esn: v.ESN,
		inbound: inbound, local: v.OuterSrc, remote: v.OuterDst}
	if inbound {
		p.local, p.remote = v.OuterDst, v.OuterSrc
	}
	return p
}

// TestOpenScapyESPVectors: isle opens every ESP packet scapy made and
// gets scapy's inner packet back; the same packet again is a replay.
func TestOpenScapyESPVectors(t *testing.T) {
	for _, v := range loadScapyESPVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			s := newOracleSA(t, v.params(true))
			// Move the window just below the vector's number, as on a
			// live SA, so ESN inference picks the right high half.
			if v.Seq > 1 {
				if err := s.CommitReplay(v.Seq - 1); err != nil {
					t.Fatal(err)
				}
			}
			inner, nh, err := Open(s, bytes.Clone(v.esp))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(inner, v.in) {
				t.Fatalf("inner\n got %x\nwant %x", inner, v.in)
			}
			if want := map[byte]uint8{4: 4, 6: 41}[v.in[0]>>4]; nh != want {
				t.Errorf("next header %d, want %d", nh, want)
			}
			if _, _, err := Open(s, bytes.Clone(v.esp)); err != sa.ErrReplayed {
				t.Errorf("second Open: %v, want %v", err, sa.ErrReplayed)
			}
		})
	}
}

// TestSealMatchesScapyESP: given scapy's IV, isle's seal produces
// scapy's packet byte for byte (same padding, AAD, ICV input).
func TestSealMatchesScapyESP(t *testing.T) {
	for _, v := range loadScapyESPVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			s := newOracleSA(t, v.params(false))
			head, tail := Overhead(s)
			buf := make([]byte, head+len(v.in)+tail)
			copy(buf[head:], v.in)
			nh := map[byte]uint8{4: NextHeaderIPv4, 6: NextHeaderIPv6}[v.in[0]>>4]
			var iv []byte
			if len(v.iv) > 0 {
				iv = v.iv
			}
			got, err := seal(s, v.Seq, nh, iv, buf, head, len(v.in))
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			if !bytes.Equal(got, v.esp) {
				t.Fatalf("sealed\n got %x\nwant %x", got, v.esp)
			}
		})
	}
}

type espOracleRequest struct {
	Name     string `json:"name"`
	Proto    string `json:"proto"`
	Enc      string `json:"enc"`
	EncKey   string `json:"enc_key"`
	Integ    string `json:"integ"`
	IntegKey string `json:"integ_key"`
	SPI      uint32 `json:"spi"`
	ESN      bool   `json:"esn"`
	SeqHi    uint32 `json:"seq_hi"`
	ESP      string `json:"esp"`
}

type espOracleResult struct {
	Name  string `json:"name"`
	Inner string `json:"inner"`
	Error string `json:"error"`
}

func runESPOracle(t *testing.T, reqs []espOracleRequest) map[string]espOracleResult {
	t.Helper()
	testenv.RequirePythonModule(t, "scapy")
	in, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Python, filepath.Join("..", "testdata", "scapy", "open.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// Exit status 1 means some packet failed; every result is checked.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("open.py: %v\n%s", err, stderr.String())
	}
	var res []espOracleResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("open.py output: %v\n%s\n%s", err, out, stderr.String())
	}
	m := make(map[string]espOracleResult, len(res))
	for _, r := range res {
		m[r.Name] = r
	}
	if len(m) != len(reqs) {
		t.Fatalf("open.py answered %d of %d packets", len(m), len(reqs))
	}
	return m
}

// oracleInnerPacket is an IPv4 or IPv6 packet of n bytes for sealing.
func oracleInnerPacket(version, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 3)
	}
	if version == 4 {
		p[0], p[1], p[2], p[3] = 0x45, 0, byte(n>>8), byte(n)
		p[9] = 17
	} else {
		p[0], p[1] = 0x60, 0
		p[4], p[5], p[6] = byte((n-40)>>8), byte(n-40), 17
	}
	return p
}

// TestScapyOpensESPSealed: scapy opens every packet isle's Seal makes,
// with isle's own IVs, for every suite, ESN or not, IPv4 and IPv6 inner,
// and rejects tampered ones (and, with ESN, a wrong high half).
func TestScapyOpensESPSealed(t *testing.T) {
	suites := []struct {
		enc   sa.EncAlg
		bits  int
		integ sa.IntegAlg
	}{
		{sa.EncAESGCM16, 128, sa.IntegNone},
		{sa.EncAESGCM16, 256, sa.IntegNone},
		{sa.EncChaCha20Poly1305, 256, sa.IntegNone},
		{sa.EncAESCBC, 128, sa.IntegHMACSHA256128},
		{sa.EncAESCBC, 256, sa.IntegHMACSHA384192},
		{sa.EncAESCBC, 256, sa.IntegHMACSHA512256},
		{sa.EncAESCBC, 128, sa.IntegHMACSHA1_96},
		{sa.EncNull, 0, sa.IntegHMACSHA256128},
	}
	seqs := []uint64{1, 0xffffffff, 1<<32 | 3, 0xdeadbeef<<32 | 0xfffffff0}
	var reqs []espOracleRequest
	want := map[string][]byte{}
	i := 0
	for _, su := range suites {
		for _, esn := range []bool{false, true} {
			for _, innerV := range []int{4, 6} {
				encKey := make([]byte, su.bits/8+su.enc.SaltSize())
				for j := range encKey {
					encKey[j] = byte(j + i)
				}
				integKey := make([]byte, su.integ.KeySize())
				for j := range integKey {
					integKey[j] = byte(j*5 + i)
				}
				s := newOracleSA(t, oracleSAParams{enc: su.enc, encBits: su.bits, encKey: encKey,
					integ: su.integ, integKey: integKey, spi: 0x1000 + uint32(i), esn: esn,
					local: "192.0.2.1", remote: "198.51.100.2"})
				seq := seqs[i%len(seqs)]
				if !esn {
					seq &= 0xffffffff
				}
				in := oracleInnerPacket(innerV, 40+i*29%300)
				head, tail := Overhead(s)
				buf := make([]byte, head+len(in)+tail)
				copy(buf[head:], in)
				pkt, err := Seal(s, seq, buf, head, len(in))
				if err != nil {
					t.Fatalf("Seal: %v", err)
				}
				name := fmt.Sprintf("%v-%d/%v/v%d/esn=%v/seq=%#x", su.enc, su.bits, su.integ, innerV, esn, seq)
				req := espOracleRequest{Name: name, Proto: "ESP", Enc: su.enc.String(),
					EncKey: hex.EncodeToString(encKey), Integ: su.integ.String(),
					IntegKey: hex.EncodeToString(integKey), SPI: s.SPI(), ESN: esn,
					SeqHi: uint32(seq >> 32), ESP: hex.EncodeToString(pkt)}
				reqs = append(reqs, req)
				want[name] = in

				bad := bytes.Clone(pkt)
				bad[len(bad)-1] ^= 1 // last ICV byte
				req.Name, req.ESP = name+"/tampered", hex.EncodeToString(bad)
				reqs = append(reqs, req)
				if esn {
					req.Name, req.ESP, req.SeqHi = name+"/wrong-seq-hi", hex.EncodeToString(pkt), req.SeqHi^1
					reqs = append(reqs, req)
				}
				i++
			}
		}
	}
	res := runESPOracle(t, reqs)
	for _, r := range reqs {
		got := res[r.Name]
		in, good := want[r.Name]
		switch {
		case good && got.Error != "":
			t.Errorf("%s: scapy: %s", r.Name, got.Error)
		case good && got.Inner != hex.EncodeToString(in):
			t.Errorf("%s: scapy's inner packet\n got %s\nwant %x", r.Name, got.Inner, in)
		case !good && got.Error == "":
			t.Errorf("%s: scapy accepted it", r.Name)
		}
	}
}

// TestScapyESPESNHighHalfMatters: a receiver that infers another high
// half of the sequence number than scapy used must reject the packet,
// for AEAD (high half in the AAD) and HMAC (high half after the payload)
// alike.
func TestScapyESPESNHighHalfMatters(t *testing.T) {
	n := 0
	for _, v := range loadScapyESPVectors(t) {
		if !v.ESN || uint32(v.Seq) == 0xffffffff {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			s := newOracleSA(t, v.params(true))
			if err := s.CommitReplay(v.Seq + 1<<32 + 1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Open(s, bytes.Clone(v.esp)); err != sa.ErrAuthFailed {
				t.Fatalf("Open with the wrong high half: %v, want %v", err, sa.ErrAuthFailed)
			}
		})
	}
	if n == 0 {
		t.Fatal("no ESN vectors")
	}
}
