use star_witness::config::Config;
use star_witness::server::{self, Witness};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
usage: star-witness [--config FILE] [--check]

The quorum witness for STAR arrays: grants a term with a lease to one controller at a time.
Serves the arrays in FILE (default /etc/star/witness.toml); see docs/witness.md.
  --check   validate FILE and exit (0 when it is valid)";

fn main() -> ExitCode {
    let mut config = PathBuf::from("/etc/star/witness.toml");
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
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
    let cfg = match Config::load(&config) {
        Ok(c) => c,
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
        star_witness::grant::Now {
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
