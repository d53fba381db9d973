//! star-disk: the shared disk both controllers read one truth from.
//!
//! The disk is a plain GPT disk (see [`layout`]): partition 1 is STAR's metadata area,
//! partitions 2..N are the LUNs, named `star-lun-<name>` so that `sfdisk -l` shows the
//! array. Inside the metadata area every record is one 4 KiB block with a magic, a
//! version, a sequence and a CRC32C ([`record`]), and the array config is kept twice
//! under a growing generation number ([`config_store`]) so that a torn write leaves the
//! previous config readable.
//!
//! Pure logic (the codecs, the GPT, the plans of each change) is kept apart from the
//! I/O ([`io`]), so the rules are tested on byte buffers and the I/O on temporary files.
//!
//! - [`layout`]: where everything is.
//! - [`record`]: the 4 KiB block codec every metadata record uses.
//! - [`gpt`], [`guid`]: reading and writing the partition table, of the shared disk and
//!   of the disk images star-image builds.
//! - [`superblock`]: which array this disk belongs to.
//! - [`config_store`]: the double-buffered array config.
//! - [`probe`], [`init`]: recognising what a disk holds and initializing it.
//! - [`luns`], [`hosts`]: changes to the array, read-modify-write under the generation.
//! - [`check`]: what is on the disk and what disagrees.
//! - [`io`], [`buf`]: aligned block I/O (O_DIRECT|O_DSYNC) and the kernel's partition
//!   ioctls.
//! - [`array`](mod@array): an opened STAR disk; [`entropy`]: where random values come
//!   from; [`error`]: what went wrong, and whether anything was written.

pub mod array;
pub mod buf;
pub mod changes;
pub mod check;
pub mod config_store;
pub mod entropy;
pub mod error;
pub mod gpt;
pub mod guid;
pub mod hosts;
pub mod init;
pub mod io;
pub mod layout;
pub mod locate;
pub mod luns;
pub mod ownership;
pub mod portals;
pub mod probe;
pub mod record;
pub mod superblock;

pub use error::Error;
