package dh

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os/exec"
	"strings"
	"testing"

	"github.com/isle-ipsec/isle/internal/testenv"
	"github.com/isle-ipsec/isle/sa"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRFC5903 runs the test vectors of RFC 5903 §8.1 (P-256) and §8.2
// (P-384) in both directions, with the KE encoding x | y.
func TestRFC5903(t *testing.T) {
	tests := []struct {
		g                           sa.DHGroup
		i, gix, giy, r, grx, gry, z string
	}{
		{sa.DHECP256,
			"c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
			"dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180",
			"5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
			"c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53",
			"d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63",
			"56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
			"d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de"},
		{sa.DHECP384,
			"099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655e35b538041e649ee3faef896783ab194",
			"667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa",
			"9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c",
			"41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942e0308312916b8ed2960e4bd55a7448fc",
			"e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571",
			"dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c",
			"11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746"},
	}
	for _, tt := range tests {
		t.Run(tt.g.String(), func(t *testing.T) {
			ki, err := NewPrivateKey(tt.g, unhex(t, tt.i))
			if err != nil {
				t.Fatal(err)
			}
			kr, err := NewPrivateKey(tt.g, unhex(t, tt.r))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(ki.PublicKey()), tt.gix+tt.giy; got != want {
				t.Errorf("g^i = %s, want %s", got, want)
			}
			if got, want := hex.EncodeToString(kr.PublicKey()), tt.grx+tt.gry; got != want {
				t.Errorf("g^r = %s, want %s", got, want)
			}
			for _, side := range []struct {
				k    *PrivateKey
				peer string
			}{{ki, tt.grx + tt.gry}, {kr, tt.gix + tt.giy}} {
				z, err := side.k.SharedSecret(unhex(t, side.peer))
				if err != nil || hex.EncodeToString(z) != tt.z {
					t.Errorf("g^ir = %x, %v; want %s", z, err, tt.z)
				}
			}
			// A point off the curve and a truncated value are refused.
			bad := unhex(t, tt.grx+tt.gry)
			bad[len(bad)-1] ^= 1
			if _, err := ki.SharedSecret(bad); !errors.Is(err, ErrInvalidPublic) {
				t.Errorf("off-curve point: err %v", err)
			}
			if _, err := ki.SharedSecret(bad[1:]); !errors.Is(err, ErrInvalidPublic) {
				t.Errorf("short value: err %v", err)
			}
			if _, err := ki.SharedSecret(make([]byte, PublicSize(tt.g))); !errors.Is(err, ErrInvalidPublic) {
				t.Errorf("all-zero point: err %v", err)
			}
		})
	}
}

// TestRFC7748 runs X25519 from RFC 7748: the two scalar multiplications
// of §5.2 and the Diffie-Hellman exchange of §6.1; RFC 8031 uses X25519
// unchanged for group 31.
func TestRFC7748(t *testing.T) {
	for _, v := range []struct{ scalar, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		k, err := NewPrivateKey(sa.DHCurve25519, unhex(t, v.scalar))
		if err != nil {
			t.Fatal(err)
		}
		z, err := k.SharedSecret(unhex(t, v.u))
		if err != nil || hex.EncodeToString(z) != v.out {
			t.Errorf("X25519(%s, %s) = %x, %v; want %s", v.scalar[:8], v.u[:8], z, err, v.out)
		}
	}
	alice, err := NewPrivateKey(sa.DHCurve25519, unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewPrivateKey(sa.DHCurve25519, unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(alice.PublicKey()); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Errorf("Alice's public key %s", got)
	}
	if got := hex.EncodeToString(bob.PublicKey()); got != "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f" {
		t.Errorf("Bob's public key %s", got)
	}
	const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
	for _, pair := range [][2]*PrivateKey{{alice, bob}, {bob, alice}} {
		z, err := pair[0].SharedSecret(pair[1].PublicKey())
		if err != nil || hex.EncodeToString(z) != shared {
			t.Errorf("shared secret %x, %v", z, err)
		}
	}
	// RFC 8031 §2.2: an all-zero result (from a low-order point) is refused.
	for _, low := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
	} {
		if _, err := alice.SharedSecret(unhex(t, low)); !errors.Is(err, ErrInvalidPublic) {
			t.Errorf("low-order point %s: err %v", low[:4], err)
		}
	}
}

