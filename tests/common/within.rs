//! TEMP until handle_within lands: the product's `eks_iam_sync::handler::handle_within(app,
//! input, deadline)` is being added on main. Once it is there, replace this whole file with
//! `pub use eks_iam_sync::handler::handle_within;` so the tests call the real one.
#![allow(dead_code)]

use std::time::Instant;

use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::report::Report;
use eks_iam_sync::sync::App;

// TEMP until handle_within lands: ignores the deadline.
pub async fn handle_within(
    app: &App,
    input: &serde_json::Value,
    _deadline: Instant,
) -> Result<Report, HandleError> {
    handle(app, input).await
}
