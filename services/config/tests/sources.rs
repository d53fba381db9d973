//! star-config against its real sources: a FAT partition found through (a copy of) sysfs,
//! an IMDSv2 responder on loopback, and the kernel command line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const STAR_CONFIG: &str = env!("CARGO_BIN_EXE_star-config");

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../board/examples")
            .join(name),
    )
    .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("star-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A sysfs and /dev in `dir` with one partition named STAR-CONFIG: a FAT file system that
/// holds `star_toml` (or nothing).
fn disk_with(dir: &Path, star_toml: Option<&str>) -> (PathBuf, PathBuf) {
    let sys = dir.join("sys");
    let dev = dir.join("dev");
    for (part, name) in [("vda1", "STAR-ESP"), ("vda2", "STAR-CONFIG")] {
        std::fs::create_dir_all(sys.join("class/block").join(part)).unwrap();
        std::fs::write(
            sys.join("class/block").join(part).join("uevent"),
            format!(
                "MAJOR=254\nMINOR=1\nDEVNAME={part}\nDEVTYPE=partition\nPARTN=1\nPARTNAME={name}\n"
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(&dev).unwrap();
    let image = dev.join("vda2");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&image)
        .unwrap();
    file.set_len(8 << 20).unwrap();
    fatfs::format_volume(
        &file,
        fatfs::FormatVolumeOptions::new().volume_label(*b"STAR-CONFIG"),
    )
    .unwrap();
    if let Some(text) = star_toml {
        let fs = fatfs::FileSystem::new(&file, fatfs::FsOptions::new()).unwrap();
        let mut f = fs.root_dir().create_file("star.toml").unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
    std::fs::write(dev.join("vda1"), b"").unwrap();
    (sys, dev)
}

fn run(
    dir: &Path,
    board: &str,
    cmdline: &str,
    sys: &Path,
    dev: &Path,
    imds: &str,
) -> (Option<i32>, String) {
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    let o = Command::new(STAR_CONFIG)
        .args([
            "--board",
            board,
            "--imds",
            imds,
            "--partition-wait",
            "0",
            "--out",
        ])
        .arg(dir.join("run/star.toml"))
        .arg("--cmdline")
        .arg(dir.join("cmdline"))
        .arg("--sys")
        .arg(sys)
        .arg("--dev")
        .arg(dev)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn star_toml_from_the_config_partition() {
    let dir = scratch("partition");
    let (sys, dev) = disk_with(&dir, Some(&example("qemu.star.toml")));
    let (code, out) = run(
        &dir,
        "qemu",
        "console=ttyS0 quiet",
        &sys,
        &dev,
        "http://127.0.0.1:9",
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "star-config: ctl1 (controller 1) of array star0001, from {}:star.toml",
            dev.join("vda2").display()
        )
    );
    let written = std::fs::read_to_string(dir.join("run/star.toml")).unwrap();
    assert_eq!(written, example("qemu.star.toml"));
}

#[test]
fn the_kernel_command_line_overrides_single_values() {
    let dir = scratch("overrides");
    let (sys, dev) = disk_with(&dir, Some(&example("qemu.star.toml")));
    let (code, out) = run(
        &dir,
        "qemu",
        "star.node.name=ctl2 star.node.id=2 star.rescue",
        &sys,
        &dev,
        "http://127.0.0.1:9",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ctl2 (controller 2) of array star0001"),
        "{out}"
    );
    assert!(
        out.contains("with star.node.name=ctl2 star.node.id=2 from the kernel command line"),
        "{out}"
    );
    let (code, out) = run(
        &dir,
        "qemu",
        "star.node.id=5",
        &sys,
        &dev,
        "http://127.0.0.1:9",
    );
    assert_eq!(code, Some(2));
    assert!(
        out.contains(
            "star-config: error: kernel command line: node.id: a controller is node 1 or 2, not 5"
        ),
        "{out}"
    );
}

#[test]
fn a_partition_without_star_toml_is_reported_and_nothing_is_written() {
    let dir = scratch("empty");
    let (sys, dev) = disk_with(&dir, None);
    let (code, out) = run(&dir, "qemu", "", &sys, &dev, "http://127.0.0.1:9");
    assert_eq!(code, Some(2));
    assert!(
        out.contains(&format!(
            "the STAR-CONFIG partition ({}) has no star.toml",
            dev.join("vda2").display()
        )),
        "{out}"
    );
    assert!(out.contains("will not start"), "{out}");
    assert!(!dir.join("run/star.toml").exists());
}

#[test]
fn a_bad_star_toml_names_the_partition_file_line_and_key() {
    let dir = scratch("bad");
    let bad = example("qemu.star.toml").replace("method = \"arp\"", "method = \"carrier-pigeon\"");
    let (sys, dev) = disk_with(&dir, Some(&bad));
    let (code, out) = run(&dir, "qemu", "", &sys, &dev, "http://127.0.0.1:9");
    assert_eq!(code, Some(2));
    let place = format!(
        "{}:star.toml:26:10: floating.method: \"carrier-pigeon\" is not a takeover method",
        dev.join("vda2").display()
    );
    assert!(out.contains(&place), "{out}");
    assert!(!dir.join("run/star.toml").exists());
}

/// A minimal IMDSv2: PUT /latest/api/token gives a token; GET /latest/user-data needs it.
fn imds(user_data: Option<String>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut token = None;
            let mut ttl = false;
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_string();
                if h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("x-aws-ec2-metadata-token: ") {
                    token = Some(v.to_string());
                }
                if lower.starts_with("x-aws-ec2-metadata-token-ttl-seconds:") {
                    ttl = true;
                }
                if let Some(v) = lower.strip_prefix("content-length: ") {
                    length = v.parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(request_line.trim().to_string());
            let (status, body) = match request_line
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["PUT", "/latest/api/token"] if ttl => ("200 OK", "tok-123".to_string()),
                ["GET", "/latest/user-data"] if token.as_deref() == Some("tok-123") => {
                    match &user_data {
                        Some(u) => ("200 OK", u.clone()),
                        None => ("404 Not Found", String::new()),
                    }
                }
                ["GET", _] => ("401 Unauthorized", String::new()),
                _ => ("400 Bad Request", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn on_aws_the_user_data_comes_first_through_imdsv2() {
    let dir = scratch("imds");
    let (sys, dev) = disk_with(&dir, Some(&example("qemu.star.toml")));
    let (url, seen) = imds(Some(example("aws-ec2.star.toml")));
    let (code, out) = run(&dir, "aws-ec2", "", &sys, &dev, &url);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ctl1 (controller 1) of array star-ec2, from EC2 user-data"),
        "{out}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "PUT /latest/api/token HTTP/1.1",
            "GET /latest/user-data HTTP/1.1"
        ]
    );
}

#[test]
fn on_aws_without_user_data_the_partition_is_next_and_the_absence_is_said() {
    let dir = scratch("imds-none");
    let (sys, dev) = disk_with(&dir, None);
    let (url, _) = imds(None);
    let (code, out) = run(&dir, "aws-ec2", "", &sys, &dev, &url);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("star-config: error:   this instance has no EC2 user-data"),
        "{out}"
    );
    assert!(out.contains("has no star.toml"), "{out}");
    assert!(
        out.contains("give the instance its star.toml as user-data"),
        "{out}"
    );
}

#[test]
fn check_validates_a_file_offline() {
    let dir = scratch("check");
    let f = dir.join("star.toml");
    std::fs::write(&f, example("lab-witness.star.toml")).unwrap();
    let o = Command::new(STAR_CONFIG)
        .arg("--check")
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("valid: witness (node 3) of array star-lab")
    );
}
