# shellcheck shell=bash disable=SC2034
# What smoke.sh and failover.sh share to run the reference appliance (build.sh) under
# QEMU: the paths and names, the host tools, the shared disk, the VMs with their serial
# consoles, the cluster's network namespace, and the wait for LUN 0 to answer INQUIRY.
# One copy, so that the smoke test and the failover benchmark boot the very same setup.
#
# Sourced after the caller has set ref_prog (the prefix of its messages). Sourcing it
# installs the EXIT trap that kills the VMs, removes the namespace and the work directory;
# a caller with more to clean up defines ref_cleanup_extra, which runs first. (SC2034 is
# off: the names set here are read by the scripts that source the file.)

: "${ref_prog:?set ref_prog before sourcing common.sh}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
ref=$(realpath -m "${REF_OUT:-$root/out/reference}")
bins=$root/target/x86_64-unknown-linux-gnu/release
config=tests/configs/target-ctl.star.toml
iqn=iqn.2003-01.org.linux-iscsi.reference:data1
initiator=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
# The ACLs allow a second initiator: INQUIRY polls made while a client is logged in as
# the first one log in as this one, a nexus of their own that cannot disturb the client's.
initiator2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
netns="ref-lab"
vip=192.0.2.100

say() { echo "$ref_prog: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

work=$(mktemp -d /tmp/ref-"$ref_prog".XXXXXX)
declare -A vm_pid=() # VM name -> QEMU's pid
made_netns=
ref_cleanup() {
  local n
  if declare -F ref_cleanup_extra > /dev/null; then ref_cleanup_extra || true; fi
  for n in "${!vm_pid[@]}"; do kill "${vm_pid[$n]}" 2> /dev/null || true; done
  for n in "${!vm_pid[@]}"; do wait "${vm_pid[$n]}" 2> /dev/null || true; done
  vm_pid=()
  lab_down
  rm -rf "$work"
}
trap ref_cleanup EXIT
trap 'exit 130' INT TERM

# ref_prepare: the host tools, the appliance (build.sh when a file is missing) and STAR's
# static binaries (make static when `star` is missing; it makes the shared disk).
ref_prepare() {
  local need=() f
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
    make -C "$root" static > "$work/make-static.log" 2>&1 ||
      { tail -20 "$work/make-static.log" >&2; die "make static failed"; }
  fi
}

# shared_disk: a fresh $work/shared.raw, made as bench/target.sh makes it: partition
# star-lun-data1 is LUN data1.
shared_disk() {
  rm -f "$work/shared.raw"
  truncate -s 256M "$work/shared.raw"
  "$bins/star" disk init --disk "$work/shared.raw" --config "$config" > /dev/null
  "$bins/star" target promote --disk "$work/shared.raw" --node 1 > /dev/null
}

# vm NAME MODE-ARGS [PREFIX...]: boots one VM in the background (with the NICs in
# ${nics[@]}, PREFIX before qemu), its serial console on the Unix socket $work/NAME.sock
# and logged to $work/NAME.log; vm_pid[NAME] is QEMU's pid (ip netns exec execs it).
# The guest finds its root by label: QEMU puts the -device disk on the bus before the
# if=virtio one, so the shared disk is vda and the root vdb.
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
  vm_pid[$name]=$!
}

# kill_vms SIGNAL NAME...: sends SIGNAL to the named VMs' QEMU and reaps them.
kill_vms() {
  local sig=$1 n
  shift
  for n in "$@"; do
    if [ -n "${vm_pid[$n]:-}" ]; then kill -"$sig" "${vm_pid[$n]}" 2> /dev/null || true; fi
  done
  for n in "$@"; do
    if [ -n "${vm_pid[$n]:-}" ]; then wait "${vm_pid[$n]}" 2> /dev/null || true; fi
    unset "vm_pid[$n]"
  done
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
  local n i alive typing=()
  for n in "$@"; do
    console "$work/$n.sock" --poweroff > /dev/null 2>&1 &
    typing+=($!)
  done
  for ((i = 0; i < 120; i++)); do
    alive=0
    for n in "$@"; do kill -0 "${vm_pid[$n]}" 2> /dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  [ $alive = 0 ] || say "the VMs did not power off in 60 s; killing them"
  kill_vms TERM "$@"
  for i in "${typing[@]}"; do wait "$i" 2> /dev/null || true; done
}

