//! The broker process's own figures for `/metrics` (resident memory, descriptors,
//! CPU time, start time), read from Linux's `/proc`, under the names every
//! Prometheus client library gives them. Elsewhere, or where `/proc` cannot be
//! read, they are left out rather than shown as zeros.

use std::fmt::Write;

/// What `/proc` says about this process, each figure `None` when it could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// When the process started, Unix seconds.
    pub start_time_s: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures now: a handful of small `/proc` files and one
    /// directory listing, cheap next to the snapshot `/metrics` also takes.
    pub fn read() -> ProcessStats {
        if !cfg!(target_os = "linux") {
            return ProcessStats::default();
        }
        let text = |path: &str| std::fs::read_to_string(path).ok();
        let ticks = clock_ticks();
        let stat = text("/proc/self/stat").and_then(|s| parse_stat(&s));
        let boot = text("/proc/stat").and_then(|s| boot_time(&s));
        ProcessStats {
            resident_bytes: text("/proc/self/statm")
                .and_then(|s| resident_pages(&s))
                .zip(page_size())
                .map(|(pages, size)| pages * size),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: text("/proc/self/limits").and_then(|s| max_open_files(&s)),
            cpu_seconds: stat
                .zip(ticks)
                .map(|(s, t)| (s.utime + s.stime) as f64 / t as f64),
            start_time_s: stat
                .zip(ticks)
                .zip(boot)
                .map(|((s, t), boot)| boot as f64 + s.start_ticks as f64 / t as f64),
        }
    }

    /// Writes the `process_*` families for the figures that were read.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors (the soft limit).",
                self.max_fds.map(|v| v as f64),
            ),
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                self.cpu_seconds,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_s,
            ),
        ];
        for (name, kind, help, value) in rows {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                );
            }
        }
    }
}

/// The figures of `/proc/self/stat` the metrics need, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    start_ticks: u64,
}

/// Fields 14, 15 and 22 of `/proc/[pid]/stat` (proc(5)). The command name, field
/// 2, is in parentheses and may hold spaces and parentheses itself, so fields are
/// counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // The first field after the name is field 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
    })
}

/// `btime` of `/proc/stat`: when the machine booted, Unix seconds.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The second field of `/proc/[pid]/statm`: resident pages.
fn resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/[pid]/limits` (`None` if unlimited).
fn max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 123456 7000000 1500 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                utime: 250,
                stime: 75,
                start_ticks: 123456
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn proc_files_give_boot_time_pages_and_the_soft_fd_limit() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(resident_pages("5000 1234 300 10 0 900 0\n"), Some(1234));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63408                63408                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }

    #[test]
    fn renders_only_what_was_read() {
        let mut out = String::new();
        ProcessStats {
            resident_bytes: Some(4096),
            cpu_seconds: Some(2.5),
            ..ProcessStats::default()
        }
        .render(&mut out);
        assert_eq!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 4096\n\
             # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 2.5\n"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_on_linux() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.max_fds.is_some(), "{p:?}");
        assert!(p.cpu_seconds.is_some(), "{p:?}");
        let now = crate::time::now_ms() as f64 / 1000.0;
        let start = p.start_time_s.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }
}
