//! Access entries, tags, per-cluster failures and account resolution, driven by the real
//! `aws-sdk-eks` client over HTTP so that every wire shape is the one the SDK reads.

use std::collections::HashMap;

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryError;
use aws_sdk_eks::operation::delete_access_entry::DeleteAccessEntryError;
use aws_sdk_eks::operation::describe_access_entry::DescribeAccessEntryError;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::list_access_entries::ListAccessEntriesError;
use aws_sdk_eks::operation::tag_resource::TagResourceError;
use aws_sdk_eks::operation::update_access_entry::UpdateAccessEntryError;
use aws_sdk_eks::Client;
use futures::FutureExt;

use super::tests::{cluster, plain_client, start, ACCESS_KEY, ACCOUNT, OTHER_ACCOUNT, REGION};
use super::*;

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const DEPLOY_ROLE: &str = "arn:aws:iam::123456789012:role/ci/Deploy";

/// An emulator with one cluster named `name` in `mode`, and a client for it.
async fn with_cluster(name: &str, mode: AuthenticationMode) -> (EksEmulator, Client) {
    let (emulator, url) = start().await;
    let mut spec = cluster(name);
    spec.authentication_mode = mode;
    emulator.add_cluster(spec);
    (emulator, plain_client(&url))
}

async fn api_cluster() -> (EksEmulator, Client) {
    with_cluster("api", AuthenticationMode::Api).await
}

async fn create(eks: &Client, principal: &str) -> aws_sdk_eks::types::AccessEntry {
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(principal)
        .send()
        .await
        .unwrap()
        .access_entry()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn created_entry_is_described_with_every_field() {
    let (_emulator, eks) = api_cluster().await;
    let created = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .kubernetes_groups("developers")
        .username("alice")
        .tags("eks-iam-sync/managed", "true")
        .send()
        .await
        .unwrap();
    let created = created.access_entry().unwrap();
    let described = eks
        .describe_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap();
    let entry = described.access_entry().unwrap();
    assert_eq!(entry, created);
    assert_eq!(entry.cluster_name(), Some("api"));
    assert_eq!(entry.principal_arn(), Some(ALICE));
    assert_eq!(entry.kubernetes_groups(), ["developers"]);
    assert_eq!(entry.username(), Some("alice"));
    assert_eq!(entry.r#type(), Some("STANDARD"));
    assert_eq!(
        entry.tags().unwrap().get("eks-iam-sync/managed"),
        Some(&"true".to_owned())
    );
    let arn = entry.access_entry_arn().unwrap();
    let prefix = "arn:aws:eks:us-east-1:123456789012:access-entry/api/user/123456789012/alice/";
    assert!(arn.starts_with(prefix), "{arn}");
    assert_eq!(arn[prefix.len()..].len(), 36, "a UUID ends the ARN: {arn}");
    assert!(entry.created_at().is_some() && entry.modified_at().is_some());
}

#[tokio::test]
async fn default_usernames_are_the_user_arn_or_the_role_session_arn() {
    let (_emulator, eks) = api_cluster().await;
    assert_eq!(create(&eks, ALICE).await.username(), Some(ALICE));
    assert_eq!(
        create(&eks, DEPLOY_ROLE).await.username(),
        Some("arn:aws:sts::123456789012:assumed-role/Deploy/{{SessionName}}")
    );
}

#[tokio::test]
async fn config_map_clusters_refuse_access_entry_operations() {
    let (_emulator, eks) = with_cluster("legacy", AuthenticationMode::ConfigMap).await;
    let create = eks
        .create_access_entry()
        .cluster_name("legacy")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap_err();
    assert_eq!(create.raw_response().unwrap().status().as_u16(), 400);
    let CreateAccessEntryError::InvalidRequestException(err) = create.into_service_error() else {
        panic!("expected InvalidRequestException");
    };
    assert_eq!(
        err.message(),
        Some(
            "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] \
             to perform this operation."
        )
    );
    let list = eks
        .list_access_entries()
        .cluster_name("legacy")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(list, ListAccessEntriesError::InvalidRequestException(_)),
        "{list:?}"
    );
}

#[tokio::test]
async fn a_second_entry_for_the_same_principal_is_resource_in_use() {
    let (_emulator, eks) = api_cluster().await;
    create(&eks, DEPLOY_ROLE).await;
    // The same role without its path, and with other case: still the same principal.
    for principal in [DEPLOY_ROLE, "arn:aws:iam::123456789012:role/deploy"] {
        let err = eks
            .create_access_entry()
            .cluster_name("api")
            .principal_arn(principal)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().unwrap().status().as_u16(), 409);
        let err = err.into_service_error();
        assert!(
            matches!(err, CreateAccessEntryError::ResourceInUseException(_)),
            "{principal}: {err:?}"
        );
    }
}

