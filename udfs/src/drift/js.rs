//! `drift_js(value, is_current [, bins])` — Jensen–Shannon distance.
//!
//! As Evidently's `jensenshannon` test: shares per bin without flooring
//! (see [`super::binning`]), then `scipy.spatial.distance.jensenshannon`
//! with the natural logarithm: `sqrt((KL(p‖m) + KL(q‖m)) / 2)`,
//! `m = (p + q) / 2`. 0 for identical distributions; Evidently's
//! threshold is 0.1.

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::AggregateUDF;

use super::binning::binned_shares;
use super::samples::Values;
use super::udaf::{Accepts, DriftUdaf, Returns};

/// The `drift_js` aggregate.
pub(super) fn drift_js() -> AggregateUDF {
    DriftUdaf::function(
        "drift_js",
        Accepts::Any,
        Returns::Statistic,
        true,
        false,
        evaluate,
    )
}

fn evaluate(values: &Values, bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_js")?;
    Ok(ScalarValue::Float64(Some(jensen_shannon(values, bins))))
}

/// `x · ln(x / y)` as `scipy.special.rel_entr`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

pub(super) fn jensen_shannon(values: &Values, bins: Option<usize>) -> f64 {
    let (p, q) = binned_shares(values, bins, false);
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let divergence: f64 = p
        .iter()
        .zip(&q)
        .map(|(p, q)| {
            let (p, q) = (p / sp, q / sq);
            let m = (p + q) / 2.0;
            rel_entr(p, m) + rel_entr(q, m)
        })
        .sum();
    (divergence / 2.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{categorical, numeric, shifted_samples};
    use super::*;

    #[test]
    fn matches_scipy() {
        let (r, c) = shifted_samples();
        assert!((jensen_shannon(&numeric(&r, &c), None) - 0.2970194104481042).abs() < 1e-12);
        let v = categorical(&["a", "a", "b", "c"], &["a", "b", "b", "d"]);
        assert!((jensen_shannon(&v, None) - 0.464501404022459).abs() < 1e-12);
    }
}
