//! `drift_wasserstein(value, is_current)` — normalised Wasserstein-1
//! distance.
//!
//! As Evidently's `wasserstein` test: `scipy.stats.wasserstein_distance`
//! between the samples, divided by the reference's population standard
//! deviation (at least 0.001). Evidently's threshold is 0.1.

use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::AggregateUDF;

use super::samples::Values;
use super::{Accepts, DriftUdaf, Returns};

/// The `drift_wasserstein` aggregate.
pub(super) fn drift_wasserstein() -> AggregateUDF {
    DriftUdaf::function(
        "drift_wasserstein",
        Accepts::Numeric,
        Returns::Statistic,
        false,
        evaluate,
    )
}

fn evaluate(values: &Values, _bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_wasserstein")?;
    let Values::Numeric(s) = values else {
        return exec_err!("drift_wasserstein needs numeric values");
    };
    Ok(ScalarValue::Float64(Some(normalised_wasserstein(
        &s.reference,
        &s.current,
    ))))
}

/// `∫ |U(x) − V(x)| dx` over the two empirical distribution functions.
pub(super) fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let mut u = u.to_vec();
    let mut v = v.to_vec();
    u.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    let mut all: Vec<f64> = u.iter().chain(&v).copied().collect();
    all.sort_by(f64::total_cmp);
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut iu, mut iv) = (0usize, 0usize);
    let mut total = 0.0;
    for w in all.windows(2) {
        // Share of each sample at or below w[0] (searchsorted, side=right).
        while iu < u.len() && u[iu] <= w[0] {
            iu += 1;
        }
        while iv < v.len() && v[iv] <= w[0] {
            iv += 1;
        }
        total += (iu as f64 / nu - iv as f64 / nv).abs() * (w[1] - w[0]);
    }
    total
}

pub(super) fn normalised_wasserstein(reference: &[f64], current: &[f64]) -> f64 {
    let n = reference.len() as f64;
    let mean = reference.iter().sum::<f64>() / n;
    let std = (reference.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
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
