//! Per-cluster certificates: each simulated EKS cluster has its own CA, as real clusters do,
//! so a client that trusts the wrong CA fails TLS verification exactly as it would on EKS.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM material for one cluster.
pub struct ClusterPki {
    pub ca_pem: String,
    /// The CA's private key, kept so that the test bed can sign more serving certificates
    /// later (a fault-injecting proxy that the cluster's clients must trust as the API server).
    pub ca_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    /// Service-account signing key (PKCS#8) and its public half; kube-apiserver 1.20 refuses
    /// to start without them and reads the public key only from a public-key PEM.
    pub service_account_key_pem: String,
    pub service_account_public_pem: String,
}

/// A fresh CA for `cluster` and a serving certificate for 127.0.0.1 / localhost signed by it.
pub fn cluster_pki(cluster: &str) -> anyhow::Result<ClusterPki> {
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params(cluster)?.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let serving = serving_cert(cluster, &ca_key_pem)?;
    let service_account = KeyPair::generate()?;
    Ok(ClusterPki {
        ca_pem: ca_cert.pem(),
        ca_key_pem,
        serving_cert_pem: serving.cert_pem,
        serving_key_pem: serving.key_pem,
        service_account_key_pem: service_account.serialize_pem(),
        service_account_public_pem: service_account.public_key_pem(),
    })
}

/// A serving certificate and its key, as PEM.
pub struct ServingCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A new serving certificate for 127.0.0.1 / localhost signed by `cluster`'s CA (given its
/// key): anything presenting it passes the same verification as the cluster's API server.
pub fn serving_cert(cluster: &str, ca_key_pem: &str) -> anyhow::Result<ServingCert> {
    // The issuer is rebuilt from the same parameters and key, so the certificate names the
    // very issuer (and key identifier) the CA certificate carries.
    let issuer = Issuer::new(ca_params(cluster)?, KeyPair::from_pem(ca_key_pem)?);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.distinguished_name = name("kube-apiserver");
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServingCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn ca_params(cluster: &str) -> anyhow::Result<CertificateParams> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = name(&format!("{cluster} test bed CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca_params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}
