//! A real Kubernetes control plane for end-to-end tests, shared by all tests of one test binary.
//!
//! Owns: locating or building the binaries (`PRISM_TESTBIN` or `tools/cluster/build.sh`), the
//! throw-away PKI and admin kubeconfig, starting etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok as plain processes on 127.0.0.1 (free ports, private temp dir, one
//! log file per component), readiness checks, and teardown.
//!
//! The control plane starts on first use and lives until the test process ends. Teardown does
//! not rely on destructors (statics are never dropped). On a normal exit (including failed
//! tests) an `atexit` handler kills and reaps the components before the process is gone. For
//! every other end (abort, signal, SIGKILL) a small supervisor shell process reads a pipe whose
//! only writer is the test process: when the kernel closes it, the supervisor sees EOF, kills
//! every component it was told about and deletes the temp dir (kept when startup failed or
//! when `PRISM_KEEP_CLUSTER=1`).
//!
//! A `kube::Client` is bound to the tokio runtime that created it, and every `#[tokio::test]` has
//! its own runtime, so [`client`] builds a fresh client for each call from the shared config.
//!
//! Nothing here connects to a non-loopback address: the node and advertise addresses are
//! 127.0.0.1, and the fake pod/service IPs written by kwok and the apiserver are never dialed.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::process;

/// Name of the single fake node managed by kwok.
pub const NODE_NAME: &str = "kwok-node-0";
/// Label put on every namespace created by [`test_namespace`].
pub const TEST_NAMESPACE_LABEL: &str = "prism-operator.test/e2e";

/// Fake pod IPs handed out by kwok. Never routed or dialed: nothing runs in the "pods".
const POD_CIDR: &str = "10.244.0.0/16";
const SERVICE_CIDR: &str = "10.96.0.0/16";
const NODE_SELECTOR_ANNOTATION: &str = "kwok.x-k8s.io/node";
const LOG_TAIL_LINES: usize = 40;

const ETCD_TIMEOUT: Duration = Duration::from_secs(60);
const APISERVER_TIMEOUT: Duration = Duration::from_secs(180);
const CONTROLLERS_TIMEOUT: Duration = Duration::from_secs(120);
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// The running control plane. Obtain it with [`cluster`].
pub struct Cluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    server_url: String,
    etcd_url: String,
    config: Config,
    components: Mutex<Vec<Component>>,
    /// Components that exited on their own and were started again: `name (status)`.
    crashes: Mutex<Vec<String>>,
    /// The API server's feature gates (empty: its defaults).
    gates: &'static str,
}

struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
    args: Vec<String>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static SUPERVISOR: OnceLock<Mutex<Supervisor>> = OnceLock::new();

/// The shared control plane, started (and, if needed, built) on first use.
///
/// Panics with the startup error, including the tail of the failing component's log, if the
/// control plane could not be started; every later call reports the same error.
pub async fn cluster() -> &'static Cluster {
    let result = tokio::task::spawn_blocking(|| {
        CLUSTER.get_or_init(|| {
            // Startup runs its own runtime; keep it off the caller's runtime thread.
            std::thread::Builder::new()
                .name("prism-test-cluster".into())
                .spawn(start)
                .map_err(|e| format!("cannot spawn startup thread: {e}"))?
                .join()
                .unwrap_or_else(|_| Err("control plane startup panicked".into()))
        })
    })
    .await
    .expect("control plane startup task failed");
    static WATCHDOG: std::sync::Once = std::sync::Once::new();
    match result {
        Ok(cluster) => {
            WATCHDOG.call_once(|| cluster.keep_running());
            cluster
        }
        Err(e) => panic!("test control plane unavailable: {e}"),
    }
}

/// Feature gates of the API server, set by [`cluster_with_gates`] before it starts.
static FEATURE_GATES: OnceLock<&'static str> = OnceLock::new();

