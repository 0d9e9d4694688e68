//! Errors of candle's computations, as DataFusion carries them.

/// An error of this package, as DataFusion carries it.
pub(crate) fn candle_err(e: candle_core::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!("model computation failed: {e}"))
}
