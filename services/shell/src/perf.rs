//! `star perf`: what each LUN is doing right now, refreshed every second: IOPS,
//! throughput and latency per LUN and for this controller, with a small graph of the last
//! minutes under the table.
//!
//! The numbers are the kernel's block statistics (/sys/class/block/NAME/stat) of each LUN's
//! partition on the shared disk, which is what LIO's iblock backstore reads and writes:
//! every initiator command that reaches the disk is counted there, with the time the disk
//! took. LIO's own per-LUN counters are in whole MiB and have no latency, so they would
//! show nothing for small I/O. Each controller sees only its own traffic; the standby's
//! LUNs are idle by design (ALUA Standby), so `perf` on the active shows the array's load.
//!
//! The history lives in this process: the graphs fill from the moment `perf` starts.

use crate::commands::Outcome;
use serde_json::json;
use star_core::target_status::TargetStatus;
use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The counters of one block device, fields 1-9 of its `stat` file (see the kernel's
/// Documentation/block/stat.rst): I/Os completed, 512-byte sectors, milliseconds spent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub write_ms: u64,
    pub in_flight: u64,
}

pub fn parse_stat(text: &str) -> Result<DiskCounters, String> {
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!(
                "a block stat line that is not all numbers: {:?}",
                text.trim()
            )
        })?;
    if fields.len() < 9 {
        return Err(format!(
            "a block stat line of {} fields, at least 9 expected: {:?}",
            fields.len(),
            text.trim()
        ));
    }
    // reads, reads merged, sectors read, ms reading, writes, merged, sectors, ms, in flight
    Ok(DiskCounters {
        reads: fields[0],
        read_sectors: fields[2],
        read_ms: fields[3],
        writes: fields[4],
        write_sectors: fields[6],
        write_ms: fields[7],
        in_flight: fields[8],
    })
}

/// One interval's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    pub read_iops: f64,
    pub write_iops: f64,
    pub read_mib_s: f64,
    pub write_mib_s: f64,
    /// Mean time the disk took per completed I/O; None when none completed.
    pub read_latency_ms: Option<f64>,
    pub write_latency_ms: Option<f64>,
    pub in_flight: u64,
}

impl Rates {
    pub fn iops(&self) -> f64 {
        self.read_iops + self.write_iops
    }
    pub fn mib_s(&self) -> f64 {
        self.read_mib_s + self.write_mib_s
    }
}

const SECTOR: f64 = 512.0;
const MIB: f64 = 1024.0 * 1024.0;

/// The rates between two readings `secs` apart. Counters that went backwards (the
/// partition was deleted and made again) count as no traffic rather than a huge number.
pub fn rates(before: &DiskCounters, now: &DiskCounters, secs: f64) -> Rates {
    let secs = secs.max(1e-3);
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let reads = d(before.reads, now.reads);
    let writes = d(before.writes, now.writes);
    let latency = |ms: u64, ios: u64| (ios > 0).then(|| ms as f64 / ios as f64);
    Rates {
        read_iops: reads as f64 / secs,
        write_iops: writes as f64 / secs,
        read_mib_s: d(before.read_sectors, now.read_sectors) as f64 * SECTOR / MIB / secs,
        write_mib_s: d(before.write_sectors, now.write_sectors) as f64 * SECTOR / MIB / secs,
        read_latency_ms: latency(d(before.read_ms, now.read_ms), reads),
        write_latency_ms: latency(d(before.write_ms, now.write_ms), writes),
        in_flight: now.in_flight,
    }
}

