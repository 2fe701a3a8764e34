//! The documentation a newcomer walks: README.md, every `docs/*.md`, and every Markdown file
//! they link to.
//!
//! 1. Every relative link resolves to an existing file, and a `#anchor` to a heading of the
//!    target (GitHub's slugs: lower case, punctuation other than `-` and `_` dropped, spaces to
//!    `-`, `-1`, `-2` … for repeated headings).
//! 2. Every long flag the docs give `prism-render` or `prism-operator` exists in the `--help` of
//!    that binary or of one of its subcommands. A flag is given to a binary in two ways only:
//!    - on a command line that runs the binary: a line of a fenced code block, or a code span,
//!      whose command (after an optional `$ ` prompt and `NAME=value` assignments) is
//!      `prism-render` or `prism-operator` (any directory before it), or `cargo run … --bin
//!      <binary> -- …` (then the flags after `--`). A line ending in `\` goes on with the next
//!      one; a line holds several commands when `|`, `||`, `&&` or `;` separate them, and ends at
//!      a `#` comment. The first word of each command decides, so flags of `helm`, `kubectl`,
//!      `cargo` or `podman` are never checked against our binaries;
//!    - in the first column of a table whose first header cell is `flag`: the flags of the
//!      binary named (in a code span) by the nearest heading above the table that names one.
//!      A flag table under no such heading is an error.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use regex::Regex;

const BINARIES: [&str; 2] = ["prism-render", "prism-operator"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, sorted.
fn entry_points() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A Markdown file split into what the checks read.
struct Doc {
    /// Every line outside fenced code blocks (fenced lines are blank here, so line numbers hold).
    prose: String,
    /// Lines inside fenced code blocks, with their 1-based line numbers.
    code: Vec<(usize, String)>,
    /// Headings outside code blocks: (line, level, text).
    headings: Vec<(usize, usize, String)>,
}

fn parse(text: &str) -> Doc {
    let mut prose = String::new();
    let mut code = Vec::new();
    let mut headings = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        match &fence {
            Some(open) => {
                if marker.len() >= open.len()
                    && marker.starts_with(&open[..1])
                    && trimmed[marker.len()..].trim().is_empty()
                {
                    fence = None;
                } else {
                    code.push((i + 1, line.to_string()));
                }
                prose.push('\n');
            }
            None if marker.len() >= 3
                && marker.chars().all(|c| c == marker.as_bytes()[0] as char) =>
            {
                fence = Some(marker);
                prose.push('\n');
            }
            None => {
                let level = trimmed.chars().take_while(|&c| c == '#').count();
                if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') {
                    let heading = trimmed[level..].trim().trim_end_matches('#').trim();
                    headings.push((i + 1, level, heading.to_string()));
                }
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    Doc {
        prose,
        code,
        headings,
    }
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    // Links in a heading count with their text only.
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let text = link.replace_all(heading, "$1");
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a document's headings, repeated ones numbered as GitHub does.
fn anchors(doc: &Doc) -> HashSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = HashSet::new();
    for (_, _, heading) in &doc.headings {
        let base = slug(heading);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Removes `.` and `..` from a path without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Checks every relative link of `files` and of the Markdown files they link to, under `base`.
/// Returns the problems, and every Markdown file read.
fn check_links(base: &Path, files: &[PathBuf]) -> (Vec<String>, Vec<PathBuf>) {
    let inline = Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).unwrap();
    let reference = Regex::new(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)").unwrap();
    let mut problems = Vec::new();
    let mut queue: Vec<PathBuf> = files.iter().map(|f| normalize(f)).collect();
    let mut read: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some(file) = queue.pop() {
        if !read.insert(file.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let doc = parse(&text);
        let targets = inline
            .captures_iter(&doc.prose)
            .chain(reference.captures_iter(&doc.prose))
            .map(|c| c.get(1).unwrap());
        for target in targets {
            let link = target.as_str();
            let at = format!(
                "{}:{}",
                shown(&file, base),
                line_of(&doc.prose, target.start())
            );
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link, None),
            };
            let target_file = if path.is_empty() {
                file.clone()
            } else if path.starts_with('/') {
                problems.push(format!("{at}: {link}: an absolute path; link relatively"));
                continue;
            } else {
                normalize(&file.parent().unwrap().join(path))
            };
            if !target_file.starts_with(base) {
                problems.push(format!("{at}: {link}: outside the repository"));
                continue;
            }
            if !target_file.exists() {
                problems.push(format!("{at}: {link}: no such file"));
                continue;
            }
            let is_markdown = target_file.extension().is_some_and(|x| x == "md");
            if let Some(anchor) = anchor {
                if !is_markdown {
                    problems.push(format!(
                        "{at}: {link}: an anchor into a file that is not Markdown"
                    ));
                    continue;
                }
                let text = std::fs::read_to_string(&target_file).unwrap();
                if !anchors(&parse(&text)).contains(anchor) {
                    problems.push(format!(
                        "{at}: {link}: {} has no heading with the anchor #{anchor}",
                        shown(&target_file, base)
                    ));
                }
            }
            if is_markdown {
                queue.push(target_file);
            }
        }
    }
    (problems, read.into_iter().collect())
}

/// The commands of a shell line: its words up to a `#` comment, split at `|`, `||`, `&&` and `;`.
fn commands(line: &str) -> Vec<Vec<&str>> {
    let mut out = vec![Vec::new()];
    for token in line.split_whitespace() {
        if token.starts_with('#') {
            break;
        }
        if ["|", "||", "&&", ";"].contains(&token) {
            out.push(Vec::new());
            continue;
        }
        match token.strip_suffix(';') {
            Some(word) => {
                out.last_mut().unwrap().push(word);
                out.push(Vec::new());
            }
            None => out.last_mut().unwrap().push(token),
        }
    }
    out
}

/// The binary a command runs, and its arguments.
fn invocation<'a>(tokens: &[&'a str]) -> Option<(&'static str, Vec<&'a str>)> {
    let mut i = 0;
    if tokens.first() == Some(&"$") {
        i += 1;
    }
    let assignment = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*=").unwrap();
    while i < tokens.len() && assignment.is_match(tokens[i]) {
        i += 1;
    }
    let command = *tokens.get(i)?;
    let name = command.rsplit('/').next().unwrap();
    if let Some(binary) = BINARIES.iter().find(|b| **b == name) {
        return Some((binary, tokens[i + 1..].to_vec()));
    }
    if command == "cargo" && tokens.get(i + 1) == Some(&"run") {
        let args = &tokens[i + 2..];
        let end = args.iter().position(|t| *t == "--")?;
        let binary = args[..end]
            .windows(2)
            .find(|w| w[0] == "--bin")
            .and_then(|w| BINARIES.iter().find(|b| **b == w[1]))?;
        return Some((binary, args[end + 1..].to_vec()));
    }
    None
}

