#!/usr/bin/env bash
# bench.sh [-r ROUNDS] [SECONDS]: end-to-end throughput of isle against the userspace tunnels it competes
# with, each on its own copy of the lab of scripts/topo.sh (root), all in one run so that the numbers
# compare (the machine is shared and noisy). Every system is brought up first; then each round measures
# them one after the other, and the table shows each figure's median over the rounds.
#   plain-routing   the gateways route without a tunnel: the ceiling of this topology         (prefix bn)
#   isle-udp        isle, IKEv2 (PSK, aes128gcm16-prfsha256-x25519), ESP AES-GCM-128 in UDP on port 4500
#                   (testdata/bench/ike-udp-*.toml)                                        (biu)
#   isle-raw        the same over raw ESP, IP protocol 50 (testdata/bench/ike-raw-*.toml)  (bir)
#                   BENCH_MANUAL=1: statically keyed SAs instead (testdata/bench/esp-{udp,raw}-*.toml)
#   strongswan      Debian's charon with kernel-libipsec (userspace ESP, AES-GCM-128 in UDP)  (bs)
#   wireguard-go    the userspace Go tunnel to beat, built from the version go.mod pins       (bw)
# Host to host (hl → hr) through each: iperf3 TCP with 1 and 4 streams, iperf3 UDP at full speed
# (-b 0) with 64- and 1400-byte payloads (datagrams received per second, and the loss), ping RTT, and
# the CPU time the tunnel's processes (both gateways) spent per GB carried by the 1-stream TCP run
# (utime+stime from /proc/PID/stat). Then the ratios of isle to each comparator, and the Go
# microbenchmarks of ESP seal/open at 1420 bytes and of the dataplane's batch pipeline in memory.
# The table goes to stdout and, as Markdown, to $BENCH_OUT (default bin/bench-results.md).
# BENCH_ONLY="isle-udp wireguard-go" measures only those systems. ISLE_B=BINARY adds the rows isle-udp-B
# and isle-raw-B: another build of isle, measured in the same run, for A/B comparisons of a change. BENCH_PERF=DIR records a perf
# profile of each isle gateway during the 1-stream TCP run into DIR (needs perf; it sees the kernel's share
# too); BENCH_PPROF=DIR has each isle gateway write a Go CPU profile of the whole run there (ISLE_CPUPROFILE).
# Needs: iproute2, nftables, iperf3, iputils-ping, python3, strongswan-charon strongswan-swanctl
# libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins, wireguard-tools,
# go (`make deps` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=1
while getopts r: opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [SECONDS]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
t=${1:-5}
out=${BENCH_OUT:-bin/bench-results.md}
isle=${ISLE:-bin/isle}
[[ $(id -u) == 0 ]] || { echo "bench.sh needs root (network namespaces)" >&2; exit 1; }
py=/usr/bin/python3
work=$(mktemp -d /tmp/isle-bench.XXXXXX)
prefixes=()
cleanup() {
  local p
  for p in "${prefixes[@]}"; do ./scripts/topo.sh down "$p"; done # also ends what runs inside
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }

lab() { # PREFIX: a fresh topology, removed at exit
  prefixes+=("$1")
  ./scripts/topo.sh up "$1" >/dev/null
}

# Systems that came up: name → prefix, and name → the PIDs whose CPU time counts.
names=()
declare -A prefix_of pids_of
ready() { # NAME PREFIX [PID...]
  local name=$1 p=$2
  shift 2
  if ! ip netns exec "${p}hl" ping -c 3 -W 2 10.2.0.2 >/dev/null; then
    echo "$name: no connectivity through the tunnel; left out" >&2
    return 0
  fi
  names+=("$name")
  prefix_of[$name]=$p
  pids_of[$name]="$*"
  # One iperf3 server for the whole run.
  ip netns exec "${p}hr" iperf3 -s -p 5201 >/dev/null 2>&1 &
}

# cpu_ticks PID...: utime+stime of the processes (all their threads), in clock ticks.
cpu_ticks() {
  local pid sum=0 f
  for pid in "$@"; do
    # Fields after the ")" of the command name: state is $1, utime $12, stime $13.
    f=$(sed 's/.*) //' "/proc/$pid/stat")
    sum=$((sum + $(awk '{print $12 + $13}' <<<"$f")))
  done
  echo $sum
}

