//! The fault-injecting proxy against the real servers: moto through aws-sdk-iam, the EKS
//! emulator through aws-sdk-eks, and a kube-apiserver through a kube client that verifies the
//! cluster's CA. Each control is observed by a real client; nothing waits on a clock except
//! the black hole, whose point is that no answer ever comes.

use std::time::Duration;

use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;
use eks_testbed::{Fault, Matcher, TestBed, TestBedOptions};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

const REGION: &str = "us-east-1";
const GROUP: &str = "eks-developers";
/// Long enough that a black-holed request is plainly unanswered, short enough to keep the
/// test quick; never a timing target, only "no answer came".
const NO_ANSWER: Duration = Duration::from_secs(2);
/// A guard so that a broken proxy fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(60);

fn bed() -> &'static TestBed {
    TestBed::shared(TestBedOptions {
        clusters: 1,
        name_prefix: "proxy".into(),
    })
}

fn seed_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("testing", "testing", None, None, "proxy-test")
}

/// An IAM client through `endpoint`; `retry` decides whether the SDK retries faults itself.
fn iam(endpoint: &str, retry: RetryConfig) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(seed_credentials())
        .retry_config(retry)
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

fn eks(endpoint: &str) -> aws_sdk_eks::Client {
    let keys = &bed().description().credentials.sync_role;
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(keys.sdk_credentials())
        .retry_config(aws_sdk_eks::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_eks::Client::from_conf(config)
}

async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {GUARD:?}"))
}

