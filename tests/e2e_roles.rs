//! End to end: role mappings whose user names carry the session name, so that every person
//! behind a shared role (an IAM Identity Center permission set, an admin role) is a user of
//! their own in the audit log.
//!
//! The bed: a `CONFIG_MAP` and an `API` cluster in the function's own account, and a
//! `CONFIG_MAP` cluster in a second account reached through `roleArn`. In each account an
//! Identity Center role `AWSReservedSSO_AdministratorAccess_<hex>` under
//! `/aws-reserved/sso.amazonaws.com/`; in the own account also a plain admin role mapped by ARN
//! with `admin:{{SessionName}}`. Two sessions named like SSO users (`alice@example.com`,
//! `bob@example.com`) sign in with tokens from the AWS CLI; the API server's audit log shows
//! two users, each naming the person. Reassigning the permission set (the role deleted and
//! created again with a new suffix) is followed by the next full reconcile, and the old entry
//! goes. The node role entry, the bed's own mapRoles entries and hand-made access entries keep
//! their bytes throughout.

mod common;

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use common::{aws_auth_data, list_pods, reported, session, signed_in_as};
use eks_iam_sync::cluster::{EksDirectory, DEFAULT_CACHE_TTL};
use eks_iam_sync::config::Config;
use eks_iam_sync::credentials::AssumeRoles;
use eks_iam_sync::handler::handle;
use eks_iam_sync::report::Outcome;
use eks_iam_sync::sync::{App, TokenConnector};
use eks_testbed::awscli::get_token;
use eks_testbed::eks::{AccessEntry, AuthenticationMode, CreateAccessEntryRequest};
use eks_testbed::moto::ACCOUNT_ID;
use eks_testbed::{ClusterOptions, FleetOptions, TestBed};

const OTHER_ACCOUNT: &str = "210987654321";
const SSO_PATH: &str = "/aws-reserved/sso.amazonaws.com/";
const SET: &str = "AdministratorAccess";
const CLUSTERS: [&str; 3] = ["cm", "api", "other"];

async fn start() -> TestBed {
    TestBed::start(
        FleetOptions::new()
            .cluster(ClusterOptions::new("cm"))
            .cluster(ClusterOptions::new("api").mode(AuthenticationMode::Api))
            .cluster(ClusterOptions::new("other").account(OTHER_ACCOUNT)),
    )
    .await
    .expect("test bed starts")
}

fn config(bed: &TestBed, admin_role: &str) -> Config {
    let clusters: Vec<serde_json::Value> = bed
        .description()
        .clusters
        .iter()
        .map(|c| {
            let mut cluster = serde_json::json!({"name": c.name, "region": c.region});
            if let Some(role) = &c.role_arn {
                cluster["roleArn"] = role.as_str().into();
            }
            cluster
        })
        .collect();
    let document = serde_json::json!({
        "groups": [{"iamGroup": "eks-developers", "kubernetesGroups": ["developers"]}],
        "clusters": clusters,
        "roles": [
            {"permissionSet": SET, "kubernetesGroups": ["developers"]},
            {"roleArn": admin_role, "kubernetesGroups": ["developers"], "usernameTemplate": "admin:{{SessionName}}"},
        ],
    });
    Config::parse(&document.to_string()).expect("roles config is valid")
}

/// The product wired as `main` wires it: its own role, STS AssumeRole for the other account,
/// used for EKS, the cluster tokens and the role lookups there.
fn wired(bed: &TestBed, config: Config) -> App {
    let description = bed.description();
    let own = SharedCredentialsProvider::new(description.credentials.sync_role.sdk_credentials());
    let sdk = |endpoint: &str| eks_iam_sync::aws::config_for(common::REGION, endpoint, own.clone());
    let identities = Arc::new(AssumeRoles::new(
        own.clone(),
        aws_sdk_sts::Client::new(&sdk(&description.endpoints.sts)),
    ));
    App {
        config,
        iam: Box::new(
            eks_iam_sync::iam::SdkIam::new(aws_sdk_iam::Client::new(&sdk(&description
                .endpoints
                .iam)))
            .with_identities(identities.clone()),
        ),
        clusters: Box::new(EksDirectory::with_identities(
            sdk(&description.endpoints.eks),
            DEFAULT_CACHE_TTL,
            identities.clone(),
        )),
        connector: Box::new(TokenConnector::new(identities)),
    }
}

fn account_of(bed: &TestBed, cluster: &str) -> String {
    bed.cluster(cluster).unwrap().account_id.clone()
}

