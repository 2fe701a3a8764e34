//! Diagnostics that say where: file, line, field path and what is wrong.

use std::fmt;

/// One problem in the input, pointing at the file and line and naming the field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// File the problem is in (`-` for standard input).
    pub file: String,
    /// 1-based line; 0 when the problem is with the file as a whole.
    pub line: usize,
    /// Field path inside the document, e.g. `spec.plugins[0].version`; empty for the whole document.
    pub path: String,
    /// What is wrong, in one line.
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

/// What is wrong at a field of one document, before the document's file and line are added:
/// the one form of what shape checks ([`crate::source::locate`]), schema validation
/// ([`crate::source::schema`]) and plugin resolution ([`crate::render::resolve`]) find, each
/// made a [`Diagnostic`] by its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Line in the document's text (1-based); 0 when the path alone places the problem.
    pub line: usize,
    /// Field path, e.g. `spec.plugins[0].version` (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldProblem {
    /// A problem with the field at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::on_line(0, path, message)
    }

    /// A problem on `line` of the document's text, at the field `path`.
    pub fn on_line(line: usize, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line,
            path: path.into(),
            message: message.into(),
        }
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
