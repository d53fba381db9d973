use star_image::build::{build, BuildOptions};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: star-image build --board NAME [options]
       star-image boards

  --board NAME        qemu, virtualbox or aws-ec2 (board/NAME.toml)
  --out DIR           where the artifacts go (default: out/NAME)
  --config FILE       star.toml for the config partition
  --kernel-deb FILE   use this kernel package instead of downloading the board's
  --bin-dir DIR       prebuilt static star-init and star (default: built with cargo)
  --cache DIR         downloaded and unpacked packages (default: .cache)
  --seed TEXT         what every GUID is derived from (default: star-NAME)

SOURCE_DATE_EPOCH sets every timestamp (default: the last commit's time). Run from the
top of the source tree.";

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match args.first().map(String::as_str) {
        Some("boards") => {
            for b in star_image::board::known_boards(&root.join("board")) {
                println!("{b}");
            }
            return ExitCode::SUCCESS;
        }
        Some("build") => {}
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut board = None;
    let mut out = None;
    let mut config = None;
    let mut kernel_deb = None;
    let mut bin_dir = None;
    let mut cache = None;
    let mut seed = None;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned();
        match a.as_str() {
            "--board" => board = value(),
            "--out" => out = value().map(PathBuf::from),
            "--config" => config = value().map(PathBuf::from),
            "--kernel-deb" => kernel_deb = value().map(PathBuf::from),
            "--bin-dir" => bin_dir = value().map(PathBuf::from),
            "--cache" => cache = value().map(PathBuf::from),
            "--seed" => seed = value(),
            other => {
                eprintln!("star-image: unknown option {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(board) = board else {
        eprintln!(
            "star-image: --board is needed; known boards: {}",
            star_image::board::known_boards(&root.join("board")).join(", ")
        );
        return ExitCode::from(2);
    };
    let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(|| git(&["log", "-1", "--format=%ct"]).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let mut revision = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
        revision.push_str("-dirty");
    }
    let opts = BuildOptions {
        out_dir: out.unwrap_or_else(|| root.join("out").join(&board)),
        cache_dir: cache.unwrap_or_else(|| root.join(".cache")),
        seed: seed.unwrap_or_else(|| format!("star-{board}")),
        board,
        root,
        kernel_deb,
        config,
        bin_dir,
        source_date_epoch,
        source_revision: revision,
    };
    match build(&opts) {
        Ok(m) => {
            for a in &m.artifacts {
                println!(
                    "{:>10}  {}  {}",
                    a.size,
                    a.sha256,
                    opts.out_dir.join(&a.file).display()
                );
            }
            println!(
                "kernel {} ({}), {} modules",
                m.kernel_release,
                m.kernel_version,
                m.modules.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("star-image: {e}");
            ExitCode::FAILURE
        }
    }
}
