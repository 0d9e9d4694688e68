//! The accumulator every drift function shares: it gathers the reference
//! and current samples of one group (nulls skipped and counted) and hands
//! them to the function's test when the group is complete.
//!
//! Partial states are the two samples as lists plus the null counts, so
//! groups can be computed on several partitions and merged. Numeric inputs
//! are kept as `f64`; everything else (strings, booleans, …) as the text of
//! each value, which is what a categorical test compares.
//!
//! The tests that need sorted samples (KS, Wasserstein) ask for *sorted
//! states*: each partition sorts its own samples when it hands over its
//! state — so the sorting runs in parallel, one partition per core — and
//! the final accumulator keeps each incoming state as a sorted run and
//! merges the runs linearly before the test. States are moved, never
//! copied: `state()` hands its vectors to Arrow as they are, and
//! `merge_batch` appends the values of each list in one copy.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StringArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Accumulator;

use super::sort;

/// One group's two samples.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples<T> {
    pub(crate) reference: Vec<T>,
    pub(crate) current: Vec<T>,
    pub(crate) reference_nulls: u64,
    pub(crate) current_nulls: u64,
}

impl<T> Samples<T> {
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
    Numeric(Samples<f64>),
    Categorical(Samples<String>),
}

impl Values {
    /// Share of each category in each sample, over the union of categories.
    pub(crate) fn category_counts(&self) -> (Vec<f64>, Vec<f64>) {
        fn counts<K: std::hash::Hash + Eq + Clone>(
            reference: &[K],
            current: &[K],
        ) -> (Vec<f64>, Vec<f64>) {
            let mut index: HashMap<K, usize> = HashMap::new();
            let mut r = Vec::new();
            let mut c = Vec::new();
            for (sample, is_current) in [(reference, false), (current, true)] {
                for key in sample {
                    let next = index.len();
                    let i = *index.entry(key.clone()).or_insert(next);
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
            }
            (r, c)
        }
        match self {
            Values::Numeric(s) => {
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                counts(&bits(&s.reference), &bits(&s.current))
            }
            Values::Categorical(s) => counts(&s.reference, &s.current),
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
    /// In sorted mode, the ends of the sorted runs at the start of the
    /// reference and current samples; values after the last end are not
    /// sorted yet.
    runs: [Vec<usize>; 2],
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
            runs: [Vec::new(), Vec::new()],
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
        let [reference_runs, current_runs] = &mut self.runs;
        sort::sort_runs_pair(
            (&mut s.reference, reference_runs),
            (&mut s.current, current_runs),
        );
    }

    /// Appends a numeric list value of a partial state to one sample.
    fn append_numeric(&mut self, values: &ArrayRef, is_current: bool) -> Result<()> {
        let Values::Numeric(s) = &mut self.values else {
            return exec_err!("drift functions: unexpected partial state");
        };
        let values = cast(values, &DataType::Float64)?;
        let values = values.as_primitive::<arrow::datatypes::Float64Type>();
        let (sample, runs) = if is_current {
            (&mut s.current, &mut self.runs[1])
        } else {
            (&mut s.reference, &mut self.runs[0])
        };
        if self.sorted {
            // A sorted run may only follow sorted runs.
            sort::sort_tail(sample, runs);
        }
        let start = sample.len();
        if values.null_count() == 0 {
            sample.extend_from_slice(values.values());
        } else {
            sample.extend(values.iter().flatten());
        }
        if self.sorted && sample.len() > start {
            // States of this function arrive sorted; anything else is
            // sorted here rather than trusted.
            sort::sort_if_unsorted(&mut sample[start..]);
            runs.push(sample.len());
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
                for (i, (&v, current)) in raw.iter().zip(flags.values().iter()).enumerate() {
                    if !plain && flags.is_null(i) {
                        continue;
                    }
                    if v.is_nan() || (!plain && values.is_null(i)) {
                        *if current {
                            &mut s.current_nulls
                        } else {
                            &mut s.reference_nulls
                        } += 1;
                    } else if current {
                        s.current.push(v);
                    } else {
                        s.reference.push(v);
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
            Values::Numeric(s) => (s.reference.capacity() + s.current.capacity()) * 8,
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
                Arc::new(Float64Array::from(std::mem::take(&mut s.reference))),
                Arc::new(Float64Array::from(std::mem::take(&mut s.current))),
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
