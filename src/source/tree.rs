//! Trees of input files and the one walk over them. A tree is the file system as the command line
//! names it ([`DiskTree::as_given`]: `render PATH`, `validate`, `explain`, `--templates`), a
//! directory whose files are named after where it came from ([`DiskTree::new`]: the working tree
//! of `diff`, the app directory of `cmp generate`) or a git revision
//! ([`crate::git::GitTree`]: `render --rev`, `diff`). Every command reads its inputs with
//! [`read_files`] and its template overrides with [`read_templates`], so all of them search
//! directories, follow symbolic links, catch link loops and decode files the same way.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::{SourceFile, decode, is_yaml};
use crate::error::{Diagnostic, Diagnostics};

/// What a path of a tree is (symbolic links already followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Equal for two paths only when both lead to this directory (one through a symbolic
        /// link): what tells a link loop from a deep tree.
        id: Vec<u8>,
        /// The names of its entries.
        names: Vec<OsString>,
    },
    /// A regular file.
    File,
    /// Nothing.
    Missing,
    /// Something else (a submodule, a socket …).
    Other,
}

/// A read-only tree of files. Paths are relative to the tree's root and normalised (`""` is the
/// root), except in [`DiskTree::as_given`], which takes paths as the user gave them.
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

    /// The file system as the command line sees it: paths relative to the current directory or
    /// absolute, `..` allowed, and every file named by its path as given (`dir/x.yaml` for
    /// `x.yaml` found in `dir`).
    pub fn as_given() -> Self {
        Self::new("", "")
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
                names.push(entry.map_err(|e| e.to_string())?.file_name());
            }
            Ok(Entry::Dir {
                id: dir_id(&full, &meta)?,
                names,
            })
        } else {
            // Whatever is not a directory is read as a file (`render <(...)` reads a pipe).
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

/// A directory's device and inode.
#[cfg(unix)]
fn dir_id(_: &Path, meta: &std::fs::Metadata) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    Ok([meta.dev().to_le_bytes(), meta.ino().to_le_bytes()].concat())
}

/// A directory's canonical path.
#[cfg(not(unix))]
fn dir_id(path: &Path, _: &std::fs::Metadata) -> Result<Vec<u8>, String> {
    std::fs::canonicalize(path)
        .map(|p| p.into_os_string().into_encoded_bytes())
        .map_err(|e| e.to_string())
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
/// recursively for `*.yaml`/`*.yml` (hidden entries skipped, sorted by name, symbolic links
/// followed). Directory `skip` (e.g. the templates) is left out of searches. Every problem is
/// reported, one diagnostic each: a dangling link or unreadable entry met in a search, a link
/// leading back to a directory being searched, a file that is not UTF-8.
pub fn read_files(
    tree: &dyn FileTree,
    paths: &[PathBuf],
    skip: Option<&Path>,
) -> Result<Found, Diagnostics> {
    let mut walk = Walk {
        tree,
        skip,
        open: Vec::new(),
        found: Found::default(),
        problems: Diagnostics::default(),
    };
    for path in paths {
        walk.visit(path, true);
    }
    walk.problems.into_result(walk.found)
}

/// Deepest directory nesting searched.
const MAX_DEPTH: usize = 64;

/// One [`read_files`] in progress.
struct Walk<'a> {
    tree: &'a dyn FileTree,
    skip: Option<&'a Path>,
    /// The directories being searched, outermost first: their ids and paths.
    open: Vec<(Vec<u8>, PathBuf)>,
    found: Found,
    problems: Diagnostics,
}

