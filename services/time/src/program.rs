//! The star-time program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::sntp::{self, NtpTime, Sample};
use star_core::node_config::NodeConfig;
use std::net::{ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

const USAGE: &str = "\
usage: star-time [--config FILE] [--server HOST[:PORT]] [--once] [--dry-run]

Keeps the clock with SNTP against the server given, or star.toml's time.ntp_server
(default config /run/star/star.toml). Offsets over 0.5 s are stepped, smaller ones slewed.
  --once     one measurement, then exit (0 when the server answered)
  --dry-run  measure and print, never touch the clock";

const POLL_MIN: Duration = Duration::from_secs(64);
const POLL_MAX: Duration = Duration::from_secs(1024);

pub fn main() -> ExitCode {
    let mut config = PathBuf::from("/run/star/star.toml");
    let mut server = None;
    let mut once = false;
    let mut dry_run = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().unwrap_or_default().into(),
            "--server" => server = args.next(),
            "--once" => once = true,
            "--dry-run" => dry_run = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("star-time: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if !dry_run {
        clock_from_rtc();
    }
    let server = match server {
        Some(s) => s,
        None => match NodeConfig::load(&config) {
            Ok(node) => match node.ntp_server {
                Some(s) => s,
                None => {
                    println!("star-time: no time.ntp_server in star.toml: keeping the clock the RTC gave");
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                    return ExitCode::SUCCESS;
                }
            },
            Err(e) => {
                eprintln!("star-time: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let address = if server.contains(':') {
        server.clone()
    } else {
        format!("{server}:123")
    };
    let mut poll = POLL_MIN;
    let mut announced = false;
    loop {
        let result = measure(&address);
        match &result {
            Ok(s) => {
                println!(
                    "star-time: {server}: offset {:+.3} s, delay {:.3} s, stratum {}",
                    s.offset, s.delay, s.stratum
                );
                if !dry_run {
                    if let Err(e) = correct(s.offset) {
                        eprintln!("star-time: cannot set the clock: {e}");
                    }
                }
                poll = if s.offset.abs() < 0.05 {
                    (poll * 2).min(POLL_MAX)
                } else {
                    POLL_MIN
                };
            }
            Err(e) => {
                println!("star-time: {server}: {e}");
                poll = POLL_MIN;
            }
        }
        if once {
            return if result.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        if !announced {
            // Ready after the first attempt either way: an unreachable time server must not
            // keep the array from serving; the console says what happened.
            announced = true;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        }
        std::thread::sleep(poll);
    }
}

/// One exchange, three tries two seconds apart.
fn measure(address: &str) -> Result<Sample, String> {
    let target = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to nothing"))?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .connect(target)
        .map_err(|e| format!("{target}: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut last = String::from("no answer");
    for _ in 0..3 {
        let t1 = NtpTime::from_system(SystemTime::now());
        if let Err(e) = socket.send(&sntp::request(t1)) {
            last = format!("{target}: {e}");
            continue;
        }
        let mut buf = [0u8; 512];
        match socket.recv(&mut buf) {
            Ok(n) => {
                let t4 = NtpTime::from_system(SystemTime::now());
                return sntp::parse_reply(&buf[..n], t1, t4);
            }
            Err(e) => last = format!("{target}: no answer within 2 s ({e})"),
        }
    }
    Err(last)
}

fn correct(offset: f64) -> std::io::Result<()> {
    let d = sntp::duration_of(offset);
    if sntp::should_step(offset) {
        let now = SystemTime::now();
        let target = if offset > 0.0 { now + d } else { now - d };
        set_clock(target)
    } else {
        let micros = (offset * 1e6) as i64;
        let tv = libc::timeval {
            tv_sec: micros.div_euclid(1_000_000),
            tv_usec: micros.rem_euclid(1_000_000),
        };
        // SAFETY: adjtime reads one timeval and may write none.
        if unsafe { libc::adjtime(&tv, std::ptr::null_mut()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn set_clock(t: SystemTime) -> std::io::Result<()> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: clock_settime reads one timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel sets the clock from the RTC at boot (hctosys); should it not have (no RTC
/// driver at that point), the clock is still at 1970 and the RTC's time is taken here.
fn clock_from_rtc() {
    let Ok(text) = std::fs::read_to_string("/sys/class/rtc/rtc0/since_epoch") else {
        return;
    };
    let Ok(rtc) = text.trim().parse::<u64>() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if now + 2 < rtc {
        match set_clock(SystemTime::UNIX_EPOCH + Duration::from_secs(rtc)) {
            Ok(()) => println!("star-time: clock set from the RTC"),
            Err(e) => eprintln!("star-time: cannot set the clock from the RTC: {e}"),
        }
    }
}
