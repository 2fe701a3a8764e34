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
