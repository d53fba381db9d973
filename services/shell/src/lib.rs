//! `star`: the operator's command line and the console's shell. It speaks the control
//! sockets (star-core's protocol); everything it prints comes from there.
//!
//! - [`commands`]: the table of commands and the one dispatcher behind `star WORDS` and
//!   the shell.
//! - [`status`]: the array at a glance, from every service; [`roles`]: switchover and
//!   maintenance; [`array`]: the disk, LUNs, hosts, CHAP and the target; [`config`]:
//!   star.toml shown and checked; [`perf`]: the live performance view.
//! - [`shell`]: the interactive shell; [`login`]: the console login's decisions.

pub mod array;
pub mod commands;
pub mod config;
pub mod login;
pub mod login_program;
pub mod perf;
pub mod program;
pub mod roles;
pub mod shell;
pub mod status;

use star_core::control::{Reply, ServiceInfo};

/// `12.3 s`, `4 m 05 s`, `2 h 07 m`, `3 d 04 h`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} m {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86400.0 {
        format!(
            "{} h {:02} m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{} d {:02} h",
            (s / 86400.0) as u64,
            ((s % 86400.0) / 3600.0) as u64
        )
    }
}

/// The `star services` table.
pub fn services_table(
    uptime_sec: f64,
    ready: bool,
    shutdown: Option<&str>,
    services: &[ServiceInfo],
) -> String {
    let mut rows = vec![[
        "SERVICE".to_string(),
        "STATE".into(),
        "PID".into(),
        "RESTARTS".into(),
        "UP".into(),
        "LAST EXIT".into(),
        "NOTE".into(),
    ]];
    for s in services {
        let mut name = s.name.clone();
        if s.critical {
            name.push('*');
        }
        let note = match (&s.status, &s.detail) {
            (Some(status), _) => status.clone(),
            (None, Some(detail)) => detail.clone(),
            (None, None) => String::new(),
        };
        rows.push([
            name,
            s.state.as_str().to_string(),
            s.pid.map_or("-".into(), |p| p.to_string()),
            s.restarts.to_string(),
            s.uptime_sec.map_or("-".into(), human_duration),
            s.last_exit.map_or("-".into(), |e| e.to_string()),
            note,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "appliance {} (up {}){}\n",
        if ready { "ready" } else { "not ready" },
        human_duration(uptime_sec),
        shutdown.map_or(String::new(), |k| format!(", shutting down: {k}"))
    );
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 6 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if services.iter().any(|s| s.critical) {
        out.push_str("* critical: if it fails, the controller resets\n");
    }
    out
}

/// What to print for a reply, and whether it counts as success.
pub fn render(reply: &Reply) -> (String, bool) {
    match reply {
        Reply::Services {
            uptime_sec,
            ready,
            shutdown,
            services,
        } => (
            services_table(*uptime_sec, *ready, shutdown.as_deref(), services),
            true,
        ),
        Reply::Logs { lines, .. } => {
            let mut text = lines.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            (text, true)
        }
        Reply::Done { message } => (format!("{message}\n"), true),
        Reply::Error { message } => (format!("star: {message}\n"), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::control::{ExitInfo, ServiceState};

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(3.24), "3.2 s");
        assert_eq!(human_duration(245.0), "4 m 05 s");
        assert_eq!(human_duration(7620.0), "2 h 07 m");
        assert_eq!(human_duration(273600.0), "3 d 04 h");
    }

    #[test]
    fn the_table_shows_state_exit_and_critical_marks() {
        let s = ServiceInfo {
            name: "heartbeat".into(),
            state: ServiceState::Backoff,
            pid: None,
            restarts: 2,
            last_exit: Some(ExitInfo::Killed { signal: 9 }),
            uptime_sec: None,
            critical: true,
            notify: true,
            status: None,
            detail: Some("restarting in 2.0 s".into()),
        };
        let t = services_table(10.0, false, None, &[s]);
        assert!(t.starts_with("appliance not ready (up 10.0 s)"), "{t}");
        let row = t.lines().nth(2).unwrap();
        assert!(row.starts_with("heartbeat*"), "{row}");
        assert!(
            row.contains("backoff") && row.contains("killed by SIGKILL"),
            "{row}"
        );
        assert!(row.ends_with("restarting in 2.0 s"), "{row}");
        assert!(t.contains("* critical"));
    }
}
