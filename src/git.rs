//! Reading inputs from git with `git2`: finding the repository, resolving a revision to its tree
//! and serving that tree's blobs as a [`FileTree`], without checking anything out. Works in bare
//! and shallow repositories; files are named `REV:path` in diagnostics.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository};

use crate::source::tree::{Entry, FileTree, normalize};

/// Mode of a symbolic link in a git tree.
const LINK_MODE: i32 = 0o120000;
/// Symbolic links followed while resolving one path before giving up, as Linux does.
const MAX_LINKS: usize = 40;

/// A repository and where the current directory is inside it.
pub struct Repo {
    repo: Repository,
    prefix: PathBuf,
}

impl Repo {
    /// The repository containing `dir` (the current directory when `None`).
    pub fn open(dir: Option<&Path>) -> Result<Self, String> {
        let start = dir.unwrap_or(Path::new("."));
        let repo = Repository::discover(start).map_err(|e| {
            if e.code() == ErrorCode::NotFound {
                format!("{}: not inside a git repository", start.display())
            } else {
                format!("{}: {}", start.display(), e.message())
            }
        })?;
        let prefix = match (repo.workdir(), std::env::current_dir()) {
            (Some(workdir), Ok(cwd)) => {
                let workdir = workdir.canonicalize().unwrap_or(workdir.to_path_buf());
                let cwd = cwd.canonicalize().unwrap_or(cwd);
                cwd.strip_prefix(&workdir)
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            }
            _ => PathBuf::new(),
        };
        Ok(Self { repo, prefix })
    }

    /// The current directory's path inside the working tree; empty at the root, outside the
    /// working tree and in a bare repository.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The working tree, unless the repository is bare.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> String {
        let path = self.repo.workdir().unwrap_or(self.repo.path());
        let shown = path.display().to_string();
        match shown.trim_end_matches('/') {
            "" => shown,
            trimmed => trimmed.to_string(),
        }
    }

    /// A path given by the user as a repository-relative path: relative paths are taken from
    /// the repository root; absolute ones must lie inside the working tree.
    pub fn repo_path(&self, path: &Path) -> Result<PathBuf, String> {
        if path.is_absolute() {
            let inside = self
                .workdir()
                .and_then(|w| {
                    let w = w.canonicalize().ok()?;
                    let p = path.canonicalize().ok()?;
                    p.strip_prefix(&w).ok().map(Path::to_path_buf)
                })
                .ok_or_else(|| {
                    format!(
                        "{}: not inside the working tree of {}",
                        path.display(),
                        self.location()
                    )
                })?;
            return Ok(inside);
        }
        normalize(path)
    }

    /// The tree of revision `rev` (anything `git rev-parse` takes: branch, tag, SHA, `HEAD~2`,
    /// `origin/main`); `A...B` means the tree of the merge base of `A` and `B`.
    pub fn tree(&self, rev: &str) -> Result<GitTree<'_>, String> {
        let oid = match rev.split_once("...") {
            Some((a, b)) => {
                let a = self.commit_of(a)?;
                let b = self.commit_of(if b.is_empty() { "HEAD" } else { b })?;
                self.repo.merge_base(a, b).map_err(|e| {
                    format!(
                        "{rev}: no merge base: {}{}",
                        e.message(),
                        self.shallow_hint()
                    )
                })?
            }
            None => self.resolve(rev)?,
        };
        let tree = self
            .repo
            .find_object(oid, None)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| format!("{rev}: {}", e.message()))?;
        Ok(GitTree {
            repo: &self.repo,
            root: tree.id(),
            label: rev.to_string(),
        })
    }

    fn resolve(&self, rev: &str) -> Result<Oid, String> {
        if rev.is_empty() {
            return Err("empty revision".into());
        }
        self.repo
            .revparse_single(rev)
            .map(|o| o.id())
            .map_err(|e| match e.code() {
                ErrorCode::NotFound | ErrorCode::InvalidSpec => format!(
                    "unknown revision {rev:?}: not a branch, tag or commit of {}{}",
                    self.location(),
                    self.shallow_hint()
                ),
                _ => format!("revision {rev:?}: {}", e.message()),
            })
    }

    fn commit_of(&self, rev: &str) -> Result<Oid, String> {
        let oid = self.resolve(rev)?;
        self.repo
            .find_object(oid, None)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| format!("{rev}: {}", e.message()))
    }

    fn shallow_hint(&self) -> &'static str {
        if self.repo.is_shallow() {
            " (this is a shallow clone; fetch the history you need, e.g. `git fetch --deepen=50`)"
        } else {
            ""
        }
    }
}

