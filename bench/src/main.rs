//! `eks-bench`: starts a local EKS test bed, measures eks-iam-sync on it and prints a Markdown
//! table (the numbers behind the README's Performance section, issue 5).
//!
//! The bed's servers (webhook, EKS emulator, IAM proxy) run on a runtime of their own and the
//! product on another, as EKS and a Lambda are separate machines: the product's timings then do
//! not include the bed's scheduling. Targets are reported, never asserted: the exit code is
//! non-zero only when the bench itself breaks.

mod artifact;
mod baseline;
mod bed;
mod calls;
mod child;
mod cpu;
mod latency;
mod proxy;
mod runtime_api;
mod scale;
mod stats;
mod table;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::bed::{BenchBed, Membership};
use crate::table::{ms, Table};

/// Benchmarks eks-iam-sync on the local EKS test bed and prints a Markdown table.
#[derive(Parser, Debug)]
#[command(name = "eks-bench")]
struct Args {
    /// CI sizes: 1 and 2 clusters, 3 events, 50 users, one baseline run, no arm64 build.
    #[arg(long)]
    quick: bool,
    /// Cluster counts of the latency series, e.g. 1,3,8,16; the bed gets the largest, the
    /// other sections run on 8 (or the largest when 8 is not among them).
    #[arg(long, value_delimiter = ',')]
    clusters: Option<Vec<usize>>,
    /// Events per latency series.
    #[arg(long)]
    events: Option<usize>,
    /// IAM users of the full reconcile.
    #[arg(long)]
    users: Option<usize>,
    /// Clusters of the fleet-scale row [default: 24; --quick: the largest latency count];
    /// 0 skips it.
    #[arg(long)]
    fleet_clusters: Option<usize>,
    /// IAM users of the fleet-scale row [default: 5000; --quick: 60].
    #[arg(long)]
    fleet_users: Option<usize>,
    /// Milliseconds the IAM proxy holds each call, as IAM in AWS takes (moto answers in one or
    /// two); 0 measures moto as it is.
    #[arg(long, default_value_t = 0)]
    iam_latency_ms: u64,
    /// The release binary eks-iam-sync [default: next to this binary].
    #[arg(long)]
    product: Option<PathBuf>,
    /// The repository root, where `cargo lambda build` runs.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Also write the table (with the machine it ran on) to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Skip the arm64 cross build.
    #[arg(long)]
    no_arm64: bool,
    /// Append the product's and the bed's JSON log lines to this file (else they are dropped).
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Sizes of one run, from `--quick` or the full defaults, then the explicit flags.
#[derive(Debug)]
struct Plan {
    counts: BTreeSet<usize>,
    events: usize,
    scale: scale::Scale,
    /// The fleet-scale row, unless skipped.
    fleet: Option<scale::Scale>,
    cold_starts: usize,
    baseline_runs: usize,
    arm64: bool,
}

impl Plan {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let quick = args.quick;
        let counts: BTreeSet<usize> = match &args.clusters {
            Some(counts) => counts.iter().copied().collect(),
            None if quick => [1, 2].into(),
            None => [1, 3, 8, 16].into(),
        };
        anyhow::ensure!(
            counts.contains(&1) && !counts.contains(&0),
            "--clusters must include 1 (the ratios are to one cluster) and no 0"
        );
        let reference = if counts.contains(&8) {
            8
        } else {
            counts.last().copied().unwrap_or(1)
        };
        let users = args.users.unwrap_or(if quick { 50 } else { 1000 });
        let fleet_clusters = args.fleet_clusters.unwrap_or(if quick {
            counts.last().copied().unwrap_or(1)
        } else {
            24
        });
        let fleet_users = args.fleet_users.unwrap_or(if quick { 60 } else { 5000 });
        anyhow::ensure!(
            fleet_clusters == 0 || fleet_users >= users,
            "--fleet-users ({fleet_users}) must be at least --users ({users}): the fleet row adds users to those of section 3"
        );
        Ok(Self {
            events: args.events.unwrap_or(if quick { 3 } else { 20 }).max(1),
            scale: scale::Scale {
                users,
                groups: 10,
                clusters: reference,
            },
            fleet: (fleet_clusters > 0).then_some(scale::Scale {
                users: fleet_users,
                groups: 10,
                clusters: fleet_clusters,
            }),
            cold_starts: if quick { 3 } else { 10 },
            baseline_runs: if quick { 1 } else { 3 },
            arm64: !quick && !args.no_arm64,
            counts,
        })
    }

