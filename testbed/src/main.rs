//! `eks-testbed up --clusters N` (or `--cluster SPEC`...): start the local EKS test bed, print
//! its JSON description, and keep it up until interrupted.

use clap::{Parser, Subcommand};
use eks_testbed::{ClusterOptions, FleetOptions, TestBed, TestBedOptions};

#[derive(Parser)]
#[command(name = "eks-testbed", about = "Local EKS test bed for eks-iam-sync")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start the test bed, print its description as JSON and wait for Ctrl-C / SIGTERM.
    Up {
        /// Number of simulated EKS clusters.
        #[arg(long, default_value_t = 2)]
        clusters: usize,
        /// Cluster name prefix: clusters are PREFIX-1, PREFIX-2, ...
        #[arg(long, default_value = "dev")]
        prefix: String,
        /// One cluster, instead of --clusters/--prefix (repeatable):
        /// NAME[,region=REGION][,account=ACCOUNT][,mode=CONFIG_MAP|API_AND_CONFIG_MAP|API][,tag=KEY=VALUE]...[,unlisted]
        #[arg(long = "cluster", value_name = "SPEC")]
        cluster_specs: Vec<ClusterOptions>,
        /// Also write the description to this file (handy for scripts).
        #[arg(long)]
        description_file: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Commands::Up {
            clusters,
            prefix,
            cluster_specs,
            description_file,
        } => {
            let fleet = if cluster_specs.is_empty() {
                FleetOptions::from(TestBedOptions {
                    clusters,
                    name_prefix: prefix,
                })
            } else {
                FleetOptions {
                    clusters: cluster_specs,
                }
            };
            let bed = TestBed::start(fleet).await?;
            let json = serde_json::to_string_pretty(bed.description())?;
            if let Some(path) = description_file {
                std::fs::write(&path, &json)?;
            }
            println!("{json}");
            eprintln!("test bed is up; press Ctrl-C to stop it");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("stopping the test bed");
            drop(bed);
            Ok(())
        }
    }
}
