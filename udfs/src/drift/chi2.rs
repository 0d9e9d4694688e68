//! `drift_chi2(category, is_current)` — Pearson's chi-square test of the
//! current sample's category counts against the reference's.
//!
//! As Evidently's `chisquare` test: expected counts are the reference
//! counts scaled to the current sample's size, over the union of
//! categories; `statistic = Σ (obs − exp)² / exp` and
//! `p_value = scipy.stats.chi2.sf(statistic, k − 1)`. A category absent
//! from the reference makes the statistic infinite (p-value 0); with one
//! category there is no degree of freedom and the p-value is NaN, as in
//! scipy. Evidently's threshold is a p-value below 0.05.

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::AggregateUDF;

use super::samples::Values;
use super::udaf::{Accepts, DriftUdaf, Returns, statistic_and_p_value_scalar};

/// The `drift_chi2` aggregate.
pub(super) fn drift_chi2() -> AggregateUDF {
    DriftUdaf::function(
        "drift_chi2",
        Accepts::Categories,
        Returns::StatisticAndPValue,
        false,
        false,
        evaluate,
    )
}

fn evaluate(values: &Values, _bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_chi2")?;
    let (statistic, p_value) = chi_square(values);
    statistic_and_p_value_scalar(statistic, p_value)
}

pub(super) fn chi_square(values: &Values) -> (f64, f64) {
    let (reference, current) = values.category_counts();
    let k_norm = current.iter().sum::<f64>() / reference.iter().sum::<f64>();
    let statistic: f64 = reference
        .iter()
        .zip(&current)
        .map(|(r, o)| {
            let e = r * k_norm;
            if e == 0.0 {
                f64::INFINITY
            } else {
                (o - e).powi(2) / e
            }
        })
        .sum();
    let df = reference.len() as f64 - 1.0;
    (statistic, chi2_sf(statistic, df))
}

/// `scipy.stats.chi2.sf(x, df)`: the regularized upper incomplete gamma
/// function `Q(df / 2, x / 2)`.
pub(super) fn chi2_sf(x: f64, df: f64) -> f64 {
    if df <= 0.0 || x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

fn gamma_q(a: f64, x: f64) -> f64 {
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    }
}

fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0 / a;
    let mut sum = term;
    let mut n = a;
    for _ in 0..10_000 {
        n += 1.0;
        term *= x / n;
        sum += term;
        if term.abs() < sum.abs() * 1e-16 {
            break;
        }
    }
    sum * (-x + a * x.ln() - ln_gamma(a)).exp()
}

/// Lentz's continued fraction for `Q(a, x)`.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x + a * x.ln() - ln_gamma(a)).exp() * h
}

/// `ln Γ(x)` by the Lanczos approximation (g = 7, n = 9).
pub(super) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::categorical;
    use super::*;

    #[test]
    fn survival_function_matches_scipy() {
        // scipy.stats.chi2.sf(x, df)
        for (x, df, expected) in [
            (3.84, 1.0, 0.05004352124870519),
            (10.0, 5.0, 0.07523524614651217),
            (0.5, 3.0, 0.9188914116546758),
            (250.0, 200.0, 0.009379131668826098),
        ] {
            let got = chi2_sf(x, df);
            assert!(
                (got - expected).abs() < 1e-10,
                "sf({x}, {df}) = {got}, expected {expected}"
            );
        }
    }

    #[test]
    fn matches_evidently() {
        let v = categorical(
            &["a", "a", "a", "b", "b", "c"],
            &["a", "b", "b", "b", "c", "c"],
        );
        let (statistic, p) = chi_square(&v);
        // scipy.stats.chisquare(f_obs, f_exp) as Evidently calls it.
        assert!((statistic - 2.833333333333333).abs() < 1e-12);
        assert!((p - 0.24252107463564868).abs() < 1e-10);
        let (statistic, p) = chi_square(&categorical(&["a"], &["b"]));
        assert!(statistic.is_infinite() && p == 0.0);
    }
}
