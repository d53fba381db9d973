#!/bin/sh
# The reference target: LIO set up in configfs the way targetcli does it with its default
# preferences, for the same LUN, on the same kernel as STAR's image. Runs as the first
# process of the image's initramfs (rdinit=), in place of star-init, with the image's own
# busybox and kernel modules. Each block says which targetcli command writes it.
#
#   targetcli /backstores/block create name=data1 dev=<the data1 partition>
#   targetcli /iscsi create <iqn>              (tpg1 enabled, portal 0.0.0.0:3260)
#   targetcli /iscsi/<iqn>/tpg1/luns create /backstores/block/data1
#   targetcli /iscsi/<iqn>/tpg1/acls create <initiator>     (LUN 0 mapped automatically)
#
# The LUN is LUN 0 of this target. Everything else is the kernel's default.
set -e
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_pci virtio_blk virtio_net configfs target_core_mod target_core_iblock \
         iscsi_target_mod; do
  modprobe "$m"
done
mount -t configfs configfs /sys/kernel/config

IQN=iqn.2003-01.org.linux-iscsi.reference:data1
INITIATORS="iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2"
T=/sys/kernel/config/target

# The same partition STAR exports as data1, found by its GPT name.
dev=
i=0
while [ -z "$dev" ] && [ $i -lt 50 ]; do
  for u in /sys/class/block/*/uevent; do
    if grep -q '^PARTNAME=star-lun-data1$' "$u"; then
      dev=/dev/$(sed -n 's/^DEVNAME=//p' "$u")
    fi
  done
  [ -n "$dev" ] || { sleep 0.2; i=$((i + 1)); }
done
[ -n "$dev" ] || { echo "reference: no star-lun-data1 partition"; exit 1; }

# rtslib's RTSRoot: dbroot /etc/target.
mkdir -p /etc/target/pr /etc/target/alua
echo /etc/target > $T/dbroot

# /backstores/block create: BlockStorageObject (control, enable, then a uuid4 serial).
D=$T/core/iblock_0/data1
mkdir -p $D
printf '%s' "$dev" > $D/udev_path
echo "udev_path=$dev" > $D/control
echo "readonly=0" > $D/control
echo 1 > $D/enable
cat /proc/sys/kernel/random/uuid > $D/wwn/vpd_unit_serial

# /iscsi create: the target, TPG 1 with authentication off (targetcli-fb sets it to 0 on
# every TPG it creates; ACLs with CHAP credentials still require them), the default
# portal, the TPG enabled (below, last).
I=$T/iscsi/$IQN/tpgt_1
mkdir -p $I
echo 0 > $I/attrib/authentication
mkdir "$I/np/0.0.0.0:3260"

# luns create: LUN 0 linked to the backstore.
mkdir $I/lun/lun_0
ln -s $D $I/lun/lun_0/data1_link

# acls create, with auto_add_mapped_luns: each initiator gets mapped LUN 0, writable.
for a in $INITIATORS; do
  mkdir $I/acls/$a
  mkdir $I/acls/$a/lun_0
  ln -s $I/lun/lun_0 $I/acls/$a/lun_0/mapped_lun0
  echo 0 > $I/acls/$a/lun_0/write_protect
done
echo 1 > $I/enable

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
echo "reference: exporting $dev as $IQN LUN 0"
while :; do sleep 3600; done