/// The shared control plane with the API server's `--feature-gates` set to `gates` (e.g.
/// `ContainerStopSignals=true`). Call it before anything else of the test binary starts the
/// control plane: panics if it runs with other gates.
pub async fn cluster_with_gates(gates: &'static str) -> &'static Cluster {
    let set = FEATURE_GATES.get_or_init(|| gates);
    assert_eq!(
        *set, gates,
        "the control plane runs with other feature gates"
    );
    let cluster = cluster().await;
    assert!(
        cluster.gates == gates,
        "the control plane started before its feature gates were set"
    );
    cluster
}

/// A new admin client for the shared control plane, bound to the caller's runtime.
pub async fn client() -> Client {
    cluster().await.client()
}

/// Options for [`test_namespace_with`].
#[derive(Clone, Debug, Default)]
pub struct NamespaceOptions {
    /// Pod Security Standard to enforce (`pod-security.kubernetes.io/enforce`), e.g. `restricted`.
    pub pod_security_enforce: Option<&'static str>,
}

impl NamespaceOptions {
    /// Enforce the `restricted` Pod Security Standard.
    pub fn restricted() -> Self {
        Self {
            pod_security_enforce: Some("restricted"),
        }
    }
}

/// Creates a fresh, labelled namespace `<prefix>-<unique suffix>` and returns a new client and
/// its name. The namespace's `default` ServiceAccount exists when this returns.
pub async fn test_namespace(prefix: &str) -> (Client, String) {
    test_namespace_with(prefix, &NamespaceOptions::default()).await
}

/// Like [`test_namespace`], with options such as Pod Security enforcement.
pub async fn test_namespace_with(prefix: &str, options: &NamespaceOptions) -> (Client, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let client = client().await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let suffix = format!(
        "{}-{:x}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        (nanos ^ std::process::id()) & 0xfffff
    );
    let mut prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    prefix.truncate(63 - suffix.len() - 1);
    let prefix = match prefix.trim_matches('-') {
        "" => "test",
        p => p,
    };
    let name = format!("{prefix}-{suffix}");

    let mut labels =
        std::collections::BTreeMap::from([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())]);
    if let Some(level) = options.pod_security_enforce {
        labels.insert(
            "pod-security.kubernetes.io/enforce".into(),
            level.to_string(),
        );
        labels.insert(
            "pod-security.kubernetes.io/enforce-version".into(),
            "latest".into(),
        );
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));

    // Pods are rejected until the namespace's default ServiceAccount exists.
    let sas = &Api::<ServiceAccount>::namespaced(client.clone(), &name);
    crate::wait_for(
        &format!("ServiceAccount {name}/default"),
        CONTROLLERS_TIMEOUT,
        move || async move {
            match sas.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not found".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    (client, name)
}

impl Cluster {
    /// A new admin client bound to the current tokio runtime.
    pub fn client(&self) -> Client {
        Client::try_from(self.config.clone()).expect("building a kube client from the test config")
    }

    /// The admin `kube::Config` (client certificate of `system:masters`).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Path of the admin kubeconfig (for subprocesses such as the operator binary).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// Adds another fake node, managed by kwok like the first, and waits until it is Ready.
    pub async fn add_node(&self, name: &str) {
        let nodes: Api<Node> = Api::all(self.client());
        nodes
            .create(&PostParams::default(), &fake_node(name))
            .await
            .unwrap_or_else(|e| panic!("creating Node {name}: {e}"));
        let nodes = &nodes;
        crate::wait_for(&format!("Node {name} Ready"), NODE_TIMEOUT, || {
            node_ready(nodes, name)
        })
        .await;
    }

    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// `http://127.0.0.1:<port>` of etcd.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The private temp dir holding PKI, kubeconfig, data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The dir holding the control-plane binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// CA certificate that signed the apiserver serving certificate and the client certificates.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// Admin client certificate and key (PEM), e.g. for scraping `/metrics` with another client.
    pub fn admin_cert_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join("pki/admin.crt"),
            self.dir.join("pki/admin.key"),
        )
    }

    /// Log file of a component: `etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler` or `kwok`.
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{component}.log"))
    }

    /// The last `lines` lines of a component's log.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail(&self.log_path(component), lines)
    }

    /// Restarts kube-apiserver ([`Self::restart`]) and waits until it serves again.
    pub async fn restart_api_server(&self) {
        self.restart("kube-apiserver");
        let client = self.client();
        crate::wait_for(
            "the API server serving again",
            Duration::from_secs(90),
            || {
                let client = client.clone();
                async move {
                    let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
                    client
                        .request_text(req)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await;
    }

    /// The process id of component `name` now.
    pub fn pid(&self, name: &str) -> u32 {
        let components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        let c = components.iter().find(|c| c.name == name);
        c.unwrap_or_else(|| panic!("no component {name}"))
            .child
            .id()
    }

    /// Components that exited on their own and were started again, as `name (status)`.
    pub fn crashes(&self) -> Vec<String> {
        self.crashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills component `name` (SIGKILL, as a crash would) and starts it again with the same
    /// arguments, appending to its log. The caller waits for it to serve again.
    pub fn restart(&self, name: &str) {
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        let c = components
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"));
        let _ = c.child.kill();
        let _ = c.child.wait();
        self.respawn(c);
    }

    /// Starts an exited component again with the same arguments, appending to its log.
    fn respawn(&self, c: &mut Component) {
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&c.log)
            .expect("component log opens");
        let err = out.try_clone().expect("log handle clones");
        let supervisor = SUPERVISOR.get().expect("supervisor runs");
        let pgid = supervisor.lock().unwrap_or_else(|e| e.into_inner()).pid;
        c.child = Command::new(self.bin_dir.join(c.name))
            .args(&c.args)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(i32::try_from(pgid).expect("pid fits"))
            .spawn()
            .unwrap_or_else(|e| panic!("restarting {}: {e}", c.name));
        supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watch(c.child.id())
            .expect("supervisor watches the new process");
    }

    /// Does what the kubelet does for a control plane's static pods: a component that exits on
    /// its own is started again (kube-scheduler, for one, exits when it finds its cache
    /// inconsistent, which an API server restart under load can cause). Each restart is
    /// recorded for [`Cluster::assert_running`]. Polls once a second, for the process's life.
    fn keep_running(&'static self) {
        std::thread::Builder::new()
            .name("prism-test-cluster-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
                    for c in components.iter_mut() {
                        let Ok(Some(status)) = c.child.try_wait() else {
                            continue;
                        };
                        let crash = format!("{} ({status})", c.name);
                        if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&c.log) {
                            let _ = writeln!(log, "[prism testbin] {crash}: starting it again");
                        }
                        self.crashes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(crash);
                        self.respawn(c);
                    }
                }
            })
            .expect("the watchdog thread starts");
    }

    /// Panics if any component has exited (even one started again since), with the tail of
    /// its log.
    pub fn assert_running(&self) {
        let crashes = self
            .crashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(first) = crashes.first() {
            let name = first.split(' ').next().unwrap_or_default();
            let log = self.dir.join("logs").join(format!("{name}.log"));
            panic!(
                "exited and started again: {}; last lines of {}:\n{}",
                crashes.join(", "),
                log.display(),
                tail(&log, LOG_TAIL_LINES)
            );
        }
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        for c in components.iter_mut() {
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    c.name,
                    c.log.display(),
                    tail(&c.log, LOG_TAIL_LINES)
                );
            }
        }
    }
}