impl Walk<'_> {
    fn visit(&mut self, path: &Path, explicit: bool) {
        let tree = self.tree;
        let problem = |message: String| Diagnostic::new(tree.name(path), 0, "", message);
        if self.open.len() > MAX_DEPTH {
            self.problems.push(problem(format!(
                "directories nested too deeply (more than {MAX_DEPTH} levels)"
            )));
            return;
        }
        match tree.entry(path) {
            Err(e) => self.problems.push(problem(format!("cannot read: {e}"))),
            Ok(Entry::Missing) if explicit => self.found.missing.push(path.to_path_buf()),
            Ok(Entry::Missing) => self
                .problems
                .push(problem("cannot read: dangling symbolic link".into())),
            Ok(Entry::Dir { id, mut names }) => {
                if let Some((_, outer)) = self.open.iter().find(|(open, _)| *open == id) {
                    let message = format!("symbolic link loop: leads back to {}", tree.name(outer));
                    self.problems.push(problem(message));
                    return;
                }
                names.sort();
                self.open.push((id, path.to_path_buf()));
                for name in names
                    .iter()
                    .filter(|n| !n.as_encoded_bytes().starts_with(b"."))
                {
                    let child = path.join(name);
                    if self.skip != Some(child.as_path()) {
                        self.visit(&child, false);
                    }
                }
                self.open.pop();
            }
            Ok(Entry::File) if explicit || is_yaml(path) => {
                let name = tree.name(path);
                match tree.read(path) {
                    Ok(bytes) => match decode(&name, bytes) {
                        Ok(text) => self.found.files.push((name, text)),
                        Err(d) => self.problems.push(d),
                    },
                    Err(e) => self.problems.push(problem(format!("cannot read: {e}"))),
                }
            }
            Ok(Entry::File) => {}
            Ok(Entry::Other) if explicit => {
                self.problems
                    .push(problem("not a file or directory".into()));
            }
            Ok(Entry::Other) => {}
        }
    }
}

/// Template overrides of directory `dir` of `tree`: its YAML files by name, decoded like
/// inputs (a byte-order mark dropped, invalid UTF-8 reported at its line).
pub fn read_templates(
    tree: &dyn FileTree,
    dir: &Path,
) -> Result<BTreeMap<String, String>, Diagnostics> {
    let problem = |m: String| Diagnostics::from(Diagnostic::new(tree.name(dir), 0, "", m));
    let mut names = match tree.entry(dir) {
        Ok(Entry::Dir { names, .. }) => names,
        Ok(Entry::Missing) => {
            return Err(problem("cannot read templates: no such directory".into()));
        }
        Ok(_) => return Err(problem("cannot read templates: not a directory".into())),
        Err(e) => return Err(problem(format!("cannot read templates: {e}"))),
    };
    names.sort();
    let mut overrides = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        if is_yaml(&path) && tree.entry(&path) == Ok(Entry::File) {
            let shown = name.to_string_lossy().into_owned();
            let bytes = tree
                .read(&path)
                .map_err(|e| problem(format!("cannot read {shown}: {e}")))?;
            let text = decode(&tree.name(&path), bytes).map_err(Diagnostics::from)?;
            overrides.insert(shown, text);
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

    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_one_problem_where_the_link_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.yaml"), "a: 1\n").unwrap();
        std::os::unix::fs::symlink("../..", root.join("a/b/up")).unwrap();
        let err = read_files(&DiskTree::new(root, ""), &[PathBuf::new()], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a/b/up: symbolic link loop: leads back to ."
        );
    }

    #[test]
    fn names_are_the_paths_as_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/x.yaml"), "a: 1\n").unwrap();
        let given = dir.path().join("d/../d");
        let found = read_files(&DiskTree::as_given(), std::slice::from_ref(&given), None).unwrap();
        let expected = given.join("x.yaml").display().to_string();
        assert_eq!(found.files[0].0, expected);
    }

    #[test]
    fn templates_are_decoded_like_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), b"\xEF\xBB\xBFa: 1\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), b"\xff").unwrap();
        let tree = DiskTree::new(dir.path(), "t");
        let overrides = read_templates(&tree, Path::new("")).unwrap();
        assert_eq!(overrides.get("b.yaml").map(String::as_str), Some("a: 1\n"));
        assert_eq!(overrides.len(), 1);
        std::fs::write(dir.path().join("d.yml"), b"a: 1\nb: \xff\n").unwrap();
        let err = read_templates(&tree, Path::new("")).unwrap_err();
        assert!(
            err.to_string().starts_with("t/d.yml:2: not valid UTF-8"),
            "{err}"
        );
    }
}
