//! The admin client over TLS and mutual TLS against the test control plane on loopback, with a
//! throw-away PKI made at test time: what works, and that every way it can go wrong fails
//! with a clear, classified error before any request reaches admin.

#[allow(dead_code)]
use prism_testing::{admin_server, pki};

use std::time::Duration;

use admin_server::{AdminServer, ServerTls};
use pki::Ca;
use prism_admin::proto::{CreateNamespaceRequest, NamespaceConfig, ProxyRegistration};
use prism_admin::{AdminClient, AdminError, AdminPool, AdminTls};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Admin's serving setup: TLS by `ca`, and mutual TLS with clients of `client_ca`.
fn server_tls(ca: &Ca, client_ca: Option<&Ca>) -> ServerTls {
    let serving = ca.server();
    ServerTls {
        cert_pem: serving.cert,
        key_pem: serving.key,
        client_ca_pem: client_ca.map(|c| c.pem.clone()),
    }
}

fn create(namespace: &str) -> CreateNamespaceRequest {
    CreateNamespaceRequest {
        namespace: namespace.into(),
        requesting_proxy: "prism-operator".into(),
        config: Some(NamespaceConfig {
            metadata: [("prism.io/backend".to_string(), "postgres".to_string())].into(),
            ..Default::default()
        }),
        principal: "prism-operator".into(),
    }
}

/// Registers a proxy and creates a namespace through `client`; both must succeed.
async fn round_trip(server: &AdminServer, client: &AdminClient) {
    client
        .register_proxy(ProxyRegistration {
            proxy_id: "proxy-0".into(),
            ..Default::default()
        })
        .await
        .expect("RegisterProxy over TLS");
    let response = client
        .create_namespace(create("orders"))
        .await
        .expect("CreateNamespace over TLS");
    assert!(response.success);
    assert_eq!(server.namespace("orders").unwrap().proxy, "proxy-0");
}

/// The error of one CreateNamespace through `client`, which must fail; admin must not have
/// received it.
async fn failure(server: &AdminServer, client: &AdminClient) -> AdminError {
    let error = client
        .create_namespace(create("orders"))
        .await
        .expect_err("the call must fail");
    eprintln!("as expected: {error}");
    assert_eq!(server.create_calls(), 0, "no request may reach admin");
    error
}

#[tokio::test]
async fn tls_with_the_right_ca_works() {
    let ca = Ca::new("admin CA");
    let server = AdminServer::start_tls(server_tls(&ca, None)).await;
    assert!(server.endpoint().starts_with("https://127.0.0.1:"));
    let tls = AdminTls::new(ca.pem.clone());
    let client = AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &tls).unwrap();
    assert!(client.is_tls());
    round_trip(&server, &client).await;

    // A pool with TLS takes bare host:port endpoints and speaks https to them.
    let pool = AdminPool::with_tls(TIMEOUT, tls.clone()).unwrap();
    let pooled = pool.client(&server.addr().to_string()).unwrap();
    assert_eq!(pooled.endpoint(), server.endpoint());
    assert!(pooled.create_namespace(create("billing")).await.is_ok());
    assert_eq!(pool.tls(), Some(&tls));
    assert!(pool.client("http://127.0.0.1:1").is_err());

    // The name admin's certificate carries can be given instead of the endpoint's host.
    let by_name = tls.with_domain("localhost");
    let client = AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &by_name).unwrap();
    assert!(client.create_namespace(create("search")).await.is_ok());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("admin CA");
    let server = AdminServer::start_tls(server_tls(&ca, None)).await;
    let other = Ca::new("some other CA");
    let client =
        AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &AdminTls::new(other.pem))
            .unwrap();
    let error = failure(&server, &client).await;
    assert!(matches!(error, AdminError::Tls(_)), "{error:?}");
    assert_eq!(error.reason(), "AdminTlsFailed");
    let shown = error.to_string();
    assert!(
        shown.starts_with("TLS handshake with Prism admin failed: ")
            && shown.contains("UnknownIssuer"),
        "{shown}"
    );
    assert!(!shown.contains('\n'), "{shown}");
}

