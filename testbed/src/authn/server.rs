//! The token authentication webhook the test bed's kube-apiservers call.
//!
//! One router serves every cluster (`/authenticate/{cluster}`) because the token is bound to
//! the cluster name through its signature, exactly as on EKS. aws-auth and access entries are
//! read on every request rather than watched: tests change them and expect the very next
//! request to see the change. Which of the two decides follows the cluster's authentication
//! mode, as on EKS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    canonicalize_arn, entry_binds, map_access_entry, map_identity, verify_token, AccessEntrySource,
    AuthenticationMode, CallerIdentity, ConfigMapOnly, CredentialIssuer, CredentialStore,
    MappedUser, Rejection,
};

const TOKEN_REVIEW_KIND: &str = "TokenReview";
const SUPPORTED_API_VERSIONS: [&str; 2] =
    ["authentication.k8s.io/v1beta1", "authentication.k8s.io/v1"];

/// Where the webhook reads a cluster's aws-auth `data`; `Ok(None)` when the ConfigMap does not
/// exist. A trait so tests can serve aws-auth without a cluster.
pub trait AwsAuthSource: Send + Sync + 'static {
    fn aws_auth<'a>(
        &'a self,
        cluster: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<BTreeMap<String, String>>>>;
}

/// Reads `kube-system/aws-auth` from each cluster's kube-apiserver. Clusters can be added and
/// removed while the webhook runs, as the EKS emulator creates and deletes them.
#[derive(Default)]
pub struct KubeAwsAuthSource {
    clients: RwLock<HashMap<String, kube::Client>>,
}

impl KubeAwsAuthSource {
    pub fn new(clients: HashMap<String, kube::Client>) -> Self {
        Self {
            clients: RwLock::new(clients),
        }
    }

    pub fn insert(&self, cluster: impl Into<String>, client: kube::Client) {
        self.clients
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster.into(), client);
    }

    pub fn remove(&self, cluster: &str) {
        self.clients
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
    }

    fn client(&self, cluster: &str) -> anyhow::Result<kube::Client> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned()
            .with_context(|| format!("the webhook knows no cluster named {cluster:?}"))
    }
}

impl AwsAuthSource for KubeAwsAuthSource {
    fn aws_auth<'a>(
        &'a self,
        cluster: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<BTreeMap<String, String>>>> {
        Box::pin(async move {
            let api = kube::Api::<ConfigMap>::namespaced(self.client(cluster)?, "kube-system");
            let config_map = api
                .get_opt("aws-auth")
                .await
                .with_context(|| format!("reading kube-system/aws-auth of cluster {cluster}"))?;
            Ok(config_map.map(|cm| cm.data.unwrap_or_default()))
        })
    }
}

/// What the webhook needs: the issued secrets (STS's knowledge, with `issuer` to ask about
/// secrets nobody registered), aws-auth, the clusters' modes and access entries, and a clock
/// that tests can freeze.
pub struct AuthnState {
    pub creds: CredentialStore,
    pub source: Arc<dyn AwsAuthSource>,
    pub access_entries: Arc<dyn AccessEntrySource>,
    pub issuer: Option<Arc<dyn CredentialIssuer>>,
    pub clock: fn() -> SystemTime,
}

impl AuthnState {
    /// A state on the system clock, every cluster in `CONFIG_MAP` mode, knowing only the
    /// secrets in `creds`.
    pub fn new(creds: CredentialStore, source: Arc<dyn AwsAuthSource>) -> Self {
        Self {
            creds,
            source,
            access_entries: Arc::new(ConfigMapOnly),
            issuer: None,
            clock: SystemTime::now,
        }
    }

    /// Takes modes and access entries from `access_entries`.
    pub fn with_access_entries(mut self, access_entries: Arc<dyn AccessEntrySource>) -> Self {
        self.access_entries = access_entries;
        self
    }

