//! AutoLake's SQL functions, grouped by package (`ml/`, `drift/`), one file
//! per function, each package listing its functions in `register_all`.
//!
//! Functions that need engine state (models, for example) reach it through
//! small traits defined here and implemented by the engine, so this crate
//! never depends on the engine.

use datafusion::prelude::SessionContext;

/// Registers every AutoLake function with a session.
pub fn register_all(ctx: &SessionContext) {
    // Packages register here as they are added; the session calls this
    // once per session so every interface sees the same functions.
    let _ = ctx;
}
