//! One kube-apiserver per simulated EKS cluster, configured the way EKS runs it where it
//! matters to us: bearer tokens go to an authentication webhook, authorization is RBAC, and an
//! audit log at Metadata level records who did what.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths;
use crate::pki::ClusterPki;

/// Everything needed to (re)start one cluster's API server.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    pub cluster: String,
    pub dir: PathBuf,
    pub port: u16,
    pub etcd_url: String,
    pub webhook_url: String,
    pub admin_token: String,
}

impl ApiServerConfig {
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// Writes the certificates, token file, webhook kubeconfig and audit policy.
    pub fn write_files(&self, pki: &ClusterPki) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write(&self.ca_file(), &pki.ca_pem)?;
        write(&self.dir.join("serving.crt"), &pki.serving_cert_pem)?;
        write(&self.dir.join("serving.key"), &pki.serving_key_pem)?;
        write(&self.dir.join("sa.key"), &pki.service_account_key_pem)?;
        write(&self.dir.join("sa.pub"), &pki.service_account_public_pem)?;
        // The admin identity bootstraps the cluster, like the EKS cluster creator does.
        write(
            &self.dir.join("tokens.csv"),
            &format!(
                "{},eks-testbed-admin,eks-testbed-admin,\"system:masters\"\n",
                self.admin_token
            ),
        )?;
        write(
            &self.dir.join("webhook.kubeconfig"),
            &crate::authn::webhook_kubeconfig(&self.webhook_url),
        )?;
        write(
            &self.dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
        )?;
        Ok(())
    }

    /// The kube-apiserver command line. The etcd prefix keeps clusters apart in one etcd.
    pub fn command(&self) -> Command {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let mut command = Command::new(paths::kube_apiserver());
        command.args([
            format!("--etcd-servers={}", self.etcd_url),
            format!("--etcd-prefix=/eks-testbed/{}", self.cluster),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", self.port),
            "--insecure-port=0".into(),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", d("serving.crt")),
            format!("--tls-private-key-file={}", d("serving.key")),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            "--service-cluster-ip-range=10.96.0.0/24".into(),
            // Loopback may not back the `kubernetes` Service; nothing here needs that Service.
            "--endpoint-reconciler-type=none".into(),
            "--authorization-mode=RBAC".into(),
            format!("--token-auth-file={}", d("tokens.csv")),
            format!(
                "--authentication-token-webhook-config-file={}",
                d("webhook.kubeconfig")
            ),
            "--authentication-token-webhook-version=v1".into(),
            // EKS re-checks aws-auth within seconds; a 2-minute cache would hide revocations.
            "--authentication-token-webhook-cache-ttl=0s".into(),
            format!("--audit-policy-file={}", d("audit-policy.yaml")),
            format!("--audit-log-path={}", self.audit_log().display()),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            "--anonymous-auth=false".into(),
            "--v=1".into(),
        ]);
        command
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