/// The long flags among a command's arguments.
fn flags_of(args: &[&str]) -> Vec<String> {
    let flag = Regex::new(r"(?:^|[\[(=,])(--[a-z0-9][a-z0-9-]*)").unwrap();
    args.iter()
        .flat_map(|token| flag.captures_iter(token).map(|c| c[1].to_string()))
        .collect()
}

/// A flag the docs give a binary: (binary, flag, where).
type Claim = (&'static str, String, String);

/// Every flag `file` gives one of our binaries.
fn claimed_flags(file: &Path, base: &Path) -> (Vec<Claim>, Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = parse(&text);
    let name = shown(file, base);
    let mut claims = Vec::new();
    let mut problems = Vec::new();
    fn claim(line: &str, at: String, claims: &mut Vec<Claim>) {
        for command in commands(line) {
            if let Some((binary, args)) = invocation(&command) {
                for flag in flags_of(&args) {
                    claims.push((binary, flag, at.clone()));
                }
            }
        }
    }

    // Command lines in fenced code blocks, joined across trailing backslashes.
    let mut pending: Option<(usize, String)> = None;
    let mut previous = 0;
    for (number, line) in &doc.code {
        let (start, mut joined) = match pending.take() {
            Some((start, text)) if *number == previous + 1 => (start, text),
            Some((start, text)) => {
                claim(&text, format!("{name}:{start}"), &mut claims);
                (*number, String::new())
            }
            None => (*number, String::new()),
        };
        previous = *number;
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                claim(&joined, format!("{name}:{start}"), &mut claims);
            }
        }
    }
    if let Some((start, text)) = pending {
        claim(&text, format!("{name}:{start}"), &mut claims);
    }

    // Code spans in prose.
    let span = Regex::new(r"`([^`]+)`").unwrap();
    for c in span.captures_iter(&doc.prose) {
        let at = format!("{name}:{}", line_of(&doc.prose, c.get(0).unwrap().start()));
        claim(&c[1].replace('\n', " "), at, &mut claims);
    }

    // Flag tables, for the binary their nearest heading names.
    let named = Regex::new(r"`(prism-render|prism-operator)\b").unwrap();
    let flag = Regex::new(r"(?:^|[\s`,(\[])(--[a-z0-9][a-z0-9-]*)").unwrap();
    let lines: Vec<&str> = doc.prose.lines().collect();
    let mut in_flag_table = false;
    for (i, line) in lines.iter().enumerate() {
        let cells = |l: &str| -> Vec<String> {
            l.trim()
                .trim_matches('|')
                .replace("\\|", "\u{0}")
                .split('|')
                .map(|c| c.trim().replace('\u{0}', "|"))
                .collect()
        };
        if !line.trim_start().starts_with('|') {
            in_flag_table = false;
            continue;
        }
        let is_header = lines.get(i + 1).is_some_and(|next| {
            next.trim_start().starts_with("|-")
                || next.trim_start().starts_with("| -")
                || next.trim_start().starts_with("|:")
        });
        if is_header {
            in_flag_table = cells(line)
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case("flag"));
            continue;
        }
        if !in_flag_table
            || line.trim_start().starts_with("|-")
            || line.trim_start().starts_with("|:")
        {
            continue;
        }
        let binary = doc
            .headings
            .iter()
            .rev()
            .filter(|(at, ..)| *at <= i + 1)
            .find_map(|(_, _, heading)| {
                named.captures(heading).map(|c| c.get(1).unwrap().as_str())
            });
        let at = format!("{name}:{}", i + 1);
        let Some(binary) = binary.and_then(|b| BINARIES.iter().find(|x| **x == b)) else {
            problems.push(format!(
                "{at}: a flag table under no heading that names `prism-render` or `prism-operator`"
            ));
            in_flag_table = false;
            continue;
        };
        let first = cells(line).into_iter().next().unwrap_or_default();
        for c in flag.captures_iter(&first) {
            claims.push((binary, c[1].to_string(), at.clone()));
        }
    }
    (claims, problems)
}

