//! The test bed itself, end to end: real AWS CLI tokens against real kube-apiservers through
//! the authentication webhook, and the EKS emulator feeding a TLS-verifying kube client.

mod support;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use eks_testbed::awscli::get_token;
use eks_testbed::{TestBed, TestBedOptions};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use support::{list_pods, map_user, wait_for_audit};

const REGION: &str = "us-east-1";

fn bed() -> &'static TestBed {
    TestBed::shared(TestBedOptions::default())
}

fn decode(token: &str) -> String {
    let body = token.strip_prefix("k8s-aws-v1.").unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

fn encode(url: &str) -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(url))
}

#[tokio::test]
async fn aws_cli_token_of_mapped_user_authenticates_and_is_audited() {
    let bed = bed();
    let keys = bed.seeder().create_user("tessa").await.unwrap();
    let cluster = &bed.cluster_names()[0];
    map_user(bed, cluster, &keys, "tessa").await;

    let token = get_token(&keys, cluster, REGION, None).unwrap();
    list_pods(bed, cluster, &token)
        .await
        .expect("RBAC lets developers list pods");

    let event = wait_for_audit(bed, cluster, "tessa").await;
    assert_eq!(event["user"]["extra"]["arn"][0], keys.arn.as_str());
    assert_eq!(event["user"]["groups"][0], "developers");
}

#[tokio::test]
async fn malformed_or_misdirected_tokens_are_rejected() {
    let bed = bed();
    let keys = bed.seeder().create_user("mallory").await.unwrap();
    let names = bed.cluster_names();
    let (cluster, other) = (&names[0], &names[1]);
    for c in [cluster, other] {
        map_user(bed, c, &keys, "mallory").await;
    }
    let token = get_token(&keys, cluster, REGION, None).unwrap();
    list_pods(bed, cluster, &token)
        .await
        .expect("the genuine token works");
    let url = decode(&token);

    let old = get_token(&keys, cluster, REGION, Some("-20m")).unwrap();
    let extra_param = encode(&format!("{url}&X-Extra=1"));
    let padded = {
        let mut t = format!("k8s-aws-v1.{}", URL_SAFE.encode(&url));
        if !t.ends_with('=') {
            t.push('=');
        }
        t
    };
    let unknown_key = encode(&url.replace(keys.access_key_id.as_str(), "AKIAUNKNOWNKEY000000"));
    let wrong_signature = {
        let flipped = if url.ends_with('0') { '1' } else { '0' };
        encode(&format!("{}{flipped}", &url[..url.len() - 1]))
    };

    let cases = [
        (
            "the same token sent to the other cluster",
            other,
            token.clone(),
        ),
        ("X-Amz-Date more than 15 minutes old", cluster, old),
        ("an extra query parameter", cluster, extra_param),
        ("padded base64", cluster, padded),
        ("an unknown access key", cluster, unknown_key),
        ("a wrong signature", cluster, wrong_signature),
    ];
    for (what, target, bad) in cases {
        assert_eq!(
            list_pods(bed, target, &bad).await,
            Err(401),
            "{what} must be rejected"
        );
    }
}

#[tokio::test]
async fn assumed_role_token_maps_through_map_roles_with_session_name() {
    let bed = bed();
    let admin = &bed.description().credentials.admin_role;
    assert!(
        admin.arn.contains(":assumed-role/eks-admin/"),
        "{}",
        admin.arn
    );
    let cluster = &bed.cluster_names()[1];
    let token = get_token(admin, cluster, REGION, None).unwrap();
    list_pods(bed, cluster, &token)
        .await
        .expect("the admin role maps to developers");
    // mapRoles says admin:{{SessionName}}; the authenticator turns '@' into '-'.
    let event = wait_for_audit(bed, cluster, "admin:jane-example.com").await;
    assert_eq!(event["user"]["extra"]["sessionName"][0], "jane@example.com");
}

#[tokio::test]
async fn eks_emulator_describe_cluster_gives_endpoint_and_ca_for_a_verifying_client() {
    let bed = bed();
    let description = bed.description();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&description.endpoints.eks)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                description.credentials.sync_role.sdk_credentials(),
            ),
        )
        .build();
    let eks = aws_sdk_eks::Client::new(&sdk);
    let names = bed.cluster_names();
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), names.as_slice());

    let mut described = Vec::new();
    for name in &names {
        let out = eks.describe_cluster().name(name).send().await.unwrap();
        let cluster = out.cluster().unwrap();
        let ca = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(cluster.certificate_authority().unwrap().data().unwrap())
                .unwrap(),
        )
        .unwrap();
        let endpoint = cluster.endpoint().unwrap().to_string();
        let client =
            eks_testbed::bed::kube_client(&endpoint, &ca, &description.admin_token).unwrap();
        let namespaces: Api<Namespace> = Api::all(client);
        assert!(namespaces.get_opt("kube-system").await.unwrap().is_some());
        described.push((endpoint, ca));
    }
    // Each cluster has its own CA: trusting another cluster's CA fails TLS verification.
    let (endpoint, _) = &described[0];
    let (_, wrong_ca) = &described[1];
    let client =
        eks_testbed::bed::kube_client(endpoint, wrong_ca, &description.admin_token).unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    let err = namespaces.get_opt("kube-system").await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "expected a TLS failure, got {err}"
    );
}
