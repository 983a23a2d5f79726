//! Logging (DescribeCluster, UpdateClusterConfig) and access policies (AssociateAccessPolicy,
//! ListAssociatedAccessPolicies), driven by the real `aws-sdk-eks` client over HTTP.

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{AccessScope, AccessScopeType, LogSetup, LogType, Logging};
use aws_sdk_eks::Client;

use super::tests::{cluster, plain_client, start, ACCOUNT, REGION};
use super::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/eks-cluster-admin";
const NODE: &str = "arn:aws:iam::123456789012:role/eks-node-role";
const ADMIN_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
const VIEW_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

fn enabled(described: &aws_sdk_eks::types::Cluster) -> Vec<String> {
    let mut types: Vec<String> = described
        .logging()
        .unwrap()
        .cluster_logging()
        .iter()
        .filter(|s| s.enabled() == Some(true))
        .flat_map(|s| s.types().iter().map(|t| t.as_str().to_owned()))
        .collect();
    types.sort();
    types
}

async fn describe(eks: &Client, name: &str) -> aws_sdk_eks::types::Cluster {
    let out = eks.describe_cluster().name(name).send().await.unwrap();
    out.cluster().unwrap().clone()
}

fn logging(types: &[&str], on: bool) -> Logging {
    Logging::builder()
        .cluster_logging(
            LogSetup::builder()
                .set_types(Some(types.iter().map(|t| LogType::from(*t)).collect()))
                .enabled(on)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn logging_starts_off_and_update_cluster_config_changes_only_the_named_types() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("c"));
    let eks = plain_client(&url);
    let new = describe(&eks, "c").await;
    assert!(enabled(&new).is_empty());
    assert_eq!(new.logging().unwrap().cluster_logging()[0].types().len(), 5);

    emulator.set_logging(ACCOUNT, REGION, "c", &["api"]);
    let out = eks
        .update_cluster_config()
        .name("c")
        .logging(logging(&["audit", "authenticator"], true))
        .send()
        .await
        .unwrap();
    let update = out.update().unwrap();
    assert_eq!(update.status().unwrap().as_str(), "InProgress");
    assert_eq!(update.r#type().unwrap().as_str(), "LoggingUpdate");
    assert!(!update.id().unwrap().is_empty());
    assert_eq!(
        update.params()[0].r#type().unwrap().as_str(),
        "ClusterLogging"
    );
    assert_eq!(
        enabled(&describe(&eks, "c").await),
        ["api", "audit", "authenticator"]
    );
    assert_eq!(emulator.calls_for("UpdateClusterConfig", "c"), 1);
}

#[tokio::test]
async fn update_cluster_config_errors_have_eks_shapes() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("c"));
    let eks = plain_client(&url);
    let code = |e: aws_sdk_eks::error::SdkError<_, _>| {
        let e: aws_sdk_eks::operation::update_cluster_config::UpdateClusterConfigError =
            e.into_service_error();
        (
            e.code().unwrap_or_default().to_owned(),
            e.message().unwrap_or_default().to_owned(),
        )
    };
    let cases = [
        (
            "nope",
            Some(logging(&["audit"], true)),
            "ResourceNotFoundException",
        ),
        (
            "c",
            Some(logging(&["audit"], false)),
            "InvalidParameterException",
        ),
        (
            "c",
            Some(logging(&["bogus"], true)),
            "InvalidParameterException",
        ),
        ("c", None, "InvalidParameterException"),
    ];
    for (name, update, expected) in cases {
        let err = eks
            .update_cluster_config()
            .name(name)
            .set_logging(update)
            .send()
            .await
            .unwrap_err();
        let (got, message) = code(err);
        assert_eq!(got, expected, "{name}: {message}");
    }
    let (_, message) = code(
        eks.update_cluster_config()
            .name("c")
            .logging(logging(&["audit"], false))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(message.contains("No changes needed"), "{message}");
    assert!(emulator.logging(ACCOUNT, REGION, "c").unwrap().is_empty());
}

#[tokio::test]
async fn access_policies_are_associated_listed_and_go_with_their_entry() {
    let (emulator, url) = start().await;
    let mut spec = cluster("api");
    spec.authentication_mode = AuthenticationMode::Api;
    emulator.add_cluster(spec);
    let eks = plain_client(&url);
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(ROLE)
        .username("eks-cluster-admin")
        .send()
        .await
        .unwrap();
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(NODE)
        .r#type("EC2_LINUX")
        .send()
        .await
        .unwrap();
    let scope = |t: AccessScopeType, ns: &[&str]| {
        AccessScope::builder()
            .r#type(t)
            .set_namespaces(Some(ns.iter().map(|n| n.to_string()).collect()))
            .build()
    };
    for (policy, access) in [
        (ADMIN_POLICY, scope(AccessScopeType::Cluster, &[])),
        (VIEW_POLICY, scope(AccessScopeType::Namespace, &["a", "b"])),
    ] {
        let out = eks
            .associate_access_policy()
            .cluster_name("api")
            .principal_arn(ROLE)
            .policy_arn(policy)
            .access_scope(access)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.associated_access_policy().unwrap().policy_arn(),
            Some(policy)
        );
    }
    let listed: Vec<_> = eks
        .list_associated_access_policies()
        .cluster_name("api")
        .principal_arn(ROLE)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].policy_arn(), Some(ADMIN_POLICY));
    assert_eq!(listed[1].access_scope().unwrap().namespaces(), ["a", "b"]);

    let refused = |e: aws_sdk_eks::error::SdkError<_, _>| {
        let e: aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyError =
            e.into_service_error();
        e.code().unwrap_or_default().to_owned()
    };
    for (principal, policy, access) in [
        (NODE, ADMIN_POLICY, scope(AccessScopeType::Cluster, &[])),
        (
            ROLE,
            "arn:aws:iam::aws:policy/Admin",
            scope(AccessScopeType::Cluster, &[]),
        ),
        (ROLE, VIEW_POLICY, scope(AccessScopeType::Namespace, &[])),
    ] {
        let err = eks
            .associate_access_policy()
            .cluster_name("api")
            .principal_arn(principal)
            .policy_arn(policy)
            .access_scope(access)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            refused(err),
            "InvalidParameterException",
            "{principal} {policy}"
        );
    }
    let missing = eks
        .list_associated_access_policies()
        .cluster_name("api")
        .principal_arn("arn:aws:iam::123456789012:role/nobody")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    eks.delete_access_entry()
        .cluster_name("api")
        .principal_arn(ROLE)
        .send()
        .await
        .unwrap();
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(ROLE)
        .send()
        .await
        .unwrap();
    assert!(
        emulator
            .associated_policies(ACCOUNT, REGION, "api", ROLE)
            .is_empty(),
        "a recreated entry starts without the old entry's policies"
    );
}
