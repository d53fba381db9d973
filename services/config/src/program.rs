//! The star-config program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::resolve::{board_of, resolve, write_atomically, Sources};
use star_core::node_config::NodeConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: star-config [--out FILE] [--board NAME] [--cmdline FILE] [--sys DIR] [--dev DIR] [--imds URL]
                   [--partition-wait SECONDS] [--set-hostname]
       star-config --check FILE

Finds this node's star.toml (EC2 user-data on aws-ec2, else the STAR-CONFIG partition,
then star.SECTION.KEY=VALUE overrides from the kernel command line), validates it, writes
it to FILE (default /run/star/star.toml) and tells star-init it is ready. On aws-ec2,
with the real metadata service, it first takes a DHCP lease on the first Ethernet
interface for the fetch, and gives the address back afterwards. On a mistake it
prints every one, with where it is, and exits 2: the services that need the
configuration do not start. --set-hostname makes node.name the system's host name.";

pub fn main() -> ExitCode {
    let mut out = PathBuf::from("/run/star/star.toml");
    let mut board = None;
    let mut cmdline_file = PathBuf::from("/proc/cmdline");
    let mut sys = PathBuf::from("/sys");
    let mut dev = PathBuf::from("/dev");
    let mut imds = crate::imds::IMDS.to_string();
    let mut partition_wait = Duration::from_secs(10);
    let mut set_hostname = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--out" => out = value().into(),
            "--board" => board = Some(value()),
            "--cmdline" => cmdline_file = value().into(),
            "--sys" => sys = value().into(),
            "--dev" => dev = value().into(),
            "--imds" => imds = value(),
            "--set-hostname" => set_hostname = true,
            "--partition-wait" => {
                partition_wait = Duration::from_secs(value().parse().unwrap_or(10))
            }
            "--check" => {
                let file = PathBuf::from(value());
                return match NodeConfig::load(&file) {
                    Ok(c) => {
                        println!(
                            "{}: valid: {} (node {}) of array {}",
                            file.display(),
                            c.node.name,
                            c.node.id,
                            c.array_name
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(2)
                    }
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("star-config: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let board = board.unwrap_or_else(|| board_of(Path::new("/etc/os-release")));
    let cmdline = std::fs::read_to_string(&cmdline_file).unwrap_or_default();
    let sources = Sources {
        board: &board,
        sys: &sys,
        dev: &dev,
        imds: &imds,
        imds_timeout: Duration::from_secs(5),
        bootstrap_network: imds == crate::imds::IMDS,
        partition_wait,
        cmdline: &cmdline,
    };
    match resolve(&sources) {
        Ok(r) => {
            if let Err(e) = write_atomically(&out, &r.text) {
                eprintln!("star-config: error: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            let c = &r.config;
            // The node's name is its identity in the array, whatever name a DHCP server
            // (EC2's ip-10-0-1-23) would give the address it leases.
            if set_hostname {
                if let Err(e) = nix::unistd::sethostname(&c.node.name) {
                    eprintln!("star-config: warning: host name {}: {e}", c.node.name);
                }
            }
            println!(
                "star-config: {} ({} {}) of array {}, from {}",
                c.node.name,
                match c.node.role {
                    star_core::node_config::Role::Controller => "controller",
                    star_core::node_config::Role::Witness => "witness",
                },
                c.node.id,
                c.array_name,
                r.origin
            );
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Status(&format!("{} of {}", c.node.name, c.array_name)),
                sd_notify::NotifyState::Ready,
            ]);
            ExitCode::SUCCESS
        }
        Err(lines) => {
            for l in &lines {
                println!("star-config: error: {l}");
            }
            println!("star-config: the services that need star.toml will not start; fix it and run `star start config`");
            ExitCode::from(2)
        }
    }
}
