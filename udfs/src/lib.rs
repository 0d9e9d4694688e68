//! AutoLake's SQL functions, grouped by package (`drift/`, `ml/`),
//! one file per function, each package listing its functions in
//! `register_all`.
//!
//! Functions that need engine state (models, for example) reach it through
//! small traits defined here and implemented by the engine, so this crate
//! never depends on the engine.

pub mod drift;
pub mod ml;

use datafusion::prelude::SessionContext;

/// Registers every AutoLake function with a session; `predict` and
/// `predict_proba` find models through `models`.
pub fn register_all(ctx: &SessionContext, models: std::sync::Arc<dyn ml::ModelProvider>) {
    drift::register_all(ctx);
    ml::register_all(ctx, models);
}
