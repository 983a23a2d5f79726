//! What every simulated cluster holds before the product touches it, mirroring a real EKS
//! cluster after `eksctl create cluster` plus the product's documented one-time bootstrap:
//! aws-auth with a node role and the sync function's role, the RBAC the product ships for
//! its own identity (`deploy/rbac.yaml`), and an example role for the `developers` group.
//! Clusters whose mode includes the EKS API also get the access entries EKS and an operator
//! would have made: the node role's and the admin role's.
//!
//! In an account other than the default one, the sync function is the role it assumes there
//! ([`CROSS_ACCOUNT_ROLE`]) and the nodes are that account's; the admin role stays the default
//! account's, as one team administers the whole fleet.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::Client;

use crate::eks::{AccessEntryType, CreateAccessEntryRequest};
use crate::moto::ACCOUNT_ID;

/// The product's in-cluster RBAC, applied verbatim so the tests prove it is enough.
pub const PRODUCT_RBAC: &str = include_str!("../../deploy/rbac.yaml");
/// The product's opt-in RBAC for creating a missing aws-auth; not applied by [`bootstrap`], so
/// every other test proves [`PRODUCT_RBAC`] alone is enough. A test of `createMissingAwsAuth`
/// applies it as an operator who opted in would ([`apply_manifests`]).
pub const PRODUCT_RBAC_CREATE_AWS_AUTH: &str =
    include_str!("../../deploy/rbac-create-aws-auth.yaml");

/// The IAM role the sync function runs as.
pub const SYNC_ROLE: &str = "eks-iam-sync";
/// A role admins assume; mapped with a `{{SessionName}}` username template.
pub const ADMIN_ROLE: &str = "eks-admin";
/// The node role every EKS cluster maps.
pub const NODE_ROLE: &str = "eks-node-role";
/// The role of every other account that the sync function's role may assume, to reach that
/// account's clusters; trusted by the default account's [`SYNC_ROLE`].
pub const CROSS_ACCOUNT_ROLE: &str = "eks-iam-sync-access";
/// The role session name the test bed uses when it assumes [`CROSS_ACCOUNT_ROLE`] itself.
pub const CROSS_ACCOUNT_SESSION: &str = "eks-iam-sync";

/// Lets the `developers` group read pods, so a mapped user can prove access.
const DEVELOPERS_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: developers-read-pods
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: developers-read-pods
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: developers-read-pods
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: developers
"#;

/// The initial `mapRoles` value of a default-account cluster, byte for byte; tests compare it
/// after syncs.
pub fn initial_map_roles() -> String {
    map_roles_for(ACCOUNT_ID)
}

/// The initial `mapRoles` value of a cluster in `account`.
pub fn map_roles_for(account: &str) -> String {
    format!(
        "- rolearn: {node}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n- rolearn: {sync}\n  username: eks-iam-sync\n  groups:\n    - eks-iam-sync\n- rolearn: {admin}\n  username: admin:{{{{SessionName}}}}\n  groups:\n    - developers\n",
        node = role_arn(account, NODE_ROLE),
        sync = sync_role_arn(account),
        admin = role_arn(ACCOUNT_ID, ADMIN_ROLE),
    )
}

/// The role the sync function acts as in `account`: its own role in the default account,
/// [`CROSS_ACCOUNT_ROLE`] elsewhere.
pub fn sync_role_arn(account: &str) -> String {
    let role = if account == ACCOUNT_ID {
        SYNC_ROLE
    } else {
        CROSS_ACCOUNT_ROLE
    };
    role_arn(account, role)
}

/// `arn:aws:iam::ACCOUNT:role/NAME`.
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// The access entries a cluster in `account` starts with when its mode includes the EKS API:
/// the node role's (type `EC2_LINUX`, as EKS makes it for node groups) and the admin role's,
/// mapped as aws-auth maps it. None carries the product's ownership tag.
pub fn initial_access_entries(account: &str) -> Vec<CreateAccessEntryRequest> {
    let node = CreateAccessEntryRequest {
        entry_type: AccessEntryType::Ec2Linux,
        ..CreateAccessEntryRequest::new(role_arn(account, NODE_ROLE))
    };
    let admin = CreateAccessEntryRequest {
        username: Some("admin:{{SessionName}}".into()),
        kubernetes_groups: vec!["developers".into()],
        ..CreateAccessEntryRequest::new(role_arn(ACCOUNT_ID, ADMIN_ROLE))
    };
    vec![node, admin]
}

/// Creates aws-auth and applies the RBAC manifests of a default-account cluster.
pub async fn bootstrap(client: &Client) -> anyhow::Result<()> {
    bootstrap_in(client, ACCOUNT_ID).await
}

/// Creates aws-auth for a cluster in `account` and applies the RBAC manifests.
pub async fn bootstrap_in(client: &Client, account: &str) -> anyhow::Result<()> {
    let aws_auth: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": map_roles_for(account)},
    }))?;
    create(Api::namespaced(client.clone(), "kube-system"), aws_auth).await?;
    apply_manifests(client, PRODUCT_RBAC).await?;
    apply_manifests(client, DEVELOPERS_RBAC).await?;
    Ok(())
}

/// Creates each document of a multi-document YAML manifest (RBAC kinds only).
pub async fn apply_manifests(client: &Client, manifests: &str) -> anyhow::Result<()> {
    for document in serde_yaml_ng::Deserializer::from_str(manifests) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        match value["kind"].as_str() {
            Some("Role") => {
                let api = Api::<Role>::namespaced(client.clone(), &namespace);
                create(api, serde_json::from_value(value)?).await?
            }
            Some("RoleBinding") => {
                let api = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
                create(api, serde_json::from_value(value)?).await?
            }
            Some("ClusterRole") => {
                create(
                    Api::<ClusterRole>::all(client.clone()),
                    serde_json::from_value(value)?,
                )
                .await?
            }
            Some("ClusterRoleBinding") => {
                let api = Api::<ClusterRoleBinding>::all(client.clone());
                create(api, serde_json::from_value(value)?).await?
            }
            other => anyhow::bail!("unsupported kind in manifest: {other:?}"),
        }
    }
    Ok(())
}

async fn create<K>(api: Api<K>, object: K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_account_map_roles_are_unchanged() {
        let expected = "- rolearn: arn:aws:iam::123456789012:role/eks-node-role\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n- rolearn: arn:aws:iam::123456789012:role/eks-iam-sync\n  username: eks-iam-sync\n  groups:\n    - eks-iam-sync\n- rolearn: arn:aws:iam::123456789012:role/eks-admin\n  username: admin:{{SessionName}}\n  groups:\n    - developers\n";
        assert_eq!(initial_map_roles(), expected);
    }

    #[test]
    fn other_accounts_map_their_own_nodes_and_access_role() {
        let roles = map_roles_for("210987654321");
        assert!(roles.contains("arn:aws:iam::210987654321:role/eks-node-role"));
        assert!(roles.contains("arn:aws:iam::210987654321:role/eks-iam-sync-access"));
        assert!(roles.contains("arn:aws:iam::123456789012:role/eks-admin"));
    }
}
