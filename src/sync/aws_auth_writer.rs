//! The aws-auth writer: reads `kube-system/aws-auth`, lets the pure [`aws_auth::merge`] decide,
//! and writes back with the resourceVersion it read, so a concurrent writer makes the PUT fail
//! with 409 instead of being overwritten; it then re-reads and recomputes.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use std::time::Duration;

use super::retry::{until_settled, Attempt, Limits};
use crate::aws_auth::{self, MAP_ROLES, MAP_USERS};
use crate::desired::{Desired, RoleArn};
use crate::installation::Installation;
use crate::report::{ClusterReport, Outcome};

const NAMESPACE: &str = "kube-system";
const NAME: &str = "aws-auth";

/// A Kubernetes read or write of aws-auth failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409: someone else wrote since our read (or created it first). Re-read and recompute.
    #[error("aws-auth changed since it was read")]
    Conflict,
    /// 404 on a write: the ConfigMap was deleted since it was read. A race like a 409.
    #[error("aws-auth was deleted since it was read")]
    Gone,
    /// 429, 5xx or a connection that broke: the API server may answer the next try.
    #[error("{detail}")]
    Transient {
        detail: String,
        /// The server's `retryAfterSeconds`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// 401: the cluster refused the token. A kept client tries once more with a new one
    /// ([`crate::kube_clients`]); otherwise it fails like [`StoreError::Api`].
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Api(String),
}

/// aws-auth in one cluster. The real one is [`KubeAwsAuth`]; tests wrap it to interleave writers.
pub trait AwsAuthStore: Send + Sync {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>>;
    /// PUT, carrying `metadata.resourceVersion` as the precondition.
    fn replace<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>>;
    fn create<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// [`AwsAuthStore`] over the Kubernetes API.
pub struct KubeAwsAuth {
    api: Api<ConfigMap>,
}

impl KubeAwsAuth {
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::namespaced(client, NAMESPACE),
        }
    }
}

/// Sorts a Kubernetes error into what the retry loop does with it. Throttling (429, also from
/// API Priority and Fairness), server errors and broken connections are worth another try;
/// anything else (403, 422, ...) would fail again the same way.
fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        kube::Error::Api(status) if status.code == 404 => StoreError::Gone,
        kube::Error::Api(status) => {
            let detail = format!(
                "Kubernetes API {} {}: {}",
                status.code, status.reason, status.message
            );
            if matches!(status.code, 429 | 500 | 502 | 503 | 504) {
                let retry_after = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(s.into()));
                StoreError::Transient {
                    detail,
                    retry_after,
                }
            } else if status.code == 401 {
                StoreError::Unauthorized(detail)
            } else {
                StoreError::Api(detail)
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => StoreError::Transient {
            detail: e.to_string(),
            retry_after: None,
        },
        other => StoreError::Api(other.to_string()),
    }
}

impl AwsAuthStore for KubeAwsAuth {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>> {
        Box::pin(async move { self.api.get_opt(NAME).await.map_err(store_error) })
    }

    fn replace<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.api
                .replace(NAME, &PostParams::default(), config_map)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }

    fn create<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.api
                .create(&PostParams::default(), config_map)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }
}

/// How a writer behaves; the same options serve [`apply_aws_auth`] and
/// [`apply_access_entries`](super::apply_access_entries).
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub cluster: String,
    /// Create aws-auth where it is absent (aws-auth only).
    pub create_missing: bool,
    pub dry_run: bool,
    /// How often and until when a race or a transient error is retried.
    pub limits: Limits,
    /// Whose entries this run may change, and the marker of those it writes.
    pub installation: Installation,
}

/// Brings one cluster's aws-auth in step with `desired`. Never writes what it could not parse;
/// every write carries the resourceVersion it read.
pub async fn apply_aws_auth(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    apply_aws_auth_with_roles(store, desired, &super::no_roles(), options).await
}

/// [`apply_aws_auth`] for users (`mapUsers`) and roles (`mapRoles`) at once: one read, one
/// merge per key ([`aws_auth::merge_key`] serves both), one write with the resourceVersion.
/// `mapRoles` is read only when the run decides about roles; one that cannot be read blocks
/// only role grants (the authenticator ignores it meanwhile, so it grants nothing), and only
/// when there is a role to grant.
pub async fn apply_aws_auth_with_roles(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    roles: &Desired<RoleArn>,
    options: &ApplyOptions,
) -> ClusterReport {
    until_settled("aws-auth", &options.cluster, options.limits, || {
        attempt(store, desired, roles, options)
    })
    .await
}

/// What a store error means for this attempt: a race, another try, or the end.
fn after_error(report: ClusterReport, doing: &str, error: StoreError) -> Attempt {
    match error {
        StoreError::Conflict | StoreError::Gone => Attempt::Raced(report),
        StoreError::Transient {
            detail,
            retry_after,
        } => Attempt::Transient {
            report,
            reason: format!("{doing} {NAMESPACE}/{NAME}: {detail}"),
            retry_after,
        },
        StoreError::Api(detail) | StoreError::Unauthorized(detail) => {
            Attempt::Done(report.failed(format!("{doing} {NAMESPACE}/{NAME}: {detail}")))
        }
    }
}

