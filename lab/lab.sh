#!/usr/bin/env bash
# The two-controller lab: a witness and two controllers booted from the qemu image under
# QEMU, one shared disk file, and two networks in a network namespace of their own.
#
#   lab/lab.sh run    build, boot, print how to connect, wait for Ctrl-C, clean up (make lab)
#   lab/lab.sh up     the same in the background; writes out/lab/lab.env     (make lab-up)
#   lab/lab.sh down   stop everything `up` started and remove what it created (make lab-down)
#   lab/lab.sh boot NODE   boot one node again (after a crash or a kill), as `up` did
#
# Networks (inside the namespace star-lab; nothing reaches the host's own networks):
#
#   br-client 192.0.2.0/24       clients (the namespace itself, 192.0.2.1), ctl1 .11, ctl2 .12,
#                                the floating address .100
#   br-ic     198.51.100.0/24    interconnect: ctl1 .11, ctl2 .12, witness .3
#
# Run clients inside it: `ip netns exec star-lab iscsi-ls ...`, or source out/lab/lab.env
# and use $LAB_NETNS. Each serial console is a Unix socket (out/lab/NODE.console; connect
# with `socat -,raw,echo=0 UNIX-CONNECT:out/lab/ctl1.console`) and is also logged to
# out/lab/NODE.log. Environment: LAB_OUT (default out/lab), LAB_NETNS (default star-lab),
# LAB_ACCEL (kvm or tcg; default: kvm if a probe boot under it powers off in time, else
# tcg), LAB_MEM (MiB per VM, default 512).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${LAB_OUT:-$root/out/lab}")
# star-image finds board/ from the working directory.
cd "$root"
bins=$root/target/x86_64-unknown-linux-gnu/release
netns=${LAB_NETNS:-star-lab}
accel=${LAB_ACCEL:-}
mem=${LAB_MEM:-512}
nodes=(witness ctl1 ctl2)

