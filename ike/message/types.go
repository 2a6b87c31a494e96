package message

import (
	"fmt"

	"github.com/isle-ipsec/isle/sa"
)

// ExchangeType is the IKE exchange type of a message (RFC 7296 §3.1).
type ExchangeType uint8

const (
	IKESAInit     ExchangeType = 34
	IKEAuth       ExchangeType = 35
	CreateChildSA ExchangeType = 36
	Informational ExchangeType = 37
)

func (e ExchangeType) String() string {
	switch e {
	case IKESAInit:
		return "IKE_SA_INIT"
	case IKEAuth:
		return "IKE_AUTH"
	case CreateChildSA:
		return "CREATE_CHILD_SA"
	case Informational:
		return "INFORMATIONAL"
	}
	return fmt.Sprintf("Exchange(%d)", uint8(e))
}

// Flags are the header flags (RFC 7296 §3.1). Bits other than these are
// cleared when sending and ignored on receipt.
type Flags uint8

const (
	FlagInitiator Flags = 0x08 // sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // sender can speak a higher major version
	FlagResponse  Flags = 0x20 // message is a response

	knownFlags = FlagInitiator | FlagVersion | FlagResponse
)

func (f Flags) String() string {
	s := ""
	for _, b := range []struct {
		f Flags
		n string
	}{{FlagInitiator, "I"}, {FlagVersion, "V"}, {FlagResponse, "R"}} {
		if f&b.f != 0 {
			s += b.n
		}
	}
	return "[" + s + "]"
}

// PayloadType is the "Next Payload" value naming a payload (RFC 7296 §3.2,
// RFC 7383 for SKF).
type PayloadType uint8

const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCERT     PayloadType = 37
	PayloadCERTREQ  PayloadType = 38
	PayloadAUTH     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadSKF      PayloadType = 53
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "No",
	PayloadNotify: "N", PayloadDelete: "D", PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr",
	PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP", PayloadSKF: "SKF",
}

func (p PayloadType) String() string {
	if n, ok := payloadNames[p]; ok {
		return n
	}
	return fmt.Sprintf("Payload(%d)", uint8(p))
}

// ProtocolID names the protocol of a proposal, notification or deletion on
// the wire (RFC 7296 §3.3.1). It differs from sa.Protocol, which uses the
// IP protocol numbers; SA and FromSA convert.
type ProtocolID uint8

const (
	ProtoNone ProtocolID = 0
	ProtoIKE  ProtocolID = 1
	ProtoAH   ProtocolID = 2
	ProtoESP  ProtocolID = 3
)

func (p ProtocolID) String() string {
	switch p {
	case ProtoNone:
		return "NONE"
	case ProtoIKE:
		return "IKE"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	}
	return fmt.Sprintf("ProtocolID(%d)", uint8(p))
}

// SA converts to the sa package's numbering; ok is false for values that
// name no SA protocol.
func (p ProtocolID) SA() (proto sa.Protocol, ok bool) {
	switch p {
	case ProtoIKE:
		return sa.ProtoIKE, true
	case ProtoAH:
		return sa.ProtoAH, true
	case ProtoESP:
		return sa.ProtoESP, true
	}
	return 0, false
}

// ProtocolFromSA converts from the sa package's numbering.
func ProtocolFromSA(p sa.Protocol) ProtocolID {
	switch p {
	case sa.ProtoIKE:
		return ProtoIKE
	case sa.ProtoAH:
		return ProtoAH
	case sa.ProtoESP:
		return ProtoESP
	}
	return ProtoNone
}

// NotifyType is a Notify Message Type (RFC 7296 §3.10.1 and the IANA
// registry). Values below 16384 are errors, the others status.
type NotifyType uint16

const (
	UnsupportedCriticalPayload NotifyType = 1
	InvalidIKESPI              NotifyType = 4
	InvalidMajorVersion        NotifyType = 5
	InvalidSyntax              NotifyType = 7
	InvalidMessageID           NotifyType = 9
	InvalidSPI                 NotifyType = 11
	NoProposalChosen           NotifyType = 14
	InvalidKEPayload           NotifyType = 17
	AuthenticationFailed       NotifyType = 24
	SinglePairRequired         NotifyType = 34
	NoAdditionalSAs            NotifyType = 35
	InternalAddressFailure     NotifyType = 36
	FailedCPRequired           NotifyType = 37
	TSUnacceptable             NotifyType = 38
	InvalidSelectors           NotifyType = 39
	TemporaryFailure           NotifyType = 43
	ChildSANotFound            NotifyType = 44

	InitialContact              NotifyType = 16384
	SetWindowSize               NotifyType = 16385
	AdditionalTSPossible        NotifyType = 16386
	IPCompSupported             NotifyType = 16387
	NATDetectionSourceIP        NotifyType = 16388
	NATDetectionDestinationIP   NotifyType = 16389
	Cookie                      NotifyType = 16390
	UseTransportMode            NotifyType = 16391
	HTTPCertLookupSupported     NotifyType = 16392
	RekeySA                     NotifyType = 16393
	ESPTFCPaddingNotSupported   NotifyType = 16394
	NonFirstFragmentsAlso       NotifyType = 16395
	MOBIKESupported             NotifyType = 16396
	MultipleAuthSupported       NotifyType = 16404
	RedirectSupported           NotifyType = 16406
	ChildlessIKEv2Supported     NotifyType = 16418
	IKEv2FragmentationSupported NotifyType = 16430
	SignatureHashAlgorithms     NotifyType = 16431
)

