#!/usr/bin/env bash
# bench.sh [SECONDS]: end-to-end throughput on the lab of scripts/topo.sh (root). One single-stream TCP
# iperf3 run host to host and a ping RTT per system, each on its own copy of the topology, in one run so the
# numbers compare (the machine is shared and noisy). For now: plain routing (the ceiling). isle,
# strongSwan and wireguard-go rows are added by the dataplane and interop work.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-5}
[[ $(id -u) == 0 ]] || { echo "bench.sh needs root (network namespaces)" >&2; exit 1; }
prefixes=()
cleanup() { for p in "${prefixes[@]}"; do ./scripts/topo.sh down "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

measure() { # PREFIX NAME
  local p=$1 name=$2 port=$((5201 + RANDOM % 500)) srv mbps rtt
  ip netns exec "${p}hl" ping -c 3 -W 2 10.2.0.2 >/dev/null || { printf '%-22s no connectivity\n' "$name"; return 1; }
  ip netns exec "${p}hr" iperf3 -s -1 -p $port >/dev/null 2>&1 & srv=$!
  sleep 0.5
  mbps=$(ip netns exec "${p}hl" iperf3 -c 10.2.0.2 -p $port -t "$t" -J |
    /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6,1))')
  wait $srv || true
  rtt=$(ip netns exec "${p}hl" ping -c 20 -i 0.05 -q 10.2.0.2 | awk -F/ '/rtt/ {print $5}')
  printf '%-22s %10s Mbit/s   rtt %s ms\n' "$name" "$mbps" "$rtt"
}

printf '%-22s %17s   %s\n' system "tcp (1 stream)" "ping"
p=benchr; prefixes+=("$p")
./scripts/topo.sh up $p >/dev/null
ip -n ${p}gl route add 10.2.0.0/24 via 198.18.0.2; ip -n ${p}gr route add 10.1.0.0/24 via 198.18.0.1
measure $p plain-routing || true
