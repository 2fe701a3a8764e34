//! prism-operator under churn with faults, on the real control plane. For a fixed time,
//! PrismNamespaces are created, moved between shards and deleted, PrismShards scaled, deleted
//! and created again and the plugin's version changed, at random; meanwhile operator replicas
//! are SIGKILLed (the leader in the first half, the standby in the second), the API server is
//! restarted, the leader of a three-node Prism admin moves, and admins turn slow or failing for
//! a while. Checked all along: no namespace is Active on a proxy of another shard, no namespace
//! the operator has observed is left without a reason, no field manager fights the operator
//! (`FieldConflict`). Checked at the end, with the fleet back to its first shape: every
//! namespace Active on its shard or saying why not, Prism admin holding what the operator says
//! it holds, writes down to zero within one resync, and the memory of the leader that lived
//! through the second half at its end against its start.
//!
//! `cargo bench -p prism-operator --bench operator_soak -- [--minutes 30] [--shards 6]
//! [--namespaces 120] [--seed 1] [--no-plugin-changes]`; `-- --smoke` (and any run under
//! `cargo test`, so in CI) churns for 90 s on a small fleet.

use prism_testing as support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use prism_admin::keys;
use prism_api::{NamespaceState, PrismNamespace, PrismShard, reason};
use support::admin_server::AdminServer;
use support::apiserver_metrics;
use support::bench::{self, BenchArgs};
use support::cluster::cluster;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml_with};
use support::operator::{Operator, crd_namespace, try_apply_yaml};

struct Args {
    churn: Duration,
    shards: usize,
    namespaces: usize,
    op_every: Duration,
    fault_every: Duration,
    resync: u64,
    seed: u64,
    /// Whether churn changes the plugin's version.
    plugin_changes: bool,
}

fn args() -> Args {
    let argv = BenchArgs::from_env();
    let seed = argv.get("--seed", 1);
    let plugin_changes = !argv.argv_has("--no-plugin-changes");
    match argv.smoke() {
        true => Args {
            churn: Duration::from_secs(90),
            shards: 3,
            namespaces: 16,
            op_every: Duration::from_millis(400),
            fault_every: Duration::from_secs(10),
            resync: 15,
            seed,
            plugin_changes,
        },
        false => Args {
            churn: Duration::from_secs_f64(argv.get("--minutes", 30.0) * 60.0),
            shards: argv.get("--shards", 6),
            namespaces: argv.get("--namespaces", 120),
            op_every: Duration::from_millis(argv.get("--op-ms", 250)),
            fault_every: Duration::from_secs(argv.get("--fault-secs", 30)),
            resync: argv.get("--resync", 30),
            seed,
            plugin_changes,
        },
    }
}

/// Resident memory (VmRSS) of a process, in MiB.
fn rss(pid: u32) -> f64 {
    bench::proc_mib(pid, "VmRSS")
}

/// The plugin `pg` at `1.0.<patch>` (the shards ask for `^1`).
fn plugin(patch: u32) -> String {
    SIDECAR_PLUGIN.replace("1.0.0", &format!("1.0.{patch}"))
}

/// A fault in force until a time, undone then.
enum Undo {
    Slow(usize),
    Failing(usize),
    Restart(usize),
}

/// The soak's fleet, operators, admins and tallies.
struct Soak {
    client: Client,
    ns: String,
    a: Args,
    rng: fastrand::Rng,
    /// The admin of each shard slot (`s<i>`, product `p<i>`): slot 0 a three-node group.
    admins: Vec<Vec<AdminServer>>,
    /// The two replicas (`None` while killed).
    replicas: [Option<Operator>; 2],
    plugin_patch: u32,
    done: BTreeMap<&'static str, u64>,
    failed_requests: u64,
    checks: u64,
    violations: Vec<String>,
    pending: Vec<(Instant, Undo)>,
}

const IDENTITIES: [&str; 2] = ["soak-a", "soak-b"];

impl Soak {
    /// The `--admin-endpoint`-style list of slot `i`'s admin.
    fn endpoints(&self, slot: usize) -> String {
        let nodes: Vec<String> = self.admins[slot].iter().map(|a| a.host_port()).collect();
        nodes.join(",")
    }

