//! Which store holds a cluster's mappings: decided per run from the configured
//! [`Backend`] and the authentication mode DescribeCluster reports, since the mode is known only
//! then (and moves one way, `CONFIG_MAP` -> `API_AND_CONFIG_MAP` -> `API`, under a running
//! tool).
//!
//! In `API_AND_CONFIG_MAP` EKS reads both stores, an access entry winning over an aws-auth entry
//! for the same principal. Writing one store there is not enough to revoke: a stale owned entry
//! in the other store would keep (or give back) the access. So the store not written is
//! *retired*: the owned entries of the users in scope are removed from it, after the chosen
//! store was written. That is also what moves a cluster from aws-auth to access entries.
//!
//! ```
//! use eks_iam_sync::backend::{choose, Choice, Store};
//! use eks_iam_sync::cluster::AuthenticationMode;
//! use eks_iam_sync::config::Backend;
//!
//! let choice = choose("prod", Backend::Auto, &AuthenticationMode::ApiAndConfigMap);
//! assert_eq!(
//!     choice,
//!     Choice::Write { store: Store::AccessEntries, retire: Some(Store::AwsAuth) }
//! );
//! ```

use crate::cluster::AuthenticationMode;
use crate::config::Backend;

/// A store of mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `kube-system/aws-auth` `mapUsers`.
    AwsAuth,
    /// EKS access entries.
    AccessEntries,
}

impl Store {
    /// The config's name for it, as reports and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Store::AwsAuth => Backend::ConfigMap.as_str(),
            Store::AccessEntries => Backend::AccessEntries.as_str(),
        }
    }
}

/// What to do with one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Write `store`; then remove the owned in-scope entries from `retire`, if any.
    Write { store: Store, retire: Option<Store> },
    /// The configured backend cannot serve this cluster's mode, or the mode is unknown: the
    /// cluster fails (and is retried), it is never silently skipped.
    Refuse(BackendError),
}

/// A configured backend the cluster's mode cannot serve; the cluster fails, the others go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("cluster {cluster}: backend accessEntries, but its authentication mode is CONFIG_MAP, which ignores access entries; switch the cluster to API_AND_CONFIG_MAP or use backend auto/configMap")]
    AccessEntriesOnConfigMap { cluster: String },
    #[error("cluster {cluster}: backend configMap, but its authentication mode is API, which ignores aws-auth; use backend auto or accessEntries")]
    ConfigMapOnApi { cluster: String },
    /// A mode newer than this version: which store EKS reads is unknown, so writing either
    /// could grant or keep what IAM does not say. Failing keeps it visible and retried.
    #[error("cluster {cluster}: authentication mode {mode} is unknown to this version, so it cannot tell which store EKS reads; nothing was written (upgrade eks-iam-sync)")]
    UnknownMode { cluster: String, mode: String },
}

/// The store for `cluster`, configured `backend`, in authentication `mode`.
pub fn choose(cluster: &str, backend: Backend, mode: &AuthenticationMode) -> Choice {
    use AuthenticationMode as Mode;
    let write = |store, retire| Choice::Write { store, retire };
    match (backend, mode) {
        (_, Mode::Other(other)) => Choice::Refuse(BackendError::UnknownMode {
            cluster: cluster.to_owned(),
            mode: other.clone(),
        }),
        (Backend::Auto | Backend::ConfigMap, Mode::ConfigMap) => write(Store::AwsAuth, None),
        (Backend::AccessEntries, Mode::ConfigMap) => {
            Choice::Refuse(BackendError::AccessEntriesOnConfigMap {
                cluster: cluster.to_owned(),
            })
        }
        (Backend::ConfigMap, Mode::ApiAndConfigMap) => {
            write(Store::AwsAuth, Some(Store::AccessEntries))
        }
        (Backend::Auto | Backend::AccessEntries, Mode::ApiAndConfigMap) => {
            write(Store::AccessEntries, Some(Store::AwsAuth))
        }
        (Backend::ConfigMap, Mode::Api) => Choice::Refuse(BackendError::ConfigMapOnApi {
            cluster: cluster.to_owned(),
        }),
        // API ignores aws-auth entirely, so whatever is left there is inert.
        (Backend::Auto | Backend::AccessEntries, Mode::Api) => write(Store::AccessEntries, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthenticationMode as Mode;

    fn write(store: Store, retire: Option<Store>) -> Choice {
        Choice::Write { store, retire }
    }

    #[test]
    fn auto_follows_the_mode() {
        assert_eq!(
            choose("c", Backend::Auto, &Mode::ConfigMap),
            write(Store::AwsAuth, None)
        );
        assert_eq!(
            choose("c", Backend::Auto, &Mode::ApiAndConfigMap),
            write(Store::AccessEntries, Some(Store::AwsAuth))
        );
        assert_eq!(
            choose("c", Backend::Auto, &Mode::Api),
            write(Store::AccessEntries, None)
        );
    }

    #[test]
    fn config_map_in_both_mode_retires_access_entries() {
        assert_eq!(
            choose("c", Backend::ConfigMap, &Mode::ApiAndConfigMap),
            write(Store::AwsAuth, Some(Store::AccessEntries))
        );
    }

    #[test]
    fn a_backend_the_mode_ignores_is_refused_naming_the_cluster() {
        for (backend, mode) in [
            (Backend::AccessEntries, Mode::ConfigMap),
            (Backend::ConfigMap, Mode::Api),
        ] {
            let Choice::Refuse(error) = choose("prod-eu", backend, &mode) else {
                panic!("{backend:?} on {mode:?} is not refused");
            };
            assert!(error.to_string().contains("prod-eu"), "{error}");
        }
    }

    #[test]
    fn an_unknown_mode_is_refused_naming_cluster_and_mode() {
        let mode = Mode::Other("NEW".into());
        for backend in [Backend::Auto, Backend::ConfigMap, Backend::AccessEntries] {
            let Choice::Refuse(error) = choose("c1", backend, &mode) else {
                panic!("{backend:?} on an unknown mode is not refused");
            };
            let text = error.to_string();
            assert!(text.contains("c1") && text.contains("NEW"), "{text}");
        }
    }
}