# iperf NAME ARGS...: one iperf3 client run from hl, its JSON in $work/NAME.json.
iperf() {
  local p=$1 file=$2
  shift 2
  ip netns exec "${p}hl" iperf3 -c 10.2.0.2 -p 5201 -t "$t" -J "$@" >"$file" 2>/dev/null || true
}

measure() { # NAME ROUND: one row of results appended to $work/results.jsonl
  local name=$1 r=$2 p=${prefix_of[$1]} pids=${pids_of[$1]} before after perfpid="" f=$work/$1.$2
  ip netns exec "${p}hl" ping -c 20 -i 0.05 -q 10.2.0.2 >"$f.ping" 2>&1 || true
  before=0
  # shellcheck disable=SC2086
  [[ -n $pids ]] && before=$(cpu_ticks $pids)
  if [[ -n ${BENCH_PERF:-} && $name == isle-* ]]; then
    mkdir -p "$BENCH_PERF"
    perf record -q -g -o "$BENCH_PERF/$name.$r.perf.data" -p "${pids// /,}" -- sleep "$t" >/dev/null 2>&1 &
    perfpid=$!
  fi
  iperf "$p" "$f.tcp1.json"
  after=0
  # shellcheck disable=SC2086
  [[ -n $pids ]] && after=$(cpu_ticks $pids)
  [[ -n $perfpid ]] && wait "$perfpid" || true
  iperf "$p" "$f.tcp4.json" -P 4
  iperf "$p" "$f.udp64.json" -u -b 0 -l 64
  iperf "$p" "$f.udp1400.json" -u -b 0 -l 1400
  $py - "$name" "$f" "${pids:+$((after - before))}" "$(getconf CLK_TCK)" >>"$work/results.jsonl" <<'PY'
import json, re, sys
name, f, ticks, hz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def load(kind):
    try:
        return json.load(open(f"{f}.{kind}.json"))["end"]
    except (OSError, ValueError, KeyError):
        return None
row = {"name": name}
for kind in ("tcp1", "tcp4"):
    e = load(kind)
    if e and "sum_received" not in e:
        e = None
    row[kind] = e["sum_received"]["bits_per_second"] / 1e6 if e else None
    if kind == "tcp1" and e and ticks:
        gb = e["sum_received"]["bytes"] / 1e9
        row["cpu_s_per_gb"] = int(ticks) / hz / gb if gb > 0 else None
for size in (64, 1400):
    e = load(f"udp{size}")
    if e and "sum_received" in e:
        rx, tx = e["sum_received"], e.get("sum_sent", {})
        got = rx["bytes"] / size
        row[f"udp{size}_pps"] = got / rx["seconds"] if rx["seconds"] else 0
        # Loss from what the client sent: iperf3's own figure counts gaps
        # in the sequence numbers received, which is 0 when none arrive.
        sent = tx.get("packets") or 0
        row[f"udp{size}_loss"] = 100 * (1 - got / sent) if sent else rx["lost_percent"]
m = re.search(r"= [\d.]+/([\d.]+)/", open(f + ".ping").read())
row["rtt_ms"] = float(m.group(1)) if m else None
print(json.dumps(row))
PY
}

bench_plain() {
  local p=bn
  lab $p
  ip -n ${p}gl route add 10.2.0.0/24 via 198.18.0.2; ip -n ${p}gr route add 10.1.0.0/24 via 198.18.0.1
  ready plain-routing $p
}

bench_isle() { # NAME PREFIX CONFIG [BINARY]: CONFIG-left.toml and CONFIG-right.toml in testdata/bench
  local name=$1 p=$2 conf=$3 bin=${4:-$isle} side ns pids=()
  lab "$p"
  # The right gateway first: the left one initiates IKE at startup.
  for side in right left; do
    ns=${p}gl; [[ $side == right ]] && ns=${p}gr
    # Each gateway gets its own control socket: both run on this one machine.
    sed "s|^interface = .*|&\ncontrol   = \"$work/$p-$side.sock\"|" "testdata/bench/$conf-$side.toml" >"$work/$p-$side.toml"
    ip netns exec "$ns" env ${BENCH_PPROF:+ISLE_CPUPROFILE=$BENCH_PPROF/$name-$side.pprof} \
      "$bin" run -c "$work/$p-$side.toml" >"$work/$p-$side.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [[ -S $work/$p-$side.sock ]] && break; sleep 0.1; done
  done
  for side in left right; do
    for _ in $(seq 150); do grep -q 'child SA installed' "$work/$p-$side.log" && break; sleep 0.1; done
    grep -q 'child SA installed' "$work/$p-$side.log" || { echo "$name ($side) did not start:" >&2; cat "$work/$p-$side.log" >&2; return 0; }
  done
  ready "$name" "$p" "${pids[@]}"
}

