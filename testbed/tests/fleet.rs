//! A mixed fleet, end to end: access entries created through the real `aws-sdk-eks` client
//! decide what a real `aws eks get-token` token may do, as the cluster's authentication mode
//! says; clusters live in several regions and two accounts, and a role the sync function
//! assumes at run time reaches the other account's cluster.

mod support;

use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryError;
use aws_sdk_eks::operation::describe_access_entry::DescribeAccessEntryError;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use eks_testbed::awscli::get_token;
use eks_testbed::bootstrap::{CROSS_ACCOUNT_ROLE, SYNC_ROLE};
use eks_testbed::eks::{AuthenticationMode, InjectedError, RESERVED_PREFIXES};
use eks_testbed::moto::{IssuedKeys, ACCOUNT_ID};
use eks_testbed::{ClusterOptions, FleetOptions, TestBed};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use support::{
    audit_events_of, list_pods, map_user, token_signed_ago, wait_for_audit, wait_for_audit_after,
};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const PARTNER_ACCOUNT: &str = "210987654321";

/// `cm` and `mixed` are the listed default-account clusters in us-east-1; `api-eu` is in
/// eu-west-1, untagged and unlisted; `partner` lives in the other account.
fn bed() -> &'static TestBed {
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new("cm").tag("team", "platform"))
            .cluster(
                ClusterOptions::new("mixed")
                    .mode(AuthenticationMode::ApiAndConfigMap)
                    .tag("team", "platform"),
            )
            .cluster(
                ClusterOptions::new("api-eu")
                    .region(WEST)
                    .mode(AuthenticationMode::Api)
                    .unlisted(),
            )
            .cluster(
                ClusterOptions::new("partner")
                    .account(PARTNER_ACCOUNT)
                    .tag("team", "platform"),
            ),
    )
}

/// An EKS client acting as the sync function in `region` of the default account.
fn sync_eks(bed: &TestBed, region: &str) -> aws_sdk_eks::Client {
    bed.eks_client(&bed.description().credentials.sync_role, region)
}

async fn create_entry(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    principal: &str,
    username: &str,
) -> aws_sdk_eks::types::AccessEntry {
    eks.create_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .username(username)
        .kubernetes_groups("developers")
        .send()
        .await
        .unwrap()
        .access_entry()
        .unwrap()
        .clone()
}