    fn shard(&self, slot: usize, replicas: u32) -> String {
        let endpoint = format!("  adminEndpoint: \"{}\"\n", self.endpoints(slot));
        shard_yaml_with(
            &format!("s{slot}"),
            &format!("p{slot}"),
            replicas,
            &endpoint,
        )
    }

    async fn start_replica(&mut self, i: usize) {
        let resync = format!("{}s", self.a.resync);
        let args = [
            "--leader-elect",
            "--identity",
            IDENTITIES[i],
            "--resync",
            &resync,
            "--admin-timeout",
            "3s",
            // Longer than an API server restart takes here, so the leader keeps its Lease.
            "--lease-duration",
            "30s",
            "--lease-renew-margin",
            "10s",
        ];
        self.replicas[i] = Some(Operator::start(&self.ns, &args).await);
    }

    /// The replica that leads, if one says so.
    async fn leader(&self) -> Option<usize> {
        for (i, op) in self.replicas.iter().enumerate() {
            if let Some(op) = op
                && op.metric_sum("leader_election_master_status", &[]).await == 1.0
            {
                return Some(i);
            }
        }
        None
    }

    /// Applies `yaml`, retrying for a minute: what the fleet must come back to.
    async fn apply_surely(&mut self, yaml: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = try_apply_yaml(&self.client, &self.ns, yaml).await {
            assert!(Instant::now() < deadline, "{e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Applies `yaml`, counting a refusal (the API server restarting) instead of failing:
    /// churn goes on.
    async fn apply(&mut self, yaml: &str) {
        if try_apply_yaml(&self.client, &self.ns, yaml).await.is_err() {
            self.failed_requests += 1;
        }
    }

    async fn delete<K>(&mut self, name: &str)
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(_) => self.failed_requests += 1,
        }
    }

    /// One random change of the fleet.
    async fn churn_once(&mut self) {
        let roll = self.rng.u32(0..100);
        let name = format!("ns-{}", self.rng.usize(0..self.a.namespaces));
        let slot = self.rng.usize(0..self.a.shards);
        let what = match roll {
            0..45 => {
                let product = format!("p{}", self.rng.usize(0..self.a.shards));
                self.apply(&namespace_yaml(&name, &product)).await;
                "namespace created or moved"
            }
            45..70 => {
                self.delete::<PrismNamespace>(&name).await;
                "namespace deleted"
            }
            70..88 => {
                let replicas = self.rng.u32(1..4);
                let yaml = self.shard(slot, replicas);
                self.apply(&yaml).await;
                "shard created or scaled"
            }
            88..95 => {
                self.delete::<PrismShard>(&format!("s{slot}")).await;
                "shard deleted"
            }
            _ if !self.a.plugin_changes => return,
            _ => {
                self.plugin_patch += 1;
                self.apply(&plugin(self.plugin_patch)).await;
                "plugin version changed"
            }
        };
        *self.done.entry(what).or_default() += 1;
    }

    /// One random fault; `second_half`: replicas killed are standbys, so the leader lives on.
    async fn fault(&mut self, second_half: bool) {
        let now = Instant::now();
        let what = match self.rng.u32(0..5) {
            0 => {
                let leader = self.leader().await;
                let victim = match (leader, second_half) {
                    (Some(l), false) => l,
                    (Some(l), true) => 1 - l,
                    (None, _) => self.rng.usize(0..2),
                };
                if let Some(mut op) = self.replicas[victim].take() {
                    op.kill();
                }
                let back = now + Duration::from_secs(3);
                self.pending.push((back, Undo::Restart(victim)));
                match (leader == Some(victim), second_half) {
                    (true, _) => "leader SIGKILLed",
                    _ => "standby SIGKILLed",
                }
            }
            1 => {
                cluster().await.restart_api_server().await;
                "API server restarted"
            }
            2 => {
                let nodes = &self.admins[0];
                let next =
                    (nodes[0].leader() + 1 + self.rng.usize(0..nodes.len() - 1)) % nodes.len();
                nodes[0].set_leader(next);
                "admin leader moved"
            }
            3 => {
                let slot = self.rng.usize(0..self.a.shards);
                self.admins[slot][0].set_slow(Duration::from_secs(2));
                self.pending
                    .push((now + Duration::from_secs(10), Undo::Slow(slot)));
                "admin slow for 10 s"
            }
            _ => {
                let slot = self.rng.usize(0..self.a.shards);
                self.admins[slot][0].set_failing(true);
                self.pending
                    .push((now + Duration::from_secs(10), Undo::Failing(slot)));
                "admin failing for 10 s"
            }
        };
        *self.done.entry(what).or_default() += 1;
    }

    /// Undoes the faults whose time is up (all of them with `all`).
    async fn undo(&mut self, all: bool) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(at, _)| all || *at <= now);
        self.pending = later;
        for (_, undo) in due {
            match undo {
                Undo::Slow(slot) => self.admins[slot][0].set_slow(Duration::ZERO),
                Undo::Failing(slot) => self.admins[slot][0].set_failing(false),
                Undo::Restart(i) => self.start_replica(i).await,
            }
        }
    }

    /// The invariants that hold at every moment, checked on the objects as listed now (a
    /// listing the API server refuses, while it restarts, is skipped).
    async fn check(&mut self) {
        let namespaces: Api<PrismNamespace> = Api::namespaced(self.client.clone(), &self.ns);
        let shards: Api<PrismShard> = Api::namespaced(self.client.clone(), &self.ns);
        let (Ok(namespaces), Ok(shards)) = (
            namespaces.list(&ListParams::default()).await,
            shards.list(&ListParams::default()).await,
        ) else {
            return;
        };
        self.checks += 1;
        for n in &namespaces.items {
            if let Some(v) = namespace_violation(n, false) {
                self.violations.push(v);
            }
        }
        for s in &shards.items {
            let conditions = s.status.iter().flat_map(|st| &st.conditions);
            if let Some(c) = conditions.into_iter().find(|c| c.reason == "FieldConflict") {
                let v = format!("shard {}: FieldConflict: {}", s.name_any(), c.message);
                self.violations.push(v);
            }
        }
    }

    /// Back to the first shape: every slot's shard at one replica, namespaces `ns-0` up to
    /// half the pool on products in turn, the rest deleted.
    async fn restore(&mut self) {
        for slot in 0..self.a.shards {
            let yaml = self.shard(slot, 1);
            self.apply_surely(&yaml).await;
        }
        let base = self.a.namespaces / 2;
        for i in 0..self.a.namespaces {
            let name = format!("ns-{i}");
            match i < base {
                true => {
                    let yaml = namespace_yaml(&name, &format!("p{}", i % self.a.shards));
                    self.apply_surely(&yaml).await;
                }
                false => self.delete::<PrismNamespace>(&name).await,
            }
        }
    }

    /// Waits until the fleet is back to its first shape and settled: the base namespaces
    /// observed and each Active or saying why not, no other namespace left, every shard
    /// Ready. Returns how long it took.
    async fn settle(&mut self) -> Duration {
        let started = Instant::now();
        let base = self.a.namespaces / 2;
        let namespaces: Api<PrismNamespace> = Api::namespaced(self.client.clone(), &self.ns);
        let shards: Api<PrismShard> = Api::namespaced(self.client.clone(), &self.ns);
        let mut last = String::new();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the fleet did not settle within 10 min: {last}\n{}",
                self.log_tails()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (Ok(ns), Ok(sh)) = (
                namespaces.list(&ListParams::default()).await,
                shards.list(&ListParams::default()).await,
            ) else {
                continue;
            };
            // Settled: Active, or placed by admin on a proxy the shard no longer has (upstream
            // admin cannot forget a proxy). Any other reason passes once faults are gone.
            let waiting: Vec<String> = ns
                .items
                .iter()
                .filter(|n| {
                    n.metadata.deletion_timestamp.is_some()
                        || !observed(n)
                        || (state(n) != Some(NamespaceState::Active)
                            && ready_reason(n) != Some(reason::PLACED_OFF_SHARD))
                })
                .map(|n| format!("{} ({:?})", n.name_any(), ready_reason(n)))
                .collect();
            let not_ready: Vec<String> = sh
                .items
                .iter()
                .filter(|s| {
                    !s.status.as_ref().is_some_and(|st| {
                        st.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .map(|s| s.name_any())
                .collect();
            // A base namespace the churn had deleted just before `restore` was still being
            // finalized when restore applied it, and went: it is applied again.
            for i in 0..base {
                let name = format!("ns-{i}");
                if !ns.items.iter().any(|n| n.name_any() == name) {
                    let yaml = namespace_yaml(&name, &format!("p{}", i % self.a.shards));
                    self.apply(&yaml).await;
                }
            }
            last = format!(
                "{} namespaces (want {base}), waiting {waiting:?}; shards not Ready {not_ready:?}",
                ns.items.len()
            );
            if ns.items.len() == base && waiting.is_empty() && not_ready.is_empty() {
                return started.elapsed();
            }
        }
    }

    /// The invariants of a settled fleet: each namespace Active on its shard or saying why,
    /// and each one admin accepted held there as the operator reports it.
    async fn check_settled(&mut self) -> (BTreeMap<String, usize>, usize) {
        let namespaces: Api<PrismNamespace> = Api::namespaced(self.client.clone(), &self.ns);
        let list = namespaces.list(&ListParams::default()).await.unwrap();
        let (mut states, mut held) = (BTreeMap::new(), 0);
        for n in &list.items {
            if let Some(v) = namespace_violation(n, true) {
                self.violations.push(v);
            }
            let said = match state(n) {
                Some(NamespaceState::Active) => "Active".to_string(),
                _ => ready_reason(n).unwrap_or_default().to_string(),
            };
            *states.entry(said).or_insert(0) += 1;
            // Where admin accepted it, as the operator reports.
            let status = n.status.clone().unwrap_or_default();
            let Some(accepted) = status.admin_endpoint else {
                continue;
            };
            let admin = self
                .admins
                .iter()
                .find(|nodes| nodes.iter().any(|a| accepted.contains(&a.host_port())))
                .expect("an admin of the soak");
            let meta = admin[0]
                .namespace(&n.name_any())
                .map(|s| s.metadata)
                .unwrap_or_default();
            let shard = status.shard.unwrap_or_default();
            let holds = meta.get(keys::K8S_NAMESPACE) == Some(&self.ns)
                && (state(n) != Some(NamespaceState::Active)
                    || meta.get(keys::SHARD) == Some(&shard));
            match holds {
                true => held += 1,
                false => self.violations.push(format!(
                    "namespace {}: accepted by {accepted} (shard {shard}), which holds {meta:?}",
                    n.name_any()
                )),
            }
        }
        (states, held)
    }

    fn log_tails(&self) -> String {
        self.replicas
            .iter()
            .flatten()
            .map(|op| op.log_tail())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

fn state(n: &PrismNamespace) -> Option<NamespaceState> {
    n.status.as_ref().and_then(|s| s.state)
}

/// Whether the operator has seen the namespace's current spec.
fn observed(n: &PrismNamespace) -> bool {
    n.status.as_ref().and_then(|s| s.observed_generation) == n.metadata.generation
}

/// The reason of a `Ready=False` condition, if the namespace has one.
fn ready_reason(n: &PrismNamespace) -> Option<&str> {
    let status = n.status.as_ref()?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    (ready.status == "False" && !ready.reason.is_empty()).then_some(ready.reason.as_str())
}

/// What is wrong with a namespace, if anything: Active on a proxy that is not of its shard;
/// observed but neither Active nor saying why; with `settled`, also not observed.
fn namespace_violation(n: &PrismNamespace, settled: bool) -> Option<String> {
    let name = n.name_any();
    let status = n.status.clone().unwrap_or_default();
    if state(n) == Some(NamespaceState::Active) {
        let shard = status.shard.unwrap_or_default();
        let proxy = status.assigned_proxy.unwrap_or_default();
        let ns = n.namespace().unwrap_or_default();
        let own =
            proxy.starts_with(&format!("prism-{shard}-")) && proxy.ends_with(&format!(".{ns}"));
        return (!own)
            .then(|| format!("namespace {name}: Active on {proxy}, not a proxy of {shard}"));
    }
    if n.metadata.deletion_timestamp.is_some() {
        return None;
    }
    match (observed(n), ready_reason(n)) {
        (true, None) => Some(format!("namespace {name}: {:?} without a reason", state(n))),
        (false, _) if settled => Some(format!("namespace {name}: not observed")),
        _ => None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let (client, ns) = crd_namespace("soak").await;
    let mut admins = vec![AdminServer::start_ha(3).await];
    for _ in 1..a.shards {
        admins.push(vec![AdminServer::start().await]);
    }
    let mut soak = Soak {
        client: client.clone(),
        ns: ns.clone(),
        rng: fastrand::Rng::with_seed(a.seed),
        a,
        admins,
        replicas: [None, None],
        plugin_patch: 0,
        done: BTreeMap::new(),
        failed_requests: 0,
        checks: 0,
        violations: Vec::new(),
        pending: Vec::new(),
    };
    soak.start_replica(0).await;
    soak.start_replica(1).await;
    soak.apply_surely(&plugin(0)).await;
    soak.restore().await;
    let first = soak.settle().await;

    let half = soak.a.churn / 2;
    let started = Instant::now();
    let (mut next_fault, mut next_check) = (started, started);
    let mut memory_start = None;
    while started.elapsed() < soak.a.churn {
        let second_half = started.elapsed() >= half;
        if second_half && memory_start.is_none() {
            // The leader from here to the end is never killed: its memory, fleet restored.
            soak.undo(true).await;
            soak.restore().await;
            soak.settle().await;
            let leader = soak.leader().await.expect("a leader");
            let pid = soak.replicas[leader].as_ref().unwrap().pid();
            memory_start = Some((leader, pid, rss(pid)));
        }
        soak.churn_once().await;
        soak.undo(false).await;
        if Instant::now() >= next_fault {
            soak.fault(second_half).await;
            next_fault = Instant::now() + soak.a.fault_every;
        }
        if Instant::now() >= next_check {
            soak.check().await;
            next_check = Instant::now() + Duration::from_secs(5);
        }
        tokio::time::sleep(soak.a.op_every).await;
    }
    let churned = started.elapsed();

    soak.undo(true).await;
    soak.restore().await;
    let converged = soak.settle().await;
    let (states, held) = soak.check_settled().await;
    // Writes after one resync, over the next one.
    let resync = Duration::from_secs(soak.a.resync);
    tokio::time::sleep(resync + Duration::from_secs(2)).await;
    let before = apiserver_metrics::operator_writes(&client).await;
    tokio::time::sleep(resync).await;
    let idle_writes =
        apiserver_metrics::grown(&apiserver_metrics::operator_writes(&client).await, &before);
    let (leader, pid, rss_start) = memory_start.expect("the churn reached its second half");
    let still = soak.replicas[leader].as_ref().map(|op| op.pid());
    assert_eq!(
        still,
        Some(pid),
        "the second half's leader was never killed"
    );
    assert!(
        rss(pid) > 0.0,
        "the second half's leader exited (its Lease lost?):\n{}",
        soak.log_tails()
    );
    let rss_end = rss(pid);

    let hours = churned.as_secs_f64() / 3600.0;
    println!(
        "## prism-operator soak: {:.1} min of churn, {} shards, {} namespace names, seed {}",
        churned.as_secs_f64() / 60.0,
        soak.a.shards,
        soak.a.namespaces,
        soak.a.seed
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| first convergence | {:.1} s |", first.as_secs_f64());
    for (what, n) in &soak.done {
        println!("| {what} | {n} ({:.0} per hour) |", *n as f64 / hours);
    }
    println!(
        "| requests refused during churn (API server restarting) | {} |",
        soak.failed_requests
    );
    println!("| invariant checks during churn | {} |", soak.checks);
    println!(
        "| settled after the churn (fleet restored) | {:.1} s; namespaces {states:?}, {held} held by admin as reported |",
        converged.as_secs_f64()
    );
    println!(
        "| writes over one resync ({} s), one resync after settling | {idle_writes:?} |",
        soak.a.resync
    );
    println!(
        "| RSS of the second half's leader ({}) | {rss_start:.1} MiB at its start, {rss_end:.1} MiB at the end |",
        IDENTITIES[leader]
    );
    println!("| invariant violations | {} |", soak.violations.len());
    for v in soak.violations.iter().take(20) {
        eprintln!("violation: {v}");
    }
    assert!(
        soak.violations.is_empty(),
        "{} violations",
        soak.violations.len()
    );
    assert!(
        idle_writes.is_empty(),
        "writes once settled: {idle_writes:?}\n{}",
        soak.log_tails()
    );
    assert!(
        rss_end <= rss_start * 1.25 + 8.0,
        "memory grew: {rss_start:.1} -> {rss_end:.1} MiB"
    );
}
