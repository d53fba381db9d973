//! The star-witness program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::config::Config;
use crate::server::{self, Witness};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
usage: star-witness [--config FILE] [--check]
       star-witness --node-config STAR_TOML [--state-dir DIR]

The quorum witness for STAR arrays: grants a term with a lease to one controller at a time.
Serves the arrays in FILE (default /etc/star/witness.toml); see docs/witness.md.
  --check        validate FILE and exit (0 when it is valid)
  --node-config  as the appliance runs it: the array of this star.toml, on node 3 only
                 (on a controller it ends at once, cleanly)
  --state-dir    with --node-config (default /run/star/witness; it does not survive a
                 reboot, so after one no term is granted until a lease has passed)";

pub fn main() -> ExitCode {
    let mut config = PathBuf::from("/etc/star/witness.toml");
    let mut check = false;
    let mut node_config: Option<PathBuf> = None;
    let mut state_dir = PathBuf::from("/run/star/witness");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--node-config" | "--state-dir" => match args.next() {
                Some(f) if a == "--node-config" => node_config = Some(f.into()),
                Some(f) => state_dir = f.into(),
                None => {
                    eprintln!("star-witness: {a} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--config" => match args.next() {
                Some(f) => config = f.into(),
                None => {
                    eprintln!("star-witness: --config needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("star-witness: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let loaded = match &node_config {
        Some(path) => from_node_config(path, &state_dir),
        None => Config::load(&config).map_err(|e| e.to_string()).map(Some),
    };
    let cfg = match loaded {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}: valid, {} arrays", config.display(), cfg.arrays.len());
        return ExitCode::SUCCESS;
    }
    // The lease of a persisted owner runs from here: open the state before listening, so
    // no request is answered before it is in force.
    let witness = match Witness::open(
        &cfg,
        crate::grant::Now {
            mono_ms: 0,
            unix_ms: 0,
        },
    ) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("star-witness: {e}");
            return ExitCode::FAILURE;
        }
    };
    for line in witness.summary(witness.now()) {
        eprintln!("star-witness: {line}");
    }
    let listener = match TcpListener::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("star-witness: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().map_or(cfg.listen, |a| a);
    // On stdout, one line, so a test or a script can learn the port bound for port 0.
    println!("star-witness: listening on {bound}");
    let _ = std::io::stdout().flush();
    eprintln!(
        "star-witness: lease {} ms, clock window {} ms",
        cfg.lease.as_millis(),
        cfg.max_skew.as_millis()
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    match server::serve(witness, listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("star-witness: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The witness of the appliance's node 3; `None` on a controller, where it has nothing
/// to do (the image runs the same services on every node).
fn from_node_config(
    path: &std::path::Path,
    state_dir: &std::path::Path,
) -> Result<Option<Config>, String> {
    use star_core::node_config::{NodeConfig, Role};
    let node = NodeConfig::load(path).map_err(|e| e.to_string())?;
    if node.node.role != Role::Witness {
        eprintln!(
            "star-witness: this node is controller {}: the witness runs on node 3",
            node.node.id
        );
        return Ok(None);
    }
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("star-witness: {}: {e}", state_dir.display()))?;
    Config::from_node_config(&node, state_dir)
        .map(Some)
        .map_err(|e| format!("star-witness: {}: {e}", path.display()))
}