/// The tree of one revision, read blob by blob.
pub struct GitTree<'r> {
    repo: &'r Repository,
    root: Oid,
    label: String,
}

/// What a path of a git tree resolves to.
enum Node {
    Tree(Oid),
    Blob(Oid),
    Other,
}

impl GitTree<'_> {
    /// Resolves `path`, following symbolic links that stay inside the tree; `None` when nothing
    /// is there.
    fn resolve(&self, path: &Path) -> Result<Option<Node>, String> {
        let err = |e: git2::Error| format!("{}: {}", self.name(path), e.message());
        let mut queue: VecDeque<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mut dirs = vec![self.root];
        let mut links = 0;
        while let Some(part) = queue.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if dirs.len() == 1 {
                        return Ok(None);
                    }
                    dirs.pop();
                    continue;
                }
                _ => {}
            }
            let tree = self
                .repo
                .find_tree(*dirs.last().expect("root"))
                .map_err(err)?;
            let Some(entry) = tree.get_name(&part) else {
                return Ok(None);
            };
            let last = queue.iter().all(|p| p.is_empty() || p == ".");
            match entry.kind() {
                Some(ObjectType::Tree) => dirs.push(entry.id()),
                Some(ObjectType::Blob) if entry.filemode() == LINK_MODE => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(format!(
                            "{}: too many levels of symbolic links",
                            self.name(path)
                        ));
                    }
                    let blob = self.repo.find_blob(entry.id()).map_err(err)?;
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    if target.starts_with('/') {
                        return Ok(None);
                    }
                    for p in target.split('/').rev() {
                        queue.push_front(p.to_string());
                    }
                }
                Some(ObjectType::Blob) if last => return Ok(Some(Node::Blob(entry.id()))),
                _ if last => return Ok(Some(Node::Other)),
                _ => return Ok(None),
            }
        }
        Ok(Some(Node::Tree(*dirs.last().expect("root"))))
    }
}

impl FileTree for GitTree<'_> {
    fn entry(&self, path: &Path) -> Result<Entry, String> {
        Ok(match self.resolve(path)? {
            None => Entry::Missing,
            Some(Node::Blob(_)) => Entry::File,
            Some(Node::Other) => Entry::Other,
            Some(Node::Tree(oid)) => {
                let tree = self
                    .repo
                    .find_tree(oid)
                    .map_err(|e| e.message().to_string())?;
                Entry::Dir {
                    // A tree cannot contain itself: the same tree again below is a link loop.
                    id: oid.as_bytes().to_vec(),
                    names: tree.iter().map(|e| os_name(e.name_bytes())).collect(),
                }
            }
        })
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        match self.resolve(path)? {
            Some(Node::Blob(oid)) => self
                .repo
                .find_blob(oid)
                .map(|b| b.content().to_vec())
                .map_err(|e| e.message().to_string()),
            _ => Err("not a file".into()),
        }
    }

    fn name(&self, path: &Path) -> String {
        format!("{}:{}", self.label, path.display())
    }
}

/// A tree entry's name as a file name.
#[cfg(unix)]
fn os_name(bytes: &[u8]) -> std::ffi::OsString {
    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).to_os_string()
}

/// A tree entry's name as a file name.
#[cfg(not(unix))]
fn os_name(bytes: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}
