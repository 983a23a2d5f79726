//! The whole test bed: start, describe, operate, and tear down.
//!
//! [`TestBed::start`] brings up one etcd, moto, the authentication webhook, the EKS emulator and
//! one kube-apiserver per cluster of the fleet, seeds IAM (of every account the fleet uses)
//! through moto's APIs and bootstraps every cluster. Dropping it stops every process it
//! started. [`TestBed::shared`] gives a test binary one bed that all its tests use, run on a
//! runtime of its own so that it outlives each test's runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde::Serialize;

use crate::apiserver::ApiServerConfig;
use crate::authn::{AuthnState, CredentialStore, KubeAwsAuthSource};
use crate::bootstrap::{
    self, role_arn, sync_role_arn, ADMIN_ROLE, CROSS_ACCOUNT_ROLE, CROSS_ACCOUNT_SESSION,
    NODE_ROLE, SYNC_ROLE,
};
use crate::eks::{AuthenticationMode, EksClusterSpec, EksEmulator};
use crate::moto::{IssuedKeys, Moto, Seeder, ACCOUNT_ID, REGION};
pub use crate::options::{ClusterOptions, FleetOptions, TestBedOptions};
use crate::process::{free_port, wait_for, Supervised};
use crate::wiring::{EmulatorAccessEntries, KeyDirectory, MotoPrincipals};
use crate::{paths, pki};

/// The IAM group the seeded config maps to the Kubernetes group `developers`.
pub const DEVELOPERS_GROUP: &str = "eks-developers";
/// The IAM users the test bed seeds, each with an access key and in no group yet.
pub const SEEDED_USERS: [&str; 2] = ["alice", "bob"];
/// The session name used when assuming the admin role; `@` exercises the template rules.
pub const ADMIN_SESSION: &str = "jane@example.com";

/// The JSON description `eks-testbed up` prints; tests and scripts read it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// The default account: IAM users, groups and the sync function live here.
    pub account_id: String,
    /// The sync function's region.
    pub region: String,
    pub clusters: Vec<ClusterInfo>,
    /// A static token in system:masters, like the EKS cluster creator's access.
    pub admin_token: String,
    pub endpoints: Endpoints,
    pub credentials: SeededCredentials,
    /// Environment for running eks-iam-sync against the bed as its own IAM role.
    pub env: BTreeMap<String, String>,
    /// A config document for eks-iam-sync in the current schema (`groups`, `clusters` of
    /// `name` and `region`): the listed clusters of the default account. Clusters of other
    /// accounts need their `roleArn`, which that schema cannot carry.
    pub sync_config: serde_json::Value,
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub name: String,
    pub region: String,
    pub account_id: String,
    /// `arn:aws:eks:REGION:ACCOUNT:cluster/NAME`.
    pub arn: String,
    pub endpoint: String,
    pub ca_file: PathBuf,
    pub audit_log: PathBuf,
    /// `CONFIG_MAP`, `API_AND_CONFIG_MAP` or `API`, as DescribeCluster reports it at start.
    pub authentication_mode: String,
    /// The tags at start (ListTagsForResource and DescribeCluster report them).
    pub tags: BTreeMap<String, String>,
    /// For a cluster outside the default account: the role the sync function assumes to
    /// reach it (call EKS there and sign the cluster token), which its aws-auth maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Whether the cluster is meant to be configured explicitly (false: left to discovery).
    pub listed: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub iam: String,
    pub sts: String,
    pub eks: String,
    pub webhook: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededCredentials {
    /// The sync function's role, assumed through STS.
    pub sync_role: IssuedKeys,
    /// The admin role, assumed with session name [`ADMIN_SESSION`].
    pub admin_role: IssuedKeys,
    pub users: BTreeMap<String, IssuedKeys>,
    /// Per other account: a session of its [`CROSS_ACCOUNT_ROLE`], as the sync function gets
    /// it by assuming that role (session name [`CROSS_ACCOUNT_SESSION`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cross_account: BTreeMap<String, IssuedKeys>,
}

struct Cluster {
    config: ApiServerConfig,
    /// The cluster CA's key, to sign a proxy's serving certificate.
    ca_key_pem: String,
    options: ClusterOptions,
    process: Mutex<Option<Supervised>>,
}

