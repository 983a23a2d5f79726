//! The local EKS test bed: real kube-apiservers over one etcd, moto for IAM/STS (of several
//! accounts), an aws-iam-authenticator-equivalent webhook and an EKS control-plane emulator
//! with access entries.
//!
//! Every test, demo and benchmark of eks-iam-sync runs on it; see the README's "Test bed"
//! section for what each part stands in for, and `testbed/README-access-entries.md` for access
//! entries, regions and accounts.

pub mod apiserver;
pub mod authn;
pub mod awscli;
pub mod bed;
pub mod bootstrap;
pub mod eks;
pub mod logs_insights;
pub mod moto;
pub mod options;
pub mod paths;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod wiring;

pub use bed::{Description, TestBed};
pub use options::{ClusterOptions, FleetOptions, TestBedOptions};
pub use proxy::{Fault, FaultProxy, Hold, Matcher, Protocol, Times};