/// Every long flag in the `--help` of `binary` and of its subcommands, recursively.
fn help_flags(binary: &Path) -> BTreeSet<String> {
    let option = Regex::new(r"(?m)^(?:  -[A-Za-z0-9], |      )(--[a-z0-9][a-z0-9-]*)").unwrap();
    let command = Regex::new(r"^  ([a-z][a-z0-9-]*)(?:\s|$)").unwrap();
    let mut flags = BTreeSet::new();
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = queue.pop() {
        let out = Command::new(binary)
            .args(&path)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
        assert!(
            out.status.success(),
            "{} {} --help failed: {}",
            binary.display(),
            path.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8(out.stdout).unwrap();
        flags.extend(option.captures_iter(&help).map(|c| c[1].to_string()));
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
            } else if line.trim().is_empty() {
                in_commands = false;
            } else if in_commands
                && let Some(c) = command.captures(line)
                && &c[1] != "help"
            {
                let mut sub = path.clone();
                sub.push(c[1].to_string());
                queue.push(sub);
            }
        }
    }
    flags
}

/// The flags of `claims` that `known` lacks, as problems.
fn unknown_flags(
    claims: &[Claim],
    known: &BTreeMap<&'static str, BTreeSet<String>>,
) -> Vec<String> {
    claims
        .iter()
        .filter(|(binary, flag, _)| !known[binary].contains(flag))
        .map(|(binary, flag, at)| format!("{at}: {binary} has no flag {flag}"))
        .collect()
}

fn known_flags() -> BTreeMap<&'static str, BTreeSet<String>> {
    let render = PathBuf::from(env!("CARGO_BIN_EXE_prism-render"));
    let operator = prism_testing::process::operator_binary();
    BTreeMap::from([
        ("prism-render", help_flags(&render)),
        ("prism-operator", help_flags(&operator)),
    ])
}

#[test]
fn every_relative_link_resolves() {
    let (problems, read) = check_links(root(), &entry_points());
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    // The walk really went through the docs.
    assert!(read.len() > 5, "only read {read:?}");
}