#[tokio::test]
async fn missing_entries_and_clusters_are_resource_not_found() {
    let (_emulator, eks) = api_cluster().await;
    let describe = eks
        .describe_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let DescribeAccessEntryError::ResourceNotFoundException(not_found) = describe else {
        panic!("expected ResourceNotFoundException, got {describe:?}");
    };
    assert_eq!(not_found.cluster_name(), Some("api"));
    let update = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .username("alice")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        update,
        UpdateAccessEntryError::ResourceNotFoundException(_)
    ));
    let delete = eks
        .delete_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        delete,
        DeleteAccessEntryError::ResourceNotFoundException(_)
    ));
    let no_cluster = eks
        .list_access_entries()
        .cluster_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        no_cluster,
        ListAccessEntriesError::ResourceNotFoundException(_)
    ));
}

#[tokio::test]
async fn reserved_prefixes_are_invalid_parameters_on_create_and_update() {
    let (_emulator, eks) = api_cluster().await;
    create(&eks, ALICE).await;
    for prefix in RESERVED_PREFIXES {
        let name = format!("{prefix}x");
        let as_group = eks
            .create_access_entry()
            .cluster_name("api")
            .principal_arn("arn:aws:iam::123456789012:user/bob")
            .kubernetes_groups(&name)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        let CreateAccessEntryError::InvalidParameterException(err) = as_group else {
            panic!("{name} as a group: {as_group:?}");
        };
        assert!(err.message().unwrap().contains(&name), "{err:?}");
        let as_username = eks
            .update_access_entry()
            .cluster_name("api")
            .principal_arn(ALICE)
            .username(&name)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(
                as_username,
                UpdateAccessEntryError::InvalidParameterException(_)
            ),
            "{name} as a username: {as_username:?}"
        );
    }
}

#[tokio::test]
async fn session_principals_are_not_valid_principals() {
    let (_emulator, eks) = api_cluster().await;
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn("arn:aws:sts::123456789012:assumed-role/Deploy/session")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateAccessEntryError::InvalidParameterException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_entries_limit_is_resource_limit_exceeded() {
    let (emulator, eks) = api_cluster().await;
    emulator.set_access_entries_limit(2);
    create(&eks, ALICE).await;
    create(&eks, DEPLOY_ROLE).await;
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn("arn:aws:iam::123456789012:user/carol")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            CreateAccessEntryError::ResourceLimitExceededException(_)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn list_access_entries_pages_by_100() {
    let (emulator, eks) = api_cluster().await;
    let mut principals: Vec<String> = (0..250)
        .map(|i| format!("arn:aws:iam::123456789012:user/u-{i:03}"))
        .collect();
    for principal in principals.iter().rev() {
        emulator
            .create_access_entry(
                ACCOUNT,
                REGION,
                "api",
                CreateAccessEntryRequest::new(principal),
            )
            .unwrap();
    }
    principals.sort();
    let pages = eks
        .list_access_entries()
        .cluster_name("api")
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p.access_entries().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let listed: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.access_entries())
        .map(String::as_str)
        .collect();
    assert_eq!(listed, principals);
    assert_eq!(emulator.calls("ListAccessEntries"), 3);
    for max_results in [0, 101] {
        let err = eks
            .list_access_entries()
            .cluster_name("api")
            .max_results(max_results)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(matches!(
            err,
            ListAccessEntriesError::InvalidParameterException(_)
        ));
    }
}

#[tokio::test]
async fn update_replaces_only_the_given_fields() {
    let (_emulator, eks) = api_cluster().await;
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .kubernetes_groups("viewers")
        .username("alice")
        .send()
        .await
        .unwrap();
    let updated = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .kubernetes_groups("developers")
        .kubernetes_groups("viewers")
        .send()
        .await
        .unwrap();
    let entry = updated.access_entry().unwrap();
    assert_eq!(entry.kubernetes_groups(), ["developers", "viewers"]);
    assert_eq!(entry.username(), Some("alice"));
    assert!(entry.modified_at().unwrap() >= entry.created_at().unwrap());
}

#[tokio::test]
async fn a_deleted_entry_is_gone_and_a_recreated_one_has_a_new_arn() {
    let (emulator, eks) = api_cluster().await;
    let first = create(&eks, ALICE).await;
    eks.delete_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap();
    assert!(emulator
        .access_entry_for(ACCOUNT, REGION, "api", ALICE)
        .is_none());
    let second = create(&eks, ALICE).await;
    assert_ne!(first.access_entry_arn(), second.access_entry_arn());
}

#[tokio::test]
async fn node_entries_get_their_identity_from_eks_and_refuse_updates() {
    let (emulator, eks) = api_cluster().await;
    let node_role = "arn:aws:iam::123456789012:role/eks-node-role";
    let entry = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(node_role)
        .r#type("EC2_LINUX")
        .send()
        .await
        .unwrap();
    let entry = entry.access_entry().unwrap();
    assert_eq!(entry.username(), Some("system:node:{{EC2PrivateDNSName}}"));
    assert_eq!(entry.kubernetes_groups(), ["system:nodes"]);
    let err = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(node_role)
        .kubernetes_groups("developers")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        Some("This operation can only be performed on Access Entries with a type of \"STANDARD\".")
    );
    let user_as_node = emulator.create_access_entry(ACCOUNT, REGION, "api", {
        let mut request = CreateAccessEntryRequest::new(ALICE);
        request.entry_type = AccessEntryType::Ec2Linux;
        request
    });
    assert_eq!(user_as_node.unwrap_err().code, "InvalidParameterException");
}

