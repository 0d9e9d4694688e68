//! The lake's one type policy: how each Arrow type a statement produces is
//! stored in a Delta table.
//!
//! Every write path that creates or fills a table with columns of its own
//! (`CREATE TABLE`, `CREATE TABLE … AS`, syncs and jobs through
//! [`super::write::write_plan`]) passes its schema through
//! [`storage_type`]: a type is kept, mapped to a Delta type that holds
//! every value exactly, or refused before anything is written with the
//! column, its type and what to cast it to. delta-rs would otherwise store
//! unsigned integers in signed types of the same width (255 comes back as
//! an error), cut nanoseconds silently, or fail with the kernel's raw
//! error. Writes into an existing table's columns (`INSERT`) take
//! DataFusion's implicit casts to the table's types, which refuse what
//! does not fit (`CAST(300 AS TINYINT)` fails) except for one lossy case,
//! nanoseconds into microseconds: [`guard_insert`], [`guard_source`] (a
//! MERGE source) and, for the SQL text of UPDATE and MERGE assignments
//! that delta-rs evaluates, [`exact_microseconds_sql`] check those values.
//!
//! | Arrow type                                  | stored as                         |
//! |---------------------------------------------|-----------------------------------|
//! | Int8/16/32/64, Float32/64, Boolean, Date32  | the same                          |
//! | UInt8 / UInt16 / UInt32                     | Int16 / Int32 / Int64             |
//! | UInt64                                      | Decimal(20, 0)                    |
//! | Float16                                     | Float32                           |
//! | Utf8, LargeUtf8, Utf8View                   | string                            |
//! | Binary, LargeBinary, BinaryView, fixed-size | binary                            |
//! | Dictionary, run-end encoded                 | their value type, by this policy  |
//! | Decimal32/64/128/256 with precision ≤ 38    | Decimal128, same precision/scale  |
//! | Timestamp(s/ms/µs, no zone)                 | timestamp_ntz (µs)                |
//! | Timestamp(s/ms/µs, any zone)                | timestamp (µs, UTC instant)       |
//! | Timestamp(ns, …)                            | as above when every value is a whole microsecond, else the write fails naming the first value |
//! | Time32/Time64, Interval, Null               | string (`12:30:00.5`, …)          |
//! | List/Struct/Map                             | the same shape, items by this policy (nanosecond timestamps inside refused) |
//! | Date64, Duration, Decimal > 38 digits, Union | refused, with the cast to write  |

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, TimeUnit, TimestampNanosecondType};
use datafusion::common::{DFSchema, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Projection,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility, cast,
};

use super::TableName;
use crate::error::{Error, Result};

/// What a column of `data_type` is stored as: `Ok(None)` unchanged,
/// `Ok(Some(t))` cast to `t` (exactly), `Err(hint)` refused, the hint
/// saying what to cast it to.
pub fn storage_type(data_type: &DataType) -> std::result::Result<Option<DataType>, String> {
    nested(data_type, false)
}

