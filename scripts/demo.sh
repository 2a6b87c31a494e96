#!/usr/bin/env bash
# demo.sh: two sites joined by isle in network namespaces (root). Builds the lab of scripts/topo.sh,
# shows it, and removes everything on any exit. The gateways' part (isle in PREFIXgl and PREFIXgr,
# ping and TCP through the tunnel) is filled in by the dataplane work.
set -euo pipefail
cd "$(dirname "$0")/.."
p=${DEMO_PREFIX:-demo}
[[ $(id -u) == 0 ]] || { echo "demo.sh needs root (network namespaces)" >&2; exit 1; }
cleanup() { ./scripts/topo.sh down "$p"; }
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
