//! Machine learning inside SQL plans, on candle tensors.
//!
//! How data flows:
//!
//! ```text
//! CREATE MODEL … AS SELECT …
//!   plan ─► record batches ─► [`data::TrainingData`] (columns encoded as
//!   they stream in: numbers as f64, strings as vocabulary codes)
//!   ─► [`encode::Feature`] statistics (means, standard deviations,
//!   vocabularies, imputation) ─► one f32 tensor on the chosen device
//!   ─► [`train`] (normal equations, L-BFGS, Adam, Lloyd) ─► [`model::TrainedModel`]
//!   (weights + everything needed to encode new rows) ─► the registry
//!
//! predict('m', f1, f2, …)
//!   each Arrow batch ─► one tensor (same encoding) ─► forward pass on the
//!   device ─► one Arrow array
//! ```
//!
//! Models are plain data: an architecture (layer sizes or centroids), the
//! feature encoding and the target's classes, all serialisable to JSON,
//! plus a map of named tensors saved as safetensors. The engine stores
//! them in the lake and hands them back through [`ModelProvider`], so this
//! crate never depends on the engine.

pub mod data;
pub mod device;
pub mod encode;
mod error;
mod lbfgs;
mod logistic;
pub mod metrics;
pub mod model;
mod predict;
mod rng;
pub mod train;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use device::{DeviceChoice, resolve_device};
pub use model::{ModelKind, ModelSpec, TrainedModel};
pub use predict::{ModelProvider, PredictContext, Predictions};

/// Registers `predict` and `predict_proba` over `provider`.
pub fn register_all(ctx: &SessionContext, provider: Arc<dyn ModelProvider>) {
    ctx.register_udf(predict::predict(Arc::clone(&provider)));
    ctx.register_udf(predict::predict_proba(provider));
}
