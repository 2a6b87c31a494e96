package netns

// The address plan of the lab. IPv4 uses private LANs and the benchmarking
// range 198.18.0.0/15 (RFC 2544) for the WAN; IPv6 uses unique local
// addresses (RFC 4193) for the LANs and the documentation prefix 2001:db8::/32
// (RFC 3849) for the WAN. The IPv6 plan mirrors the IPv4 one: LAN n is
// 10.n.0.0/24 and fd00:n::/64, and a host keeps its last number (.2 → ::2).
// Everything lives inside namespaces the test made.
const (
	LeftLAN4  = "10.1.0.0/24"
	RightLAN4 = "10.2.0.0/24"
	LeftLAN6  = "fd00:1::/64"
	RightLAN6 = "fd00:2::/64"
	WAN4      = "198.18.0.0/24"
	WAN6      = "2001:db8:18::/64"

	HL4    = "10.1.0.2"
	HL6    = "fd00:1::2"
	LanGL4 = "10.1.0.1"
	LanGL6 = "fd00:1::1"
	WanGL4 = "198.18.0.1" // gl's WAN address, or the NAT's public one (WithNAT)
	WanGL6 = "2001:db8:18::1"
	WanGR4 = "198.18.0.2"
	WanGR6 = "2001:db8:18::2"
	LanGR4 = "10.2.0.1"
	LanGR6 = "fd00:2::1"
	HR4    = "10.2.0.2"
	HR6    = "fd00:2::2"

	// Behind the NAT (WithNAT): gl and the NAT's inside.
	BehindNAT4   = "198.19.0.0/24"
	BehindNAT6   = "2001:db8:19::/64"
	BehindNATGL4 = "198.19.0.1"
	BehindNATGL6 = "2001:db8:19::1"
	NATInside4   = "198.19.0.254"
	NATInside6   = "2001:db8:19::fe"

	// NATPortMin and NATPortMax bound the source ports the NAT maps TCP and
	// UDP to.
	NATPortMin = 20000
	NATPortMax = 30000
)