say() { echo "lab: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Rootless: `run` re-executes itself in a user and network namespace of its own
# (unshare -Urn), where it may make bridges and taps; the lab then lives as long as that
# process, and clients join it with nsenter. `up` and `down` need root (a named netns).
inside=${LAB_INSIDE:-}
need_root() {
  [ "$(id -u)" = 0 ] && return
  die "lab/lab.sh $1 needs root for the named network namespace $netns (run it with sudo),
     or run the lab in the foreground without root: lab/lab.sh run (make lab)"
}

# ip and commands in the lab's network namespace: the named one, or (rootless) our own.
nip() { if [ -n "$inside" ]; then ip "$@"; else ip -n "$netns" "$@"; fi; }
inns() { if [ -n "$inside" ]; then "$@"; else ip netns exec "$netns" "$@"; fi; }

config_of() { echo "$root/board/examples/lab-$1.star.toml"; }

# Values from the lab's star.toml files, so that the printout cannot drift from them.
toml_value() { # FILE KEY  (the first `KEY = "value"` or `KEY = value` line)
  sed -n "s/^$2 *= *\"\\{0,1\\}\\([^\"#]*\\)\"\\{0,1\\}.*/\\1/p" "$1" | head -1 | sed 's/ *$//'
}

build() {
  for b in star star-image star-init star-heartbeat star-target star-takeover star-witness; do
    [ -x "$bins/$b" ] || die "$bins/$b missing: run 'make static' (make lab does)"
  done
  mkdir -p "$out"
  for n in "${nodes[@]}"; do
    say "building the image of $n"
    "$bins/star-image" build --board qemu --config "$(config_of "$n")" --out "$out/image-$n" \
      --bin-dir "$bins" --cache "$root/.cache" > "$out/image-$n.build.log" 2>&1 ||
      { cat "$out/image-$n.build.log" >&2; die "image build of $n failed"; }
  done
  say "creating the shared disk (1 GiB) with the LUNs and hosts of lab-ctl1.star.toml"
  rm -f "$out/shared.raw"
  truncate -s 1G "$out/shared.raw"
  "$bins/star" disk init --disk "$out/shared.raw" --config "$(config_of ctl1)" > "$out/disk-init.log"
}

network() {
  if [ -z "$inside" ]; then
    ip netns add "$netns" 2>/dev/null || die "network namespace $netns exists: run 'lab/lab.sh down' first"
  fi
  local x=nip
  $x link set lo up
  $x link add br-client type bridge
  $x link add br-ic type bridge
  # No STP delay: a port forwards as soon as it is up.
  $x link set br-client type bridge forward_delay 0
  $x link set br-ic type bridge forward_delay 0
  $x addr add 192.0.2.1/24 dev br-client
  $x link set br-client up
  $x link set br-ic up
  for tap in ctl1-c ctl2-c; do
    $x tuntap add dev "$tap" mode tap
    $x link set "$tap" master br-client up
  done
  for tap in ctl1-i ctl2-i witness-i; do
    $x tuntap add dev "$tap" mode tap
    $x link set "$tap" master br-ic up
  done
}

# boot NODE MAC-SUFFIX NIC...   (each NIC a tap name; the guest sees them as eth0, eth1)
boot() {
  local n=$1 id=$2
  shift 2
  local img=$out/image-$n nics=() i=0
  for tap in "$@"; do
    nics+=(-netdev "tap,id=n$i,ifname=$tap,script=no,downscript=no"
      -device "virtio-net-pci,netdev=n$i,mac=52:54:00:5a:0$id:0$i")
    i=$((i + 1))
  done
  local shared=()
  if [ "$n" != witness ]; then
    # Both controllers on one file: no host cache, no image locking, shared writes allowed.
    shared=(-drive "file=$out/shared.raw,format=raw,if=none,id=shared,cache=none,aio=threads,file.locking=off"
      -device "virtio-blk-pci,drive=shared,share-rw=on,serial=star-lab-shared")
  fi
  rm -f "$out/$n.console" "$out/$n.monitor" "$out/$n.log"
  inns qemu-system-x86_64 -name "star-lab-$n" -machine q35 -m "$mem" -smp 1 \
    -accel "$accel" -display none -daemonize -pidfile "$out/$n.pid" \
    -kernel "$img/boot/vmlinuz" -initrd "$img/boot/initrd.img" -append "$(cat "$img/boot/cmdline")" \
    -drive "file=$img/star-qemu.raw,format=raw,if=virtio,snapshot=on" \
    "${shared[@]}" "${nics[@]}" \
    -chardev "socket,id=console,path=$out/$n.console,server=on,wait=off,logfile=$out/$n.log" \
    -serial chardev:console \
    -monitor "unix:$out/$n.monitor,server=on,wait=off"
}

wait_for() { # NODE NEEDLE SECONDS
  local i
  for ((i = 0; i < $3; i++)); do
    grep -qa "$2" "$out/$1.log" 2>/dev/null && return 0
    sleep 1
  done
  tail -30 "$out/$1.log" >&2 || true
  die "$1: no '$2' within $3 s (console log: $out/$1.log)"
}

write_env() {
  local ctl1 ctl2 host vip
  ctl1=$(config_of ctl1)
  vip=$(sed -n '/^\[floating\]/,/^\[/s/^address *= *"\([^/"]*\).*/\1/p' "$ctl1")
  cat > "$out/lab.env" <<EOF
# The lab's connection details, for scripts: source out/lab/lab.env
LAB_NETNS=$([ -n "$inside" ] || echo "$netns")
LAB_ENTER="$(if [ -n "$inside" ]; then echo "nsenter --preserve-credentials -U -n -t $$"; else echo "ip netns exec $netns"; fi)"
VIP=$vip
PORTAL1=192.0.2.11:3260
PORTAL2=192.0.2.12:3260
TARGET_IQN=iqn.2026-11.org.star-array:$(toml_value "$ctl1" name)
INITIATOR_IQN=$(toml_value "$ctl1" iqn)
CHAP_USER=$(toml_value "$ctl1" chap_user)
CHAP_SECRET=$(toml_value "$ctl1" chap_secret)
CTL1_PID=$(cat "$out/ctl1.pid")
CTL2_PID=$(cat "$out/ctl2.pid")
WITNESS_PID=$(cat "$out/witness.pid")
CTL1_CONSOLE=$out/ctl1.console
CTL2_CONSOLE=$out/ctl2.console
WITNESS_CONSOLE=$out/witness.console
ADMIN_USER=admin
ADMIN_PASSWORD=star
CTL1_MONITOR=$out/ctl1.monitor
CTL2_MONITOR=$out/ctl2.monitor
SHARED_DISK=$out/shared.raw
EOF
}

print_info() {
  # shellcheck disable=SC1091
  . "$out/lab.env"
  cat <<EOF

STAR lab is up: witness, ctl1 and ctl2 (QEMU, $accel), one shared disk, two networks.

  floating address   $VIP:3260   (follows the active controller)
  portals            $PORTAL1 (ctl1)   $PORTAL2 (ctl2)
  target             $TARGET_IQN
  initiator          $INITIATOR_IQN   CHAP $CHAP_USER / $CHAP_SECRET
  clients run in     $LAB_ENTER ...
    e.g. $LAB_ENTER iscsi-ls -s -i $INITIATOR_IQN iscsi://$CHAP_USER%$CHAP_SECRET@$VIP
  consoles           socat -,raw,echo=0 UNIX-CONNECT:$CTL1_CONSOLE   (ctl2, witness alike;
                     logged to $out/NODE.log); log in as $ADMIN_USER / $ADMIN_PASSWORD,
                     then `help`: status, lun, host, switchover, perf...
  shared disk        $SHARED_DISK
  details            $out/lab.env

EOF
}

boot_node() {
  case "$1" in
    witness) boot witness 3 witness-i ;;
    ctl1) boot ctl1 1 ctl1-c ctl1-i ;;
    ctl2) boot ctl2 2 ctl2-c ctl2-i ;;
    *) die "no node $1 (witness, ctl1, ctl2)" ;;
  esac
}

