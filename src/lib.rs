//! eks-iam-sync: keeps per-user EKS access (aws-auth `mapUsers`) in step with IAM group
//! membership. The event is a hint; IAM is the truth.
//!
//! The flow runs one way: [`event::parse`] -> [`iam::desired`] -> per cluster
//! [`cluster::ClusterDirectory::describe`] -> [`sync::apply_aws_auth`] (which asks the pure
//! [`aws_auth::merge`]) -> [`report::Report`]. `main` only wires clients and config; the same
//! functions run in the Lambda, the CLI and the tests.

pub mod aws_auth;
pub mod cluster;
pub mod config;
pub mod desired;
pub mod event;
pub mod handler;
pub mod iam;
pub mod report;
pub mod sync;
pub mod token;