/// A running test bed. Dropping it stops everything it started.
pub struct TestBed {
    description: Description,
    creds: CredentialStore,
    eks: EksEmulator,
    moto: Moto,
    clusters: Vec<Cluster>,
    etcd: Supervised,
    servers: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestBed {
    /// Starts everything on the current tokio runtime: a [`TestBedOptions`] (N alike clusters)
    /// or a [`FleetOptions`] (any mix of regions, accounts, modes and tags).
    pub async fn start(options: impl Into<FleetOptions>) -> anyhow::Result<TestBed> {
        Self::start_fleet(options.into()).await
    }

    async fn start_fleet(fleet: FleetOptions) -> anyhow::Result<TestBed> {
        fleet.validate()?;
        paths::require(&paths::kube_apiserver())?;
        paths::require(&paths::etcd())?;
        let dir = tempfile::Builder::new().prefix("eks-testbed-").tempdir()?;
        let root = dir.path().to_path_buf();

        let (etcd, etcd_url) = start_etcd(&root).await?;
        let moto = Moto::start(&root).await?;
        let creds = CredentialStore::new();
        let credentials = seed_iam(&moto, &creds, &fleet).await?;

        let admin_token = random_token();
        let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook = format!("http://{}", webhook_listener.local_addr()?);
        let eks_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let eks_endpoint = format!("http://{}", eks_listener.local_addr()?);

        let mut clusters = Vec::new();
        let mut admin_clients = HashMap::new();
        for options in &fleet.clusters {
            let name = &options.name;
            let config = ApiServerConfig {
                cluster: name.clone(),
                dir: root.join(name),
                port: free_port()?,
                etcd_url: etcd_url.clone(),
                webhook_url: format!("{webhook}/authenticate/{name}"),
                admin_token: admin_token.clone(),
            };
            let pki = pki::cluster_pki(name)?;
            config.write_files(&pki)?;
            admin_clients.insert(
                name.clone(),
                kube_client(&config.endpoint(), &pki.ca_pem, &admin_token)?,
            );
            clusters.push(Cluster {
                config,
                ca_key_pem: pki.ca_key_pem.clone(),
                options: options.clone(),
                process: Mutex::new(None),
            });
        }

        let eks = EksEmulator::new(ACCOUNT_ID);
        let keys = Arc::new(KeyDirectory::new(creds.clone(), moto.sessions()));
        eks.set_account_resolver(keys.clone());
        let iam_by_account = std::iter::once(ACCOUNT_ID.to_owned())
            .chain(fleet.other_accounts())
            .map(|account| {
                let iam = moto.iam_in(&account);
                (account, iam)
            })
            .collect();
        eks.set_principal_directory(Arc::new(MotoPrincipals::new(iam_by_account)));
        let authn = AuthnState::new(
            creds.clone(),
            Arc::new(KubeAwsAuthSource::new(admin_clients)),
        )
        .with_access_entries(Arc::new(EmulatorAccessEntries::new(eks.clone(), &fleet)))
        .with_issuer(keys);
        let servers = vec![
            tokio::spawn(serve(
                webhook_listener,
                crate::authn::router(Arc::new(authn)),
            )),
            tokio::spawn(serve(eks_listener, eks.router())),
        ];

        let mut bed = TestBed {
            description: Description {
                account_id: ACCOUNT_ID.into(),
                region: REGION.into(),
                clusters: Vec::new(),
                admin_token,
                endpoints: Endpoints {
                    iam: moto.endpoint().into(),
                    sts: moto.endpoint().into(),
                    eks: eks_endpoint.clone(),
                    webhook,
                },
                env: sync_env(&credentials.sync_role, moto.endpoint(), &eks_endpoint),
                sync_config: sync_config(&fleet),
                credentials,
                dir: root,
            },
            creds,
            eks,
            moto,
            clusters,
            etcd,
            servers,
            _dir: dir,
        };
        for cluster in &bed.clusters {
            bed.spawn_apiserver(cluster)?;
        }
        futures::future::try_join_all(bed.clusters.iter().map(|c| bed.wait_ready(c))).await?;
        let mut infos = Vec::new();
        for cluster in &bed.clusters {
            infos.push(bed.bootstrap_cluster(cluster).await?);
        }
        bed.description.clusters = infos;
        Ok(bed)
    }

    /// Bootstraps one cluster's Kubernetes side, registers it with the EKS emulator (with the
    /// access entries a cluster in its mode starts with) and describes it.
    async fn bootstrap_cluster(&self, cluster: &Cluster) -> anyhow::Result<ClusterInfo> {
        let options = &cluster.options;
        let client = self.admin_client(&options.name)?;
        bootstrap::bootstrap_in(&client, &options.account).await?;
        let spec = EksClusterSpec {
            name: options.name.clone(),
            region: options.region.clone(),
            account: options.account.clone(),
            endpoint: cluster.config.endpoint(),
            ca_pem: std::fs::read_to_string(cluster.config.ca_file())?,
            authentication_mode: options.authentication_mode,
            tags: options.tags.clone(),
        };
        let arn = spec.arn();
        self.eks.add_cluster(spec);
        if options.authentication_mode != AuthenticationMode::ConfigMap {
            for request in bootstrap::initial_access_entries(&options.account) {
                self.eks.create_access_entry(
                    &options.account,
                    &options.region,
                    &options.name,
                    request,
                )?;
            }
        }
        Ok(ClusterInfo {
            name: options.name.clone(),
            region: options.region.clone(),
            account_id: options.account.clone(),
            arn,
            endpoint: cluster.config.endpoint(),
            ca_file: cluster.config.ca_file(),
            audit_log: cluster.config.audit_log(),
            authentication_mode: options.authentication_mode.as_str().into(),
            tags: options.tags.clone(),
            role_arn: (options.account != ACCOUNT_ID).then(|| sync_role_arn(&options.account)),
            listed: options.listed,
        })
    }

    /// One bed per test binary, started on first use on a runtime that lives until the
    /// binary exits (its processes die with it; see [`crate::process`]).
    pub fn shared(options: impl Into<FleetOptions>) -> &'static TestBed {
        Self::shared_fleet(options.into())
    }

