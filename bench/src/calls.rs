//! API calls counted at the servers, never by the client: IAM at the counting proxy in front of
//! moto, DescribeCluster by the EKS emulator's counters, Kubernetes requests in each API
//! server's audit log (user `eks-iam-sync`, ConfigMap `kube-system/aws-auth`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::bed::{BenchBed, Membership};
use crate::latency::{cold_once, warm_once, Mode};
use crate::table::{Table, Target};

const SECTION: &str = "2 calls";

/// The product's Kubernetes user (the bed maps the function's role to it).
const PRODUCT_USER: &str = "eks-iam-sync";

/// Every operation the EKS emulator serves (and its name for requests that matched none).
const EKS_OPERATIONS: [&str; 11] = [
    "ListClusters",
    "DescribeCluster",
    "ListTagsForResource",
    "TagResource",
    "UntagResource",
    "CreateAccessEntry",
    "DescribeAccessEntry",
    "UpdateAccessEntry",
    "DeleteAccessEntry",
    "ListAccessEntries",
    "UnknownOperation",
];

/// The product's requests to one cluster's API server.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KubeCalls {
    pub get: usize,
    pub put: usize,
    /// Any other request (create, patch, list, discovery...).
    pub other: usize,
}

/// Everything counted in one window.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    pub iam: BTreeMap<String, u64>,
    /// EKS operations that were called, by name.
    pub eks: BTreeMap<String, u64>,
    pub kube: Vec<KubeCalls>,
}

impl Calls {
    pub fn iam_total(&self) -> u64 {
        self.iam.values().sum()
    }

    pub fn describe_cluster(&self) -> u64 {
        self.eks.get("DescribeCluster").copied().unwrap_or(0)
    }

    /// EKS calls other than DescribeCluster (discovery, tags, access entries).
    pub fn eks_other(&self) -> u64 {
        self.eks.values().sum::<u64>() - self.describe_cluster()
    }

    /// `IAM 2 (GetUser 1, ListGroupsForUser 1); EKS DescribeCluster 0; GET 1, PUT 1, ...`.
    pub fn detail(&self) -> String {
        let mut eks = self.eks.clone();
        eks.entry("DescribeCluster".into()).or_default();
        format!(
            "IAM {} ({}); EKS {}; {}",
            self.iam_total(),
            by_name(&self.iam),
            by_name(&eks),
            self.kube_detail()
        )
    }

    /// The largest count of each kind over the clusters (the floor is per cluster).
    pub fn worst_cluster(&self) -> KubeCalls {
        self.kube
            .iter()
            .fold(KubeCalls::default(), |a, c| KubeCalls {
                get: a.get.max(c.get),
                put: a.put.max(c.put),
                other: a.other.max(c.other),
            })
    }

    /// `GET 1, PUT 1, other 0 on each of 8 clusters`, or the spread when clusters differ.
    pub fn kube_detail(&self) -> String {
        let worst = self.worst_cluster();
        let all_same = self.kube.iter().all(|c| *c == worst);
        let n = self.kube.len();
        let base = format!(
            "GET {}, PUT {}, other {}",
            worst.get, worst.put, worst.other
        );
        if all_same {
            format!("{base} on each of {n} clusters")
        } else {
            let per: Vec<String> = self
                .kube
                .iter()
                .map(|c| format!("{}/{}/{}", c.get, c.put, c.other))
                .collect();
            format!(
                "at most {base} per cluster (GET/PUT/other: {})",
                per.join(" ")
            )
        }
    }
}

