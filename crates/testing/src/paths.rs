//! The repository's files (`examples/`, `charts/`, `crds/`, `templates/`, `tests/`, `tools/`,
//! ...) for tests and benchmarks in any crate of the workspace: one root, never a path relative
//! to the crate that happens to hold the test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The root of the workspace (the repository: where `Cargo.lock`, `examples/` and `charts/`
/// are), as an absolute path.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("workspace root")
    })
}

/// A directory of tools built outside the repository: `$var` when set (`.ci/test` sets it),
/// else what `script` (relative to the root) prints on its last line. The script's stderr is
/// the test's, so a long cold build shows its progress.
pub fn built_dir(var: &str, script: &str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(var) {
        return Ok(PathBuf::from(dir));
    }
    let script = root().join(script);
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}); see its stderr above",
            script.display(),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(
        stdout.lines().last().unwrap_or_default().trim(),
    ))
}
