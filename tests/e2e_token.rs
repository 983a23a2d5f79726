//! End to end on the test bed: kubectl runs the built `eks-iam-sync token --role-arn` as its
//! exec plugin, and the cluster's audit log names the person behind the shared admin role.
//!
//! The seed maps the admin role as `admin:{{SessionName}}` (testbed/src/bootstrap.rs), in
//! aws-auth on a CONFIG_MAP cluster and as an access entry on an API cluster. The same caller
//! going through `aws eks get-token --role-arn` would appear as `admin:EKSGetTokenAuth`,
//! botocore's fixed session name (awscli/customizations/eks/get_token.py assumes the role with
//! `RoleSessionName='EKSGetTokenAuth'`), whoever they are: the difference the helper exists
//! for. That is not run here: with `AWS_ENDPOINT_URL_STS` pointing at the bed's STS (which the
//! CLI needs for its AssumeRole) the CLI also presigns its token for that endpoint, which no
//! verifier accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use eks_testbed::bed::ClusterInfo;
use eks_testbed::bootstrap::{role_arn, ADMIN_ROLE};
use eks_testbed::eks::AuthenticationMode;
use eks_testbed::moto::{IssuedKeys, ACCOUNT_ID, REGION};
use eks_testbed::{ClusterOptions, FleetOptions, TestBed};

const BINARY: &str = env!("CARGO_BIN_EXE_eks-iam-sync");

fn bed() -> &'static TestBed {
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new("tok-cm"))
            .cluster(ClusterOptions::new("tok-api").mode(AuthenticationMode::Api)),
    )
}

fn admin_role() -> String {
    role_arn(ACCOUNT_ID, ADMIN_ROLE)
}

/// kubectl, which the test cannot do without: a missing one fails the test, it does not skip it
/// (scripts/testbed-setup installs Debian's kubernetes-client when it is absent).
fn kubectl() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "kubectl is not on PATH: run scripts/testbed-setup, which installs kubernetes-client"
        )
    })
}

/// The environment an exec plugin gets: the caller's credentials and the bed's STS, nothing
/// from the machine's own AWS configuration.
fn aws_env(bed: &TestBed, caller: &IssuedKeys) -> Vec<(String, String)> {
    let mut env = caller.env();
    env.extend(
        [
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL_STS", bed.moto_endpoint()),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env
}

/// A kubeconfig for `cluster` whose user runs `command args` as an exec plugin with `env`.
fn kubeconfig(
    dir: &Path,
    cluster: &ClusterInfo,
    command: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> PathBuf {
    let env: Vec<_> = env
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster.name, "cluster": {
            "server": cluster.endpoint,
            "certificate-authority": cluster.ca_file,
        }}],
        "users": [{"name": "person", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "env": env,
            // No `interactiveMode`: Debian's kubectl (1.20, which scripts/testbed-setup installs
            // when none is present) predates it, and v1beta1 does not require it.
        }}}],
        "contexts": [{"name": "c", "context": {"cluster": cluster.name, "user": "person"}}],
        "current-context": "c",
    });
    // JSON is YAML; kubectl reads either.
    let path = dir.join(format!("kubeconfig-{}", cluster.name));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

