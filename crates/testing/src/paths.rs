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
