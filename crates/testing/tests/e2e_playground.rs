//! The README's "Try it" command: `prism-playground` starts a control plane, the operator and
//! the in-repo admins, reconciles the example fleet, prints a kubeconfig that works, and on
//! Ctrl-C leaves nothing running. One shard's admin is given, as a user gives a real
//! prism-admin group: a three-node admin whose first listed node follows.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use prism_api::{NamespaceState, PrismNamespace, PrismShard};
use prism_testing::admin_server::AdminServer;

/// The shard whose admin the test gives.
const GIVEN: &str = "playback-live";

/// `prism-playground`, built by cargo with this test.
fn playground() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_prism-playground"))
}

/// The next stdout line that starts with `prefix`, within `timeout`.
fn line_starting(lines: &mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line starting with {prefix:?} within {timeout:?}: {e}"),
        }
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err()
}

/// Processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_runs_the_fleet_and_ctrl_c_leaves_nothing_running() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let given = AdminServer::start_ha(3).await;
    given[0].set_leader(1);
    let list: Vec<String> = given.iter().map(AdminServer::host_port).collect();
    let mut child = Command::new(playground())
        .arg("--admin-endpoint")
        .arg(format!("{GIVEN}={}", list.join(",")))
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("playground: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let minutes = |n: u64| Duration::from_secs(60 * n);
    let server = line_starting(&lines, "control plane: ", minutes(4));
    let api_port = port_of(&server);
    let mut admin_ports = Vec::new();
    for _ in 0..4 {
        let admin = line_starting(&lines, "prism admin of ", minutes(1));
        let (shard, endpoints) = admin
            .trim_start_matches("prism admin of ")
            .split_once(": ")
            .unwrap();
        if shard == GIVEN {
            assert_eq!(endpoints, list.join(","), "the given admin");
        } else {
            admin_ports.extend(endpoints.split(',').map(port_of));
        }
    }
    assert_eq!(admin_ports.len(), 3, "the three other shards get one each");
    let kubeconfig = PathBuf::from(
        line_starting(&lines, "KUBECONFIG=", minutes(1)).trim_start_matches("KUBECONFIG="),
    );
    line_starting(
        &lines,
        "namespaces: 12 of 12 Active (fleet ready)",
        minutes(4),
    );

    // The printed kubeconfig works.
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = Client::try_from(config).unwrap();
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), "prism");
    assert_eq!(
        shards
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let namespaces: Api<PrismNamespace> = Api::namespaced(client, "prism");
    let all = namespaces.list(&ListParams::default()).await.unwrap().items;
    assert!(
        all.iter()
            .all(|n| n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active))
    );
    // The given admin holds exactly the namespaces of its shard.
    let mut on_given: Vec<String> = all
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.shard.as_deref()) == Some(GIVEN))
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    on_given.sort();
    let held: Vec<String> = given[0].namespaces().into_keys().collect();
    assert!(!held.is_empty());
    assert_eq!(held, on_given, "{GIVEN}'s namespaces, and only those");
    let served_by_given: Vec<String> = given[0]
        .namespaces()
        .into_keys()
        .filter_map(|n| given[0].namespace(&n))
        .map(|n| n.proxy)
        .filter(|p| !p.starts_with(&format!("prism-{GIVEN}-")))
        .collect();
    assert!(served_by_given.is_empty(), "{served_by_given:?}");

    // Ctrl-C: a clean exit, and nothing it started is left.
    let cluster_dir = kubeconfig.parent().unwrap().to_string_lossy().to_string();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let deadline = Instant::now() + minutes(1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the playground did not stop within a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_mentioning(&cluster_dir);
        let open: Vec<u16> = std::iter::once(api_port)
            .chain(admin_ports.iter().copied())
            .filter(|p| !closed(*p))
            .collect();
        let dir_gone = !std::path::Path::new(&cluster_dir).exists();
        if left.is_empty() && open.is_empty() && dir_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running: {left:?}; ports open: {open:?}; dir still there: {}",
            !dir_gone
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
