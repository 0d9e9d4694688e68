//! Sorting and merging samples of `f64`, the core of the KS and
//! Wasserstein tests.
//!
//! Large samples are sorted with a least-significant-digit radix sort on
//! the order-preserving bit pattern of each value (4 passes of 16 bits),
//! which is linear in the sample size; small ones with the standard
//! library's comparison sort. Samples never hold NaN (the accumulator
//! counts NaN as null), so the order is the numeric one, with `-0.0`
//! before `0.0` (equal values, so no test can tell).

/// Below this many values a comparison sort is faster than four radix
/// passes over a 65 536-entry histogram.
const RADIX_MIN: usize = 1 << 16;

/// Sorts `values` ascending.
pub(crate) fn sort(values: &mut [f64]) {
    if values.len() < RADIX_MIN {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let mut keys: Vec<u64> = values.iter().map(|v| key(*v)).collect();
    let mut scratch = vec![0u64; keys.len()];
    for pass in 0..4 {
        let shift = pass * 16;
        let mut counts = vec![0usize; 1 << 16];
        for k in &keys {
            counts[((k >> shift) & 0xffff) as usize] += 1;
        }
        // All keys share this digit: the pass would not move anything.
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut offset = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = offset;
            offset += n;
        }
        for k in &keys {
            let digit = ((k >> shift) & 0xffff) as usize;
            scratch[counts[digit]] = *k;
            counts[digit] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (v, k) in values.iter_mut().zip(&keys) {
        *v = value(*k);
    }
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
