//! Binning shared by PSI and Jensen–Shannon, as Evidently's
//! `get_binned_data`: numeric values with more than 20 distinct reference
//! values are cut into equal-width bins over both samples (Sturges' rule,
//! as `numpy.histogram_bin_edges(…, bins="sturges")`, or a given count);
//! anything else is compared category by category. Empty shares can be
//! floored as Evidently does, so logarithms stay finite.

use std::collections::HashSet;

use super::parallel::{PARALLEL_MIN, join};
use super::samples::{Numbers, Values};

/// Distinct reference values above which numbers are binned.
const MAX_CATEGORIES: usize = 20;

/// The two samples' shares per bin (or category).
pub(crate) fn binned_shares(
    values: &Values,
    bins: Option<usize>,
    feel_zeroes: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mut reference, mut current) = match values {
        Values::Numeric(s)
            if bins.is_some() || more_distinct_than(s.reference.iter(), MAX_CATEGORIES) =>
        {
            let edges = bin_edges(&[&s.reference, &s.current], bins);
            let (r, c) = join(
                s.reference.len() + s.current.len() >= PARALLEL_MIN,
                || histogram(&s.reference, &edges),
                || histogram(&s.current, &edges),
            );
            (shares(&r), shares(&c))
        }
        other => {
            let (r, c) = other.category_counts();
            (shares(&r), shares(&c))
        }
    };
    if feel_zeroes {
        floor_zeroes(&mut reference);
        floor_zeroes(&mut current);
    }
    (reference, current)
}

/// Whether `values` holds more than `n` distinct values; stops counting
/// as soon as it does.
fn more_distinct_than(mut values: impl Iterator<Item = f64>, n: usize) -> bool {
    let mut seen = HashSet::with_capacity(n + 1);
    values.any(|v| seen.insert(if v == 0.0 { 0 } else { v.to_bits() }) && seen.len() > n)
}

fn shares(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

/// Evidently's floor for empty bins: a millionth of the smallest non-empty
/// share when that is at most 0.0001, else 0.0001.
fn floor_zeroes(shares: &mut [f64]) {
    let smallest = shares
        .iter()
        .copied()
        .filter(|s| *s != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return;
    }
    let floor = if smallest <= 0.0001 {
        smallest / 1e6
    } else {
        0.0001
    };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = floor;
    }
}

/// `numpy.histogram_bin_edges(data, bins="sturges")` over the values of
/// all `samples` together, or `bins` equal bins.
pub(crate) fn bin_edges(samples: &[&Numbers], bins: Option<usize>) -> Vec<f64> {
    let len: usize = samples.iter().map(|s| s.len()).sum();
    let ranges = match samples {
        [a, b] => {
            let (a, b) = join(len >= PARALLEL_MIN, || range(a), || range(b));
            vec![a, b]
        }
        _ => samples.iter().map(|s| range(s)).collect(),
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (l, h) in ranges {
        (lo, hi) = (lo.min(l), hi.max(h));
    }
    let ptp = hi - lo;
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    let n = match bins {
        Some(n) => n.max(1),
        None => {
            let width = ptp / ((len as f64).log2() + 1.0);
            if width > 0.0 {
                ((hi - lo) / width).ceil() as usize
            } else {
                1
            }
        }
    };
    // numpy.linspace(lo, hi, n + 1)
    let step = (hi - lo) / n as f64;
    let mut edges: Vec<f64> = (0..=n).map(|i| lo + i as f64 * step).collect();
    edges[n] = hi;
    edges
}

/// The smallest and largest value of a sample, over all its buffers.
pub(crate) fn range(sample: &Numbers) -> (f64, f64) {
    sample
        .parts()
        .map(min_max)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, h)| {
            (lo.min(l), hi.max(h))
        })
}

/// The smallest and largest value (no NaN in samples), in eight lanes so
/// the compiler can vectorise it.
fn min_max(values: &[f64]) -> (f64, f64) {
    let mut lo = [f64::INFINITY; 8];
    let mut hi = [f64::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for k in 0..8 {
            lo[k] = lo[k].min(chunk[k]);
            hi[k] = hi[k].max(chunk[k]);
        }
    }
    for v in rest {
        lo[0] = lo[0].min(*v);
        hi[0] = hi[0].max(*v);
    }
    (
        lo.into_iter().fold(f64::INFINITY, f64::min),
        hi.into_iter().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// `numpy.histogram(data, edges)` for equal-width edges: bins are
/// half-open except the last, which includes its right edge.
///
/// Counts go to four interleaved counters per bin (value `k` to counter
/// `k mod 4`), so runs of values in one bin do not wait on each other's
/// increments.
pub(crate) fn histogram(sample: &Numbers, edges: &[f64]) -> Vec<f64> {
    let n = edges.len() - 1;
    let (lo, hi) = (edges[0], edges[n]);
    let norm = n as f64 / (hi - lo);
    let bin = |x: f64| {
        if x < lo || x > hi {
            return None;
        }
        let mut i = (((x - lo) * norm) as usize).min(n - 1);
        // numpy's corrections for floating-point rounding at the edges.
        if x < edges[i] {
            i -= 1;
        } else if i + 1 < n && x >= edges[i + 1] {
            i += 1;
        }
        Some(i)
    };
    let mut counts = vec![[0u64; 4]; n];
    for data in sample.parts() {
        let chunks = data.chunks_exact(4);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (lane, &x) in chunk.iter().enumerate() {
                if let Some(i) = bin(x) {
                    counts[i][lane] += 1;
                }
            }
        }
        for &x in rest {
            if let Some(i) = bin(x) {
                counts[i][0] += 1;
            }
        }
    }
    counts
        .iter()
        .map(|c| c.iter().sum::<u64>() as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sturges_edges_match_numpy() {
        // numpy.histogram_bin_edges(np.arange(100), bins="sturges")
        let data = Numbers::from((0..100).map(f64::from).collect::<Vec<_>>());
        let edges = bin_edges(&[&data], None);
        assert_eq!(edges.len(), 9);
        assert!((edges[1] - 12.375).abs() < 1e-12);
        assert_eq!(
            histogram(&data, &edges),
            vec![13.0, 12.0, 13.0, 12.0, 12.0, 13.0, 12.0, 13.0]
        );
        // A constant sample is one bin around the value.
        let three = Numbers::from(vec![3.0]);
        assert_eq!(bin_edges(&[&three, &three], None), vec![2.5, 3.5]);
        // Edges span both samples, and each sample all its buffers.
        let mut a = Numbers::from(vec![0.0]);
        a.push(vec![1.0].into());
        assert_eq!(
            bin_edges(&[&a, &Numbers::from(vec![4.0])], Some(2)),
            vec![0.0, 2.0, 4.0]
        );
    }

    #[test]
    fn empty_bins_are_floored_as_evidently() {
        let mut s = vec![0.5, 0.5, 0.0];
        floor_zeroes(&mut s);
        assert_eq!(s, vec![0.5, 0.5, 0.0001]);
        let mut s = vec![0.00005, 0.99995, 0.0];
        floor_zeroes(&mut s);
        assert!((s[2] - 0.00005 / 1e6).abs() < 1e-20);
    }
}
