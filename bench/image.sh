#!/usr/bin/env bash
# Image benchmarks: sizes per board (raw, and compressed with zstd), cold and warm build
# times, and boot to ready under QEMU TCG (direct kernel boot, and through OVMF).
# Writes bench/results/image.txt. Needs `make static` first (make bench does it).
set -euo pipefail
cd "$(dirname "$0")/.."
BINS=target/x86_64-unknown-linux-gnu/release
cargo build -q --release -p star-image
IMAGE=target/release/star-image
work=$(mktemp -d /tmp/star-image-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
out=bench/results/image.txt
export SOURCE_DATE_EPOCH=1700000000

now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{printf "%.1f", $2 - $1}'; }

{
  echo "# star-image benchmarks"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cores; QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), TCG"
} > "$out"

# Cold: an empty package cache (download and unpack included); warm: the same again.
t0=$(now)
"$IMAGE" build --board qemu --bin-dir "$BINS" --cache "$work/cache" --out "$work/cold" \
  --config board/examples/qemu.star.toml > /dev/null
t1=$(now)
"$IMAGE" build --board qemu --bin-dir "$BINS" --cache "$work/cache" --out "$work/warm" \
  --config board/examples/qemu.star.toml > /dev/null
t2=$(now)
{
  echo
  echo "## build time, qemu board (static binaries already built)"
  echo "cold (empty package cache): $(secs "$t0" "$t1") s"
  echo "warm: $(secs "$t1" "$t2") s"
} >> "$out"

echo >> "$out"
echo "## sizes (bytes)" >> "$out"
printf '%-12s %12s %12s %12s\n' board raw allocated raw.zst >> "$out"
for board in qemu virtualbox aws-ec2; do
  "$IMAGE" build --board "$board" --bin-dir "$BINS" --cache "$work/cache" --out "$work/$board" \
    --config "board/examples/$board.star.toml" > /dev/null
  raw="$work/$board/star-$board.raw"
  zstd -q -10 -T0 "$raw" -o "$raw.zst"
  printf '%-12s %12s %12s %12s\n' "$board" "$(stat -c %s "$raw")" \
    "$(( $(stat -c %b "$raw") * 512 ))" "$(stat -c %s "$raw.zst")" >> "$out"
  for extra in "$work/$board"/*.vdi "$work/$board"/*.vmdk; do
    [ -f "$extra" ] && printf '%-12s %s: %s\n' "" "$(basename "$extra")" "$(stat -c %s "$extra")" >> "$out"
  done
done

# Boot to ready: the uptime star-init prints (seconds since the kernel started), and the
# wall time from starting QEMU, five boots each. The qemu board with its example star.toml
# two virtio NICs and a virtio-rng: ready means star-config and star-net are ready too.
nics="-nic user,model=virtio-net-pci -nic user,model=virtio-net-pci,net=10.0.3.0/24 -device virtio-rng-pci"
boot() { # $1 = mode (direct|ovmf)
  local log="$work/serial-$1.log" start
  rm -f "$log"
  start=$(now)
  if [ "$1" = direct ]; then
    qemu-system-x86_64 -accel tcg -machine q35 -m 512 -display none -no-reboot $nics \
      -drive file="$work/qemu/star-qemu.raw",format=raw,if=virtio,snapshot=on \
      -kernel "$work/qemu/boot/vmlinuz" -initrd "$work/qemu/boot/initrd.img" \
      -append "$(cat "$work/qemu/boot/cmdline")" -serial "file:$log" &
  else
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
    qemu-system-x86_64 -accel tcg -machine q35 -m 512 -display none -no-reboot $nics \
      -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
      -drive if=pflash,format=raw,file="$work/vars.fd" \
      -drive file="$work/qemu/star-qemu.raw",format=raw,if=virtio,snapshot=on \
      -serial "file:$log" &
  fi
  local pid=$!
  for _ in $(seq 1 1200); do
    grep -q "appliance ready" "$log" 2>/dev/null && break
    sleep 0.05
  done
  local end; end=$(now)
  kill $pid; wait $pid 2>/dev/null || true
  local uptime; uptime=$(sed -n 's/.*appliance ready (uptime \([0-9.]*\) s).*/\1/p' "$log")
  echo "$uptime $(secs "$start" "$end")"
}
for mode in direct ovmf; do
  results=$(for _ in 1 2 3 4 5; do boot $mode; done)
  {
    echo
    echo "## boot to ready, $mode (5 boots): uptime at ready / wall time from QEMU start, seconds"
    echo "$results" | sort -n | awk '{u[NR]=$1; w[NR]=$2} END {printf "uptime min %s median %s max %s\n", u[1], u[3], u[5]}'
    echo "$results" | sort -k2 -n | awk '{w[NR]=$2} END {printf "wall   min %s median %s max %s\n", w[1], w[3], w[5]}'
  } >> "$out"
done
cat "$out"
