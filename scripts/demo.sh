#!/usr/bin/env bash
# demo.sh: two sites joined by isle in network namespaces (root). Builds the lab of scripts/topo.sh,
# shows it, starts isle in PREFIXgl and PREFIXgr with testdata/demo/{left,right}.toml: the left site
# initiates IKEv2 (pre-shared key) and both install the negotiated ESP AES-GCM CHILD_SA; pings and runs TCP
# through the tunnel, shows IKE and ESP on the wire and the IKE_SA and CHILD_SA with their counters
# (isle status), and removes everything (gateways, namespaces) on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
p=${DEMO_PREFIX:-demo}
[[ $(id -u) == 0 ]] || { echo "demo.sh needs root (network namespaces)" >&2; exit 1; }
isle=${ISLE:-bin/isle}
[[ -x $isle ]] || { echo "building $isle"; go build -o "$isle" ./cmd/isle; }
work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ./scripts/topo.sh down "$p"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
./scripts/topo.sh up "$p"
for n in hl gl gr hr; do
  echo "--- ${p}$n"
  ip -n "${p}$n" -brief addr show | grep -v '^lo '
  ip -n "${p}$n" route show
done
echo "--- without a tunnel, hl cannot reach hr:"
if ip netns exec "${p}hl" ping -c 1 -W 1 10.2.0.2 >/dev/null; then echo "unexpected: reachable"; exit 1; else echo "unreachable, as it should be"; fi

# The demo configs name the WAN addresses of the lab (198.18.0.1 / .2); only the control socket moves into
# the scratch directory, so that the two gateways on this one machine do not share one. The right site
# (the responder) starts first; the left one initiates, with the WAN watched by tcpdump.
ip netns exec "${p}gr" timeout 8 tcpdump -n -l -c 4 -i "${p}w1" udp port 500 or udp port 4500 >"$work/ike.txt" 2>/dev/null &
ike_dump=$!
sleep 0.5
for side in right left; do
  ns=${p}gl; [[ $side == right ]] && ns=${p}gr
  sed "s|^interface = .*|&\ncontrol   = \"$work/$side.sock\"|" "testdata/demo/$side.toml" >"$work/$side.toml"
  ip netns exec "$ns" "$isle" run -c "$work/$side.toml" >"$work/$side.log" 2>&1 &
  pids+=($!)
  [[ $side == right ]] && for _ in $(seq 50); do [[ -S $work/right.sock ]] && break; sleep 0.1; done
done
for side in left right; do
  for _ in $(seq 100); do grep -q 'CHILD_SA up' "$work/$side.log" && break; sleep 0.1; done
  grep -q 'CHILD_SA up' "$work/$side.log" || { echo "isle ($side) did not negotiate:"; cat "$work/$side.log"; exit 1; }
done
wait "$ike_dump" || true
echo "--- IKEv2 on the wire: IKE_SA_INIT and IKE_AUTH, request and response each:"
cat "$work/ike.txt"
echo "--- isle negotiated the IKE_SA and the CHILD_SA on both gateways:"
grep -h 'IKE_SA up\|CHILD_SA up' "$work/left.log" "$work/right.log"
echo "--- ${p}gl routes the far LAN into the tunnel device:"
ip -n "${p}gl" route show dev isle0
ip -n "${p}gl" -6 route show dev isle0

echo "--- ping hl → hr through the tunnel (IPv4, then IPv6 inside IPv4), with the WAN seen by tcpdump:"
ip netns exec "${p}gr" timeout 5 tcpdump -n -l -c 4 -i "${p}w1" esp 2>/dev/null &
tcpdump_pid=$!
sleep 1
ip netns exec "${p}hl" ping -c 3 -i 0.2 10.2.0.2
ip netns exec "${p}hl" ping -c 3 -i 0.2 fd00:2::2
wait "$tcpdump_pid" || true

if command -v iperf3 >/dev/null; then
  echo "--- TCP hl → hr through the tunnel (iperf3, 3 s):"
  ip netns exec "${p}hr" iperf3 -s -1 -D -B 10.2.0.2 >/dev/null
  sleep 0.3
  ip netns exec "${p}hl" iperf3 -c 10.2.0.2 -t 3 | tail -4
fi

echo "--- the SAs and their counters (isle status, over each gateway's control socket):"
for side in left right; do
  echo "$side gateway:"
  "$isle" status --socket "$work/$side.sock"
done
echo "--- done; stopping the gateways and removing the lab"
