//! The extremes of the difference between two empirical distribution
//! functions, `F_a(x) − F_b(x)` over every value `x` of either sample —
//! the KS statistic — without sorting the samples.
//!
//! Small samples are sorted and walked in one merge. Large ones are cut
//! into value ranges (up to [`MAX_BUCKETS`]) by an order-preserving map,
//! `(x − lo) · scale` truncated, and each sample's values are counted per
//! range (the two samples on two threads). The difference after each
//! non-empty range is exact (it is the difference at the range's largest
//! value), and inside a range it can only move between `A_before/n₁ −
//! B_after/n₂` and `A_after/n₁ − B_before/n₂`; only ranges whose bounds
//! beat the extremes found so far are gathered, sorted and walked value by
//! value. Near the extremes the difference is flat, so that is a few
//! hundred ranges: two linear reads of the samples replace a sort of both.
//! Samples whose values crowd into a few ranges (heavy tails, identical
//! samples) degrade towards the sorting walk, never to a wrong answer.
//!
//! The differences are computed as `i as f64 / n₁ − j as f64 / n₂` at the
//! same points as `scipy.stats.ks_2samp`'s `searchsorted` walk; floating
//! division and subtraction are monotone, so the bounds computed the same
//! way are exact bounds and the extremes are the very floats scipy finds.

use super::binning::range;
use super::parallel::{PARALLEL_MIN, join};
use super::samples::Numbers;
use super::sort::{merge_steps, sort, sorted};

/// Value ranges of the bucketed walk at most: two counters each, which
/// stay in the second-level cache while counting. Smaller samples get
/// about one range per two values.
const MAX_BUCKETS: usize = 1 << 16;
const MIN_BUCKETS: usize = 1 << 10;

/// Below this many values in all, sorting both samples is as fast.
const BUCKETED_MIN: usize = 1 << 13;

/// The largest and smallest `F_a(x) − F_b(x)`; both samples non-empty and
/// free of NaN.
pub(crate) fn extremes(a: &Numbers, b: &Numbers) -> (f64, f64) {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut walk = Walk::new(n1, n2);
    if a.len() + b.len() < BUCKETED_MIN || a.len().max(b.len()) > u32::MAX as usize {
        let (a, b) = (a.contiguous(), b.contiguous());
        walk.sorted_steps(&sorted(&a), &sorted(&b), 0, 0);
        return (walk.max, walk.min);
    }
    let parallel = a.len() + b.len() >= PARALLEL_MIN;
    let buckets = ((a.len() + b.len()) / 2)
        .next_power_of_two()
        .clamp(MIN_BUCKETS, MAX_BUCKETS);
    let (lo, hi) = finite_range(a, b);
    let scale = if hi > lo && (hi - lo).is_finite() {
        buckets as f64 / (hi - lo)
    } else {
        0.0
    };
    let bucket = move |x: f64| (((x - lo) * scale) as usize).min(buckets - 1);
    let count = |values: &Numbers| {
        let mut counts = vec![0u32; buckets];
        for part in values.parts() {
            for &x in part {
                counts[bucket(x)] += 1;
            }
        }
        counts
    };
    let (ca, cb) = join(parallel, || count(a), || count(b));

    // The exact differences after each range.
    let (mut i, mut j) = (0u64, 0u64);
    for k in 0..buckets {
        if ca[k] == 0 && cb[k] == 0 {
            continue;
        }
        i += u64::from(ca[k]);
        j += u64::from(cb[k]);
        walk.step(i, j);
    }
    // Ranges whose inside could hold a larger or smaller difference.
    let (mut i, mut j) = (0u64, 0u64);
    let mut candidates = vec![false; buckets];
    let mut any = false;
    for k in 0..buckets {
        let (i_after, j_after) = (i + u64::from(ca[k]), j + u64::from(cb[k]));
        if ca[k] > 0 && cb[k] > 0 {
            let upper = walk.diff(i_after, j);
            let lower = walk.diff(i, j_after);
            if upper > walk.max || lower < walk.min {
                candidates[k] = true;
                any = true;
            }
        }
        (i, j) = (i_after, j_after);
    }
    if !any {
        return (walk.max, walk.min);
    }
    let gather = |values: &Numbers| {
        let mut picked: Vec<f64> = values.iter().filter(|&x| candidates[bucket(x)]).collect();
        sort(&mut picked);
        picked
    };
    let (ga, gb) = join(parallel, || gather(a), || gather(b));
    // Each candidate range's values are consecutive in the sorted picks.
    let (mut i, mut j) = (0u64, 0u64);
    let (mut pa, mut pb) = (0usize, 0usize);
    for k in 0..buckets {
        let (na, nb) = (ca[k] as usize, cb[k] as usize);
        if candidates[k] {
            walk.sorted_steps(&ga[pa..pa + na], &gb[pb..pb + nb], i, j);
            pa += na;
            pb += nb;
        }
        i += na as u64;
        j += nb as u64;
    }
    (walk.max, walk.min)
}