/// Starts the control plane. Runs on a dedicated thread with its own runtime.
fn start() -> Result<Cluster, String> {
    let bin_dir = binaries()?;
    let dir = tempfile::Builder::new()
        .prefix("prism-cluster-")
        .tempdir()
        .map_err(|e| format!("creating the cluster temp dir: {e}"))?
        .keep();
    let supervisor =
        Supervisor::spawn(&dir).map_err(|e| format!("spawning the cluster supervisor: {e}"))?;
    let supervisor = SUPERVISOR.get_or_init(|| Mutex::new(supervisor));
    let mut launcher = Launcher {
        dir: dir.clone(),
        bin_dir,
        supervisor,
        components: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the startup runtime: {e}"))?;
    match runtime.block_on(launcher.run()) {
        Ok(cluster) => {
            // Stop the components synchronously on a normal exit (also after failed tests), so
            // none outlives `cargo test`; the supervisor covers abnormal ends.
            // SAFETY: registers a plain `extern "C"` function that does not unwind.
            unsafe { libc::atexit(stop_at_exit) };
            Ok(cluster)
        }
        Err(e) => {
            launcher.stop_all();
            launcher.supervisor().keep_dir();
            Err(format!("{e}\n(cluster dir kept: {})", dir.display()))
        }
    }
}

/// `atexit` handler: kills and reaps every component.
extern "C" fn stop_at_exit() {
    let Some(Ok(cluster)) = CLUSTER.get() else {
        return;
    };
    let mut components = match cluster.components.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for c in components.iter_mut() {
        let _ = c.child.kill();
    }
    for c in components.iter_mut() {
        let _ = c.child.wait();
    }
}

/// The bin dir: `PRISM_TESTBIN`, else the output of `tools/cluster/build.sh`.
fn binaries() -> Result<PathBuf, String> {
    let dir = crate::paths::built_dir("PRISM_TESTBIN", "tools/cluster/build.sh")?;
    for file in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kwok-stages.yaml",
        "kwok-storage-class.yaml",
    ] {
        if !dir.join(file).is_file() {
            return Err(format!(
                "{} is missing {file}; run tools/cluster/build.sh (or fix PRISM_TESTBIN)",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

struct Launcher {
    dir: PathBuf,
    bin_dir: PathBuf,
    supervisor: &'static Mutex<Supervisor>,
    components: Vec<Component>,
}

impl Launcher {
    async fn run(&mut self) -> Result<Cluster, String> {
        let dir = self.dir.clone();
        let gates = FEATURE_GATES.get().copied().unwrap_or_default();
        for sub in ["pki", "logs", "etcd", "apiserver-certs"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating {}: {e}", dir.join(sub).display()))?;
        }
        write_pki(&dir.join("pki")).map_err(|e| format!("generating certificates: {e}"))?;
        let [etcd_port, etcd_peer_port, api_port] = process::free_ports::<3>()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let server_url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("admin.kubeconfig");
        write_file(&kubeconfig, &admin_kubeconfig(&dir, &server_url))?;
        let scheduler_config = dir.join("kube-scheduler.yaml");
        write_file(
            &scheduler_config,
            &format!(
                "apiVersion: kubescheduler.config.k8s.io/v1\n\
                 kind: KubeSchedulerConfiguration\n\
                 clientConnection:\n  kubeconfig: {}\n\
                 leaderElection:\n  leaderElect: false\n",
                kubeconfig.display()
            ),
        )?;
        let p = |f: &str| dir.join(f).display().to_string();
        let egress_socket = dir.join("egress.sock");
        crate::egress::serve(&egress_socket, dir.join("egress-refused.log"))
            .map_err(|e| format!("starting the egress proxy: {e}"))?;
        let egress_config = dir.join("egress-selector.yaml");
        write_file(
            &egress_config,
            &crate::egress::selector_config(&egress_socket),
        )?;

        self.spawn(
            "etcd",
            &[
                "--name=prism-test".into(),
                format!("--data-dir={}", p("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=prism-test={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                "--auto-compaction-retention=1".into(),
                "--log-level=warn".into(),
            ],
        )?;
        self.wait("etcd", ETCD_TIMEOUT, move || async move {
            let body = process::http_get_blocking(etcd_port, "/health")?;
            if body.contains(r#""health":"true""#) {
                Ok(())
            } else {
                Err(format!("/health: {body}"))
            }
        })
        .await?;

        self.spawn(
            "kube-apiserver",
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                // Loopback advertise address: the default (lease) endpoint reconciler refuses
                // it, so the `kubernetes` Service gets no endpoints. Nothing here needs them.
                "--advertise-address=127.0.0.1".into(),
                "--endpoint-reconciler-type=none".into(),
                format!("--cert-dir={}", p("apiserver-certs")),
                format!("--tls-cert-file={}", p("pki/serving.crt")),
                format!("--tls-private-key-file={}", p("pki/serving.key")),
                format!("--client-ca-file={}", p("pki/ca.crt")),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p("pki/sa.pub")),
                format!("--service-account-signing-key-file={}", p("pki/sa.key")),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                // Webhooks, aggregated APIs and pod proxies go through a proxy that only
                // opens tunnels to loopback (see `egress`).
                format!("--egress-selector-config-file={}", egress_config.display()),
                "--profiling=false".into(),
            ]
            .into_iter()
            .chain((!gates.is_empty()).then(|| format!("--feature-gates={gates}")))
            .collect::<Vec<String>>(),
        )?;
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig).map_err(|e| format!("reading kubeconfig: {e}"))?,
            &KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| format!("loading kubeconfig: {e}"))?;
        let client = Client::try_from(config.clone()).map_err(|e| format!("kube client: {e}"))?;
        let client_ref = &client;
        self.wait("kube-apiserver", APISERVER_TIMEOUT, move || async move {
            let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
            match client_ref.request_text(request).await {
                Ok(body) if body.trim() == "ok" => Ok(()),
                Ok(body) => Err(format!("/readyz: {body}")),
                Err(e) => Err(format!("/readyz: {e}")),
            }
        })
        .await?;

        self.spawn(
            "kube-controller-manager",
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                format!("--root-ca-file={}", p("pki/ca.crt")),
                format!("--service-account-private-key-file={}", p("pki/sa.key")),
                format!("--cluster-signing-cert-file={}", p("pki/ca.crt")),
                format!("--cluster-signing-key-file={}", p("pki/ca.key")),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--node-monitor-period=5s".into(),
                // Generous: a busy 2-core machine can delay kwok's lease renewals.
                "--node-monitor-grace-period=120s".into(),
                "--profiling=false".into(),
            ],
        )?;
        self.spawn(
            "kube-scheduler",
            &[
                format!("--config={}", scheduler_config.display()),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                "--profiling=false".into(),
            ],
        )?;
        let bin = self.bin_dir.clone();
        self.spawn(
            "kwok",
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--config={}", bin.join("kwok-stages.yaml").display()),
                format!("--manage-nodes-with-annotation-selector={NODE_SELECTOR_ANNOTATION}=fake"),
                format!("--cidr={POD_CIDR}"),
                "--node-ip=127.0.0.1".into(),
                "--node-name=localhost".into(),
                "--node-lease-duration-seconds=40".into(),
            ],
        )?;

        let sas = &Api::<ServiceAccount>::namespaced(client.clone(), "default");
        self.wait(
            "kube-controller-manager",
            CONTROLLERS_TIMEOUT,
            move || async move {
                match sas.get_opt("default").await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("ServiceAccount default/default does not exist yet".into()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;

        let storage_class = std::fs::read_to_string(bin.join("kwok-storage-class.yaml"))
            .map_err(|e| format!("reading kwok-storage-class.yaml: {e}"))?;
        let storage_class: StorageClass = serde_yaml::from_str(&storage_class)
            .map_err(|e| format!("parsing kwok-storage-class.yaml: {e}"))?;
        Api::<StorageClass>::all(client.clone())
            .create(&PostParams::default(), &storage_class)
            .await
            .map_err(|e| format!("creating StorageClass: {e}"))?;
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &fake_node(NODE_NAME))
            .await
            .map_err(|e| format!("creating Node {NODE_NAME}: {e}"))?;
        let nodes = &Api::<Node>::all(client.clone());
        self.wait("kwok", NODE_TIMEOUT, || node_ready(nodes, NODE_NAME))
            .await?;

        Ok(Cluster {
            dir,
            bin_dir: bin,
            server_url,
            etcd_url,
            config,
            components: Mutex::new(std::mem::take(&mut self.components)),
            crashes: Mutex::new(Vec::new()),
            gates,
        })
    }

    fn supervisor(&self) -> std::sync::MutexGuard<'static, Supervisor> {
        self.supervisor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a component in the supervisor's process group, logging to `logs/<name>.log`.
    fn spawn(&mut self, name: &'static str, args: &[String]) -> Result<(), String> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cloning log handle: {e}"))?;
        let pgid = self.supervisor().pid;
        let child = Command::new(self.bin_dir.join(name))
            .args(args)
            .current_dir(&self.dir)
            // No component may read the invoking user's ~/.kube or ~/.kwok configuration.
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(i32::try_from(pgid).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        self.supervisor()
            .watch(child.id())
            .map_err(|e| format!("registering {name} with the supervisor: {e}"))?;
        self.components.push(Component {
            name,
            child,
            log,
            args: args.to_vec(),
        });
        Ok(())
    }

    /// Polls `check` until it succeeds; fails early when any started component exits, and on
    /// timeout, in both cases with the tail of the relevant log.
    async fn wait<F, Fut>(
        &mut self,
        component: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let start = Instant::now();
        loop {
            let last = match check().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            for c in &mut self.components {
                if let Ok(Some(status)) = c.child.try_wait() {
                    return Err(format!(
                        "{} exited ({status}) while waiting for {component}; last lines of {}:\n{}",
                        c.name,
                        c.log.display(),
                        tail(&c.log, LOG_TAIL_LINES)
                    ));
                }
            }
            if start.elapsed() > timeout {
                let log = self.dir.join("logs").join(format!("{component}.log"));
                return Err(format!(
                    "{component} not ready after {timeout:?}: {last}; last lines of {}:\n{}",
                    log.display(),
                    tail(&log, LOG_TAIL_LINES)
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn stop_all(&mut self) {
        for c in &mut self.components {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }
}

/// The supervisor: `sh` reading `pid N` / `keep` lines from the test process until EOF, then
/// killing those processes (SIGKILL: nothing in the throw-away cluster is worth a graceful
/// shutdown; only while their command line still names the cluster dir, so a reused pid is never
/// touched) and deleting the dir.
struct Supervisor {
    pid: u32,
    stdin: ChildStdin,
}

const SUPERVISOR_SCRIPT: &str = r#"
trap '' HUP INT TERM PIPE
dir=$1 pids= keep=0
while read -r cmd arg; do
    case $cmd in
        pid) pids="$pids $arg" ;;
        keep) keep=1 ;;
    esac
done
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' <"/proc/$1/cmdline" | grep -qF -- "$dir"; }
live() { for p in $pids; do if ours "$p"; then printf '%s ' "$p"; fi; done; }
stop() {
    l=$(live)
    [ -n "$l" ] || return 0
    kill "-$1" $l 2>/dev/null
    n=0
    while [ -n "$(live)" ] && [ "$n" -lt "$2" ]; do sleep 0.1; n=$((n + 1)); done
}
stop KILL 50
[ "$keep" = 1 ] || [ "$PRISM_KEEP_CLUSTER" = 1 ] || rm -rf -- "$dir"
"#;

impl Supervisor {
    fn spawn(dir: &Path) -> std::io::Result<Self> {
        // Own process group: Ctrl-C in a terminal reaches the test process (whose exit then
        // triggers the cleanup) but not the supervisor and the components.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("prism-cluster-supervisor")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        Ok(Self {
            pid: child.id(),
            stdin,
        })
    }

    fn watch(&mut self, pid: u32) -> std::io::Result<()> {
        writeln!(self.stdin, "pid {pid}")?;
        self.stdin.flush()
    }

    fn keep_dir(&mut self) {
        let _ = writeln!(self.stdin, "keep");
        let _ = self.stdin.flush();
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = std::fs::File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// CA, apiserver serving cert, admin client cert (`O=system:masters`) and the service-account
/// signing key pair, all ECDSA P-256, written as PEM into `pki`.
fn write_pki(pki: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let write = |name: &str, pem: String| std::fs::write(pki.join(name), pem);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "prism-operator-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    write("ca.crt", ca.self_signed(&ca_key)?.pem())?;
    write("ca.key", ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(
        [
            "127.0.0.1",
            "::1",
            "10.96.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from)
        .to_vec(),
    )?;
    serving.distinguished_name = rcgen::DistinguishedName::new();
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.use_authority_key_identifier_extension = true;
    write(
        "serving.crt",
        serving.signed_by(&serving_key, &issuer)?.pem(),
    )?;
    write("serving.key", serving_key.serialize_pem())?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::default();
    admin.distinguished_name = rcgen::DistinguishedName::new();
    admin.distinguished_name.push(DnType::CommonName, "admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin.use_authority_key_identifier_extension = true;
    write("admin.crt", admin.signed_by(&admin_key, &issuer)?.pem())?;
    write("admin.key", admin_key.serialize_pem())?;

    let sa_key = KeyPair::generate()?;
    write("sa.key", sa_key.serialize_pem())?;
    write("sa.pub", sa_key.public_key_pem())?;
    Ok(())
}

fn admin_kubeconfig(dir: &Path, server_url: &str) -> String {
    let mut out = String::new();
    let pki = dir.join("pki");
    let _ = write!(
        out,
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: prism-test\n  cluster:\n    server: {server_url}\n    certificate-authority: {ca}\n\
         users:\n\
         - name: admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n\
         contexts:\n\
         - name: prism-test\n  context:\n    cluster: prism-test\n    user: admin\n    namespace: default\n\
         current-context: prism-test\n",
        ca = pki.join("ca.crt").display(),
        crt = pki.join("admin.crt").display(),
        key = pki.join("admin.key").display(),
    );
    out
}

/// `Ok` once Node `name` reports Ready=True; else its Ready condition, for the timeout message.
async fn node_ready(nodes: &Api<Node>, name: &str) -> Result<(), String> {
    let node = nodes.get(name).await.map_err(|e| e.to_string())?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "True" => Ok(()),
        other => Err(format!("Node {name} Ready condition: {other:?}")),
    }
}

/// The fake node kwok manages: matched by annotation, no taints, so unmodified workloads fit.
fn fake_node(name: &str) -> Node {
    let labels = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "kwok"),
    ];
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(
                [
                    (NODE_SELECTOR_ANNOTATION.to_string(), "fake".to_string()),
                    ("node.alpha.kubernetes.io/ttl".into(), "0".into()),
                ]
                .into(),
            ),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}