/// `kubectl get pods` with `config`; panics with kubectl's output unless it succeeds.
fn get_pods(config: &Path) {
    let output = Command::new(kubectl())
        .args(["get", "pods", "--namespace", "default"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", config.parent().unwrap())
        .env("KUBECONFIG", config)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl get pods failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A directory of its own for one kubectl run, inside the bed's (removed with it).
fn scratch(bed: &TestBed, tag: &str) -> PathBuf {
    let dir = bed.description().dir.join(format!("kubectl-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `kubectl get pods` on `cluster` with the helper as exec plugin for `caller`.
fn get_pods_through_helper(bed: &TestBed, cluster: &ClusterInfo, caller: &IssuedKeys) {
    let dir = scratch(bed, &caller.access_key_id);
    let role = admin_role();
    let args = [
        "token",
        "--cluster-name",
        &cluster.name,
        "--region",
        &cluster.region,
        "--role-arn",
        &role,
    ];
    let config = kubeconfig(
        &dir,
        cluster,
        Path::new(BINARY),
        &args,
        &aws_env(bed, caller),
    );
    get_pods(&config);
}

/// The audit events of `cluster` whose user is `username`, once the (blocking) audit log has
/// them.
async fn audited_as(bed: &TestBed, cluster: &str, username: &str) -> Vec<serde_json::Value> {
    for _ in 0..50 {
        let events: Vec<_> = bed
            .audit_events(cluster)
            .unwrap()
            .into_iter()
            .filter(|e| e["user"]["username"] == username)
            .collect();
        if !events.is_empty() {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{cluster}: no audit event of {username}")
}

/// A caller who is itself a role session named like an IAM Identity Center user.
async fn sso_session(bed: &TestBed, name: &str) -> IssuedKeys {
    let seeder = bed.seeder();
    let role = match seeder
        .create_role("AWSReservedSSO_Admin_0123456789abcdef")
        .await
    {
        Ok(arn) => arn,
        // Another test of this binary made it already.
        Err(_) => role_arn(ACCOUNT_ID, "AWSReservedSSO_Admin_0123456789abcdef"),
    };
    seeder.assume_role(&role, name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_helper_names_an_iam_user() {
    let bed = bed();
    let alice = bed.description().credentials.users["alice"].clone();
    for cluster in &bed.description().clusters {
        bed.wait_until_group_can_list_pods(&cluster.name, "developers")
            .await
            .unwrap();
        get_pods_through_helper(bed, cluster, &alice);
        let events = audited_as(bed, &cluster.name, "admin:alice").await;
        let extra = &events[0]["user"]["extra"];
        assert_eq!(
            extra["sessionName"],
            serde_json::json!(["alice"]),
            "{extra}"
        );
        assert_eq!(
            extra["arn"],
            serde_json::json!([format!(
                "arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ADMIN_ROLE}/alice"
            )]),
            "{extra}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_helper_names_a_role_session_caller() {
    let bed = bed();
    let bob = sso_session(bed, "bob@example.com").await;
    for cluster in &bed.description().clusters {
        bed.wait_until_group_can_list_pods(&cluster.name, "developers")
            .await
            .unwrap();
        get_pods_through_helper(bed, cluster, &bob);
        // {{SessionName}} turns `@` into `-`; the raw name stays in extra.sessionName.
        let events = audited_as(bed, &cluster.name, "admin:bob-example.com").await;
        let extra = &events[0]["user"]["extra"];
        assert_eq!(extra["sessionName"], serde_json::json!(["bob@example.com"]));
    }
}

/// Runs the helper directly as `caller`; returns (exit ok, stdout, stderr).
fn helper(bed: &TestBed, caller: &IssuedKeys, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(aws_env(bed, caller))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn an_invalid_session_name_is_a_clear_error_and_no_secret_is_printed() {
    let bed = bed();
    let alice = bed.description().credentials.users["alice"].clone();
    let role = admin_role();
    let (ok, stdout, stderr) = helper(
        bed,
        &alice,
        &[
            "token",
            "--cluster-name",
            "tok-cm",
            "--role-arn",
            &role,
            "--session-name",
            "alice smith",
        ],
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("--session-name \"alice smith\""),
        "{stderr}"
    );
    assert!(stderr.contains(&role), "{stderr}");

    // A good run prints the token on stdout only; nothing secret reaches stderr.
    let (ok, stdout, stderr) = helper(
        bed,
        &alice,
        &["token", "--cluster-name", "tok-cm", "--role-arn", &role],
    );
    assert!(ok, "{stderr}");
    let credential: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let token = credential["status"]["token"].as_str().unwrap();
    assert!(token.starts_with("k8s-aws-v1."));
    for secret in [token, &alice.secret_access_key] {
        assert!(!stderr.contains(secret), "a secret on stderr: {stderr}");
    }
}

/// An ExecCredential with its token's presigned URL decoded and the query sorted.
fn normalized(exec_credential: &str) -> serde_json::Value {
    use base64::Engine as _;
    let mut document: serde_json::Value = serde_json::from_str(exec_credential).unwrap();
    let token = document["status"]["token"].as_str().unwrap();
    let encoded = token.strip_prefix("k8s-aws-v1.").unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    let (base, query) = url.split_once('?').unwrap();
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.sort_unstable();
    document["status"]["token"] = format!("{base}?{}", pairs.join("&")).into();
    document
}

/// Without `--role-arn` the helper is what it was: the AWS CLI's document, for the same
/// credentials and second, with the same signature. The byte-for-byte check against the CLI's
/// own code is the vectors' (src/token.rs tests); the CLI installed here (1.46 with awscrt)
/// writes `X-Amz-SignedHeaders` before `X-Amz-Expires`, a parameter order the vectors' CLI did
/// not, so this compares the URL's parameters as a set and everything else exactly.
#[test]
fn without_role_arn_the_output_is_the_aws_clis() {
    let bed = bed();
    let alice = bed.description().credentials.users["alice"].clone();
    // Both at the same frozen second (a faketime spec without `@` stops the clock), so both
    // sign the same X-Amz-Date.
    let frozen = "2026-03-04 05:06:07";
    let run = |program: &Path, args: &[&str]| {
        let output = Command::new("faketime")
            .args(["-f", frozen])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            // The bed's STS endpoint would also become the CLI's presign host.
            .envs(
                aws_env(bed, &alice)
                    .into_iter()
                    .filter(|(k, _)| k != "AWS_ENDPOINT_URL_STS"),
            )
            .output()
            .expect("faketime runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let ours = run(
        Path::new(BINARY),
        &["token", "--cluster-name", "tok-cm", "--region", REGION],
    );
    let cli = run(
        &eks_testbed::paths::venv_bin("aws"),
        &[
            "eks",
            "get-token",
            "--cluster-name",
            "tok-cm",
            "--region",
            REGION,
            "--output",
            "json",
        ],
    );
    assert!(ours.contains("2026-03-04T05:20:07Z"), "{ours}");
    assert_eq!(normalized(&ours), normalized(&cli));
    // The document around the token is the CLI's byte for byte, up to the CLI's extra blank
    // line at the end (src/token.rs, `exec_credential`).
    let token_line = |text: &str| {
        text.lines()
            .map(|l| if l.contains("\"token\"") { "TOKEN" } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(token_line(ours.trim_end()), token_line(cli.trim_end()));
}
