#!/usr/bin/env bash
# Smoke test of the reference appliance (bench/reference/build.sh): boots it under QEMU
# with a fresh shared disk made the way bench/target.sh makes it, and checks that it
# serves LUN 0 of iqn.2003-01.org.linux-iscsi.reference:data1 to the libiscsi test
# initiator. Prints the seconds from QEMU's start to the first INQUIRY answer, the memory
# in use (MemTotal - MemAvailable, read on the serial console) and root.raw's size.
#
#   bench/reference/smoke.sh [single|cluster|both]     (default both)
#
# single:  one VM, reference.mode=single, the portal forwarded from QEMU's user network
#          to 127.0.0.1:PORT on the host.
# cluster: two VMs, reference.mode=cluster, in the network namespace ref-lab with the
#          client network (bridge br-client, 192.0.2.0/24, the namespace is 192.0.2.1)
#          and the interconnect (br-ic, 198.51.100.0/24), as lab/lab.sh lays out STAR's
#          lab; the INQUIRY goes from the namespace to the floating address 192.0.2.100.
#          Needs root.
#
# Builds the appliance (REF_OUT, default out/reference) when it is missing, and STAR's
# static binaries (make static) when `star` is missing. Exits non-zero on a failure.
# REF_SMOKE_TIMEOUT: seconds to wait for the first answer (default 600); REF_SMOKE_HOLD:
# seconds to keep the VMs running after the checks, to look at them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
what=${1:-both}
ref=$(realpath -m "${REF_OUT:-$root/out/reference}")
bins=$root/target/x86_64-unknown-linux-gnu/release
config=tests/configs/target-ctl.star.toml
iqn=iqn.2003-01.org.linux-iscsi.reference:data1
initiator=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
netns="ref-lab"
# Seconds to wait for the first INQUIRY answer: TCG is slow, a Debian boot slower still.
timeout=${REF_SMOKE_TIMEOUT:-600}

say() { echo "reference smoke: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

case $what in single | cluster | both) ;; *) die "usage: $0 [single|cluster|both]" ;; esac

work=$(mktemp -d /tmp/ref-smoke.XXXXXX)
pids=()
made_netns=
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  if [ -n "$made_netns" ]; then ip netns del "$netns" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v qemu-system-x86_64 > /dev/null || need+=(qemu-system-x86)
command -v iscsi-inq > /dev/null || need+=(libiscsi-bin)
command -v python3 > /dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" > /dev/null ||
    die "cannot install ${need[*]}"
fi
for f in vmlinuz initrd.img root.raw cmdline; do
  [ -f "$ref/$f" ] && continue
  say "no $ref/$f: building the reference appliance"
  "$root/bench/reference/build.sh" "$ref"
  break
done
if [ ! -x "$bins/star" ]; then
  say "no $bins/star: make static (a few minutes)"
  make -C "$root" static > "$work/make-static.log" 2>&1 || { tail -20 "$work/make-static.log" >&2; die "make static failed"; }
fi

# The shared disk, as bench/target.sh makes it: partition star-lun-data1 is LUN data1.
truncate -s 256M "$work/shared.raw"
"$bins/star" disk init --disk "$work/shared.raw" --config "$config" > /dev/null
"$bins/star" target promote --disk "$work/shared.raw" --node 1 > /dev/null

# vm NAME MODE-ARGS [PREFIX...]: boots one VM in the background (with the NICs in
# ${nics[@]}, PREFIX before qemu), its serial console on the Unix socket $work/NAME.sock
# and logged to $work/NAME.log. The guest finds its root by label: QEMU puts the -device
# disk on the bus before the if=virtio one, so the shared disk is vda and the root vdb.
vm() {
  local name=$1 args=$2
  shift 2
  "$@" qemu-system-x86_64 -name "ref-$name" -machine q35 -m 512 -smp 1 -accel tcg \
    -display none -no-reboot -monitor none \
    -kernel "$ref/vmlinuz" -initrd "$ref/initrd.img" -append "$(cat "$ref/cmdline") $args" \
    -drive "file=$ref/root.raw,format=raw,if=virtio,snapshot=on" \
    -drive "file=$work/shared.raw,format=raw,if=none,id=shared,cache=none,aio=threads,file.locking=off" \
    -device virtio-blk-pci,drive=shared,share-rw=on,serial=shared0001 \
    -chardev "socket,id=console,path=$work/$name.sock,server=on,wait=off,logfile=$work/$name.log" \
    -serial chardev:console \
    "${nics[@]}" > "$work/$name.qemu.log" 2>&1 &
  pids+=($!)
}

