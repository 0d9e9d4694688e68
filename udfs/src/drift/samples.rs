//! The accumulator every drift function shares: it gathers the reference
//! and current samples of one group (nulls skipped and counted) and hands
//! them to the function's test when the group is complete.
//!
//! Partial states are the two samples as lists plus the null counts, so
//! groups can be computed on several partitions and merged. Numeric inputs
//! are kept as `f64`; everything else (strings, booleans, …) as the text of
//! each value, which is what a categorical test compares.
//!
//! Numeric samples are [`Numbers`]: Arrow buffers kept as they arrive.
//! A batch whose rows all belong to one sample (the usual shape: the
//! reference and current rows come from different scans) is kept without
//! a copy, and so is each partial state a final accumulator merges; the
//! values of other batches are copied to the end of their sample. A kept
//! buffer may be a slice of a larger one, which then stays alive too; the
//! accumulator's reported size counts the values only. A partial state is
//! one list per sample, so a partition's buffers are joined once when it
//! hands over.
//!
//! The tests that need sorted samples (Wasserstein) ask for *sorted
//! states*: each partition sorts its own samples when it hands over its
//! state — so the sorting runs in parallel, one partition per core — and
//! the final accumulator keeps each incoming state as a sorted run and
//! merges the runs linearly before the test.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StringArray, UInt64Array,
};
use arrow::buffer::ScalarBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Accumulator;

use super::parallel::{PARALLEL_MIN, join};
use super::sort;

/// One numeric sample: its values in Arrow buffers, in arrival order.
/// Large buffers are kept as they come; small pieces (a few rows of a
/// group, rows split between the samples) are copied into a growing tail,
/// so a sample never becomes a long list of tiny buffers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Numbers {
    parts: Vec<ScalarBuffer<f64>>,
    tail: Vec<f64>,
    len: usize,
}

/// Buffers of at least this many values are kept without a copy.
const KEEP_MIN: usize = 1024;

impl Numbers {
    /// Appends a buffer: kept as it is when large, else copied.
    pub(crate) fn push(&mut self, part: ScalarBuffer<f64>) {
        if part.len() < KEEP_MIN {
            self.extend_from_slice(&part);
            return;
        }
        self.flush();
        self.len += part.len();
        self.parts.push(part);
    }

    /// Appends values by copying them.
    pub(crate) fn extend_from_slice(&mut self, values: &[f64]) {
        self.len += values.len();
        self.tail.extend_from_slice(values);
    }

    /// Appends one value.
    pub(crate) fn push_value(&mut self, value: f64) {
        self.len += 1;
        self.tail.push(value);
    }

    /// Moves the tail into the list of buffers.
    fn flush(&mut self) {
        if !self.tail.is_empty() {
            self.parts.push(std::mem::take(&mut self.tail).into());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The values as slices, in order.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &[f64]> {
        self.parts
            .iter()
            .map(|p| &p[..])
            .chain(std::iter::once(&self.tail[..]).filter(|t| !t.is_empty()))
    }

    /// Every value, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.parts().flatten().copied()
    }

    /// The values as one slice: borrowed when they are in one piece.
    pub(crate) fn contiguous(&self) -> std::borrow::Cow<'_, [f64]> {
        match (&self.parts[..], self.tail.is_empty()) {
            ([], _) => std::borrow::Cow::Borrowed(&self.tail[..]),
            ([one], true) => std::borrow::Cow::Borrowed(&one[..]),
            _ => std::borrow::Cow::Owned(self.concat()),
        }
    }

    fn concat(&self) -> Vec<f64> {
        let mut all = Vec::with_capacity(self.len);
        for part in self.parts() {
            all.extend_from_slice(part);
        }
        all
    }

    /// The values as one buffer (joined when there are several pieces).
    fn into_buffer(mut self) -> ScalarBuffer<f64> {
        self.flush();
        match <[ScalarBuffer<f64>; 1]>::try_from(std::mem::take(&mut self.parts)) {
            Ok([one]) => one,
            Err(parts) => {
                self.parts = parts;
                self.concat().into()
            }
        }
    }