/// Sums the LUNs' rates into the controller's. Latencies are weighted by I/O count.
pub fn total(all: &[Rates]) -> Rates {
    let mut t = Rates::default();
    let (mut read_ms, mut write_ms) = (0.0, 0.0);
    for r in all {
        t.read_iops += r.read_iops;
        t.write_iops += r.write_iops;
        t.read_mib_s += r.read_mib_s;
        t.write_mib_s += r.write_mib_s;
        t.in_flight += r.in_flight;
        read_ms += r.read_latency_ms.unwrap_or(0.0) * r.read_iops;
        write_ms += r.write_latency_ms.unwrap_or(0.0) * r.write_iops;
    }
    t.read_latency_ms = (t.read_iops > 0.0).then(|| read_ms / t.read_iops);
    t.write_latency_ms = (t.write_iops > 0.0).then(|| write_ms / t.write_iops);
    t
}

/// The last `capacity` samples of one figure.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    samples: VecDeque<f64>,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }
    pub fn push(&mut self, value: f64) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(value);
    }
    pub fn values(&self) -> Vec<f64> {
        self.samples.iter().copied().collect()
    }
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII: [char; 8] = ['_', '.', ',', '-', '~', '=', '*', '#'];

/// A graph of `values` in at most `width` columns, each column the mean of the samples it
/// covers (so a long history still fits one line), scaled to the largest column. A column
/// with no traffic is a blank, so idle and "a little" look different.
pub fn sparkline(values: &[f64], width: usize, ascii: bool) -> String {
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let per_column = values.len().div_ceil(width);
    let columns: Vec<f64> = values
        .chunks(per_column)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let peak = columns.iter().copied().fold(0.0, f64::max);
    let glyphs = if ascii { &ASCII } else { &BLOCKS };
    columns
        .iter()
        .map(|&v| {
            if v <= 0.0 || peak <= 0.0 {
                ' '
            } else {
                let level = ((v / peak) * glyphs.len() as f64).ceil() as usize;
                glyphs[level.clamp(1, glyphs.len()) - 1]
            }
        })
        .collect()
}

/// `perf`'s options.
#[derive(Debug, PartialEq)]
pub struct PerfArgs {
    /// Frames to show before ending on its own; None runs until Ctrl-C.
    pub count: Option<u64>,
    pub interval: Duration,
}

pub fn parse_args(args: &[&str]) -> Result<PerfArgs, String> {
    let mut parsed = PerfArgs {
        count: None,
        interval: Duration::from_secs(1),
    };
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "-n" | "--count" => {
                let v = args.get(i + 1).ok_or("-n wants a number of screens")?;
                let n: u64 =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("-n wants a number of screens above 0, not {v:?}")
                    })?;
                parsed.count = Some(n);
                i += 1;
            }
            "--interval" => {
                let v = args.get(i + 1).ok_or("--interval wants seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s| (0.1..=60.0).contains(s))
                    .ok_or_else(|| format!("--interval wants seconds from 0.1 to 60, not {v:?}"))?;
                parsed.interval = Duration::from_secs_f64(secs);
                i += 1;
            }
            other => {
                return Err(format!(
                    "perf: unknown argument {other:?} (perf [-n COUNT] [--interval SECS])"
                ))
            }
        }
        i += 1;
    }
    Ok(parsed)
}

/// One LUN in one frame.
#[derive(Debug, Clone)]
pub struct LunFrame {
    pub name: String,
    /// None when this controller does not export it (yet), with the reason.
    pub rates: Result<Rates, String>,
}

