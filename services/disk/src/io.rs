//! Block I/O on the shared disk: a block device or a regular file (a lab's disk image).
//!
//! Every read and write is a whole number of 4 KiB blocks at a 4 KiB offset, from a
//! 4 KiB-aligned buffer ([`crate::buf`]). The disk is opened with O_DIRECT|O_DSYNC where
//! the file system allows it: O_DIRECT so that a read sees what the *other* controller
//! wrote rather than this one's page cache, O_DSYNC so that a write has reached the disk
//! when it returns. tmpfs refuses O_DIRECT (EINVAL); there we fall back to O_DSYNC alone,
//! which is all a file in memory can offer anyway. star-heartbeat uses the same calls.

use crate::buf::{Block, Blocks};
use crate::error::Error;
use crate::layout::{BLOCK, BLOCK_U64, SECTOR};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// How to open the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// Read-write, and on a block device O_EXCL: the kernel refuses if anything holds the
    /// disk or one of its partitions (a mount, LIO, device-mapper). For init, which must
    /// never pull a disk from under a user.
    Exclusive,
}

#[derive(Debug)]
pub struct Disk {
    file: File,
    path: PathBuf,
    size: u64,
    block_device: bool,
    direct: bool,
}

mod ioctl {
    // <linux/fs.h>: BLKGETSIZE64 = _IOR(0x12, 114, size_t), BLKSSZGET = _IO(0x12, 104),
    // BLKRRPART = _IO(0x12, 95), BLKPG = _IO(0x12, 105). The last three are "bad" ioctls
    // (their numbers do not encode the argument), hence the *_bad macros.
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_write_ptr_bad!(
        blkpg,
        nix::request_code_none!(0x12, 105),
        super::BlkpgIoctlArg
    );
}

/// <linux/blkpg.h> `struct blkpg_ioctl_arg`.
#[repr(C)]
#[derive(Debug)]
pub struct BlkpgIoctlArg {
    pub op: libc::c_int,
    pub flags: libc::c_int,
    pub datalen: libc::c_int,
    pub data: *mut libc::c_void,
}

/// <linux/blkpg.h> `struct blkpg_partition`. The kernel ignores both names.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct BlkpgPartition {
    /// Bytes.
    pub start: libc::c_longlong,
    /// Bytes.
    pub length: libc::c_longlong,
    pub pno: libc::c_int,
    pub devname: [libc::c_char; 64],
    pub volname: [libc::c_char; 64],
}

pub const BLKPG_ADD_PARTITION: libc::c_int = 1;
pub const BLKPG_DEL_PARTITION: libc::c_int = 2;

impl BlkpgPartition {
    pub fn new(number: u32, start: u64, length: u64) -> BlkpgPartition {
        BlkpgPartition {
            start: start as libc::c_longlong,
            length: length as libc::c_longlong,
            pno: number as libc::c_int,
            devname: [0; 64],
            volname: [0; 64],
        }
    }
}

fn open_file(
    path: &Path,
    access: Access,
    block_device: bool,
    direct: bool,
) -> std::io::Result<File> {
    let mut flags = libc::O_DSYNC | libc::O_CLOEXEC;
    if direct {
        flags |= libc::O_DIRECT;
    }
    if access == Access::Exclusive && block_device {
        flags |= libc::O_EXCL;
    }
    OpenOptions::new()
        .read(true)
        .write(access != Access::ReadOnly)
        .custom_flags(flags)
        .open(path)
}