# console SOCKET COMMAND: runs COMMAND in the root shell on a serial console (the
# appliance logs root in there) and prints its output. Reads everything the console
# sends, so that QEMU is never held back by an unread socket.
# console SOCKET --poweroff: types poweroff and stays until QEMU closes the socket: bytes
# still queued for the guest when a client disconnects are dropped.
console() {
  python3 - "$@" << 'EOF'
import socket, sys, time

path, command = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.settimeout(0.5)
seen = b""

def read_until(needle, seconds):
    global seen
    end = time.time() + seconds
    while time.time() < end:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        seen += data
        if needle in seen:
            return True
    return False

# A prompt first: the login may still be on its way.
for _ in range(60):
    s.sendall(b"\r")
    if read_until(b"# ", 2):
        break
else:
    sys.exit("no shell prompt on the console:\n" + seen[-500:].decode(errors="replace"))
if command == "--poweroff":
    s.sendall(b"poweroff\r")
    read_until(b"\0never", 60)
    sys.exit(0)
# The markers are split in the typed line, so only the command's output joins them.
seen = b""
s.sendall(b"echo '=='BEGIN; " + command.encode() + b"; echo '=='END\r")
if not read_until(b"==END", 60):
    sys.exit("no answer on the console:\n" + seen[-500:].decode(errors="replace"))
text = seen.decode(errors="replace").replace("\r", "")
print(text.split("==BEGIN\n", 1)[-1].split("==END", 1)[0], end="")
EOF
}

mem_in_use() { # SOCKET: MemTotal - MemAvailable in MiB
  console "$1" "cat /proc/meminfo" |
    awk '/^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} END {if (t && a) printf "%.1f\n", (t - a) / 1024; else exit 1}'
}

# poweroff_vms NAME...: types poweroff on each console, waits up to 60 s for the VMs to
# go, kills what is left.
poweroff_vms() {
  local n p i alive
  for n in "$@"; do console "$work/$n.sock" --poweroff > /dev/null 2>&1 & done
  for ((i = 0; i < 120; i++)); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  [ $alive = 0 ] || say "the VMs did not power off in 60 s; killing them"
  for p in "${pids[@]}"; do
    kill "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
  pids=()
  wait
}

# wait_inquiry URL START NAME... [-- PREFIX...]: polls INQUIRY every 0.2 s; prints the
# seconds since START when it answers. Fails when a VM exits or the time is up.
wait_inquiry() {
  local url=$1 start=$2
  shift 2
  local names=() run=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; run=("$@"); }
  local p n
  while :; do
    # LUN 0 must be the backstore: a target without it still answers INQUIRY for LUN 0,
    # from LIO's placeholder device, with the qualifier "not connected".
    if "${run[@]}" timeout 5 iscsi-inq -i "$initiator" "$url" > "$work/inq.out" 2>&1 &&
      grep -Eq 'Qualifier: *CONNECTED' "$work/inq.out"; then
      python3 -c 'import sys,time; print("%.1f" % (time.time() - float(sys.argv[1])))' "$start"
      return 0
    fi
    for p in "${pids[@]}"; do
      kill -0 "$p" 2> /dev/null && continue
      for n in "${names[@]}"; do tail -40 "$work/$n.log" >&2 2> /dev/null || true; done
      die "a VM exited before the target answered"
    done
    if python3 -c 'import sys,time; sys.exit(time.time() - float(sys.argv[1]) < float(sys.argv[2]))' "$start" "$timeout"; then
      for n in "${names[@]}"; do
        say "console of $n (last lines):"
        tail -40 "$work/$n.log" >&2 2> /dev/null || true
      done
      say "last iscsi-inq: $(tail -3 "$work/inq.out")"
      die "no INQUIRY answer from $url within $timeout s"
    fi
    sleep 0.2
  done
}

# hold NAME...: with REF_SMOKE_HOLD=SECONDS, leaves the VMs running that long for a look
# at their consoles (socat -,raw,echo=0 UNIX-CONNECT:SOCKET).
hold() {
  [ -n "${REF_SMOKE_HOLD:-}" ] || return 0
  local n
  for n in "$@"; do say "holding for $REF_SMOKE_HOLD s: console of $n: $work/$n.sock (log $work/$n.log)"; done
  # In the background, so that a signal ends the wait (and the trap cleans up) at once.
  sleep "$REF_SMOKE_HOLD" &
  wait $!
}