    fn shared_fleet(options: FleetOptions) -> &'static TestBed {
        static SHARED: OnceLock<Result<&'static TestBed, String>> = OnceLock::new();
        let result = SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("testbed-runtime".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("test bed runtime");
                    let bed = runtime.block_on(TestBed::start(options));
                    let _ = tx.send(
                        bed.map(|b| &*Box::leak(Box::new(b)))
                            .map_err(|e| format!("{e:#}")),
                    );
                    // Keep the runtime (and the servers on it) alive for the rest of the process.
                    loop {
                        std::thread::park();
                    }
                })
                .expect("test bed thread");
            rx.recv()
                .unwrap_or_else(|_| Err("test bed thread died".into()))
        });
        match result {
            Ok(bed) => bed,
            Err(e) => panic!("the shared test bed did not start: {e}"),
        }
    }

    pub fn description(&self) -> &Description {
        &self.description
    }

    pub fn cluster(&self, name: &str) -> anyhow::Result<&ClusterInfo> {
        self.description
            .clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| anyhow::anyhow!("no cluster named {name}"))
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.description
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The authenticator's view of issued credentials; new keys must be registered here.
    pub fn credentials(&self) -> &CredentialStore {
        &self.creds
    }

    pub fn eks(&self) -> &EksEmulator {
        &self.eks
    }

    /// IAM/STS seeding with fresh clients, usable from any runtime.
    pub fn seeder(&self) -> Seeder<'_> {
        Seeder {
            iam: self.moto.iam(),
            sts: self.moto.sts(),
            creds: &self.creds,
        }
    }

    /// Seeding whose IAM calls act in `account` (another account of the fleet, say).
    pub fn seeder_in(&self, account: &str) -> Seeder<'_> {
        Seeder {
            iam: self.moto.iam_in(account),
            ..self.seeder()
        }
    }

    /// An `aws-sdk-eks` client for the emulator in `region`, signing as `keys`: it sees the
    /// clusters of `keys`' account in that region, as the real regional endpoint would.
    pub fn eks_client(&self, keys: &IssuedKeys, region: &str) -> aws_sdk_eks::Client {
        let config = aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new(region.to_owned()))
            .endpoint_url(&self.description.endpoints.eks)
            .credentials_provider(keys.sdk_credentials())
            .build();
        aws_sdk_eks::Client::from_conf(config)
    }

    pub fn moto_endpoint(&self) -> &str {
        self.moto.endpoint()
    }

    /// A new system:masters client for `cluster`.
    pub fn admin_client(&self, cluster: &str) -> anyhow::Result<kube::Client> {
        self.client_with_token(cluster, &self.description.admin_token)
    }

    /// A new client for `cluster` that sends `token` and verifies the cluster's own CA.
    pub fn client_with_token(&self, cluster: &str, token: &str) -> anyhow::Result<kube::Client> {
        let config = &self.cluster_handle(cluster)?.config;
        kube_client(
            &config.endpoint(),
            &std::fs::read_to_string(config.ca_file())?,
            token,
        )
    }

    /// Every audit event of `cluster` so far.
    pub fn audit_events(&self, cluster: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(&self.cluster(cluster)?.audit_log).unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// Waits until `cluster`'s RBAC authorizer lets members of `group` discover the API and
    /// list pods in `default`: right after a bed starts, the bindings it created may not be in
    /// the authorizer's cache yet, and a client such as kubectl gives up on its first 403.
    /// Asked with SubjectAccessReview, the authorizer's own answer, so nothing is guessed and
    /// no request in the user's name reaches the audit log.
    pub async fn wait_until_group_can_list_pods(
        &self,
        cluster: &str,
        group: &str,
    ) -> anyhow::Result<()> {
        use k8s_openapi::api::authorization::v1::{
            NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
        };
        let api: Api<SubjectAccessReview> = Api::all(self.admin_client(cluster)?);
        let review = |resource_attributes, non_resource_attributes| SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("eks-testbed:rbac-probe".into()),
                groups: Some(vec![group.to_owned(), "system:authenticated".into()]),
                resource_attributes,
                non_resource_attributes,
                ..Default::default()
            },
            ..Default::default()
        };
        let reviews = [
            review(
                None,
                Some(NonResourceAttributes {
                    path: Some("/api".into()),
                    verb: Some("get".into()),
                }),
            ),
            review(
                Some(ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("list".into()),
                    resource: Some("pods".into()),
                    ..Default::default()
                }),
                None,
            ),
        ];
        let what = format!("RBAC of {cluster} to let {group} list pods");
        wait_for(&what, Duration::from_secs(30), || {
            let api = api.clone();
            let reviews = reviews.clone();
            async move {
                for review in &reviews {
                    let answer = api.create(&Default::default(), review).await?;
                    if !answer.status.is_some_and(|s| s.allowed) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        })
        .await
    }

    /// Stops one cluster's API server (to test a failing cluster).
    pub fn stop_cluster(&self, cluster: &str) -> anyhow::Result<()> {
        let handle = self.cluster_handle(cluster)?;
        if let Some(mut process) = handle.process.lock().expect("lock").take() {
            process.stop();
        }
        Ok(())
    }

    /// Starts a stopped API server again, on the same port and data.
    pub async fn start_cluster(&self, cluster: &str) -> anyhow::Result<()> {
        let handle = self.cluster_handle(cluster)?;
        self.spawn_apiserver(handle)?;
        self.wait_ready(handle).await
    }

    /// Puts a [`FaultProxy`](crate::proxy::FaultProxy) in front of `cluster`'s API server and makes DescribeCluster
    /// report the proxy's endpoint, so the product (which finds the endpoint through EKS)
    /// reaches the API server only through it. The proxy presents a certificate signed by the
    /// cluster's own CA, so the product's TLS verification is unchanged. Dropping the proxy
    /// puts the real endpoint back. Admin clients ([`admin_client`](Self::admin_client)) and
    /// the webhook keep talking to the API server directly.
    pub async fn proxy_api_server(
        &self,
        cluster: &str,
    ) -> anyhow::Result<crate::proxy::FaultProxy> {
        let handle = self.cluster_handle(cluster)?;
        let info = self.cluster(cluster)?;
        let ca_pem = std::fs::read_to_string(handle.config.ca_file())?;
        let serving = pki::serving_cert(cluster, &handle.ca_key_pem)?;
        let proxy =
            crate::proxy::FaultProxy::tls(&handle.config.endpoint(), &ca_pem, &serving).await?;
        let (account, region, name) = (
            info.account_id.clone(),
            info.region.clone(),
            info.name.clone(),
        );
        let original = self
            .eks
            .set_endpoint(&account, &region, &name, proxy.endpoint())
            .ok_or_else(|| anyhow::anyhow!("the EKS emulator does not know {cluster}"))?;
        let eks = self.eks.clone();
        Ok(proxy.on_drop(move || {
            eks.set_endpoint(&account, &region, &name, &original);
        }))
    }

    /// A [`FaultProxy`](crate::proxy::FaultProxy) in front of moto for IAM (AWS query protocol); point the product's
    /// IAM endpoint at [`FaultProxy::endpoint`](crate::proxy::FaultProxy::endpoint).
    pub async fn proxy_iam(&self) -> anyhow::Result<crate::proxy::FaultProxy> {
        crate::proxy::FaultProxy::http(crate::proxy::Protocol::AwsQuery, self.moto.endpoint()).await
    }

    /// A [`FaultProxy`](crate::proxy::FaultProxy) in front of the EKS emulator (REST-JSON); point the product's EKS
    /// endpoint at [`FaultProxy::endpoint`](crate::proxy::FaultProxy::endpoint).
    pub async fn proxy_eks(&self) -> anyhow::Result<crate::proxy::FaultProxy> {
        crate::proxy::FaultProxy::http(
            crate::proxy::Protocol::RestJson,
            &self.description.endpoints.eks,
        )
        .await
    }

    /// PIDs of every process the bed started, for leak checks.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.etcd.pid(), self.moto.pid()];
        for cluster in &self.clusters {
            if let Some(p) = cluster.process.lock().expect("lock").as_ref() {
                pids.push(p.pid());
            }
        }
        pids
    }

    fn cluster_handle(&self, cluster: &str) -> anyhow::Result<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.config.cluster == cluster)
            .ok_or_else(|| anyhow::anyhow!("no cluster named {cluster}"))
    }

    fn spawn_apiserver(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let log = cluster.config.dir.join("kube-apiserver.log");
        let process = Supervised::spawn(
            &format!("kube-apiserver {}", cluster.config.cluster),
            cluster.config.command(),
            &log,
        )?;
        *cluster.process.lock().expect("lock") = Some(process);
        Ok(())
    }

    /// Ready means the bootstrap controller has created kube-system: then RBAC and ConfigMaps work.
    async fn wait_ready(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let client = self.admin_client(&cluster.config.cluster)?;
        let namespaces: Api<Namespace> = Api::all(client);
        let what = format!("kube-apiserver of {}", cluster.config.cluster);
        wait_for(&what, Duration::from_secs(120), || {
            let namespaces = namespaces.clone();
            async move {
                if let Some(process) = cluster.process.lock().expect("lock").as_mut() {
                    process.check_running()?;
                }
                Ok(namespaces.get_opt("kube-system").await?.is_some())
            }
        })
        .await
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
        for cluster in &self.clusters {
            if let Some(mut process) = cluster.process.lock().map(|mut p| p.take()).ok().flatten() {
                process.stop();
            }
        }
        self.etcd.stop();
    }
}