/// The running extremes of the difference.
struct Walk {
    n1: f64,
    n2: f64,
    max: f64,
    min: f64,
}

impl Walk {
    fn new(n1: f64, n2: f64) -> Self {
        Self {
            n1,
            n2,
            max: f64::NEG_INFINITY,
            min: f64::INFINITY,
        }
    }

    /// `i/n₁ − j/n₂`, as scipy computes it.
    fn diff(&self, i: u64, j: u64) -> f64 {
        i as f64 / self.n1 - j as f64 / self.n2
    }

    fn step(&mut self, i: u64, j: u64) {
        let d = self.diff(i, j);
        self.max = self.max.max(d);
        self.min = self.min.min(d);
    }

    /// Walks sorted values that follow `i0` and `j0` smaller ones.
    fn sorted_steps(&mut self, a: &[f64], b: &[f64], i0: u64, j0: u64) {
        merge_steps(a, b, |_, _, i, j| self.step(i0 + i as u64, j0 + j as u64));
    }
}

/// The smallest and largest finite value of both samples (`0, 0` when
/// there is none).
fn finite_range(a: &Numbers, b: &Numbers) -> (f64, f64) {
    let ((la, ha), (lb, hb)) = (range(a), range(b));
    let (lo, hi) = (la.min(lb), ha.max(hb));
    if lo.is_finite() && hi.is_finite() {
        return (lo, hi);
    }
    // Infinite values sit in the first and last range.
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in a.iter().chain(b.iter()).filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extremes by sorting everything, for comparison.
    fn by_sorting(a: &[f64], b: &[f64]) -> (f64, f64) {
        let mut walk = Walk::new(a.len() as f64, b.len() as f64);
        walk.sorted_steps(&sorted(a), &sorted(b), 0, 0);
        (walk.max, walk.min)
    }

    fn sample(seed: u64, n: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                f((x >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    #[test]
    fn buckets_find_the_same_extremes_as_sorting() {
        let n = BUCKETED_MIN;
        let cases: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
            (
                "shifted",
                sample(1, n, |u| u),
                sample(2, n / 3, |u| 0.05 + u),
            ),
            // Few distinct values: ties everywhere.
            (
                "ties",
                sample(3, n, |u| (u * 37.0).floor()),
                sample(4, n, |u| (u * 41.0).floor()),
            ),
            // Heavy tails: most values in a sliver of the range.
            (
                "cauchy",
                sample(5, n, |u| (std::f64::consts::PI * (u - 0.5)).tan()),
                sample(6, n, |u| 0.1 + (std::f64::consts::PI * (u - 0.5)).tan()),
            ),
            (
                "infinities",
                sample(7, n, |u| if u < 0.01 { f64::INFINITY } else { u }),
                sample(8, n, |u| if u < 0.02 { f64::NEG_INFINITY } else { u }),
            ),
            ("constant", vec![2.5; n], sample(9, 100, |u| u * 5.0)),
            // Enough values for the largest number of ranges.
            (
                "large",
                sample(13, 1 << 18, |u| u * u),
                sample(14, 1 << 17, |u| u.powf(1.9)),
            ),
            (
                "identical",
                sample(10, n, |u| u * u),
                sample(10, n, |u| u * u),
            ),
            (
                "signed zeros",
                sample(11, n, |u| if u < 0.5 { -0.0 } else { 0.0 }),
                sample(12, n, |u| if u < 0.3 { 0.0 } else { 1.0 }),
            ),
        ];
        for (name, a, b) in cases {
            assert!(a.len() + b.len() >= BUCKETED_MIN, "{name}");
            let expected = (by_sorting(&a, &b), by_sorting(&b, &a));
            // Several buffers per sample, as partitions hand them over.
            let split = |v: &[f64]| {
                let mut n = Numbers::default();
                for part in v.chunks(v.len() / 3 + 1) {
                    n.push(part.to_vec().into());
                }
                n
            };
            let (a, b) = (split(&a), split(&b));
            assert_eq!(extremes(&a, &b), expected.0, "{name}");
            assert_eq!(extremes(&b, &a), expected.1, "{name} swapped");
        }
    }
}
