//! Reading inputs: files, directories and standard input, split into YAML documents that
//! remember where they came from, then strictly parsed into a [`Fleet`].
//!
//! Every command reads through one pipeline: [`tree`] walks a tree of files (the file system as
//! given on the command line, a directory, a git revision) and reads its YAML files and template
//! overrides, [`decode`] turns bytes into text, [`split_documents`] and [`parse_fleet`] make the
//! fleet; [`read_inputs`] and [`load_fleet`] do it all for paths on disk (the CLI's commands go
//! through [`crate::job::Job`], which reads with [`read_inputs`]). The templates a fleet is
//! rendered with are read by [`crate::render::templates::renderer`].

mod fleet;
mod load;
pub mod locate;
mod object;
pub mod rules;
pub mod schema;
pub mod sort;
pub mod tree;

use std::path::Path;
use std::sync::Arc;

pub use fleet::{Fleet, Located, Typed, parse_fleet};
pub use load::{fleet_from_files, fleet_from_files_with, load_fleet, read_inputs};
pub use object::{OBJECT_FILE, check_object};
pub use sort::{Others, Skipped};

use crate::error::Diagnostic;

/// One YAML document of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name as given (`-` for standard input).
    pub file: Arc<str>,
    /// Line of the file on which the document's text starts (1-based).
    pub line: usize,
    /// The document's text.
    pub text: Arc<str>,
}

impl Document {
    /// File line of the field at `path` (or its nearest existing ancestor).
    pub fn line_of(&self, path: &str) -> usize {
        self.line + locate::line_of(&self.text, path) - 1
    }

    /// A diagnostic for the field at `path` of this document (control characters in keys
    /// are shown escaped, so the diagnostic stays one line).
    pub fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.locate(Diagnostic::at(path, message))
    }

    /// Places `problem`, found at a field of this document, at the file line of that field.
    pub fn locate(&self, problem: Diagnostic) -> Diagnostic {
        let line = locate::line_of(&self.text, &problem.path);
        Diagnostic { line, ..problem }.in_file(self.file.as_ref(), self.line)
    }
}

/// What a render that found no YAML file in `places` (as shown to the user) says; `so`, when
/// given, what follows from it.
pub fn no_yaml_files(places: &[String], so: Option<&str>) -> Diagnostic {
    let message = match so {
        None => "no YAML files found".to_string(),
        Some(so) => format!("no YAML files found: {so}"),
    };
    Diagnostic::new(places.join(" "), 0, "", message)
}

/// An input file's name and content.
pub type SourceFile = (String, String);

/// Whether a file name ends in `.yaml` or `.yml`.
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Decodes an input file's bytes as UTF-8 (dropping a byte-order mark); invalid bytes are
/// reported at their line.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(Diagnostic::new(
            name,
            1,
            "",
            "is UTF-16 (it starts with a UTF-16 byte-order mark); YAML inputs must be UTF-8",
        ));
    }
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = &e.as_bytes()[..offset];
        let line = text.iter().filter(|b| **b == b'\n').count() + 1;
        Diagnostic::new(
            name,
            line,
            "",
            format!("not valid UTF-8 (byte {offset}); YAML inputs must be UTF-8"),
        )
    })
}

/// Splits a YAML stream into documents at `---` lines, keeping each one's starting line.
/// Directives (`%YAML 1.2`) stay with the document their `---` starts, and a byte-order mark
/// that starts a document is dropped.
pub fn split_documents(file: &str, text: &str) -> Vec<Document> {
    let file: Arc<str> = Arc::from(file);
    let mut docs = Vec::new();
    let mut start_line = 1;
    let mut current = String::new();
    // Whether `current` ends with directives that wait for their `---`.
    let mut directives = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "...";
        if is_marker && directives {
            current.push_str(line);
            directives = false;
        } else if is_marker || is_end {
            directives = false;
            push_doc(&mut docs, &file, start_line, std::mem::take(&mut current));
            start_line = i + 2;
            if is_marker {
                // Content after the marker on the same line belongs to the next document.
                let rest = bare[3..].trim_start();
                if !rest.is_empty() && !rest.starts_with('#') {
                    current.push_str(rest);
                    current.push('\n');
                    start_line = i + 1;
                }
            }
        } else {
            let mut line = line;
            if current.is_empty() {
                start_line = i + 1;
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if line.starts_with('%') && is_blank(&current) {
                directives = true;
            }
            current.push_str(line);
        }
    }
    push_doc(&mut docs, &file, start_line, current);
    docs
}

/// Whether `text` holds nothing but blank lines, comments and directives.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%')
    })
}

fn push_doc(docs: &mut Vec<Document>, file: &Arc<str>, line: usize, text: String) {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if !blank {
        docs.push(Document {
            file: file.clone(),
            line,
            text: Arc::from(text),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_their_lines() {
        let text = "# header\n---\na: 1\n---\n\n# only a comment\n---\nb: 2\nc: 3\n...\n";
        let docs = split_documents("f.yaml", text);
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].line, docs[0].text.as_ref()), (3, "a: 1\n"));
        assert_eq!((docs[1].line, docs[1].text.as_ref()), (8, "b: 2\nc: 3\n"));
        assert_eq!(docs[1].line_of("c"), 9);
    }

    #[test]
    fn a_leading_document_without_marker_counts() {
        let docs = split_documents("f", "a: 1\n---\nb: 2\n");
        assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn directives_stay_with_their_document() {
        let text = "a: 1\n---\n%YAML 1.2\n---\nb: 2\n---\n\u{feff}c: 3\n";
        let docs = split_documents("f", text);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            (docs[1].line, docs[1].text.as_ref()),
            (3, "%YAML 1.2\n---\nb: 2\n")
        );
        assert_eq!(docs[1].line_of("b"), 5);
        assert_eq!((docs[2].line, docs[2].text.as_ref()), (7, "c: 3\n"));
    }

    #[test]
    fn rejects_utf16() {
        let err = decode("x.yaml", b"\xFF\xFEa\x00".to_vec()).unwrap_err();
        assert!(err.message.starts_with("is UTF-16"), "{}", err.message);
    }

    #[test]
    fn rejects_invalid_utf8_with_line() {
        let err = decode("x.yaml", b"a: 1\nb: \xff\n".to_vec()).unwrap_err();
        assert_eq!((err.line, err.file.as_str()), (2, "x.yaml"));
    }
}