#[tokio::test]
async fn a_server_certificate_for_another_name_is_refused() {
    let ca = Ca::new("admin CA");
    let server = AdminServer::start_tls(server_tls(&ca, None)).await;
    let tls = AdminTls::new(ca.pem.clone()).with_domain("prism-admin.elsewhere.example");
    let client = AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &tls).unwrap();
    let error = failure(&server, &client).await;
    assert!(matches!(error, AdminError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("admin CA");
    let clients = Ca::new("client CA");
    let server = AdminServer::start_tls(server_tls(&ca, Some(&clients))).await;
    let client = AdminClient::connect_lazy_with_tls(
        &server.endpoint(),
        TIMEOUT,
        &AdminTls::new(ca.pem.clone()),
    )
    .unwrap();
    let error = failure(&server, &client).await;
    assert!(matches!(error, AdminError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("CertificateRequired"), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate_works() {
    let ca = Ca::new("admin CA");
    let clients = Ca::new("client CA");
    let server = AdminServer::start_tls(server_tls(&ca, Some(&clients))).await;
    let operator = clients.client();
    let tls = AdminTls::new(ca.pem.clone()).with_client_identity(operator.cert, operator.key);
    assert!(tls.is_mutual());
    let client = AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &tls).unwrap();
    round_trip(&server, &client).await;

    // The connection survives an admin restart: the channel reconnects with the same identity.
    server.restart().await;
    let again = client.create_namespace(create("orders")).await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let ca = Ca::new("admin CA");
    let clients = Ca::new("client CA");
    let server = AdminServer::start_tls(server_tls(&ca, Some(&clients))).await;
    let stranger = Ca::new("stranger CA").client();
    let tls = AdminTls::new(ca.pem.clone()).with_client_identity(stranger.cert, stranger.key);
    let client = AdminClient::connect_lazy_with_tls(&server.endpoint(), TIMEOUT, &tls).unwrap();
    let error = failure(&server, &client).await;
    assert!(matches!(error, AdminError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("fatal alert"), "{error}");
}

#[tokio::test]
async fn tls_and_plaintext_do_not_mix() {
    let ca = Ca::new("admin CA");
    // A TLS client against a plaintext admin.
    let plain = AdminServer::start().await;
    let endpoint = plain.endpoint().replace("http://", "https://");
    let client =
        AdminClient::connect_lazy_with_tls(&endpoint, TIMEOUT, &AdminTls::new(ca.pem.clone()))
            .unwrap();
    let error = failure(&plain, &client).await;
    assert!(matches!(error, AdminError::Tls(_)), "{error:?}");

    // A plaintext client against a TLS admin fails too, and is not mistaken for TLS trouble.
    let secure = AdminServer::start_tls(server_tls(&ca, None)).await;
    let client = AdminClient::connect_lazy(&secure.addr().to_string(), TIMEOUT).unwrap();
    assert!(!client.is_tls());
    let error = failure(&secure, &client).await;
    assert!(!matches!(error, AdminError::Tls(_)), "{error:?}");

    // The scheme has to agree with the settings.
    let https = AdminClient::connect_lazy(&secure.endpoint(), TIMEOUT).unwrap_err();
    assert_eq!(https.reason(), "InvalidAdminEndpoint");
    assert!(
        https.to_string().contains("https needs TLS settings"),
        "{https}"
    );
    let http =
        AdminClient::connect_lazy_with_tls(&plain.endpoint(), TIMEOUT, &AdminTls::new(ca.pem))
            .unwrap_err();
    assert_eq!(http.reason(), "InvalidAdminEndpoint");
}

#[tokio::test]
async fn unusable_settings_fail_up_front() {
    let ca = Ca::new("admin CA");
    let operator = ca.client();
    let other = Ca::new("other").client();
    let cases = [
        (
            "not PEM",
            AdminTls::new("hello"),
            "CA certificate: no CERTIFICATE block found",
        ),
        (
            "certificate without key",
            AdminTls {
                client_cert_pem: Some(operator.cert.clone().into_bytes()),
                ..AdminTls::new(ca.pem.clone())
            },
            "needs its private key",
        ),
        (
            "key that is not a key",
            AdminTls::new(ca.pem.clone())
                .with_client_identity(operator.cert.clone(), ca.pem.clone()),
            "client key: no private key found",
        ),
        (
            "key of another certificate",
            AdminTls::new(ca.pem.clone())
                .with_client_identity(operator.cert.clone(), other.key.clone()),
            "the client key does not belong to the client certificate",
        ),
    ];
    for (what, tls, expected) in cases {
        let error = AdminPool::with_tls(TIMEOUT, tls.clone()).unwrap_err();
        let direct = AdminClient::connect_lazy_with_tls("127.0.0.1:8981", TIMEOUT, &tls);
        assert_eq!(direct.unwrap_err(), error, "{what}");
        eprintln!("{what}: {error}");
        assert_eq!(error.reason(), "InvalidAdminTls", "{what}: {error}");
        assert!(!error.is_retryable(), "{what}");
        assert!(error.to_string().contains(expected), "{what}: {error}");
        // Key material never shows up in messages or debug output.
        assert!(
            !error.to_string().contains("PRIVATE KEY"),
            "{what}: {error}"
        );
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"), "{what}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), &ca.pem).unwrap();
    std::fs::write(path("tls.crt"), &operator.cert).unwrap();
    std::fs::write(path("tls.key"), &operator.key).unwrap();
    let from_files = AdminTls::from_files(
        &path("ca.pem"),
        Some(&path("tls.crt")),
        Some(&path("tls.key")),
    )
    .unwrap();
    assert!(from_files.is_mutual());
    let missing = AdminTls::from_files(&path("nope.pem"), None, None).unwrap_err();
    assert!(
        missing.to_string().contains("nope.pem: cannot read"),
        "{missing}"
    );
}