    /// Asks `issuer` about access keys `creds` does not know.
    pub fn with_issuer(mut self, issuer: Arc<dyn CredentialIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Verifies `token` for `cluster`; an unknown access key is looked up with the issuer
    /// once, and the token verified again if the issuer knew it.
    async fn verify(&self, cluster: &str, token: &str) -> Result<CallerIdentity, Rejection> {
        match verify_token(token, cluster, (self.clock)(), &self.creds) {
            Err(Rejection::UnknownAccessKey(key)) if self.learn(&key).await => {
                verify_token(token, cluster, (self.clock)(), &self.creds)
            }
            outcome => outcome,
        }
    }

    /// Registers what the issuer knows about `access_key_id`; true if it knew it.
    async fn learn(&self, access_key_id: &str) -> bool {
        let Some(issuer) = &self.issuer else {
            return false;
        };
        match issuer.issued(access_key_id).await {
            Ok(Some(credential)) => {
                tracing::info!(access_key_id, arn = %credential.arn, "learned an access key from STS");
                self.creds.insert(access_key_id, credential);
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(access_key_id, error = %format!("{error:#}"), "could not ask STS about an access key");
                false
            }
        }
    }
}

/// `POST /authenticate/{cluster}` answering TokenReviews.
pub fn router(state: Arc<AuthnState>) -> Router {
    Router::new()
        .route("/authenticate/{cluster}", post(authenticate))
        .with_state(state)
}

/// The kubeconfig for `--authentication-token-webhook-config-file`: the apiserver is the
/// client and `url` the webhook; no client credentials since the webhook listens on loopback.
pub fn webhook_kubeconfig(url: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "eks-authenticator", "cluster": {"server": url}}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{
            "name": "webhook",
            "context": {"cluster": "eks-authenticator", "user": "kube-apiserver"},
        }],
        "current-context": "webhook",
    });
    serde_yaml_ng::to_string(&config).expect("a JSON value always serialises to YAML")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenReviewRequest {
    api_version: String,
    kind: String,
    #[serde(default)]
    spec: TokenReviewSpec,
}

#[derive(Deserialize, Default)]
struct TokenReviewSpec {
    #[serde(default)]
    token: String,
}

/// Which mapping authenticated a caller.
#[derive(Clone, Copy)]
enum Via {
    AccessEntry,
    AwsAuth,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccessEntry => "access entry",
            Self::AwsAuth => "aws-auth",
        }
    }
}

type Decision = Result<(CallerIdentity, MappedUser, Via), Failure>;

/// Why a request was not authenticated.
enum Failure {
    /// A decision: the token or the caller is refused.
    Rejected(Option<CallerIdentity>, Rejection),
    /// No decision could be made (aws-auth unreadable); the apiserver may retry on a 5xx.
    Unavailable(CallerIdentity, anyhow::Error),
}

