//! The webhook's own certificate authority and serving certificate, kept in a Secret and
//! renewed before they expire, without a restart and without a failed call.
//!
//! Every replica runs the same loop: read the Secret, renew what is due, write it back with
//! the version it read (a replica that loses the race reads the winner's next round), serve
//! the certificate, and inject the CA bundle into the webhook configuration and the CRDs'
//! conversion settings. A new CA joins the bundle first and signs the serving certificate only
//! once it has been in the bundle for a while ([`Want::settle`]), so the API server trusts
//! the new certificate before it is presented; a CA leaves the bundle when it expires.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

/// What the serving certificate must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Names (DNS names or IP addresses) the certificate is for.
    pub sans: Vec<String>,
    /// Lifetime of a serving certificate; renewed with a third of it left.
    pub lifetime: Duration,
    /// Lifetime of a CA; renewed with a third of it left.
    pub ca_lifetime: Duration,
}

impl Want {
    /// How long a new CA is in the bundle before it signs the serving certificate: long
    /// enough for the bundle to reach the API server, well within a serving certificate's
    /// last third.
    pub fn settle(&self) -> Duration {
        self.lifetime / 6
    }

    /// How often the loop looks at the Secret.
    pub fn period(&self) -> Duration {
        (self.lifetime / 12).clamp(Duration::from_secs(1), Duration::from_secs(300))
    }
}

/// The PEM material the Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Every CA that is still valid, newest first (`ca.crt`).
    pub ca_bundle: String,
    /// The newest CA's key (`ca.key`).
    pub ca_key: String,
    /// The serving certificate (`tls.crt`).
    pub cert: String,
    /// Its key (`tls.key`).
    pub key: String,
}

/// A parsed certificate's validity and names.
struct Parsed {
    pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    sans: Vec<String>,
}

fn parse_all(pem: &str) -> Option<Vec<Parsed>> {
    pem.split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| {
            let pem = format!("{}\n", block.trim_start());
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let validity = cert.validity();
            let sans = match cert.subject_alternative_name() {
                Ok(Some(ext)) => ext.value.general_names.iter().map(name_text).collect(),
                _ => Vec::new(),
            };
            Some(Parsed {
                not_before: validity.not_before.to_datetime(),
                not_after: validity.not_after.to_datetime(),
                pem,
                sans,
            })
        })
        .collect()
}

/// A subject alternative name as the certificate was asked for: a DNS name or an address.
fn name_text(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => dns.to_string(),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")).to_string(),
            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")).to_string(),
            _ => format!("{bytes:?}"),
        },
        other => other.to_string(),
    }
}

fn remaining(cert: &Parsed, now: OffsetDateTime) -> Duration {
    (cert.not_after - now).try_into().unwrap_or(Duration::ZERO)
}

fn age(cert: &Parsed, now: OffsetDateTime) -> Duration {
    (now - cert.not_before).try_into().unwrap_or(Duration::ZERO)
}

/// What the Secret should hold at `now`, given what it holds (`None`: nothing usable); `None`
/// when nothing is due.
pub fn plan(
    now: OffsetDateTime,
    have: Option<&Material>,
    want: &Want,
) -> anyhow::Result<Option<Material>> {
    let Some(have) = have else {
        return fresh(now, want).map(Some);
    };
    let (Some(cas), Some(leaf)) = (parse_all(&have.ca_bundle), parse_all(&have.cert)) else {
        return fresh(now, want).map(Some);
    };
    let mut cas: Vec<Parsed> = cas.into_iter().filter(|c| c.not_after > now).collect();
    let (Some(newest), Some(leaf)) = (cas.first(), leaf.into_iter().next()) else {
        return fresh(now, want).map(Some);
    };
    if KeyPair::from_pem(&have.ca_key).is_err() || leaf.not_after <= now {
        return fresh(now, want).map(Some);
    }
    let mut next = have.clone();
    if remaining(newest, now) < want.ca_lifetime / 3 {
        let (pem, key) = new_ca(now, want)?;
        next.ca_key = key;
        cas.insert(
            0,
            parse_all(&pem)
                .and_then(|mut v| v.pop())
                .expect("a new CA parses"),
        );
    }
    let newest = &cas[0];
    let settled = age(newest, now) >= want.settle();
    let due = remaining(&leaf, now) < want.lifetime / 3
        || leaf.sans != want.sans
        || (settled && leaf.not_before < newest.not_before);
    if due && (settled || leaf.not_before >= newest.not_before) {
        let (cert, key) = new_leaf(now, want, &newest.pem, &next.ca_key, newest.not_after)?;
        next.cert = cert;
        next.key = key;
    }
    next.ca_bundle = cas.iter().map(|c| c.pem.as_str()).collect();
    Ok((next != *have).then_some(next))
}

/// A new CA and a serving certificate it signs.
fn fresh(now: OffsetDateTime, want: &Want) -> anyhow::Result<Material> {
    let (ca_pem, ca_key) = new_ca(now, want)?;
    let ca_end = now + want.ca_lifetime;
    let (cert, key) = new_leaf(now, want, &ca_pem, &ca_key, ca_end)?;
    Ok(Material {
        ca_bundle: ca_pem,
        ca_key,
        cert,
        key,
    })
}

fn new_ca(now: OffsetDateTime, want: &Want) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "prism-operator webhook CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now;
    params.not_after = now + want.ca_lifetime;
    Ok((params.self_signed(&key)?.pem(), key.serialize_pem()))
}

fn new_leaf(
    now: OffsetDateTime,
    want: &Want,
    ca_pem: &str,
    ca_key: &str,
    ca_end: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, KeyPair::from_pem(ca_key)?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(want.sans.clone())?;
    let cn = want
        .sans
        .first()
        .map_or("prism-operator-webhook", String::as_str);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now;
    params.not_after = (now + want.lifetime).min(ca_end);
    Ok((params.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
}

/// The CAs of `bundle` that are valid at `now`, as one PEM (what the API server is given).
pub fn valid_bundle(bundle: &str, now: OffsetDateTime) -> String {
    parse_all(bundle)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.not_after > now)
        .map(|c| c.pem)
        .collect()
}

#[cfg(test)]
mod tests;
