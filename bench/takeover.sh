#!/usr/bin/env bash
# The floating address, method arp, in network namespaces: two controllers (ctl1, ctl2)
# and a client on one bridge, star-takeover's service in each controller, as
# star-heartbeat drives it (one JSON line on the socket). N times per address family:
#
#   - acquire: from sending {"cmd":"acquire"} to the reply, with star.toml's default
#     announcements (5 at 200 ms: acquire returns after the first burst), and the same
#     for the one-shot command (`star-takeover acquire`, process start to exit);
#   - the move: the client pings the address every 10 ms while ctl1 releases and ctl2
#     acquires; the outage is the longest time without a reply, and "acquire -> reply" is
#     from sending ctl2 its acquire to the first reply after it.
#
# Then the AWS methods' numbers from bench/takeover-aws.sh, when it is there. Writes
# bench/results/takeover.txt. Needs root, iproute2, socat and ping (iputils-ping).
#
#   bench/takeover.sh [N]        (default N=10; each run takes about 3 s)
set -euo pipefail
N=${1:-10}
cd "$(dirname "$0")/.."
out=bench/results/takeover.txt
mkdir -p bench/results
for tool in ip socat ping awk; do
  command -v "$tool" >/dev/null || { echo "bench/takeover.sh: needs $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench/takeover.sh: needs root (network namespaces)" >&2; exit 1; }

# The static release binary of `make static` if there is one, else a release build.
BIN=target/x86_64-unknown-linux-gnu/release/star-takeover
if [ ! -x "$BIN" ]; then
  cargo build -q --release -p star-takeover
  BIN=target/release/star-takeover
fi
BIN=$(realpath "$BIN")

P=stkb-$$
work=$(mktemp -d /tmp/star-takeover-bench.XXXXXX)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  for n in switch ctl1 ctl2 client; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
range() { sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR) printf "%s..%s", lo, hi}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

lab() { # $1 = 4 or 6
  local own floating
  for n in switch ctl1 ctl2 client; do ip netns add "$P-$n"; done
  ip -n "$P-switch" link add br0 type bridge
  ip -n "$P-switch" link set br0 type bridge mcast_snooping 0
  ip -n "$P-switch" link set br0 up
  local host=11
  for n in ctl1 ctl2 client; do
    ip -n "$P-switch" link add "$n" type veth peer name eth0 netns "$P-$n"
    ip -n "$P-switch" link set "$n" master br0 up
    ip -n "$P-$n" link set lo up
    ip -n "$P-$n" link set eth0 up
    case $n in ctl1) host=11 ;; ctl2) host=12 ;; client) host=50 ;; esac
    if [ "$1" = 4 ]; then
      ip -n "$P-$n" addr add "192.0.2.$host/24" dev eth0
    else
      ip -n "$P-$n" addr add "2001:db8::$host/64" dev eth0 nodad
    fi
  done
  if [ "$1" = 4 ]; then floating=192.0.2.100/24; else floating=2001:db8::100/64; fi
  for id in 1 2; do
    if [ "$1" = 4 ]; then own=192.0.2.1$id/24; else own=2001:db8::1$id/64; fi
    cat > "$work/ctl$id.toml" <<EOF
version = 1
[array]
name = "bench"
[node]
name = "ctl$id"
id = $id
role = "controller"
[[interface]]
name = "eth0"
purpose = "client"
address = "$own"
[[interface]]
name = "eth1"
purpose = "interconnect"
address = "198.51.100.$id/24"
[floating]
address = "$floating"
method = "arp"
[witness]
url = "http://198.51.100.3:7400"
[cluster]
key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
EOF
    ip netns exec "$P-ctl$id" "$BIN" --config "$work/ctl$id.toml" --socket "$work/ctl$id.sock" \
      > "$work/ctl$id.log" 2>&1 &
  done
  for id in 1 2; do
    for _ in $(seq 1 200); do [ -S "$work/ctl$id.sock" ] && break; sleep 0.01; done
    [ -S "$work/ctl$id.sock" ] || { echo "bench/takeover.sh: ctl$id never listened" >&2; cat "$work/ctl$id.log" >&2; exit 1; }
  done
  sleep 1 # carrier on every port
}

unlab() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  for n in switch ctl1 ctl2 client; do ip netns del "$P-$n" 2>/dev/null || true; done
}

ask() { # $1 = ctl1|ctl2, $2 = cmd: prints the reply, fails unless it is done
  local reply
  reply=$(echo "{\"cmd\":\"$2\"}" | socat -t 30 - "UNIX-CONNECT:$work/$1.sock")
  case $reply in *'"reply":"done"'*) ;; *) echo "bench/takeover.sh: $1 $2: $reply" >&2; exit 1 ;; esac
}

