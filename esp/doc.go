// Package esp is the Encapsulating Security Payload engine (RFC 4303):
// pure transforms on caller-owned buffers, with no I/O, goroutines or
// logging, and no allocation per packet.
//
// # Algorithms
//
// AES-GCM-16 with 128/192/256-bit keys (RFC 4106), ChaCha20-Poly1305
// (RFC 7634), AES-CBC 128/192/256 (RFC 3602) or NULL (RFC 2410) with
// HMAC-SHA1-96 (RFC 2404) or HMAC-SHA2-256-128/384-192/512-256 (RFC
// 4868), with or without extended sequence numbers. Keys, sequence
// numbers, the replay window, lifetimes and counters live in the
// *sa.SA; esp only lays out and transforms packets.
//
// # Packet layout and buffers
//
//	buf:  [ headroom | SPI seq IV | inner packet | pad padlen nh ICV | tailroom ]
//	                  ^off-head    ^off          ^off+n
//
// Overhead(s) gives head (8 + IV size) and the most tail Seal can need
// (block size - 1 padding bytes + 2 + ICV size). The dataplane reads the
// inner packet into buf[off:off+n] with off >= head and
// cap(buf) >= off+n+tail, and Seal writes the ESP header before it and the
// trailer after it, encrypting in place. The returned slice runs from
// the SPI to the end of the ICV; the outer IP (and, with UDP
// encapsulation, UDP) header is the socket's business. Open decrypts in
// place and returns the inner packet as a sub-slice of its input.
//
// # API (all functions are safe for concurrent use on one SA)
//
//	func Overhead(s *sa.SA) (head, tail int) // at most MaxHead, MaxTail
//	func Seal(s *sa.SA, seq uint64, buf []byte, off, n int) ([]byte, error)
//	func SealNextHeader(s *sa.SA, seq uint64, nextHeader uint8, buf []byte, off, n int) ([]byte, error)
//	func Open(s *sa.SA, pkt []byte) (inner []byte, nextHeader uint8, err error)
//	func SPI(pkt []byte) (spi uint32, ok bool)
//	type Packet []byte // SPI(), Seq(), Payload() accessors, HeaderLen
//	func ClassifyUDP(payload []byte) Kind // KindESP, KindIKE, KindKeepalive, KindInvalid
//
// Seal takes the sequence number from the caller, who gets it from
// s.NextSeq() in the order packets will be sent, so that encryption can
// run in parallel afterwards. In tunnel mode Seal derives the Next Header
// (4 or 41) from the inner packet's version nibble; SealNextHeader sets
// it explicitly (transport mode, or 59 for a dummy packet).
//
// Open checks the SPI against s, runs the anti-replay pre-check (with the
// high half of an extended sequence number inferred first, RFC 4303
// Appendix A, because the ICV covers it), verifies the ICV and decrypts,
// commits the sequence number to the window, and then checks the padding
// (1, 2, 3, ... as RFC 4303 §2.4 prescribes) and the Next Header.
// Tunnel-mode packets must carry IPv4 (4) or IPv6 (41) whose version
// nibble matches and whose IP length fits; bytes beyond that length are
// TFC padding (RFC 4303 §2.7) and are cut off. A dummy packet (59) is
// consumed and reported as sa.ErrDummy, to be dropped silently.
//
// # IVs
//
// AES-GCM and ChaCha20-Poly1305 use the 64-bit sequence number as the
// explicit IV: RFC 4106 §3.1 and RFC 7634 §2 only require uniqueness
// under the key, which the sequence number guarantees. AES-CBC needs
// unpredictable IVs (RFC 3602 §2): each is a per-SA counter encrypted
// with a random AES key drawn when the SA is created and never used for
// anything else (NIST SP 800-38A Appendix C), so an observer who sees
// every previous IV still cannot predict the next one.
//
// # Errors and counting
//
// Failures are the unwrapped sentinels of package sa — sa.ErrAuthFailed,
// sa.ErrReplayed, sa.ErrMalformed, sa.ErrUnknownSPI, sa.ErrExpired,
// sa.ErrSeqExhausted, sa.ErrDummy, sa.ErrNoRoom — so that sa.ReasonOf(err)
// counts them with no allocation. Seal and Open already record each
// drop in the SA's per-reason counters (s.CountDrop) and each success in
// its byte/packet counters (s.CountIn/CountOut), which also enforce the
// byte and packet lifetimes: the dataplane must not count them again per
// SA (it counts only what has no SA, such as unknown SPIs).
//
// # ESP in UDP (RFC 3948)
//
// On port 4500 a UDP payload that begins with four zero bytes (the
// non-ESP marker) is IKE, a single 0xFF byte is a NAT keepalive, and
// anything else of at least 8 bytes is ESP: ClassifyUDP tells them apart,
// and the ESP packet is the whole UDP payload.
package esp
