#!/usr/bin/env bash
# topo.sh up|down [PREFIX] [nat]: the lab of isle's namespace tests (internal/netns), for the demo and the
# benchmark. Four namespaces, five with "nat" (a masquerading box between the gateways):
#
#   PREFIXhl ─lan─ PREFIXgl ═════ wan ═════ PREFIXgr ─lan─ PREFIXhr
#   PREFIXhl ─lan─ PREFIXgl ═ PREFIXnat ═ PREFIXgr ─lan─ PREFIXhr          (nat)
#
#   left LAN   10.1.0.0/24     fd00:1::/64        hl .2 / ::2    gl .1 / ::1
#   right LAN  10.2.0.0/24     fd00:2::/64        hr .2 / ::2    gr .1 / ::1
#   WAN        198.18.0.0/24   2001:db8:18::/64   gl .1 / ::1    gr .2 / ::2   (with nat: .1/::1 is the NAT)
#   behind NAT 198.19.0.0/24   2001:db8:19::/64   gl .1 / ::1    nat .254 / ::fe
#
# Hosts route to their gateway; gateways forward but have no route to the far LAN (the tunnel adds it).
# Interfaces: PREFIXa0 (hl) — PREFIXa1 (gl), PREFIXw0 (gl) — PREFIXw1 (gr), PREFIXb0 (gr) — PREFIXb1 (hr);
# with nat: PREFIXw0 (gl) — PREFIXn0 (nat), PREFIXn1 (nat) — PREFIXw1 (gr). Needs root, iproute2, nftables.
set -euo pipefail
cmd=${1:-}; p=${2:-isle}; nat=${3:-}
case $cmd in up|down) ;; *) echo "usage: $0 up|down [PREFIX] [nat]" >&2; exit 2 ;; esac
[[ $p =~ ^[A-Za-z0-9]{1,12}$ ]] || { echo "$0: PREFIX must be 1-12 letters or digits" >&2; exit 2; }
HL=${p}hl GL=${p}gl NAT=${p}nat GR=${p}gr HR=${p}hr

down() { # ends what still runs in the namespaces (TERM, then KILL after 3s), then deletes them
  local n pids _
  for n in $HL $GL $NAT $GR $HR; do
    [[ -e /run/netns/$n ]] || continue
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      kill $pids 2>/dev/null || true
      for _ in $(seq 30); do [[ -z $(ip netns pids "$n" 2>/dev/null) ]] && break; sleep 0.1; done
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$n" 2>/dev/null || true
  done
}
if [[ $cmd == down ]]; then down; exit 0; fi

down
trap 'echo "$0: building the topology failed; removing it" >&2; down' ERR
nodes="$HL $GL $GR $HR"; [[ -n $nat ]] && nodes="$nodes $NAT"
for n in $nodes; do
  ip netns add "$n"
  ip -n "$n" link set lo up
  # No duplicate address detection: IPv6 is usable at once.
  ip netns exec "$n" sh -c 'echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
done
link() { # NS1 IF1 ADDR4 ADDR6 NS2 IF2 ADDR4 ADDR6
  ip link add "$2" netns "$1" type veth peer name "$6" netns "$5"
  ip -n "$1" link set "$2" up; ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" -6 addr add "$4" dev "$2" nodad
  ip -n "$5" link set "$6" up; ip -n "$5" addr add "$7" dev "$6"; ip -n "$5" -6 addr add "$8" dev "$6" nodad
}
link $HL ${p}a0 10.1.0.2/24 fd00:1::2/64 $GL ${p}a1 10.1.0.1/24 fd00:1::1/64
link $GR ${p}b0 10.2.0.1/24 fd00:2::1/64 $HR ${p}b1 10.2.0.2/24 fd00:2::2/64
if [[ -n $nat ]]; then
  link $GL ${p}w0 198.19.0.1/24 2001:db8:19::1/64 $NAT ${p}n0 198.19.0.254/24 2001:db8:19::fe/64
  link $NAT ${p}n1 198.18.0.1/24 2001:db8:18::1/64 $GR ${p}w1 198.18.0.2/24 2001:db8:18::2/64
  ip -n $GL route add default via 198.19.0.254
  ip -n $GL -6 route add default via 2001:db8:19::fe
  ip netns exec $NAT nft -f - <<NFT
table inet isle_nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "${p}n1" meta l4proto { tcp, udp } masquerade to :20000-30000
    oifname "${p}n1" masquerade
  }
}
NFT
else
  link $GL ${p}w0 198.18.0.1/24 2001:db8:18::1/64 $GR ${p}w1 198.18.0.2/24 2001:db8:18::2/64
fi
ip -n $HL route add default via 10.1.0.1;  ip -n $HL -6 route add default via fd00:1::1
ip -n $HR route add default via 10.2.0.1;  ip -n $HR -6 route add default via fd00:2::1
for n in $GL $GR ${nat:+$NAT}; do
  ip netns exec "$n" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
done
trap - ERR
echo "topology $p up${nat:+ (gl behind NAT)}: $HL — $GL ═${nat:+ $NAT ═} $GR — $HR"