# charon NS DIR LOCAL REMOTE LOCAL_TS REMOTE_TS ID PEER_ID PSK: a charon in NS with its own /run and state in DIR.
charon_pid=
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
  # unshare and sh exec: the PID stays charon's.
  ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=$d/strongswan.conf exec /usr/lib/ipsec/charon" \
    >"$d/stdout" 2>&1 &
  charon_pid=$!
  for _ in $(seq 100); do [[ -S $d/charon.vici ]] && break; sleep 0.1; done
  STRONGSWAN_CONF=$d/strongswan.conf swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >/dev/null
}

bench_strongswan() {
  local p=bs psk pids=()
  psk=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  lab $p
  charon ${p}gl "$work/ssl" 198.18.0.1 198.18.0.2 10.1.0.0/24 10.2.0.0/24 gw-left gw-right "$psk"
  pids+=("$charon_pid")
  charon ${p}gr "$work/ssr" 198.18.0.2 198.18.0.1 10.2.0.0/24 10.1.0.0/24 gw-right gw-left "$psk"
  pids+=("$charon_pid")
  if ! STRONGSWAN_CONF=$work/ssl/strongswan.conf swanctl --initiate --child net --timeout 20 \
      --uri "unix://$work/ssl/charon.vici" >"$work/ssl/initiate.log" 2>&1; then
    echo "strongswan: no tunnel (see $work/ssl/charon.log)" >&2; return 0
  fi
  ready strongswan $p "${pids[@]}"
}

bench_wireguard() {
  local p=bw d=$work/wg pids=()
  lab $p
  mkdir -p "$d"
  # The version go.mod pins: no download beyond the module proxy's.
  go build -o "$d/wireguard-go" golang.zx2c4.com/wireguard
  (umask 077; wg genkey >"$d/l.key"; wg genkey >"$d/r.key")
  wg pubkey <"$d/l.key" >"$d/l.pub"; wg pubkey <"$d/r.key" >"$d/r.pub"
  ip netns exec ${p}gl env WG_PROCESS_FOREGROUND=1 "$d/wireguard-go" -f ${p}wg0 >"$d/l.log" 2>&1 &
  pids+=($!)
  ip netns exec ${p}gr env WG_PROCESS_FOREGROUND=1 "$d/wireguard-go" -f ${p}wg1 >"$d/r.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    ip -n ${p}gl link show ${p}wg0 >/dev/null 2>&1 && ip -n ${p}gr link show ${p}wg1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  ip netns exec ${p}gl wg set ${p}wg0 private-key "$d/l.key" listen-port 51820 \
    peer "$(cat "$d/r.pub")" endpoint 198.18.0.2:51820 allowed-ips 10.2.0.0/24
  ip netns exec ${p}gr wg set ${p}wg1 private-key "$d/r.key" listen-port 51820 \
    peer "$(cat "$d/l.pub")" endpoint 198.18.0.1:51820 allowed-ips 10.1.0.0/24
  # 1440, the most wireguard-go carries over IPv4 (as isle's bench configs).
  ip -n ${p}gl link set ${p}wg0 mtu 1440 up; ip -n ${p}gr link set ${p}wg1 mtu 1440 up
  ip -n ${p}gl route add 10.2.0.0/24 dev ${p}wg0; ip -n ${p}gr route add 10.1.0.0/24 dev ${p}wg1
  ready wireguard-go $p "${pids[@]}"
}

[[ -x $isle ]] || { echo "building $isle" >&2; go build -o "$isle" ./cmd/isle; }
[[ -z ${BENCH_PPROF:-} ]] || mkdir -p "$BENCH_PPROF"
want plain-routing && bench_plain
keying=ike; [[ -n ${BENCH_MANUAL:-} ]] && keying=esp
want isle-udp && bench_isle isle-udp biu $keying-udp
want isle-raw && bench_isle isle-raw bir $keying-raw
if [[ -n ${ISLE_B:-} ]]; then
  want isle-udp-B && bench_isle isle-udp-B bibu $keying-udp "$ISLE_B"
  want isle-raw-B && bench_isle isle-raw-B bibr $keying-raw "$ISLE_B"
