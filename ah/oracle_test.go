package ah

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

// oracleRequest is one packet for testdata/scapy/open.py.
type oracleRequest struct {
	Name     string `json:"name"`
	Proto    string `json:"proto"`
	Integ    string `json:"integ"`
	IntegKey string `json:"integ_key"`
	SPI      uint32 `json:"spi"`
	ESN      bool   `json:"esn"`
	SeqHi    uint32 `json:"seq_hi"`
	Packet   string `json:"packet"`
}

type oracleResult struct {
	Name  string `json:"name"`
	Inner string `json:"inner"`
	Error string `json:"error"`
}

// runOracle has scapy open the packets; the exit status is ignored here
// because the caller checks every result (1 means some failed).
func runOracle(t *testing.T, reqs []oracleRequest) map[string]oracleResult {
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
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("open.py: %v\n%s", err, stderr.String())
	}
	var res []oracleResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("open.py output: %v\n%s\n%s", err, out, stderr.String())
	}
	m := make(map[string]oracleResult, len(res))
	for _, r := range res {
		m[r.Name] = r
	}
	if len(m) != len(reqs) {
		t.Fatalf("open.py answered %d of %d packets", len(m), len(reqs))
	}
	return m
}

// TestScapyOpensSealed: scapy verifies every packet isle seals, across
// algorithms, outer and inner families, ESN and sequence numbers, and
// recovers the inner packet; and rejects a tampered copy of each.
func TestScapyOpensSealed(t *testing.T) {
	type sealed struct{ inner []byte }
	var reqs []oracleRequest
	want := map[string]sealed{}
	seqs := []uint64{1, 0xffffffff, 1<<32 | 7, 0xdeadbeef<<32 | 0xfffffff0}
	i := 0
	for _, alg := range allIntegs {
		for _, outer := range []int{4, 6} {
			for _, innerV := range []int{4, 6} {
				for _, esn := range []bool{false, true} {
					p := newPair(t, alg, outer, esn, 0)
					seq := seqs[i%len(seqs)]
					if !esn {
						seq &= 0xffffffff
					}
					in := innerPacket(innerV, 40+i*37%700)
					pkt := sealCopy(t, p.out, seq, in)
					name := fmt.Sprintf("%v/v%din%d/esn=%v/seq=%#x", alg, innerV, outer, esn, seq)
					req := oracleRequest{Name: name, Proto: "AH", Integ: alg.String(),
						IntegKey: hex.EncodeToString(testKey(alg)), SPI: p.out.SPI(), ESN: esn,
						SeqHi: uint32(seq >> 32), Packet: hex.EncodeToString(pkt)}
					reqs = append(reqs, req)
					want[name] = sealed{in}

					bad := bytes.Clone(pkt)
					bad[len(bad)-1] ^= 0x80 // last inner byte
					req.Name, req.Packet = name+"/tampered", hex.EncodeToString(bad)
					reqs = append(reqs, req)
					if esn {
						// The high half is in the ICV although not on the wire.
						req.Name, req.Packet, req.SeqHi = name+"/wrong-seq-hi", hex.EncodeToString(pkt), req.SeqHi+1
						reqs = append(reqs, req)
					}
					i++
				}
			}
		}
	}
	res := runOracle(t, reqs)
	for _, r := range reqs {
		got := res[r.Name]
		w, good := want[r.Name]
		switch {
		case good && got.Error != "":
			t.Errorf("%s: scapy: %s", r.Name, got.Error)
		case good && got.Inner != hex.EncodeToString(w.inner):
			t.Errorf("%s: scapy's inner packet\n got %s\nwant %x", r.Name, got.Inner, w.inner)
		case !good && got.Error == "":
			t.Errorf("%s: scapy accepted it", r.Name)
		}
	}
}

// TestScapyRejectsOtherKey guards the oracle itself: a packet sealed with
// one key must not open under another, or the test above proves nothing.
func TestScapyRejectsOtherKey(t *testing.T) {
	p := newPair(t, sa.IntegHMACSHA256128, 4, false, 0)
	pkt := sealCopy(t, p.out, 1, innerPacket(4, 80))
	key := testKey(sa.IntegHMACSHA256128)
	key[0] ^= 1
	res := runOracle(t, []oracleRequest{{Name: "x", Proto: "AH", Integ: "HMAC_SHA2_256_128",
		IntegKey: hex.EncodeToString(key), SPI: p.out.SPI(), Packet: hex.EncodeToString(pkt)}})
	if res["x"].Error == "" {
		t.Fatal("scapy opened a packet under the wrong key")
	}
}

// TestScapyVectorsCurrent regenerates the scapy vectors (ESP and AH) into
// a temporary directory and compares them with the checked-in files: the
// known answers the tests above use are exactly what scapy makes, not
// something edited by hand or made by an older scapy.
func TestScapyVectorsCurrent(t *testing.T) {
	testenv.RequirePythonModule(t, "scapy")
	dir := t.TempDir()
	cmd := exec.Command(testenv.Python, filepath.Join("..", "testdata", "scapy", "gen_vectors.py"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen_vectors.py: %v\n%s", err, out)
	}
	for _, f := range []string{"ah_vectors.json", "esp_vectors.json"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "testdata", "scapy", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/scapy/%s differs from what gen_vectors.py makes now; regenerate it and review the diff", f)
		}
	}
}