/// Everything one screen shows.
#[derive(Debug, Clone)]
pub struct Frame {
    pub host: String,
    pub node: u8,
    pub role: String,
    pub interval: Duration,
    pub luns: Vec<LunFrame>,
    /// Shown when the target did not answer this time; the last LUN list stays.
    pub problem: Option<String>,
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The screen of `perf`: the table, then a graph of IOPS and of MiB/s per LUN.
pub fn render(
    frame: &Frame,
    histories: &BTreeMap<String, (History, History)>,
    ascii: bool,
) -> String {
    let mut out = format!(
        "{} (controller {}, {}): I/O every {:.1} s, graphs of the last {}; Ctrl-C ends\n\n",
        frame.host,
        frame.node,
        frame.role,
        frame.interval.as_secs_f64(),
        crate::human_duration(
            histories
                .values()
                .map(|(h, _)| h.samples.len())
                .max()
                .unwrap_or(0) as f64
                * frame.interval.as_secs_f64()
        ),
    );
    if let Some(p) = &frame.problem {
        out.push_str(&format!("{p}\n\n"));
    }
    if frame.luns.is_empty() {
        out.push_str("no LUNs (lun create NAME SIZE makes one)\n");
        return out;
    }
    let row = |name: &str, r: &Rates| {
        [
            name.to_string(),
            format!("{:.0}", r.read_iops),
            format!("{:.0}", r.write_iops),
            format!("{:.2}", r.read_mib_s),
            format!("{:.2}", r.write_mib_s),
            cell(r.read_latency_ms, 2),
            cell(r.write_latency_ms, 2),
            r.in_flight.to_string(),
        ]
    };
    let mut rows = Vec::new();
    let mut measured = Vec::new();
    let mut unmeasured = String::new();
    for l in &frame.luns {
        match &l.rates {
            Ok(r) => {
                rows.push(row(&l.name, r));
                measured.push(*r);
            }
            Err(why) => unmeasured.push_str(&format!("{}: {why}\n", l.name)),
        }
    }
    rows.push(row(&format!("ctl{} all", frame.node), &total(&measured)));
    out.push_str(&crate::status::table(
        [
            "LUN",
            "READ IOPS",
            "WRITE IOPS",
            "READ MiB/s",
            "WRITE MiB/s",
            "READ ms",
            "WRITE ms",
            "QUEUE",
        ],
        &rows,
    ));
    out.push_str(&unmeasured);
    let width = 60;
    let name_width = frame.luns.iter().map(|l| l.name.len()).max().unwrap_or(0);
    out.push('\n');
    for l in &frame.luns {
        let Some((iops, mib)) = histories.get(&l.name) else {
            continue;
        };
        let peak = |h: &History| h.samples.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "{:name_width$}  IOPS  |{:width$}| peak {:.0}\n",
            l.name,
            sparkline(&iops.values(), width, ascii),
            peak(iops),
        ));
        out.push_str(&format!(
            "{:name_width$}  MiB/s |{:width$}| peak {:.2}\n",
            "",
            sparkline(&mib.values(), width, ascii),
            peak(mib),
        ));
    }
    out
}

/// The JSON of one frame, for scripts (`star --json perf`).
pub fn to_json(frame: &Frame) -> serde_json::Value {
    let rates = |r: &Rates| {
        json!({
            "read_iops": r.read_iops,
            "write_iops": r.write_iops,
            "read_mib_s": r.read_mib_s,
            "write_mib_s": r.write_mib_s,
            "read_latency_ms": r.read_latency_ms,
            "write_latency_ms": r.write_latency_ms,
            "in_flight": r.in_flight,
        })
    };
    let measured: Vec<Rates> = frame
        .luns
        .iter()
        .filter_map(|l| l.rates.as_ref().ok().copied())
        .collect();
    json!({
        "host": frame.host,
        "node": frame.node,
        "role": frame.role,
        "interval_sec": frame.interval.as_secs_f64(),
        "luns": frame.luns.iter().map(|l| match &l.rates {
            Ok(r) => json!({"name": l.name, "rates": rates(r)}),
            Err(e) => json!({"name": l.name, "error": e}),
        }).collect::<Vec<_>>(),
        "controller": rates(&total(&measured)),
        "problem": frame.problem,
    })
}

/// Where the block statistics of a LUN's device are: its /dev path resolved through
/// symlinks (udev's by-partlabel names) to the kernel's name.
fn stat_path(sys_block: &Path, device: &str) -> Result<PathBuf, String> {
    if device.is_empty() {
        return Err("not exported on this controller".into());
    }
    let real = std::fs::canonicalize(device).map_err(|e| format!("{device}: {e}"))?;
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{device}: no device name"))?;
    Ok(sys_block.join(name).join("stat"))
}

fn read_counters(path: &Path) -> Result<DiskCounters, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_stat(&text)
}