var notifyNames = map[NotifyType]string{
	UnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD", InvalidIKESPI: "INVALID_IKE_SPI",
	InvalidMajorVersion: "INVALID_MAJOR_VERSION", InvalidSyntax: "INVALID_SYNTAX",
	InvalidMessageID: "INVALID_MESSAGE_ID", InvalidSPI: "INVALID_SPI",
	NoProposalChosen: "NO_PROPOSAL_CHOSEN", InvalidKEPayload: "INVALID_KE_PAYLOAD",
	AuthenticationFailed: "AUTHENTICATION_FAILED", SinglePairRequired: "SINGLE_PAIR_REQUIRED",
	NoAdditionalSAs: "NO_ADDITIONAL_SAS", InternalAddressFailure: "INTERNAL_ADDRESS_FAILURE",
	FailedCPRequired: "FAILED_CP_REQUIRED", TSUnacceptable: "TS_UNACCEPTABLE",
	InvalidSelectors: "INVALID_SELECTORS", TemporaryFailure: "TEMPORARY_FAILURE",
	ChildSANotFound: "CHILD_SA_NOT_FOUND", InitialContact: "INITIAL_CONTACT",
	SetWindowSize: "SET_WINDOW_SIZE", AdditionalTSPossible: "ADDITIONAL_TS_POSSIBLE",
	IPCompSupported: "IPCOMP_SUPPORTED", NATDetectionSourceIP: "NAT_DETECTION_SOURCE_IP",
	NATDetectionDestinationIP: "NAT_DETECTION_DESTINATION_IP", Cookie: "COOKIE",
	UseTransportMode: "USE_TRANSPORT_MODE", HTTPCertLookupSupported: "HTTP_CERT_LOOKUP_SUPPORTED",
	RekeySA: "REKEY_SA", ESPTFCPaddingNotSupported: "ESP_TFC_PADDING_NOT_SUPPORTED",
	NonFirstFragmentsAlso: "NON_FIRST_FRAGMENTS_ALSO", MOBIKESupported: "MOBIKE_SUPPORTED",
	MultipleAuthSupported: "MULTIPLE_AUTH_SUPPORTED", RedirectSupported: "REDIRECT_SUPPORTED",
	ChildlessIKEv2Supported:     "CHILDLESS_IKEV2_SUPPORTED",
	IKEv2FragmentationSupported: "IKEV2_FRAGMENTATION_SUPPORTED",
	SignatureHashAlgorithms:     "SIGNATURE_HASH_ALGORITHMS",
}

func (n NotifyType) String() string {
	if s, ok := notifyNames[n]; ok {
		return s
	}
	return fmt.Sprintf("NOTIFY(%d)", uint16(n))
}

// IsError reports whether the type is an error notification (RFC 7296
// §3.10.1: 0–16383).
func (n NotifyType) IsError() bool { return n < 16384 }

// IDType is the identification type of IDi/IDr (RFC 7296 §3.5).
type IDType uint8

const (
	IDIPv4      IDType = 1
	IDFQDN      IDType = 2
	IDRFC822    IDType = 3
	IDIPv6      IDType = 5
	IDDerASN1DN IDType = 9
	IDDerASN1GN IDType = 10
	IDKeyID     IDType = 11
)

func (t IDType) String() string {
	switch t {
	case IDIPv4:
		return "ID_IPV4_ADDR"
	case IDFQDN:
		return "ID_FQDN"
	case IDRFC822:
		return "ID_RFC822_ADDR"
	case IDIPv6:
		return "ID_IPV6_ADDR"
	case IDDerASN1DN:
		return "ID_DER_ASN1_DN"
	case IDDerASN1GN:
		return "ID_DER_ASN1_GN"
	case IDKeyID:
		return "ID_KEY_ID"
	}
	return fmt.Sprintf("ID(%d)", uint8(t))
}

// AuthMethod is the authentication method of an AUTH payload (RFC 7296
// §3.8, RFC 4754, RFC 7427).
type AuthMethod uint8

const (
	AuthRSASig           AuthMethod = 1
	AuthSharedKeyMIC     AuthMethod = 2
	AuthDSSSig           AuthMethod = 3
	AuthECDSA256         AuthMethod = 9
	AuthECDSA384         AuthMethod = 10
	AuthECDSA521         AuthMethod = 11
	AuthDigitalSignature AuthMethod = 14
)

func (m AuthMethod) String() string {
	switch m {
	case AuthRSASig:
		return "RSA_SIG"
	case AuthSharedKeyMIC:
		return "SHARED_KEY_MIC"
	case AuthDSSSig:
		return "DSS_SIG"
	case AuthECDSA256:
		return "ECDSA_SHA256_P256"
	case AuthECDSA384:
		return "ECDSA_SHA384_P384"
	case AuthECDSA521:
		return "ECDSA_SHA512_P521"
	case AuthDigitalSignature:
		return "DIGITAL_SIGNATURE"
	}
	return fmt.Sprintf("AUTH(%d)", uint8(m))
}

// TSType is a traffic selector type (RFC 7296 §3.13.1).
type TSType uint8

const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
)

// CfgType is the type of a configuration payload (RFC 7296 §3.15).
type CfgType uint8

const (
	CfgRequest CfgType = 1
	CfgReply   CfgType = 2
	CfgSet     CfgType = 3
	CfgAck     CfgType = 4
)

// Transform attribute types (RFC 7296 §3.3.5). Key Length is the only
// attribute IKEv2 defines; it is always sent in TV form.
const AttrKeyLength uint16 = 14