async fn delete_entry(eks: &aws_sdk_eks::Client, cluster: &str, principal: &str) {
    eks.delete_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn description_covers_regions_accounts_modes_and_tags() {
    let description = bed().description();
    let by_name = |name: &str| {
        description
            .clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap()
    };
    let api = by_name("api-eu");
    assert_eq!(
        (api.region.as_str(), api.account_id.as_str()),
        (WEST, ACCOUNT_ID)
    );
    assert_eq!(api.authentication_mode, "API");
    assert!(api.tags.is_empty() && !api.listed && api.role_arn.is_none());
    assert_eq!(
        api.arn,
        format!("arn:aws:eks:{WEST}:{ACCOUNT_ID}:cluster/api-eu")
    );
    let partner = by_name("partner");
    assert_eq!(partner.account_id, PARTNER_ACCOUNT);
    assert_eq!(
        partner.role_arn.as_deref(),
        Some(format!("arn:aws:iam::{PARTNER_ACCOUNT}:role/{CROSS_ACCOUNT_ROLE}").as_str())
    );
    assert_eq!(by_name("mixed").tags["team"], "platform");
    // The current config schema: listed clusters of the default account, name and region.
    assert_eq!(
        description.sync_config["clusters"],
        serde_json::json!([{"name": "cm", "region": EAST}, {"name": "mixed", "region": EAST}])
    );
    let session = &description.credentials.cross_account[PARTNER_ACCOUNT];
    assert!(
        session.arn.starts_with(&format!(
            "arn:aws:sts::{PARTNER_ACCOUNT}:assumed-role/{CROSS_ACCOUNT_ROLE}/"
        )),
        "{}",
        session.arn
    );
}

#[tokio::test]
async fn api_mode_access_entry_grants_and_its_deletion_denies() {
    let bed = bed();
    let ada = bed.seeder().create_user("ada").await.unwrap();
    // API mode ignores aws-auth: mapping ada there grants nothing.
    map_user(bed, "api-eu", &ada, "ada-from-aws-auth").await;
    let token = get_token(&ada, "api-eu", WEST, None).unwrap();
    assert_eq!(list_pods(bed, "api-eu", &token).await, Err(401));

    let eks = sync_eks(bed, WEST);
    create_entry(&eks, "api-eu", &ada.arn, "ada").await;
    list_pods(bed, "api-eu", &token)
        .await
        .expect("the access entry maps ada to developers, who may list pods");
    let event = wait_for_audit(bed, "api-eu", "ada").await;
    assert_eq!(event["user"]["groups"][0], "developers");
    assert_eq!(event["user"]["extra"]["arn"][0], ada.arn.as_str());

    delete_entry(&eks, "api-eu", &ada.arn).await;
    let fresh = token_signed_ago(&ada, "api-eu", WEST, 2);
    assert_eq!(list_pods(bed, "api-eu", &fresh).await, Err(401));
}

#[tokio::test]
async fn api_and_config_map_mode_prefers_the_access_entry() {
    let bed = bed();
    let ben = bed.seeder().create_user("ben").await.unwrap();
    map_user(bed, "mixed", &ben, "ben-from-aws-auth").await;
    let token = get_token(&ben, "mixed", EAST, None).unwrap();
    list_pods(bed, "mixed", &token)
        .await
        .expect("aws-auth maps ben");
    wait_for_audit(bed, "mixed", "ben-from-aws-auth").await;

    let eks = sync_eks(bed, EAST);
    create_entry(&eks, "mixed", &ben.arn, "ben-from-entry").await;
    let token = token_signed_ago(&ben, "mixed", EAST, 2);
    list_pods(bed, "mixed", &token).await.unwrap();
    wait_for_audit(bed, "mixed", "ben-from-entry").await;

    delete_entry(&eks, "mixed", &ben.arn).await;
    let seen = audit_events_of(bed, "mixed", "ben-from-aws-auth").len();
    let token = token_signed_ago(&ben, "mixed", EAST, 4);
    list_pods(bed, "mixed", &token).await.unwrap();
    wait_for_audit_after(bed, "mixed", "ben-from-aws-auth", seen).await;
}

#[tokio::test]
async fn config_map_mode_refuses_and_ignores_access_entries() {
    let bed = bed();
    let cyd = bed.seeder().create_user("cyd").await.unwrap();
    let eks = sync_eks(bed, EAST);
    let refused = eks
        .create_access_entry()
        .cluster_name("cm")
        .principal_arn(&cyd.arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(refused, CreateAccessEntryError::InvalidRequestException(_)),
        "{refused:?}"
    );
    // An entry on another cluster is no access here: cm only reads aws-auth.
    create_entry(&eks, "mixed", &cyd.arn, "cyd").await;
    let on_mixed = get_token(&cyd, "mixed", EAST, None).unwrap();
    list_pods(bed, "mixed", &on_mixed).await.unwrap();
    let on_cm = get_token(&cyd, "cm", EAST, None).unwrap();
    assert_eq!(list_pods(bed, "cm", &on_cm).await, Err(401));
}

#[tokio::test]
async fn the_initial_access_entries_mirror_aws_auth() {
    let bed = bed();
    let admin = &bed.description().credentials.admin_role;
    let token = get_token(admin, "api-eu", WEST, None).unwrap();
    list_pods(bed, "api-eu", &token)
        .await
        .expect("the admin role's access entry maps it to developers");
    wait_for_audit(bed, "api-eu", "admin:jane-example.com").await;
    let entries = bed.eks().access_entries(ACCOUNT_ID, WEST, "api-eu");
    let node = entries
        .iter()
        .find(|e| e.principal_arn.ends_with(":role/eks-node-role"))
        .unwrap();
    assert_eq!(node.entry_type.as_str(), "EC2_LINUX");
    assert!(entries.iter().all(|e| e.tags.is_empty()));
}

#[tokio::test]
async fn list_access_entries_pages_through_250_entries() {
    let bed = bed();
    let eks = sync_eks(bed, EAST);
    let created: Vec<String> = (0..250)
        .map(|i| format!("arn:aws:iam::{ACCOUNT_ID}:user/paged-{i:03}"))
        .collect();
    for principal in &created {
        eks.create_access_entry()
            .cluster_name("mixed")
            .principal_arn(principal)
            .send()
            .await
            .unwrap();
    }
    let pages = eks
        .list_access_entries()
        .cluster_name("mixed")
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    // Other tests add entries to this cluster concurrently: every page but the last is full.
    let sizes: Vec<usize> = pages.iter().map(|p| p.access_entries().len()).collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&n| n == 100),
        "{sizes:?}"
    );
    let listed: Vec<&String> = pages.iter().flat_map(|p| p.access_entries()).collect();
    assert!(created.iter().all(|arn| listed.contains(&arn)));
}