async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "test bed server stopped");
    }
}

async fn start_etcd(root: &std::path::Path) -> anyhow::Result<(Supervised, String)> {
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut command = Command::new(paths::etcd());
    command.args([
        "--name=eks-testbed".to_string(),
        format!("--data-dir={}", root.join("etcd").display()),
        format!("--listen-client-urls={url}"),
        format!("--advertise-client-urls={url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=eks-testbed={peer_url}"),
        "--log-level=warn".to_string(),
    ]);
    let mut etcd = Supervised::spawn("etcd", command, &root.join("etcd.log"))?;
    let addr = format!("127.0.0.1:{client}");
    wait_for("etcd", Duration::from_secs(30), || {
        let addr = addr.clone();
        let running = etcd.check_running();
        async move {
            running?;
            Ok(http_get_ok(&addr, "/health").await)
        }
    })
    .await?;
    Ok((etcd, url))
}

/// A readiness probe: does `path` answer 200?
async fn http_get_ok(addr: &str, path: &str) -> bool {
    matches!(crate::process::http_get(addr, path).await, Ok((200, _)))
}

async fn seed_iam(
    moto: &Moto,
    creds: &CredentialStore,
    fleet: &FleetOptions,
) -> anyhow::Result<SeededCredentials> {
    let seeder = Seeder {
        iam: moto.iam(),
        sts: moto.sts(),
        creds,
    };
    seeder.create_group(DEVELOPERS_GROUP).await?;
    let mut users = BTreeMap::new();
    for user in SEEDED_USERS {
        users.insert(user.to_string(), seeder.create_user(user).await?);
    }
    seeder.create_role(NODE_ROLE).await?;
    let sync_role = seeder.create_role(SYNC_ROLE).await?;
    let admin_role = seeder.create_role(ADMIN_ROLE).await?;
    let mut cross_account = BTreeMap::new();
    for account in fleet.other_accounts() {
        let keys = seed_other_account(moto, creds, &account, &sync_role).await?;
        cross_account.insert(account, keys);
    }
    Ok(SeededCredentials {
        sync_role: seeder.assume_role(&sync_role, "eks-iam-sync").await?,
        admin_role: seeder.assume_role(&admin_role, ADMIN_SESSION).await?,
        users,
        cross_account,
    })
}

