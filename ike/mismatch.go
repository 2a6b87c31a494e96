package ike

import (
	"fmt"
	"slices"
	"strings"

	"github.com/isle-ipsec/isle/ike/message"
	"github.com/isle-ipsec/isle/sa"
)

// ProposalError explains a NO_PROPOSAL_CHOSEN: both offers in strongSwan's
// names and the transform types that found no common algorithm. It
// unwraps to the NotifyError, so errors.As(err, &*NotifyError) still
// finds NO_PROPOSAL_CHOSEN.
type ProposalError struct {
	What string // "IKE SA", "CHILD_SA net"
	// Sent: we are the responder and refused the peer's offer. Otherwise
	// the peer refused ours and did not say what it accepts.
	Sent bool
	Peer []sa.Proposal // the peer's offer; nil when the peer refused
	Ours []sa.Proposal // what we accept (responder) or offered (initiator)
	// Unmatched are the transform types without a common algorithm,
	// for the pair of proposals that came closest (responder only).
	Unmatched []sa.TransformType
}

func (e *ProposalError) Unwrap() error {
	return &NotifyError{Type: message.NoProposalChosen, Sent: e.Sent}
}

func proposalList(ps []sa.Proposal) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

func (e *ProposalError) Error() string {
	if !e.Sent {
		return fmt.Sprintf("ike: peer sent NO_PROPOSAL_CHOSEN for the %s: we offered %s; the peer does not say what it accepts",
			e.What, proposalList(e.Ours))
	}
	var types []string
	for _, t := range e.Unmatched {
		types = append(types, t.String())
	}
	s := fmt.Sprintf("ike: sent NO_PROPOSAL_CHOSEN for the %s: peer offered %s, we accept %s",
		e.What, proposalList(e.Peer), proposalList(e.Ours))
	if len(types) > 0 {
		s += "; no match for " + strings.Join(types, ", ")
	}
	return s
}

// proposalsFromWire turns the peer's SA payload into sa.Proposals for
// display, keeping algorithms we do not implement by their number.
func proposalsFromWire(p *message.SA) []sa.Proposal {
	var out []sa.Proposal
	for _, wp := range p.Proposals {
		proto, ok := wp.Protocol.SA()
		if !ok {
			continue
		}
		q := sa.Proposal{Protocol: proto}
		for _, t := range wp.Transforms {
			switch t.Type {
			case sa.TransformENCR:
				e, ok := encrFromWire(t)
				if !ok {
					bits, _ := t.KeyLength()
					e = sa.Encr{Alg: sa.EncAlg(t.ID), KeyBits: bits}
				}
				q.Encr = append(q.Encr, e)
			case sa.TransformINTEG:
				q.Integ = append(q.Integ, sa.IntegAlg(t.ID))
			case sa.TransformPRF:
				q.PRF = append(q.PRF, sa.PRFAlg(t.ID))
			case sa.TransformKE:
				q.DH = append(q.DH, sa.DHGroup(t.ID))
			case sa.TransformESN:
				q.ESN = append(q.ESN, sa.ESNMode(t.ID))
			}
		}
		out = append(out, q)
	}
	return out
}

// unmatchedTypes finds, over every pair of our and the peer's proposals
// of the same protocol, the one with the fewest transform types lacking a
// common algorithm, and returns those types.
func unmatchedTypes(ours []sa.Proposal, theirs []sa.Proposal) []sa.TransformType {
	var best []sa.TransformType
	found := false
	for _, o := range ours {
		for _, t := range theirs {
			if o.Protocol != t.Protocol {
				continue
			}
			var miss []sa.TransformType
			if !common(o.Encr, t.Encr) {
				miss = append(miss, sa.TransformENCR)
			}
			if !common(o.Integ, t.Integ) {
				miss = append(miss, sa.TransformINTEG)
			}
			if !common(o.PRF, t.PRF) {
				miss = append(miss, sa.TransformPRF)
			}
			if !(common(o.DH, t.DH) || o.Protocol != sa.ProtoIKE && len(o.DH) == 0 && (len(t.DH) == 0 || slices.Contains(t.DH, sa.DHNone))) {
				miss = append(miss, sa.TransformKE)
			}
			esnOurs := o.ESN
			if o.Protocol != sa.ProtoIKE && len(esnOurs) == 0 {
				esnOurs = []sa.ESNMode{sa.NoESN}
			}
			esnTheirs := t.ESN
			if o.Protocol != sa.ProtoIKE && len(esnTheirs) == 0 {
				esnTheirs = []sa.ESNMode{sa.NoESN}
			}
			if !common(esnOurs, esnTheirs) {
				miss = append(miss, sa.TransformESN)
			}
			if !found || len(miss) < len(best) {
				best, found = miss, true
			}
		}
	}
	if !found {
		return nil
	}
	return best
}

// common: both lists empty, or an element in both.
func common[T comparable](a, b []T) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return slices.ContainsFunc(a, func(x T) bool { return slices.Contains(b, x) })
}

// refusedProposal is the responder's explanation of a NO_PROPOSAL_CHOSEN.
func refusedProposal(what string, ours []sa.Proposal, theirs *message.SA) *ProposalError {
	peer := proposalsFromWire(theirs)
	return &ProposalError{What: what, Sent: true, Peer: peer, Ours: ours, Unmatched: unmatchedTypes(ours, peer)}
}

// childProposals are the proposals of every CHILD_SA configuration (or
// only the one named), without key exchange methods in IKE_AUTH.
func (s *IKESA) childProposals(only string, inIKEAuth bool) (string, []sa.Proposal) {
	var out []sa.Proposal
	var names []string
	for _, c := range s.cfg.Children {
		if only != "" && c.Name != only {
			continue
		}
		names = append(names, c.Name)
		ps := c.Proposals
		if inIKEAuth {
			ps = withoutKE(ps)
		}
		out = append(out, ps...)
	}
	return "CHILD_SA " + strings.Join(names, "|"), out
}
