package config

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// IDKind is the type of an IKE identity. The values are the IKEv2
// Identification payload ID Types (RFC 7296 §3.5), so the ike package can
// put them on the wire as they are; IDAny (0, reserved there) is the
// configuration's "%any", which is never sent.
type IDKind uint8

const (
	IDAny   IDKind = 0  // "%any": any identity that authenticates
	IDIPv4  IDKind = 1  // ID_IPV4_ADDR
	IDFQDN  IDKind = 2  // ID_FQDN
	IDEmail IDKind = 3  // ID_RFC822_ADDR (user@fqdn)
	IDIPv6  IDKind = 5  // ID_IPV6_ADDR
	IDDN    IDKind = 9  // ID_DER_ASN1_DN
	IDKeyID IDKind = 11 // ID_KEY_ID (not parsed from the configuration yet)
)

func (k IDKind) String() string {
	switch k {
	case IDAny:
		return "any"
	case IDIPv4:
		return "IPv4"
	case IDFQDN:
		return "FQDN"
	case IDEmail:
		return "email"
	case IDIPv6:
		return "IPv6"
	case IDDN:
		return "DN"
	case IDKeyID:
		return "key ID"
	}
	return fmt.Sprintf("IDKind(%d)", uint8(k))
}

// Identity is an IKE identity from the configuration (local.id, remote.id,
// secrets ids) or from a certificate subject.
type Identity struct {
	Kind  IDKind
	Value string     // as the administrator writes it (DNs in "C=CH, O=Acme, CN=gw-a" form)
	Addr  netip.Addr // IDIPv4, IDIPv6
	DN    []RDN      // IDDN, in order, most significant first
	// DER is the encoded DN for IDDN. For an identity taken from a
	// certificate it is the certificate's raw subject, byte for byte, so
	// what we send matches what the peer finds in our certificate.
	DER []byte
}

// RDN is one attribute of a distinguished name, such as CN=gw-a.
type RDN struct {
	Type  string // short name as printed: C, O, OU, CN, ... or a dotted OID
	OID   asn1.ObjectIdentifier
	Value string
}

// dnAttrs are the attribute names strongSwan understands in DNs (a subset
// of its oid table), with their OIDs.
var dnAttrs = []struct {
	names []string // first one is printed
	oid   asn1.ObjectIdentifier
}{
	{[]string{"C"}, asn1.ObjectIdentifier{2, 5, 4, 6}},
	{[]string{"ST", "S"}, asn1.ObjectIdentifier{2, 5, 4, 8}},
	{[]string{"L"}, asn1.ObjectIdentifier{2, 5, 4, 7}},
	{[]string{"O"}, asn1.ObjectIdentifier{2, 5, 4, 10}},
	{[]string{"OU"}, asn1.ObjectIdentifier{2, 5, 4, 11}},
	{[]string{"CN"}, asn1.ObjectIdentifier{2, 5, 4, 3}},
	{[]string{"SN", "surname"}, asn1.ObjectIdentifier{2, 5, 4, 4}},
	{[]string{"serialNumber"}, asn1.ObjectIdentifier{2, 5, 4, 5}},
	{[]string{"STREET"}, asn1.ObjectIdentifier{2, 5, 4, 9}},
	{[]string{"T", "title"}, asn1.ObjectIdentifier{2, 5, 4, 12}},
	{[]string{"postalCode"}, asn1.ObjectIdentifier{2, 5, 4, 17}},
	{[]string{"G", "givenName"}, asn1.ObjectIdentifier{2, 5, 4, 42}},
	{[]string{"DC"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
	{[]string{"UID"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
	{[]string{"E", "emailAddress"}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
}

const idExpected = `expected an FQDN (gw.example.net), an IP address, user@fqdn, a DN ("C=CH, O=Acme, CN=gw-a") or %any`

// ParseIdentity reads an identity as strongSwan does: "%any"; an IPv4 or
// IPv6 address; a DN when it contains "=" ("C=CH, O=Acme, CN=gw-a", also
// "/C=CH/O=Acme/CN=gw-a"); user@fqdn when it contains "@"; "@name" forces
// an FQDN; anything else must be a host name.
func ParseIdentity(s string) (Identity, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Identity{}, fmt.Errorf("empty identity: %s", idExpected)
	case s == "%any" || s == "%any6":
		return Identity{Kind: IDAny, Value: "%any"}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		kind := IDIPv6
		if a.Is4() {
			kind = IDIPv4
		}
		return Identity{Kind: kind, Value: a.String(), Addr: a}, nil
	}
	if strings.Contains(s, "=") {
		rdns, err := parseDN(s)
		if err != nil {
			return Identity{}, fmt.Errorf("identity %q: %w", s, err)
		}
		return identityFromRDNs(rdns), nil
	}
	if strings.HasPrefix(s, "@") {
		if !isHostname(s[1:]) {
			return Identity{}, fmt.Errorf("identity %q: %q is not a valid host name", s, s[1:])
		}
		return Identity{Kind: IDFQDN, Value: s[1:]}, nil
	}
	if user, host, ok := strings.Cut(s, "@"); ok {
		if user == "" || strings.ContainsAny(user, " \t@") || !isHostname(host) {
			return Identity{}, fmt.Errorf("identity %q: not a valid user@fqdn (%s)", s, idExpected)
		}
		return Identity{Kind: IDEmail, Value: s}, nil
	}
	if !isHostname(s) {
		return Identity{}, fmt.Errorf("identity %q: %s", s, idExpected)
	}
	return Identity{Kind: IDFQDN, Value: s}, nil
}

// isHostname accepts DNS names of letters, digits, "-" and "_" labels.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isBare(label[i]) {
				return false
			}
		}
	}
	return true
}

