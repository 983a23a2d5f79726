//! eks-iam-sync: keeps per-user EKS access (aws-auth `mapUsers` or EKS access entries) in step
//! with IAM group membership. The event is a hint; IAM is the truth.
//!
//! The flow runs one way: [`event::parse`] -> [`iam::desired`] -> [`fleet::resolve`] (listed and
//! discovered clusters) -> per cluster [`cluster::ClusterDirectory::describe`] ->
//! [`backend::choose`] -> [`sync::apply_aws_auth`] (which asks the pure [`aws_auth::merge`]) or
//! [`sync::apply_access_entries`] (which asks the pure [`access_entries::plan`]) ->
//! [`report::Report`]. Clusters in other accounts are reached through
//! [`credentials::CredentialsFor`]. `main` only wires clients and config; the same functions run
//! in the Lambda, the CLI and the tests.
//!
//! In AWS the input arrives in SQS batches: [`batch::read`] makes one run of a batch, and what a
//! run leaves for later (failed clusters, revocations IAM does not show yet) becomes follow-ups
//! ([`follow_up::plan`]) that [`queue`] sends to the retry queue. Names IAM could never hold are
//! refused by [`event::parse`] before any call ([`names`]).
//!
//! [`audit::run`] reads the same fleet and writes nothing: every identity path into every
//! cluster, classified ([`audit::classify`]), and whether control-plane logging can trace it.

pub mod access_entries;
pub mod audit;
pub mod aws;
pub mod aws_auth;
pub mod backend;
pub mod batch;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod desired;
pub mod event;
pub mod fleet;
pub mod follow_up;
pub mod handler;
pub mod iam;
pub mod installation;
pub mod kube_clients;
pub mod metrics;
pub mod names;
pub mod progress;
pub mod queue;
pub mod report;
pub mod report_text;
pub mod roles;
pub mod session_name;
pub mod sync;
pub mod token;
pub mod token_role;
