//! The star-net program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::service::Service;
use star_core::node_config::NodeConfig;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: star-net [--config FILE] [--status SOCKET]

Brings up the interfaces of star.toml (default /run/star/star.toml, written by
star-config): static addresses and routes over netlink, DHCP leases kept renewed. Tells
star-init it is ready once every interface has its address; answers {\"cmd\":\"status\"}
on SOCKET (default /run/star/net.sock).";

pub fn main() -> ExitCode {
    let mut config = PathBuf::from("/run/star/star.toml");
    let mut status = PathBuf::from("/run/star/net.sock");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().unwrap_or_default().into(),
            "--status" => status = args.next().unwrap_or_default().into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("star-net: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    wait_for_kernel_randomness();
    let node = match NodeConfig::load(&config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("star-net: {e}");
            return ExitCode::from(2);
        }
    };
    let mut service = match Service::new(&node, &status) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("star-net: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = service.start() {
        eprintln!("star-net: {e}");
        return ExitCode::FAILURE;
    }
    service.run()
}

/// The DHCP library draws transaction ids from the operating system's random source, and
/// its fallback path only polls /dev/random, which does not get the kernel going: in a VM
/// without a hardware random source (QEMU's TCG has no RDRAND) that waits for minutes. A
/// blocking getrandom(2) makes the kernel (5.18+) gather jitter entropy until its generator
/// is ready, a second or so, after which every later request is immediate.
fn wait_for_kernel_randomness() {
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    // SAFETY: getrandom writes at most one byte into `byte`.
    let got = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), 1, 0) };
    let waited = started.elapsed();
    if got != 1 {
        eprintln!("star-net: getrandom: {}", std::io::Error::last_os_error());
    } else if waited > std::time::Duration::from_millis(200) {
        println!(
            "star-net: waited {:.1} s for the kernel's random number generator",
            waited.as_secs_f64()
        );
    }
}
