//! eks-iam-sync: keeps per-user EKS access (aws-auth `mapUsers`, later access entries) in step
//! with IAM group membership. The event is a hint; IAM is the truth.

pub mod aws_auth;
pub mod config;
pub mod desired;
pub mod event;
pub mod token;
