//! The test bed as the bench sees it: the product wired to it, in process (a warm Lambda) or as
//! the release binary (a cold one), with IAM reached through the counting proxy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use eks_iam_sync::cluster::{EksDirectory, DEFAULT_CACHE_TTL};
use eks_iam_sync::config::Config;
use eks_iam_sync::credentials::AssumeRoles;
use eks_iam_sync::iam::SdkIam;
use eks_iam_sync::sync::{App, TokenConnector};
use eks_testbed::{TestBed, TestBedOptions};
use serde_json::{json, Value};

use crate::proxy::{self, ActionCounts};

/// The user and group every latency event is about; the bed seeds both.
pub const USER: &str = "alice";
pub const GROUP: &str = eks_testbed::bed::DEVELOPERS_GROUP;

pub struct BenchBed {
    pub bed: TestBed,
    pub iam_calls: ActionCounts,
    iam_endpoint: String,
    product: PathBuf,
    work: tempfile::TempDir,
}

impl BenchBed {
    /// Starts a bed of `clusters` clusters and the IAM proxy. Call it on the runtime that should
    /// serve them (the bed's servers stay on it).
    /// `iam_latency`: held by the IAM proxy per call ([`proxy`]).
    pub async fn start(
        clusters: usize,
        product: PathBuf,
        iam_latency: std::time::Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            product.exists(),
            "{} not found: build it with `cargo build --release -p eks-iam-sync`",
            product.display()
        );
        let bed = TestBed::start(TestBedOptions {
            clusters,
            name_prefix: "bench".into(),
        })
        .await?;
        let (iam_endpoint, iam_calls) = proxy::start(bed.moto_endpoint(), iam_latency).await?;
        Ok(Self {
            bed,
            iam_calls,
            iam_endpoint,
            product,
            work: tempfile::Builder::new().prefix("eks-bench-").tempdir()?,
        })
    }

    /// The first `n` clusters: every measurement on n clusters uses these.
    pub fn clusters(&self, n: usize) -> Vec<String> {
        self.bed.cluster_names().into_iter().take(n).collect()
    }

    /// The bed's configuration narrowed to the first `n` clusters, with `extra` mappings
    /// (IAM group, Kubernetes group) after its own.
    pub fn config(&self, n: usize, extra: &[(String, String)]) -> Value {
        let mut config = self.bed.description().sync_config.clone();
        config["clusters"] = self
            .clusters(n)
            .iter()
            .map(|name| json!({"name": name, "region": self.bed.description().region}))
            .collect();
        if let Some(groups) = config["groups"].as_array_mut() {
            groups.extend(
                extra
                    .iter()
                    .map(|(iam, k8s)| json!({"iamGroup": iam, "kubernetesGroups": [k8s]})),
            );
        }
        config
    }

    /// A fresh product instance, wired as `main` wires it, its IAM calls through the proxy.
    pub fn app(&self, config: &Value) -> anyhow::Result<App> {
        let description = self.bed.description();
        let credentials =
            SharedCredentialsProvider::new(description.credentials.sync_role.sdk_credentials());
        let sdk = |endpoint: &str| {
            eks_iam_sync::aws::config_for(&description.region, endpoint, credentials.clone())
        };
        let identities = Arc::new(AssumeRoles::new(
            credentials.clone(),
            aws_sdk_sts::Client::new(&sdk(&description.endpoints.sts)),
        ));
        Ok(App {
            config: Config::parse(&config.to_string())?,
            iam: Box::new(SdkIam::new(aws_sdk_iam::Client::new(&sdk(
                &self.iam_endpoint
            )))),
            clusters: Box::new(EksDirectory::with_identities(
                sdk(&description.endpoints.eks),
                DEFAULT_CACHE_TTL,
                identities.clone(),
            )),
            connector: Box::new(TokenConnector::new(identities)),
        })
    }

    /// The environment of the release binary against this bed: the bed's own `env` with IAM
    /// through the proxy, and `config` inline.
    pub fn product_env(&self, config: &Value) -> BTreeMap<String, String> {
        let mut env = self.bed.description().env.clone();
        env.insert("AWS_ENDPOINT_URL_IAM".into(), self.iam_endpoint.clone());
        env.insert("EKS_IAM_SYNC_CONFIG".into(), config.to_string());
        env
    }

    /// The release binary `eks-iam-sync`.
    pub fn product(&self) -> &Path {
        &self.product
    }

    /// A scratch directory that lives as long as the bed (event files, children's `HOME`).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// Keys of the function's role, the identity every writer of aws-auth uses here.
    pub fn sync_keys(&self) -> &eks_testbed::moto::IssuedKeys {
        &self.bed.description().credentials.sync_role
    }
}

/// An IAM event CloudTrail delivers, for the bench's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// The sample event from `events/` for `change`, about `user`.
pub fn event(change: Change, user: &str) -> Value {
    let text = match change {
        Change::Add => include_str!("../../events/add-user-to-group.json"),
        Change::Remove => include_str!("../../events/remove-user-from-group.json"),
    };
    let mut event: Value = serde_json::from_str(text).expect("sample events are JSON");
    event["detail"]["requestParameters"]["userName"] = user.into();
    event
}

/// The bench user's membership of the mapped group in IAM, flipped before each event so that
/// every event changes something.
pub struct Membership {
    member: bool,
}

impl Membership {
    /// The bed seeds the user in no group.
    pub fn new() -> Self {
        Self { member: false }
    }

    /// Adds or removes the user in IAM, as the admin's call would; returns the event it causes.
    pub async fn flip(&mut self, bed: &BenchBed) -> anyhow::Result<Value> {
        let seeder = bed.bed.seeder();
        if self.member {
            seeder.remove_user_from_group(USER, GROUP).await?;
        } else {
            seeder.add_user_to_group(USER, GROUP).await?;
        }
        self.member = !self.member;
        Ok(self.event())
    }

    /// The event of the last change: handling it again changes nothing.
    pub fn event(&self) -> Value {
        event(
            if self.member {
                Change::Add
            } else {
                Change::Remove
            },
            USER,
        )
    }
}
