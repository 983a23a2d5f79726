//! What every simulated cluster holds before the product touches it, mirroring a real EKS
//! cluster after `eksctl create cluster` plus the product's documented one-time bootstrap:
//! aws-auth with a node role and the sync function's role, the RBAC the product ships for
//! its own identity (`deploy/rbac.yaml`), and an example role for the `developers` group.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::Client;

use crate::moto::ACCOUNT_ID;

/// The product's in-cluster RBAC, applied verbatim so the tests prove it is enough.
pub const PRODUCT_RBAC: &str = include_str!("../../deploy/rbac.yaml");

/// The IAM role the sync function runs as.
pub const SYNC_ROLE: &str = "eks-iam-sync";
/// A role admins assume; mapped with a `{{SessionName}}` username template.
pub const ADMIN_ROLE: &str = "eks-admin";
/// The node role every EKS cluster maps.
pub const NODE_ROLE: &str = "eks-node-role";

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

/// The initial `mapRoles` value, byte for byte; tests compare it after syncs.
pub fn initial_map_roles() -> String {
    format!(
        "- rolearn: arn:aws:iam::{ACCOUNT_ID}:role/{NODE_ROLE}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n- rolearn: arn:aws:iam::{ACCOUNT_ID}:role/{SYNC_ROLE}\n  username: eks-iam-sync\n  groups:\n    - eks-iam-sync\n- rolearn: arn:aws:iam::{ACCOUNT_ID}:role/{ADMIN_ROLE}\n  username: admin:{{{{SessionName}}}}\n  groups:\n    - developers\n"
    )
}

/// Creates aws-auth and applies the RBAC manifests.
pub async fn bootstrap(client: &Client) -> anyhow::Result<()> {
    let aws_auth: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": initial_map_roles()},
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
