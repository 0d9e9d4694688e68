//! Drift tests as aggregate functions: `drift_psi`, `drift_ks`,
//! `drift_js`, `drift_wasserstein`, `drift_chi2`.
//!
//! Each takes `(value, is_current)` — one input holding both samples, the
//! second argument marking the current rows — so a test works per group
//! with `GROUP BY` (one result per window or segment) and over any query.
//! Definitions follow Evidently's defaults (see each function); nulls are
//! skipped and counted, and an empty sample is an error naming the
//! function.
//!
//! All share [`samples::SampleAccumulator`]; a function is its name, the
//! inputs it accepts and the test it runs on a complete group.

mod binning;
mod chi2;
mod ecdf;
mod js;
mod ks;
mod parallel;
mod psi;
mod samples;
mod sort;
mod udaf;
mod wasserstein;

use std::ops::Not;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;

use samples::{Evaluate, Values, is_categorical, is_numeric};
pub use udaf::check_result_type;
use udaf::{Accepts, DriftUdaf, Returns};

/// Every drift function.
pub fn functions() -> Vec<AggregateUDF> {
    vec![
        psi::drift_psi(),
        ks::drift_ks(),
        js::drift_js(),
        wasserstein::drift_wasserstein(),
        chi2::drift_chi2(),
    ]
}

/// A drift test as `CHECK DRIFT … USING` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftTest {
    /// Chosen per column as Evidently does (see [`DriftTest::choose`]).
    Auto,
    /// Population Stability Index.
    Psi,
    /// Two-sample Kolmogorov–Smirnov.
    Ks,
    /// Normalised Wasserstein-1 distance.
    Wasserstein,
    /// Jensen–Shannon distance.
    Js,
    /// Pearson's chi-square.
    Chi2,
}

impl DriftTest {
    /// Every test, `auto` first.
    pub const ALL: [DriftTest; 6] = [
        DriftTest::Auto,
        DriftTest::Psi,
        DriftTest::Ks,
        DriftTest::Wasserstein,
        DriftTest::Js,
        DriftTest::Chi2,
    ];

    /// The test called `name` (lower case), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The test's name in SQL and in results.
    pub fn name(self) -> &'static str {
        match self {
            DriftTest::Auto => "auto",
            DriftTest::Psi => "psi",
            DriftTest::Ks => "ks",
            DriftTest::Wasserstein => "wasserstein",
            DriftTest::Js => "js",
            DriftTest::Chi2 => "chi2",
        }
    }

    /// Evidently's default threshold for the test.
    pub fn default_threshold(self) -> f64 {
        match self {
            DriftTest::Ks | DriftTest::Chi2 | DriftTest::Auto => 0.05,
            DriftTest::Psi | DriftTest::Wasserstein | DriftTest::Js => 0.1,
        }
    }

    /// Whether drift means `p_value < threshold`; otherwise it means
    /// `statistic >= threshold`.
    pub fn uses_p_value(self) -> bool {
        matches!(self, DriftTest::Ks | DriftTest::Chi2)
    }

    /// Whether the test runs on values of this type (numbers; for the
    /// category tests also text, booleans and other discrete values).
    pub fn accepts(self, data_type: &DataType) -> bool {
        match self {
            DriftTest::Ks | DriftTest::Wasserstein => is_numeric(data_type),
            _ => is_numeric(data_type) || is_categorical(data_type),
        }
    }

    /// Evidently's default test for a column (`get_default_stattest`),
    /// from its kind, the number of distinct values over both samples and
    /// the reference's size: numbers get `ks` (reference of at most 1000
    /// values) or `wasserstein`, categories and numbers with at most 5
    /// distinct values get `chi2` or `js` likewise. Evidently uses a
    /// proportion z-test for two-valued columns with a small reference;
    /// `chi2` stands in for it here.
    fn choose(values: &Values) -> DriftTest {
        let small = match values {
            Values::Numeric(s) => s.reference.len() <= 1000,
            Values::Categorical(s) => s.reference.len() <= 1000,
        };
        let discrete = match values {
            Values::Numeric(s) => {
                let mut seen = std::collections::HashSet::new();
                s.reference
                    .iter()
                    .chain(s.current.iter())
                    .map(|v| if v == 0.0 { 0u64 } else { v.to_bits() })
                    .any(|bits| seen.insert(bits) && seen.len() > 5)
                    .not()
            }
            Values::Categorical(_) => true,
        };
        match (discrete, small) {
            (true, true) => DriftTest::Chi2,
            (true, false) => DriftTest::Js,
            (false, true) => DriftTest::Ks,
            (false, false) => DriftTest::Wasserstein,
        }
    }

    /// Runs the test (or, for `auto`, the chosen one) on complete samples:
    /// the test run, the statistic and, for `ks` and `chi2`, the p-value.
    fn run(self, values: &Values) -> Result<(DriftTest, f64, Option<f64>)> {
        let test = if self == DriftTest::Auto {
            Self::choose(values)
        } else {
            self
        };
        let numeric = |name| match values {
            Values::Numeric(s) => Ok(s),
            Values::Categorical(_) => exec_err!("{name} needs numeric values"),
        };
        Ok(match test {
            DriftTest::Psi => (test, psi::psi(values, None), None),
            DriftTest::Js => (test, js::jensen_shannon(values, None), None),
            DriftTest::Wasserstein => {
                let s = numeric("wasserstein")?;
                (
                    test,
                    wasserstein::normalised_wasserstein(
                        &s.reference.contiguous(),
                        &s.current.contiguous(),
                    ),
                    None,
                )
            }
            DriftTest::Ks => {
                let s = numeric("ks")?;
                let r = ks::ks_2samp(&s.reference, &s.current);
                (test, r.statistic, Some(r.p_value))
            }
            DriftTest::Chi2 | DriftTest::Auto => {
                let (statistic, p_value) = chi2::chi_square(values);
                (DriftTest::Chi2, statistic, Some(p_value))
            }
        })
    }
}

