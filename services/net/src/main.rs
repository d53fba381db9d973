use star_core::node_config::NodeConfig;
use star_net::service::Service;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: star-net [--config FILE] [--status SOCKET]

Brings up the interfaces of star.toml (default /run/star/star.toml, written by
star-config): static addresses and routes over netlink, DHCP leases kept renewed. Tells
star-init it is ready once every interface has its address; answers {\"cmd\":\"status\"}
on SOCKET (default /run/star/net.sock).";

fn main() -> ExitCode {
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
