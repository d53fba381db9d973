#!/usr/bin/env bash
# Builds the reference appliance: the "traditional stack" that STAR is measured against,
# as users put it together by hand today (the project's seed article: two controllers
# from stock Linux parts): a general Debian with systemd, LIO configured with targetcli
# and restored at boot by rtslib-fb-targetctl, and Pacemaker/corosync managed with pcs,
# fencing off, for the two-controller setup.
#
#   bench/reference/build.sh [OUT]      (OUT, else $REF_OUT, else out/reference)
#
# OUT receives vmlinuz and initrd.img (for QEMU's direct kernel boot), root.raw (a sparse
# ext4 image of the root file system, label reference-root), cmdline (the kernel command
# line without the reference.mode= part), packages.txt (dpkg -l of the root) and
# build.log (what debootstrap, apt-get and pcs printed).
#
# Two stages. The first, debootstrap plus the packages, is slow and depends only on the
# package list, the kernel and this stage's own code, so its result is kept as a tarball
# in .cache/reference/ under a hash of those; a second build unpacks it. The second stage
# lays the files of bench/reference/rootfs/ over the tree, generates the cluster's
# corosync.conf and CIB with pcs (offline), and makes the image.
#
# Which kernel: the same versioned package that STAR's qemu board resolves from
# linux-image-cloud-amd64 through the host's package lists, so both boot the same kernel.
#
# debootstrap --variant=minbase and apt-get --no-install-recommends: only what the stack
# needs (listed below) is installed. A full Debian install would add packages that play no
# part in serving a LUN (and Pacemaker's recommends would bring fence-agents, which is of
# no use with fencing switched off), so this is the smallest honest version of that stack,
# and whatever STAR wins against it, it wins against the bigger one too.
#
# Needs root (debootstrap, chroot, file ownership in the image). Installs debootstrap,
# e2fsprogs and zstd with apt-get when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-${REF_OUT:-$root/out/reference}}")
cache=$(realpath -m "${REF_CACHE:-$root/.cache/reference}")
suite=bookworm
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
# The image's clock for everything the build writes: file times, the initramfs archive,
# the file system's own time stamps. The value bench/target.sh uses too.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
# Fixed identities, so that two builds of one package set give the same file system.
fs_uuid=5ca1ab1e-0000-4000-8000-00000000f5ef
machine_id=5ca1ab1e00004000800000000000beef
label=reference-root