    /// Makes the values one ascending buffer: each piece is a run (sorted
    /// here unless it is already), and the runs are merged.
    fn sort(&mut self) {
        if self.parts.is_empty() {
            sort::sort_if_unsorted(&mut self.tail);
            return;
        }
        if let ([one], true) = (&self.parts[..], self.tail.is_empty())
            && one.is_sorted_by(|a, b| a <= b)
        {
            return;
        }
        let mut values = Vec::with_capacity(self.len);
        let mut runs = Vec::with_capacity(self.parts.len() + 1);
        for part in self.parts() {
            let start = values.len();
            values.extend_from_slice(part);
            sort::sort_if_unsorted(&mut values[start..]);
            runs.push(values.len());
        }
        sort::sort_runs(&mut values, &mut runs);
        *self = Numbers::from(values);
    }

    /// Bytes held.
    fn size(&self) -> usize {
        self.len * std::mem::size_of::<f64>()
    }
}

impl From<Vec<f64>> for Numbers {
    fn from(values: Vec<f64>) -> Self {
        Numbers {
            parts: Vec::new(),
            len: values.len(),
            tail: values,
        }
    }
}

/// A sample's length, whatever it holds.
pub(crate) trait Sample {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sample for Numbers {
    fn len(&self) -> usize {
        self.len
    }
}

impl Sample for Vec<String> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// One group's two samples.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples<S> {
    pub(crate) reference: S,
    pub(crate) current: S,
    pub(crate) reference_nulls: u64,
    pub(crate) current_nulls: u64,
}

impl<S: Sample> Samples<S> {
    /// Refuses to test with an empty sample.
    pub(crate) fn check(&self, function: &str) -> Result<()> {
        if self.reference.is_empty() {
            return exec_err!(
                "{function}: the reference sample has no non-null values ({} nulls)",
                self.reference_nulls
            );
        }
        if self.current.is_empty() {
            return exec_err!(
                "{function}: the current sample has no non-null values ({} nulls)",
                self.current_nulls
            );
        }
        Ok(())
    }
}

/// The values of a group, numeric or categorical.
#[derive(Debug, Clone)]
pub(crate) enum Values {
    Numeric(Samples<Numbers>),
    Categorical(Samples<Vec<String>>),
}

impl Values {
    /// Share of each category in each sample, over the union of categories.
    pub(crate) fn category_counts(&self) -> (Vec<f64>, Vec<f64>) {
        fn counts<K: std::hash::Hash + Eq>(
            reference: impl Iterator<Item = K>,
            current: impl Iterator<Item = K>,
        ) -> (Vec<f64>, Vec<f64>) {
            let mut index: HashMap<K, usize> = HashMap::new();
            let mut r = Vec::new();
            let mut c = Vec::new();
            let keyed = reference
                .map(|k| (k, false))
                .chain(current.map(|k| (k, true)));
            for (key, is_current) in keyed {
                let next = index.len();
                let i = *index.entry(key).or_insert(next);
                if i == r.len() {
                    r.push(0.0);
                    c.push(0.0);
                }
                if is_current {
                    c[i] += 1.0;
                } else {
                    r[i] += 1.0;
                }
            }
            (r, c)
        }
        match self {
            Values::Numeric(s) => counts(
                s.reference.iter().map(f64::to_bits),
                s.current.iter().map(f64::to_bits),
            ),
            Values::Categorical(s) => counts(s.reference.iter(), s.current.iter()),
        }
    }

    /// Checks both samples have values.
    pub(crate) fn check(&self, function: &str) -> Result<()> {
        match self {
            Values::Numeric(s) => s.check(function),
            Values::Categorical(s) => s.check(function),
        }
    }
}

/// A compensated (Neumaier) running sum: as accurate as numpy's
/// pairwise sums or better, whatever the order of the terms.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Whether any value is NaN (a block at a time, so the check vectorises).
fn has_nan(values: &[f64]) -> bool {
    values
        .chunks(1024)
        .any(|block| block.iter().fold(false, |seen, v| seen | v.is_nan()))
}

