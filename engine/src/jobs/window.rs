//! What a job's run reads: the version range of each input, and the
//! event-time windows that close in the run.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// Event-time windows of a job's run: which rows of the input belong to
/// the windows that close now.
#[derive(Debug, Clone)]
pub(crate) struct Windowing {
    /// The event-time column.
    pub(crate) column: String,
    /// Window length, microseconds.
    pub(crate) size: i64,
    /// Distance between window starts, microseconds (= size when tumbling).
    pub(crate) slide: i64,
    /// Start of the first window closing in this run (`None`: every
    /// window up to `last_start`).
    pub(crate) first_start: Option<i64>,
    /// Start of the last window closing in this run.
    pub(crate) last_start: i64,
}

impl Windowing {
    /// The windows that close when the watermark moves from `previous`
    /// (exclusive) to `current` (inclusive): those whose end falls in
    /// between. `None` when none does.
    pub(crate) fn closing(
        column: String,
        size: i64,
        slide: i64,
        previous: Option<i64>,
        current: i64,
    ) -> Option<Self> {
        // Window starts are multiples of `slide`; a window [s, s + size)
        // closes once the watermark reaches s + size.
        let last_start = floor_div(current - size, slide) * slide;
        let first_start = previous.map(|w| (floor_div(w - size, slide) + 1) * slide);
        if first_start.is_some_and(|f| f > last_start) {
            return None;
        }
        Some(Self {
            column,
            size,
            slide,
            first_start,
            last_start,
        })
    }

    /// Event times before this are late once the watermark is `watermark`:
    /// at least one of their windows has already closed.
    pub(crate) fn late_before(size: i64, slide: i64, watermark: i64) -> i64 {
        floor_div(watermark - size, slide) * slide + size
    }

    /// The rows of `batch` copied once per closing window they fall in,
    /// with `window_start` and `window_end` appended.
    pub(crate) fn assign(
        &self,
        batch: &RecordBatch,
        ts: usize,
        schema: &SchemaRef,
    ) -> DFResult<RecordBatch> {
        let micros = to_micros(batch.column(ts))?;
        let mut rows = Vec::new();
        let mut starts = Vec::new();
        for (i, t) in micros.iter().enumerate() {
            let Some(t) = t else { continue };
            let hi = floor_div(t, self.slide);
            let lo = floor_div(t - self.size, self.slide) + 1;
            for k in lo..=hi {
                let s = k * self.slide;
                if s <= self.last_start && self.first_start.is_none_or(|f| s >= f) {
                    rows.push(i as u32);
                    starts.push(s);
                }
            }
        }
        let taken = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?;
        let mut columns = taken.columns().to_vec();
        let ends: Vec<i64> = starts.iter().map(|s| s + self.size).collect();
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(starts).with_timezone("UTC"),
        ));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(ends).with_timezone("UTC"),
        ));
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// A timestamp column as microseconds since the epoch.
pub(crate) fn to_micros(
    array: &ArrayRef,
) -> DFResult<arrow::array::PrimitiveArray<TimestampMicrosecondType>> {
    let cast = arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(cast.as_primitive::<TimestampMicrosecondType>().clone())
}

/// A literal of the column type `t` holding the instant `micros`.
pub(crate) fn instant_literal(t: &DataType, micros: i64) -> Result<Expr> {
    let value = match t {
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => micros.div_euclid(1_000_000),
                TimeUnit::Millisecond => micros.div_euclid(1_000),
                TimeUnit::Microsecond => micros,
                TimeUnit::Nanosecond => micros.saturating_mul(1_000),
            };
            match unit {
                TimeUnit::Second => ScalarValue::TimestampSecond(Some(v), tz.clone()),
                TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(v), tz.clone()),
                TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(v), tz.clone()),
                TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(v), tz.clone()),
            }
        }
        DataType::Date32 => ScalarValue::Date32(Some(micros.div_euclid(86_400_000_000) as i32)),
        other => {
            return Err(Error::invalid(format!(
                "an event-time column must be a timestamp or a date, found {other}"
            )));
        }
    };
    Ok(lit(value))
}

/// What a job's run says `table_changes('t')` means.
#[derive(Debug, Clone)]
pub(crate) struct JobInputs {
    /// Per input table: last version consumed (exclusive; -1 for none)
    /// and the version pinned for this run (inclusive).
    pub(crate) ranges: std::collections::BTreeMap<String, (i64, i64)>,
    /// The run's closing windows, when the job is windowed.
    pub(crate) windows: Option<Windowing>,
}
