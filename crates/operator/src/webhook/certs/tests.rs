//! Renewal over simulated time: what the Secret holds at each moment, and that the served
//! certificate always verifies against the bundle the API server was given a moment before.

use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

use super::*;

fn want() -> Want {
    Want {
        sans: vec!["hook.prism-system.svc".into(), "127.0.0.1".into()],
        lifetime: Duration::from_secs(600),
        ca_lifetime: Duration::from_secs(1800),
    }
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// Whether the API server, trusting `bundle`, accepts `cert` for `name` at `at`.
fn verifies(bundle: &str, cert: &str, name: &str, at: OffsetDateTime) -> bool {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .unwrap();
    let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64));
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            now,
        )
        .is_ok()
}

#[test]
fn nothing_is_made_twice_and_the_certificate_names_what_it_must() {
    let m = plan(start(), None, &want()).unwrap().unwrap();
    assert!(verifies(
        &m.ca_bundle,
        &m.cert,
        "hook.prism-system.svc",
        start()
    ));
    assert!(verifies(&m.ca_bundle, &m.cert, "127.0.0.1", start()));
    assert!(!verifies(&m.ca_bundle, &m.cert, "elsewhere.svc", start()));
    let later = start() + Duration::from_secs(60);
    assert_eq!(
        plan(later, Some(&m), &want()).unwrap(),
        None,
        "nothing due yet"
    );
}

#[test]
fn new_names_get_a_new_certificate_from_the_same_ca() {
    let m = plan(start(), None, &want()).unwrap().unwrap();
    let mut more = want();
    more.sans.push("::1".into());
    let next = plan(start(), Some(&m), &more).unwrap().unwrap();
    assert_eq!(next.ca_bundle, m.ca_bundle);
    assert_ne!(next.cert, m.cert);
    assert!(verifies(&next.ca_bundle, &next.cert, "::1", start()));
}

#[test]
fn garbage_in_the_secret_is_replaced() {
    let bad = Material {
        ca_bundle: "not pem".into(),
        ca_key: "x".into(),
        cert: "y".into(),
        key: "z".into(),
    };
    let m = plan(start(), Some(&bad), &want()).unwrap().unwrap();
    assert!(verifies(&m.ca_bundle, &m.cert, "127.0.0.1", start()));
}

/// Steps through three CA lifetimes a few seconds at a time, as the loop would (every
/// [`Want::period`]). At every step the certificate served verifies against the bundle
/// injected one step earlier: no call fails across a renewal of either the certificate or
/// the CA.
#[test]
fn renewals_never_leave_a_moment_without_a_trusted_certificate() {
    let want = want();
    let step = want.period();
    let mut now = start();
    let mut m = plan(now, None, &want).unwrap().unwrap();
    let mut injected = valid_bundle(&m.ca_bundle, now);
    let (mut leaf_renewals, mut ca_renewals) = (0, 0);
    let end = now + want.ca_lifetime * 3;
    while now < end {
        now += step;
        if let Some(next) = plan(now, Some(&m), &want).unwrap() {
            leaf_renewals += usize::from(next.cert != m.cert);
            ca_renewals += usize::from(next.ca_key != m.ca_key);
            m = next;
        }
        assert!(
            verifies(&injected, &m.cert, "127.0.0.1", now),
            "the served certificate is not trusted by the injected bundle at {now}"
        );
        injected = valid_bundle(&m.ca_bundle, now);
    }
    assert!(leaf_renewals >= 12, "{leaf_renewals} certificate renewals");
    assert!(ca_renewals >= 3, "{ca_renewals} CA renewals");
    assert!(
        m.ca_bundle.matches("BEGIN CERTIFICATE").count() <= 2,
        "expired CAs leave the bundle"
    );
}