/// The aggregate `CHECK DRIFT` runs for one column with `test`:
/// `(value, is_current)` → `struct{test, statistic, p_value,
/// reference_values, current_values, reference_nulls, current_nulls}`.
/// Empty samples give a null statistic rather than an error, so the caller
/// can name the column in its message. Not registered as a SQL function.
pub fn check_function(test: DriftTest) -> AggregateUDF {
    let (name, accepts, evaluate): (&'static str, Accepts, Evaluate) = match test {
        DriftTest::Auto => ("drift_check_auto", Accepts::Any, |v, _| {
            check_result(DriftTest::Auto, v)
        }),
        DriftTest::Psi => ("drift_check_psi", Accepts::Any, |v, _| {
            check_result(DriftTest::Psi, v)
        }),
        DriftTest::Ks => ("drift_check_ks", Accepts::Numeric, |v, _| {
            check_result(DriftTest::Ks, v)
        }),
        DriftTest::Wasserstein => ("drift_check_wasserstein", Accepts::Numeric, |v, _| {
            check_result(DriftTest::Wasserstein, v)
        }),
        DriftTest::Js => ("drift_check_js", Accepts::Any, |v, _| {
            check_result(DriftTest::Js, v)
        }),
        DriftTest::Chi2 => ("drift_check_chi2", Accepts::Categories, |v, _| {
            check_result(DriftTest::Chi2, v)
        }),
    };
    // Wasserstein (and `auto`, which picks it for large numeric samples)
    // works on sorted samples.
    let sorted = matches!(test, DriftTest::Wasserstein | DriftTest::Auto);
    DriftUdaf::function(name, accepts, Returns::Check, false, sorted, evaluate)
}

fn check_result(test: DriftTest, values: &Values) -> Result<ScalarValue> {
    let (rv, cv, rn, cn) = match values {
        Values::Numeric(s) => (
            s.reference.len(),
            s.current.len(),
            s.reference_nulls,
            s.current_nulls,
        ),
        Values::Categorical(s) => (
            s.reference.len(),
            s.current.len(),
            s.reference_nulls,
            s.current_nulls,
        ),
    };
    let (test, statistic, p_value) = if rv == 0 || cv == 0 {
        (test, None, None)
    } else {
        let (test, statistic, p_value) = test.run(values)?;
        (test, Some(statistic), p_value)
    };
    let DataType::Struct(fields) = check_result_type() else {
        unreachable!("check_result_type is a struct")
    };
    use arrow::array::{Float64Array, StringArray, UInt64Array};
    Ok(ScalarValue::Struct(Arc::new(
        arrow::array::StructArray::try_new(
            fields,
            vec![
                Arc::new(StringArray::from(vec![test.name()])),
                Arc::new(Float64Array::from(vec![statistic])),
                Arc::new(Float64Array::from(vec![p_value])),
                Arc::new(UInt64Array::from(vec![rv as u64])),
                Arc::new(UInt64Array::from(vec![cv as u64])),
                Arc::new(UInt64Array::from(vec![rn])),
                Arc::new(UInt64Array::from(vec![cn])),
            ],
            None,
        )?,
    )))
}

/// Registers the drift functions with a session.
pub fn register_all(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udaf(f);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::samples::{Samples, Values};

    pub(crate) fn numeric(reference: &[f64], current: &[f64]) -> Values {
        Values::Numeric(Samples {
            reference: reference.to_vec().into(),
            current: current.to_vec().into(),
            ..Samples::default()
        })
    }

    pub(crate) fn categorical(reference: &[&str], current: &[&str]) -> Values {
        Values::Categorical(Samples {
            reference: reference.iter().map(|s| s.to_string()).collect(),
            current: current.iter().map(|s| s.to_string()).collect(),
            ..Samples::default()
        })
    }

    /// The numeric samples the reference values were computed on: 500
    /// reference values in [0, 10), 400 current ones in [1.5, 11.5).
    pub(crate) fn shifted_samples() -> (Vec<f64>, Vec<f64>) {
        (lcg(1, 500, 10.0, 0.0), lcg(2, 400, 10.0, 1.5))
    }

    /// A deterministic pseudo-random sample (a linear congruential
    /// generator), the same one the reference values were computed on.
    pub(crate) fn lcg(seed: u64, n: usize, scale: f64, shift: f64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = (x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407))
                    % (1 << 53);
                shift + scale * (x as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }
}
