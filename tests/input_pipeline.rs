//! Every way of reading inputs is one pipeline: `render PATH`, `render --rev` and
//! `cmp generate` search directories, follow symbolic links and read template overrides alike,
//! so the same files give the same objects or the same one-line error in each.
#![cfg(unix)]

use prism_testing::process::{stderr, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use git2::{Repository, Signature, Time};

const BIN: &str = env!("CARGO_BIN_EXE_prism-render");

/// The example app copied into `app/`, the embedded PDB template into `tpl/`, `setup` applied,
/// and everything committed: a repository whose working tree and `HEAD` hold the same files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(setup: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let example = prism_testing::paths::root().join("examples/adr-037");
        std::fs::create_dir_all(root.join("app")).unwrap();
        for entry in std::fs::read_dir(example).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, root.join("app").join(path.file_name().unwrap())).unwrap();
        }
        std::fs::create_dir_all(root.join("tpl")).unwrap();
        setup(root);
        let repo = Repository::init(root).unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let who =
            Signature::new("Fleet", "fleet@example.com", &Time::new(1_750_000_000, 0)).unwrap();
        repo.commit(Some("HEAD"), &who, &who, "fleet", &tree, &[])
            .unwrap();
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn app(&self) -> PathBuf {
        self.root().join("app")
    }

    /// The absolute templates directory, as a command-line argument.
    fn tpl(&self) -> String {
        self.root().join("tpl").display().to_string()
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("HOME", self.root())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .expect("prism-render runs")
    }

    /// `render app` from the repository root.
    fn render(&self, extra: &[&str]) -> Output {
        self.run(self.root(), &[&["render"], extra, &["app"]].concat())
    }

    /// `render --rev HEAD app` from the repository root.
    fn render_rev(&self, extra: &[&str]) -> Output {
        self.run(
            self.root(),
            &[&["render", "--rev", "HEAD"], extra, &["app"]].concat(),
        )
    }

    /// `cmp generate` in the app directory, told that it is `app` of the repository; with
    /// `rev`, also that it is revision `HEAD` (so files are named as `render --rev HEAD` names
    /// them).
    fn generate(&self, rev: bool, extra: &[&str]) -> Output {
        let mut args = vec!["cmp", "generate", "--source-path", "app"];
        if rev {
            args.extend(["--revision", "HEAD"]);
        }
        self.run(&self.app(), &[extra, &args].concat())
    }
}

/// A failure: exit code 1, nothing on stdout, one error line containing `expected`; returns it.
fn one_error(out: &Output, expected: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[0].contains(expected),
        "{expected:?} expected in {err}"
    );
    lines[0].to_string()
}

/// Asserts that the working tree (`render`, `cmp generate`) and `HEAD` (`render --rev`,
/// `cmp generate --revision`) fail alike with `plain` and `rev` as their one line.
fn fails_alike(f: &Fixture, plain: &str, rev: &str) {
    assert_eq!(one_error(&f.render(&[]), plain), format!("error: {plain}"));
    assert_eq!(
        one_error(&f.generate(false, &[]), plain),
        format!("error: {plain}")
    );
    assert_eq!(one_error(&f.render_rev(&[]), rev), format!("error: {rev}"));
    assert_eq!(
        one_error(&f.generate(true, &[]), rev),
        format!("error: {rev}")
    );
}

#[test]
fn a_symbolic_link_loop_is_one_error_in_every_pipeline() {
    let f = Fixture::new(|root| {
        std::fs::create_dir_all(root.join("app/nested")).unwrap();
        std::os::unix::fs::symlink("..", root.join("app/nested/back")).unwrap();
    });
    fails_alike(
        &f,
        "app/nested/back: symbolic link loop: leads back to app",
        "HEAD:app/nested/back: symbolic link loop: leads back to HEAD:app",
    );
}

#[test]
fn a_dangling_symbolic_link_is_named_in_every_pipeline() {
    let f = Fixture::new(|root| {
        std::os::unix::fs::symlink("gone.yaml", root.join("app/extra.yaml")).unwrap();
    });
    fails_alike(
        &f,
        "app/extra.yaml: cannot read: dangling symbolic link",
        "HEAD:app/extra.yaml: cannot read: dangling symbolic link",
    );
}

/// The embedded PDB template, as an override file would hold it.
fn pdb_template() -> Vec<u8> {
    std::fs::read(prism_testing::paths::root().join("templates/shard-pdb.yaml")).unwrap()
}

#[test]
fn a_template_override_with_a_byte_order_mark_is_the_template() {
    let f = Fixture::new(|root| {
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), &pdb_template()].concat();
        std::fs::write(root.join("tpl/shard-pdb.yaml"), with_bom).unwrap();
    });
    let embedded = f.render(&[]);
    assert!(embedded.status.success(), "{}", stderr(&embedded));
    assert!(!embedded.stdout.is_empty());
    let tpl = f.tpl();
    for (what, out) in [
        ("render", f.render(&["--templates", &tpl])),
        ("render --rev", f.render_rev(&["--templates", &tpl])),
        (
            "render --rev, templates from HEAD",
            f.render_rev(&["--templates", "tpl"]),
        ),
        ("cmp generate", f.generate(false, &["--templates", &tpl])),
        (
            "cmp generate --revision",
            f.generate(true, &["--templates", &tpl]),
        ),
    ] {
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&embedded), "{what}");
    }
}

#[test]
fn a_template_override_with_invalid_utf8_names_file_and_line() {
    let f = Fixture::new(|root| {
        let mut text = pdb_template();
        let third = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .map(|(i, _)| i)
            .unwrap();
        text.splice(third..third, *b" # \xff");
        std::fs::write(root.join("tpl/shard-pdb.yaml"), text).unwrap();
    });
    let tpl = f.tpl();
    let expected = format!("{tpl}/shard-pdb.yaml:3: not valid UTF-8");
    let line = one_error(&f.render(&["--templates", &tpl]), &expected);
    for out in [
        f.render_rev(&["--templates", &tpl]),
        f.generate(false, &["--templates", &tpl]),
        f.generate(true, &["--templates", &tpl]),
    ] {
        assert_eq!(one_error(&out, &expected), line);
    }
    let relative = f.run(f.root(), &["render", "--templates", "tpl", "app"]);
    one_error(&relative, "tpl/shard-pdb.yaml:3: not valid UTF-8");
    one_error(
        &f.render_rev(&["--templates", "tpl"]),
        "HEAD:tpl/shard-pdb.yaml:3: not valid UTF-8",
    );
}
