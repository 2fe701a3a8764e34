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

/// One file per object for `--out-dir`: `NNN-kind-namespace-name.yaml`, numbered in output order
/// with as many digits as the last number needs (at least three), so that the files' names sort
/// in install order however many there are.
pub fn object_files(objects: &[Object]) -> Vec<(String, String)> {
    let width = objects.len().saturating_sub(1).to_string().len().max(3);
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let name = format!(
                "{i:0width$}-{}-{}-{}.yaml",
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

/// One file for [`write_files_replacing`]: its path relative to the directory, its text, and
/// the file whose permissions a new file takes (the input it was made from), if any.
pub struct FileToWrite {
    /// Path relative to the directory.
    pub path: std::path::PathBuf,
    /// Content.
    pub text: String,
    /// The input file it was made from.
    pub like: Option<std::path::PathBuf>,
}

/// Writes `files` into `dir` (created when missing), replacing files of the same names and
/// leaving every other file alone. Each file is written to a temporary file beside its place
/// first; only when all are written are they renamed into place, so a failure to write leaves
/// every file as it was. A file that already holds its text is not touched; a file replaced
/// keeps its permissions, a new one takes those of the input it was made from.
pub fn write_files_replacing(dir: &Path, files: &[FileToWrite]) -> Result<(), String> {
    let shown = |p: &Path| p.display().to_string();
    let mut pending = Vec::new();
    for file in files {
        let target = dir.join(&file.path);
        if std::fs::read(&target).is_ok_and(|old| old == file.text.as_bytes()) {
            continue;
        }
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", shown(parent)))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".prism-render-")
            .tempfile_in(parent)
            .map_err(|e| format!("{}: {e}", shown(parent)))?;
        std::io::Write::write_all(&mut tmp, file.text.as_bytes())
            .map_err(|e| format!("{}: {e}", shown(&target)))?;
        let permissions = std::fs::metadata(&target)
            .ok()
            .or_else(|| file.like.as_ref().and_then(|l| std::fs::metadata(l).ok()))
            .map(|m| m.permissions());
        if let Some(permissions) = permissions {
            tmp.as_file()
                .set_permissions(permissions)
                .map_err(|e| format!("{}: {e}", shown(&target)))?;
        }
        pending.push((tmp, target));
    }
    for (tmp, target) in pending {
        tmp.persist(&target)
            .map_err(|e| format!("{}: {}", shown(&target), e.error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: usize) -> Vec<Object> {
        (0..n)
            .map(|i| {
                Object::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("c{}", n - i), "namespace": "ns"},
                }))
            })
            .collect()
    }

    /// Sorted by name, the files come in output order, past 999 objects too.
    #[test]
    fn file_names_sort_in_output_order() {
        for (n, first) in [
            (3, "000-configmap-ns-c3.yaml"),
            (1000, "000-configmap-ns-c1000.yaml"),
            (1001, "0000-configmap-ns-c1001.yaml"),
            (12_345, "00000-configmap-ns-c12345.yaml"),
        ] {
            let names: Vec<String> = object_files(&objects(n)).into_iter().map(|f| f.0).collect();
            assert_eq!(names[0], first);
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(sorted, names, "{n} objects");
        }
    }
}
