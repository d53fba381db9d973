//! The scripts and inputs an image comes with: the VirtualBox lab, and the AWS import.

/// vbox-lab.sh: the lab in VirtualBox. Two controllers and a witness, each booting its own
/// copy of the image (VirtualBox refuses two media with one UUID, and clonemedium gives
/// each a new one), EFI firmware, serial ports to files, an internal network between the
/// controllers, one for clients, and one fixed-size shareable disk on both controllers.
pub fn vbox_lab(vdi: &str) -> String {
    format!(
        r#"#!/bin/sh
# Creates the STAR lab in VirtualBox: star-ctl1, star-ctl2 and star-witness.
#   STAR_LAB_DIR         where the VMs and disks go (default: $HOME/star-lab)
#   STAR_SHARED_DISK_MB  size of the shared array disk (default: 4096)
#   STAR_CLIENT_NET      internal network for iSCSI clients (default: star-clients)
# Then: VBoxManage startvm star-ctl1 --type headless (and ctl2, witness); the consoles
# are written to $STAR_LAB_DIR/<vm>-serial.log.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
image="$here/{vdi}"
lab=${{STAR_LAB_DIR:-$HOME/star-lab}}
shared_mb=${{STAR_SHARED_DISK_MB:-4096}}
clients=${{STAR_CLIENT_NET:-star-clients}}
command -v VBoxManage >/dev/null 2>&1 || {{ echo "vbox-lab.sh: VBoxManage not found: install VirtualBox" >&2; exit 1; }}
[ -f "$image" ] || {{ echo "vbox-lab.sh: $image missing: make image BOARD=virtualbox" >&2; exit 1; }}
mkdir -p "$lab"

# The array disk: fixed size (VirtualBox shares only fixed images), attached to both.
VBoxManage createmedium disk --filename "$lab/shared.vdi" --size "$shared_mb" --format VDI --variant Fixed
VBoxManage modifymedium disk "$lab/shared.vdi" --type shareable

for vm in ctl1 ctl2 witness; do
  VBoxManage clonemedium disk "$image" "$lab/$vm.vdi" --format VDI
  VBoxManage createvm --name "star-$vm" --ostype Linux_64 --basefolder "$lab" --register
  VBoxManage modifyvm "star-$vm" --firmware efi --memory 1024 --cpus 2 \
    --uart1 0x3F8 4 --uartmode1 file "$lab/$vm-serial.log" \
    --nic1 intnet --intnet1 "$clients" --nictype1 82540EM
  VBoxManage storagectl "star-$vm" --name SATA --add sata --controller IntelAhci --portcount 2 --bootable on
  VBoxManage storageattach "star-$vm" --storagectl SATA --port 0 --device 0 --type hdd --medium "$lab/$vm.vdi"
done

for vm in ctl1 ctl2; do
  VBoxManage modifyvm "star-$vm" --nic2 intnet --intnet2 star-interconnect --nictype2 82540EM
  VBoxManage storageattach "star-$vm" --storagectl SATA --port 1 --device 0 --type hdd \
    --medium "$lab/shared.vdi" --mtype shareable
done

echo "lab created in $lab: start it with"
echo "  for vm in witness ctl1 ctl2; do VBoxManage startvm star-\$vm --type headless; done"
"#
    )
}

/// The input of `aws ec2 register-image --cli-input-json`, with SNAPSHOT_ID for
/// aws-import.sh to fill in.
pub fn register_image_json(board: &str, revision: &str) -> String {
    let short: String = revision.chars().take(12).collect();
    let value = serde_json::json!({
        "Name": format!("star-{board}-{short}"),
        "Description": "STAR see-through array: two-controller iSCSI storage appliance",
        "Architecture": "x86_64",
        "VirtualizationType": "hvm",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "SnapshotId": "SNAPSHOT_ID",
                "VolumeType": "gp3",
                "DeleteOnTermination": true
            }
        }],
        "EnaSupport": true,
        "BootMode": "uefi",
        "ImdsSupport": "v2.0"
    });
    let mut text = serde_json::to_string_pretty(&value).expect("static JSON");
    text.push('\n');
    text
}

/// aws-import.sh: S3 upload, import-snapshot, wait, register-image.
pub fn aws_import(vmdk: &str) -> String {
    format!(
        r#"#!/bin/sh
# Imports the STAR disk as an EBS snapshot and registers it as an AMI
# (x86_64, hvm, ENA, UEFI boot mode, IMDSv2 only).
#   usage: aws-import.sh S3-BUCKET [S3-KEY-PREFIX]
# Needs the aws CLI with credentials, and the vmimport service role (see AWS's
# "VM Import/Export: required permissions").
set -eu
bucket=${{1:?usage: aws-import.sh S3-BUCKET [S3-KEY-PREFIX]}}
prefix=${{2:-star}}
here=$(cd "$(dirname "$0")" && pwd)
key="$prefix/{vmdk}"
command -v aws >/dev/null 2>&1 || {{ echo "aws-import.sh: the aws CLI is not installed" >&2; exit 1; }}

aws s3 cp "$here/{vmdk}" "s3://$bucket/$key"
task=$(aws ec2 import-snapshot --description "STAR {vmdk}" \
  --disk-container "Format=VMDK,UserBucket={{S3Bucket=$bucket,S3Key=$key}}" \
  --query ImportTaskId --output text)
echo "import task $task"
while :; do
  status=$(aws ec2 describe-import-snapshot-tasks --import-task-ids "$task" \
    --query 'ImportSnapshotTasks[0].SnapshotTaskDetail.Status' --output text)
  case "$status" in
    completed) break ;;
    deleting|deleted|error)
      aws ec2 describe-import-snapshot-tasks --import-task-ids "$task" >&2
      echo "aws-import.sh: import $task ended: $status" >&2
      exit 1 ;;
  esac
  sleep 15
done
snapshot=$(aws ec2 describe-import-snapshot-tasks --import-task-ids "$task" \
  --query 'ImportSnapshotTasks[0].SnapshotTaskDetail.SnapshotId' --output text)
echo "snapshot $snapshot"
input=$(mktemp)
trap 'rm -f "$input"' EXIT
sed "s/SNAPSHOT_ID/$snapshot/" "$here/register-image.json" > "$input"
aws ec2 register-image --cli-input-json "file://$input" --query ImageId --output text
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_image_asks_for_what_ec2_needs() {
        let v: serde_json::Value =
            serde_json::from_str(&register_image_json("aws-ec2", "0123456789abcdef")).unwrap();
        assert_eq!(v["Architecture"], "x86_64");
        assert_eq!(v["VirtualizationType"], "hvm");
        assert_eq!(v["EnaSupport"], true);
        assert_eq!(v["BootMode"], "uefi");
        assert_eq!(v["ImdsSupport"], "v2.0");
        assert_eq!(
            v["RootDeviceName"],
            v["BlockDeviceMappings"][0]["DeviceName"]
        );
        assert_eq!(v["Name"], "star-aws-ec2-0123456789ab");
    }

    #[test]
    fn the_scripts_are_valid_shell() {
        for (name, text) in [
            ("vbox", vbox_lab("star-virtualbox.vdi")),
            ("aws", aws_import("star-aws-ec2.vmdk")),
        ] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &text])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let vbox = vbox_lab("x.vdi");
        assert!(vbox.contains("--firmware efi") && vbox.contains("--mtype shareable"));
        assert!(vbox.contains("--variant Fixed"));
    }
}