family() { # $1 = 4 or 6
  local floating acquire=() release=() oneshot=() outage=() recovery=() i t0 t1 log gap first
  if [ "$1" = 4 ]; then floating=192.0.2.100; else floating=2001:db8::100; fi
  lab "$1"
  ask ctl1 acquire
  i=0
  while [ "$i" -lt "$N" ]; do
    i=$((i + 1))
    log=$work/ping-$1-$i.log
    # -D: a timestamp on every reply; the interval is the client's probe rate.
    ip netns exec "$P-client" ping -"$1" -D -n -i 0.01 "$floating" > "$log" 2>/dev/null &
    local pinger=$!
    sleep 0.5
    # The switchover star-heartbeat orders: the old active releases, the new acquires.
    t0=$(date +%s%N)
    ask ctl1 release
    t1=$(date +%s%N)
    release+=($(( (t1 - t0) / 1000000 )))
    t0=$(date +%s%N)
    ask ctl2 acquire
    t1=$(date +%s%N)
    acquire+=($(( (t1 - t0) / 1000000 )))
    sleep 1
    kill "$pinger"; wait "$pinger" 2>/dev/null || true
    # Longest silence among replies, and the first reply after ctl2's acquire began.
    read -r gap first < <(awk -v t0="$t0" -F'[][]' '/bytes from/ {
        t = $2 * 1000
        if (prev && t - prev > gap) gap = t - prev
        prev = t
        if (!first && t * 1000000 >= t0) first = t - t0 / 1000000
      } END { printf "%d %d\n", gap, first }' "$log")
    outage+=("$gap"); recovery+=("$first")
    # Back to ctl1 for the next run, and one one-shot acquire timed on the way.
    ask ctl2 release
    t0=$(date +%s%N)
    ip netns exec "$P-ctl1" "$BIN" --config "$work/ctl1.toml" acquire > /dev/null
    t1=$(date +%s%N)
    oneshot+=($(( (t1 - t0) / 1000000 )))
    ask ctl1 acquire # the service's view again (the one-shot already holds it)
    sleep 0.2
  done
  local mac1 neigh
  mac1=$(ip -n "$P-ctl1" -j link show eth0 | sed -n 's/.*"address":"\([^"]*\)".*/\1/p')
  neigh=$(ip -n "$P-client" neigh show "$floating" dev eth0)
  case $neigh in *"lladdr $mac1 "*) neigh="$neigh(ctl1's MAC, as it should be)" ;;
    *) neigh="$neigh(NOT ctl1's MAC $mac1)" ;; esac
  echo
  echo "## IPv$1 ($floating/$([ "$1" = 4 ] && echo 24 || echo 64)), N=$N"
  echo "acquire over the socket:   median $(printf '%s\n' "${acquire[@]}" | median) ms  (range $(printf '%s\n' "${acquire[@]}" | range) ms)"
  echo "release over the socket:   median $(printf '%s\n' "${release[@]}" | median) ms  (range $(printf '%s\n' "${release[@]}" | range) ms)"
  echo "acquire, one-shot command: median $(printf '%s\n' "${oneshot[@]}" | median) ms  (range $(printf '%s\n' "${oneshot[@]}" | range) ms)"
  echo "client outage (ping every 10 ms, release + acquire): median $(printf '%s\n' "${outage[@]}" | median) ms  (range $(printf '%s\n' "${outage[@]}" | range) ms)"
  echo "ctl2 acquire sent -> first reply at the client:      median $(printf '%s\n' "${recovery[@]}" | median) ms  (range $(printf '%s\n' "${recovery[@]}" | range) ms)"
  echo "runs (outage ms): ${outage[*]}"
  echo "client's entry at the end (the last move went to ctl1): $neigh"
  unlab
}

{
  echo "# star-takeover, method arp, in network namespaces ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) cores)"
  echo "# star.toml defaults: garp_count 5, garp_interval_ms 200, garp_repeat_after_ms 5000."
  echo "# acquire returns after the first burst, (5 - 1) x 200 ms = 800 ms of it; the client"
  echo "# moves at its first packet, so the outage is release + acquire's netlink work +"
  echo "# one packet, not the burst."
  family 4
  family 6

  # ---- AWS methods: bench/takeover-aws.sh's results, appended here as it prints them ----
  echo
  echo "## AWS methods"
  if [ -x bench/takeover-aws.sh ]; then
    bench/takeover-aws.sh || echo "bench/takeover-aws.sh failed (exit $?)"
  else
    echo "not measured: bench/takeover-aws.sh is not in this tree yet"
  fi
} > "$out"
cat "$out"
