//! `drift_psi(value, is_current [, bins])` — Population Stability Index.
//!
//! As Evidently's `psi` test: shares per bin (see [`super::binning`]),
//! empty bins floored, then `Σ (ref − cur) · ln(ref / cur)`. Common reading:
//! below 0.1 no drift, 0.1–0.2 moderate, above 0.2 significant (Evidently's
//! threshold is 0.1).

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::AggregateUDF;

use super::binning::binned_shares;
use super::samples::Values;
use super::udaf::{Accepts, DriftUdaf, Returns};

/// The `drift_psi` aggregate.
pub(super) fn drift_psi() -> AggregateUDF {
    DriftUdaf::function(
        "drift_psi",
        Accepts::Any,
        Returns::Statistic,
        true,
        false,
        evaluate,
    )
}

fn evaluate(values: &Values, bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_psi")?;
    Ok(ScalarValue::Float64(Some(psi(values, bins))))
}

pub(super) fn psi(values: &Values, bins: Option<usize>) -> f64 {
    let (reference, current) = binned_shares(values, bins, true);
    reference
        .iter()
        .zip(&current)
        .map(|(r, c)| (r - c) * (r / c).ln())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{categorical, numeric, shifted_samples};
    use super::*;

    #[test]
    fn matches_evidently() {
        // Reference values: Evidently's get_binned_data and _psi, run with
        // numpy on the same samples.
        let (r, c) = shifted_samples();
        assert!((psi(&numeric(&r, &c), None) - 1.7186223120948534).abs() < 1e-12);
        let v = categorical(&["a", "a", "b", "c"], &["a", "b", "b", "d"]);
        assert!((psi(&v, None) - 4.257031786505947).abs() < 1e-12);
        assert!(psi(&numeric(&r, &r), None).abs() < 1e-12);
    }
}
