//! The local EKS test bed: real kube-apiservers over one etcd, moto for IAM/STS, an
//! aws-iam-authenticator-equivalent webhook and an EKS control-plane emulator.
//!
//! Every test, demo and benchmark of eks-iam-sync runs on it; see the README's "Test bed"
//! section for what each part stands in for.

pub mod apiserver;
pub mod authn;
pub mod awscli;
pub mod bed;
pub mod bootstrap;
pub mod eks;
pub mod moto;
pub mod paths;
pub mod pki;
pub mod process;

pub use bed::{Description, TestBed, TestBedOptions};
