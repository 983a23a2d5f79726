//! The aws-auth writer: reads `kube-system/aws-auth`, lets the pure [`aws_auth::merge`] decide,
//! and writes back with the resourceVersion it read, so a concurrent writer makes the PUT fail
//! with 409 instead of being overwritten; it then re-reads and recomputes.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use super::retry::{until_settled, Attempt};
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

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        kube::Error::Api(status) => StoreError::Api(format!(
            "Kubernetes API {} {}: {}",
            status.code, status.reason, status.message
        )),
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
    pub max_attempts: u32,
}

/// Brings one cluster's aws-auth in step with `desired`. Never writes what it could not parse;
/// every write carries the resourceVersion it read.
pub async fn apply_aws_auth(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    until_settled("aws-auth", &options.cluster, options.max_attempts, || {
        attempt(store, desired, options)
    })
    .await
}

async fn attempt(store: &dyn AwsAuthStore, desired: &Desired, options: &ApplyOptions) -> Attempt {
    let mut report = ClusterReport::new(&options.cluster, "", Outcome::Unchanged);
    let current = match store.get().await {
        Ok(current) => current,
        Err(e) => return Attempt::Done(report.failed(format!("reading {NAMESPACE}/{NAME}: {e}"))),
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
        Err(StoreError::Conflict) => Attempt::Raced(report),
        Err(e) => Attempt::Done(report.failed(format!("writing {NAMESPACE}/{NAME}: {e}"))),
    }
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
