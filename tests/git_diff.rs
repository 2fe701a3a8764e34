//! `render --rev` and `diff` on real git repositories built here with git2: revisions read
//! without checkout, object-level diffs and their exit codes, bare and shallow clones, and
//! errors that name the revision.

use prism_testing::process::{stderr, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use git2::{Oid, Repository, Signature, Time};

const BIN: &str = env!("CARGO_BIN_EXE_prism-render");

const PLUGINS: &str = r#"apiVersion: prism.io/v1beta1
kind: PrismPlugin
metadata:
  name: postgres
  namespace: prism
spec:
  version: "1.4.2"
  source:
    registry: ghcr.io/prism/plugins
    image: postgres-plugin:1.4.2
  deployment:
    type: sidecar
"#;

const SHARDS: &str = r#"apiVersion: prism.io/v1beta1
kind: PrismShard
metadata:
  name: playback
  namespace: prism
spec:
  product: playback
  replicas: 2
  backends: [postgres]
  plugins:
  - name: postgres
    version: "1.4"
"#;

const SEARCH_SHARD: &str = r#"---
apiVersion: prism.io/v1beta1
kind: PrismShard
metadata:
  name: search
  namespace: prism
spec:
  product: search
  replicas: 3
  backends: [postgres]
  plugins:
  - name: postgres
    version: "1.4"
"#;

const NAMESPACES: &str = r#"apiVersion: prism.io/v1beta1
kind: PrismNamespace
metadata:
  name: user-profiles
  namespace: prism
spec:
  backend: postgres
  pattern: keyvalue
  shard:
    product: playback
---
apiVersion: prism.io/v1beta1
kind: PrismNamespace
metadata:
  name: watch-history
  namespace: prism
spec:
  backend: postgres
  pattern: keyvalue
  shard:
    product: playback
"#;

/// A repository with the fleet in `fleet/` and two commits on `main`:
/// `base` (the fleet) and `head` (a shard added, a namespace removed, the plugin upgraded).
struct Fixture {
    dir: tempfile::TempDir,
    base: Oid,
    head: Oid,
}

impl Fixture {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }
}

fn write(repo: &Path, file: &str, text: &str) {
    let path = repo.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Commits the whole working tree with a fixed author and time.
fn commit(repo: &Repository, message: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let who = Signature::new(
        "Fleet Bot",
        "fleet@example.com",
        &Time::new(1_750_000_000, 0),
    )
    .unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents)
        .unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(&path, &opts).unwrap();
    write(&path, "fleet/plugins.yaml", PLUGINS);
    write(&path, "fleet/shards.yaml", SHARDS);
    write(&path, "fleet/namespaces.yaml", NAMESPACES);
    write(&path, "README.md", "# fleet\n");
    let base = commit(&repo, "fleet");
    write(
        &path,
        "fleet/shards.yaml",
        &format!("{SHARDS}{SEARCH_SHARD}"),
    );
    let (first, _) = NAMESPACES.split_once("---\n").unwrap();
    write(&path, "fleet/namespaces.yaml", first);
    write(
        &path,
        "fleet/plugins.yaml",
        &PLUGINS.replace("1.4.2", "1.4.3"),
    );
    let head = commit(&repo, "search shard, drop watch-history, postgres 1.4.3");
    Fixture { dir, base, head }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("GIT_DIR")
        .output()
        .expect("prism-render runs")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
}

