//! Writes a generated fleet for the comparison scripts (not a benchmark, but built with the
//! bench profile and the bench's dependencies, so it needs no binary in the user CLI):
//!
//! ```sh
//! cargo bench --bench gen_fleet -- --out DIR [--shards N] [--plugins M] [--namespaces K]
//!     [--seed S] [--kustomize]
//! ```
//!
//! DIR (new or empty) gets `fleet/<k8s-namespace>/{plugins,shards,namespaces}.yaml` (the input
//! of prism-render), `helm-values.yaml` (the values of `benches/helm-fleet`) and, with
//! `--kustomize`, `kustomize/` (see `crates/testing/src/fleet.rs`). Defaults: 10 shards, 6 plugins per
//! Kubernetes namespace, 10 namespaces per shard, seed 1.
//!
//! Run without `--out` (as `cargo test --all-targets` does) it generates a small fleet,
//! renders it and checks the result, then exits.

use prism_testing::fleet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fleet::{Fleet, FleetParams};

struct Args {
    out: Option<PathBuf>,
    params: FleetParams,
    kustomize: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut params = FleetParams::new(10);
    let mut namespaces = None;
    let mut out = None;
    let mut kustomize = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number =
            |name: &str, v: String| v.parse::<u64>().map_err(|e| format!("{name} {v:?}: {e}"));
        match arg.as_str() {
            // cargo passes --bench to every bench target; nothing to do with it here.
            "--bench" => {}
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--shards" => params.shards = number("--shards", value("--shards")?)? as usize,
            "--plugins" => params.plugins = number("--plugins", value("--plugins")?)? as usize,
            "--namespaces" => {
                namespaces = Some(number("--namespaces", value("--namespaces")?)? as usize)
            }
            "--seed" => params.seed = number("--seed", value("--seed")?)?,
            "--kustomize" => kustomize = true,
            "-h" | "--help" => {
                return Err("usage: cargo bench --bench gen_fleet -- --out DIR [--shards N] [--plugins M] [--namespaces K] [--seed S] [--kustomize]".into());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    params.namespaces = namespaces.unwrap_or(params.shards * 10);
    if params.shards == 0 || !(3..=12).contains(&params.plugins) {
        return Err("need --shards >= 1 and 3 <= --plugins <= 12".into());
    }
    Ok(Args {
        out,
        params,
        kustomize,
    })
}

fn write(root: &Path, files: &[(String, String)]) -> Result<u64, String> {
    let mut bytes = 0;
    for (name, text) in files {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        bytes += text.len() as u64;
    }
    Ok(bytes)
}

fn run(args: Args) -> Result<(), String> {
    let Some(out) = args.out else {
        return self_check();
    };
    if out.exists()
        && std::fs::read_dir(&out)
            .map_err(|e| format!("{}: {e}", out.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{}: directory is not empty", out.display()));
    }
    let fleet = Fleet::new(&args.params);
    let mut files: Vec<(String, String)> = fleet
        .files()
        .into_iter()
        .map(|(name, text)| (format!("fleet/{name}"), text))
        .collect();
    files.push(("helm-values.yaml".into(), fleet.helm_values()));
    if args.kustomize {
        let tree =
            fleet::kustomize_tree(&fleet).map_err(|e| format!("rendering the fleet: {e}"))?;
        files.extend(
            tree.into_iter()
                .map(|(name, text)| (format!("kustomize/{name}"), text)),
        );
    }
    let bytes = write(&out, &files)?;
    eprintln!(
        "gen_fleet: {} (seed {}): {} files, {bytes} bytes in {}",
        fleet.summary(),
        args.params.seed,
        files.len(),
        out.display()
    );
    Ok(())
}

/// What `cargo test --all-targets` runs: a small fleet is reproducible, covers every plugin
/// type, validates, renders and places every namespace.
fn self_check() -> Result<(), String> {
    let params = FleetParams::new(12);
    let fleet = Fleet::new(&params);
    if fleet.stream() != Fleet::new(&params).stream() {
        return Err("the same seed gave two different fleets".into());
    }
    let summary = fleet.summary();
    for t in ["sidecar", "in-process", "remote"] {
        if !summary.contains(t) {
            return Err(format!("no {t} plugin in {summary}"));
        }
    }
    let objects = fleet::render(&fleet).map_err(|e| e.to_string())?;
    let placed = objects
        .iter()
        .filter(|o| o.kind == "PrismNamespace")
        .count();
    if placed != params.namespaces {
        return Err(format!(
            "{placed} of {} namespaces rendered",
            params.namespaces
        ));
    }
    fleet::kustomize_tree(&fleet).map_err(|e| e.to_string())?;
    println!(
        "gen_fleet self-check: {summary}: {} objects, ok",
        objects.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
