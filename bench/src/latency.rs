//! Handler latency: one IAM event, from handler start until every cluster's aws-auth is written.
//!
//! Warm is one [`App`] reused in process, as a warm Lambda reuses it: DescribeCluster answers are
//! cached, the SDK clients and their connections live on. Cold is a fresh `eks-iam-sync handle`
//! process per event: process start, configuration, credentials, DescribeCluster and a new TLS
//! connection to every cluster. Membership is flipped in IAM before every event (add, remove,
//! add...), so each event changes every cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::sync::App;
use serde_json::Value;

use crate::bed::{BenchBed, Membership};
use crate::cpu;
use crate::stats::{ratio, Samples};
use crate::table::{ms, Table, Target};

const SECTION: &str = "1 latency";

/// What one handled event did.
#[derive(Debug, Clone)]
pub struct Handled {
    pub took: Duration,
    /// The slowest cluster's own time (describe, connect, read, write); the clusters run
    /// concurrently after IAM was read, so `took` minus this is the IAM phase.
    pub slowest_cluster: Duration,
    /// Clusters whose aws-auth was written.
    pub updated: usize,
    pub report: Value,
}

/// Handles `event` on a warm `app`.
pub async fn warm_once(app: &App, event: &Value) -> anyhow::Result<Handled> {
    let started = Instant::now();
    let outcome = handle(app, event).await;
    let took = started.elapsed();
    let report = match outcome {
        Ok(report) => report,
        Err(HandleError::ClustersFailed(report)) => {
            anyhow::bail!("a cluster failed: {}", serde_json::to_string(&report)?)
        }
        Err(e) => anyhow::bail!("the handler failed: {e}"),
    };
    handled(took, serde_json::to_value(report)?)
}

/// Handles `event` in a fresh `eks-iam-sync handle` process with `env`.
pub async fn cold_once(
    bed: &BenchBed,
    env: &BTreeMap<String, String>,
    event: &Value,
) -> anyhow::Result<Handled> {
    let file = bed.work_dir().join("event.json");
    std::fs::write(&file, event.to_string())?;
    let mut command = crate::child::command(bed.product(), bed.work_dir(), env);
    command.arg("handle").arg(&file);
    let started = Instant::now();
    let output = command.output().await?;
    let took = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "eks-iam-sync handle failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        crate::tail(&String::from_utf8_lossy(&output.stderr), 10)
    );
    handled(took, serde_json::from_slice(&output.stdout)?)
}

fn handled(took: Duration, report: Value) -> anyhow::Result<Handled> {
    let clusters = report["clusters"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("a report without clusters: {report}"))?;
    let updated = clusters
        .iter()
        .filter(|c| c["outcome"] == "updated")
        .count();
    let slowest = clusters
        .iter()
        .filter_map(|c| c["durationMs"].as_u64())
        .max()
        .unwrap_or(0);
    Ok(Handled {
        took,
        slowest_cluster: Duration::from_millis(slowest),
        updated,
        report,
    })
}

impl Handled {
    /// `790.2 ms (IAM 300.1 ms, then clusters 490.1 ms)`.
    pub fn phases(&self) -> String {
        format!(
            "{} (IAM {}, then clusters {})",
            ms(self.took),
            ms(self.took.saturating_sub(self.slowest_cluster)),
            ms(self.slowest_cluster)
        )
    }
}

/// Warm or cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Warm,
    Cold,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Warm => "warm",
            Mode::Cold => "cold",
        }
    }
}

/// A latency series and what it cost in CPU time, on average per event.
#[derive(Debug)]
pub struct Series {
    pub samples: Samples,
    /// The slowest cluster's time per event (see [`Handled::slowest_cluster`]).
    pub clusters: Samples,
    pub product_cpu: Duration,
    pub bed_cpu: Duration,
}

impl Series {
    fn describe(&self) -> String {
        format!(
            "{}; slowest cluster median {}; CPU per event: product {}, test bed {}",
            self.samples.describe("events"),
            ms(self.clusters.median()),
            ms(self.product_cpu),
            ms(self.bed_cpu)
        )
    }
}

/// The product's CPU time so far: in process (warm) or in the processes waited for (cold).
fn product_cpu(mode: Mode) -> Duration {
    match mode {
        Mode::Warm => cpu::product(),
        Mode::Cold => cpu::waited_children(),
    }
}