/// Another account: its node role, and [`CROSS_ACCOUNT_ROLE`] trusting the default account's
/// sync role; returns a session of the latter.
async fn seed_other_account(
    moto: &Moto,
    creds: &CredentialStore,
    account: &str,
    sync_role: &str,
) -> anyhow::Result<IssuedKeys> {
    let seeder = Seeder {
        iam: moto.iam_in(account),
        sts: moto.sts(),
        creds,
    };
    seeder
        .create_role_trusting(NODE_ROLE, &format!("arn:aws:iam::{account}:root"))
        .await?;
    let access_role = seeder
        .create_role_trusting(CROSS_ACCOUNT_ROLE, sync_role)
        .await?;
    anyhow::ensure!(
        access_role == role_arn(account, CROSS_ACCOUNT_ROLE),
        "moto created {access_role} instead of a role in account {account}"
    );
    seeder
        .assume_role(&access_role, CROSS_ACCOUNT_SESSION)
        .await
}

fn sync_env(sync_role: &IssuedKeys, moto: &str, eks: &str) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = sync_role.env().into_iter().collect();
    // As the template sets it on the function: the audit's machine identity.
    env.insert(
        "EKS_IAM_SYNC_FUNCTION_ROLE".into(),
        role_arn(ACCOUNT_ID, SYNC_ROLE),
    );
    env.insert("AWS_REGION".into(), REGION.into());
    env.insert("AWS_ENDPOINT_URL_IAM".into(), moto.into());
    env.insert("AWS_ENDPOINT_URL_STS".into(), moto.into());
    env.insert("AWS_ENDPOINT_URL_EKS".into(), eks.into());
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    env
}

