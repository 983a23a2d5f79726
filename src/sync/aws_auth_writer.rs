//! The aws-auth writer: reads `kube-system/aws-auth`, lets the pure [`aws_auth::merge`] decide,
//! and writes back with the resourceVersion it read, so a concurrent writer makes the PUT fail
//! with 409 instead of being overwritten; it then re-reads and recomputes.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use std::time::Duration;

use super::retry::{until_settled, Attempt, Limits};
use crate::aws_auth::{self, MAP_USERS};
use crate::desired::Desired;
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
}

/// Brings one cluster's aws-auth in step with `desired`. Never writes what it could not parse;
/// every write carries the resourceVersion it read.
pub async fn apply_aws_auth(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    until_settled("aws-auth", &options.cluster, options.limits, || {
        attempt(store, desired, options)
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
        StoreError::Api(detail) => {
            Attempt::Done(report.failed(format!("{doing} {NAMESPACE}/{NAME}: {detail}")))
        }
    }
}

async fn attempt(store: &dyn AwsAuthStore, desired: &Desired, options: &ApplyOptions) -> Attempt {
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
    let merge = match aws_auth::merge(data.as_ref(), desired) {
        Ok(merge) => merge,
        Err(e) => return Attempt::Done(report.failed(e.to_string())),
    };
    report.added = merge.added.len();
    report.removed = merge.removed.len();
    report.changed = merge.changed.len();
    report.conflicts = merge.conflicts.iter().map(ToString::to_string).collect();
    // What the merge could not do is a failure of this cluster, reported after whatever it could
    // do safely (its revocations) has been written.
    let finish = |mut report: ClusterReport, outcome| {
        report.settle(outcome);
        match &merge.blocked {
            Some(blocked) => report.failed(blocked.to_string()),
            None => report,
        }
    };
    let Some(new_value) = merge.map_users.clone() else {
        return Attempt::Done(finish(report, Outcome::Unchanged));
    };
    let size = data_size(current.as_ref(), &new_value);
    if size > MAX_CONFIG_MAP_DATA {
        // Counted only here, where it explains the refusal.
        let entries = serde_yaml_ng::from_str::<Vec<serde_yaml_ng::Value>>(&new_value)
            .map_or(0, |items| items.len());
        return Attempt::Done(report.failed(format!(
            "{NAMESPACE}/{NAME} would hold {size} bytes of data ({entries} mapUsers entries), over Kubernetes' limit of {MAX_CONFIG_MAP_DATA} bytes for a ConfigMap; nothing was written"
        )));
    }
    if options.dry_run {
        report.diff = Some(aws_auth::unified_diff(
            &options.cluster,
            merge.previous.as_deref(),
            &new_value,
        ));
        return Attempt::Done(finish(report, Outcome::Updated));
    }
    let written = match current {
        Some(mut config_map) => {
            config_map
                .data
                .get_or_insert_with(BTreeMap::new)
                .insert(MAP_USERS.to_string(), new_value);
            store.replace(&config_map).await
        }
        None => store.create(&new_aws_auth(new_value)).await,
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
fn data_size(current: Option<&ConfigMap>, map_users: &str) -> usize {
    let others: usize = current
        .map(|cm| {
            let data = cm.data.iter().flatten();
            let text: usize = data
                .filter(|(key, _)| key.as_str() != MAP_USERS)
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
    others + map_users.len()
}

fn new_aws_auth(map_users: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(MAP_USERS.to_string(), map_users)])),
        ..ConfigMap::default()
    }
}
