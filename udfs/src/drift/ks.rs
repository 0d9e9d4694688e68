//! `drift_ks(value, is_current)` — two-sided two-sample
//! Kolmogorov–Smirnov test, returning `struct{statistic, p_value}`.
//!
//! As `scipy.stats.ks_2samp(reference, current)` with its defaults
//! (`alternative="two-sided"`, `method="auto"`), which is Evidently's `ks`
//! test (drift when the p-value is below 0.05):
//!
//! - the statistic is the largest distance between the two empirical
//!   distribution functions, evaluated at every value of either sample;
//! - **exact** p-value when neither sample has more than 10 000 values:
//!   the statistic is snapped to the lattice `h / lcm(n₁, n₂)` and the
//!   probability that a random lattice path leaves the band is counted
//!   (Hodges' "inside" method with Viehmann's recursion for `1 − p`, or
//!   the closed form for equal sizes). If that count fails numerically,
//!   scipy falls back to the asymptotic method and so do we;
//! - **asymptotic** p-value otherwise: the survival function of the
//!   one-sample two-sided Kolmogorov distribution `kstwo` for
//!   `n = round(n₁·n₂ / (n₁ + n₂))`, computed as scipy does (Simard and
//!   L'Ecuyer's choice between Ruben–Gambino closed forms, the exact
//!   Smirnov sum, Durbin's matrix and the Pelz–Good series). Where scipy
//!   uses Pomeranz's recursion (n ≤ 140) we use Durbin's matrix, which is
//!   also exact.
//!
//! The statistic comes from [`super::ecdf`]: small samples are sorted and
//! merged, large ones counted in value ranges and only the ranges that can
//! hold the extremes sorted, so partial states need no order.

use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::AggregateUDF;

use super::chi2::ln_gamma;
use super::ecdf::extremes;
use super::samples::{Numbers, Values};
use super::udaf::{Accepts, DriftUdaf, Returns, statistic_and_p_value_scalar};

/// scipy's `MAX_AUTO_N`: larger samples get the asymptotic p-value.
const MAX_EXACT_N: usize = 10_000;

/// The `drift_ks` aggregate.
pub(super) fn drift_ks() -> AggregateUDF {
    DriftUdaf::function(
        "drift_ks",
        Accepts::Numeric,
        Returns::StatisticAndPValue,
        false,
        false,
        evaluate,
    )
}

fn evaluate(values: &Values, _bins: Option<usize>) -> Result<ScalarValue> {
    values.check("drift_ks")?;
    let Values::Numeric(s) = values else {
        return exec_err!("drift_ks needs numeric values");
    };
    let result = ks_2samp(&s.reference, &s.current);
    statistic_and_p_value_scalar(result.statistic, result.p_value)
}

/// The outcome of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct KsResult {
    pub(super) statistic: f64,
    pub(super) p_value: f64,
    /// Whether the p-value is exact (else asymptotic).
    pub(super) exact: bool,
}

/// `scipy.stats.ks_2samp(a, b)`; both samples non-empty.
pub(super) fn ks_2samp(a: &Numbers, b: &Numbers) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    let (max_diff, min_diff) = extremes(a, b);
    let min_s = (-min_diff).clamp(0.0, 1.0);
    let mut d = if min_s > max_diff { min_s } else { max_diff };

    if n1.max(n2) <= MAX_EXACT_N {
        let g = gcd(n1, n2);
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even() as usize;
        d = h as f64 / lcm as f64;
        if h == 0 {
            return KsResult {
                statistic: d,
                p_value: 1.0,
                exact: true,
            };
        }
        let p = if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            outer_prob_inside(n1, n2, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return KsResult {
                statistic: d,
                p_value: p,
                exact: true,
            };
        }
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    KsResult {
        statistic: d,
        p_value: kstwo_sf(d, en as u64).clamp(0.0, 1.0),
        exact: false,
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Share of lattice paths from (0, 0) to (n, n) that leave the band
/// `|x − y| < h` (equal sample sizes).
fn prob_outside_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n as f64 - (k * h) as f64 - j as f64) * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// Share of lattice paths from (0, 0) to (m, n) that do not stay strictly
/// inside `|x/m − y/n| < h / lcm(m, n)`, one sliding column at a time.
fn outer_prob_inside(m: usize, n: usize, g: usize, h: usize) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let (mg, ng) = (m / g, n / g);
    let mut minj = 0i64;
    let mut maxj = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len];
    a[minj as usize..(maxj as usize).min(len)].fill(0.0);
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..maxj - minj {
            let j = jj + minj;
            let prev = a
                .get((jj + minj - lastminj) as usize)
                .copied()
                .unwrap_or(1.0);
            val = (prev * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = ((maxj - minj) as usize).min(len);
            let end = ((maxj - minj + lastlen - curlen) as usize).min(len);
            a[start..end].fill(1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}

const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128
const PI: f64 = std::f64::consts::PI;

/// `x · 2^e` without overflowing on the way.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    while e > 512 {
        x *= 2f64.powi(512);
        e -= 512;
    }
    while e < -512 {
        x *= 2f64.powi(-512);
        e += 512;
    }
    x * 2f64.powi(e)
}

