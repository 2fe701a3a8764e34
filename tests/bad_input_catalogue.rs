//! The bad-input catalogue: every directory `tests/bad_inputs/NN-slug/` holds malformed input
//! files and `expected.txt`, the exact standard error of `prism-render` on them. Each case must
//! fail with exit code 1, print nothing on standard output, and print one line naming the file,
//! the line and (for everything but whole-document problems) the field path.
//!
//! A case runs `prism-render render .` inside its directory, or the arguments listed one per
//! line in an `args` file; a `stdin` file is piped to standard input. `UPDATE_EXPECTED=1`
//! rewrites every `expected.txt` from the actual output (review the diff before keeping it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The catalogue must not shrink below this.
const MIN_CASES: usize = 40;

/// Messages about a whole document or file rather than one field: they carry no field path.
const WHOLE_DOCUMENT: &[&str] = &[
    "invalid YAML: ",
    "not valid UTF-8 ",
    "is UTF-16 ",
    "a document must be a mapping",
];

fn catalogue() -> PathBuf {
    prism_testing::paths::root().join("tests/bad_inputs")
}

/// The case directories, sorted.
fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(catalogue())
        .expect("tests/bad_inputs exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Runs one case; returns (exit code, stdout, stderr).
fn run(dir: &Path) -> (Option<i32>, Vec<u8>, String) {
    let args: Vec<String> = match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => vec!["render".into(), ".".into()],
    };
    let stdin = std::fs::read(dir.join("stdin")).ok();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prism-render"))
        .args(&args)
        .current_dir(dir)
        .env_remove("PRISM_NAMESPACE")
        .env_remove("PRISM_PROXY_IMAGE")
        .env_remove("PRISM_TEMPLATES")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prism-render runs");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    (out.status.code(), out.stdout, stderr)
}

/// Everything wrong with one case's outcome (empty when it passes).
fn check(
    dir: &Path,
    code: Option<i32>,
    stdout: &[u8],
    stderr: &str,
    expected: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if code != Some(1) {
        problems.push(format!("exit code {code:?}, expected 1"));
    }
    if !stdout.is_empty() {
        problems.push(format!("{} bytes on stdout, expected none", stdout.len()));
    }
    if stderr != expected {
        problems.push(format!(
            "stderr differs from expected.txt\n      expected: {expected:?}\n      actual:   {stderr:?}"
        ));
    }
    let Some(line) = stderr.strip_suffix('\n').filter(|l| !l.contains('\n')) else {
        problems.push(format!("stderr is not exactly one line: {stderr:?}"));
        return problems;
    };
    if line.chars().any(char::is_control) {
        problems.push(format!("control character in {line:?}"));
    }
    let Some(rest) = line.strip_prefix("error: ") else {
        problems.push(format!("{line:?} does not start with \"error: \""));
        return problems;
    };
    // `FILE:LINE: ` then the path and message.
    let mut parts = rest.splitn(3, ':');
    let (file, number, message) = (parts.next(), parts.next(), parts.next());
    let (Some(file), Some(Ok(number)), Some(message)) =
        (file, number.map(str::parse::<usize>), message)
    else {
        problems.push(format!("{line:?} does not name FILE:LINE"));
        return problems;
    };
    let source = if file == "-" {
        std::fs::read(dir.join("stdin")).ok()
    } else {
        std::fs::read(dir.join(file)).ok()
    };
    match source {
        None => problems.push(format!("{file} is not an input of the case")),
        Some(bytes) => {
            let lines = bytes
                .iter()
                .filter(|b| **b == b'\n' || **b == b'\r')
                .count()
                .max(1);
            if number == 0 || number > lines {
                problems.push(format!("line {number} is outside {file} ({lines} lines)"));
            }
        }
    }
    let message = message.trim_start();
    let whole_document = WHOLE_DOCUMENT.iter().any(|w| message.starts_with(w));
    // A path starts with a field name; keys inside it may hold anything but ": ".
    let path = message.split(": ").next().unwrap_or_default();
    let looks_like_path = message.contains(": ")
        && path.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && path
            .split(['.', '['])
            .next()
            .is_some_and(|first| !first.contains(' '));
    if !whole_document && !looks_like_path {
        problems.push(format!("no field path before the message in {line:?}"));
    }
    problems
}

#[test]
fn every_bad_input_fails_with_one_clear_line() {
    let update = std::env::var_os("UPDATE_EXPECTED").is_some();
    let cases = cases();
    let mut failures = Vec::new();
    let mut numbers = std::collections::BTreeSet::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let number = name
            .split_once('-')
            .and_then(|(n, _)| n.parse::<u32>().ok());
        match number {
            Some(n) if numbers.insert(n) => {}
            _ => failures.push(format!("{name}: name it NN-slug with a unique NN")),
        }
        let (code, stdout, stderr) = run(dir);
        let expected_path = dir.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = match std::fs::read_to_string(&expected_path) {
            Ok(text) => text,
            Err(e) => {
                failures.push(format!("{name}: expected.txt: {e}"));
                continue;
            }
        };
        for problem in check(dir, code, &stdout, &stderr, &expected) {
            failures.push(format!("{name}: {problem}"));
        }
    }
    eprintln!("bad-input catalogue: {} cases", cases.len());
    if cases.len() < MIN_CASES {
        failures.push(format!(
            "only {} cases; the catalogue needs at least {MIN_CASES}",
            cases.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