fn nested(data_type: &DataType, inside: bool) -> std::result::Result<Option<DataType>, String> {
    use DataType as T;
    let to = |t: DataType| Ok(Some(t));
    match data_type {
        T::Int8 | T::Int16 | T::Int32 | T::Int64 => Ok(None),
        T::Float32 | T::Float64 | T::Boolean | T::Date32 | T::Utf8 | T::Binary => Ok(None),
        T::UInt8 => to(T::Int16),
        T::UInt16 => to(T::Int32),
        T::UInt32 => to(T::Int64),
        T::UInt64 => to(T::Decimal128(20, 0)),
        T::Float16 => to(T::Float32),
        // Written as they are: Delta's string and binary hold them exactly.
        T::LargeUtf8 | T::Utf8View | T::LargeBinary | T::BinaryView if !inside => Ok(None),
        T::LargeUtf8 | T::Utf8View => to(T::Utf8),
        T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => to(T::Binary),
        T::Dictionary(_, value) => Ok(Some(
            nested(value, inside)?.unwrap_or_else(|| value.as_ref().clone()),
        )),
        T::RunEndEncoded(_, values) => {
            let value = values.data_type();
            Ok(Some(
                nested(value, inside)?.unwrap_or_else(|| value.clone()),
            ))
        }
        T::Decimal128(p, _) if *p <= 38 => Ok(None),
        T::Decimal32(p, s) | T::Decimal64(p, s) => to(T::Decimal128(*p, *s)),
        T::Decimal256(p, s) if *p <= 38 => to(T::Decimal128(*p, *s)),
        T::Decimal256(_, s) => Err(format!(
            "Delta stores at most 38 digits: cast it to DECIMAL(38, {}) if its values fit, or to DOUBLE",
            (*s).clamp(0, 38)
        )),
        T::Timestamp(TimeUnit::Microsecond, None) => Ok(None),
        T::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.eq_ignore_ascii_case("utc") => {
            Ok(None)
        }
        T::Timestamp(TimeUnit::Nanosecond, _) if inside => Err(
            "Delta stores timestamps in microseconds: cast the items to arrow_cast(…, 'Timestamp(Microsecond, None)') first"
                .to_string(),
        ),
        T::Timestamp(_, zone) => to(T::Timestamp(
            TimeUnit::Microsecond,
            zone.as_ref().map(|_| "UTC".into()),
        )),
        T::Time32(_) | T::Time64(_) | T::Interval(_) | T::Null => to(T::Utf8),
        T::Date64 => Err(
            "Delta has no millisecond dates: cast it to DATE (whole days) or TIMESTAMP".to_string(),
        ),
        T::Duration(_) => Err(
            "Delta has no durations: cast it to BIGINT (e.g. arrow_cast(c, 'Int64')) or to an INTERVAL's text"
                .to_string(),
        ),
        T::List(item) | T::LargeList(item) | T::ListView(item) | T::LargeListView(item) => {
            let mapped = nested(item.data_type(), true)?;
            let same = mapped.is_none() && matches!(data_type, T::List(_));
            if same {
                return Ok(None);
            }
            let item_type = mapped.unwrap_or_else(|| item.data_type().clone());
            to(T::List(Arc::new(Field::new(
                item.name(),
                item_type,
                item.is_nullable(),
            ))))
        }
        T::FixedSizeList(item, _) => {
            let item_type = nested(item.data_type(), true)?.unwrap_or_else(|| item.data_type().clone());
            to(T::List(Arc::new(Field::new(
                item.name(),
                item_type,
                item.is_nullable(),
            ))))
        }
        T::Struct(fields) => {
            let mut changed = false;
            let mut out = Vec::with_capacity(fields.len());
            for f in fields.iter() {
                match nested(f.data_type(), true)? {
                    Some(t) => {
                        changed = true;
                        out.push(Field::new(f.name(), t, f.is_nullable()));
                    }
                    None => out.push(f.as_ref().clone()),
                }
            }
            Ok(changed.then(|| T::Struct(out.into())))
        }
        T::Map(entries, sorted) => match nested(entries.data_type(), true)? {
            Some(t) => to(T::Map(
                Arc::new(Field::new(entries.name(), t, entries.is_nullable())),
                *sorted,
            )),
            None => Ok(None),
        },
        other => Err(format!(
            "Delta has no type for {other}: cast it to a supported type (numbers, text, binary, date, timestamp, list, struct or map)"
        )),
    }
}

/// The columns of a table about to be created, as they will be stored;
/// the first column Delta cannot hold is an error naming it.
pub fn storage_schema(
    table: &TableName,
    schema: &arrow::datatypes::Schema,
) -> Result<arrow::datatypes::Schema> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| match storage_type(f.data_type()) {
            Ok(None) => Ok(f.as_ref().clone()),
            Ok(Some(t)) => Ok(Field::new(f.name(), t, f.is_nullable())),
            Err(hint) => Err(refusal(table, f.name(), f.data_type(), &hint)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

fn refusal(table: &TableName, column: &str, data_type: &DataType, hint: &str) -> Error {
    Error::invalid(format!(
        "column {column} of {table} has type {data_type}, which a Delta table cannot store: {hint}"
    ))
}

/// `plan` with its columns cast to the types they are stored as; nothing
/// added where every type is kept. Nanosecond timestamps pass through a
/// check that fails the write on the first value with nanoseconds.
pub fn conform(table: &TableName, plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema: Arc<DFSchema> = Arc::clone(plan.schema());
    let mut changed = false;
    let mut exprs: Vec<Expr> = Vec::with_capacity(schema.fields().len());
    for (qualifier, field) in schema.iter() {
        let column = Expr::Column(datafusion::common::Column::new(
            qualifier.cloned(),
            field.name(),
        ));
        let stored = storage_type(field.data_type())
            .map_err(|hint| refusal(table, field.name(), field.data_type(), &hint))?;
        let Some(to) = stored else {
            exprs.push(column);
            continue;
        };
        changed = true;
        let converted = match field.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                let check = ScalarUDF::new_from_impl(ExactMicros::new(field.name()));
                cast(check.call(vec![column]), to)
            }
            _ => cast(column, to),
        };
        exprs.push(converted.alias(field.name()));
    }
    if !changed {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// A MERGE source with its nanosecond timestamps checked and cast to the
/// microseconds they are stored as (delta-rs would cut them); its other
/// columns are left to the merge's casts into the table's types.
pub fn guard_source(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema: Arc<DFSchema> = Arc::clone(plan.schema());
    let mut changed = false;
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            match field.data_type() {
                DataType::Timestamp(TimeUnit::Nanosecond, zone) => {
                    changed = true;
                    let check = ScalarUDF::new_from_impl(ExactMicros::new(field.name()));
                    cast(
                        check.call(vec![column]),
                        DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                    )
                    .alias_qualified(qualifier.cloned(), field.name())
                }
                _ => column,
            }
        })
        .collect();
    if !changed {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// An INSERT's planned input with DataFusion's implicit casts to the
/// table's columns made exact: where a nanosecond timestamp is cast to the
/// table's microseconds, the write fails on the first value the cast would
/// change (as in [`conform`]) instead of cutting it.
pub fn guard_insert(plan: LogicalPlan) -> Result<LogicalPlan> {
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(plan);
    };
    let input = Arc::clone(projection.input.schema());
    let guarded: Vec<Option<Expr>> = projection
        .expr
        .iter()
        .map(|e| exact_cast(e, &input))
        .collect();
    if guarded.iter().all(Option::is_none) {
        return Ok(LogicalPlan::Projection(projection));
    }
    let exprs = guarded
        .into_iter()
        .zip(projection.expr)
        .map(|(g, e)| g.unwrap_or(e))
        .collect::<Vec<_>>();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        projection.input,
    )?))
}

