//! `predict('m', f1, f2, …)` and `predict_proba('m', …)`: a trained model
//! as a vectorised scalar function.
//!
//! The model is named by a string literal — `'m'` (the production
//! version, else the latest) or `'m@3'` — resolved at planning time, so
//! the result type is the model's (regression Float64, classification the
//! label's type, k-means the cluster id as INT) and a call with the wrong
//! number or kinds of features fails to plan with a message listing what
//! the model expects. Each batch is encoded into one tensor on the
//! model's device and run through one forward pass: no per-row calls.

use std::fmt;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{
    Result, ScalarValue, exec_err, extensions_options, internal_err, plan_err,
};
use datafusion::config::ConfigExtension;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::model::TrainedModel;

/// Where `predict` finds models: `'m'` (the production version, else the
/// latest) or `'m@3'` (a pinned version).
pub trait ModelProvider: fmt::Debug + Send + Sync {
    /// The model a `predict` call names, or a message saying why there is
    /// none (unknown model or version).
    fn resolve(&self, reference: &str) -> Result<Arc<TrainedModel>, String>;

    /// Told after each batch a `predict` call scored: `rows` rows of the
    /// model `reference` names, in `seconds` (metrics; nothing by default).
    fn observe(&self, _reference: &str, _rows: usize, _seconds: f64) {}

    /// Handed each batch `predict` scored, with its inputs, for inference
    /// logging (nothing by default).
    fn log(&self, _batch: Predictions<'_>) {}
}

/// One batch of predictions, as [`ModelProvider::log`] gets it.
#[derive(Debug)]
pub struct Predictions<'a> {
    /// The model as the call names it (`'m'` or `'m@3'`).
    pub reference: &'a str,
    /// The statement the call runs in (see [`PredictContext`]); empty when
    /// the engine set none.
    pub query_id: &'a str,
    /// The feature columns, in the model's order.
    pub features: &'a [ArrayRef],
    /// What the model returned, one value per row.
    pub output: &'a ArrayRef,
}

extensions_options! {
    /// What the engine tells `predict` about the statement it runs in
    /// (`autolake_predict.*` settings, set per statement).
    pub struct PredictContext {
        /// The running statement's query id.
        pub query_id: String, default = String::new()
    }
}

impl ConfigExtension for PredictContext {
    const PREFIX: &'static str = "autolake_predict";
}

/// The `predict` function.
pub(super) fn predict(provider: Arc<dyn ModelProvider>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Predict::new("predict", false, provider))
}

/// The `predict_proba` function.
pub(super) fn predict_proba(provider: Arc<dyn ModelProvider>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Predict::new("predict_proba", true, provider))
}

#[derive(Debug)]
struct Predict {
    name: &'static str,
    probabilities: bool,
    provider: Arc<dyn ModelProvider>,
    signature: Signature,
}

impl PartialEq for Predict {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Predict {}

impl std::hash::Hash for Predict {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Predict {
    fn new(name: &'static str, probabilities: bool, provider: Arc<dyn ModelProvider>) -> Self {
        Self {
            name,
            probabilities,
            provider,
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }

    fn usage(&self) -> String {
        format!("{}('model' or 'model@version', feature, …)", self.name)
    }

    /// The model a literal names.
    fn model(&self, reference: Option<&ScalarValue>) -> Result<Arc<TrainedModel>> {
        let reference = match reference.map(ScalarValue::try_as_str) {
            Some(Some(Some(r))) => r,
            _ => {
                return plan_err!(
                    "the first argument of {} must be the model's name as a string literal: {}",
                    self.name,
                    self.usage()
                );
            }
        };
        self.provider
            .resolve(reference)
            .or_else(|e| plan_err!("{}: {e}", self.name))
    }
}

impl ScalarUDFImpl for Predict {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("{} computes its type from its arguments", self.name)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let model = self.model(args.scalar_arguments.first().copied().flatten())?;
        let spec = model.spec();
        let types: Vec<DataType> = args.arg_fields[1..]
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if let Err(e) = spec.check_arguments(&types) {
            return plan_err!(
                "{}: model {} (a {}): {e}",
                self.name,
                args.scalar_arguments[0]
                    .and_then(|s| s.try_as_str().flatten())
                    .unwrap_or_default(),
                spec.kind.name()
            );
        }
        let data_type = if self.probabilities {
            match spec.proba_type() {
                Some(t) => t,
                None => {
                    return plan_err!(
                        "predict_proba needs a classifier; this model is a {} (use predict)",
                        spec.kind.name()
                    );
                }
            }
        } else {
            spec.output_type()?
        };
        Ok(Arc::new(Field::new(self.name, data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let reference = match &args.args[0] {
            ColumnarValue::Scalar(s) => s.clone(),
            ColumnarValue::Array(_) => {
                return exec_err!("the model of {} must be a constant", self.name);
            }
        };
        let model = self.model(Some(&reference))?;
        let started = std::time::Instant::now();
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args[1..])?;
        let out = if self.probabilities {
            model.predict_proba(&arrays, rows)?
        } else {
            model.predict(&arrays, rows)?
        };
        if out.data_type() != args.return_field.data_type() {
            return exec_err!(
                "{}: the model changed while the query ran (it returns {}, the query was \
                 planned for {}): run the query again",
                self.name,
                out.data_type(),
                args.return_field.data_type()
            );
        }
        if let Some(Some(name)) = reference.try_as_str() {
            self.provider
                .observe(name, rows, started.elapsed().as_secs_f64());
            if !self.probabilities {
                let query_id = args
                    .config_options
                    .extensions
                    .get::<PredictContext>()
                    .map_or("", |c| c.query_id.as_str());
                self.provider.log(Predictions {
                    reference: name,
                    query_id,
                    features: &arrays,
                    output: &out,
                });
            }
        }
        Ok(ColumnarValue::Array(out))
    }
}