/// Whether values of this type are tested as numbers.
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

/// Whether values of this type can be compared as categories: text,
/// booleans, integers-as-labels, dates. (Floating-point, nested and binary
/// values cannot.)
pub(crate) fn is_categorical(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Date32
            | DataType::Date64
    ) || data_type.is_integer()
        || matches!(data_type, DataType::Dictionary(_, v) if is_categorical(v))
}

/// The partial-state fields of a drift function over `value_type`.
pub(crate) fn state_fields(name: &str, numeric: bool) -> Vec<FieldRef> {
    let item = if numeric {
        DataType::Float64
    } else {
        DataType::Utf8
    };
    let list = DataType::List(Arc::new(Field::new_list_field(item, true)));
    vec![
        Arc::new(Field::new(format!("{name}[reference]"), list.clone(), true)),
        Arc::new(Field::new(format!("{name}[current]"), list, true)),
        Arc::new(Field::new(
            format!("{name}[reference_nulls]"),
            DataType::UInt64,
            true,
        )),
        Arc::new(Field::new(
            format!("{name}[current_nulls]"),
            DataType::UInt64,
            true,
        )),
    ]
}

/// The test run on a complete group.
pub(crate) type Evaluate = fn(&Values, Option<usize>) -> Result<ScalarValue>;

/// Gathers samples and runs `evaluate` on them.
#[derive(Debug)]
pub(crate) struct SampleAccumulator {
    values: Values,
    bins: Option<usize>,
    evaluate: Evaluate,
    /// Whether numeric samples are sorted before they leave as a state
    /// and before the test runs.
    sorted: bool,
}

impl SampleAccumulator {
    pub(crate) fn new(
        numeric: bool,
        bins: Option<usize>,
        evaluate: Evaluate,
        sorted: bool,
    ) -> Self {
        let values = if numeric {
            Values::Numeric(Samples::default())
        } else {
            Values::Categorical(Samples::default())
        };
        Self {
            values,
            bins,
            evaluate,
            sorted: sorted && numeric,
        }
    }

    /// In sorted mode, sorts and merges everything gathered so far, so each
    /// numeric sample is one sorted run (the two samples side by side on
    /// two threads when both are large).
    fn sort_samples(&mut self) {
        let Values::Numeric(s) = &mut self.values else {
            return;
        };
        if !self.sorted {
            return;
        }
        let parallel = s.reference.len() + s.current.len() >= PARALLEL_MIN;
        join(parallel, || s.reference.sort(), || s.current.sort());
    }

    /// Appends a numeric list value of a partial state to one sample.
    fn append_numeric(&mut self, values: &ArrayRef, is_current: bool) -> Result<()> {
        let Values::Numeric(s) = &mut self.values else {
            return exec_err!("drift functions: unexpected partial state");
        };
        let values = cast(values, &DataType::Float64)?;
        let values = values.as_primitive::<arrow::datatypes::Float64Type>();
        let sample = if is_current {
            &mut s.current
        } else {
            &mut s.reference
        };
        // A state is kept as it is, one buffer; in sorted mode each is a
        // run, sorted before the test if it came unsorted.
        if values.null_count() == 0 {
            sample.push(values.values().clone());
        } else {
            values.iter().flatten().for_each(|v| sample.push_value(v));
        }
        Ok(())
    }

