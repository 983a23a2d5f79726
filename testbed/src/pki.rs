//! Per-cluster certificates: each simulated EKS cluster has its own CA, as real clusters do,
//! so a client that trusts the wrong CA fails TLS verification exactly as it would on EKS.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM material for one cluster.
pub struct ClusterPki {
    pub ca_pem: String,
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
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = name(&format!("{cluster} test bed CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.distinguished_name = name("kube-apiserver");
    let cert = params.signed_by(&key, &issuer)?;

    let service_account = KeyPair::generate()?;
    Ok(ClusterPki {
        ca_pem: ca_cert.pem(),
        serving_cert_pem: cert.pem(),
        serving_key_pem: key.serialize_pem(),
        service_account_key_pem: service_account.serialize_pem(),
        service_account_public_pem: service_account.public_key_pem(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}