fi
want strongswan && bench_strongswan
want wireguard-go && bench_wireguard
sleep 0.5 # the iperf3 servers
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    echo "round $r/$rounds: $n" >&2
    measure "$n" "$r"
  done
done

[[ $rounds != 1 ]] && cmd="scripts/bench.sh -r $rounds $t" || cmd="scripts/bench.sh $t"
mkdir -p "$(dirname "$out")"
$py - "$work/results.jsonl" "$cmd" "$t" "$rounds" "$(nproc)" "$(uname -r)" <<'PY' | tee "$out"
import json, statistics, sys
path, cmd, secs, rounds, cpus, kernel = sys.argv[1:]
rows = {}
for line in open(path):
    r = json.loads(line)
    rows.setdefault(r["name"], []).append(r)
keys = ["tcp1", "tcp4", "udp64_pps", "udp64_loss", "udp1400_pps", "udp1400_loss", "rtt_ms", "cpu_s_per_gb"]
med = {}
for name, rs in rows.items():
    med[name] = {}
    for k in keys:
        vs = [r[k] for r in rs if r.get(k) is not None]
        med[name][k] = statistics.median(vs) if vs else None

def num(v, fmt):
    return "—" if v is None else format(v, fmt)

print(f"`{cmd}` — iperf3 {secs} s per test, median of {rounds} round(s), {cpus} CPUs, Linux {kernel}\n")
print("| system | TCP 1 stream Mbit/s | TCP 4 streams Mbit/s | UDP 64 B kpps (loss) | UDP 1400 B kpps (loss) | ping ms | CPU s/GB |")
print("|---|--:|--:|--:|--:|--:|--:|")
for name, m in med.items():
    def udp(size):
        pps = m[f"udp{size}_pps"]
        return "—" if pps is None else f"{pps/1e3:.1f} ({m[f'udp{size}_loss']:.0f}%)"
    print(f"| {name} | {num(m['tcp1'], ',.0f')} | {num(m['tcp4'], ',.0f')} | {udp(64)} | {udp(1400)} "
          f"| {num(m['rtt_ms'], '.3f')} | {num(m['cpu_s_per_gb'], '.2f')} |")

isles = [n for n in med if n.startswith("isle")]
others = [n for n in med if n in ("strongswan", "wireguard-go")]
if isles and others:
    print("\nisle ÷ comparator (throughput, kpps: higher is better; ping, CPU s/GB: lower is better)\n")
    print("| isle ÷ | TCP 1 | TCP 4 | UDP 64 B | UDP 1400 B | ping | CPU s/GB |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    def ratio(a, b):
        return "—" if a is None or b in (None, 0) else f"{a/b:.2f}×"
    for i in isles:
        for o in others:
            a, b = med[i], med[o]
            print(f"| {i} ÷ {o} | " + " | ".join(ratio(a[k], b[k]) for k in
                  ("tcp1", "tcp4", "udp64_pps", "udp1400_pps", "rtt_ms", "cpu_s_per_gb")) + " |")
    best = max(isles, key=lambda n: med[n]["tcp1"] or 0)
    wg, ss = med.get("wireguard-go"), med.get("strongswan")
    goals = []
    if wg and wg["tcp1"]:
        goals.append(f"{med[best]['tcp1']/wg['tcp1']:.2f}× wireguard-go (target ≥ 1.0)")
    if ss and ss["tcp1"]:
        goals.append(f"{med[best]['tcp1']/ss['tcp1']:.1f}× strongSwan (target ≥ 15)")
    if goals:
        print(f"\nSingle-stream TCP, {best}: " + ", ".join(goals) + ".")
PY
echo "(table written to $out)" >&2

echo
echo "go test -run '^\$' -bench '^Benchmark(Seal|Open)\$/aes128gcm16/1420\$' -benchmem ./esp/"
go test -run '^$' -bench '^Benchmark(Seal|Open)$/aes128gcm16/1420$' -benchmem ./esp/ | grep -E '^Benchmark|^ok'
echo "go test -run '^\$' -bench '^BenchmarkPipeline\$/aes-gcm-128/' -benchmem ./internal/dataplane/"
go test -run '^$' -bench '^BenchmarkPipeline$/aes-gcm-128/' -benchmem ./internal/dataplane/ | grep -E '^Benchmark|^ok'
