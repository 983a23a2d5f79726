//! A user's access on every cluster of a bed, judged as EKS judges it: the store the cluster's
//! authentication mode reads (aws-auth or access entries) and a real AWS CLI token.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use eks_testbed::bed::ClusterInfo;
use eks_testbed::moto::IssuedKeys;
use eks_testbed::TestBed;

/// A guard so that an interleaving that never comes fails the test instead of hanging it.
pub const GUARD: Duration = Duration::from_secs(120);

/// A deadline for one run, far enough that a healthy run never meets it.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Awaits `future`, failing the test with `what` if it takes longer than [`GUARD`].
pub async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {GUARD:?}"))
}

/// Whether the store `cluster`'s mode reads holds an entry for `arn`.
pub async fn has_entry(bed: &TestBed, cluster: &ClusterInfo, arn: &str) -> bool {
    let access_entry = || {
        bed.eks()
            .access_entry_for(&cluster.account_id, &cluster.region, &cluster.name, arn)
            .is_some()
    };
    match cluster.authentication_mode.as_str() {
        "API" => access_entry(),
        "API_AND_CONFIG_MAP" => {
            access_entry() || super::entry(bed, &cluster.name, arn).await.is_some()
        }
        _ => super::entry(bed, &cluster.name, arn).await.is_some(),
    }
}

/// Lists pods as `user` with a token signed `clock_offset` ago (a faketime spec), or now.
pub async fn as_user(
    bed: &TestBed,
    cluster: &ClusterInfo,
    user: &IssuedKeys,
    clock_offset: Option<&str>,
) -> Result<(), u16> {
    let token =
        eks_testbed::awscli::get_token(user, &cluster.name, &cluster.region, clock_offset).unwrap();
    super::list_pods(bed, &cluster.name, &token).await
}

/// Fails unless `user` has an entry and working access on every cluster of `clusters`.
pub async fn assert_granted_on(bed: &TestBed, clusters: &[&str], user: &IssuedKeys) {
    let mut wrong = Vec::new();
    for name in clusters {
        let cluster = bed.cluster(name).unwrap();
        if !has_entry(bed, cluster, &user.arn).await {
            wrong.push(format!("{name}: no entry for {}", user.arn));
        } else if let Err(code) = as_user(bed, cluster, user, None).await {
            wrong.push(format!("{name}: entry present but the token got {code}"));
        }
    }
    assert!(wrong.is_empty(), "access missing: {wrong:#?}");
}

/// [`assert_granted_on`] every cluster of the bed.
pub async fn assert_granted_everywhere(bed: &TestBed, user: &IssuedKeys) {
    let names = bed.cluster_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_granted_on(bed, &names, user).await;
}

/// Fails unless `user` has no entry on any cluster and a fresh token is refused (401). The
/// token is signed two minutes ago: the API server caches a successful authentication of a
/// token for 10 s, and a token signed in the same second as one let in earlier is that token.
pub async fn assert_revoked_everywhere(bed: &TestBed, user: &IssuedKeys) {
    let mut wrong = Vec::new();
    for cluster in &bed.description().clusters {
        if has_entry(bed, cluster, &user.arn).await {
            wrong.push(format!(
                "{} ({}): still has an entry for {}",
                cluster.name, cluster.authentication_mode, user.arn
            ));
        }
        match as_user(bed, cluster, user, Some("-2m")).await {
            Err(401) => {}
            other => wrong.push(format!(
                "{} ({}): a fresh token got {other:?}, not 401",
                cluster.name, cluster.authentication_mode
            )),
        }
    }
    assert!(wrong.is_empty(), "access not revoked: {wrong:#?}");
}
