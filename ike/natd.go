package ike

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// natdHash is the NAT_DETECTION_*_IP notification data (RFC 7296 §2.23):
// SHA-1(SPIi | SPIr | IP | port). In the IKE_SA_INIT request SPIr is zero.
func natdHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [18]byte
	binary.BigEndian.PutUint64(b[0:8], spii)
	binary.BigEndian.PutUint64(b[8:16], spir)
	h.Write(b[:16])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[16:18], ap.Port())
	h.Write(b[16:18])
	return h.Sum(nil)
}
