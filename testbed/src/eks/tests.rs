//! The emulator driven by the real `aws-sdk-eks` client over HTTP.

use std::time::Duration;

use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::list_clusters::ListClustersError;
use aws_sdk_eks::operation::list_tags_for_resource::ListTagsForResourceError;
use aws_sdk_eks::types::AuthenticationMode as SdkAuthenticationMode;
use aws_sdk_eks::Client;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const OTHER_ACCOUNT: &str = "210987654321";
pub(super) const REGION: &str = "us-east-1";
pub(super) const ACCESS_KEY: &str = "AKIDTESTBED";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

/// An emulator serving on an ephemeral port, and its base URL.
pub(super) async fn start() -> (EksEmulator, String) {
    let emulator = EksEmulator::new(ACCOUNT);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(emulator.clone().serve(listener));
    (emulator, url)
}

pub(super) fn client(url: &str, region: &'static str, retry: RetryConfig) -> Client {
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static(region))
        .credentials_provider(Credentials::new(ACCESS_KEY, "secret", None, None, "test"))
        .endpoint_url(url)
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// A us-east-1 client that does not retry, so every call is one request.
pub(super) fn plain_client(url: &str) -> Client {
    client(url, REGION, RetryConfig::disabled())
}

pub(super) fn cluster(name: &str) -> EksClusterSpec {
    EksClusterSpec::new(name, REGION, ACCOUNT, "https://127.0.0.1:6443", CA_PEM)
}

/// Sends a raw HTTP/1.1 GET and returns the whole response text.
async fn raw_get(url: &str, path: &str, authorization: Option<&str>) -> String {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let auth = authorization.map_or(String::new(), |value| format!("Authorization: {value}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: eks\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.to_lowercase()
}

#[tokio::test]
async fn list_clusters_paginates_all_clusters_in_name_order() {
    let (emulator, url) = start().await;
    let mut names: Vec<String> = (0..150).map(|i| format!("cluster-{i:03}")).collect();
    for name in names.iter().rev() {
        emulator.add_cluster(cluster(name));
    }
    names.sort();
    let eks = plain_client(&url);

    let listed: Vec<String> = eks
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, names);
    assert_eq!(emulator.calls("ListClusters"), 2);

    let pages = eks
        .list_clusters()
        .max_results(100)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|page| page.clusters().len()).collect();
    assert_eq!(sizes, [100, 50]);
    assert!(pages[1].next_token().is_none());
}

#[tokio::test]
async fn list_clusters_rejects_max_results_out_of_range() {
    let (_emulator, url) = start().await;
    let eks = plain_client(&url);
    for max_results in [0, 101] {
        let err = eks
            .list_clusters()
            .max_results(max_results)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(err, ListClustersError::InvalidParameterException(_)),
            "maxResults {max_results}: {err:?}"
        );
    }
}

#[tokio::test]
async fn list_clusters_rejects_a_foreign_next_token() {
    let (_emulator, url) = start().await;
    let err = plain_client(&url)
        .list_clusters()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ListClustersError::InvalidParameterException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn describe_cluster_returns_the_registered_cluster() {
    let (emulator, url) = start().await;
    let mut spec = cluster("prod");
    spec.authentication_mode = AuthenticationMode::ApiAndConfigMap;
    spec.tags.insert("team".into(), "platform".into());
    emulator.add_cluster(spec.clone());

    let output = plain_client(&url)
        .describe_cluster()
        .name("prod")
        .send()
        .await
        .unwrap();
    let described = output.cluster().unwrap();
    assert_eq!(described.name(), Some("prod"));
    assert_eq!(
        described.arn(),
        Some("arn:aws:eks:us-east-1:123456789012:cluster/prod")
    );
    assert_eq!(described.endpoint(), Some(spec.endpoint.as_str()));
    assert_eq!(
        described.certificate_authority().and_then(|ca| ca.data()),
        Some(STANDARD.encode(CA_PEM).as_str())
    );
    assert_eq!(
        described.status(),
        Some(&aws_sdk_eks::types::ClusterStatus::Active)
    );
    assert_eq!(
        described
            .access_config()
            .and_then(|access| access.authentication_mode()),
        Some(&SdkAuthenticationMode::ApiAndConfigMap)
    );
    assert_eq!(
        described.tags().and_then(|tags| tags.get("team")),
        Some(&"platform".to_owned())
    );
    assert!(described.created_at().is_some());
}

#[tokio::test]
async fn describe_unknown_cluster_is_resource_not_found() {
    let (_emulator, url) = start().await;
    let err = plain_client(&url)
        .describe_cluster()
        .name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
    let DescribeClusterError::ResourceNotFoundException(not_found) = err.into_service_error()
    else {
        panic!("expected ResourceNotFoundException");
    };
    assert_eq!(not_found.cluster_name(), Some("missing"));
    assert_eq!(
        not_found.message(),
        Some("No cluster found for name: missing.")
    );
}

#[tokio::test]
async fn clusters_are_invisible_from_other_regions() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("east"));
    let west = client(&url, "us-west-2", RetryConfig::disabled());

    let listed = west.list_clusters().send().await.unwrap();
    assert!(listed.clusters().is_empty());
    let err = west
        .describe_cluster()
        .name("east")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        err,
        DescribeClusterError::ResourceNotFoundException(_)
    ));
}

