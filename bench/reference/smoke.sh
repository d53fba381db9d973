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

what=${1:-both}
ref_prog="reference smoke"
# shellcheck source=bench/reference/common.sh
. "$(dirname "$0")/common.sh"
# Seconds to wait for the first INQUIRY answer: TCG is slow, a Debian boot slower still.
timeout=${REF_SMOKE_TIMEOUT:-600}

case $what in single | cluster | both) ;; *) die "usage: $0 [single|cluster|both]" ;; esac

ref_prepare
shared_disk

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
  secs=$(wait_inquiry "iscsi://127.0.0.1:$port/$iqn/0" "$start" "$timeout" "$initiator" single)
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
  local start secs mem1 mem2
  lab_up
  say "cluster: booting ref1 and ref2 (TCG) in namespace $netns"
  start=$(date +%s.%N)
  boot_cluster
  secs=$(wait_inquiry "iscsi://$vip:3260/$iqn/0" "$start" "$timeout" "$initiator" ref1 ref2 -- ip netns exec "$netns")
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
  both)
    smoke_single
    smoke_cluster
    ;;
esac
report_disk
