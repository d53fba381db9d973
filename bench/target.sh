#!/usr/bin/env bash
# STAR's iSCSI target against the reference: LIO set up the way targetcli does by default
# (bench/reference/targetcli-defaults.sh), on the same kernel, the same shared disk and the
# same LUN partition. For each: libiscsi's conformance suite (iscsi-test-cu --dataloss -t
# ALL, pass count and the tests that fail) and sequential read throughput through the
# portal (iscsi-perf). Writes bench/results/target.txt. Needs `make static` first.
set -euo pipefail
cd "$(dirname "$0")/.."
BINS=target/x86_64-unknown-linux-gnu/release
CONFIG=tests/configs/target-ctl.star.toml
T1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
T2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
PERF_SECONDS=${PERF_SECONDS:-30}
work=$(mktemp -d /tmp/star-target-bench.XXXXXX)
vm=
cleanup() { [ -n "$vm" ] && kill "$vm" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
out=bench/results/target.txt
export SOURCE_DATE_EPOCH=1700000000

"$BINS/star-image" build --board qemu --bin-dir "$BINS" --cache .cache --out "$work/image" \
  --config "$CONFIG" > /dev/null
boot=$work/image/boot

# The shared disk, as the target tests make it: LUN data1 (32 MiB) is partition 3.
truncate -s 256M "$work/shared.raw"
"$BINS/star" disk init --disk "$work/shared.raw" --config "$CONFIG" > /dev/null
"$BINS/star" target promote --disk "$work/shared.raw" --node 1 > /dev/null

# The reference boots the same kernel and initramfs, with its script appended as a second
# cpio archive (the kernel unpacks concatenated archives in order, each starting on a
# 4-byte boundary; zeros between them are skipped) and run as rdinit.
mkdir -p "$work/ref-cpio"
cp bench/reference/targetcli-defaults.sh "$work/ref-cpio/reference.sh"
(cd "$work/ref-cpio" && echo reference.sh | cpio -o -H newc --quiet) > "$work/ref.cpio"
cp "$boot/initrd.img" "$work/initrd-ref.img"
truncate -s %4 "$work/initrd-ref.img"
cat "$work/ref.cpio" >> "$work/initrd-ref.img"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# start_vm NAME INITRD EXTRA-CMDLINE [DRIVE ARGS...]
start_vm() {
  local name=$1 initrd=$2 extra=$3
  shift 3
  qemu-system-x86_64 -machine q35 -m 512 -smp 1 -accel tcg -display none -no-reboot \
    -monitor none -serial "file:$work/$name.log" \
    -kernel "$boot/vmlinuz" -initrd "$initrd" -append "$(cat "$boot/cmdline") $extra" \
    "$@" \
    -drive "file=$work/shared.raw,format=raw,if=none,id=shared,cache=none,aio=threads,file.locking=off" \
    -device virtio-blk-pci,drive=shared,share-rw=on,serial=shared0001 \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:3260" \
    -nic user,model=virtio-net-pci,net=10.0.3.0/24 &
  vm=$!
}

wait_log() { # FILE NEEDLE SECONDS
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "timed out waiting for '$2' in $1" >&2
  tail -20 "$1" >&2
  exit 1
}

stop_vm() { kill "$vm" 2>/dev/null; wait "$vm" 2>/dev/null || true; vm=; }

# The tests iscsi-test-cu reports FAILED, as Suite.Test.
failed_tests() {
  awk '
    /^Suite: / { suite = $2; next }
    {
      line = $0
      if (match(line, /^  Test: [^ ]+ \.\.\./)) {
        test = suite "." $2; pending = 1; line = substr(line, RLENGTH + 1)
      }
      sub(/^[ \t]+/, "", line)
      if (pending && line ~ /^passed/) pending = 0
      else if (pending && line ~ /^FAILED/) { print test; pending = 0 }
    }' "$1"
}

# measure NAME URL: the conformance suite, then iscsi-perf for PERF_SECONDS.
measure() {
  local name=$1 url=$2
  iscsi-test-cu --dataloss -t ALL -i "$T1" -I "$T2" "$url" > "$work/$name.cu" 2>&1 || true
  failed_tests "$work/$name.cu" > "$work/$name.failed"
  timeout -s INT "$PERF_SECONDS" iscsi-perf -i "$T1" -b 256 -m 16 "$url" \
    > "$work/$name.perf" 2>&1 || true
  {
    echo
    echo "## $name: $url"
    grep -E '^ +tests ' "$work/$name.cu" | awk '{print "iscsi-test-cu: " $2 " tests, " $4 " passed, " $5 " failed"}'
    echo "iscsi-perf (sequential READ, 128 KiB, 16 in flight, ${PERF_SECONDS} s): $(tr '\r' '\n' < "$work/$name.perf" | grep 'iops average' | tail -1 | sed 's/ *$//')"
    echo "failed:"
    sed 's/^/  /' "$work/$name.failed"
  } >> "$out"
}

{
  echo "# STAR's target and LIO set up the targetcli way, side by side"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cores; QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), TCG, 1 vCPU, 512 MiB"
  echo "kernel: $(file -b "$boot/vmlinuz" | grep -o 'version [^ ]*')"
  echo "initiator: libiscsi-bin $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null)"
  echo "LUN: the star-lun-data1 partition (32 MiB) of one 256 MiB shared disk file (virtio-blk, cache=none)"
} > "$out"

# One controller given the array by hand (star target promote --disk above): the role
# authority is masked so that nothing else decides.
start_vm star "$boot/initrd.img" "star.mask=heartbeat" \
  -drive "file=$work/image/star-qemu.raw,format=raw,snapshot=on,if=virtio"
wait_log "$work/star.log" "star-target: exporting" 240
measure "STAR (star-target)" "iscsi://127.0.0.1:$port/iqn.2026-11.org.star-array:star-test/1"
stop_vm

start_vm reference "$work/initrd-ref.img" "rdinit=/reference.sh"
wait_log "$work/reference.log" "reference: exporting" 240
measure "reference (targetcli defaults)" "iscsi://127.0.0.1:$port/iqn.2003-01.org.linux-iscsi.reference:data1/0"
stop_vm

{
  echo
  echo "## failed in one and not the other"
  diff <(sort "$work/STAR (star-target).failed") <(sort "$work/reference (targetcli defaults).failed") \
    | sed -n 's/^< /  only STAR: /p; s/^> /  only the reference: /p'
  echo "  (end)"
} >> "$out"
cat "$out"
