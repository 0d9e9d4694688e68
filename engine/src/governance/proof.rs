//! Proving a row policy true for every row of a file from the file's
//! statistics, so the scan need not test it (nor read the columns only the
//! policy reads).
//!
//! Most policies that matter for cost keep nearly every row (`amount > 0`,
//! `tenant = current_user` after the identity functions are folded), and a
//! Delta data file's Parquet footer says the range of every column. If a
//! policy is certainly true over those ranges, evaluating it row by row
//! filters nothing. This is DataFusion's pruning used in reverse: pruning
//! drops files where a predicate is certainly false; here a policy is
//! dropped where it is certainly true, and only when that holds for every
//! file the scan reads.
//!
//! The proof is interval arithmetic ([`Interval`], DataFusion's own, as its
//! filter selectivity and join pruning use it) over a deliberately small
//! language where interval bounds are sound under SQL's semantics:
//!
//! - columns of integer, decimal, date, timestamp and boolean types whose
//!   minimum, maximum and null count (zero) are all exact. With no nulls
//!   the three-valued logic of the policy reduces to two values. Floats are
//!   excluded because Parquet writers leave NaN out of min/max; strings
//!   because writers may truncate their bounds;
//! - non-null literals of those types (and non-NaN floats);
//! - comparisons, `AND`, `OR` (true when either side is, whatever the
//!   other), `NOT`, and casts between those types
//!   (all monotone). Arithmetic is left out: a policy that would fail on an
//!   overflow at run time must still fail.
//!
//! Anything else makes the policy unproven, and it is evaluated as usual.
//! The statistics are the ones DataFusion itself trusts to answer
//! `SELECT max(x)` without a scan: exact footer values, read per file.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue};
use datafusion::logical_expr::Operator;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal, NotExpr};

/// Whether `predicate` is true for every row of a file, given the exact
/// statistics of the columns it reads (`column` looks them up; `None` when
/// the file has none for that column).
pub(crate) fn holds_for_every_row<'a>(
    predicate: &Arc<dyn PhysicalExpr>,
    column: &dyn Fn(&Column) -> Option<(&'a DataType, &'a ColumnStatistics)>,
) -> bool {
    bounds(predicate, column).is_some_and(|b| b == Interval::TRUE)
}

/// The interval of values `expr` takes over the file, if it can be known.
fn bounds<'a>(
    expr: &Arc<dyn PhysicalExpr>,
    column: &dyn Fn(&Column) -> Option<(&'a DataType, &'a ColumnStatistics)>,
) -> Option<Interval> {
    if let Some(c) = expr.downcast_ref::<Column>() {
        let (data_type, stats) = column(c)?;
        return column_bounds(data_type, stats);
    }
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        let value = literal.value();
        let finite = match value {
            ScalarValue::Float32(Some(v)) => !v.is_nan(),
            ScalarValue::Float64(Some(v)) => !v.is_nan(),
            other => exact_type(&other.data_type()),
        };
        return (finite && !value.is_null())
            .then(|| Interval::try_new(value.clone(), value.clone()).ok())
            .flatten();
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        use Operator::*;
        if !matches!(binary.op(), Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or) {
            return None;
        }
        let left = bounds(binary.left(), column);
        let right = bounds(binary.right(), column);
        // `TRUE OR x` is true whatever `x` is, null included.
        let certain = Some(Interval::TRUE);
        if *binary.op() == Or && (left == certain || right == certain) {
            return certain;
        }
        return binary.evaluate_bounds(&[&left?, &right?]).ok();
    }
    if let Some(not) = expr.downcast_ref::<NotExpr>() {
        let arg = bounds(not.arg(), column)?;
        return not.evaluate_bounds(&[&arg]).ok();
    }
    if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        let target = cast.cast_type();
        if !(exact_type(target) || matches!(target, DataType::Float32 | DataType::Float64)) {
            return None;
        }
        let arg = bounds(cast.expr(), column)?;
        return cast.evaluate_bounds(&[&arg]).ok();
    }
    None
}

/// Column types whose footer bounds are exact and NaN-free.
fn exact_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Boolean
    )
}