// TestMODPPrimes checks the built-in RFC 3526 primes: their defining
// shape (top and bottom 64 bits set), that p and (p-1)/2 are prime, and
// that they equal the copy in Debian's scapy (scapy/layers/tls/crypto/groups.py).
func TestMODPPrimes(t *testing.T) {
	ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
	for _, g := range []sa.DHGroup{sa.DHMODP2048, sa.DHMODP3072, sa.DHMODP4096} {
		m := modpFor(g)
		n := m.p.BitLen()
		if n != 8*PublicSize(g) || m.size != PublicSize(g) {
			t.Errorf("%v: %d bits", g, n)
		}
		if new(big.Int).Rsh(m.p, uint(n-64)).Cmp(ones) != 0 || new(big.Int).And(m.p, ones).Cmp(ones) != 0 {
			t.Errorf("%v: top or bottom 64 bits not all ones", g)
		}
		if !m.p.ProbablyPrime(0) || !m.q.ProbablyPrime(0) {
			t.Errorf("%v: not a safe prime", g)
		}
	}
	testenv.RequirePythonModule(t, "scapy")
	out, err := exec.Command(testenv.Python, "-c", `
from scapy.layers.tls.crypto.groups import modp2048, modp3072, modp4096
for g in (modp2048, modp3072, modp4096):
    print("%x" % g.m)
`).Output()
	if err != nil {
		t.Fatalf("scapy: %v", err)
	}
	lines := strings.Fields(string(out))
	for i, g := range []sa.DHGroup{sa.DHMODP2048, sa.DHMODP3072, sa.DHMODP4096} {
		if i >= len(lines) || lines[i] != fmt.Sprintf("%x", modpFor(g).p) {
			t.Errorf("%v: prime differs from scapy's", g)
		}
	}
}

// TestMODPExchange checks both sides agree, that the result matches an
// independent computation (Python's pow) and is padded to the prime's
// length, and that invalid public values are refused.
func TestMODPExchange(t *testing.T) {
	for _, g := range []sa.DHGroup{sa.DHMODP2048, sa.DHMODP3072, sa.DHMODP4096} {
		t.Run(g.String(), func(t *testing.T) {
			a, err := GenerateKey(g, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := GenerateKey(g, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.PublicKey()) != PublicSize(g) {
				t.Fatalf("public value of %d bytes", len(a.PublicKey()))
			}
			za, err := a.SharedSecret(b.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			zb, err := b.SharedSecret(a.PublicKey())
			if err != nil || !bytes.Equal(za, zb) || len(za) != PublicSize(g) {
				t.Fatalf("sides disagree: %v", err)
			}
			m := modpFor(g)
			for name, y := range map[string]*big.Int{
				"0": big.NewInt(0), "1": big.NewInt(1), "p-1": m.pMinus1, "p": m.p,
				"p-2 (a non-residue)": new(big.Int).Sub(m.p, big.NewInt(2)),
			} {
				if _, err := a.SharedSecret(y.FillBytes(make([]byte, m.size+1))[1:]); !errors.Is(err, ErrInvalidPublic) {
					t.Errorf("peer value %s: err %v", name, err)
				}
			}
			if _, err := a.SharedSecret(b.PublicKey()[1:]); !errors.Is(err, ErrInvalidPublic) {
				t.Errorf("unpadded value accepted")
			}
		})
	}
	// Known exponents, checked against Python's own big integers.
	const xi, xr = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210aa"
	a, err := NewPrivateKey(sa.DHMODP2048, unhex(t, xi))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPrivateKey(sa.DHMODP2048, unhex(t, xr))
	if err != nil {
		t.Fatal(err)
	}
	z, err := a.SharedSecret(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(testenv.Python); err != nil {
		testenv.Missing(t, "python3")
	}
	out, err := exec.Command(testenv.Python, "-c", fmt.Sprintf(
		"p=int('%x',16); print(pow(pow(2,0x%s,p),0x%s,p).to_bytes(256,'big').hex())", modpFor(sa.DHMODP2048).p, xr, xi)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); hex.EncodeToString(z) != want {
		t.Errorf("g^ir = %x, Python %s", z, want)
	}
	if _, err := NewPrivateKey(sa.DHMODP2048, []byte{1}); err == nil {
		t.Error("exponent 1 accepted")
	}
}

func TestUnsupported(t *testing.T) {
	for _, g := range []sa.DHGroup{sa.DHNone, 2, 21, 32} {
		if Supported(g) {
			t.Errorf("%v supported", g)
		}
		if _, err := GenerateKey(g, rand.Reader); err == nil {
			t.Errorf("%v: GenerateKey succeeded", g)
		}
	}
}

// FuzzSharedSecret: no peer value panics; any accepted one gives a
// secret of the group's size.
func FuzzSharedSecret(f *testing.F) {
	keys := map[sa.DHGroup]*PrivateKey{}
	for _, g := range []sa.DHGroup{sa.DHMODP2048, sa.DHECP256, sa.DHECP384, sa.DHCurve25519} {
		k, err := GenerateKey(g, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		keys[g] = k
		f.Add(uint8(g), k.PublicKey())
	}
	f.Fuzz(func(t *testing.T, g uint8, peer []byte) {
		k, ok := keys[sa.DHGroup(g)]
		if !ok {
			return
		}
		z, err := k.SharedSecret(peer)
		if err == nil && len(z) == 0 {
			t.Fatal("empty shared secret")
		}
	})
}