/// `GetUser 1, ListGroupsForUser 1`, or `none`.
fn by_name(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(a, n)| format!("{a} {n}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A counting window over some clusters: open it, make the calls, close it.
pub struct Window<'a> {
    bed: &'a BenchBed,
    clusters: Vec<String>,
    audit_marks: Vec<usize>,
}

impl<'a> Window<'a> {
    /// Resets the IAM and EKS counters and marks the end of each audit log.
    pub fn open(bed: &'a BenchBed, clusters: &[String]) -> anyhow::Result<Self> {
        bed.iam_calls.take();
        bed.bed.eks().reset_calls();
        let audit_marks = clusters
            .iter()
            .map(|c| Ok(bed.bed.audit_events(c)?.len()))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            bed,
            clusters: clusters.to_vec(),
            audit_marks,
        })
    }

    /// Everything counted since [`Window::open`].
    pub async fn close(self) -> anyhow::Result<Calls> {
        let kube = self.settled_kube_calls().await?;
        let eks = self.bed.bed.eks();
        Ok(Calls {
            iam: self.bed.iam_calls.take(),
            eks: EKS_OPERATIONS
                .iter()
                .map(|op| (op.to_string(), eks.calls(op)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            kube,
        })
    }

    /// The API server logs a request's `ResponseComplete` stage once the response is on its
    /// way, so the client can be faster than the log: read until two reads agree.
    async fn settled_kube_calls(&self) -> anyhow::Result<Vec<KubeCalls>> {
        let mut last = self.kube_calls()?;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.kube_calls()?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }

    fn kube_calls(&self) -> anyhow::Result<Vec<KubeCalls>> {
        self.clusters
            .iter()
            .zip(&self.audit_marks)
            .map(|(cluster, &mark)| {
                let events = self.bed.bed.audit_events(cluster)?;
                Ok(count(events.get(mark..).unwrap_or_default()))
            })
            .collect()
    }
}

/// Section 2: one changing and one no-op event, warm and cold, on the first `clusters` clusters.
pub async fn measure(
    bed: &BenchBed,
    membership: &mut Membership,
    clusters: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    let names = bed.clusters(clusters);
    let config = bed.config(clusters, &[]);
    let env = bed.product_env(&config);
    let app = bed.app(&config)?;
    warm_once(&app, &membership.event()).await?;
    for (mode, changing) in [
        (Mode::Warm, true),
        (Mode::Warm, false),
        (Mode::Cold, true),
        (Mode::Cold, false),
    ] {
        let event = if changing {
            membership.flip(bed).await?
        } else {
            membership.event()
        };
        let window = Window::open(bed, &names)?;
        let handled = match mode {
            Mode::Warm => warm_once(&app, &event).await?,
            Mode::Cold => cold_once(bed, &env, &event).await?,
        };
        let calls = window.close().await?;
        let expected_puts = usize::from(changing);
        anyhow::ensure!(
            handled.updated == clusters * expected_puts,
            "the event updated {} of {clusters} clusters: {}",
            handled.updated,
            handled.report
        );
        let kind = if changing { "changing" } else { "no-op" };
        floor_row(table, mode, kind, clusters, expected_puts, &calls);
    }
    Ok(())
}

/// One row: the calls of one event against the floor (IAM ≤ 2 for a no-op event, ≤ 4 for a
/// changing one, whose writes are checked by re-reading the user's IAM state once; per cluster
/// 1 GET, the PUT only when something changed, nothing else; DescribeCluster 0 warm, at most 1
/// per cluster cold).
fn floor_row(
    table: &mut Table,
    mode: Mode,
    kind: &str,
    clusters: usize,
    puts: usize,
    calls: &Calls,
) {
    let worst = calls.worst_cluster();
    let (describe_floor, describe_goal) = match mode {
        Mode::Warm => (0, "0".to_string()),
        Mode::Cold => (clusters as u64, format!("≤ {clusters}")),
    };
    let put_goal = if puts == 0 { "0" } else { "≤ 1" };
    // GetUser + ListGroupsForUser, and once more after a write (the re-read of issue 8).
    let iam_floor = if puts == 0 { 2 } else { 4 };
    let met = calls.iam_total() <= iam_floor
        && calls.describe_cluster() <= describe_floor
        && calls.eks_other() == 0
        && calls.kube.len() == clusters
        && worst.get == 1
        && worst.put <= puts
        && worst.other == 0;
    let goal = format!(
        "IAM ≤ {iam_floor}; EKS DescribeCluster {describe_goal}, nothing else; per cluster GET 1, PUT {put_goal}, other 0"
    );
    table.check(
        SECTION,
        format!(
            "calls per {kind} event, {}, {clusters} clusters",
            mode.label()
        ),
        calls.detail(),
        Target::new(goal, met),
    );
}

/// The product's completed requests in a slice of audit events.
fn count(events: &[Value]) -> KubeCalls {
    let mut calls = KubeCalls::default();
    let product = events
        .iter()
        .filter(|e| e["user"]["username"] == PRODUCT_USER && e["stage"] == "ResponseComplete");
    for event in product {
        let on_aws_auth = event["objectRef"]["resource"] == "configmaps"
            && event["objectRef"]["namespace"] == "kube-system"
            && event["objectRef"]["name"] == "aws-auth";
        match (on_aws_auth, event["verb"].as_str()) {
            (true, Some("get")) => calls.get += 1,
            (true, Some("update")) => calls.put += 1,
            _ => calls.other += 1,
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn audit(user: &str, verb: &str, name: &str, stage: &str) -> Value {
        json!({"user": {"username": user}, "verb": verb, "stage": stage,
               "objectRef": {"resource": "configmaps", "namespace": "kube-system", "name": name}})
    }

    #[test]
    fn counts_only_the_products_completed_requests() {
        let events = [
            audit(PRODUCT_USER, "get", "aws-auth", "ResponseComplete"),
            audit(PRODUCT_USER, "update", "aws-auth", "ResponseComplete"),
            audit(PRODUCT_USER, "get", "aws-auth", "ResponseStarted"),
            audit("eks-testbed-admin", "get", "aws-auth", "ResponseComplete"),
            audit(PRODUCT_USER, "get", "other", "ResponseComplete"),
        ];
        assert_eq!(
            count(&events),
            KubeCalls {
                get: 1,
                put: 1,
                other: 1
            }
        );
    }

    #[test]
    fn detail_shows_the_spread_when_clusters_differ() {
        let one = KubeCalls {
            get: 1,
            put: 1,
            other: 0,
        };
        let calls = Calls {
            kube: vec![one, one],
            ..Calls::default()
        };
        assert_eq!(
            calls.kube_detail(),
            "GET 1, PUT 1, other 0 on each of 2 clusters"
        );
        let calls = Calls {
            kube: vec![one, KubeCalls { get: 2, ..one }],
            ..Calls::default()
        };
        assert!(calls.kube_detail().starts_with("at most GET 2"));
    }
}
