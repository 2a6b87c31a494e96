#!/usr/bin/env bash
# bench.sh [SECONDS]: end-to-end throughput on the lab of scripts/topo.sh (root). For each system, on its own
# copy of the topology and all in one run so that the numbers compare (the machine is shared and noisy):
# one single-stream TCP iperf3 run host to host (hl → hr) and the ping RTT.
#   plain-routing     the gateways route without a tunnel: the ceiling of this topology
#   strongswan        Debian's charon with kernel-libipsec (userspace ESP, AES-GCM-128, ESP-in-UDP)
#   wireguard-go      the userspace Go tunnel to beat, built from the version go.mod pins
# The isle row is added with the gateway (function bench_isle). Needs: iproute2, nftables, iperf3,
# iputils-ping, python3, strongswan-charon strongswan-swanctl libcharon-extra-plugins
# libstrongswan-standard-plugins libstrongswan-extra-plugins, wireguard-tools, go (`make deps` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t=${1:-5}
[[ $(id -u) == 0 ]] || { echo "bench.sh needs root (network namespaces)" >&2; exit 1; }
work=$(mktemp -d /tmp/isle-bench.XXXXXX)
prefixes=()
cleanup() {
  local p
  for p in "${prefixes[@]}"; do ./scripts/topo.sh down "$p"; done  # also ends what runs inside
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab() { # PREFIX: a fresh topology, removed at exit
  prefixes+=("$1")
  ./scripts/topo.sh up "$1" >/dev/null
}

measure() { # PREFIX NAME
  local p=$1 name=$2 port=$((5201 + RANDOM % 500)) srv mbps rtt
  if ! ip netns exec "${p}hl" ping -c 3 -W 2 10.2.0.2 >/dev/null; then
    printf '%-16s %14s\n' "$name" "no connectivity"; return 0
  fi
  ip netns exec "${p}hr" iperf3 -s -1 -p $port >/dev/null 2>&1 & srv=$!
  sleep 0.5
  mbps=$(ip netns exec "${p}hl" iperf3 -c 10.2.0.2 -p $port -t "$t" -J |
    /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6,1))') || mbps=failed
  wait $srv || true
  rtt=$(ip netns exec "${p}hl" ping -c 20 -i 0.05 -q 10.2.0.2 | awk -F/ '/rtt/ {print $5}')
  printf '%-16s %10s Mbit/s   rtt %s ms\n' "$name" "$mbps" "$rtt"
}

bench_plain() {
  local p=benchp
  lab $p
  ip -n ${p}gl route add 10.2.0.0/24 via 198.18.0.2; ip -n ${p}gr route add 10.1.0.0/24 via 198.18.0.1
  measure $p plain-routing
}

# charon NS DIR LOCAL REMOTE LOCAL_TS REMOTE_TS ID PEER_ID PSK: a charon in NS with its own /run and state in DIR.
charon() {
  local ns=$1 d=$2 sub
  # swanctl looks for credentials in these, next to swanctl.conf.
  for sub in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$d/$sub"
  done
  cat >"$d/strongswan.conf" <<EOF
charon {
  load = random nonce kdf aes sha1 sha2 hmac gcm curve25519 chapoly x509 pubkey pem pkcs1 pkcs8 openssl kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = yes
  filelog { main { path = $d/charon.log
                   time_format = %H:%M:%S
                   default = 1 } }
  plugins { vici { socket = unix://$d/charon.vici }
            kernel-libipsec { allow_peer_ts = yes } }
}
EOF
  cat >"$d/swanctl.conf" <<EOF
connections { bench { version = 2
    local_addrs = $3
    remote_addrs = $4
    proposals = aes128gcm16-prfsha256-x25519
    local { auth = psk
            id = $7 }
    remote { auth = psk
             id = $8 }
    children { net { local_ts = $5
                     remote_ts = $6
                     esp_proposals = aes128gcm16 } } } }
secrets { ike-1 { id-1 = $7
                  id-2 = $8
                  secret = "$9" } }
EOF
  ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=$d/strongswan.conf exec /usr/lib/ipsec/charon" \
    >"$d/stdout" 2>&1 &
  for _ in $(seq 100); do [[ -S $d/charon.vici ]] && break; sleep 0.1; done
  STRONGSWAN_CONF=$d/strongswan.conf swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >/dev/null
}

bench_strongswan() {
  local p=benchs psk
  psk=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  lab $p
  charon ${p}gl "$work/ssl" 198.18.0.1 198.18.0.2 10.1.0.0/24 10.2.0.0/24 gw-left gw-right "$psk"
  charon ${p}gr "$work/ssr" 198.18.0.2 198.18.0.1 10.2.0.0/24 10.1.0.0/24 gw-right gw-left "$psk"
  if ! STRONGSWAN_CONF=$work/ssl/strongswan.conf swanctl --initiate --child net --timeout 20 \
      --uri "unix://$work/ssl/charon.vici" >"$work/ssl/initiate.log" 2>&1; then
    printf '%-16s %14s (see %s)\n' strongswan "no tunnel" "$work/ssl/charon.log"; return 0
  fi
  measure $p strongswan
}

bench_wireguard() {
  local p=benchw d=$work/wg
  lab $p
  mkdir -p "$d"
  # The version go.mod pins: no download beyond the module proxy's.
  go build -o "$d/wireguard-go" golang.zx2c4.com/wireguard
  (umask 077; wg genkey >"$d/l.key"; wg genkey >"$d/r.key")
  wg pubkey <"$d/l.key" >"$d/l.pub"; wg pubkey <"$d/r.key" >"$d/r.pub"
  ip netns exec ${p}gl env WG_PROCESS_FOREGROUND=1 "$d/wireguard-go" -f ${p}wg0 >"$d/l.log" 2>&1 &
  ip netns exec ${p}gr env WG_PROCESS_FOREGROUND=1 "$d/wireguard-go" -f ${p}wg1 >"$d/r.log" 2>&1 &
  for _ in $(seq 100); do
    ip -n ${p}gl link show ${p}wg0 >/dev/null 2>&1 && ip -n ${p}gr link show ${p}wg1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  ip netns exec ${p}gl wg set ${p}wg0 private-key "$d/l.key" listen-port 51820 \
    peer "$(cat "$d/r.pub")" endpoint 198.18.0.2:51820 allowed-ips 10.2.0.0/24
  ip netns exec ${p}gr wg set ${p}wg1 private-key "$d/r.key" listen-port 51820 \
    peer "$(cat "$d/l.pub")" endpoint 198.18.0.1:51820 allowed-ips 10.1.0.0/24
  ip -n ${p}gl link set ${p}wg0 up; ip -n ${p}gr link set ${p}wg1 up
  ip -n ${p}gl route add 10.2.0.0/24 dev ${p}wg0; ip -n ${p}gr route add 10.1.0.0/24 dev ${p}wg1
  measure $p wireguard-go
}

printf '%-16s %17s   %s\n' system "tcp (1 stream)" ping
bench_plain
bench_strongswan
bench_wireguard
