#!/usr/bin/env bash
# Failover of the reference appliance's two-node cluster (bench/reference/build.sh:
# corosync and Pacemaker, fencing off) under the verifying client, the way STAR's fault
# suite measures STAR's own (lab/faults.py, scenario kill-active), so that the two
# figures compare: the client's longest gap between two acknowledged writes, and whether
# an acknowledged write was lost.
#
#   bench/reference/failover.sh [RUNS]      (default 3; needs root)
#
# Each run: a fresh shared disk; ref1 and ref2 booted in the network namespace ref-lab as
# `smoke.sh cluster` boots them; once LUN 0 answers INQUIRY on the floating address,
# tests/verify-client.py writes through it from the namespace; after 10 s, kill -9 of the
# QEMU of the node that holds the floating address; once the other node answers INQUIRY
# there, 10 s more of writes; then the client reads everything back. Both VMs go at the
# end of each run.
#
# Prints one JSON line per run on stdout: the client's line (acked, lost, corrupt,
# unverified, max_gap_s, reconnects, errors, ...) plus "run", "killed" (ref1 or ref2) and
# "vip_back_s" (seconds from the kill until INQUIRY answered on the floating address
# again), "boot_to_serving_s" (from QEMU's start until the floating address first
# answered) and "memory_mib" (each node's MemTotal - MemAvailable once serving). Progress goes to stderr. Exits 0 when every run produced the client's line;
# otherwise stops at the failing run and exits non-zero saying why. bench/versus.py runs
# it with --reference-failover and reads "max_gap_s" from these lines.
#
# REF_BOOT_TIMEOUT: seconds to wait for the cluster to serve after the boot (default 600);
# REF_FAILOVER_TIMEOUT: seconds to wait for the survivor to serve after the kill (600).
set -euo pipefail

runs=${1:-3}
ref_prog="reference failover"
# shellcheck source=bench/reference/common.sh
. "$(dirname "$0")/common.sh"
# TCG is slow, a Debian boot slower still; Pacemaker starting the group on the survivor
# (targetcli runs several times per agent) took about a minute by hand.
boot_timeout=${REF_BOOT_TIMEOUT:-600}
failover_timeout=${REF_FAILOVER_TIMEOUT:-600}
# The client's writes before the kill and after the floating address answers again; the
# fault suite waits 3 s on each side, more here because every write is slower under TCG.
settle=10

case $runs in '' | *[!0-9]* | 0) die "usage: $0 [RUNS]   (RUNS a positive number, default 3)" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (network namespace $netns)"

url="iscsi://$vip:3260/$iqn/0"
in_ns=(ip netns exec "$netns")
stop_file=$work/client.stop
client_pid=

stop_client() {
  [ -n "$client_pid" ] || return 0
  kill "$client_pid" 2> /dev/null || true
  wait "$client_pid" 2> /dev/null || true
  client_pid=
}
ref_cleanup_extra() { stop_client; }

# vip_holder: the VM (ref1 or ref2) that holds the floating address. The namespace's
# neighbour entry for it, kept fresh by the client's traffic, holds the MAC of the eth0
# that answers ARP for it; the consoles (ip -br addr) when that gives no answer.
vip_holder() {
  local mac n
  mac=$(ip -n "$netns" neigh show "$vip" | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p')
  for n in 1 2; do
    [ "$mac" = "$(client_mac "$n")" ] && { echo "ref$n"; return 0; }
  done
  say "no neighbour entry for $vip with a known MAC (${mac:-none}); asking the consoles"
  for n in 1 2; do
    console "$work/ref$n.sock" "ip -br addr show eth0" 2> /dev/null | grep -qF " $vip/" &&
      { echo "ref$n"; return 0; }
  done
  return 1
}

# one_run I: boots, fails over, prints the run's JSON line.
one_run() {
  local i=$1 start secs victim survivor pid killed_at back line n mem1 mem2
  say "run $i/$runs: fresh shared disk; booting ref1 and ref2 (TCG) in namespace $netns"
  shared_disk
  lab_up
  start=$(date +%s.%N)
  boot_cluster
  secs=$(wait_inquiry "$url" "$start" "$boot_timeout" "$initiator2" ref1 ref2 -- "${in_ns[@]}")
  say "run $i: LUN 0 answers on $vip after $secs s; the client writes"
  # Each node's memory in use with the cluster serving, as the seed runs it.
  mem1=$(mem_in_use "$work/ref1.sock") || mem1=null
  mem2=$(mem_in_use "$work/ref2.sock") || mem2=null

  rm -f "$stop_file"
  "${in_ns[@]}" python3 "$root/tests/verify-client.py" --url "$url" --initiator "$initiator" \
    --stop-file "$stop_file" > "$work/client.out" 2> "$work/client.err" &
  client_pid=$!
  sleep "$settle"
  kill -0 "$client_pid" 2> /dev/null ||
    { tail -20 "$work/client.err" >&2; die "run $i: the verifying client exited before the kill"; }

  victim=$(vip_holder) || die "run $i: cannot tell which node holds $vip"
  if [ "$victim" = ref1 ]; then survivor=ref2; else survivor=ref1; fi
  pid=${vm_pid[$victim]}
  # ip netns exec execs its command, so the pid is QEMU's own, which the kill must hit.
  [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = qemu-system-x86 ] ||
    die "run $i: pid $pid of $victim is not QEMU ($(cat "/proc/$pid/comm" 2> /dev/null || echo gone))"
  say "run $i: $victim holds $vip; kill -9 of its QEMU (pid $pid)"
  killed_at=$(date +%s.%N)
  kill_vms KILL "$victim"
  back=$(wait_inquiry "$url" "$killed_at" "$failover_timeout" "$initiator2" "$survivor" -- "${in_ns[@]}")
  say "run $i: $survivor answers on $vip $back s after the kill; $settle s more of writes"
  sleep "$settle"

  : > "$stop_file"
  say "run $i: client stopping; it reads every acknowledged block back"
  # Its read-back gives up after 120 s without an answer; the rest is margin.
  for ((n = 0; n < 600; n++)); do
    kill -0 "$client_pid" 2> /dev/null || break
    sleep 0.5
  done
  kill -0 "$client_pid" 2> /dev/null && say "run $i: the client is still running after 300 s; stopping it"
  stop_client
  line=$(tail -1 "$work/client.out")
  python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r.update(run=int(sys.argv[2]), killed=sys.argv[3], vip_back_s=float(sys.argv[4]),
         boot_to_serving_s=float(sys.argv[5]),
         memory_mib={"ref1": json.loads(sys.argv[6]), "ref2": json.loads(sys.argv[7])})
print(json.dumps(r))' "$line" "$i" "$victim" "$back" "$secs" "$mem1" "$mem2" 2> /dev/null ||
    { tail -20 "$work/client.err" >&2; die "run $i: the verifying client printed no JSON line (its stderr above)"; }

  say "run $i: done; stopping $survivor"
  kill_vms TERM ref1 ref2
  lab_down
}

ref_prepare
for ((i = 1; i <= runs; i++)); do one_run "$i"; done
say "$runs run(s), each with the client's JSON line"
