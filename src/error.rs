//! Diagnostics that say where: file, line, field path and what is wrong.

use std::fmt;

/// One problem in the input, pointing at the file and line and naming the field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// File the problem is in (`-` for standard input); empty until a problem found in one
    /// document is placed ([`Diagnostic::in_file`]).
    pub file: String,
    /// 1-based line; 0 when the problem is with the file as a whole. Until placed, the line in
    /// the document's text (0: the path alone places it).
    pub line: usize,
    /// Field path inside the document, e.g. `spec.plugins[0].version`; empty for the whole document.
    pub path: String,
    /// What is wrong, in one line (until placed, as written).
    pub message: String,
}

impl Diagnostic {
    /// A problem at `file:line` in field `path`.
    pub fn new(
        file: impl Into<String>,
        line: usize,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            path: path.into(),
            message: one_line(&message.into()),
        }
    }

    /// A problem with the field at `path` of one document, not yet placed in a file: what shape
    /// checks ([`crate::source::locate`]), schema validation ([`crate::source::schema`]) and
    /// plugin resolution ([`crate::render::resolve`]) find. The message is kept as written
    /// until [`Diagnostic::in_file`] places it.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::on_line(0, path, message)
    }

    /// A problem on `line` of one document's text (1-based), at the field `path`, not yet
    /// placed in a file (see [`Diagnostic::at`]).
    pub fn on_line(line: usize, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: String::new(),
            line,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Places a problem found in a document whose text starts on line `first_line` of `file`:
    /// its line, counted in the document's text, becomes the file's; the path is shown with
    /// control characters escaped and the message folded onto one line.
    pub fn in_file(self, file: impl Into<String>, first_line: usize) -> Self {
        Self::new(
            file,
            first_line + self.line - 1,
            crate::source::locate::printable(&self.path),
            self.message,
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one pass, sorted by place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// A single problem.
    pub fn one(d: Diagnostic) -> Self {
        Self(vec![d])
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// `Ok(value)` when empty, otherwise the sorted, de-duplicated problems.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0.sort();
            self.0.dedup();
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self::one(d)
    }
}

/// Folds a message onto one line so every diagnostic is exactly one line of output.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
