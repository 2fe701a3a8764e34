//! The command line of the harness-less benchmarks (`cargo bench --bench NAME -- --flag value`).

use std::str::FromStr;

/// A benchmark's arguments.
pub struct BenchArgs {
    argv: Vec<String>,
}

impl BenchArgs {
    /// The arguments of this process.
    pub fn from_env() -> Self {
        BenchArgs {
            argv: std::env::args().collect(),
        }
    }

    /// Whether to run at smoke size: `--smoke`, or any run under `cargo test` (`cargo bench`
    /// passes `--bench`), so the code cannot rot.
    pub fn smoke(&self) -> bool {
        self.argv.iter().any(|a| a == "--smoke") || !self.argv.iter().any(|a| a == "--bench")
    }

    /// Whether flag `name` was given.
    pub fn argv_has(&self, name: &str) -> bool {
        self.argv.iter().any(|a| a == name)
    }

    /// The value after `name`, else `default` (also when it does not parse).
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.argv
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.argv.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// A memory figure of a process (`VmRSS`, `VmHWM`, … of `/proc/<pid>/status`) in MiB; 0 once
/// it has exited.
pub fn proc_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// User plus system CPU seconds a process has used (`/proc/<pid>/stat`, 100 ticks a second).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
