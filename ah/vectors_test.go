package ah

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/isle-ipsec/isle/sa"
)

// scapyVector is one packet of testdata/scapy/ah_vectors.json, made by
// testdata/scapy/gen_vectors.py with scapy's SecurityAssociation.
type scapyVector struct {
	Name              string `json:"name"`
	Integ             string `json:"integ"`
	IntegID           uint16 `json:"integ_id"`
	IntegKey          string `json:"integ_key"`
	SPI               uint32 `json:"spi"`
	ESN               bool   `json:"esn"`
	Seq               uint64 `json:"seq"`
	OuterVersion      int    `json:"outer_version"`
	OuterSrc          string `json:"outer_src"`
	OuterDst          string `json:"outer_dst"`
	Inner             string `json:"inner"`
	Packet            string `json:"packet"`
	SealReproducible  bool   `json:"seal_reproducible"`
	ICVBy             string `json:"icv_by"`
	integKey, pkt, in []byte
}

func loadScapyVectors(t testing.TB) []scapyVector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "scapy", "ah_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []scapyVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for i := range doc.Vectors {
		v := &doc.Vectors[i]
		v.integKey = mustHex(t, v.IntegKey)
		v.pkt = mustHex(t, v.Packet)
		v.in = mustHex(t, v.Inner)
		if got := sa.IntegAlg(v.IntegID).String(); got != v.Integ {
			t.Fatalf("%s: integ ID %d is %s in sa, %s in the vector", v.Name, v.IntegID, got, v.Integ)
		}
	}
	return doc.Vectors
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// saParams is what the tests vary in an AH SA.
type saParams struct {
	integ         sa.IntegAlg
	key           []byte
	spi           uint32
	esn           bool
	window        uint32
	local, remote string
	inbound       bool
}

func newSA(t testing.TB, p saParams) *sa.SA {
	t.Helper()
	s, err := sa.New(sa.Config{
		SPI:          p.spi,
		Protocol:     sa.ProtoAH,
		Mode:         sa.ModeTunnel,
		Inbound:      p.inbound,
		Integ:        p.integ,
		IntegKey:     p.key,
		ESN:          p.esn,
		ReplayWindow: p.window,
		Local:        netip.AddrPortFrom(netip.MustParseAddr(p.local), 0),
		Remote:       netip.AddrPortFrom(netip.MustParseAddr(p.remote), 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// receiver builds the inbound SA for a vector, with the replay window
// moved just below the vector's sequence number so that ESN inference
// lands in the right 2^32 subspace, as it would on a live SA.
func (v *scapyVector) receiver(t testing.TB) *sa.SA {
	s := newSA(t, saParams{integ: sa.IntegAlg(v.IntegID), key: v.integKey, spi: v.SPI, esn: v.ESN,
		window: 64, local: v.OuterDst, remote: v.OuterSrc, inbound: true})
	if v.Seq > 1 {
		if err := s.CommitReplay(v.Seq - 1); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestOpenScapyVectors: isle opens every AH packet scapy made, recovers
// scapy's inner packet, and refuses the same packet a second time.
func TestOpenScapyVectors(t *testing.T) {
	for _, v := range loadScapyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			s := v.receiver(t)
			pkt := bytes.Clone(v.pkt)
			inner, nh, err := Open(s, pkt)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(inner, v.in) {
				t.Fatalf("inner\n got %x\nwant %x", inner, v.in)
			}
			if want := map[byte]uint8{4: protoIPv4, 6: protoIPv6}[v.in[0]>>4]; nh != want {
				t.Errorf("next header %d, want %d", nh, want)
			}
			if !bytes.Equal(pkt, v.pkt) {
				t.Error("Open modified the packet")
			}
			if _, _, err := Open(s, pkt); err != sa.ErrReplayed {
				t.Errorf("second Open: %v, want %v", err, sa.ErrReplayed)
			}
		})
	}
}

// TestSealMatchesScapy: AH is deterministic, so sealing the vector's inner
// packet with the same key, SPI and sequence number must give scapy's
// packet byte for byte, outer header included.
func TestSealMatchesScapy(t *testing.T) {
	n := 0
	for _, v := range loadScapyVectors(t) {
		if !v.SealReproducible {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			s := newSA(t, saParams{integ: sa.IntegAlg(v.IntegID), key: v.integKey, spi: v.SPI, esn: v.ESN,
				local: v.OuterSrc, remote: v.OuterDst})
			head := Overhead(s)
			buf := make([]byte, head+len(v.in))
			copy(buf[head:], v.in)
			got, err := Seal(s, v.Seq, buf, head, len(v.in))
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !bytes.Equal(got, v.pkt) {
				t.Fatalf("sealed\n got %x\nwant %x", got, v.pkt)
			}
		})
	}
	if n < 32 {
		t.Fatalf("only %d reproducible vectors", n)
	}
}

// TestScapyESNHighHalfMatters: the high half of an extended sequence
// number is not on the wire but is in scapy's ICV. A receiver whose
// window makes it infer a different high half must reject the packet.
func TestScapyESNHighHalfMatters(t *testing.T) {
	n := 0
	for _, v := range loadScapyVectors(t) {
		lo := uint32(v.Seq)
		if !v.ESN || lo == 0xffffffff {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			s := newSA(t, saParams{integ: sa.IntegAlg(v.IntegID), key: v.integKey, spi: v.SPI, esn: true,
				window: 64, local: v.OuterDst, remote: v.OuterSrc, inbound: true})
			// Top of the window one above the same low half, one 2^32
			// subspace later: the inferred number is v.Seq + 2^32.
			if err := s.CommitReplay(v.Seq + 1<<32 + 1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Open(s, v.pkt); err != sa.ErrAuthFailed {
				t.Fatalf("Open with the wrong high half: %v, want %v", err, sa.ErrAuthFailed)
			}
		})
	}
	if n == 0 {
		t.Fatal("no ESN vectors")
	}
}
