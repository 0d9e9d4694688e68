//! Sorting and merging samples of `f64`, the core of the KS and
//! Wasserstein tests.
//!
//! Large samples are sorted with a least-significant-digit radix sort on
//! the order-preserving bit pattern of each value (11-bit digits, one
//! counting read for all passes, passes over a digit every key shares
//! skipped), which is linear in the sample size; small ones with the
//! standard library's comparison sort. Sorted runs — the sorted states of
//! several partitions — are merged pairwise. Samples never hold NaN (the accumulator
//! counts NaN as null), so the order is the numeric one, with `-0.0`
//! before `0.0` (equal values, so no test can tell).

/// Below this many values a comparison sort is faster than the radix
/// passes.
const RADIX_MIN: usize = 1 << 16;

/// Bits of the key sorted by each radix pass: 2 048 buckets, whose counts
/// stay in the first-level cache while a pass scatters.
const DIGIT_BITS: usize = 11;
const PASSES: usize = 64usize.div_ceil(DIGIT_BITS);
const BUCKETS: usize = 1 << DIGIT_BITS;

/// Sorts `values` ascending.
pub(crate) fn sort(values: &mut [f64]) {
    if values.len() < RADIX_MIN || values.len() > u32::MAX as usize {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let mut keys: Vec<u64> = values.iter().map(|v| key(*v)).collect();
    // Every pass's histogram in one read of the keys.
    let mut counts = vec![0u32; BUCKETS * PASSES];
    for k in &keys {
        for (pass, c) in counts.chunks_exact_mut(BUCKETS).enumerate() {
            c[((k >> (pass * DIGIT_BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut scratch = vec![0u64; keys.len()];
    let n = keys.len() as u32;
    for (pass, c) in counts.chunks_exact_mut(BUCKETS).enumerate() {
        // All keys share this digit: the pass would not move anything.
        if c.contains(&n) {
            continue;
        }
        let mut offset = 0;
        for count in c.iter_mut() {
            let here = *count;
            *count = offset;
            offset += here;
        }
        let shift = pass * DIGIT_BITS;
        for k in &keys {
            let digit = ((k >> shift) as usize) & (BUCKETS - 1);
            scratch[c[digit] as usize] = *k;
            c[digit] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (v, k) in values.iter_mut().zip(&keys) {
        *v = value(*k);
    }
}

/// `values` if already ascending, else a sorted copy.
pub(crate) fn sorted(values: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if is_sorted(values) {
        std::borrow::Cow::Borrowed(values)
    } else {
        let mut owned = values.to_vec();
        sort(&mut owned);
        std::borrow::Cow::Owned(owned)
    }
}

fn is_sorted(values: &[f64]) -> bool {
    values.is_sorted_by(|a, b| a <= b)
}

/// Sorts `values` unless they are ascending already.
pub(crate) fn sort_if_unsorted(values: &mut [f64]) {
    if !is_sorted(values) {
        sort(values);
    }
}

/// Sorts the values after the last of `runs` (the ends of sorted runs at
/// the start of `sample`) into one more run.
fn sort_tail(sample: &mut [f64], runs: &mut Vec<usize>) {
    let start = runs.last().copied().unwrap_or(0);
    if sample.len() > start {
        sort(&mut sample[start..]);
        runs.push(sample.len());
    }
}

/// Makes `sample`, a sequence of sorted `runs` and an unsorted tail, one
/// sorted run: the tail is sorted, then neighbouring runs are merged
/// pairwise until one is left (linear work per round, `log₂ runs` rounds).
pub(crate) fn sort_runs(sample: &mut Vec<f64>, runs: &mut Vec<usize>) {
    sort_tail(sample, runs);
    if runs.len() <= 1 {
        return;
    }
    let mut scratch = vec![0.0; sample.len()];
    while runs.len() > 1 {
        let mut merged = Vec::with_capacity(runs.len().div_ceil(2));
        let mut start = 0;
        for pair in runs.chunks(2) {
            let end = *pair.last().expect("chunks are not empty");
            let middle = pair[0];
            merge(
                &sample[start..middle],
                &sample[middle..end],
                &mut scratch[start..end],
            );
            merged.push(end);
            start = end;
        }
        std::mem::swap(sample, &mut scratch);
        *runs = merged;
    }
}

/// Merges two ascending slices into `out` (of their combined length).
fn merge(a: &[f64], b: &[f64], out: &mut [f64]) {
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let take_a = a[i] <= b[j];
        out[k] = if take_a { a[i] } else { b[j] };
        i += usize::from(take_a);
        j += usize::from(!take_a);
        k += 1;
    }
    out[k..k + a.len() - i].copy_from_slice(&a[i..]);
    k += a.len() - i;
    out[k..].copy_from_slice(&b[j..]);
}

/// Maps a float to an unsigned integer with the same order.
fn key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The inverse of [`key`].
fn value(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Walks the distinct values of two sorted samples in ascending order,
/// calling `step(v, next, i, j)` where `i` and `j` count the values of
/// each sample at or below `v` (`searchsorted(…, side="right")`) and
/// `next` is the following distinct value, if any.
pub(crate) fn merge_steps(
    u: &[f64],
    v: &[f64],
    mut step: impl FnMut(f64, Option<f64>, usize, usize),
) {
    let (mut i, mut j) = (0usize, 0usize);
    let next_value = |i: usize, j: usize| match (u.get(i), v.get(j)) {
        (Some(a), Some(b)) => Some(a.min(*b)),
        (Some(a), None) => Some(*a),
        (None, Some(b)) => Some(*b),
        (None, None) => None,
    };
    let mut current = next_value(0, 0);
    while let Some(x) = current {
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        current = next_value(i, j);
        step(x, current, i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        let mut x = 7u64;
        let mut values: Vec<f64> = (0..RADIX_MIN * 2)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let v = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                match i % 7 {
                    0 => v * 1e300,
                    1 => -v * 1e-300,
                    2 => 0.0,
                    3 => f64::NEG_INFINITY,
                    _ => v,
                }
            })
            .collect();
        let mut expected = values.clone();
        expected.sort_unstable_by(f64::total_cmp);
        sort(&mut values);
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn runs_merge_into_one_sorted_sample() {
        let mut sample = vec![1.0, 4.0, 9.0, 0.0, 5.0, 2.0, 3.0, 8.0, -1.0, 7.0, 6.0];
        // Three sorted runs and an unsorted tail.
        let mut runs = vec![3, 5, 8];
        sort_runs(&mut sample, &mut runs);
        assert_eq!(
            sample,
            vec![-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        );
        assert_eq!(runs, vec![11]);
    }

    #[test]
    fn merge_counts_values_at_or_below() {
        let mut seen = Vec::new();
        merge_steps(&[1.0, 2.0, 2.0], &[2.0, 3.0], |x, next, i, j| {
            seen.push((x, next, i, j))
        });
        assert_eq!(
            seen,
            vec![
                (1.0, Some(2.0), 1, 0),
                (2.0, Some(3.0), 3, 1),
                (3.0, None, 3, 2)
            ]
        );
    }
}
