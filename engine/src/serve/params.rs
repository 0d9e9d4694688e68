//! Bound parameters of prepared statements.
//!
//! A prepared statement is kept as its SQL text; at execution each
//! placeholder (`?` in order, or `$n`) is replaced by the SQL literal of
//! its bound value, found with the SQL tokenizer so placeholders inside
//! strings or comments are left alone. The statement then runs through
//! the session's funnel like any other, so every statement kind —
//! queries, DML, lake statements — takes parameters the same way, and a
//! value can never be read as SQL: strings are quoted with their quotes
//! doubled, everything else is rendered from its typed value.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use autolake_sql::AutoLakeDialect;
use autolake_sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion::common::ScalarValue;

use crate::error::{Error, Result};

/// Number of placeholders in `sql`.
pub(crate) fn count_placeholders(sql: &str) -> Result<usize> {
    let tokens = tokenize(sql)?;
    let mut positional = 0;
    let mut highest = 0;
    for t in &tokens {
        if let Token::Placeholder(p) = t {
            if p == "?" {
                positional += 1;
            } else if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                highest = highest.max(n);
            }
        }
    }
    Ok(positional.max(highest))
}

fn tokenize(sql: &str) -> Result<Vec<Token>> {
    Tokenizer::new(&AutoLakeDialect::default(), sql)
        .tokenize()
        .map_err(|e| Error::invalid(format!("cannot read the statement: {e}")))
}

/// `sql` with its placeholders replaced by row `row` of `params`.
pub(crate) fn bind(sql: &str, params: &RecordBatch, row: usize) -> Result<String> {
    let tokens = tokenize(sql)?;
    let mut next = 0;
    let mut out = String::with_capacity(sql.len());
    for t in tokens {
        match t {
            Token::Placeholder(p) => {
                let index = if p == "?" {
                    next += 1;
                    next - 1
                } else {
                    p.strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n >= 1)
                        .map(|n| n - 1)
                        .ok_or_else(|| Error::invalid(format!("unsupported placeholder {p}")))?
                };
                if index >= params.num_columns() {
                    return Err(Error::invalid(format!(
                        "the statement has a parameter {} but {} were bound",
                        index + 1,
                        params.num_columns()
                    )));
                }
                out.push_str(&literal(params.column(index).as_ref(), row)?);
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

/// The SQL literal of one value.
fn literal(array: &dyn Array, row: usize) -> Result<String> {
    let value = ScalarValue::try_from_array(array, row)?;
    if value.is_null() {
        return Ok("NULL".to_string());
    }
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match &value {
        ScalarValue::Boolean(Some(b)) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_) => value.to_string(),
        ScalarValue::Float32(Some(f)) => format!("CAST({} AS REAL)", quoted(&format!("{f:?}"))),
        ScalarValue::Float64(Some(f)) => format!("CAST({} AS DOUBLE)", quoted(&format!("{f:?}"))),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => quoted(s),
        ScalarValue::Decimal128(_, p, s) => {
            format!("CAST({} AS DECIMAL({p}, {s}))", quoted(&value.to_string()))
        }
        ScalarValue::Date32(_) | ScalarValue::Date64(_) => {
            format!("DATE {}", quoted(&cast_text(array, row)?))
        }
        ScalarValue::TimestampSecond(_, tz)
        | ScalarValue::TimestampMillisecond(_, tz)
        | ScalarValue::TimestampMicrosecond(_, tz)
        | ScalarValue::TimestampNanosecond(_, tz) => {
            let kind = if tz.is_some() {
                "TIMESTAMPTZ"
            } else {
                "TIMESTAMP"
            };
            format!("CAST({} AS {kind})", quoted(&cast_text(array, row)?))
        }
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => {
            format!(
                "X'{}'",
                b.iter().map(|x| format!("{x:02X}")).collect::<String>()
            )
        }
        other => {
            return Err(Error::invalid(format!(
                "parameters of type {} are not supported; bind a number, text, boolean, date, timestamp, decimal or binary value",
                other.data_type()
            )));
        }
    })
}

/// A value as Arrow's cast to text writes it (ISO 8601 for times).
fn cast_text(array: &dyn Array, row: usize) -> Result<String> {
    let one = array.slice(row, 1);
    let text = arrow::compute::cast(&one, &DataType::Utf8)?;
    Ok(text
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .map(|s| s.value(0).to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn placeholders_become_literals() {
        let params = RecordBatch::try_from_iter([
            ("a", Arc::new(Int64Array::from(vec![Some(7), None])) as _),
            ("b", Arc::new(StringArray::from(vec!["it's", "x"])) as _),
            ("c", Arc::new(Float64Array::from(vec![0.1, 2.0])) as _),
            ("d", Arc::new(BooleanArray::from(vec![true, false])) as _),
        ])
        .unwrap();
        let sql = "SELECT '?' AS q, ? , ? /* ? */, ?, ? -- ?";
        assert_eq!(count_placeholders(sql).unwrap(), 4);
        assert_eq!(
            bind(sql, &params, 0).unwrap(),
            "SELECT '?' AS q, 7 , 'it''s' /* ? */, CAST('0.1' AS DOUBLE), TRUE -- ?"
        );
        assert_eq!(
            bind("SELECT $2, $1", &params, 1).unwrap(),
            "SELECT 'x', NULL"
        );
        let err = bind("SELECT $9", &params, 0).unwrap_err().to_string();
        assert!(err.contains("parameter 9"), "{err}");
    }
}