#[tokio::test]
async fn access_entry_for_matches_role_sessions_whatever_the_path() {
    let (emulator, eks) = api_cluster().await;
    create(&eks, DEPLOY_ROLE).await;
    let entry = emulator
        .access_entry_for(
            ACCOUNT,
            REGION,
            "api",
            "arn:aws:iam::123456789012:role/Deploy",
        )
        .unwrap();
    assert_eq!(entry.principal_arn, DEPLOY_ROLE);
    assert!(emulator
        .access_entry_for(OTHER_ACCOUNT, REGION, "api", DEPLOY_ROLE)
        .is_none());
}

#[tokio::test]
async fn access_entries_are_tagged_untagged_and_listed() {
    let (_emulator, eks) = api_cluster().await;
    let arn = create(&eks, ALICE)
        .await
        .access_entry_arn()
        .unwrap()
        .to_owned();
    eks.tag_resource()
        .resource_arn(&arn)
        .tags("eks-iam-sync/managed", "true")
        .tags("team", "platform")
        .send()
        .await
        .unwrap();
    eks.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = eks
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([("eks-iam-sync/managed".to_owned(), "true".to_owned())])
    );
    let described = eks
        .describe_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(described.access_entry().unwrap().tags(), tags.tags());

    let reserved = eks
        .tag_resource()
        .resource_arn(&arn)
        .tags("aws:owner", "me")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(reserved, TagResourceError::BadRequestException(_)),
        "{reserved:?}"
    );
    let gone = eks
        .tag_resource()
        .resource_arn(format!("{arn}0"))
        .tags("k", "v")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(gone, TagResourceError::NotFoundException(_)));
}

#[tokio::test]
async fn tagging_a_cluster_shows_in_describe_cluster() {
    let (emulator, eks) = api_cluster().await;
    let arn = emulator.cluster(ACCOUNT, REGION, "api").unwrap().arn();
    eks.tag_resource()
        .resource_arn(&arn)
        .tags("eks-iam-sync/discover", "yes")
        .send()
        .await
        .unwrap();
    let described = eks.describe_cluster().name("api").send().await.unwrap();
    let tags = described.cluster().unwrap().tags().unwrap();
    assert_eq!(tags.get("eks-iam-sync/discover"), Some(&"yes".to_owned()));
}