fn column_bounds(data_type: &DataType, stats: &ColumnStatistics) -> Option<Interval> {
    if !exact_type(data_type) || stats.null_count != Precision::Exact(0) {
        return None;
    }
    let (Precision::Exact(min), Precision::Exact(max)) = (&stats.min_value, &stats.max_value)
    else {
        return None;
    };
    if min.is_null() || max.is_null() || &min.data_type() != data_type {
        return None;
    }
    Interval::try_new(min.clone(), max.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::{binary, cast, col, lit, not};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("q", DataType::Decimal128(15, 2), true),
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ])
    }

    fn stats(min: ScalarValue, max: ScalarValue, nulls: usize) -> ColumnStatistics {
        ColumnStatistics {
            null_count: Precision::Exact(nulls),
            min_value: Precision::Exact(min),
            max_value: Precision::Exact(max),
            ..ColumnStatistics::new_unknown()
        }
    }

    /// `q` in [1.00, 50.00], `n` in [-3, 7], `f` in [0, 1], `s` in ['a', 'z'],
    /// none null unless `nulls` says so.
    fn proves(expr: Arc<dyn PhysicalExpr>, nulls: usize) -> bool {
        let schema = schema();
        let columns = [
            stats(
                ScalarValue::Decimal128(Some(100), 15, 2),
                ScalarValue::Decimal128(Some(5000), 15, 2),
                nulls,
            ),
            stats(ScalarValue::Int64(Some(-3)), ScalarValue::Int64(Some(7)), 0),
            stats(
                ScalarValue::Float64(Some(0.0)),
                ScalarValue::Float64(Some(1.0)),
                0,
            ),
            stats(ScalarValue::from("a"), ScalarValue::from("z"), 0),
        ];
        let lookup = |c: &Column| Some((schema.field(c.index()).data_type(), &columns[c.index()]));
        holds_for_every_row(&expr, &lookup)
    }

    fn q() -> Arc<dyn PhysicalExpr> {
        col("q", &schema()).unwrap()
    }

    fn n() -> Arc<dyn PhysicalExpr> {
        col("n", &schema()).unwrap()
    }

    fn cmp(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        binary(l, op, r, &schema()).unwrap()
    }

    fn dec(v: i128) -> Arc<dyn PhysicalExpr> {
        lit(ScalarValue::Decimal128(Some(v), 15, 2))
    }

    #[test]
    fn a_range_inside_the_policy_proves_it() {
        assert!(proves(cmp(q(), Operator::Gt, dec(0)), 0));
        assert!(proves(cmp(q(), Operator::GtEq, dec(100)), 0));
        assert!(proves(cmp(n(), Operator::NotEq, lit(100i64)), 0));
        let both = cmp(
            cmp(q(), Operator::Gt, dec(0)),
            Operator::And,
            cmp(n(), Operator::Lt, lit(8i64)),
        );
        assert!(proves(both, 0));
        // One side of an OR is enough.
        let either = cmp(
            cmp(n(), Operator::Gt, lit(0i64)),
            Operator::Or,
            cmp(q(), Operator::Gt, dec(0)),
        );
        assert!(proves(either, 0));
        let f = col("f", &schema()).unwrap();
        let unknown = cmp(f, Operator::Gt, lit(0.5f64));
        assert!(proves(
            cmp(unknown, Operator::Or, cmp(q(), Operator::Gt, dec(0))),
            0
        ));
        assert!(proves(not(cmp(n(), Operator::Gt, lit(7i64))).unwrap(), 0));
        let widened = cmp(
            cast(n(), &schema(), DataType::Float64).unwrap(),
            Operator::Gt,
            lit(-3.5f64),
        );
        assert!(proves(widened, 0));
    }

    #[test]
    fn a_range_crossing_the_policy_proves_nothing() {
        assert!(!proves(cmp(q(), Operator::Gt, dec(100)), 0));
        assert!(!proves(cmp(n(), Operator::Gt, lit(0i64)), 0));
        assert!(!proves(cmp(n(), Operator::NotEq, lit(0i64)), 0));
        assert!(!proves(cmp(n(), Operator::Eq, lit(1i64)), 0));
    }

    #[test]
    fn nulls_floats_strings_and_arithmetic_are_never_proven() {
        // A null row fails the policy whatever the range says.
        assert!(!proves(cmp(q(), Operator::Gt, dec(0)), 1));
        let f = col("f", &schema()).unwrap();
        assert!(!proves(cmp(f, Operator::GtEq, lit(0.0f64)), 0));
        let s = col("s", &schema()).unwrap();
        assert!(!proves(cmp(s, Operator::GtEq, lit("a")), 0));
        let sum = cmp(n(), Operator::Plus, lit(10i64));
        assert!(!proves(cmp(sum, Operator::Gt, lit(0i64)), 0));
        assert!(!proves(
            cmp(n(), Operator::Gt, lit(ScalarValue::Int64(None))),
            0
        ));
    }

    #[test]
    fn inexact_or_missing_statistics_prove_nothing() {
        let schema = schema();
        let mut inexact = stats(
            ScalarValue::Decimal128(Some(100), 15, 2),
            ScalarValue::Decimal128(Some(5000), 15, 2),
            0,
        );
        inexact.min_value = Precision::Inexact(ScalarValue::Decimal128(Some(100), 15, 2));
        let expr = cmp(q(), Operator::Gt, dec(0));
        let lookup = |c: &Column| Some((schema.field(c.index()).data_type(), &inexact));
        assert!(!holds_for_every_row(&expr, &lookup));
        assert!(!holds_for_every_row(&expr, &|_: &Column| None));
    }
}
