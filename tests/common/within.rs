//! The entry point the fault and overlap tests use: a run bounded by a deadline.
pub use eks_iam_sync::handler::handle_within;