report_disk() {
  local apparent allocated
  apparent=$(stat -c %s "$ref/root.raw")
  allocated=$(($(stat -c '%b * %B' "$ref/root.raw")))
  echo "root.raw: $((apparent / 1048576)) MiB apparent, $((allocated / 1048576)) MiB allocated"
}

smoke_single() {
  local port start secs mem
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nics=(-nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:3260")
  say "single: booting (TCG), portal forwarded to 127.0.0.1:$port"
  start=$(date +%s.%N)
  vm single "reference.mode=single"
  secs=$(wait_inquiry "iscsi://127.0.0.1:$port/$iqn/0" "$start" single)
  grep -q "Vendor\|Product" "$work/inq.out" || { cat "$work/inq.out" >&2; die "iscsi-inq answered without an identity"; }
  mem=$(mem_in_use "$work/single.sock") || die "cannot read /proc/meminfo on the console"
  grep -qa "reference: serving" "$work/single.log" || say "note: no 'reference: serving' line on the console"
  hold single
  poweroff_vms single
  echo "single: boot to serving (first INQUIRY answer): $secs s"
  echo "single: memory in use (MemTotal - MemAvailable): $mem MiB"
  sed -n 's/^ *\(Vendor\|Product\).*/single: INQUIRY &/p' "$work/inq.out" | sed 's/  */ /g'
}

smoke_cluster() {
  [ "$(id -u)" = 0 ] || die "cluster mode needs root (network namespace $netns)"
  ip netns add "$netns" 2> /dev/null || die "network namespace $netns exists (another run?): ip netns del $netns"
  made_netns=1
  local x="ip -n $netns"
  $x link set lo up
  for br in br-client br-ic; do
    $x link add "$br" type bridge
    # No STP delay: a port forwards as soon as it is up.
    $x link set "$br" type bridge forward_delay 0
    $x link set "$br" up
  done
  $x addr add 192.0.2.1/24 dev br-client
  local n
  for n in 1 2; do
    $x tuntap add dev "ref$n-c" mode tap
    $x link set "ref$n-c" master br-client up
    $x tuntap add dev "ref$n-i" mode tap
    $x link set "ref$n-i" master br-ic up
  done
  local start secs mem1 mem2
  say "cluster: booting ref1 and ref2 (TCG) in namespace $netns"
  start=$(date +%s.%N)
  for n in 1 2; do
    nics=(-netdev "tap,id=c,ifname=ref$n-c,script=no,downscript=no" -device "virtio-net-pci,netdev=c,mac=52:54:00:4e:0$n:00"
      -netdev "tap,id=i,ifname=ref$n-i,script=no,downscript=no" -device "virtio-net-pci,netdev=i,mac=52:54:00:4e:0$n:01")
    vm "ref$n" "reference.mode=cluster reference.node=$n" ip netns exec "$netns"
  done
  secs=$(wait_inquiry "iscsi://192.0.2.100:3260/$iqn/0" "$start" ref1 ref2 -- ip netns exec "$netns")
  grep -q "Vendor\|Product" "$work/inq.out" || { cat "$work/inq.out" >&2; die "iscsi-inq answered without an identity"; }
  mem1=$(mem_in_use "$work/ref1.sock") || die "cannot read /proc/meminfo on ref1's console"
  mem2=$(mem_in_use "$work/ref2.sock") || die "cannot read /proc/meminfo on ref2's console"
  console "$work/ref1.sock" "crm_mon -1 -r 2>&1 | sed -n '/Full List of Resources/,\$p'" > "$work/crm_mon.txt" || true
  hold ref1 ref2
  poweroff_vms ref1 ref2
  echo "cluster: boot to serving on the floating address (first INQUIRY answer): $secs s"
  echo "cluster: memory in use (MemTotal - MemAvailable): ref1 $mem1 MiB, ref2 $mem2 MiB"
  sed 's/^/cluster: /' "$work/crm_mon.txt"
}

case $what in
  single) smoke_single ;;
  cluster) smoke_cluster ;;
  both) smoke_single && smoke_cluster ;;
esac
report_disk