/// `CAST(ns AS Timestamp(µs)) AS column` with the value check inserted.
fn exact_cast(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::Alias(alias) = expr else {
        return None;
    };
    let Expr::Cast(c) = alias.expr.as_ref() else {
        return None;
    };
    let to = c.field.data_type();
    if !matches!(to, DataType::Timestamp(TimeUnit::Microsecond, _)) {
        return None;
    }
    let from = c.expr.get_type(schema).ok()?;
    if !matches!(from, DataType::Timestamp(TimeUnit::Nanosecond, _)) {
        return None;
    }
    let check = ScalarUDF::new_from_impl(ExactMicros::new(&alias.name));
    Some(cast(check.call(vec![c.expr.as_ref().clone()]), to.clone()).alias(&alias.name))
}

/// Passes nanosecond timestamps on when every value is a whole
/// microsecond; fails on the first that is not. Other values pass
/// unchanged. In SQL (`autolake_exact_microseconds(value, 'column')`, what
/// UPDATE and MERGE assignments to timestamp columns are wrapped in) the
/// column named in the error is the second argument.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExactMicros {
    column: Option<String>,
    signature: Signature,
}

impl ExactMicros {
    fn new(column: &str) -> Self {
        Self {
            column: Some(column.to_string()),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The check as a SQL function, registered in every session.
pub fn exact_microseconds_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ExactMicros {
        column: None,
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Immutable,
        ),
    })
}

/// `value` written into timestamp `column` by delta-rs, checked first.
pub fn exact_microseconds_sql(value: &str, column: &str) -> String {
    format!(
        "autolake_exact_microseconds({value}, '{}')",
        column.replace('\'', "''")
    )
}

impl ScalarUDFImpl for ExactMicros {
    fn name(&self) -> &str {
        "autolake_exact_microseconds"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::common::Result<DataType> {
        match args.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("{} takes a value", self.name()),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return exec_err!("{} takes a value", self.name());
        };
        if !matches!(
            arg.data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        ) {
            return Ok(arg.clone());
        }
        let array = arg.to_array(args.number_rows)?;
        let Some(values) = array.as_primitive_opt::<TimestampNanosecondType>() else {
            return exec_err!("{} takes a nanosecond timestamp", self.name());
        };
        let first = (0..values.len()).find(|&i| values.is_valid(i) && values.value(i) % 1000 != 0);
        if let Some(i) = first {
            let shown = arrow::util::display::array_value_to_string(&array, i)?;
            let named = match args.args.get(1) {
                Some(ColumnarValue::Scalar(s)) => s.to_string(),
                _ => String::new(),
            };
            let c = self.column.as_deref().unwrap_or(&named);
            return exec_err!(
                "column {c}: {shown} has nanoseconds, and Delta stores timestamps in microseconds; round it explicitly, e.g. date_trunc('microsecond', {c})"
            );
        }
        Ok(arg.clone())
    }
}
