//! AutoLake's SQL functions, grouped by package (`drift/`, later `ml/`),
//! one file per function, each package listing its functions in
//! `register_all`.
//!
//! Functions that need engine state (models, for example) reach it through
//! small traits defined here and implemented by the engine, so this crate
//! never depends on the engine.

pub mod drift;

use datafusion::prelude::SessionContext;

/// Registers every AutoLake function with a session.
pub fn register_all(ctx: &SessionContext) {
    drift::register_all(ctx);
}