#[test]
fn render_rev_reads_the_revision_without_checking_it_out() {
    let f = fixture();
    let repo = f.repo();
    let at_head = run_in(&repo, &["render", "fleet"]);
    assert!(at_head.status.success(), "{}", stderr(&at_head));
    let rev_head = run_in(&repo, &["render", "--rev", "HEAD", "fleet"]);
    assert_eq!(stdout(&rev_head), stdout(&at_head), "{}", stderr(&rev_head));
    // From inside the directory, PATH defaults to it.
    let inside = run_in(&repo.join("fleet"), &["render", "--rev", "main"]);
    assert_eq!(stdout(&inside), stdout(&at_head), "{}", stderr(&inside));
    // From elsewhere, with --repo.
    let repo_arg = repo.display().to_string();
    let outside = run_in(
        f.path(),
        &["render", "--rev", "HEAD", "--repo", &repo_arg, "fleet"],
    );
    assert_eq!(stdout(&outside), stdout(&at_head), "{}", stderr(&outside));
    // The base revision is not the working tree: it has no search shard.
    let base = f.base.to_string();
    let old = run_in(&repo, &["render", "--rev", &base, "fleet"]);
    assert!(old.status.success());
    assert!(!stdout(&old).contains("prism-search"));
    assert!(stdout(&at_head).contains("prism-search"));
    // Uncommitted edits do not leak into a revision.
    write(&repo, "fleet/shards.yaml", "garbage: [\n");
    let again = run_in(&repo, &["render", "--rev", "HEAD", "fleet"]);
    assert_eq!(stdout(&again), stdout(&at_head));
}

