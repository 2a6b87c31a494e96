package policy

import "fmt"

// NewPolicy compiles the local and remote traffic selectors of one SA
// pair. Both lists must be non-empty.
func NewPolicy(local, remote []Selector) (*Policy, error) {
	l, err := spansOf(local)
	if err != nil {
		return nil, fmt.Errorf("local selectors: %w", err)
	}
	r, err := spansOf(remote)
	if err != nil {
		return nil, fmt.Errorf("remote selectors: %w", err)
	}
	return policyFromSpans(l, r)
}

func spansOf(sels []Selector) ([]span, error) {
	out := make([]span, 0, len(sels))
	for _, s := range sels {
		if !s.Start.IsValid() || !s.End.IsValid() || s.Start.Is4() != s.End.Is4() || s.End.Less(s.Start) {
			return nil, fmt.Errorf("selector %v: bad address range", s)
		}
		out = append(out, span{lo: s.Start, hi: s.End, proto: s.Proto, portLo: s.PortStart, portHi: s.PortEnd})
	}
	return out, nil
}