#[tokio::test]
async fn failures_injected_for_one_cluster_leave_the_others_alone() {
    let (emulator, url) = start().await;
    emulator.add_cluster(cluster("sick"));
    emulator.add_cluster(cluster("healthy"));
    emulator.fail_next_for("DescribeCluster", "sick", 1, InjectedError::Throttling);
    let eks = plain_client(&url);

    eks.describe_cluster().name("healthy").send().await.unwrap();
    let err = eks
        .describe_cluster()
        .name("sick")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("TooManyRequestsException"));
    eks.describe_cluster().name("sick").send().await.unwrap();
    assert_eq!(emulator.calls_for("DescribeCluster", "sick"), 2);
    assert_eq!(emulator.calls_for("DescribeCluster", "healthy"), 1);
    assert_eq!(emulator.calls("DescribeCluster"), 3);

    emulator.fail_next_for("DescribeCluster", "sick", 1, InjectedError::ServerException);
    let err = eks
        .describe_cluster()
        .name("sick")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, DescribeClusterError::ServerException(_)));
}

#[tokio::test]
async fn failures_injected_for_a_cluster_hit_its_access_entry_operations() {
    let (emulator, eks) = api_cluster().await;
    emulator.fail_next_for(
        "CreateAccessEntry",
        "api",
        1,
        InjectedError::ServiceUnavailable,
    );
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    assert!(emulator
        .access_entry_for(ACCOUNT, REGION, "api", ALICE)
        .is_none());
    create(&eks, ALICE).await;
}

/// Resolves one key to the other account.
struct OneKey;

impl AccountResolver for OneKey {
    fn account_of<'a>(&'a self, access_key_id: &'a str) -> BoxFuture<'a, Option<String>> {
        let account = (access_key_id == ACCESS_KEY).then(|| OTHER_ACCOUNT.to_owned());
        async move { account }.boxed()
    }
}

#[tokio::test]
async fn the_account_resolver_places_unmapped_keys() {
    let (emulator, url) = start().await;
    let mut theirs = cluster("theirs");
    theirs.account = OTHER_ACCOUNT.into();
    emulator.add_cluster(theirs);
    emulator.add_cluster(cluster("ours"));
    let eks = plain_client(&url);
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), ["ours"]);

    emulator.set_account_resolver(Arc::new(OneKey));
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), ["theirs"]);
    // An explicit mapping wins over the resolver.
    emulator.map_access_key(ACCESS_KEY, ACCOUNT);
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), ["ours"]);
}

/// IAM as a settable map from principal ARN to unique id.
#[derive(Default)]
struct FakeIam(Mutex<HashMap<String, String>>);

impl FakeIam {
    fn set(&self, arn: &str, id: &str) {
        lock(&self.0).insert(arn.to_owned(), id.to_owned());
    }
}

impl PrincipalDirectory for FakeIam {
    fn principal_id<'a>(&'a self, principal_arn: &'a str) -> BoxFuture<'a, Option<String>> {
        let id = lock(&self.0).get(principal_arn).cloned();
        async move { id }.boxed()
    }
}

#[tokio::test]
async fn an_entry_keeps_the_principal_id_iam_reported_when_it_was_created() {
    let (emulator, eks) = api_cluster().await;
    let iam = Arc::new(FakeIam::default());
    emulator.set_principal_directory(iam.clone());
    iam.set(ALICE, "AIDAFIRSTALICE");
    create(&eks, ALICE).await;
    let id = |emulator: &EksEmulator| {
        emulator
            .access_entry_for(ACCOUNT, REGION, "api", ALICE)
            .and_then(|entry| entry.principal_id)
    };
    assert_eq!(id(&emulator).as_deref(), Some("AIDAFIRSTALICE"));

    // alice is deleted and recreated: IAM has a new id, the entry keeps the one it was made for.
    iam.set(ALICE, "AIDASECONDALICE");
    assert_eq!(id(&emulator).as_deref(), Some("AIDAFIRSTALICE"));
    // Only an entry created again is bound to the new alice.
    eks.delete_access_entry()
        .cluster_name("api")
        .principal_arn(ALICE)
        .send()
        .await
        .unwrap();
    create(&eks, ALICE).await;
    assert_eq!(id(&emulator).as_deref(), Some("AIDASECONDALICE"));
}

#[tokio::test]
async fn entries_of_principals_iam_does_not_know_have_no_id() {
    let (emulator, eks) = api_cluster().await;
    create(&eks, ALICE).await;
    emulator.set_principal_directory(Arc::new(FakeIam::default()));
    create(&eks, DEPLOY_ROLE).await;
    for principal in [ALICE, DEPLOY_ROLE] {
        let entry = emulator
            .access_entry_for(ACCOUNT, REGION, "api", principal)
            .unwrap();
        assert_eq!(entry.principal_id, None, "{principal}");
    }
}