/// `events` changing events on the first `clusters` clusters, after a few untimed ones that
/// bring the clusters to IAM's state and warm the caches on both sides (the App's, the page
/// cache for the binary, the API servers').
pub async fn series(
    bed: &BenchBed,
    membership: &mut Membership,
    mode: Mode,
    clusters: usize,
    events: usize,
) -> anyhow::Result<Series> {
    let config = bed.config(clusters, &[]);
    let env = bed.product_env(&config);
    let app = bed.app(&config)?;
    warm_once(&app, &membership.event()).await?;
    let warmup = (events / 5).max(1);
    let pids = bed.bed.pids();
    let (mut samples, mut slowest) = (Vec::new(), Vec::new());
    let (mut product, mut bed_cpu) = (Duration::ZERO, Duration::ZERO);
    for i in 0..warmup + events {
        let event = membership.flip(bed).await?;
        let (product_before, bed_before) = (product_cpu(mode), cpu::bed(&pids));
        let handled = match mode {
            Mode::Warm => warm_once(&app, &event).await?,
            Mode::Cold => cold_once(bed, &env, &event).await?,
        };
        anyhow::ensure!(
            handled.updated == clusters,
            "a changing event updated {} of {clusters} clusters: {}",
            handled.updated,
            handled.report
        );
        if i >= warmup {
            samples.push(handled.took);
            slowest.push(handled.slowest_cluster);
            product += product_cpu(mode).saturating_sub(product_before);
            bed_cpu += cpu::bed(&pids).saturating_sub(bed_before);
        }
    }
    let n = u32::try_from(events).unwrap_or(u32::MAX);
    Ok(Series {
        samples: Samples::new(samples),
        clusters: Samples::new(slowest),
        product_cpu: product / n,
        bed_cpu: bed_cpu / n,
    })
}

/// Median latencies per (mode, cluster count), for the baseline's comparison.
#[derive(Debug, Default)]
pub struct Latencies(BTreeMap<(&'static str, usize), Series>);

impl Latencies {
    pub fn warm(&self, clusters: usize) -> Option<&Samples> {
        self.0
            .get(&(Mode::Warm.label(), clusters))
            .map(|s| &s.samples)
    }

    pub fn cold(&self, clusters: usize) -> Option<&Samples> {
        self.0
            .get(&(Mode::Cold.label(), clusters))
            .map(|s| &s.samples)
    }
}

/// Section 1: every cluster count, warm and cold, then the ratios to one cluster.
pub async fn measure(
    bed: &BenchBed,
    membership: &mut Membership,
    counts: &BTreeSet<usize>,
    events: usize,
    reference: usize,
    table: &mut Table,
) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies::default();
    for &n in counts {
        for mode in [Mode::Warm, Mode::Cold] {
            let series = series(bed, membership, mode, n, events).await?;
            table.info(
                SECTION,
                format!("{}, {n} cluster{}", mode.label(), plural(n)),
                series.describe(),
            );
            latencies.0.insert((mode.label(), n), series);
        }
    }
    ratios(&latencies, counts, reference, table);
    Ok(latencies)
}

/// Each count against one cluster; the target holds for `reference` clusters (8).
fn ratios(latencies: &Latencies, counts: &BTreeSet<usize>, reference: usize, table: &mut Table) {
    let Some(one) = latencies.warm(1) else {
        return;
    };
    for &n in counts.iter().filter(|&&n| n > 1) {
        let (Some(warm), Some(cold), Some(cold_one)) =
            (latencies.warm(n), latencies.cold(n), latencies.cold(1))
        else {
            continue;
        };
        let warm_ratio = ratio(warm.median(), one.median());
        let what = format!("median {n} clusters / 1 cluster, warm");
        let value = format!("{warm_ratio:.2}×");
        if n == reference {
            table.check(
                SECTION,
                what,
                value,
                Target::new("≤ 1.3×", warm_ratio <= 1.3),
            );
        } else {
            table.info(SECTION, what, value);
        }
        table.info(
            SECTION,
            format!("median {n} clusters / 1 cluster, cold"),
            format!("{:.2}×", ratio(cold.median(), cold_one.median())),
        );
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