async fn authenticate(
    State(state): State<Arc<AuthnState>>,
    Path(cluster): Path<String>,
    body: Bytes,
) -> Response {
    let review = match serde_json::from_slice::<TokenReviewRequest>(&body) {
        Ok(review)
            if review.kind == TOKEN_REVIEW_KIND
                && SUPPORTED_API_VERSIONS.contains(&review.api_version.as_str()) =>
        {
            review
        }
        _ => {
            tracing::warn!(cluster, "authentication request is not a TokenReview");
            return (StatusCode::BAD_REQUEST, "expected a TokenReview").into_response();
        }
    };
    let outcome = decide(&state, &cluster, &review.spec.token).await;
    log_outcome(&cluster, &outcome);
    let (status, review_status) = match outcome {
        Ok((_, user, _)) => (StatusCode::OK, granted(user)),
        Err(Failure::Rejected(_, rejection)) => (StatusCode::OK, denied(&rejection)),
        Err(Failure::Unavailable(_, error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            denied(&format!("{error:#}")),
        ),
    };
    let body = json!({
        "apiVersion": review.api_version,
        "kind": TOKEN_REVIEW_KIND,
        "status": review_status,
    });
    (status, Json(body)).into_response()
}

/// Verifies the token, then maps the caller as the cluster's mode says: `CONFIG_MAP` through
/// aws-auth only, `API_AND_CONFIG_MAP` through an access entry if one applies to the caller
/// and aws-auth otherwise, `API` through an access entry only.
async fn decide(state: &AuthnState, cluster: &str, token: &str) -> Decision {
    let identity = state
        .verify(cluster, token)
        .await
        .map_err(|rejection| Failure::Rejected(None, rejection))?;
    let mode = state.access_entries.authentication_mode(cluster);
    if mode == AuthenticationMode::ConfigMap {
        return through_aws_auth(state, cluster, identity).await;
    }
    match through_access_entry(state, cluster, &identity) {
        Ok(Ok(user)) => Ok((identity, user, Via::AccessEntry)),
        Ok(Err(none)) if mode == AuthenticationMode::Api => {
            Err(Failure::Rejected(Some(identity), none))
        }
        // The authenticator tries its next mapper when one does not map the caller.
        Ok(Err(_)) => through_aws_auth(state, cluster, identity).await,
        Err(rejection) => Err(Failure::Rejected(Some(identity), rejection)),
    }
}

/// The caller's access entry on `cluster`, mapped; inside, why none applies to the caller (no
/// entry for its ARN, or one made for another principal: see [`entry_binds`]).
fn through_access_entry(
    state: &AuthnState,
    cluster: &str,
    identity: &CallerIdentity,
) -> Result<Result<MappedUser, Rejection>, Rejection> {
    let principal = canonicalize_arn(&identity.arn)?;
    let Some(entry) = state.access_entries.access_entry(cluster, &principal) else {
        return Ok(Err(Rejection::NoAccessEntry {
            arn: principal,
            cluster: cluster.to_owned(),
        }));
    };
    if let Err(not_theirs) = entry_binds(identity, &principal, &entry) {
        return Ok(Err(not_theirs));
    }
    map_access_entry(identity, &entry).map(Ok)
}

async fn through_aws_auth(state: &AuthnState, cluster: &str, identity: CallerIdentity) -> Decision {
    let aws_auth = match state.source.aws_auth(cluster).await {
        Ok(Some(data)) => data,
        Ok(None) => {
            return Err(Failure::Rejected(
                Some(identity),
                Rejection::NoAwsAuth(cluster.to_string()),
            ))
        }
        Err(error) => return Err(Failure::Unavailable(identity, error)),
    };
    match map_identity(&identity, &aws_auth) {
        Ok(user) => Ok((identity, user, Via::AwsAuth)),
        Err(rejection) => Err(Failure::Rejected(Some(identity), rejection)),
    }
}

fn log_outcome(cluster: &str, outcome: &Decision) {
    match outcome {
        Ok((identity, user, via)) => tracing::info!(
            cluster,
            arn = %identity.arn,
            access_key_id = %identity.access_key_id,
            username = %user.username,
            groups = ?user.groups,
            via = via.as_str(),
            "access granted"
        ),
        Err(Failure::Rejected(identity, reason)) => {
            let (arn, access_key_id) = arn_and_key(identity.as_ref());
            tracing::warn!(cluster, arn, access_key_id, %reason, "access denied");
        }
        Err(Failure::Unavailable(identity, error)) => {
            let (arn, access_key_id) = arn_and_key(Some(identity));
            let reason = format!("{error:#}");
            tracing::error!(cluster, arn, access_key_id, reason, "aws-auth unavailable");
        }
    }
}

/// The identity fields logged with a decision; empty before the token is verified.
fn arn_and_key(identity: Option<&CallerIdentity>) -> (&str, &str) {
    identity.map_or(("", ""), |i| (&i.arn, &i.access_key_id))
}

fn granted(user: MappedUser) -> Value {
    json!({
        "authenticated": true,
        "user": {
            "username": user.username,
            "uid": user.uid,
            "groups": user.groups,
            "extra": user.extra,
        },
    })
}

fn denied(reason: &dyn std::fmt::Display) -> Value {
    json!({"authenticated": false, "error": reason.to_string()})
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::super::test_support::{vector, vector_time};
    use super::super::AccessEntryGrant;
    use super::*;

    /// aws-auth served from memory; `None` plays a cluster without the ConfigMap.
    struct FakeSource(Option<BTreeMap<String, String>>);

    impl AwsAuthSource for FakeSource {
        fn aws_auth<'a>(
            &'a self,
            _cluster: &'a str,
        ) -> BoxFuture<'a, anyhow::Result<Option<BTreeMap<String, String>>>> {
            Box::pin(async move { Ok(self.0.clone()) })
        }
    }

    fn admin_role_aws_auth() -> BTreeMap<String, String> {
        let map_roles = "\
- rolearn: arn:aws:iam::111122223333:role/Admin
  username: 'admin:{{SessionName}}'
  groups: ['system:masters']
";
        BTreeMap::from([("mapRoles".to_string(), map_roles.to_string())])
    }

    fn state(aws_auth: Option<BTreeMap<String, String>>) -> AuthnState {
        AuthnState {
            clock: vector_time,
            ..AuthnState::new(vector().store(), Arc::new(FakeSource(aws_auth)))
        }
    }

    fn app(aws_auth: Option<BTreeMap<String, String>>) -> Router {
        router(Arc::new(state(aws_auth)))
    }

    /// One cluster mode for every cluster, and at most one access entry (for the vector's
    /// role, `arn:aws:iam::111122223333:role/Admin`).
    struct FakeEntries {
        mode: AuthenticationMode,
        entry: Option<AccessEntryGrant>,
    }

    impl AccessEntrySource for FakeEntries {
        fn authentication_mode(&self, _cluster: &str) -> AuthenticationMode {
            self.mode
        }

        fn access_entry(&self, _cluster: &str, principal_arn: &str) -> Option<AccessEntryGrant> {
            let admin = principal_arn == "arn:aws:iam::111122223333:role/Admin";
            self.entry.clone().filter(|_| admin)
        }
    }

    fn entry_for_admin() -> AccessEntryGrant {
        AccessEntryGrant {
            principal_arn: "arn:aws:iam::111122223333:role/Admin".into(),
            principal_id: Some("AROAEXAMPLE".into()),
            username: "entry:{{SessionName}}".into(),
            groups: vec!["developers".into()],
        }
    }

    /// The review of the vector's token on a cluster in `mode`, with or without aws-auth
    /// mapping the role and an access entry for it.
    async fn review_in_mode(
        mode: AuthenticationMode,
        aws_auth: Option<BTreeMap<String, String>>,
        entry: Option<AccessEntryGrant>,
    ) -> Value {
        let state = state(aws_auth).with_access_entries(Arc::new(FakeEntries { mode, entry }));
        let (_, body) = review(
            router(Arc::new(state)),
            "test-cluster",
            "authentication.k8s.io/v1",
        )
        .await;
        body["status"].clone()
    }

    #[tokio::test]
    async fn config_map_mode_ignores_access_entries() {
        let status = review_in_mode(
            AuthenticationMode::ConfigMap,
            Some(admin_role_aws_auth()),
            Some(entry_for_admin()),
        )
        .await;
        assert_eq!(status["user"]["username"], "admin:alice-example.com");
        let status =
            review_in_mode(AuthenticationMode::ConfigMap, None, Some(entry_for_admin())).await;
        assert_eq!(status["authenticated"], false);
    }

    #[tokio::test]
    async fn api_and_config_map_mode_prefers_the_access_entry() {
        let status = review_in_mode(
            AuthenticationMode::ApiAndConfigMap,
            Some(admin_role_aws_auth()),
            Some(entry_for_admin()),
        )
        .await;
        assert_eq!(status["user"]["username"], "entry:alice-example.com");
        assert_eq!(status["user"]["groups"], json!(["developers"]));
    }

    #[tokio::test]
    async fn api_and_config_map_mode_falls_back_to_aws_auth() {
        let status = review_in_mode(
            AuthenticationMode::ApiAndConfigMap,
            Some(admin_role_aws_auth()),
            None,
        )
        .await;
        assert_eq!(status["user"]["username"], "admin:alice-example.com");
    }

    #[tokio::test]
    async fn api_mode_uses_access_entries_only() {
        let status = review_in_mode(AuthenticationMode::Api, None, Some(entry_for_admin())).await;
        assert_eq!(status["authenticated"], true);
        assert_eq!(status["user"]["username"], "entry:alice-example.com");

        let status =
            review_in_mode(AuthenticationMode::Api, Some(admin_role_aws_auth()), None).await;
        assert_eq!(status["authenticated"], false);
        let error = status["error"].as_str().unwrap();
        assert!(error.contains("no access entry"), "{error}");
    }

    #[tokio::test]
    async fn an_entry_made_for_another_principal_id_is_refused_in_api_mode() {
        let recreated = AccessEntryGrant {
            principal_id: Some("AROAFORMERADMIN".into()),
            ..entry_for_admin()
        };
        let status = review_in_mode(AuthenticationMode::Api, None, Some(recreated.clone())).await;
        assert_eq!(status["authenticated"], false);
        let error = status["error"].as_str().unwrap();
        assert!(
            error.contains("made for principal id AROAFORMERADMIN"),
            "{error}"
        );

        // In API_AND_CONFIG_MAP the authenticator moves on to aws-auth, as for no entry.
        let status = review_in_mode(
            AuthenticationMode::ApiAndConfigMap,
            Some(admin_role_aws_auth()),
            Some(recreated),
        )
        .await;
        assert_eq!(status["user"]["username"], "admin:alice-example.com");
    }

    /// An issuer that knows the vector's key, as STS knows keys it issued.
    struct VectorIssuer;

    impl CredentialIssuer for VectorIssuer {
        fn issued<'a>(
            &'a self,
            access_key_id: &'a str,
        ) -> BoxFuture<'a, anyhow::Result<Option<super::super::IssuedCredential>>> {
            let known = vector().store().get(access_key_id);
            Box::pin(async move { Ok(known) })
        }
    }

    #[tokio::test]
    async fn unknown_keys_are_learned_from_the_issuer() {
        let source = Arc::new(FakeSource(Some(admin_role_aws_auth())));
        let creds = CredentialStore::new();
        let without = AuthnState {
            clock: vector_time,
            ..AuthnState::new(creds.clone(), source.clone())
        };
        let (_, body) = review(
            router(Arc::new(without)),
            "test-cluster",
            "authentication.k8s.io/v1",
        )
        .await;
        assert_eq!(body["status"]["authenticated"], false);

        let with = AuthnState {
            clock: vector_time,
            ..AuthnState::new(creds.clone(), source)
        }
        .with_issuer(Arc::new(VectorIssuer));
        let (_, body) = review(
            router(Arc::new(with)),
            "test-cluster",
            "authentication.k8s.io/v1",
        )
        .await;
        assert_eq!(body["status"]["authenticated"], true);
        assert!(creds.get(&vector().access_key_id).is_some());
    }

    async fn review(app: Router, cluster: &str, api_version: &str) -> (StatusCode, Value) {
        let request = json!({
            "apiVersion": api_version,
            "kind": "TokenReview",
            "spec": {"token": vector().token},
        });
        let response = app
            .oneshot(
                Request::post(format!("/authenticate/{cluster}"))
                    .header("content-type", "application/json")
                    .body(Body::from(request.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn router_accepts_a_mapped_token() {
        let app = app(Some(admin_role_aws_auth()));
        let (status, body) = review(app, "test-cluster", "authentication.k8s.io/v1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(body["kind"], "TokenReview");
        assert_eq!(body["status"]["authenticated"], true);
        let user = &body["status"]["user"];
        assert_eq!(user["username"], "admin:alice-example.com");
        assert_eq!(user["groups"], json!(["system:masters"]));
        assert_eq!(
            user["uid"],
            "aws-iam-authenticator:111122223333:AROAEXAMPLE"
        );
        assert_eq!(
            user["extra"]["canonicalArn"],
            json!(["arn:aws:iam::111122223333:role/Admin"])
        );
    }

    #[tokio::test]
    async fn router_rejects_a_token_for_another_cluster() {
        let app = app(Some(admin_role_aws_auth()));
        let (status, body) = review(app, "other-cluster", "authentication.k8s.io/v1beta1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["apiVersion"], "authentication.k8s.io/v1beta1");
        assert_eq!(body["status"]["authenticated"], false);
        let error = body["status"]["error"].as_str().unwrap();
        assert!(error.contains("signature does not match"), "{error}");
        assert!(body["status"].get("user").is_none());
    }

    #[tokio::test]
    async fn router_rejects_when_aws_auth_is_missing() {
        let (_, body) = review(app(None), "test-cluster", "authentication.k8s.io/v1").await;
        assert_eq!(body["status"]["authenticated"], false);
        let error = body["status"]["error"].as_str().unwrap();
        assert!(error.contains("no kube-system/aws-auth"), "{error}");
    }

    #[tokio::test]
    async fn router_refuses_a_body_that_is_not_a_token_review() {
        let response = app(None)
            .oneshot(
                Request::post("/authenticate/test-cluster")
                    .body(Body::from(r#"{"kind":"Pod"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn webhook_kubeconfig_points_at_the_url() {
        let yaml = webhook_kubeconfig("http://127.0.0.1:8080/authenticate/demo");
        let config: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(config["kind"], "Config");
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:8080/authenticate/demo"
        );
        assert_eq!(config["current-context"], "webhook");
        assert_eq!(
            config["contexts"][0]["context"]["user"],
            config["users"][0]["name"]
        );
    }
}
