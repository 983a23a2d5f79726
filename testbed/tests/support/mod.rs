//! Helpers the test bed's own integration tests share: acting as a mapped user through the
//! real authentication path, and reading the audit log.
#![allow(dead_code)]

use std::time::Duration;

use eks_testbed::moto::IssuedKeys;
use eks_testbed::TestBed;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams};

/// Appends `keys`' IAM user to `cluster`'s aws-auth mapUsers as `username` in group
/// `developers`.
pub async fn map_user(bed: &TestBed, cluster: &str, keys: &IssuedKeys, username: &str) {
    let api: Api<ConfigMap> = Api::namespaced(bed.admin_client(cluster).unwrap(), "kube-system");
    let current = api.get("aws-auth").await.unwrap();
    let mut map_users = current
        .data
        .and_then(|d| d.get("mapUsers").cloned())
        .unwrap_or_default();
    map_users.push_str(&format!(
        "- userarn: {}\n  username: {username}\n  groups:\n    - developers\n",
        keys.arn
    ));
    let patch = serde_json::json!({"data": {"mapUsers": map_users}});
    api.patch("aws-auth", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Lists pods in `default` with `token`; Ok(()) or the HTTP status code of the refusal.
pub async fn list_pods(bed: &TestBed, cluster: &str, token: &str) -> Result<(), u16> {
    let api: Api<Pod> = Api::namespaced(bed.client_with_token(cluster, token).unwrap(), "default");
    match api.list(&Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(other) => panic!("unexpected client error: {other}"),
    }
}

/// The audit events of `cluster` by `username` so far.
pub fn audit_events_of(bed: &TestBed, cluster: &str, username: &str) -> Vec<serde_json::Value> {
    bed.audit_events(cluster)
        .unwrap()
        .into_iter()
        .filter(|e| e["user"]["username"] == username)
        .collect()
}

/// Waits until `cluster`'s audit log holds more than `seen` events by `username`; returns
/// the latest.
pub async fn wait_for_audit_after(
    bed: &TestBed,
    cluster: &str,
    username: &str,
    seen: usize,
) -> serde_json::Value {
    for _ in 0..50 {
        let events = audit_events_of(bed, cluster, username);
        if events.len() > seen {
            return events.last().cloned().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new audit event for {username} in {cluster}");
}

/// Waits for a first audit event by `username` in `cluster`.
pub async fn wait_for_audit(bed: &TestBed, cluster: &str, username: &str) -> serde_json::Value {
    wait_for_audit_after(bed, cluster, username, 0).await
}

/// A token of `keys` for `cluster` signed `minutes_ago` minutes ago (still valid for 15).
///
/// kube-apiserver caches a successful token authentication for 10 seconds whatever the
/// webhook cache TTL (its built-in token success cache, as on EKS), so after revoking access
/// a test must present a token that differs from the one that was let in; tokens signed in
/// the same second are identical.
pub fn token_signed_ago(
    keys: &IssuedKeys,
    cluster: &str,
    region: &str,
    minutes_ago: u32,
) -> String {
    let offset = format!("-{minutes_ago}m");
    eks_testbed::awscli::get_token(keys, cluster, region, Some(&offset)).unwrap()
}