fn is_einval(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

impl Disk {
    pub fn open(path: &Path, access: Access) -> Result<Disk, Error> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("{shown}"), e))?;
        let block_device = meta.file_type().is_block_device();
        if !block_device && !meta.file_type().is_file() {
            return Err(Error::Invalid(format!(
                "{shown} is neither a block device nor a regular file"
            )));
        }
        let open = |direct: bool| open_file(path, access, block_device, direct);
        Disk::open_with(path, block_device, meta.len(), &open)
    }

    /// Opens through `open(direct)`, falling back to `open(false)` where O_DIRECT is
    /// refused. Separate so that the fallback can be tested on a kernel whose file
    /// systems all accept O_DIRECT.
    fn open_with(
        path: &Path,
        block_device: bool,
        file_len: u64,
        open: &dyn Fn(bool) -> std::io::Result<File>,
    ) -> Result<Disk, Error> {
        let shown = path.display();
        let (file, direct) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if is_einval(&e) => (
                open(false).map_err(|e| Error::io(format!("opening {shown}"), e))?,
                false,
            ),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(Error::Invalid(format!(
                    "{shown} is in use (mounted, or held by LIO or device-mapper)"
                )))
            }
            Err(e) => return Err(Error::io(format!("opening {shown}"), e)),
        };
        let size = if block_device {
            let mut size = 0u64;
            // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
            unsafe { ioctl::blkgetsize64(file.as_raw_fd(), &mut size) }
                .map_err(|e| Error::io(format!("BLKGETSIZE64 on {shown}"), e.into()))?;
            let mut sector: libc::c_int = 0;
            // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
            unsafe { ioctl::blksszget(file.as_raw_fd(), &mut sector) }
                .map_err(|e| Error::io(format!("BLKSSZGET on {shown}"), e.into()))?;
            if sector as u64 != SECTOR {
                return Err(Error::Invalid(format!(
                    "{shown} has {sector}-byte logical sectors; STAR's GPT uses {SECTOR}-byte sectors"
                )));
            }
            size
        } else {
            file_len
        };
        let mut disk = Disk {
            file,
            path: path.to_path_buf(),
            size,
            block_device,
            direct,
        };
        // Some file systems accept O_DIRECT at open and refuse it at the first read.
        if direct && size >= BLOCK_U64 {
            let mut probe = Block::zeroed();
            if let Err(e) = disk.file.read_exact_at(&mut probe.0, 0) {
                if !is_einval(&e) {
                    return Err(Error::io(format!("reading {shown}"), e));
                }
                disk.file = open(false).map_err(|e| Error::io(format!("opening {shown}"), e))?;
                disk.direct = false;
            }
        }
        Ok(disk)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// Whether I/O bypasses the page cache (false on tmpfs and the like).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), Error> {
        let end = offset.checked_add(len as u64);
        if !offset.is_multiple_of(BLOCK_U64)
            || !len.is_multiple_of(BLOCK)
            || end.is_none_or(|e| e > self.size)
        {
            return Err(Error::io(
                format!("{}: I/O at byte {offset}, {len} bytes", self.path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not whole 4 KiB blocks inside the disk",
                ),
            ));
        }
        Ok(())
    }

    pub fn read_blocks(&self, offset: u64, count: usize) -> Result<Blocks, Error> {
        let mut buf = Blocks::zeroed(count);
        self.check_range(offset, count * BLOCK)?;
        self.file
            .read_exact_at(buf.as_bytes_mut(), offset)
            .map_err(|e| self.io_error("reading", offset, count, e))?;
        Ok(buf)
    }

    pub fn read_block(&self, offset: u64) -> Result<Block, Error> {
        let mut block = Block::zeroed();
        self.check_range(offset, BLOCK)?;
        self.file
            .read_exact_at(&mut block.0, offset)
            .map_err(|e| self.io_error("reading", offset, 1, e))?;
        Ok(block)
    }

    pub fn write_blocks(&self, offset: u64, blocks: &Blocks) -> Result<(), Error> {
        self.write_bytes(offset, blocks.as_bytes(), blocks.count())
    }

    pub fn write_block(&self, offset: u64, block: &Block) -> Result<(), Error> {
        self.write_bytes(offset, &block.0, 1)
    }

    fn write_bytes(&self, offset: u64, bytes: &[u8], count: usize) -> Result<(), Error> {
        self.check_range(offset, bytes.len())?;
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| self.io_error("writing", offset, count, e))
    }

    fn io_error(&self, what: &str, offset: u64, count: usize, e: std::io::Error) -> Error {
        Error::io(
            format!(
                "{what} {count} block(s) at byte {offset} of {}",
                self.path.display()
            ),
            e,
        )
    }

    /// A write barrier: everything written before is on stable storage when this returns.
    /// With O_DSYNC each write already is; this also covers the disk's volatile cache on
    /// file systems where O_DSYNC alone does not flush it.
    pub fn flush(&self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("flushing {}", self.path.display()), e))
    }

    /// Tells the kernel about a new partition. BLKPG works while other partitions of the
    /// disk are in use (LIO holds every exported LUN), where re-reading the whole table
    /// (BLKRRPART) fails with EBUSY. Nothing to do for a regular file.
    pub fn kernel_add_partition(&self, number: u32, start: u64, length: u64) -> Result<(), Error> {
        self.blkpg(
            BLKPG_ADD_PARTITION,
            BlkpgPartition::new(number, start, length),
        )
    }

    /// Tells the kernel a partition is gone; fails with EBUSY while it is held open.
    pub fn kernel_del_partition(&self, number: u32) -> Result<(), Error> {
        self.blkpg(BLKPG_DEL_PARTITION, BlkpgPartition::new(number, 0, 0))
    }

    fn blkpg(&self, op: libc::c_int, mut part: BlkpgPartition) -> Result<(), Error> {
        if !self.block_device {
            return Ok(());
        }
        let arg = BlkpgIoctlArg {
            op,
            flags: 0,
            datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
            data: (&mut part as *mut BlkpgPartition).cast(),
        };
        let what = if op == BLKPG_ADD_PARTITION {
            "BLKPG_ADD_PARTITION"
        } else {
            "BLKPG_DEL_PARTITION"
        };
        // SAFETY: `arg` points at `part`, both live across the call, sizes as the kernel's.
        unsafe { ioctl::blkpg(self.file.as_raw_fd(), &arg) }
            .map(drop)
            .map_err(|e| {
                Error::io(
                    format!(
                        "{what} of partition {} on {}",
                        part.pno,
                        self.path.display()
                    ),
                    e.into(),
                )
            })
    }

    /// Asks the kernel to re-read the whole partition table: only possible while no
    /// partition of the disk is in use, which init (O_EXCL) guarantees.
    pub fn kernel_reread_partitions(&self) -> Result<(), Error> {
        if !self.block_device {
            return Ok(());
        }
        // SAFETY: BLKRRPART takes no argument.
        unsafe { ioctl::blkrrpart(self.file.as_raw_fd()) }
            .map(drop)
            .map_err(|e| Error::io(format!("BLKRRPART on {}", self.path.display()), e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o_direct_refused_falls_back_to_o_dsync() {
        let path = std::env::temp_dir().join(format!("star-disk-io-{}.img", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(2 * BLOCK_U64)
            .unwrap();
        let refuses_direct = |direct: bool| {
            if direct {
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                open_file(&path, Access::ReadWrite, false, false)
            }
        };
        let disk = Disk::open_with(&path, false, 2 * BLOCK_U64, &refuses_direct);
        let _ = std::fs::remove_file(&path);
        let disk = disk.unwrap();
        assert!(!disk.is_direct());
        let mut block = Block::zeroed();
        block.0[7] = 7;
        disk.write_block(BLOCK_U64, &block).unwrap();
        assert_eq!(disk.read_block(BLOCK_U64).unwrap(), block);
        // Unaligned I/O is refused by us, not left to the kernel's EINVAL.
        assert!(disk.read_blocks(100, 1).is_err());
        assert!(disk.read_blocks(2 * BLOCK_U64, 1).is_err());
    }

    #[test]
    fn blkpg_structs_match_the_kernel_abi() {
        // x86-64 and aarch64: three ints, padding, a pointer; two long longs, an int, two
        // 64-byte names, padded to 8.
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::offset_of!(BlkpgPartition, pno), 16);
        assert_eq!(nix::request_code_none!(0x12, 105), 0x1269);
        assert_eq!(nix::request_code_read!(0x12, 114, 8), 0x8008_1272);
    }
}