say() { echo "reference build: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, root-owned files in the image)"

# Host tools, installed the ordinary way when missing.
need=()
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v mke2fs > /dev/null || need+=(e2fsprogs)
command -v zstd > /dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" > /dev/null ||
    { apt-get update > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" > /dev/null; } ||
    die "cannot install ${need[*]}"
fi

# The versioned kernel package behind linux-image-cloud-amd64, as STAR's image builder
# resolves it (image/src/debs.rs).
resolve_kernel() {
  apt-cache depends linux-image-cloud-amd64 2> /dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1
}
kernel=$(resolve_kernel)
if [ -z "$kernel" ]; then
  say "no package lists for linux-image-cloud-amd64; running apt-get update"
  apt-get update > /dev/null
  kernel=$(resolve_kernel)
fi
[ -n "$kernel" ] || die "linux-image-cloud-amd64 names no versioned linux-image package"
kversion=${kernel#linux-image-}

# What the appliance is made of, beyond minbase. pcs because the seed manages the
# cluster with it (pcs host auth, cluster setup, property set, resource create).
packages=(
  systemd-sysv udev kmod "$kernel" initramfs-tools
  targetcli-fb python3-rtslib-fb
  corosync pacemaker pacemaker-cli-utils resource-agents pcs
  iproute2 procps
)

in_root() { # TREE COMMAND...: COMMAND in a chroot with /proc, /sys and /dev, in a mount
  # namespace of its own so that nothing stays mounted when it ends, however it ends.
  local tree=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private -- /bin/sh -ec '
    t=$1; shift
    mount -t proc proc "$t/proc"
    mount -t sysfs sysfs "$t/sys"
    mount --rbind /dev "$t/dev"
    exec chroot "$t" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"
  ' sh "$tree" "$@"
}

# Stage 1: debootstrap and the packages. Its code is part of the cache key.
install_stage() {
  local tree=$1
  unshare --mount --propagation private -- \
    debootstrap --variant=minbase "$suite" "$tree" "$mirror" >> "$log" 2>&1 ||
    { tail -30 "$log" >&2; die "debootstrap failed (log: $log)"; }
  # The kernel comes from the security archive, and updates from bookworm-updates.
  cat > "$tree/etc/apt/sources.list" << EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
  # Nothing starts while packages are installed into the tree.
  printf '#!/bin/sh\nexit 101\n' > "$tree/usr/sbin/policy-rc.d"
  chmod 755 "$tree/usr/sbin/policy-rc.d"
  # Kernel names (eth0, eth1) as the cluster's addressing expects, also in the
  # initramfs, which is where virtio_net is loaded and would be renamed.
  mkdir -p "$tree/etc/systemd/network"
  ln -sf /dev/null "$tree/etc/systemd/network/99-default.link"
  cp /etc/resolv.conf "$tree/etc/resolv.conf"
  in_root "$tree" apt-get update >> "$log" 2>&1 ||
    { tail -30 "$log" >&2; die "apt-get update in the tree failed (log: $log)"; }
  in_root "$tree" apt-get install -y --no-install-recommends "${packages[@]}" >> "$log" 2>&1 ||
    { tail -40 "$log" >&2; die "installing the packages failed (log: $log); if $kernel is
  no longer in the archive, the host's package lists are older than it: apt-get update"; }
  in_root "$tree" apt-get clean >> "$log" 2>&1
  rm -rf "$tree"/var/lib/apt/lists/* "$tree/usr/sbin/policy-rc.d" "$tree/etc/resolv.conf"
}

key=$( {
  echo "$suite $mirror $security $kernel"
  printf '%s\n' "${packages[@]}"
  declare -f install_stage in_root
} | sha256sum | cut -c1-16)
tarball=$cache/rootfs-$kversion-$key.tar.zst

mkdir -p "$out" "$cache"
log=$out/build.log
: > "$log"
work=$(mktemp -d "$out/.build.XXXXXX")
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
tree=$work/tree
mkdir "$tree"

if [ -f "$tarball" ]; then
  say "stage 1 from the cache: $tarball"
else
  say "stage 1: debootstrap $suite (minbase) and ${#packages[@]} packages with $kernel; takes minutes"
  install_stage "$tree"
  tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -c . |
    zstd -q -f -T0 -3 -o "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  rm -rf --one-file-system "$tree"
  mkdir "$tree"
fi
zstd -q -d -c "$tarball" | tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -x

# Stage 2: the configuration. The repository's files first, owned by root.
say "stage 2: configuration"
tar -C "$here/rootfs" --owner=0 --group=0 --numeric-owner -c . |
  tar -C "$tree" --no-overwrite-dir -x
# etc/rtslib-fb-target/saveconfig.json is what `targetcli saveconfig` wrote on this
# appliance after these commands (targetcli needs configfs, so they cannot run here):
#   targetcli /backstores/block create name=data1 dev=/dev/disk/by-partlabel/star-lun-data1
#   targetcli /iscsi create iqn.2003-01.org.linux-iscsi.reference:data1
#   targetcli /iscsi/iqn.2003-01.org.linux-iscsi.reference:data1/tpg1/luns create /backstores/block/data1
#   targetcli /iscsi/iqn.2003-01.org.linux-iscsi.reference:data1/tpg1/acls create iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
#   targetcli /iscsi/iqn.2003-01.org.linux-iscsi.reference:data1/tpg1/acls create iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
#   targetcli saveconfig
# The backstore names the partition by its udev link, so the restore does not depend on
# the order in which the disks appear.
chmod 600 "$tree/etc/rtslib-fb-target/saveconfig.json"
echo "$machine_id" > "$tree/etc/machine-id"
rm -f "$tree/var/lib/dbus/machine-id" "$tree/var/lib/systemd/random-seed"
chmod 755 "$tree"/usr/local/sbin/*

# corosync's key, shared by both nodes (they boot one image). Not a secret: a lab key
# derived from a fixed string, so that builds are repeatable (corosync-keygen would
# read the random pool).
in_root "$tree" python3 -c 'import hashlib, sys
sys.stdout.buffer.write(b"".join(hashlib.sha512(b"reference lab corosync key %d" % i).digest() for i in range(4)))' \
  > "$tree/etc/corosync/authkey"
chmod 400 "$tree/etc/corosync/authkey"

# The cluster, with the seed's pcs commands, run against files instead of live nodes:
# `pcs cluster setup --corosync_conf` writes corosync.conf without contacting the nodes,
# and `pcs -f` edits a CIB file. Node 1 would push the same CIB with `pcs cluster
# cib-push`; shipped in /var/lib/pacemaker/cib, it is there when Pacemaker first starts.
cat > "$tree/root/reference-cluster.sh" << 'EOF'
set -eu
IQN=iqn.2003-01.org.linux-iscsi.reference:data1
INITIATORS="iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2"
# The agents run targetcli several times per start and stop, a few seconds each under
# emulation: their 10 s default timeouts would fail the group.
SLOW="op start timeout=120s stop timeout=120s monitor interval=10s timeout=60s"
pcs cluster setup reference ref1 addr=198.51.100.11 ref2 addr=198.51.100.12 \
  --corosync_conf /etc/corosync/corosync.conf --overwrite --no-cluster-uuid
cibadmin --empty > /tmp/cib.xml
pcs -f /tmp/cib.xml property set stonith-enabled=false no-quorum-policy=ignore
pcs -f /tmp/cib.xml resource create ref-vip ocf:heartbeat:IPaddr2 \
  ip=192.0.2.100 cidr_netmask=24 nic=eth0 --group reference
# The portal is on the floating address: given the default portal (0.0.0.0:3260), the
# lio-t agent creates none, having turned targetcli's auto_add_default_portal off.
pcs -f /tmp/cib.xml resource create ref-target ocf:heartbeat:iSCSITarget \
  implementation=lio-t iqn="$IQN" portals=192.0.2.100:3260 \
  allowed_initiators="$INITIATORS" $SLOW --group reference
pcs -f /tmp/cib.xml resource create data1 ocf:heartbeat:iSCSILogicalUnit \
  implementation=lio-t target_iqn="$IQN" lun=0 path=/dev/disk/by-partlabel/star-lun-data1 \
  allowed_initiators="$INITIATORS" $SLOW --group reference
install -o hacluster -g haclient -m 600 /tmp/cib.xml /var/lib/pacemaker/cib/cib.xml
rm -f /tmp/cib.xml
EOF
in_root "$tree" /bin/sh /root/reference-cluster.sh >> "$log" 2>&1 ||
  { tail -20 "$log" >&2; die "generating the cluster configuration with pcs failed (log: $log)"; }
rm -f "$tree/root/reference-cluster.sh"

# Units: what each mode runs is decided by the conditions in the drop-ins, not here.
systemctl --root="$tree" enable systemd-networkd.service serial-getty@ttyS0.service \
  reference-mode.service reference-serving.service rtslib-fb-targetctl.service \
  corosync.service pacemaker.service pcsd.service pcsd-ruby.service > /dev/null 2>&1 ||
  die "systemctl enable in the tree failed"

# Everything the build wrote gets the build's clock.
find "$tree" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

cp "$tree/boot/vmlinuz-$kversion" "$out/vmlinuz"
cp "$tree/boot/initrd.img-$kversion" "$out/initrd.img"
COLUMNS=200 dpkg --root="$tree" -l > "$out/packages.txt"
echo "root=LABEL=$label rw console=ttyS0,115200n8 quiet panic=10" > "$out/cmdline"

# The root file system: what the tree holds plus room to run (journal, Pacemaker's
# policy engine files), rounded to 64 MiB; sparse.
used_mb=$(du -sx --block-size=1M "$tree" | cut -f1)
size_mb=$(( (used_mb * 5 / 4 + 256 + 63) / 64 * 64 ))
rm -f "$out/root.raw"
truncate -s "${size_mb}M" "$out/root.raw"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -L "$label" -U "$fs_uuid" \
  -E "hash_seed=$fs_uuid,root_owner=0:0" -d "$tree" "$out/root.raw" ||
  die "mke2fs failed"
# mke2fs -d copies each file's ctime (the moment the build wrote the file) and atime (the
# last time it read it); both get the build's clock, in every inode in use, so that two
# builds from one cached tree give the same bytes.
dumpe2fs "$out/root.raw" 2> /dev/null | awk -v t="$SOURCE_DATE_EPOCH" '
  /^Inode count:/ { n = $3 }
  /^  Free inodes: / {
    sub(/^  Free inodes: */, "")
    m = split($0, ranges, /, */)
    for (k = 1; k <= m; k++) {
      if (ranges[k] == "") continue
      split(ranges[k], ab, "-")
      if (ab[2] == "") ab[2] = ab[1]
      for (i = ab[1] + 0; i <= ab[2] + 0; i++) free[i] = 1
    }
  }
  END {
    for (i = 1; i <= n; i++)
      if (!(i in free) && (i == 2 || i >= 11)) printf "sif <%d> ctime @%d\nsif <%d> atime @%d\n", i, t, i, t
  }' > "$work/times.debugfs"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/times.debugfs" "$out/root.raw" > /dev/null 2>&1 ||
  die "debugfs (setting inode times) failed"
say "done: $out (root.raw ${size_mb} MiB, $(du -k "$out/root.raw" | cut -f1) KiB allocated; kernel $kversion)"
