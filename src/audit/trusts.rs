//! Reading the trust policies the classification needs: once per role whose paths carry the
//! session name, in the role's own account, as the audit's identity there.
//!
//! GetRole takes a role *name* and answers from the caller's account, so reading a role of
//! another account with the wrong credentials would read a different role of the same name.
//! Each role is therefore read only with an identity known to be in its account. Most roles are
//! in the account of a cluster that maps them: they are read while that cluster is read, with
//! its identity (GetCallerIdentity said which account that is), so a slow cluster delays no
//! other cluster's classification. A role of another account is read after the fan-out, as the
//! audit's own identity where a cluster read without `roleArn` showed that account, else as a
//! configured `roleArn` of that account. A role of any other account, a read that fails and one
//! cut off at the deadline are classed conservatively, with the reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::OnceCell;

use super::classify::{identity_key, Trusts};
use super::read::ClusterRead;
use super::trust::{session_naming, SessionNaming, FIX};
use crate::config::role_account;
use crate::iam::IAM_CONCURRENCY;
use crate::sync::App;

/// The trust policies read so far in one audit, each role read at most once however many
/// clusters map it.
#[derive(Default)]
pub(super) struct TrustCache {
    cells: Mutex<HashMap<String, Arc<OnceCell<SessionNaming>>>>,
}

impl TrustCache {
    /// The session naming of role `arn`, read as `identity` (which must be in the role's
    /// account) unless already read.
    pub(super) async fn naming(
        &self,
        app: &App,
        identity: Option<&str>,
        arn: &str,
        deadline: Instant,
    ) -> SessionNaming {
        self.cell(arn)
            .get_or_init(|| read_one(app, identity, arn, deadline))
            .await
            .clone()
    }

    /// The one cell of role `arn`, however its ARN is spelled.
    fn cell(&self, arn: &str) -> Arc<OnceCell<SessionNaming>> {
        self.cells
            .lock()
            .expect("trust cache lock")
            .entry(identity_key(arn))
            .or_default()
            .clone()
    }

    fn has(&self, arn: &str) -> bool {
        self.cell(arn).initialized()
    }

    /// Reads the roles of `wanted` not read yet (those of accounts no cluster that maps them is
    /// in), then hands over everything read.
    pub(super) async fn finish<'a>(
        self,
        app: &App,
        reads: &[ClusterRead],
        wanted: impl Iterator<Item = &'a str>,
        deadline: Instant,
    ) -> Trusts {
        let identities = identities(app, reads);
        let mut missing: BTreeMap<String, &str> = BTreeMap::new();
        for arn in wanted.filter(|arn| !self.has(arn)) {
            missing.entry(identity_key(arn)).or_insert(arn);
        }
        futures::stream::iter(missing.into_values())
            .map(|arn| {
                let (identities, cache) = (&identities, &self);
                async move {
                    let account = role_account(arn).unwrap_or("?");
                    match identities.get(account) {
                        Some(identity) => {
                            cache.naming(app, identity.as_deref(), arn, deadline).await;
                        }
                        None => cache.set(arn, no_identity(arn, account)),
                    }
                }
            })
            .buffer_unordered(IAM_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        let mut trusts = Trusts::default();
        for (key, cell) in self.cells.into_inner().expect("trust cache lock") {
            if let Some(naming) = cell.get() {
                trusts.insert(&key, naming.clone());
            }
        }
        trusts
    }

    fn set(&self, arn: &str, naming: SessionNaming) {
        // Already set: another task read it meanwhile, which is as good.
        let _ = self.cell(arn).set(naming);
    }
}

/// Account -> the identity to read its roles as (`None`: the audit's own credentials).
fn identities(app: &App, reads: &[ClusterRead]) -> BTreeMap<String, Option<String>> {
    let mut identities = BTreeMap::new();
    for role_arn in app.config.role_arns() {
        if let Some(account) = role_account(role_arn) {
            identities
                .entry(account.to_owned())
                .or_insert_with(|| Some(role_arn.to_owned()));
        }
    }
    for read in reads {
        if let (None, Some(caller)) = (&read.audit.role_arn, &read.audit.caller_arn) {
            if let Some(account) = role_account(caller) {
                identities.insert(account.to_owned(), None);
            }
        }
    }
    identities
}

fn no_identity(arn: &str, account: &str) -> SessionNaming {
    let name = role_name(arn);
    SessionNaming::Free(format!(
        "the trust policy of role {name} was not read: the audit has no credentials in its account {account} (no cluster read there without roleArn, no roleArn of it), so whoever assumes it may have chosen the name; {FIX}"
    ))
}

async fn read_one(
    app: &App,
    identity: Option<&str>,
    arn: &str,
    deadline: Instant,
) -> SessionNaming {
    let name = role_name(arn);
    let account = role_account(arn).unwrap_or("?");
    let read = app.iam.role_trust(identity, name);
    match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(Some(trust))) => session_naming(&trust.name, &trust.path, &trust.document),
        Ok(Ok(None)) => SessionNaming::Free(format!(
            "role {name} does not exist in account {account} (GetRole: NoSuchEntity), and whoever creates a role of that name writes its trust policy; {FIX}"
        )),
        Ok(Err(e)) => SessionNaming::Free(format!(
            "the trust policy of role {name} could not be read ({e}), so whoever assumes it may have chosen the name; {FIX}"
        )),
        Err(_) => SessionNaming::Free(format!(
            "the trust policy of role {name} was not read before the run's deadline, so whoever assumes it may have chosen the name; {FIX}"
        )),
    }
}

/// A role ARN's name, without its path.
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
