//! `render`'s output formats, and one file per object for `--out-dir`, written all at once.

use std::path::Path;

use crate::render::Object;

/// Output formats of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A multi-document YAML stream.
    Yaml,
    /// A `v1` `List` in JSON.
    Json,
}

/// One file per object for `--out-dir`: `NNN-kind-namespace-name.yaml`, numbered in output order.
pub fn object_files(objects: &[Object]) -> Vec<(String, String)> {
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let name = format!(
                "{i:03}-{}-{}-{}.yaml",
                o.kind.to_ascii_lowercase(),
                o.namespace,
                o.name
            );
            (name, super::yaml::to_string(&o.value))
        })
        .collect()
}

/// Writes `files` into `dir` all at once: they go to a temporary sibling directory first,
/// which then replaces `dir`. `dir` must not exist or be empty, so nothing is overwritten.
pub fn write_dir_atomically(dir: &Path, files: &[(String, String)]) -> Result<(), String> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{}: directory is not empty; refusing to mix old and new files",
                dir.display()
            ));
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".prism-render-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    for (name, text) in files {
        std::fs::write(tmp.path().join(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        format!("{}: {e}", dir.display())
    })
}