#[tokio::test]
async fn access_entry_errors_are_typed_sdk_errors() {
    let bed = bed();
    let eks = sync_eks(bed, WEST);
    let principal = format!("arn:aws:iam::{ACCOUNT_ID}:user/dup");
    create_entry(&eks, "api-eu", &principal, "dup").await;
    let duplicate = eks
        .create_access_entry()
        .cluster_name("api-eu")
        .principal_arn(&principal)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(duplicate, CreateAccessEntryError::ResourceInUseException(_)),
        "{duplicate:?}"
    );
    let missing = eks
        .describe_access_entry()
        .cluster_name("api-eu")
        .principal_arn(format!("arn:aws:iam::{ACCOUNT_ID}:user/nobody"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            missing,
            DescribeAccessEntryError::ResourceNotFoundException(_)
        ),
        "{missing:?}"
    );
    for prefix in RESERVED_PREFIXES {
        let reserved = eks
            .create_access_entry()
            .cluster_name("api-eu")
            .principal_arn(format!("arn:aws:iam::{ACCOUNT_ID}:user/reserved"))
            .username(format!("{prefix}reserved"))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(
                reserved,
                CreateAccessEntryError::InvalidParameterException(_)
            ),
            "{prefix}: {reserved:?}"
        );
    }
}

#[tokio::test]
async fn clusters_are_described_only_in_their_region_and_account() {
    let bed = bed();
    let east = sync_eks(bed, EAST);
    let listed = east.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), ["cm", "mixed"]);
    let not_here = east
        .describe_cluster()
        .name("api-eu")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        not_here,
        DescribeClusterError::ResourceNotFoundException(_)
    ));

    let west = sync_eks(bed, WEST);
    assert_eq!(
        west.list_clusters().send().await.unwrap().clusters(),
        ["api-eu"]
    );
    let described = west.describe_cluster().name("api-eu").send().await.unwrap();
    let cluster = described.cluster().unwrap();
    assert_eq!(
        cluster
            .access_config()
            .unwrap()
            .authentication_mode()
            .unwrap()
            .as_str(),
        "API"
    );

    let other_account = east
        .describe_cluster()
        .name("partner")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        other_account,
        DescribeClusterError::ResourceNotFoundException(_)
    ));
    let partner_keys = &bed.description().credentials.cross_account[PARTNER_ACCOUNT];
    let partner = bed.eks_client(partner_keys, EAST);
    assert_eq!(
        partner.list_clusters().send().await.unwrap().clusters(),
        ["partner"]
    );
    let tags = partner
        .list_tags_for_resource()
        .resource_arn(format!(
            "arn:aws:eks:{EAST}:{PARTNER_ACCOUNT}:cluster/partner"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().unwrap()["team"], "platform");
}

