// Package sa holds IPsec Security Association state: algorithms and keys,
// outbound sequence numbers, the inbound anti-replay window, lifetimes,
// counters, and the SAD that maps SPIs to SAs. The packet engines (esp,
// ah) transform packets with an *SA; the negotiator creates, installs and
// deletes SAs; the dataplane looks them up.
//
// # Life of an SA
//
//	s, err := sa.New(sa.Config{SPI: spi, Protocol: sa.ProtoESP, Inbound: true,
//		Enc: sa.EncAESGCM16, EncKey: keyAndSalt, ReplayWindow: 64,
//		Lifetime: sa.Lifetime{Soft: sa.Limits{Time: 50 * time.Minute}, Hard: sa.Limits{Time: time.Hour}}})
//	sad.Add(s)                 // inbound: visible to the dataplane's Lookup
//	ev := <-s.Events()         // EventRekey once at a soft limit, EventExpired at a hard one
//	old := sad.Replace(newSA)  // make-before-break after a rekey
//	sad.Delete(spi)            // expire now, clear keys after CloseGrace
//
// New validates the configuration and builds the crypto state once
// (cipher.AEAD for AES-GCM and ChaCha20-Poly1305, an AES block for CBC,
// HMAC pad states for integrity). Close clears the key bytes the SA owns.
//
// # Per packet, from many goroutines at once
//
// Outbound: NextSeq hands out sequence numbers (atomic; 32 bits without
// ESN and never wrapping: after 2^32-1 it returns ErrSeqExhausted and
// asks for a rekey). Inbound: CheckReplay is a read-only pre-check that
// also infers the high half of an extended sequence number (RFC 4303
// Appendix A) before the ICV is verified; CommitReplay records the number
// afterwards under a small lock. The window is a ring of 64-bit words
// (RFC 6479), 1 to MaxReplayWindow packets wide, 0 = off.
//
// Crypto returns a pooled per-goroutine context with the SA's primitives
// (AEAD seal/open with salt||IV nonces, CBC with unpredictable IVs,
// streaming HMAC with truncated ICVs) so that keys stay inside this
// package and nothing allocates per packet.
//
// CountIn/CountOut record processed packets and enforce byte and packet
// lifetimes; CountDrop records drops by Reason. The sentinel errors
// (ErrAuthFailed, ErrReplayed, ErrMalformed, ErrUnknownSPI,
// ErrSeqExhausted, ErrExpired, ErrDummy, ErrNoRoom) are Reason values, so
// ReasonOf(err) classifies them without allocating.
package sa