    fn push(&mut self, values: &ArrayRef, flags: &BooleanArray) -> Result<()> {
        match &mut self.values {
            Values::Numeric(s) => {
                let values = cast(values, &DataType::Float64)?;
                let values = values.as_primitive::<arrow::datatypes::Float64Type>();
                let raw = values.values();
                let plain = values.null_count() == 0 && flags.null_count() == 0;
                let trues = flags.true_count();
                if plain && (trues == 0 || trues == flags.len()) {
                    let (sample, nulls) = if trues == 0 {
                        (&mut s.reference, &mut s.reference_nulls)
                    } else {
                        (&mut s.current, &mut s.current_nulls)
                    };
                    if has_nan(raw) {
                        let before = sample.len();
                        raw.iter()
                            .filter(|v| !v.is_nan())
                            .for_each(|v| sample.push_value(*v));
                        *nulls += (raw.len() - (sample.len() - before)) as u64;
                    } else {
                        // The batch's own buffer, not a copy.
                        sample.push(raw.clone());
                    }
                    return Ok(());
                }
                for (i, (&v, is_current)) in raw.iter().zip(flags.values().iter()).enumerate() {
                    if !plain && flags.is_null(i) {
                        continue;
                    }
                    if v.is_nan() || (!plain && values.is_null(i)) {
                        *if is_current {
                            &mut s.current_nulls
                        } else {
                            &mut s.reference_nulls
                        } += 1;
                    } else if is_current {
                        s.current.push_value(v);
                    } else {
                        s.reference.push_value(v);
                    }
                }
            }
            Values::Categorical(s) => {
                let values = cast(values, &DataType::Utf8)?;
                let values = values.as_string::<i32>();
                for i in 0..values.len() {
                    if flags.is_null(i) {
                        continue;
                    }
                    let current = flags.value(i);
                    if values.is_null(i) {
                        *if current {
                            &mut s.current_nulls
                        } else {
                            &mut s.reference_nulls
                        } += 1;
                    } else if current {
                        s.current.push(values.value(i).to_string());
                    } else {
                        s.reference.push(values.value(i).to_string());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for SampleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [x, flag, ..] = values else {
            return exec_err!("drift functions take (value, is_current)");
        };
        let flags = cast(flag, &DataType::Boolean)?;
        self.push(x, flags.as_boolean())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Reorders the samples but keeps them: a window frame may call
        // this again after more rows arrive.
        self.sort_samples();
        (self.evaluate)(&self.values, self.bins)
    }

    fn size(&self) -> usize {
        let data = match &self.values {
            Values::Numeric(s) => s.reference.size() + s.current.size(),
            Values::Categorical(s) => s
                .reference
                .iter()
                .chain(&s.current)
                .map(|v| v.capacity() + 24)
                .sum(),
        };
        std::mem::size_of_val(self) + data
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.sort_samples();
        // The state is taken: DataFusion calls this once, at the end.
        let (reference, current, rn, cn): (ArrayRef, ArrayRef, u64, u64) = match &mut self.values {
            Values::Numeric(s) => (
                Arc::new(Float64Array::new(
                    std::mem::take(&mut s.reference).into_buffer(),
                    None,
                )),
                Arc::new(Float64Array::new(
                    std::mem::take(&mut s.current).into_buffer(),
                    None,
                )),
                s.reference_nulls,
                s.current_nulls,
            ),
            Values::Categorical(s) => (
                Arc::new(StringArray::from_iter_values(&s.reference)),
                Arc::new(StringArray::from_iter_values(&s.current)),
                s.reference_nulls,
                s.current_nulls,
            ),
        };
        Ok(vec![
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(reference.data_type().clone(), true)),
                arrow::buffer::OffsetBuffer::from_lengths([reference.len()]),
                reference,
                None,
            ))),
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(current.data_type().clone(), true)),
                arrow::buffer::OffsetBuffer::from_lengths([current.len()]),
                current,
                None,
            ))),
            ScalarValue::UInt64(Some(rn)),
            ScalarValue::UInt64(Some(cn)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [reference, current, rn, cn] = states else {
            return exec_err!("drift functions: unexpected partial state");
        };
        let reference = reference.as_list::<i32>();
        let current = current.as_list::<i32>();
        let rn = cast(rn, &DataType::UInt64)?;
        let cn = cast(cn, &DataType::UInt64)?;
        let rn: &UInt64Array = rn.as_primitive();
        let cn: &UInt64Array = cn.as_primitive();
        for row in 0..reference.len() {
            for (list, is_current) in [(reference, false), (current, true)] {
                if list.is_null(row) {
                    continue;
                }
                let values = list.value(row);
                if matches!(self.values, Values::Numeric(_)) {
                    self.append_numeric(&values, is_current)?;
                } else {
                    let flags = BooleanArray::from(vec![is_current; values.len()]);
                    self.push(&values, &flags)?;
                }
            }
            let (r, c) = match &mut self.values {
                Values::Numeric(s) => (&mut s.reference_nulls, &mut s.current_nulls),
                Values::Categorical(s) => (&mut s.reference_nulls, &mut s.current_nulls),
            };
            *r += rn.value(row);
            *c += cn.value(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64s(values: impl IntoIterator<Item = f64>) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(values))
    }

    /// An evaluation that returns the samples' lengths and null counts.
    fn shape(values: &Values, _: Option<usize>) -> Result<ScalarValue> {
        let Values::Numeric(s) = values else {
            return exec_err!("numeric expected");
        };
        Ok(ScalarValue::Utf8(Some(format!(
            "{} {} {} {} {:?} {:?}",
            s.reference.len(),
            s.current.len(),
            s.reference_nulls,
            s.current_nulls,
            s.reference.iter().take(3).collect::<Vec<_>>(),
            s.current.iter().take(3).collect::<Vec<_>>(),
        ))))
    }

    #[test]
    fn pieces_keep_their_order_large_or_small() {
        let mut n = Numbers::default();
        n.push_value(1.0);
        n.push((2..2000).map(f64::from).collect::<Vec<_>>().into());
        n.extend_from_slice(&[2000.0, 2001.0]);
        n.push(vec![2002.0].into());
        assert_eq!(n.len(), 2002);
        assert!(n.iter().eq((1..2003).map(f64::from)));
        assert!(n.contiguous().iter().copied().eq((1..2003).map(f64::from)));
        assert_eq!(n.parts().count(), 3);
        let mut reversed = Numbers::default();
        for piece in n.concat().chunks(700).rev() {
            reversed.push(piece.to_vec().into());
        }
        reversed.sort();
        assert_eq!(&reversed.contiguous()[..], &n.concat()[..]);
    }

    #[test]
    fn batches_split_between_samples_and_states_merge() {
        let flags = |v: &[bool]| Arc::new(BooleanArray::from(v.to_vec())) as ArrayRef;
        for sorted in [false, true] {
            let mut parts = Vec::new();
            for p in 0..2 {
                let mut a = SampleAccumulator::new(true, None, shape, sorted);
                let base = f64::from(p * 10_000);
                // A whole reference batch, a whole current one with a NaN,
                // and a mixed one with a null.
                a.update_batch(&[
                    f64s((0..5000).map(|i| base + f64::from(5000 - i))),
                    flags(&[false; 5000]),
                ])
                .unwrap();
                let mut current: Vec<f64> = (0..3000).map(|i| base + f64::from(i)).collect();
                current[7] = f64::NAN;
                a.update_batch(&[f64s(current), flags(&[true; 3000])])
                    .unwrap();
                let mixed: ArrayRef =
                    Arc::new(Float64Array::from(vec![Some(-1.0), None, Some(-2.0)]));
                a.update_batch(&[mixed, flags(&[true, false, false])])
                    .unwrap();
                parts.push(a.state().unwrap());
            }
            let mut merged = SampleAccumulator::new(true, None, shape, sorted);
            for state in parts {
                let arrays: Vec<ArrayRef> = state.iter().map(|v| v.to_array().unwrap()).collect();
                merged.merge_batch(&arrays).unwrap();
            }
            let got = merged.evaluate().unwrap().to_string();
            let expected = if sorted {
                "10002 6000 2 2 [-2.0, -2.0, 1.0] [-1.0, -1.0, 0.0]"
            } else {
                "10002 6000 2 2 [5000.0, 4999.0, 4998.0] [0.0, 1.0, 2.0]"
            };
            assert_eq!(got, expected, "sorted: {sorted}");
        }
    }
}
