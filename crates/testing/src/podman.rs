//! Containers for tests, with podman: the project's images (built once per test process by
//! `images/build.sh`), and containers that are removed when their guard drops, also when the
//! test panics, or by the next test process when the one that started them was killed.
//!
//! podman reads a private containers.conf fitted to this host (runc, cgroupfs, file events,
//! ulimits the host allows), so no system configuration is needed or
//! touched. Containers use the host network and reach only 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::paths;

/// The images `images/build.sh` builds, by reference.
#[derive(Clone, Debug)]
pub struct Images {
    /// The operator image (`Dockerfile`).
    pub operator: String,
    /// The Argo CD plugin sidecar image (`argocd/Dockerfile`).
    pub render: String,
}

/// Builds the images once per test process with `images/build.sh` (incremental: a no-op
/// compile and cached layers when nothing changed) and returns their references.
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let out = build_images(&[]);
        let refs: Vec<&str> = out.lines().collect();
        match refs[..] {
            [operator, render] => Images {
                operator: operator.to_string(),
                render: render.to_string(),
            },
            _ => panic!("images/build.sh printed {out:?}, not two image references"),
        }
    })
}

/// Runs `images/build.sh` with `args` under the test's podman configuration; its stdout.
pub fn build_images(args: &[&str]) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(paths::root().join("images/build.sh"))
        .args(args)
        .env("CONTAINER_ENGINE", "podman")
        .env("CONTAINERS_CONF", conf())
        .current_dir(paths::root())
        .stderr(Stdio::piped());
    // The operator binary of the running tests may be in the same target directory.
    if let Some(target) = target_dir() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().expect("bash runs images/build.sh");
    assert!(
        out.status.success(),
        "images/build.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 image references")
}

/// The target directory of the running test (`<target>/<profile>/deps/<test>`).
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

/// A `podman` command with the test configuration.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf());
    cmd
}

/// Runs `podman args`, panicking with its stderr unless it succeeds; its stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = output(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `podman args` and returns what it did.
pub fn output(args: &[&str]) -> Output {
    podman().args(args).output().unwrap_or_else(|e| {
        panic!("podman cannot run ({e}): install podman and runc (.ci/run does)")
    })
}

/// A container started by a test; `podman rm -f` when dropped.
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// `podman run --detach --name <name> args…`; the container is removed when the guard
    /// drops. `args` are everything after the name: options, image, command.
    pub fn run(name: &str, args: &[String]) -> Container {
        remove_orphans();
        let _ = output(&["rm", "-f", "--ignore", name]);
        let container = Container {
            name: name.to_string(),
        };
        let mut all = vec![
            "run".to_string(),
            "--detach".into(),
            "--name".into(),
            name.into(),
            format!("--label={OWNER_LABEL}={}", std::process::id()),
        ];
        all.extend(args.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        podman_ok(&all);
        container
    }

    /// Its logs (stdout and stderr).
    pub fn logs(&self) -> String {
        let out = output(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// A field of `podman inspect`, by Go template (e.g. `{{.State.ExitCode}}`).
    pub fn inspect(&self, format: &str) -> String {
        podman_ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = output(&["rm", "-f", "--time", "2", &self.name]);
    }
}

/// Label naming the test process that started a container.
const OWNER_LABEL: &str = "prism.test-process";

/// Removes containers whose test process is gone (killed before its guards could drop), once
/// per process. Containers of running test processes are left alone.
fn remove_orphans() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let listed = output(&[
            "ps",
            "--all",
            "--filter",
            &format!("label={OWNER_LABEL}"),
            "--format",
            &format!("{{{{.Names}}}} {{{{index .Labels \"{OWNER_LABEL}\"}}}}"),
        ]);
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            let Some((name, pid)) = line.split_once(' ') else {
                continue;
            };
            let alive = pid
                .trim()
                .parse::<i32>()
                .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = output(&["rm", "-f", name]);
            }
        }
    });
}

/// The containers.conf the tests use, written once per process.
fn conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("prism-podman-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for containers.conf");
        let path = dir.join("containers.conf");
        std::fs::write(&path, conf_text()).expect("writing containers.conf");
        path
    })
}

/// podman's default ulimits can exceed the host's hard limits and kernel.pid_max (then every
/// run fails in setrlimit); runc and cgroupfs work on cgroup v1 hosts without systemd, where crun and the
/// systemd cgroup manager do not.
fn conf_text() -> String {
    let hard = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the rlimit it is given.
        let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
        if ok && limit.rlim_max != libc::RLIM_INFINITY {
            limit.rlim_max.min(1 << 20)
        } else {
            1 << 20
        }
    };
    let nofile = hard(libc::RLIMIT_NOFILE);
    // Measured: runc refuses an nproc limit above kernel.pid_max with EPERM.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let nproc = hard(libc::RLIMIT_NPROC).min(pid_max);
    let runtime = if which("runc") {
        "runtime = \"runc\"\n"
    } else {
        ""
    };
    format!(
        "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\n\
         [engine]\n{runtime}cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
    )
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}
