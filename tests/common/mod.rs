//! Shared pieces of the end-to-end tests: the product wired to a test bed exactly as `main`
//! wires it to AWS, only with the endpoints and credentials the test bed hands out.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_credential_types::provider::SharedCredentialsProvider;
use eks_iam_sync::cluster::{EksDirectory, DEFAULT_CACHE_TTL};
use eks_iam_sync::config::Config;
use eks_iam_sync::iam::SdkIam;
use eks_iam_sync::report::{ClusterReport, Report};
use eks_iam_sync::sync::{App, TokenConnector};
use eks_testbed::awscli::get_token;
use eks_testbed::moto::IssuedKeys;
use eks_testbed::{TestBed, TestBedOptions};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

pub const REGION: &str = "us-east-1";

/// The product as its own IAM role against `bed`, with the bed's config for every cluster.
pub fn app(bed: &TestBed) -> App {
    let endpoints = &bed.description().endpoints;
    app_with(bed, &endpoints.iam, &endpoints.eks)
}

/// As [`app`], with other IAM and EKS endpoints (a [`eks_testbed::FaultProxy`] in front of moto
/// or the EKS emulator). STS stays moto itself.
pub fn app_with(bed: &TestBed, iam_endpoint: &str, eks_endpoint: &str) -> App {
    let description = bed.description();
    let mut config =
        Config::parse(&description.sync_config.to_string()).expect("bed config is valid");
    // What `Config::from_env` reads from the function's environment besides the document.
    config.function_role = description
        .env
        .get(eks_iam_sync::config::ENV_FUNCTION_ROLE)
        .cloned();
    let credentials =
        SharedCredentialsProvider::new(description.credentials.sync_role.sdk_credentials());
    let sdk = |endpoint: &str| eks_iam_sync::aws::config_for(REGION, endpoint, credentials.clone());
    App {
        config,
        iam: Box::new(SdkIam::new(aws_sdk_iam::Client::new(&sdk(iam_endpoint)))),
        clusters: Box::new(
            EksDirectory::new(sdk(eks_endpoint), DEFAULT_CACHE_TTL)
                .with_sts(sdk(&description.endpoints.sts)),
        ),
        connector: Box::new(TokenConnector::new(credentials.clone())),
    }
}

/// The report of `cluster` in `report`.
pub fn reported<'a>(report: &'a Report, cluster: &str) -> &'a ClusterReport {
    report
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .unwrap_or_else(|| panic!("{cluster} is not in the report: {report:?}"))
}

/// A bed of 3 clusters of its own, for a test that disturbs it (stops clusters, counts calls).
pub async fn start(prefix: &str) -> TestBed {
    TestBed::start(TestBedOptions {
        clusters: 3,
        name_prefix: prefix.into(),
    })
    .await
    .expect("test bed starts")
}

/// A sample event from `events/` with the user name replaced.
pub fn event(file: &str, user: &str) -> serde_json::Value {
    let path = format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["detail"]["requestParameters"]["userName"] = user.into();
    event
}

pub fn aws_auth_api(bed: &TestBed, cluster: &str) -> Api<ConfigMap> {
    Api::namespaced(bed.admin_client(cluster).unwrap(), "kube-system")
}