#[tokio::test]
async fn clusters_are_invisible_from_other_accounts() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("mine"));
    emulator.map_access_key(ACCESS_KEY, OTHER_ACCOUNT);

    let listed = plain_client(&url).list_clusters().send().await.unwrap();
    assert!(listed.clusters().is_empty());
}

#[tokio::test]
async fn list_tags_for_resource_finds_clusters_by_arn() {
    let (emulator, url) = start().await;
    let mut spec = cluster("tagged");
    spec.tags.insert("env".into(), "test".into());
    emulator.add_cluster(spec.clone());

    let output = plain_client(&url)
        .list_tags_for_resource()
        .resource_arn(spec.arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        output.tags().and_then(|tags| tags.get("env")),
        Some(&"test".to_owned())
    );
}

#[tokio::test]
async fn list_tags_for_resource_rejects_unknown_and_malformed_arns() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("tagged"));
    let eks = plain_client(&url);
    let list_tags = |arn: &str| eks.list_tags_for_resource().resource_arn(arn).send();

    let unknown = list_tags("arn:aws:eks:us-east-1:123456789012:cluster/nope")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(unknown, ListTagsForResourceError::NotFoundException(_)),
        "{unknown:?}"
    );

    let other_region = list_tags("arn:aws:eks:us-west-2:123456789012:cluster/tagged")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        other_region,
        ListTagsForResourceError::NotFoundException(_)
    ));

    let malformed = list_tags("not-an-arn")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(malformed, ListTagsForResourceError::BadRequestException(_)),
        "{malformed:?}"
    );
}

#[tokio::test]
async fn call_counter_counts_describe_cluster_requests() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("counted"));
    let eks = plain_client(&url);
    for name in ["counted", "counted", "missing"] {
        let _ = eks.describe_cluster().name(name).send().await;
    }
    eks.list_clusters().send().await.unwrap();

    assert_eq!(emulator.calls("DescribeCluster"), 3);
    assert_eq!(emulator.calls("ListClusters"), 1);
    emulator.reset_calls();
    assert_eq!(emulator.calls("DescribeCluster"), 0);
}

#[tokio::test]
async fn fail_next_throttles_once_then_succeeds() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("busy"));
    emulator.fail_next("DescribeCluster", 1, InjectedError::Throttling);
    let eks = plain_client(&url);

    let err = eks
        .describe_cluster()
        .name("busy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 429);
    assert_eq!(err.code(), Some("TooManyRequestsException"));
    eks.describe_cluster().name("busy").send().await.unwrap();
    assert_eq!(emulator.calls("DescribeCluster"), 2);
}

#[tokio::test]
async fn fail_next_server_exception_is_the_typed_error() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("flaky"));
    emulator.fail_next("DescribeCluster", 1, InjectedError::ServerException);
    let eks = plain_client(&url);

    let err = eks
        .describe_cluster()
        .name("flaky")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DescribeClusterError::ServerException(_)),
        "{err:?}"
    );
    eks.describe_cluster().name("flaky").send().await.unwrap();
}

#[tokio::test]
async fn sdk_retries_injected_failures() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("flaky"));
    emulator.fail_next("DescribeCluster", 1, InjectedError::Throttling);
    emulator.fail_next("DescribeCluster", 1, InjectedError::ServiceUnavailable);
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(10));

    client(&url, REGION, retry)
        .describe_cluster()
        .name("flaky")
        .send()
        .await
        .unwrap();
    assert_eq!(emulator.calls("DescribeCluster"), 3);
}

#[tokio::test]
async fn unsupported_operations_get_unknown_operation_errors() {
    let (_emulator, url) = start().await;
    let eks = plain_client(&url);

    let create = eks.create_cluster().name("new").send().await.unwrap_err();
    assert_eq!(create.code(), Some("UnknownOperationException"));
    let nodegroups = eks
        .list_nodegroups()
        .cluster_name("new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(nodegroups.code(), Some("UnknownOperationException"));
    assert_eq!(nodegroups.raw_response().unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn unsigned_requests_are_rejected() {
    let (_emulator, url) = start().await;
    let response = raw_get(&url, "/clusters", None).await;
    assert!(response.starts_with("http/1.1 403"), "{response}");
    assert!(response.contains("x-amzn-errortype: missingauthenticationtokenexception"));
}
