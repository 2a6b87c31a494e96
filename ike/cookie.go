package ike

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// cookieJar makes and checks the stateless cookies of RFC 7296 §2.6: a
// responder under load answers IKE_SA_INIT with
//
//	Cookie = <VersionIDofSecret> | HMAC-SHA-256(secret, Ni | IPi | SPIi)
//
// and keeps nothing until the initiator repeats its request with it, which
// a sender of spoofed addresses never sees. The secret changes after
// cookieReuse cookies; one made with the previous secret still passes, so
// that a rotation does not turn away an initiator in mid-exchange.
type cookieJar struct {
	version uint8
	secret  [2][32]byte // current at version%2, previous at the other
	issued  int
}

// cookieReuse is how many cookies one secret makes, as strongSwan's
// COOKIE_REUSE.
const cookieReuse = 10000

func newCookieJar() *cookieJar {
	j := &cookieJar{}
	rand.Read(j.secret[0][:])
	rand.Read(j.secret[1][:])
	return j
}

func (j *cookieJar) sum(version uint8, ni []byte, ip netip.Addr, spii uint64) []byte {
	mac := hmac.New(sha256.New, j.secret[version%2][:])
	mac.Write(ni)
	mac.Write(ip.Unmap().AsSlice())
	mac.Write(binary.BigEndian.AppendUint64(nil, spii))
	return append([]byte{version}, mac.Sum(nil)...)
}

// make returns the cookie for an initiator's nonce, address and SPI.
func (j *cookieJar) make(ni []byte, ip netip.Addr, spii uint64) []byte {
	if j.issued++; j.issued > cookieReuse {
		j.version++
		rand.Read(j.secret[j.version%2][:])
		j.issued = 1
	}
	return j.sum(j.version, ni, ip, spii)
}

// valid reports whether c is a cookie we made, with the current or the
// previous secret, for these values.
func (j *cookieJar) valid(c, ni []byte, ip netip.Addr, spii uint64) bool {
	if len(c) != 1+sha256.Size || (c[0] != j.version && c[0] != j.version-1) {
		return false
	}
	return hmac.Equal(c, j.sum(c[0], ni, ip, spii))
}