/// Whether the terminal shows the block characters: a UTF-8 locale. A serial console
/// without one gets ASCII rather than mojibake.
fn ascii_only() -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    !(locale.contains("utf-8") || locale.contains("utf8"))
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    !stop.load(Ordering::Relaxed)
}

/// Keeps the five minutes of history the graphs show, at any interval.
const HISTORY: Duration = Duration::from_secs(300);

pub fn run(args: &[&str], json_out: bool, stop: &AtomicBool) -> Outcome {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => return Outcome::not_understood(e),
    };
    let sys_block = std::env::var_os("STAR_SYS_BLOCK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/class/block"));
    let first = match crate::status::ask_target() {
        Ok(t) => t,
        Err(e) => {
            return Outcome {
                text: format!(
                    "{e}: perf reads the LUNs from star-target; `services` shows whether it runs"
                ),
                ok: false,
                code: 3,
            }
        }
    };
    let capacity = (HISTORY.as_secs_f64() / args.interval.as_secs_f64()).ceil() as usize;
    let mut histories: BTreeMap<String, (History, History)> = BTreeMap::new();
    let mut target: TargetStatus = first;
    let mut taken = Instant::now();
    let mut last = sample(&target, &sys_block);
    let live = !json_out && std::io::stdout().is_terminal();
    let ascii = ascii_only();
    let mut shown = 0u64;
    loop {
        if !sleep_unless_stopped(args.interval, stop) {
            break;
        }
        let mut problem = None;
        match crate::status::ask_target() {
            Ok(t) => target = t,
            Err(e) => problem = Some(format!("{e}; the LUN list is the last one it gave")),
        }
        let now = Instant::now();
        let secs = (now - taken).as_secs_f64();
        taken = now;
        let before = std::mem::replace(&mut last, sample(&target, &sys_block));
        let luns: Vec<LunFrame> = target
            .luns
            .iter()
            .map(|l| {
                let rates = match (before.get(&l.name), last.get(&l.name)) {
                    (Some(Ok((p0, c0))), Some(Ok((p1, c1)))) if p0 == p1 => Ok(rates(c0, c1, secs)),
                    // New, or its partition changed: no interval to measure yet.
                    (_, Some(Ok(_))) => Ok(Rates::default()),
                    (_, Some(Err(why))) => Err(why.clone()),
                    (_, None) => Err("no statistics".into()),
                };
                LunFrame {
                    name: l.name.clone(),
                    rates,
                }
            })
            .collect();
        histories.retain(|name, _| luns.iter().any(|l| &l.name == name));
        for l in &luns {
            let (iops, mib) = histories
                .entry(l.name.clone())
                .or_insert_with(|| (History::new(capacity), History::new(capacity)));
            let r = l.rates.clone().unwrap_or_default();
            iops.push(r.iops());
            mib.push(r.mib_s());
        }
        let frame = Frame {
            host: crate::status::host_name(),
            node: target.node,
            role: target.role.clone(),
            interval: args.interval,
            luns,
            problem,
        };
        if json_out {
            // One sample for scripts: the rates over one interval.
            return Outcome::done(
                serde_json::to_string_pretty(&to_json(&frame)).unwrap_or_default() + "\n",
            );
        }
        let screen = render(&frame, &histories, ascii);
        let mut out = std::io::stdout().lock();
        if live {
            // Home and clear, then the frame: the view stays in place on any VT100.
            let _ = write!(out, "\x1b[H\x1b[J{screen}");
        } else {
            let _ = writeln!(out, "{screen}");
        }
        let _ = out.flush();
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            break;
        }
    }
    Outcome::done(String::new())
}