// parseDN splits "C=CH, O=Acme, CN=gw-a" (or "/C=CH/O=Acme/CN=gw-a") into
// attributes. A value may be double-quoted, and "\," escapes a separator.
func parseDN(s string) ([]RDN, error) {
	sep := byte(',')
	if strings.HasPrefix(s, "/") {
		sep, s = '/', s[1:]
	}
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote in DN")
	}
	parts = append(parts, cur.String())
	var rdns []RDN
	for _, p := range parts {
		typ, val, ok := strings.Cut(p, "=")
		typ, val = strings.TrimSpace(typ), strings.TrimSpace(val)
		if !ok || typ == "" {
			return nil, fmt.Errorf("DN part %q is not TYPE=value (e.g. CN=gw-a)", strings.TrimSpace(p))
		}
		if val == "" {
			return nil, fmt.Errorf("DN attribute %s has an empty value", typ)
		}
		rdn, err := lookupAttr(typ)
		if err != nil {
			return nil, err
		}
		rdn.Value = val
		rdns = append(rdns, rdn)
	}
	return rdns, nil
}

func lookupAttr(typ string) (RDN, error) {
	for _, a := range dnAttrs {
		for _, n := range a.names {
			if strings.EqualFold(n, typ) {
				return RDN{Type: a.names[0], OID: a.oid}, nil
			}
		}
	}
	// A dotted OID is accepted as the type, as in strongSwan.
	var oid asn1.ObjectIdentifier
	for _, f := range strings.Split(typ, ".") {
		var n int
		if _, err := fmt.Sscanf(f, "%d", &n); err != nil || fmt.Sprint(n) != f {
			return RDN{}, fmt.Errorf("unknown DN attribute %q (expected C, ST, L, O, OU, CN, SN, serialNumber, T, G, DC, UID, E or a dotted OID)", typ)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return RDN{}, fmt.Errorf("unknown DN attribute %q", typ)
	}
	return RDN{Type: oid.String(), OID: oid}, nil
}

func identityFromRDNs(rdns []RDN) Identity {
	seq := make(pkix.RDNSequence, len(rdns))
	parts := make([]string, len(rdns))
	for i, r := range rdns {
		seq[i] = []pkix.AttributeTypeAndValue{{Type: r.OID, Value: r.Value}}
		parts[i] = r.Type + "=" + quoteDNValue(r.Value)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		der = nil // only values asn1 cannot encode (invalid UTF-8); matching then uses the RDNs
	}
	return Identity{Kind: IDDN, Value: strings.Join(parts, ", "), DN: rdns, DER: der}
}

// quoteDNValue quotes a value that holds a separator, a quote or a
// backslash, so the printed DN parses back to the same attributes.
func quoteDNValue(v string) string {
	if !strings.ContainsAny(v, ",/\"\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// IdentityFromSubject makes a DN identity from a certificate's raw subject,
// keeping the DER as it is.
func IdentityFromSubject(rawSubject []byte) (Identity, error) {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(rawSubject, &seq); err != nil || len(rest) != 0 {
		return Identity{}, errors.New("certificate subject is not a valid DN")
	}
	var rdns []RDN
	for _, set := range seq {
		for _, atv := range set {
			r := RDN{Type: atv.Type.String(), OID: atv.Type, Value: fmt.Sprint(atv.Value)}
			for _, a := range dnAttrs {
				if a.oid.Equal(atv.Type) {
					r.Type = a.names[0]
				}
			}
			rdns = append(rdns, r)
		}
	}
	id := identityFromRDNs(rdns)
	id.DER = append([]byte(nil), rawSubject...)
	return id, nil
}

// String prints the identity as it would be written in the configuration.
func (id Identity) String() string {
	if id.Kind == IDAny {
		return "%any"
	}
	return id.Value
}

// Data is the Identification Data of an IKEv2 ID payload (RFC 7296 §3.5):
// 4 or 16 address bytes, the FQDN or user@fqdn as ASCII, the DER DN.
func (id Identity) Data() []byte {
	switch id.Kind {
	case IDIPv4, IDIPv6:
		return id.Addr.AsSlice()
	case IDDN:
		return id.DER
	case IDAny:
		return nil
	}
	return []byte(id.Value)
}

// Matches reports whether a peer presenting id satisfies the configured
// identity want: %any matches everything; names compare without regard to
// case (DNS and strongSwan do so); DNs compare attribute by attribute.
func (want Identity) Matches(id Identity) bool {
	if want.Kind == IDAny {
		return true
	}
	if want.Kind != id.Kind {
		return false
	}
	switch want.Kind {
	case IDIPv4, IDIPv6:
		return want.Addr == id.Addr
	case IDDN:
		if len(want.DN) != len(id.DN) {
			return false
		}
		for i := range want.DN {
			if !want.DN[i].OID.Equal(id.DN[i].OID) || !strings.EqualFold(want.DN[i].Value, id.DN[i].Value) {
				return false
			}
		}
		return true
	}
	return strings.EqualFold(strings.TrimSuffix(want.Value, "."), strings.TrimSuffix(id.Value, "."))
}
