//! Where the test bed finds its programs.
//!
//! `scripts/testbed-setup` builds kube-apiserver and a Python venv into a cache outside the
//! clone, so a fresh clone reuses them. Environment variables override each location, which
//! lets a developer point the test bed at binaries of their own.

use std::path::PathBuf;

/// The cache the setup script fills: `$EKS_IAM_SYNC_CACHE`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/eks-iam-sync`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EKS_IAM_SYNC_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("eks-iam-sync")
}

/// kube-apiserver built from Debian's kubernetes source package.
pub fn kube_apiserver() -> PathBuf {
    env_or("EKS_TESTBED_KUBE_APISERVER", || {
        cache_dir().join("bin/kube-apiserver")
    })
}

/// Debian's etcd-server.
pub fn etcd() -> PathBuf {
    env_or("EKS_TESTBED_ETCD", || PathBuf::from("/usr/bin/etcd"))
}

/// The venv holding moto, awscli, cargo-lambda, SAM CLI and cfn-lint.
pub fn venv() -> PathBuf {
    env_or("EKS_TESTBED_VENV", || cache_dir().join("venv"))
}

/// A program from the venv's `bin/` (e.g. `moto_server`, `aws`).
pub fn venv_bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

fn env_or(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(default)
}

/// Fails with a message that says how to get the missing program.
pub fn require(path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.exists(),
        "{} not found: run scripts/testbed-setup first (or set the EKS_TESTBED_* variable)",
        path.display()
    );
    Ok(())
}
