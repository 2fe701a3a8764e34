//! Loading a fleet from paths given on the command line: the input files (files, directories,
//! standard input), read through [`tree`](super::tree) like every other tree of inputs.

use std::io::Read;
use std::path::PathBuf;

use super::tree::{self, DiskTree, FileTree};
use super::{Fleet, SourceFile};
use crate::error::{Diagnostic, Diagnostics};

/// Parses source files into a fleet.
pub fn fleet_from_files(files: Vec<SourceFile>, namespace: &str) -> Result<Fleet, Diagnostics> {
    // Each file's text goes as soon as it is split: its documents hold their own.
    let docs = files
        .into_iter()
        .flat_map(|(name, text)| super::split_documents(&name, &text))
        .collect();
    super::parse_fleet(docs, namespace)
}

/// Reads every input: `-` is standard input, a directory is searched recursively for
/// `*.yaml`/`*.yml` (hidden entries skipped, sorted by path), a file is read as it is. Files are
/// named by their paths as given.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<SourceFile>, Diagnostics> {
    let tree = DiskTree::as_given();
    let mut files = Vec::new();
    let mut problems = Diagnostics::default();
    for path in paths {
        if path.as_os_str() == "-" {
            match read_stdin() {
                Ok(text) => files.push(("-".to_string(), text)),
                Err(d) => problems.push(d),
            }
            continue;
        }
        match tree::read_files(&tree, std::slice::from_ref(path), None) {
            Ok(found) => {
                files.extend(found.files);
                for missing in found.missing {
                    // In the system's words, like any other input that cannot be read.
                    let why = std::fs::metadata(&missing)
                        .err()
                        .map_or_else(|| "no such file or directory".into(), |e| e.to_string());
                    let name = tree.name(&missing);
                    problems.push(Diagnostic::new(name, 0, "", format!("cannot read: {why}")));
                }
            }
            Err(found) => problems.0.extend(found.0),
        }
    }
    problems.into_result(files)
}

fn read_stdin() -> Result<String, Diagnostic> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostic::new("-", 0, "", format!("cannot read standard input: {e}")))?;
    super::decode("-", bytes)
}

/// Reads `paths` (files, directories, `-`) into a fleet.
pub fn load_fleet(paths: &[PathBuf], namespace: &str) -> Result<Fleet, Diagnostics> {
    let files = read_inputs(paths)?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(super::no_yaml_files(&shown, None).into());
    }
    fleet_from_files(files, namespace)
}