    /// The bed holds the largest count of the latency series, or the fleet row's.
    fn max_clusters(&self) -> usize {
        let latency = self.counts.last().copied().unwrap_or(1);
        latency.max(self.fleet.map_or(0, |f| f.clusters))
    }

    /// The fleet every other section runs on: 8 clusters as the issue says, or the largest
    /// count when 8 is not in the run (`--quick`).
    fn reference_clusters(&self) -> usize {
        self.scale.clusters
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(args.log.as_deref()) {
        eprintln!("bench: cannot open the log: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok((machine, table)) => {
            println!("{machine}\n{}", table.markdown());
            println!("{}", table.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("bench: broken: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The product logs as it does in Lambda (JSON lines, same filter), so that cost is measured too.
fn init_logging(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into());
    let writer = match path {
        Some(path) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink),
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(writer)
        .with_env_filter(filter)
        .init();
    Ok(())
}

fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
}

/// The machine line and the table.
fn run(args: &Args) -> anyhow::Result<(String, Table)> {
    let plan = Plan::new(args)?;
    let machine = machine();
    let product = match &args.product {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("eks-iam-sync"),
    };
    let servers = runtime(cpu::BED_THREADS)?;
    let bench = runtime(cpu::PRODUCT_THREADS)?;
    let started = Instant::now();
    let iam_latency = std::time::Duration::from_millis(args.iam_latency_ms);
    let bed = servers.block_on(BenchBed::start(plan.max_clusters(), product, iam_latency))?;
    let mut table = Table::default();
    table.info(
        "0 setup",
        format!("test bed start, {} clusters", plan.max_clusters()),
        ms(started.elapsed()),
    );
    table.info(
        "0 setup",
        "latency the IAM proxy adds to every IAM call",
        format!("{} ms", args.iam_latency_ms),
    );
    let measured = bench.block_on(measure(&bed, &plan, args, &mut table));
    drop(bed);
    measured?;
    if let Some(path) = &args.markdown {
        std::fs::write(path, format!("{machine}\n{}", table.markdown()))?;
    }
    eprintln!("[bench] done in {}", ms(started.elapsed()));
    Ok((machine, table))
}

/// Every section, in an order where none disturbs the next: the scale run leaves a large
/// aws-auth behind, and the cross build would compete for the CPU.
async fn measure(
    bed: &BenchBed,
    plan: &Plan,
    args: &Args,
    table: &mut Table,
) -> anyhow::Result<()> {
    let fleet = plan.reference_clusters();
    let mut membership = Membership::new();
    let latencies = latency::measure(
        bed,
        &mut membership,
        &plan.counts,
        plan.events,
        fleet,
        table,
    )
    .await?;
    calls::measure(bed, &mut membership, fleet, table).await?;
    runtime_api::measure(bed, &mut membership, fleet, plan.cold_starts, table).await?;
    baseline::measure(bed, fleet, plan.baseline_runs, &latencies, table).await?;
    scale::measure(bed, plan.scale, table).await?;
    if let Some(fleet) = plan.fleet {
        scale::fleet(bed, fleet, plan.scale.users, table).await?;
    }
    artifact::measure(&args.repo, bed.product(), plan.arm64, table).await;
    Ok(())
}

/// `nproc`, memory and CPU model, for the table's heading.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    // Others may share the machine and their load shows in the timings, so the table says
    // what it was when the bench started (before its own load).
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "Machine: {cpus} CPUs (nproc), {:.1} GiB memory, {model}; load average before the run \
         (1, 5, 15 min): {}.\n",
        memory_kb as f64 / 1024.0 / 1024.0,
        load.join(", ")
    )
}

/// The last `lines` lines of `text`, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
