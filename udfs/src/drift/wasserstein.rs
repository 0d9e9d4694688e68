//! `drift_wasserstein(value, is_current)` — normalised Wasserstein-1
//! distance.
//!
//! As Evidently's `wasserstein` test: `scipy.stats.wasserstein_distance`
//! between the samples, divided by the reference's population standard
//! deviation (at least 0.001). Evidently's threshold is 0.1.

use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::AggregateUDF;

use super::samples::{Sum, Values};
use super::sort::{merge_steps, sorted};
use super::udaf::{Accepts, DriftUdaf, Returns};

/// The `drift_wasserstein` aggregate.
pub(super) fn drift_wasserstein() -> AggregateUDF {
    DriftUdaf::function(
        "drift_wasserstein",
        Accepts::Numeric,
        Returns::Statistic,
        false,
        true,
        evaluate,
    )
}

fn evaluate(values: &Values, _bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_wasserstein")?;
    let Values::Numeric(s) = values else {
        return exec_err!("drift_wasserstein needs numeric values");
    };
    // Sorted mode: each sample is one ascending buffer, borrowed here.
    Ok(ScalarValue::Float64(Some(normalised_wasserstein(
        &s.reference.contiguous(),
        &s.current.contiguous(),
    ))))
}

/// `∫ |U(x) − V(x)| dx` over the two empirical distribution functions,
/// as `scipy.stats.wasserstein_distance`, with compensated sums.
pub(super) fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (u, v) = (sorted(u), sorted(v));
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let mut total = Sum::default();
    merge_steps(&u, &v, |x, next, i, j| {
        if let Some(next) = next {
            total.add((i as f64 / nu - j as f64 / nv).abs() * (next - x));
        }
    });
    total.value()
}

pub(super) fn normalised_wasserstein(reference: &[f64], current: &[f64]) -> f64 {
    let n = reference.len() as f64;
    let mut sum = Sum::default();
    reference.iter().for_each(|x| sum.add(*x));
    let mean = sum.value() / n;
    let mut squares = Sum::default();
    reference
        .iter()
        .for_each(|x| squares.add((x - mean).powi(2)));
    let std = (squares.value() / n).sqrt();
    wasserstein(reference, current) / std.max(0.001)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::shifted_samples;
    use super::*;

    #[test]
    fn matches_scipy() {
        let (r, c) = shifted_samples();
        assert!((normalised_wasserstein(&r, &c) - 0.5821787862717653).abs() < 1e-12);
        assert!((wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-12);
        // A constant reference normalises by the 0.001 floor.
        assert!((normalised_wasserstein(&[2.0, 2.0], &[3.0]) - 1000.0).abs() < 1e-9);
    }
}