#[test]
fn diff_lists_added_removed_and_changed_objects() {
    let f = fixture();
    let (base, head) = (f.base.to_string(), f.head.to_string());
    let out = run_in(&f.repo(), &["diff", &base, &head, "--", "fleet"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "added prism.io/v1beta1/PrismShard/prism/search",
        "added apps/v1/StatefulSet/prism/prism-search",
        "added v1/Service/prism/prism-search",
        "removed prism.io/v1beta1/PrismNamespace/prism/watch-history",
        "changed prism.io/v1beta1/PrismPlugin/prism/postgres",
        "changed apps/v1/StatefulSet/prism/prism-playback",
        "--- a/prism.io/v1beta1/PrismPlugin/prism/postgres",
        "+++ b/prism.io/v1beta1/PrismPlugin/prism/postgres",
        "--- /dev/null",
        "+++ /dev/null",
        "-  version: 1.4.2",
        "+  version: 1.4.3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
    // Hunk headers name the field that changed.
    assert!(
        text.contains(
            "@@ spec.template.spec.containers[plugin-postgres].env[PRISM_PLUGIN_VERSION].value\n"
        ),
        "{text}"
    );
    // Unchanged objects are not mentioned; the remaining namespace is unchanged.
    assert!(!text.contains("PrismNamespace/prism/user-profiles"));
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");

    let stat = run_in(&f.repo(), &["diff", "--stat", &base, &head, "--", "fleet"]);
    assert_eq!(stat.status.code(), Some(1));
    let summary = stdout(&stat);
    assert!(
        summary.lines().any(|l| l
            .starts_with(" changed prism.io/v1beta1/PrismPlugin/prism/postgres ")
            && l.split('|')
                .nth(1)
                .is_some_and(|n| n.trim().starts_with("4 "))),
        "{summary}"
    );
    let last = summary.lines().last().unwrap();
    assert!(last.contains("objects differ:"), "{summary}");
    assert!(last.contains("1 removed"), "{summary}");

    let coloured = run_in(
        &f.repo(),
        &["diff", "--color", "always", &base, &head, "--", "fleet"],
    );
    assert!(stdout(&coloured).contains("\x1b[32m+  version: 1.4.3\x1b[m"));
    let never = run_in(
        &f.repo(),
        &["diff", "--color", "never", &base, &head, "--", "fleet"],
    );
    assert_eq!(stdout(&never), text);
}

#[test]
fn no_change_exits_zero_and_prints_nothing() {
    let f = fixture();
    let fleet = f.repo().join("fleet");
    for (dir, args) in [
        (f.repo(), vec!["diff", "HEAD", "--", "fleet"]),
        (f.repo(), vec!["diff", "main", "HEAD", "--", "fleet"]),
        (fleet.clone(), vec!["diff", "--stat", "HEAD"]),
        (fleet, vec!["diff", "HEAD~1", "HEAD~1"]),
    ] {
        let out = run_in(&dir, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn the_working_tree_is_the_default_head() {
    let f = fixture();
    let repo = f.repo();
    write(
        &repo,
        "fleet/shards.yaml",
        &format!("{SHARDS}{SEARCH_SHARD}").replace("replicas: 3", "replicas: 4"),
    );
    let out = run_in(&repo.join("fleet"), &["diff", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("changed apps/v1/StatefulSet/prism/prism-search\n"));
    assert!(text.contains("-  replicas: 3\n+  replicas: 4\n"), "{text}");
}

#[test]
fn a_path_on_one_side_only_renders_as_nothing_on_the_other() {
    let f = fixture();
    let repo = Repository::open(f.repo()).unwrap();
    write(&f.repo(), "fleet-eu/plugins.yaml", PLUGINS);
    write(&f.repo(), "fleet-eu/shards.yaml", SHARDS);
    commit(&repo, "eu fleet");
    let out = run_in(
        &f.repo(),
        &["diff", "--stat", "HEAD~1", "HEAD", "--", "fleet-eu"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(" 0 removed, 0 changed"), "{text}");
    let nowhere = run_in(&f.repo(), &["diff", "HEAD~1", "HEAD", "--", "fleet-us"]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(stderr(&nowhere).contains("fleet-us: not found on either side"));
}

#[test]
fn merge_base_syntax_compares_like_a_pull_request() {
    let f = fixture();
    let path = f.repo();
    let repo = Repository::open(&path).unwrap();
    // A feature branch from base changes replicas; main has moved on meanwhile.
    let base = repo.find_commit(f.base).unwrap();
    repo.branch("feature", &base, false).unwrap();
    repo.set_head("refs/heads/feature").unwrap();
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
    write(
        &path,
        "fleet/shards.yaml",
        &SHARDS.replace("replicas: 2", "replicas: 6"),
    );
    commit(&repo, "more replicas");
    let out = run_in(&path, &["diff", "--stat", "main...feature", "--", "fleet"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    // Only the branch's own change (the shard and its StatefulSet), not main's later commit
    // reversed.
    assert!(
        text.ends_with("2 objects differ: 0 added, 0 removed, 2 changed\n"),
        "{text}"
    );
    assert!(text.contains("changed apps/v1/StatefulSet/prism/prism-playback "));
    assert!(text.contains("changed prism.io/v1beta1/PrismShard/prism/playback "));
}

#[test]
fn bare_clone_works_with_explicit_revisions() {
    let f = fixture();
    git(
        f.path(),
        &["clone", "--quiet", "--bare", "repo", "bare.git"],
    );
    let bare = f.path().join("bare.git");
    let (base, head) = (f.base.to_string(), f.head.to_string());
    let in_repo = run_in(&f.repo(), &["diff", &base, &head, "--", "fleet"]);
    let in_bare = run_in(&bare, &["diff", &base, &head, "--", "fleet"]);
    assert_eq!(in_bare.status.code(), Some(1), "{}", stderr(&in_bare));
    assert_eq!(stdout(&in_bare), stdout(&in_repo));
    let bare_arg = bare.display().to_string();
    let rendered = run_in(
        f.path(),
        &["render", "--rev", "main", "--repo", &bare_arg, "fleet"],
    );
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    assert_eq!(
        stdout(&rendered),
        stdout(&run_in(&f.repo(), &["render", "fleet"]))
    );
    // No working tree to be the head.
    let out = run_in(&bare, &["diff", "main", "--", "fleet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is a bare repository"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn shallow_clone_diffs_against_origin_and_explains_missing_history() {
    let f = fixture();
    let url = format!("file://{}", f.repo().display());
    git(
        f.path(),
        &["clone", "--quiet", "--depth", "1", &url, "shallow"],
    );
    let shallow = f.path().join("shallow");
    assert!(Repository::open(&shallow).unwrap().is_shallow());
    let same = run_in(&shallow, &["diff", "origin/main", "--", "fleet"]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    write(
        &shallow,
        "fleet/plugins.yaml",
        &PLUGINS.replace("1.4.2", "1.4.4"),
    );
    let changed = run_in(&shallow.join("fleet"), &["diff", "origin/main"]);
    assert_eq!(changed.status.code(), Some(1), "{}", stderr(&changed));
    assert!(stdout(&changed).contains("changed prism.io/v1beta1/PrismPlugin/prism/postgres"));
    let gone = run_in(&shallow, &["diff", "HEAD~1", "--", "fleet"]);
    assert_eq!(gone.status.code(), Some(2));
    let err = stderr(&gone);
    assert!(err.contains("unknown revision \"HEAD~1\""), "{err}");
    assert!(err.contains("shallow clone"), "{err}");
}

#[test]
fn a_missing_revision_is_named() {
    let f = fixture();
    let out = run_in(&f.repo(), &["diff", "no-such-branch", "--", "fleet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("unknown revision \"no-such-branch\""), "{err}");
    assert_eq!(err.lines().count(), 1);
    let render = run_in(&f.repo(), &["render", "--rev", "v9.9.9", "fleet"]);
    assert_eq!(render.status.code(), Some(1));
    assert!(stderr(&render).contains("unknown revision \"v9.9.9\""));
    // A path given where HEAD goes gets a hint.
    let hint = run_in(&f.repo(), &["diff", "HEAD", "fleet"]);
    assert!(
        stderr(&hint).contains("put it after --"),
        "{}",
        stderr(&hint)
    );
    // Outside any repository.
    let outside = tempfile::tempdir().unwrap();
    let none = run_in(outside.path(), &["diff", "HEAD"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("not inside a git repository"));
}

#[test]
fn input_errors_inside_a_revision_name_rev_path_and_line() {
    let f = fixture();
    let repo = Repository::open(f.repo()).unwrap();
    write(
        &f.repo(),
        "fleet/shards.yaml",
        &SHARDS.replace("replicas: 2", "replicas: two"),
    );
    let broken = commit(&repo, "broken").to_string();
    let render = run_in(&f.repo(), &["render", "--rev", &broken, "fleet"]);
    assert_eq!(render.status.code(), Some(1));
    assert!(
        stderr(&render).contains(&format!("{broken}:fleet/shards.yaml:8: spec.replicas")),
        "{}",
        stderr(&render)
    );
    let diff = run_in(&f.repo(), &["diff", "HEAD~1", "HEAD", "--", "fleet"]);
    assert_eq!(diff.status.code(), Some(2));
    assert!(diff.stdout.is_empty());
    assert!(
        stderr(&diff).contains("error: HEAD:fleet/shards.yaml:8: spec.replicas"),
        "{}",
        stderr(&diff)
    );
    let missing = run_in(&f.repo(), &["render", "--rev", "HEAD", "fleet/nope.yaml"]);
    assert!(stderr(&missing).contains("HEAD:fleet/nope.yaml: no such file or directory"));
}

#[test]
fn symbolic_links_in_a_revision_are_followed_like_on_disk() {
    let f = fixture();
    let repo = Repository::open(f.repo()).unwrap();
    std::fs::create_dir_all(f.repo().join("apps/eu")).unwrap();
    std::os::unix::fs::symlink(
        "../../fleet/plugins.yaml",
        f.repo().join("apps/eu/plugins.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../fleet/shards.yaml",
        f.repo().join("apps/eu/shards.yaml"),
    )
    .unwrap();
    commit(&repo, "eu app from links");
    let disk = run_in(&f.repo(), &["render", "apps/eu"]);
    assert!(disk.status.success(), "{}", stderr(&disk));
    let rev = run_in(&f.repo(), &["render", "--rev", "HEAD", "apps/eu"]);
    assert_eq!(stdout(&rev), stdout(&disk), "{}", stderr(&rev));
}

#[test]
fn exposing_and_protecting_a_shard_shows_the_route_and_policy_added() {
    let f = fixture();
    let repo = Repository::open(f.repo()).unwrap();
    let exposed = format!(
        "{SHARDS}{}",
        r#"  expose:
    grpcRoute:
      parentRefs:
      - {name: public, namespace: gateways}
      hostnames: [playback.example.com]
  networkPolicy:
    enabled: true
    clients:
    - namespaceSelector:
        matchLabels: {prism.io/client: "true"}
"#
    );
    // On top of the fixture's head (search shard, postgres 1.4.3), which the tree still has.
    write(
        &f.repo(),
        "fleet/shards.yaml",
        &format!("{exposed}{SEARCH_SHARD}"),
    );
    let head = commit(&repo, "expose and protect playback").to_string();
    let base = f.head.to_string();

    let stat = run_in(&f.repo(), &["diff", "--stat", &base, &head, "--", "fleet"]);
    assert_eq!(stat.status.code(), Some(1), "{}", stderr(&stat));
    let summary = stdout(&stat);
    let listed: Vec<String> = summary
        .lines()
        .filter_map(|l| l.split('|').next())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| l.starts_with("added") || l.starts_with("changed") || l.starts_with("removed"))
        .collect();
    assert_eq!(
        listed,
        [
            "added gateway.networking.k8s.io/v1/GRPCRoute/prism/prism-playback",
            "added networking.k8s.io/v1/NetworkPolicy/prism/prism-playback",
            "changed prism.io/v1beta1/PrismShard/prism/playback",
        ],
        "{summary}"
    );
    assert!(
        summary.ends_with("3 objects differ: 2 added, 0 removed, 1 changed\n"),
        "{summary}"
    );

    let out = run_in(&f.repo(), &["diff", &base, &head, "--", "fleet"]);
    let text = stdout(&out);
    for line in [
        "+++ b/gateway.networking.k8s.io/v1/GRPCRoute/prism/prism-playback",
        "+  hostnames:",
        "+  - playback.example.com",
        "+    name: public",
        "+    namespace: gateways",
        "+      name: prism-playback",
        "+      port: 8980",
        "+++ b/networking.k8s.io/v1/NetworkPolicy/prism/prism-playback",
        "+          prism.io/client: 'true'",
        "+    - port: 8980",
        "+    - port: 9090",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Only what changed: the StatefulSet and the Services are untouched.
    assert!(!text.contains("StatefulSet/prism/prism-playback"), "{text}");
}

#[test]
fn diff_at_a_repository_root_with_other_yaml_says_what_it_rendered_and_left_out() {
    let f = fixture();
    let repo = f.repo();
    let git_repo = Repository::open(&repo).unwrap();
    write(&repo, ".github/workflows/ci.yaml", "on: push\njobs: {}\n");
    write(&repo, "charts/values.yaml", "replicaCount: 2\n");
    write(
        &repo,
        "argocd/application.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: fleet}\n",
    );
    commit(&git_repo, "other YAML");
    write(
        &repo,
        "fleet/plugins.yaml",
        &PLUGINS.replace("1.4.2", "1.4.9"),
    );
    let out = run_in(&repo, &["diff", "--stat", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("changed prism.io/v1beta1/PrismPlugin/prism/postgres"),
        "{}",
        stdout(&out)
    );
    // Hidden directories are never read; the rest is named per revision.
    let notes = stderr(&out);
    // Files are named as everywhere else: `REV:path` in a revision.
    for (side, at) in [("HEAD", "HEAD:"), ("the working tree", "")] {
        assert!(
            notes.contains(&format!("note: {side}: rendered 3 file(s) of .\n")),
            "{notes}"
        );
        assert!(
            notes.contains(&format!(
                "note: {side}: left out 1 file(s), they hold no Kubernetes objects: {at}charts/values.yaml\n"
            )),
            "{notes}"
        );
        assert!(
            notes.contains(&format!(
                "note: {side}: left out 1 file(s), they hold Kubernetes objects that are not Prism resources (--pass-through renders them): {at}argocd/application.yaml\n"
            )),
            "{notes}"
        );
    }
    // With --pass-through the Application is rendered (and diffed) too.
    let out = run_in(&repo, &["diff", "--stat", "--pass-through", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("argocd/application.yaml"),
        "{}",
        stderr(&out)
    );
}