/// Reads every LUN's counters, with the partition they came from, or why they could not
/// be read (the LUN's row then says so).
fn sample(
    target: &TargetStatus,
    sys_block: &Path,
) -> BTreeMap<String, Result<(PathBuf, DiskCounters), String>> {
    target
        .luns
        .iter()
        .map(|l| {
            let reading = stat_path(sys_block, &l.device)
                .and_then(|path| read_counters(&path).map(|c| (path, c)));
            (l.name.clone(), reading)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A partition's stat line as Linux 6.1 prints it (17 fields).
    const STAT: &str = "    1200        0    19200     600     3400        0    54400    6800        2     7000     7400        0        0        0        0        0        0\n";

    #[test]
    fn the_kernel_stat_line_is_read_field_by_field() {
        let c = parse_stat(STAT).unwrap();
        assert_eq!(
            c,
            DiskCounters {
                reads: 1200,
                read_sectors: 19200,
                read_ms: 600,
                writes: 3400,
                write_sectors: 54400,
                write_ms: 6800,
                in_flight: 2,
            }
        );
    }

    #[test]
    fn a_bad_stat_line_says_what_it_is() {
        assert_eq!(
            parse_stat("1 2 3").unwrap_err(),
            "a block stat line of 3 fields, at least 9 expected: \"1 2 3\""
        );
        assert!(parse_stat("1 2 x 4 5 6 7 8 9")
            .unwrap_err()
            .contains("not all numbers"));
    }

    #[test]
    fn rates_are_the_difference_over_the_interval() {
        let before = parse_stat(STAT).unwrap();
        let now = DiskCounters {
            reads: 1200 + 100,
            read_sectors: 19200 + 100 * 8,
            read_ms: 600 + 50,
            writes: 3400 + 400,
            write_sectors: 54400 + 2048 * 4,
            write_ms: 6800 + 1000,
            in_flight: 1,
        };
        let r = rates(&before, &now, 2.0);
        assert_eq!(r.read_iops, 50.0);
        assert_eq!(r.write_iops, 200.0);
        assert!((r.read_mib_s - 100.0 * 4096.0 / MIB / 2.0).abs() < 1e-9);
        assert_eq!(r.write_mib_s, 2.0);
        assert_eq!(r.read_latency_ms, Some(0.5));
        assert_eq!(r.write_latency_ms, Some(2.5));
        assert_eq!(r.in_flight, 1);
        // Idle: no latency rather than 0 ms; counters that went back: no traffic.
        let idle = rates(&now, &now, 1.0);
        assert_eq!((idle.iops(), idle.read_latency_ms), (0.0, None));
        assert_eq!(rates(&now, &before, 1.0).iops(), 0.0);
    }

    #[test]
    fn the_controller_total_weights_latency_by_io_count() {
        let a = Rates {
            write_iops: 300.0,
            write_mib_s: 1.0,
            write_latency_ms: Some(1.0),
            ..Rates::default()
        };
        let b = Rates {
            write_iops: 100.0,
            write_mib_s: 3.0,
            write_latency_ms: Some(5.0),
            read_iops: 10.0,
            read_latency_ms: Some(0.2),
            in_flight: 2,
            ..Rates::default()
        };
        let t = total(&[a, b]);
        assert_eq!((t.write_iops, t.write_mib_s, t.in_flight), (400.0, 4.0, 2));
        assert_eq!(t.write_latency_ms, Some(2.0));
        assert_eq!(t.read_latency_ms, Some(0.2));
        assert_eq!(total(&[]).read_latency_ms, None);
    }

    #[test]
    fn a_sparkline_scales_to_its_peak_and_folds_long_histories() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0, 8.0], 10, false), " ▁▂▄█");
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0, 8.0], 10, true), " _.-#");
        // 120 samples in 60 columns: each column the mean of two.
        let mut v = vec![0.0; 60];
        v.extend(vec![10.0; 60]);
        let line = sparkline(&v, 60, false);
        assert_eq!(line.chars().count(), 60);
        assert_eq!(line, format!("{}{}", " ".repeat(30), "█".repeat(30)));
        assert_eq!(sparkline(&[], 60, false), "");
        assert_eq!(sparkline(&[0.0; 5], 60, false), "     ");
    }

    #[test]
    fn history_keeps_the_last_samples() {
        let mut h = History::new(3);
        for v in 1..=5 {
            h.push(v as f64);
        }
        assert_eq!(h.values(), vec![3.0, 4.0, 5.0]);
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            PerfArgs {
                count: None,
                interval: Duration::from_secs(1)
            }
        );
        assert_eq!(
            parse_args(&["-n", "3", "--interval", "0.5"]).unwrap(),
            PerfArgs {
                count: Some(3),
                interval: Duration::from_millis(500)
            }
        );
        assert_eq!(
            parse_args(&["-n", "0"]).unwrap_err(),
            "-n wants a number of screens above 0, not \"0\""
        );
        assert_eq!(
            parse_args(&["--interval", "600"]).unwrap_err(),
            "--interval wants seconds from 0.1 to 60, not \"600\""
        );
        assert!(parse_args(&["--fast"])
            .unwrap_err()
            .contains("unknown argument"));
        assert_eq!(
            parse_args(&["-n"]).unwrap_err(),
            "-n wants a number of screens"
        );
    }

    fn frame() -> Frame {
        Frame {
            host: "star-ctl1".into(),
            node: 1,
            role: "active".into(),
            interval: Duration::from_secs(1),
            luns: vec![
                LunFrame {
                    name: "data1".into(),
                    rates: Ok(Rates {
                        read_iops: 120.0,
                        write_iops: 880.0,
                        read_mib_s: 0.47,
                        write_mib_s: 3.44,
                        read_latency_ms: Some(0.4),
                        write_latency_ms: Some(1.25),
                        in_flight: 1,
                    }),
                },
                LunFrame {
                    name: "logs".into(),
                    rates: Err("not exported on this controller".into()),
                },
            ],
            problem: None,
        }
    }

    #[test]
    fn the_screen_has_a_row_per_lun_the_controller_total_and_graphs() {
        let mut histories = BTreeMap::new();
        let (mut iops, mut mib) = (History::new(300), History::new(300));
        for v in [0.0, 500.0, 1000.0] {
            iops.push(v);
            mib.push(v / 256.0);
        }
        histories.insert("data1".to_string(), (iops, mib));
        let screen = render(&frame(), &histories, false);
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(
            lines[0],
            "star-ctl1 (controller 1, active): I/O every 1.0 s, graphs of the last 3.0 s; Ctrl-C ends"
        );
        assert!(lines[2].starts_with("LUN") && lines[2].contains("WRITE ms"));
        let data1 = lines.iter().find(|l| l.starts_with("data1 ")).unwrap();
        let cells: Vec<&str> = data1.split_whitespace().collect();
        assert_eq!(
            cells,
            ["data1", "120", "880", "0.47", "3.44", "0.40", "1.25", "1"]
        );
        assert!(screen.contains("logs") && screen.contains("not exported on this controller"));
        let all = lines.iter().find(|l| l.starts_with("ctl1 all")).unwrap();
        let cells: Vec<&str> = all.split_whitespace().collect();
        assert_eq!(
            cells,
            ["ctl1", "all", "120", "880", "0.47", "3.44", "0.40", "1.25", "1"]
        );
        assert!(screen.contains("data1  IOPS  | ▄█"), "{screen}");
        assert!(screen.contains("peak 1000"));
    }

    #[test]
    fn the_json_has_every_lun_and_the_controller() {
        let j = to_json(&frame());
        assert_eq!(j["luns"][0]["name"], "data1");
        assert_eq!(j["luns"][0]["rates"]["write_iops"], 880.0);
        assert_eq!(j["luns"][1]["error"], "not exported on this controller");
        assert_eq!(j["controller"]["write_latency_ms"], 1.25);
        assert_eq!(j["role"], "active");
    }

    #[test]
    fn no_luns_says_how_to_make_one() {
        let mut f = frame();
        f.luns.clear();
        assert!(render(&f, &BTreeMap::new(), true).contains("lun create NAME SIZE"));
    }
}