/// The sync function's role assumes the other account's role through STS, as the product
/// does while it runs: keys nobody registered, which the EKS emulator and the webhook learn
/// from moto.
async fn assume_partner_role(bed: &TestBed) -> IssuedKeys {
    let sync_role = &bed.description().credentials.sync_role;
    assert!(sync_role
        .arn
        .contains(&format!(":assumed-role/{SYNC_ROLE}/")));
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(EAST))
        .endpoint_url(bed.moto_endpoint())
        .credentials_provider(sync_role.sdk_credentials())
        .build();
    let assumed = aws_sdk_sts::Client::from_conf(config)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{PARTNER_ACCOUNT}:role/{CROSS_ACCOUNT_ROLE}"
        ))
        .role_session_name("run-time")
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    IssuedKeys {
        access_key_id: credentials.access_key_id().to_owned(),
        secret_access_key: credentials.secret_access_key().to_owned(),
        session_token: Some(credentials.session_token().to_owned()),
        arn: assumed.assumed_role_user().unwrap().arn().to_owned(),
    }
}

#[tokio::test]
async fn a_role_assumed_at_run_time_reaches_the_other_accounts_cluster() {
    let bed = bed();
    let keys = assume_partner_role(bed).await;
    assert!(bed.credentials().get(&keys.access_key_id).is_none());

    let eks = bed.eks_client(&keys, EAST);
    assert_eq!(
        eks.list_clusters().send().await.unwrap().clusters(),
        ["partner"]
    );
    eks.describe_cluster().name("partner").send().await.unwrap();

    // aws-auth of partner maps the role to eks-iam-sync, whose RBAC may read aws-auth.
    let token = get_token(&keys, "partner", EAST, None).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(
        bed.client_with_token("partner", &token).unwrap(),
        "kube-system",
    );
    let aws_auth = api.get("aws-auth").await.unwrap();
    assert!(aws_auth.data.unwrap()["mapRoles"].contains(CROSS_ACCOUNT_ROLE));
    let event = wait_for_audit(bed, "partner", "eks-iam-sync").await;
    assert_eq!(event["user"]["extra"]["arn"][0], keys.arn.as_str());
}

#[tokio::test]
async fn the_other_account_holds_its_own_iam() {
    let bed = bed();
    let dora = bed
        .seeder_in(PARTNER_ACCOUNT)
        .create_user("dora")
        .await
        .unwrap();
    assert_eq!(
        dora.arn,
        format!("arn:aws:iam::{PARTNER_ACCOUNT}:user/dora")
    );
    map_user(bed, "partner", &dora, "dora").await;
    let token = get_token(&dora, "partner", EAST, None).unwrap();
    list_pods(bed, "partner", &token).await.unwrap();
    wait_for_audit(bed, "partner", "dora").await;
}

#[tokio::test]
async fn failures_injected_for_one_cluster_spare_the_others() {
    let bed = bed();
    let config = sync_eks(bed, EAST)
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    let eks = aws_sdk_eks::Client::from_conf(config);
    let before = bed.eks().calls_for("DescribeCluster", "cm");
    for (error, code) in [
        (InjectedError::Throttling, "TooManyRequestsException"),
        (InjectedError::ServerException, "ServerException"),
    ] {
        bed.eks().fail_next_for("DescribeCluster", "cm", 1, error);
        eks.describe_cluster().name("mixed").send().await.unwrap();
        let failed = eks.describe_cluster().name("cm").send().await.unwrap_err();
        assert_eq!(failed.code(), Some(code));
        eks.describe_cluster().name("cm").send().await.unwrap();
    }
    assert_eq!(bed.eks().calls_for("DescribeCluster", "cm") - before, 4);
}