async fn groups_of(iam: &aws_sdk_iam::Client, user: &str) -> Vec<String> {
    iam.list_groups_for_user()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .groups()
        .iter()
        .map(|g| g.group_name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_iam_answer_is_the_upstream_state_at_read_time_and_arrives_only_on_release() {
    let bed = bed();
    let seeder = bed.seeder();
    seeder.create_user("held-user").await.unwrap();
    seeder.add_user_to_group("held-user", GROUP).await.unwrap();
    let proxy = bed.proxy_iam().await.unwrap();
    let client = iam(proxy.endpoint(), RetryConfig::disabled());
    let matcher = Matcher::iam("ListGroupsForUser").param("UserName", "held-user");
    let hold = proxy.hold(matcher.clone());

    let first = tokio::spawn({
        let client = client.clone();
        async move { groups_of(&client, "held-user").await }
    });
    guarded("the held answer", hold.reached()).await;
    // IAM changes while the answer is held: the held answer is what IAM said before.
    seeder
        .remove_user_from_group("held-user", GROUP)
        .await
        .unwrap();
    // A later matching request passes straight through, and sees the change.
    assert!(groups_of(&client, "held-user").await.is_empty());
    assert!(!first.is_finished(), "the first answer is still held");
    hold.release();
    assert_eq!(
        guarded("the released answer", first).await.unwrap(),
        [GROUP]
    );
    assert_eq!(proxy.count(&matcher), 2);
    assert_eq!(proxy.count(&Matcher::iam("GetUser")), 0);
    let outcomes: Vec<_> = proxy.requests().iter().map(|s| s.outcome).collect();
    assert_eq!(outcomes, ["held", "forwarded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_faults_reach_the_sdk_as_the_real_service_sends_them() {
    let bed = bed();
    bed.seeder().create_user("faulty-user").await.unwrap();
    let proxy = bed.proxy_iam().await.unwrap();
    let client = iam(proxy.endpoint(), RetryConfig::disabled());
    let get_user = Matcher::iam("GetUser");
    let get = || client.get_user().user_name("faulty-user").send();

    for (fault, code, status) in [
        (
            Fault::Throttle {
                retry_after_secs: 1,
            },
            "Throttling",
            429,
        ),
        (Fault::ServerError, "ServiceFailure", 500),
        (Fault::Unavailable, "ServiceUnavailable", 503),
    ] {
        proxy.inject(get_user.clone(), fault, 1);
        let err = get().await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{fault:?}: {err:?}");
        let raw = err.raw_response().expect("an HTTP answer");
        assert_eq!(raw.status().as_u16(), status);
        if status == 429 {
            assert_eq!(raw.headers().get("retry-after"), Some("1"));
        }
        // Only the next one: the one after reaches moto.
        assert!(get().await.is_ok(), "{fault:?} applied once");
    }

    proxy.inject(get_user.clone(), Fault::Reset, 1);
    let err = get().await.unwrap_err();
    assert!(
        matches!(err, aws_sdk_iam::error::SdkError::DispatchFailure(_)),
        "a reset is a transport failure: {err:?}"
    );

    proxy.inject(get_user.clone(), Fault::BlackHole, 1);
    assert!(
        tokio::time::timeout(NO_ANSWER, get()).await.is_err(),
        "a black hole never answers"
    );
    assert_eq!(proxy.faulted(&get_user), 5);

    // With the SDK's own retries, two throttled answers are retried and the third succeeds.
    proxy.clear();
    let retrying = iam(
        proxy.endpoint(),
        RetryConfig::standard().with_max_attempts(3),
    );
    proxy.inject(
        get_user.clone(),
        Fault::Throttle {
            retry_after_secs: 0,
        },
        2,
    );
    retrying
        .get_user()
        .user_name("faulty-user")
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.count(&get_user), 3);
    assert_eq!(proxy.faulted(&get_user), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_faults_and_holds_reach_aws_sdk_eks() {
    let bed = bed();
    let cluster = bed.cluster_names()[0].clone();
    let proxy = bed.proxy_eks().await.unwrap();
    let client = eks(proxy.endpoint());
    let describe = Matcher::request("GET", &format!("/clusters/{cluster}"));

    for (fault, code, status) in [
        (
            Fault::Throttle {
                retry_after_secs: 1,
            },
            "ThrottlingException",
            429,
        ),
        (Fault::ServerError, "ServerException", 500),
        (Fault::Unavailable, "ServiceUnavailableException", 503),
    ] {
        proxy.inject(describe.clone(), fault, 1);
        let err = client
            .describe_cluster()
            .name(&cluster)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            aws_sdk_eks::error::ProvideErrorMetadata::code(&err),
            Some(code),
            "{err:?}"
        );
        assert_eq!(err.raw_response().unwrap().status().as_u16(), status);
    }
    // ListClusters is another path: untouched by the DescribeCluster injection.
    proxy.inject(describe.clone(), Fault::Reset, 1);
    client.list_clusters().send().await.unwrap();
    let err = client
        .describe_cluster()
        .name(&cluster)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, aws_sdk_eks::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );

    let hold = proxy.hold(describe.clone());
    let held = tokio::spawn({
        let client = client.clone();
        let cluster = cluster.clone();
        async move { client.describe_cluster().name(cluster).send().await }
    });
    guarded("the held DescribeCluster", hold.reached()).await;
    client.list_clusters().send().await.unwrap();
    assert!(!held.is_finished());
    hold.release();
    let described = guarded("the released answer", held).await.unwrap().unwrap();
    assert_eq!(described.cluster().unwrap().name(), Some(cluster.as_str()));
    assert_eq!(proxy.count(&describe), 5);
    assert_eq!(proxy.count(&Matcher::request("GET", "/clusters")), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_proxy_is_trusted_as_the_cluster_and_injects_kubernetes_faults() {
    let bed = bed();
    let info = bed.cluster(&bed.cluster_names()[0]).unwrap().clone();
    let proxy = bed.proxy_api_server(&info.name).await.unwrap();
    let eks_client = bed.eks_client(&bed.description().credentials.sync_role, REGION);
    let described = eks_client
        .describe_cluster()
        .name(&info.name)
        .send()
        .await
        .unwrap();
    let endpoint = described.cluster().unwrap().endpoint().unwrap().to_owned();
    assert_eq!(
        endpoint,
        proxy.endpoint(),
        "DescribeCluster names the proxy"
    );

    // The same CA as the real API server: a client verifying the cluster's CA accepts it.
    let ca = std::fs::read_to_string(&info.ca_file).unwrap();
    let token = &bed.description().admin_token;
    let mut config = eks_testbed::bed::kube_config(&endpoint, &ca, token).unwrap();
    // kube retries 429, 503 and 504 by itself unless told not to; here the answers are the point.
    config.default_retry = false;
    let api: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "kube-system");
    let aws_auth = Matcher::request("GET", "/api/v1/namespaces/kube-system/configmaps/aws-auth");
    let before = api.get("aws-auth").await.unwrap();

    for (fault, reason, status) in [
        (
            Fault::Throttle {
                retry_after_secs: 1,
            },
            "TooManyRequests",
            429,
        ),
        (Fault::ServerError, "InternalError", 500),
        (Fault::Unavailable, "ServiceUnavailable", 503),
    ] {
        proxy.inject(aws_auth.clone(), fault, 1);
        match api.get("aws-auth").await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (status, reason), "{s:?}");
            }
            other => panic!("{fault:?}: expected a Status, got {other:?}"),
        }
    }
    // kube's default client retries a 429 (after Retry-After) and gets the real answer.
    let retrying = eks_testbed::bed::kube_client(&endpoint, &ca, token).unwrap();
    proxy.inject(
        aws_auth.clone(),
        Fault::Throttle {
            retry_after_secs: 0,
        },
        1,
    );
    Api::<ConfigMap>::namespaced(retrying, "kube-system")
        .get("aws-auth")
        .await
        .unwrap();
    assert_eq!(proxy.faulted(&aws_auth), 4);

    proxy.inject(aws_auth.clone(), Fault::Reset, 1);
    match api.get("aws-auth").await {
        Err(kube::Error::Api(s)) => panic!("a reset is not an answer: {s:?}"),
        Err(_) => {}
        Ok(_) => panic!("a reset connection gave an answer"),
    }
    proxy.inject(aws_auth.clone(), Fault::BlackHole, 1);
    assert!(
        tokio::time::timeout(NO_ANSWER, api.get("aws-auth"))
            .await
            .is_err(),
        "a black hole never answers"
    );

    // A held GET answers with the ConfigMap as it was read, after a later write went through.
    let hold = proxy.hold(aws_auth.clone());
    let held = tokio::spawn({
        let api = api.clone();
        async move { api.get("aws-auth").await }
    });
    guarded("the held GET", hold.reached()).await;
    let admin: Api<ConfigMap> =
        Api::namespaced(bed.admin_client(&info.name).unwrap(), "kube-system");
    let mut changed = admin.get("aws-auth").await.unwrap();
    changed
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("proxy-test".into(), "written while a GET was held".into());
    let written = admin
        .replace("aws-auth", &Default::default(), &changed)
        .await
        .unwrap();
    assert!(!held.is_finished());
    hold.release();
    let stale = guarded("the released GET", held).await.unwrap().unwrap();
    assert_eq!(
        stale.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_ne!(
        stale.metadata.resource_version,
        written.metadata.resource_version
    );
    assert_eq!(proxy.count(&aws_auth), 9);
    assert_eq!(proxy.faulted(&aws_auth), 6);

    // Dropping the proxy gives DescribeCluster the real endpoint back.
    drop(proxy);
    let described = eks_client
        .describe_cluster()
        .name(&info.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.cluster().unwrap().endpoint(),
        Some(info.endpoint.as_str())
    );
}