#[test]
fn every_flag_the_docs_name_exists() {
    let (_, files) = check_links(root(), &entry_points());
    let known = known_flags();
    let mut claims = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let (c, p) = claimed_flags(file, root());
        claims.extend(c);
        problems.extend(p);
    }
    problems.extend(unknown_flags(&claims, &known));
    assert!(
        problems.is_empty(),
        "flags the docs name but the binaries do not have:\n{}",
        problems.join("\n")
    );
    // The rules really found the flag references: each binary has its flags documented.
    for binary in BINARIES {
        let documented: BTreeSet<&String> = claims
            .iter()
            .filter(|(b, ..)| *b == binary)
            .map(|(_, flag, _)| flag)
            .collect();
        assert!(
            documented.len() >= 10,
            "{binary}: only {documented:?} found in the docs"
        );
    }
}

/// The checks themselves catch a broken link, a missing anchor and a misspelt flag, and leave
/// other tools' flags alone.
#[test]
fn the_checks_catch_what_they_are_for() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir(base.join("docs")).unwrap();
    std::fs::write(
        base.join("README.md"),
        "# Top\n\n## Try it out!\n\nSee [cli](docs/cli.md#global-flags), [gone](docs/gone.md), \
         [here](#try-it-out) and [there](docs/cli.md#nowhere).\n\n```sh\n\
         prism-render render --out-dir x \\\n  --namespace-typo y\n\
         helm install x charts/x --set a=b --wait\n\
         cargo run --release --bin prism-render -- render --rev HEAD --nope\n```\n\n\
         Run `prism-operator run --resync 1m --resink 1m`; `kubectl apply --server-side`; \
         `cd x && ./prism-render validate --kube-api-versionz v1 | grep --count x`.\n",
    )
    .unwrap();
    std::fs::write(
        base.join("docs/cli.md"),
        "# `prism-render`\n\n## Global flags\n\n| flag | meaning |\n|---|---|\n\
         | `-n`, `--namespace NS` | namespace |\n| `--templatez DIR` | typo |\n\n\
         ```\n# not a heading\n```\n",
    )
    .unwrap();
    let (links, read) = check_links(base, &[base.join("README.md")]);
    assert_eq!(
        links,
        [
            "README.md:5: docs/gone.md: no such file",
            "README.md:5: docs/cli.md#nowhere: docs/cli.md has no heading with the anchor #nowhere",
        ],
        "{links:#?}"
    );
    assert_eq!(read.len(), 2);
    let mut claims = Vec::new();
    for file in &read {
        let (c, p) = claimed_flags(file, base);
        assert!(p.is_empty(), "{p:?}");
        claims.extend(c);
    }
    let mut flags: Vec<String> = claims
        .iter()
        .map(|(b, f, at)| format!("{at} {b} {f}"))
        .collect();
    flags.sort();
    let mut want = [
        "README.md:8 prism-render --out-dir",
        "README.md:8 prism-render --namespace-typo",
        "README.md:11 prism-render --rev",
        "README.md:11 prism-render --nope",
        "README.md:14 prism-operator --resync",
        "README.md:14 prism-operator --resink",
        "README.md:14 prism-render --kube-api-versionz",
        "docs/cli.md:7 prism-render --namespace",
        "docs/cli.md:8 prism-render --templatez",
    ];
    want.sort();
    assert_eq!(flags, want);
    let known = known_flags();
    let mut unknown = unknown_flags(&claims, &known);
    unknown.sort();
    assert_eq!(
        unknown,
        [
            "README.md:11: prism-render has no flag --nope",
            "README.md:14: prism-operator has no flag --resink",
            "README.md:14: prism-render has no flag --kube-api-versionz",
            "README.md:8: prism-render has no flag --namespace-typo",
            "docs/cli.md:8: prism-render has no flag --templatez",
        ]
    );
    // A flag table under a heading that names no binary is an error, not silently skipped.
    std::fs::write(
        base.join("docs/orphan.md"),
        "# Settings\n\n| flag | meaning |\n|---|---|\n| `--x` | x |\n",
    )
    .unwrap();
    let (_, problems) = claimed_flags(&base.join("docs/orphan.md"), base);
    assert_eq!(
        problems,
        [
            "docs/orphan.md:5: a flag table under no heading that names `prism-render` or `prism-operator`"
        ]
    );
}
