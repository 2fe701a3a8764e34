//! Trees of input files and the one walk over them: a directory on disk ([`DiskTree`]) or a git
//! revision ([`crate::git::GitTree`]), searched the way `render` searches a directory
//! (`*.yaml`/`*.yml`, hidden entries skipped, sorted by name), each file named for diagnostics by
//! where it came from, and the template overrides of one of its directories.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{SourceFile, decode, is_yaml};
use crate::error::{Diagnostic, Diagnostics};

/// What a path of a tree is (symbolic links already followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory and the names of its entries.
    Dir(Vec<String>),
    /// A regular file.
    File,
    /// Nothing.
    Missing,
    /// Something else (a submodule, a socket …).
    Other,
}

/// A read-only tree of files addressed by relative, normalised paths (`""` is the root).
pub trait FileTree {
    /// What is at `path`.
    fn entry(&self, path: &Path) -> Result<Entry, String>;
    /// The bytes of the file at `path`.
    fn read(&self, path: &Path) -> Result<Vec<u8>, String>;
    /// How `path` is named in diagnostics.
    fn name(&self, path: &Path) -> String;
}

/// A directory on disk; files are named by their path inside it, after `prefix` when set
/// (`REV:dir` or `dir`).
pub struct DiskTree {
    root: PathBuf,
    prefix: String,
}

impl DiskTree {
    /// The tree under `root`, its files named after `prefix` in diagnostics.
    pub fn new(root: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            prefix: prefix.into(),
        }
    }
}

impl FileTree for DiskTree {
    fn entry(&self, path: &Path) -> Result<Entry, String> {
        let full = self.root.join(path);
        let meta = match std::fs::metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) => return Err(e.to_string()),
        };
        if meta.is_dir() {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&full).map_err(|e| e.to_string())? {
                let entry = entry.map_err(|e| e.to_string())?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            Ok(Entry::Dir(names))
        } else {
            // Like `render`: whatever is not a directory is read as a file.
            Ok(Entry::File)
        }
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(self.root.join(path)).map_err(|e| e.to_string())
    }

    fn name(&self, path: &Path) -> String {
        let path = path.display().to_string();
        match (self.prefix.as_str(), path.as_str()) {
            ("", "") => ".".into(),
            ("", p) => p.into(),
            (prefix, "") => prefix.into(),
            (prefix, p) if prefix.ends_with(['/', ':']) => format!("{prefix}{p}"),
            (prefix, p) => format!("{prefix}/{p}"),
        }
    }
}

/// `path` for messages: `.` for the root.
pub fn display(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        ".".into()
    } else {
        path.display().to_string()
    }
}

/// Makes a relative path canonical without touching the file system: drops `.`, resolves `..`
/// and fails when the path is absolute or climbs out of the tree.
pub fn normalize(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("{}: leads outside the tree", path.display()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: must be a relative path", path.display()));
            }
        }
    }
    Ok(out)
}

/// What [`read_files`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// Files in walk order.
    pub files: Vec<SourceFile>,
    /// Requested paths that do not exist.
    pub missing: Vec<PathBuf>,
}

/// Reads `paths` of `tree`: a file is read whatever its name, a directory is searched
/// recursively for YAML files. Directory `skip` (e.g. the templates) is left out of searches.
pub fn read_files(
    tree: &dyn FileTree,
    paths: &[PathBuf],
    skip: Option<&Path>,
) -> Result<Found, Diagnostics> {
    let mut found = Found::default();
    let mut problems = Diagnostics::default();
    for path in paths {
        walk(tree, path, skip, true, 0, &mut found, &mut problems);
    }
    problems.into_result(found)
}

/// Deepest directory nesting searched; deeper means a symbolic link loop.
const MAX_DEPTH: usize = 64;

fn walk(
    tree: &dyn FileTree,
    path: &Path,
    skip: Option<&Path>,
    explicit: bool,
    depth: usize,
    found: &mut Found,
    problems: &mut Diagnostics,
) {
    let problem = |message: String| Diagnostic::new(tree.name(path), 0, "", message);
    if depth > MAX_DEPTH {
        problems.push(problem(
            "directories nested too deeply (a symbolic link loop?)".into(),
        ));
        return;
    }
    match tree.entry(path) {
        Err(e) => problems.push(problem(format!("cannot read: {e}"))),
        Ok(Entry::Missing) if explicit => found.missing.push(path.to_path_buf()),
        Ok(Entry::Missing) => problems.push(problem("cannot read: dangling symbolic link".into())),
        Ok(Entry::Dir(mut names)) => {
            names.sort();
            for name in names.iter().filter(|n| !n.starts_with('.')) {
                let child = path.join(name);
                if skip != Some(child.as_path()) {
                    walk(tree, &child, skip, false, depth + 1, found, problems);
                }
            }
        }
        Ok(Entry::File) if explicit || is_yaml(path) => {
            let name = tree.name(path);
            match tree.read(path) {
                Ok(bytes) => match decode(&name, bytes) {
                    Ok(text) => found.files.push((name, text)),
                    Err(d) => problems.push(d),
                },
                Err(e) => problems.push(problem(format!("cannot read: {e}"))),
            }
        }
        Ok(Entry::File) => {}
        Ok(Entry::Other) if explicit => {
            problems.push(problem("not a file or directory".into()));
        }
        Ok(Entry::Other) => {}
    }
}

/// Template overrides of directory `dir`: its YAML files by name.
pub fn read_templates(
    tree: &dyn FileTree,
    dir: &Path,
) -> Result<BTreeMap<String, String>, Diagnostics> {
    let problem = |m: String| Diagnostics::from(Diagnostic::new(tree.name(dir), 0, "", m));
    let names = match tree.entry(dir) {
        Ok(Entry::Dir(names)) => names,
        Ok(Entry::Missing) => {
            return Err(problem("cannot read templates: no such directory".into()));
        }
        Ok(_) => return Err(problem("cannot read templates: not a directory".into())),
        Err(e) => return Err(problem(format!("cannot read templates: {e}"))),
    };
    let mut overrides = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        if is_yaml(&path) && tree.entry(&path) == Ok(Entry::File) {
            let bytes = tree
                .read(&path)
                .map_err(|e| problem(format!("cannot read {name}: {e}")))?;
            let text = decode(&tree.name(&path), bytes).map_err(Diagnostics::from)?;
            overrides.insert(name, text);
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("./a/b/../c/")).unwrap(),
            PathBuf::from("a/c")
        );
        assert_eq!(normalize(Path::new(".")).unwrap(), PathBuf::new());
        assert!(normalize(Path::new("a/../../etc")).is_err());
        assert!(normalize(Path::new("/etc")).is_err());
    }

    #[test]
    fn walks_like_render_and_skips_templates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/templates")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        for f in [
            "b/z.yaml",
            "a.yml",
            "b/templates/t.yaml",
            ".hidden/x.yaml",
            "notes.txt",
        ] {
            std::fs::write(root.join(f), "a: 1\n").unwrap();
        }
        let tree = DiskTree::new(root, "app");
        let found = read_files(
            &tree,
            &[PathBuf::new(), PathBuf::from("gone")],
            Some(Path::new("b/templates")),
        )
        .unwrap();
        let names: Vec<&str> = found.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["app/a.yml", "app/b/z.yaml"]);
        assert_eq!(found.missing, [PathBuf::from("gone")]);
    }
}
