//! The whole test bed: start, describe, operate, and tear down.
//!
//! [`TestBed::start`] brings up one etcd, moto, the authentication webhook, the EKS emulator and
//! N kube-apiservers, seeds IAM through moto's APIs and bootstraps every cluster. Dropping it
//! stops every process it started. [`TestBed::shared`] gives a test binary one bed that all its
//! tests use, run on a runtime of its own so that it outlives each test's runtime.

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
use crate::bootstrap::{self, ADMIN_ROLE, NODE_ROLE, SYNC_ROLE};
use crate::eks::{AuthenticationMode, EksClusterSpec, EksEmulator};
use crate::moto::{IssuedKeys, Moto, Seeder, ACCOUNT_ID, REGION};
use crate::process::{free_port, wait_for, Supervised};
use crate::{paths, pki};

/// What to start.
#[derive(Clone, Debug)]
pub struct TestBedOptions {
    /// Number of simulated EKS clusters (default 2).
    pub clusters: usize,
    /// Cluster names are `<prefix>-1`, `<prefix>-2`, ... (default `dev`).
    pub name_prefix: String,
}

impl Default for TestBedOptions {
    fn default() -> Self {
        Self {
            clusters: 2,
            name_prefix: "dev".into(),
        }
    }
}

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
    pub account_id: String,
    pub region: String,
    pub clusters: Vec<ClusterInfo>,
    /// A static token in system:masters, like the EKS cluster creator's access.
    pub admin_token: String,
    pub endpoints: Endpoints,
    pub credentials: SeededCredentials,
    /// Environment for running eks-iam-sync against the bed as its own IAM role.
    pub env: BTreeMap<String, String>,
    /// A config document for eks-iam-sync covering every cluster.
    pub sync_config: serde_json::Value,
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub name: String,
    pub region: String,
    pub endpoint: String,
    pub ca_file: PathBuf,
    pub audit_log: PathBuf,
    /// `CONFIG_MAP`, `API_AND_CONFIG_MAP` or `API`, as DescribeCluster reports it.
    pub authentication_mode: String,
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
}

struct Cluster {
    config: ApiServerConfig,
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
    /// Starts everything on the current tokio runtime.
    pub async fn start(options: TestBedOptions) -> anyhow::Result<TestBed> {
        anyhow::ensure!(options.clusters >= 1, "at least one cluster is needed");
        paths::require(&paths::kube_apiserver())?;
        paths::require(&paths::etcd())?;
        let dir = tempfile::Builder::new().prefix("eks-testbed-").tempdir()?;
        let root = dir.path().to_path_buf();

        let (etcd, etcd_url) = start_etcd(&root).await?;
        let moto = Moto::start(&root).await?;
        let creds = CredentialStore::new();
        let credentials = seed_iam(&moto, &creds).await?;

        let admin_token = random_token();
        let names: Vec<String> = (1..=options.clusters)
            .map(|i| format!("{}-{i}", options.name_prefix))
            .collect();

        let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook = format!("http://{}", webhook_listener.local_addr()?);
        let eks_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let eks_endpoint = format!("http://{}", eks_listener.local_addr()?);

        let mut clusters = Vec::new();
        let mut admin_clients = HashMap::new();
        for name in &names {
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
                process: Mutex::new(None),
            });
        }

        let authn = Arc::new(AuthnState::new(
            creds.clone(),
            Arc::new(KubeAwsAuthSource::new(admin_clients)),
        ));
        let eks = EksEmulator::new(ACCOUNT_ID);
        let servers = vec![
            tokio::spawn(serve(webhook_listener, crate::authn::router(authn))),
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
                sync_config: sync_config(&names),
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
        for cluster in &bed.clusters {
            let client = bed.admin_client(&cluster.config.cluster)?;
            bootstrap::bootstrap(&client).await?;
            let info = ClusterInfo {
                name: cluster.config.cluster.clone(),
                region: REGION.into(),
                endpoint: cluster.config.endpoint(),
                ca_file: cluster.config.ca_file(),
                audit_log: cluster.config.audit_log(),
                authentication_mode: AuthenticationMode::ConfigMap.as_str().into(),
            };
            bed.eks.add_cluster(EksClusterSpec {
                name: info.name.clone(),
                region: info.region.clone(),
                account: ACCOUNT_ID.into(),
                endpoint: info.endpoint.clone(),
                ca_pem: std::fs::read_to_string(&info.ca_file)?,
                authentication_mode: AuthenticationMode::ConfigMap,
                tags: BTreeMap::from([("environment".to_string(), "test-bed".to_string())]),
            });
            bed.description.clusters.push(info);
        }
        Ok(bed)
    }

    /// One bed per test binary, started on first use on a runtime that lives until the
    /// binary exits (its processes die with it; see [`crate::process`]).
    pub fn shared(options: TestBedOptions) -> &'static TestBed {
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

/// A dependency-free HTTP/1.0 GET for readiness probes.
async fn http_get_ok(addr: &str, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

async fn seed_iam(moto: &Moto, creds: &CredentialStore) -> anyhow::Result<SeededCredentials> {
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
    Ok(SeededCredentials {
        sync_role: seeder.assume_role(&sync_role, "eks-iam-sync").await?,
        admin_role: seeder.assume_role(&admin_role, ADMIN_SESSION).await?,
        users,
    })
}

fn sync_env(sync_role: &IssuedKeys, moto: &str, eks: &str) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = sync_role.env().into_iter().collect();
    env.insert("AWS_REGION".into(), REGION.into());
    env.insert("AWS_ENDPOINT_URL_IAM".into(), moto.into());
    env.insert("AWS_ENDPOINT_URL_STS".into(), moto.into());
    env.insert("AWS_ENDPOINT_URL_EKS".into(), eks.into());
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    env
}

fn sync_config(clusters: &[String]) -> serde_json::Value {
    serde_json::json!({
        "groups": [{"iamGroup": DEVELOPERS_GROUP, "kubernetesGroups": ["developers"]}],
        "clusters": clusters.iter().map(|name| serde_json::json!({"name": name, "region": REGION})).collect::<Vec<_>>(),
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
    let mut config = kube::Config::new(endpoint.parse()?);
    config.root_cert = Some(pem_to_der(ca_pem)?);
    config.auth_info.token = Some(token.to_string().into());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    Ok(kube::Client::try_from(config)?)
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