async fn attempt(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    roles: &Desired<RoleArn>,
    options: &ApplyOptions,
) -> Attempt {
    let mut report = ClusterReport::new(&options.cluster, "", Outcome::Unchanged);
    let current = match store.get().await {
        Ok(current) => current,
        // A 404 is `Ok(None)`; nothing to race with on a read.
        Err(e) => return after_error(report, "reading", e),
    };
    if current.is_none() && !options.create_missing {
        report.outcome = Outcome::Skipped;
        return Attempt::Done(
            report.with_reason("aws-auth does not exist and createMissingAwsAuth is false"),
        );
    }
    let data = current.as_ref().and_then(|cm| cm.data.clone());
    let data = match (&current, data) {
        (Some(_), None) => Some(BTreeMap::new()),
        (_, data) => data,
    };
    let merge = match aws_auth::merge_as(&options.installation, data.as_ref(), desired) {
        Ok(merge) => merge,
        Err(e) => return Attempt::Done(report.failed(e.to_string())),
    };
    let role_merge = if roles.scope.covers_roles() {
        match aws_auth::merge_roles_as(&options.installation, data.as_ref(), roles) {
            Ok(merge) => Some(merge),
            // Nothing to grant: an unreadable mapRoles holds nothing this run must change.
            Err(_) if roles.entries.is_empty() => None,
            Err(e) => return Attempt::Done(report.failed(e.to_string())),
        }
    } else {
        None
    };
    let role_merge = role_merge.unwrap_or_default();
    report.added = merge.added.len() + role_merge.added.len();
    report.removed = merge.removed.len() + role_merge.removed.len();
    report.changed = merge.changed.len() + role_merge.changed.len();
    report.conflicts = merge
        .conflicts
        .iter()
        .map(ToString::to_string)
        .chain(role_merge.conflicts.iter().map(ToString::to_string))
        .collect();
    // What a merge could not do is a failure of this cluster, reported after whatever it could
    // do safely (its revocations) has been written.
    let blocked: Vec<String> = [&merge.blocked, &role_merge.blocked]
        .into_iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    let finish = |mut report: ClusterReport, outcome| {
        report.settle(outcome);
        if blocked.is_empty() {
            report
        } else {
            report.failed(blocked.join("; "))
        }
    };
    let mut updates: Vec<(&'static str, String, Option<&str>)> = Vec::new();
    if let Some(value) = merge.map_users.clone() {
        updates.push((MAP_USERS, value, merge.previous.as_deref()));
    }
    if let Some(value) = role_merge.map_users.clone() {
        updates.push((MAP_ROLES, value, role_merge.previous.as_deref()));
    }
    if updates.is_empty() {
        return Attempt::Done(finish(report, Outcome::Unchanged));
    }
    let size = data_size(current.as_ref(), &updates);
    if size > MAX_CONFIG_MAP_DATA {
        // Counted only here, where it explains the refusal.
        let entries: usize = updates
            .iter()
            .map(|(_, value, _)| {
                serde_yaml_ng::from_str::<Vec<serde_yaml_ng::Value>>(value)
                    .map_or(0, |items| items.len())
            })
            .sum();
        return Attempt::Done(report.failed(format!(
            "{NAMESPACE}/{NAME} would hold {size} bytes of data ({entries} mapUsers entries), over Kubernetes' limit of {MAX_CONFIG_MAP_DATA} bytes for a ConfigMap; nothing was written"
        )));
    }
    if options.dry_run {
        let diff: String = updates
            .iter()
            .map(|(key, value, previous)| {
                aws_auth::unified_diff_of(&options.cluster, key, *previous, value)
            })
            .collect();
        report.diff = Some(diff);
        return Attempt::Done(finish(report, Outcome::Updated));
    }
    let written = match current {
        Some(mut config_map) => {
            let data = config_map.data.get_or_insert_with(BTreeMap::new);
            for (key, value, _) in updates {
                data.insert(key.to_string(), value);
            }
            store.replace(&config_map).await
        }
        None => store.create(&new_aws_auth(updates)).await,
    };
    match written {
        Ok(()) => Attempt::Done(finish(report, Outcome::Updated)),
        Err(e) => after_error(report, "writing", e),
    }
}

/// Kubernetes refuses a ConfigMap whose data values add up to more than 1 MiB
/// (`ValidateConfigMap` in pkg/apis/core/validation/validation.go sums `len(value)` over `data`
/// and `binaryData` against `core.MaxSecretSize`, 1024 * 1024 bytes).
pub const MAX_CONFIG_MAP_DATA: usize = 1024 * 1024;

/// The size Kubernetes validates, of the ConfigMap as it would be written.
fn data_size(current: Option<&ConfigMap>, updates: &[(&str, String, Option<&str>)]) -> usize {
    let replaced = |key: &str| updates.iter().any(|(k, _, _)| *k == key);
    let others: usize = current
        .map(|cm| {
            let data = cm.data.iter().flatten();
            let text: usize = data
                .filter(|(key, _)| !replaced(key))
                .map(|(_, value)| value.len())
                .sum();
            let binary: usize = cm
                .binary_data
                .iter()
                .flatten()
                .map(|(_, v)| v.0.len())
                .sum();
            text + binary
        })
        .unwrap_or(0);
    others + updates.iter().map(|(_, v, _)| v.len()).sum::<usize>()
}

fn new_aws_auth(updates: Vec<(&'static str, String, Option<&str>)>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(
            updates
                .into_iter()
                .map(|(key, value, _)| (key.to_string(), value))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}