# KVM where it works: a guest that boots the witness's kernel and initramfs straight into
# a power-off must be gone within 20 s (TCG needs about 3). Some hosts have /dev/kvm and
# hang every guest; the answer is kept in $out/accel.
choose_accel() {
  [ -n "$accel" ] && return
  if [ -f "$out/accel" ]; then
    accel=$(cat "$out/accel")
    return
  fi
  accel=tcg
  if [ -w /dev/kvm ]; then
    local img=$out/image-witness
    if timeout 20 qemu-system-x86_64 -accel kvm -machine q35 -m 256 -display none \
      -no-reboot -serial none -monitor none -kernel "$img/boot/vmlinuz" \
      -initrd "$img/boot/initrd.img" -append "$(cat "$img/boot/cmdline") panic=0 rdinit=/bin/busybox -- poweroff -f" \
      > /dev/null 2>&1; then
      accel=kvm
    fi
  fi
  echo "$accel" > "$out/accel"
  say "accelerator: $accel"
}

up() {
  [ -n "$inside" ] || need_root up
  command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
  build
  choose_accel
  network
  say "booting witness, ctl1, ctl2"
  for n in "${nodes[@]}"; do boot_node "$n"; done
  wait_for witness "star-witness: listening on" 240
  wait_for ctl1 "star: appliance ready" 240
  wait_for ctl2 "star: appliance ready" 240
  write_env
  say "waiting for a controller to take the array"
  local i
  for ((i = 0; i < 240; i++)); do
    grep -qa "role promoting → active" "$out/ctl1.log" "$out/ctl2.log" && break
    sleep 1
  done
  grep -qa "role promoting → active" "$out/ctl1.log" "$out/ctl2.log" ||
    say "warning: no controller became active within 240 s; see $out/ctl1.log and $out/ctl2.log"
  print_info
}

down() {
  for n in "${nodes[@]}"; do
    if [ -f "$out/$n.pid" ]; then
      kill "$(cat "$out/$n.pid")" 2> /dev/null || true
      rm -f "$out/$n.pid"
    fi
  done
  sleep 0.5
  [ -n "$inside" ] || ip netns del "$netns" 2> /dev/null || true
  rm -f "$out"/*.console "$out"/*.monitor "$out/lab.env"
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) need_root down; down ;;
  boot)
    need_root boot
    [ -n "${2:-}" ] || die "usage: lab/lab.sh boot witness|ctl1|ctl2"
    choose_accel
    boot_node "$2"
    sed -i "s/^$(echo "$2" | tr a-z A-Z)_PID=.*/$(echo "$2" | tr a-z A-Z)_PID=$(cat "$out/$2.pid")/" "$out/lab.env"
    ;;
  run)
    if [ "$(id -u)" != 0 ] && [ -z "$inside" ]; then
      say "not root: running the lab in a user and network namespace of its own"
      exec unshare --user --map-root-user --net --fork env LAB_INSIDE=1 "$0" run
    fi
    trap 'echo; down; exit 0' INT TERM
    up || { down; exit 1; }
    say "running; Ctrl-C stops the lab and removes it"
    while sleep 3600; do :; done
    ;;
  *) echo "usage: lab/lab.sh run|up|down|boot NODE" >&2; exit 2 ;;
esac
