//! Full reconcile at scale: many users in many mapped IAM groups, created through moto's IAM API
//! as an account would have them, then two reconciles (the first writes every entry, the second
//! finds nothing to do) and the size of the aws-auth they leave against the 1 MiB limit. Section
//! 3 on the reference fleet; section 6 on as many clusters as the machine holds, with the users
//! of a large organisation.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

use crate::bed::BenchBed;
use crate::calls::Window;
use crate::latency::{plural, warm_once};
use crate::table::{bytes, ms, Table, Target};

const SECTION: &str = "3 scale";
const FLEET_SECTION: &str = "6 fleet";
/// Kubernetes refuses a ConfigMap whose data (keys and values) exceeds 1 MiB.
const CONFIG_MAP_LIMIT: u64 = 1024 * 1024;
/// IAM calls in flight while seeding; moto serves each on a thread.
const SEED_CONCURRENCY: usize = 16;

/// The shape of the account: `users` users spread over `groups` groups.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub users: usize,
    pub groups: usize,
    pub clusters: usize,
}

impl Scale {
    fn group(&self, index: usize) -> String {
        format!("eks-team-{index:02}")
    }

    fn user(index: usize) -> String {
        format!("bench-user-{index:04}")
    }

    /// IAM group -> Kubernetes group, one each.
    fn mapping(&self) -> Vec<(String, String)> {
        (0..self.groups)
            .map(|g| (self.group(g), format!("team-{g:02}")))
            .collect()
    }
}

/// Creates the groups (unless `from` > 0: an earlier section made them), then users `from..`
/// and their memberships, `SEED_CONCURRENCY` at a time.
async fn seed(bed: &BenchBed, scale: Scale, from: usize) -> anyhow::Result<()> {
    let iam = bed.bed.seeder().iam;
    if from == 0 {
        for g in 0..scale.groups {
            iam.create_group().group_name(scale.group(g)).send().await?;
        }
    }
    futures::stream::iter(from..scale.users)
        .map(|i| {
            let iam = iam.clone();
            let (user, group) = (Scale::user(i), scale.group(i % scale.groups));
            async move {
                iam.create_user().user_name(&user).send().await?;
                iam.add_user_to_group()
                    .user_name(&user)
                    .group_name(&group)
                    .send()
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Section 3: `scale` on the reference fleet, with its users seeded from none.
pub async fn measure(bed: &BenchBed, scale: Scale, table: &mut Table) -> anyhow::Result<()> {
    run(bed, scale, 0, SECTION, table).await
}

/// Section 6: the fleet-scale row, after section 3 seeded `seeded` of the users.
pub async fn fleet(
    bed: &BenchBed,
    scale: Scale,
    seeded: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    run(bed, scale, seeded, FLEET_SECTION, table).await
}

async fn run(
    bed: &BenchBed,
    scale: Scale,
    seeded: usize,
    section: &'static str,
    table: &mut Table,
) -> anyhow::Result<()> {
    let started = Instant::now();
    seed(bed, scale, seeded.min(scale.users)).await?;
    table.info(
        section,
        format!(
            "seeding {} users into {} groups through moto's IAM API (not the product)",
            scale.users.saturating_sub(seeded),
            scale.groups
        ),
        ms(started.elapsed()),
    );
    let config = bed.config(scale.clusters, &scale.mapping());
    let app = bed.app(&config)?;
    let names = bed.clusters(scale.clusters);
    let reconcile = json!({"action": "reconcile", "dryRun": false});
    for (run, expect_writes) in [
        ("first (fresh App, writes all)", true),
        ("second (same App, no-op)", false),
    ] {
        let window = Window::open(bed, &names)?;
        let handled = warm_once(&app, &reconcile).await?;
        let calls = window.close().await?;
        let expected = if expect_writes { scale.clusters } else { 0 };
        anyhow::ensure!(
            handled.updated == expected,
            "the {run} reconcile updated {} clusters, not {expected}",
            handled.updated
        );
        let added: Vec<u64> = handled.report["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["added"].as_u64().unwrap_or(0))
            .collect();
        table.info(
            section,
            format!(
                "full reconcile {run}, {} users, {} cluster{}",
                scale.users,
                scale.clusters,
                plural(scale.clusters)
            ),
            format!(
                "{}; entries added per cluster: {}",
                handled.phases(),
                added.iter().max().copied().unwrap_or(0)
            ),
        );
        table.info(
            section,
            format!("calls of the {run} reconcile"),
            calls.detail(),
        );
    }
    size(bed, &names[0], section, table).await
}

/// The aws-auth a reconcile left, against the limit the API server enforces.
async fn size(
    bed: &BenchBed,
    cluster: &str,
    section: &'static str,
    table: &mut Table,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(bed.bed.admin_client(cluster)?, "kube-system");
    let config_map = api.get("aws-auth").await?;
    let data = config_map.data.unwrap_or_default();
    let data_bytes: u64 = data.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let map_users = data.get("mapUsers").map(String::as_str).unwrap_or("");
    let entries: Vec<serde_json::Value> = serde_yaml_ng::from_str(map_users).unwrap_or_default();
    let per_entry = map_users.len() as u64 / (entries.len() as u64).max(1);
    let room = CONFIG_MAP_LIMIT.saturating_sub(data_bytes - map_users.len() as u64);
    // The reference fleet's organisation should leave room to grow; the large one must fit.
    let target = if section == SECTION {
        Target::new(
            "well under 1 MiB (< 50%)",
            data_bytes * 2 < CONFIG_MAP_LIMIT,
        )
    } else {
        Target::new("fits in 1 MiB", data_bytes < CONFIG_MAP_LIMIT)
    };
    table.check(
        section,
        format!("aws-auth data with {} mapUsers entries", entries.len()),
        format!(
            "{} = {:.1}% of 1 MiB",
            bytes(data_bytes),
            data_bytes as f64 * 100.0 / CONFIG_MAP_LIMIT as f64
        ),
        target,
    );
    table.info(
        section,
        "bytes per mapUsers entry → entries that fit in 1 MiB",
        format!("{per_entry} B → about {}", room / per_entry.max(1)),
    );
    Ok(())
}