/// `scipy.stats.kstwo.sf(x, n)`: probability that the two-sided
/// Kolmogorov statistic of `n` values exceeds `x`.
pub(super) fn kstwo_sf(x: f64, n: u64) -> f64 {
    let nf = n as f64;
    // kstwo's support is [0.5 / n, 1].
    if x <= 0.5 / nf {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino, 1/2n < x ≤ 1/n.
        let cdf = if n <= 140 {
            (1..=n)
                .map(|i| i as f64 * (1.0 / nf) * (2.0 * t - 1.0))
                .product()
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nx_squared = t * x;
    if n <= 140 {
        if nx_squared <= 4.0 {
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nx_squared >= 370.0 {
        return 0.0;
    }
    if nx_squared >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if nx_squared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// `ln(n! / nⁿ)` by Stirling's series with `n·ln n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const STIRLING: [f64; 8] = [
        -2.955_065_359_477_124e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_418e-4,
        -5.952_380_952_380_953e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// `Pr(Dₙ ≤ d)` by Durbin's matrix algorithm as Marsaglia, Tsang and Wang
/// compute it: the `(k, k)` entry of `Hⁿ`, scaled by `n! / nⁿ`.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = Matrix::zeros(m);
    for i in 1..m {
        for r in i - 1..m {
            hm.set(r, i, w[r + 1 - i]);
        }
    }
    for (r, value) in v.iter().enumerate() {
        hm.set(r, 0, *value);
    }
    for c in 0..m {
        hm.set(m - 1, c, v[m - 1 - c]);
    }

    let mut power = Matrix::identity(m);
    let (mut nn, mut expnt, mut h_expnt) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            power = power.mul(&hm);
            expnt += h_expnt;
        }
        hm = hm.mul(&hm);
        h_expnt *= 2;
        if hm.get(k - 1, k - 1).abs() > EP128 {
            hm.scale(1.0 / EP128);
            h_expnt += E128;
        }
        nn /= 2;
    }
    let mut p = power.get(k - 1, k - 1);
    for i in 1..=n {
        p = i as f64 * p / n as f64;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// A small dense square matrix, row-major.
#[derive(Clone)]
struct Matrix {
    size: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn zeros(size: usize) -> Self {
        Self {
            size,
            data: vec![0.0; size * size],
        }
    }

    fn identity(size: usize) -> Self {
        let mut m = Self::zeros(size);
        for i in 0..size {
            m.set(i, i, 1.0);
        }
        m
    }

    fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.size + c]
    }

    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.data[r * self.size + c] = v;
    }

    fn scale(&mut self, factor: f64) {
        self.data.iter_mut().for_each(|v| *v *= factor);
    }

    fn mul(&self, other: &Matrix) -> Matrix {
        let n = self.size;
        let mut out = Matrix::zeros(n);
        for r in 0..n {
            for k in 0..n {
                let a = self.data[r * n + k];
                if a == 0.0 {
                    continue;
                }
                let row = &other.data[k * n..(k + 1) * n];
                for (o, b) in out.data[r * n..(r + 1) * n].iter_mut().zip(row) {
                    *o += a * b;
                }
            }
        }
        out
    }
}

/// The Pelz–Good approximation of `Pr(Dₙ ≤ x)`.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    let z = (n as f64).sqrt() * x;
    let (z2, z3, z4, z6) = (z.powi(2), z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI * PI / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (pi2, pi4, pi6) = (PI.powi(2), PI.powi(4), PI.powi(6));
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m.powi(2), m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (ki, c) in k.iter_mut().zip(coeffs) {
            *ki = *ki * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (ki, d) in k.iter_mut().zip(divisors) {
        *ki = *ki * q * sqrt2pi / d;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let qk = q.powf(ks * ks);
        k2extra += ks * ks * qk;
        k3extra += (sqrt3z + PI * ks) * (sqrt3z - PI * ks) * ks * ks * qk;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    let nf = n as f64;
    k.iter()
        .enumerate()
        .map(|(i, ki)| ki / nf.powf(i as f64 / 2.0))
        .sum()
}

/// `scipy.special.smirnov(n, e)`: probability that the one-sided
/// Kolmogorov statistic of `n` values exceeds `e` (Birnbaum–Tingey sum,
/// as cephes computes it).
fn smirnov(n: u64, e: f64) -> f64 {
    const POLY_MAX_N: u64 = 1013;
    if !(0.0..=1.0).contains(&e) {
        return f64::NAN;
    }
    if e == 0.0 {
        return 1.0;
    }
    if e == 1.0 {
        return 0.0;
    }
    if n == 1 {
        return 1.0 - e;
    }
    let nf = n as f64;
    let n = n as i64;
    let upper = nf * e <= 1.0 || (n >= 10 && nf * e <= 3.0 && e <= 0.5 / nf.sqrt());
    let terms = if upper {
        n - (nf * (1.0 - e)).ceil() as i64
    } else {
        ((nf * (1.0 - e)).floor() as i64).min(n - 1) + 1
    };
    let mut p = 0.0;
    if n < POLY_MAX_N as i64 {
        let mut c = 1.0;
        let mut p0 = 0.0;
        let mut i = 0;
        if !upper {
            p0 = ((-e).ln_1p() * nf).exp();
            c *= nf;
            i += 1;
        }
        while i < terms {
            let v = if upper { n - i } else { i };
            let evn = e + v as f64 / nf;
            let omevn = 1.0 - evn;
            let aomevn = omevn.abs();
            i += 1;
            if !upper && omevn <= 0.0 {
                continue;
            }
            let mut t = if omevn <= 0.0 {
                c * evn.powf((v - 1) as f64) * aomevn.powf((n - v) as f64)
            } else {
                c * evn.powf((v - 1) as f64) * ((-evn).ln_1p() * (n - v) as f64).exp()
            };
            if t.is_nan() || t == 0.0 {
                let half =
                    evn.powf((v - 1) as f64 / 2.0) * aomevn.powf((n - v) as f64 / 2.0) * c.sqrt();
                if half.is_nan() {
                    return f64::NAN;
                }
                if half != 0.0 {
                    t = half * half;
                }
            }
            let sign = if upper && omevn < 0.0 && (n - v) % 2 == 1 {
                -1.0
            } else {
                1.0
            };
            p += sign * t;
            if upper {
                c *= v as f64 / (n - v + 1) as f64;
            } else {
                c *= (n - v) as f64 / (v + 1) as f64;
            }
        }
        p = p * e + p0;
    } else {
        let lgam_n1 = ln_gamma(nf + 1.0);
        for i in 0..terms {
            let v = if upper { n - i } else { i };
            let evn = e + v as f64 / nf;
            let omevn = 1.0 - evn;
            if !upper && omevn <= 0.0 {
                continue;
            }
            let lc = lgam_n1 - ln_gamma((v + 1) as f64) - ln_gamma((n - v + 1) as f64);
            let lt = lc + (v - 1) as f64 * evn.ln() + (n - v) as f64 * omevn.abs().ln();
            let sign = if upper && omevn < 0.0 && (n - v) % 2 == 1 {
                -1.0
            } else {
                1.0
            };
            if lt >= -709.78 {
                p += sign * lt.exp();
            }
        }
        p *= e;
    }
    if upper {
        p = 1.0 - p;
    }
    p.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{lcg, shifted_samples};
    use super::*;

    fn ks(a: &[f64], b: &[f64]) -> KsResult {
        ks_2samp(&a.to_vec().into(), &b.to_vec().into())
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn exact_p_values_match_scipy() {
        // scipy.stats.ks_2samp on the same samples.
        let (r, c) = shifted_samples();
        let res = ks(&r, &c);
        assert!(res.exact);
        assert!(close(res.statistic, 0.2175, 1e-12), "{res:?}");
        assert!(close(res.p_value, 1.107760281109392e-09, 1e-9), "{res:?}");
        let eq = ks(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(eq.statistic, 1.0);
        assert!(close(eq.p_value, 0.1, 1e-12), "{eq:?}");
        let same = ks(&r, &r);
        assert_eq!((same.statistic, same.p_value), (0.0, 1.0));
    }

    #[test]
    fn kolmogorov_distribution_matches_scipy() {
        // scipy.stats.kstwo.sf(x, n)
        for (x, n, expected) in [
            (0.01, 100_000u64, 4.093278023549254e-09),
            (0.003, 100_000, 0.3284563327726956),
            (0.05, 1000, 0.013012074781090332),
            (0.2, 50, 0.03143877776953241),
            (0.6, 10, 0.0005681672000000003),
            (0.15, 60, 0.12110534950589669),
            (0.0005, 2_000_000, 0.6991771101944894),
            (0.004, 300, 1.0),
        ] {
            let got = kstwo_sf(x, n);
            assert!(
                close(got, expected, 1e-6),
                "kstwo.sf({x}, {n}) = {got}, want {expected}"
            );
        }
    }

    #[test]
    fn large_samples_use_the_asymptotic_p_value() {
        let a = lcg(3, 20_000, 1.0, 0.0);
        let b = lcg(4, 15_000, 1.0, 0.01);
        let res = ks(&a, &b);
        assert!(!res.exact);
        assert!(close(res.statistic, 0.015516666666666679, 1e-12), "{res:?}");
        assert!(close(res.p_value, 0.031919353708681264, 1e-9), "{res:?}");
    }
}
