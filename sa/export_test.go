package sa

// SetSeqForTest lets tests start the outbound counter near its end.
func (s *SA) SetSeqForTest(v uint64) { s.seqOut.Store(v) }