/// The product's config in its current schema, for the listed default-account clusters.
fn sync_config(fleet: &FleetOptions) -> serde_json::Value {
    let clusters: Vec<serde_json::Value> = fleet
        .clusters
        .iter()
        .filter(|c| c.listed && c.account == ACCOUNT_ID)
        .map(|c| serde_json::json!({"name": c.name, "region": c.region}))
        .collect();
    serde_json::json!({
        "groups": [{"iamGroup": DEVELOPERS_GROUP, "kubernetesGroups": ["developers"]}],
        "clusters": clusters,
    })
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::new();
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}

/// A kube client for an endpoint, trusting only `ca_pem`, authenticating with `token`.
pub fn kube_client(endpoint: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(kube_config(
        endpoint, ca_pem, token,
    )?)?)
}

/// The config [`kube_client`] uses, to adjust before building a client (kube's own retry of
/// 429/503/504 is on by default; a test that wants to see those answers turns it off).
pub fn kube_config(endpoint: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Config> {
    let mut config = kube::Config::new(endpoint.parse()?);
    config.root_cert = Some(pem_to_der(ca_pem)?);
    config.auth_info.token = Some(token.to_string().into());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    Ok(config)
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use base64::Engine;
    let mut certs = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        match (line.trim(), body.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", _) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                certs.push(base64::engine::general_purpose::STANDARD.decode(b.as_bytes())?);
                body = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    anyhow::ensure!(!certs.is_empty(), "no certificate in PEM");
    Ok(certs)
}