pub async fn aws_auth_data(bed: &TestBed, cluster: &str) -> BTreeMap<String, String> {
    aws_auth_api(bed, cluster)
        .get("aws-auth")
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

/// The resourceVersion of `cluster`'s aws-auth: unchanged means not written.
pub async fn resource_version(bed: &TestBed, cluster: &str) -> String {
    aws_auth_api(bed, cluster)
        .get("aws-auth")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// A bed of its own with one `CONFIG_MAP` cluster `cm` and one `API` cluster `api`: a cluster
/// of each store.
pub async fn start_cm_and_api(cm: &str, api: &str) -> TestBed {
    TestBed::start(
        eks_testbed::FleetOptions::new()
            .cluster(eks_testbed::ClusterOptions::new(cm))
            .cluster(
                eks_testbed::ClusterOptions::new(api)
                    .mode(eks_testbed::eks::AuthenticationMode::Api),
            ),
    )
    .await
    .expect("test bed starts")
}

/// The parsed mapUsers entries of `cluster`.
pub async fn map_users(bed: &TestBed, cluster: &str) -> Vec<serde_json::Value> {
    let data = aws_auth_data(bed, cluster).await;
    match data.get("mapUsers") {
        Some(text) => serde_yaml_ng::from_str(text).unwrap(),
        None => Vec::new(),
    }
}

/// The entry for `arn`, if any.
pub async fn entry(bed: &TestBed, cluster: &str, arn: &str) -> Option<serde_json::Value> {
    map_users(bed, cluster)
        .await
        .into_iter()
        .find(|e| e["userarn"] == arn)
}

/// Appends a hand-written (unowned) entry through the admin identity, as an operator would.
pub async fn add_hand_entry(bed: &TestBed, cluster: &str, entry_yaml: &str) {
    let api = aws_auth_api(bed, cluster);
    for _ in 0..10 {
        let current = api.get("aws-auth").await.unwrap();
        let mut cm = current.clone();
        let data = cm.data.get_or_insert_with(Default::default);
        let users = data.entry("mapUsers".into()).or_default();
        users.push_str(entry_yaml);
        match api.replace("aws-auth", &Default::default(), &cm).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("could not add a hand entry");
}

/// Overwrites one data key by merge patch (for breaking aws-auth on purpose).
pub async fn set_data_key(bed: &TestBed, cluster: &str, key: &str, value: &str) {
    let patch = serde_json::json!({"data": {key: value}});
    aws_auth_api(bed, cluster)
        .patch("aws-auth", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Lists pods in `default` as `token`: Ok, or the refusal's HTTP status.
pub async fn list_pods(bed: &TestBed, cluster: &str, token: &str) -> Result<(), u16> {
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(bed.client_with_token(cluster, token).unwrap(), "default");
    match api.list(&Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(other) => panic!("unexpected client error: {other}"),
    }
}

/// Waits for the audit log of `cluster` to show a request by `username`.
pub async fn audited(bed: &TestBed, cluster: &str, username: &str) -> bool {
    for _ in 0..50 {
        if bed
            .audit_events(cluster)
            .unwrap()
            .iter()
            .any(|e| e["user"]["username"] == username)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// A trust policy letting principals of the default account assume a role; with `pinned`, only
/// under their own IAM user name as the session name (`sts:RoleSessionName` =
/// `${aws:username}`), which is what makes a `{{SessionName}}` username name the person.
pub fn trust_policy(pinned: bool) -> String {
    let condition = if pinned {
        r#","Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}"#
    } else {
        ""
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"sts:AssumeRole"{condition}}}]}}"#,
        eks_testbed::moto::ACCOUNT_ID
    )
}

/// Creates role `name` with `document` as its trust policy, or gives an existing one that
/// policy; returns its ARN.
pub async fn role_with_trust(bed: &TestBed, name: &str, path: &str, document: &str) -> String {
    let iam = bed.seeder().iam;
    let created = iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(document)
        .send()
        .await;
    if let Err(e) = created {
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_entity_already_exists_exception()),
            "{e:?}"
        );
        iam.update_assume_role_policy()
            .role_name(name)
            .policy_document(document)
            .send()
            .await
            .unwrap();
    }
    iam.get_role()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_owned()
}

/// A session of `role_arn` named `name`, as `aws sts assume-role` makes it.
pub async fn session(bed: &TestBed, role_arn: &str, name: &str) -> IssuedKeys {
    bed.seeder().assume_role(role_arn, name).await.unwrap()
}

/// Lists pods on `cluster` with `keys`' AWS CLI token; the username the audit log recorded
/// for that request's principal ARN (the session's).
pub async fn signed_in_as(bed: &TestBed, cluster: &str, keys: &IssuedKeys) -> Result<String, u16> {
    let region = &bed.cluster(cluster).unwrap().region;
    let token = get_token(keys, cluster, region, None).unwrap();
    list_pods(bed, cluster, &token).await?;
    for _ in 0..50 {
        let events = bed.audit_events(cluster).unwrap();
        let found = events.iter().rev().find(|e| {
            e["user"]["extra"]["arn"][0] == keys.arn.as_str()
                && e["objectRef"]["resource"] == "pods"
        });
        if let Some(event) = found {
            return Ok(event["user"]["username"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{cluster}: no audit event for {}", keys.arn);
}

/// Runs the built binary (`args` from the subcommand on) with the bed's environment and `config`.
pub fn cli(bed: &TestBed, config: &serde_json::Value, args: &[&str]) -> (i32, String, String) {
    cli_with(bed, config, &[], args)
}

/// As [`cli`], with extra environment variables (`EKS_IAM_SYNC_INSTALLATION`, as the template
/// sets it).
pub fn cli_with(
    bed: &TestBed,
    config: &serde_json::Value,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    cli_command(
        bed,
        config,
        env,
        std::process::Command::new(env!("CARGO_BIN_EXE_eks-iam-sync")).args(args),
    )
}

/// As [`cli`], but on a terminal: util-linux `script` gives the binary a pseudo-terminal for
/// stdin, stdout and stderr, as a person's shell would (stdin ends at once: no answer); what it
/// printed comes back as stdout.
pub fn cli_on_terminal(
    bed: &TestBed,
    config: &serde_json::Value,
    args: &[&str],
) -> (i32, String, String) {
    cli_on_terminal_with(bed, config, &[], args)
}

/// [`cli_on_terminal`] with extra environment variables.
pub fn cli_on_terminal_with(
    bed: &TestBed,
    config: &serde_json::Value,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let line = std::iter::once(env!("CARGO_BIN_EXE_eks-iam-sync"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    cli_command(
        bed,
        config,
        env,
        std::process::Command::new("script").args([
            "--quiet",
            "--return",
            "--command",
            &line,
            "/dev/null",
        ]),
    )
}

fn cli_command(
    bed: &TestBed,
    config: &serde_json::Value,
    env: &[(&str, &str)],
    command: &mut std::process::Command,
) -> (i32, String, String) {
    let home = std::env::temp_dir().join(format!("eks-iam-sync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let output = command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(&bed.description().env)
        .env("EKS_IAM_SYNC_CONFIG", config.to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub mod access;
#[allow(unused_imports)]
pub mod within;
