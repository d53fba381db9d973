//! star-image: builds STAR's bootable disk images from a board profile, without root.
//! The pipeline is in [`build`]; each format it writes has a module of its own.

pub mod board;
pub mod build;
pub mod cpio;
pub mod debs;
pub mod fat;
pub mod gpt;
pub mod modules;
pub mod scripts;
pub mod tools;
pub mod uki;
