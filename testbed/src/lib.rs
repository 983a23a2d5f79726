//! The local EKS test bed: real kube-apiservers over one etcd, moto for IAM/STS, an
//! aws-iam-authenticator-equivalent webhook and an EKS control-plane emulator.

pub mod authn;
pub mod eks;
