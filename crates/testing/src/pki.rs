//! A throw-away PKI for tests: a CA that signs loopback serving certificates and client
//! certificates (rcgen).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority that can sign leaf certificates.
pub struct Ca {
    /// PEM of the CA certificate.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    /// Certificate PEM.
    pub cert: String,
    /// Private key PEM.
    pub key: String,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A serving certificate for loopback (`127.0.0.1`, `::1`, `localhost`).
    pub fn server(&self) -> Leaf {
        self.leaf(
            &["127.0.0.1", "::1", "localhost"],
            "prism-admin",
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for the operator.
    pub fn client(&self) -> Leaf {
        self.leaf(&[], "prism-operator", ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A leaf certificate for `names` with common name `cn`.
    pub fn leaf(&self, names: &[&str], cn: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).unwrap().pem();
        Leaf {
            cert,
            key: key.serialize_pem(),
        }
    }
}