elapsed() { # START (date +%s.%N): seconds since then, one decimal
  python3 -c 'import sys,time; print("%.1f" % (time.time() - float(sys.argv[1])))' "$1"
}

# wait_inquiry URL START LIMIT INITIATOR NAME... [-- PREFIX...]: polls INQUIRY every
# 0.2 s as INITIATOR (PREFIX before iscsi-inq); prints the seconds since START when it
# answers. Fails when one of the named VMs exits or LIMIT seconds have passed since START.
wait_inquiry() {
  local url=$1 start=$2 limit=$3 who=$4
  shift 4
  local names=() run=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; run=("$@"); }
  local n
  while :; do
    # LUN 0 must be the backstore: a target without it still answers INQUIRY for LUN 0,
    # from LIO's placeholder device, with the qualifier "not connected".
    if "${run[@]}" timeout 5 iscsi-inq -i "$who" "$url" > "$work/inq.out" 2>&1 &&
      grep -Eq 'Qualifier: *CONNECTED' "$work/inq.out"; then
      elapsed "$start"
      return 0
    fi
    for n in "${names[@]}"; do
      kill -0 "${vm_pid[$n]}" 2> /dev/null && continue
      tail -40 "$work/$n.log" >&2 2> /dev/null || true
      die "VM $n exited before the target answered"
    done
    if python3 -c 'import sys,time; sys.exit(time.time() - float(sys.argv[1]) < float(sys.argv[2]))' "$start" "$limit"; then
      for n in "${names[@]}"; do
        say "console of $n (last lines):"
        tail -40 "$work/$n.log" >&2 2> /dev/null || true
      done
      say "last iscsi-inq: $(tail -3 "$work/inq.out")"
      die "no INQUIRY answer from $url within $limit s"
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

# lab_up: the network namespace with the client network (bridge br-client,
# 192.0.2.0/24, the namespace is 192.0.2.1) and the interconnect (br-ic,
# 198.51.100.0/24), a tap per node on each, as lab/lab.sh lays out STAR's lab.
lab_up() {
  [ "$(id -u)" = 0 ] || die "cluster mode needs root (network namespace $netns)"
  ip netns add "$netns" 2> /dev/null || die "network namespace $netns exists (another run?): ip netns del $netns"
  made_netns=1
  local x="ip -n $netns" br n
  $x link set lo up
  for br in br-client br-ic; do
    $x link add "$br" type bridge
    # No STP delay: a port forwards as soon as it is up.
    $x link set "$br" type bridge forward_delay 0
    $x link set "$br" up
  done
  $x addr add 192.0.2.1/24 dev br-client
  for n in 1 2; do
    $x tuntap add dev "ref$n-c" mode tap
    $x link set "ref$n-c" master br-client up
    $x tuntap add dev "ref$n-i" mode tap
    $x link set "ref$n-i" master br-ic up
  done
}

lab_down() {
  if [ -n "$made_netns" ]; then ip netns del "$netns" 2> /dev/null || true; fi
  made_netns=
}

# Fixed MACs: node N's client NIC (eth0) and interconnect NIC (eth1). Whoever holds the
# floating address answers ARP for it with its eth0's MAC.
client_mac() { echo "52:54:00:4e:0$1:00"; }
ic_mac() { echo "52:54:00:4e:0$1:01"; }

# boot_cluster: boots ref1 and ref2 (reference.mode=cluster reference.node=N) in the
# namespace, on $work/shared.raw.
boot_cluster() {
  local n
  for n in 1 2; do
    nics=(-netdev "tap,id=c,ifname=ref$n-c,script=no,downscript=no" -device "virtio-net-pci,netdev=c,mac=$(client_mac "$n")"
      -netdev "tap,id=i,ifname=ref$n-i,script=no,downscript=no" -device "virtio-net-pci,netdev=i,mac=$(ic_mac "$n")")
    vm "ref$n" "reference.mode=cluster reference.node=$n" ip netns exec "$netns"
  done
}
