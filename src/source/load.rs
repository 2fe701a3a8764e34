//! Loading a fleet from paths given on the command line: the input files (files, directories,
//! standard input), read through [`tree`](super::tree) like every other tree of inputs.

use std::io::Read;
use std::path::PathBuf;

use super::sort::{Others, Sorted};
use super::tree::{self, DiskTree, FileTree};
use super::{Fleet, Located, SourceFile};
use crate::error::{Diagnostic, Diagnostics};

/// Parses source files into a fleet, refusing Kubernetes objects that are not Prism resources.
pub fn fleet_from_files(files: Vec<SourceFile>, namespace: &str) -> Result<Fleet, Diagnostics> {
    fleet_from_files_with(files, namespace, Others::Refuse)
}

/// Parses source files into a fleet, with the Kubernetes objects that are not Prism resources
/// treated as `others` says. Files that hold no Kubernetes object are left out (and listed in
/// [`Fleet::skipped`]); that is an error when every file is.
pub fn fleet_from_files_with(
    files: Vec<SourceFile>,
    namespace: &str,
    others: Others,
) -> Result<Fleet, Diagnostics> {
    let mut sorted = Sorted::default();
    let mut read = 0;
    // Each file's text goes as soon as it is split: its documents hold their own.
    for (name, text) in files {
        let docs = super::split_documents(&name, &text);
        read += usize::from(!docs.is_empty());
        sorted.add_file(&name, docs, others);
    }
    if read > 0 && sorted.skipped.len() == read {
        // One line: the first file, and how many others there were.
        let first = &sorted.skipped[0];
        let others = match read - 1 {
            0 => String::new(),
            1 => ", nor does the other input file".into(),
            n => format!(", nor do the {n} other input files"),
        };
        let what = match first.other_objects {
            true => "only Kubernetes objects that are not Prism resources",
            false => "no Kubernetes objects (no document has an apiVersion or a kind)",
        };
        return Err(Diagnostic::new(
            first.file.as_str(),
            first.line,
            "",
            format!("holds {what}{others}: no Prism resources to render"),
        )
        .into());
    }
    let mut problems = Diagnostics::default();
    let mut fleet = super::parse_fleet(sorted.prism, namespace).unwrap_or_else(|p| {
        problems.0.extend(p.0);
        Fleet::default()
    });
    for doc in sorted.others {
        let doc = std::sync::Arc::new(doc);
        match super::sort::pass_through(&doc, namespace) {
            Ok(value) => fleet.others.push(Located { value, origin: doc }),
            Err(p) => problems.push(p),
        }
    }
    fleet.skipped = sorted.skipped;
    problems.into_result(fleet)
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
