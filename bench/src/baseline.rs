//! The baseline a user would otherwise script (`baseline.sh`): per cluster, `aws eks get-token`
//! and kubectl get / edit (jq) / replace of aws-auth, on the same bed and for the same change
//! (one user's entry added everywhere); the clusters one after another, and, as a careful user
//! would, all at once (`xargs -P`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bed::BenchBed;
use crate::latency::Latencies;
use crate::stats::{ratio, Samples};
use crate::table::{Table, Target};

const SECTION: &str = "5 baseline";
const SCRIPT: &str = include_str!("baseline.sh");

/// The programs the script needs, or why it cannot run here.
fn missing_tools() -> Option<String> {
    let aws = eks_testbed::paths::venv_bin("aws");
    if !aws.exists() {
        return Some(format!(
            "{} not found (scripts/testbed-setup)",
            aws.display()
        ));
    }
    ["kubectl", "jq", "bash"]
        .into_iter()
        .find(|tool| which(tool).is_none())
        .map(|tool| format!("{tool} is not on PATH"))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// One run of the script over the first `clusters` clusters, adding `user`'s entry; with
/// `parallel`, every cluster at once.
async fn run_once(
    bed: &BenchBed,
    clusters: usize,
    user: &str,
    parallel: bool,
) -> anyhow::Result<Duration> {
    let work = bed.work_dir().join("baseline");
    std::fs::create_dir_all(&work)?;
    let list = work.join("clusters");
    let lines: Vec<String> = bed.bed.description().clusters[..clusters]
        .iter()
        .map(|c| format!("{} {} {}\n", c.name, c.endpoint, c.ca_file.display()))
        .collect();
    std::fs::write(&list, lines.concat())?;
    let description = bed.bed.description();
    let mut env: BTreeMap<String, String> = bed.sync_keys().env().into_iter().collect();
    env.insert(
        "PATH".into(),
        crate::child::path_with_venv()
            .to_string_lossy()
            .into_owned(),
    );
    env.insert("CLUSTERS".into(), list.display().to_string());
    env.insert("REGION".into(), description.region.clone());
    env.insert("WORK".into(), work.display().to_string());
    if parallel {
        env.insert("PARALLEL".into(), clusters.to_string());
    }
    env.insert(
        "ENTRY".into(),
        format!(
            "- userarn: arn:aws:iam::{}:user/{user}\n  username: {user}\n  groups:\n    - developers\n",
            description.account_id
        ),
    );
    let mut command = crate::child::command(std::path::Path::new("bash"), &work, &env);
    command.arg("-c").arg(SCRIPT);
    let started = Instant::now();
    let output = command.output().await?;
    let took = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "the baseline script failed ({}): {}",
        output.status,
        crate::tail(&String::from_utf8_lossy(&output.stderr), 10)
    );
    Ok(took)
}

/// Section 5: `runs` timed runs (after one untimed run that fills kubectl's discovery cache,
/// as a user's would be), compared with our latency on the same clusters.
pub async fn measure(
    bed: &BenchBed,
    clusters: usize,
    runs: usize,
    ours: &Latencies,
    table: &mut Table,
) -> anyhow::Result<()> {
    if let Some(reason) = missing_tools() {
        table.info(
            SECTION,
            "aws eks get-token + kubectl per cluster",
            format!("not run: {reason}"),
        );
        return Ok(());
    }
    if runs > 1 {
        run_once(bed, clusters, "baseline-warmup", false).await?;
    }
    let (Some(warm), Some(cold)) = (ours.warm(clusters), ours.cold(clusters)) else {
        return Ok(());
    };
    for (parallel, how) in [
        (false, "in sequence".to_string()),
        (true, format!("in parallel (xargs -P {clusters})")),
    ] {
        let mut samples = Vec::with_capacity(runs);
        for i in 1..=runs {
            let user = format!("baseline-{}-{i}", if parallel { "p" } else { "s" });
            samples.push(run_once(bed, clusters, &user, parallel).await?);
        }
        let baseline = Samples::new(samples);
        table.info(
            SECTION,
            format!("aws eks get-token + kubectl get/edit/replace, {clusters} clusters {how}"),
            baseline.describe("runs"),
        );
        let cold_speedup = ratio(baseline.median(), cold.median());
        let cold_label =
            format!("baseline {how} / ours, cold process, {clusters} clusters (medians)");
        if parallel {
            table.info(SECTION, cold_label, format!("{cold_speedup:.1}× faster"));
        } else {
            table.check(
                SECTION,
                cold_label,
                format!("{cold_speedup:.1}× faster"),
                Target::new("≥ 20×", cold_speedup >= 20.0),
            );
        }
        table.info(
            SECTION,
            format!("baseline {how} / ours, warm, {clusters} clusters (medians)"),
            format!("{:.1}× faster", ratio(baseline.median(), warm.median())),
        );
    }
    Ok(())
}