/// Creates the Identity Center role of [`SET`] in `account` with `suffix`, under the Identity
/// Center path (newer instances add their region to it); returns its ARN.
async fn sso_role(bed: &TestBed, account: &str, suffix: &str) -> String {
    let name = format!("AWSReservedSSO_{SET}_{suffix}");
    let path = if account == OTHER_ACCOUNT {
        format!("{SSO_PATH}eu-west-2/")
    } else {
        SSO_PATH.to_owned()
    };
    bed.seeder_in(account)
        .create_role_at(&name, &path)
        .await
        .unwrap()
        .0
}

fn unowned_entries(bed: &TestBed, cluster: &str) -> Vec<AccessEntry> {
    let c = bed.cluster(cluster).unwrap();
    bed.eks()
        .access_entries(&c.account_id, &c.region, &c.name)
        .into_iter()
        .filter(|e| !e.tags.contains_key("eks-iam-sync/managed"))
        .collect()
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_shared_and_identity_center_roles_are_named_per_person_and_follow_a_reassignment(
) {
    let bed = start().await;
    let own = ACCOUNT_ID;
    let own_sso = sso_role(&bed, own, "0a1b2c3d4e5f6a7b").await;
    let other_sso = sso_role(&bed, OTHER_ACCOUNT, "1122334455667788").await;
    let (admin_role, _) = bed
        .seeder()
        .create_role_at("eks-cluster-admin", "/")
        .await
        .unwrap();
    // A hand-made access entry on the API cluster, for a role the config does not name.
    let api = bed.cluster("api").unwrap();
    let hand_role = format!("arn:aws:iam::{own}:role/ops/break-glass");
    bed.eks()
        .create_access_entry(
            &api.account_id,
            &api.region,
            "api",
            CreateAccessEntryRequest {
                username: Some("break-glass:{{SessionName}}".into()),
                kubernetes_groups: vec!["ops".into()],
                ..CreateAccessEntryRequest::new(&hand_role)
            },
        )
        .unwrap();
    let map_roles_before: Vec<(String, String)> = {
        let mut v = Vec::new();
        for cluster in ["cm", "other"] {
            v.push((
                cluster.to_owned(),
                aws_auth_data(&bed, cluster).await["mapRoles"].clone(),
            ));
        }
        v
    };
    let unowned_before = unowned_entries(&bed, "api");

    let app = wired(&bed, config(&bed, &admin_role));
    let full = serde_json::json!({"action": "reconcile", "dryRun": false});
    let report = handle(&app, &full).await.unwrap();
    for cluster in CLUSTERS {
        let r = reported(&report, cluster);
        assert_eq!(r.outcome, Outcome::Updated, "{r:?}");
        // The Identity Center role of the cluster's account, and the admin role.
        assert_eq!(r.added, 2, "{r:?}");
    }

    // aws-auth: path-less ARNs, the rest of mapRoles as it was, byte for byte.
    for (cluster, before) in &map_roles_before {
        let after = aws_auth_data(&bed, cluster).await["mapRoles"].clone();
        assert!(after.starts_with(before.as_str()), "{cluster}: {after}");
        let sso = if cluster == "cm" {
            &own_sso
        } else {
            &other_sso
        };
        let path_less = format!(
            "arn:aws:iam::{}:role/{}",
            account_of(&bed, cluster),
            role_name(sso)
        );
        assert!(
            after.contains(&format!("rolearn: {path_less}\n")),
            "{after}"
        );
        assert!(!after.contains(SSO_PATH), "{after}");
    }
    // Access entries: the ARN with its path, EKS's default user name for a role.
    let entry = bed
        .eks()
        .access_entry_for(&api.account_id, &api.region, "api", &own_sso)
        .expect("an access entry for the Identity Center role");
    assert_eq!(entry.principal_arn, own_sso);
    assert_eq!(
        entry.username,
        format!(
            "arn:aws:sts::{own}:assumed-role/{}/{{{{SessionName}}}}",
            role_name(&own_sso)
        )
    );
    assert_eq!(entry.kubernetes_groups, ["developers"]);

    // Two people behind each role, each their own user, everywhere.
    for (cluster, sso) in [("cm", &own_sso), ("api", &own_sso), ("other", &other_sso)] {
        let alice = session(&bed, sso, "alice@example.com").await;
        let bob = session(&bed, sso, "bob@example.com").await;
        let (a, b) = (
            signed_in_as(&bed, cluster, &alice).await.unwrap(),
            signed_in_as(&bed, cluster, &bob).await.unwrap(),
        );
        assert_ne!(a, b, "{cluster}");
        assert!(a.ends_with("/alice-example.com"), "{cluster}: {a}");
        assert!(b.ends_with("/bob-example.com"), "{cluster}: {b}");
    }
    for cluster in ["cm", "api"] {
        let alice = session(&bed, &admin_role, "alice@example.com").await;
        assert_eq!(
            signed_in_as(&bed, cluster, &alice).await.unwrap(),
            "admin:alice-example.com",
            "{cluster}"
        );
    }

    // Reassigned: Identity Center deletes the role and creates one with a new suffix.
    bed.seeder().delete_role(role_name(&own_sso)).await.unwrap();
    let new_sso = sso_role(&bed, own, "99aa88bb77cc66dd").await;
    let report = handle(&app, &full).await.unwrap();
    for cluster in ["cm", "api"] {
        let r = reported(&report, cluster);
        assert_eq!(
            (r.outcome, r.added, r.removed),
            (Outcome::Updated, 1, 1),
            "{r:?}"
        );
    }
    assert_eq!(reported(&report, "other").outcome, Outcome::Unchanged);
    let carol = session(&bed, &new_sso, "carol@example.com").await;
    for cluster in ["cm", "api"] {
        let name = signed_in_as(&bed, cluster, &carol).await.unwrap();
        assert!(name.ends_with("/carol-example.com"), "{cluster}: {name}");
    }
    let map_roles = aws_auth_data(&bed, "cm").await["mapRoles"].clone();
    assert!(!map_roles.contains(role_name(&own_sso)), "{map_roles}");
    assert!(bed
        .eks()
        .access_entry_for(&api.account_id, &api.region, "api", &own_sso)
        .is_none());

    // Everything else exactly as it was.
    for (cluster, before) in &map_roles_before {
        let after = aws_auth_data(&bed, cluster).await["mapRoles"].clone();
        assert!(after.starts_with(before.as_str()), "{cluster}: {after}");
    }
    assert_eq!(unowned_entries(&bed, "api"), unowned_before);

    // Nothing changed: nothing written.
    let again = handle(&app, &full).await.unwrap();
    for cluster in CLUSTERS {
        assert_eq!(reported(&again, cluster).outcome, Outcome::Unchanged);
    }

    // The whole `roles` section taken out: the next full reconcile revokes every role mapping
    // the tool made, as taking out one entry does, and leaves the rest as it was.
    let mut without_roles = config(&bed, &admin_role);
    without_roles.roles.clear();
    let report = handle(&wired(&bed, without_roles), &full).await.unwrap();
    for cluster in CLUSTERS {
        let r = reported(&report, cluster);
        assert_eq!((r.outcome, r.removed), (Outcome::Updated, 2), "{r:?}");
    }
    for (cluster, before) in &map_roles_before {
        let after = aws_auth_data(&bed, cluster).await["mapRoles"].clone();
        assert_eq!(&after, before, "{cluster}");
    }
    assert_eq!(unowned_entries(&bed, "api"), unowned_before);
    let dave = session(&bed, &new_sso, "dave@example.com").await;
    for cluster in ["cm", "api"] {
        let region = &bed.cluster(cluster).unwrap().region;
        // Signed two minutes ago: a token the API server has never seen, so not a cached success.
        let token = get_token(&dave, cluster, region, Some("-2m")).unwrap();
        assert_eq!(
            list_pods(&bed, cluster, &token).await,
            Err(401),
            "{cluster}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_event_touches_only_role_entries() {
    let bed = start().await;
    let app = wired(&bed, {
        let (admin_role, _) = bed
            .seeder()
            .create_role_at("eks-cluster-admin", "/")
            .await
            .unwrap();
        config(&bed, &admin_role)
    });
    // dora is granted by her group; the role event must leave her alone.
    let dora = bed.seeder().create_user("dora").await.unwrap();
    bed.seeder()
        .add_user_to_group("dora", "eks-developers")
        .await
        .unwrap();
    handle(&app, &common::event("add-user-to-group.json", "dora"))
        .await
        .unwrap();
    let users_before = common::map_users(&bed, "cm").await;

    let sso = sso_role(&bed, ACCOUNT_ID, "abcdef0123456789").await;
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/events/create-role-sso.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    event["detail"]["requestParameters"]["roleName"] = role_name(&sso).into();
    let report = handle(&app, &event).await.unwrap();
    assert_eq!(report.trigger, format!("roles:{}", role_name(&sso)));
    let cm = reported(&report, "cm");
    assert_eq!((cm.outcome, cm.added), (Outcome::Updated, 1), "{cm:?}");
    assert_eq!(common::map_users(&bed, "cm").await, users_before);
    let bob = session(&bed, &sso, "bob@example.com").await;
    assert!(signed_in_as(&bed, "api", &bob)
        .await
        .unwrap()
        .ends_with("/bob-example.com"));
    let _ = dora;
}
