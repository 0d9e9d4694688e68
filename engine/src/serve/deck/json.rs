//! Statement results as the deck's JSON: `{columns: [{name, type}], rows:
//! [[…], …], truncated}`, each row an array in column order (a result may
//! name two columns alike). Integers, floats and booleans stay JSON
//! numbers and booleans (a float that is not finite becomes its text);
//! text stays text; every other type (timestamps, decimals, lists,
//! structs, binary) is written as the CLI's table format writes it.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value, json};

use crate::error::Result;

/// A result being collected, up to a number of rows.
pub(super) struct Table {
    columns: Vec<Value>,
    rows: Vec<Value>,
    limit: usize,
    truncated: bool,
}

impl Table {
    /// An empty result with `schema`'s columns, keeping at most `limit` rows.
    pub(super) fn new(schema: &SchemaRef, limit: usize) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        Self {
            columns,
            rows: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// The number of columns.
    pub(super) fn width(&self) -> usize {
        self.columns.len()
    }

    /// Whether the limit is reached (more rows are dropped).
    pub(super) fn full(&self) -> bool {
        self.rows.len() >= self.limit
    }

    /// Adds a batch's rows, up to the limit.
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let room = self.limit.saturating_sub(self.rows.len());
        if batch.num_rows() > room {
            self.truncated = true;
        }
        let take = batch.num_rows().min(room);
        if take == 0 {
            return Ok(());
        }
        let options = FormatOptions::default().with_null("");
        let mut columns = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            columns.push(Column::new(column.as_ref(), &options)?);
        }
        for row in 0..take {
            let values: Vec<Value> = batch
                .columns()
                .iter()
                .zip(&columns)
                .map(|(array, column)| column.value(array.as_ref(), row))
                .collect();
            self.rows.push(Value::Array(values));
        }
        Ok(())
    }

    /// Adds a row given as values in column order.
    pub(super) fn push_values(&mut self, values: Vec<Value>) {
        self.rows.push(Value::Array(values));
    }

    /// Marks the result as cut short (a stream left unread).
    pub(super) fn set_truncated(&mut self) {
        self.truncated = true;
    }

    /// The rows kept, as objects keyed by column name (for the server's
    /// own reading of a result; later columns win a shared name).
    pub(super) fn records(&self) -> Vec<Map<String, Value>> {
        let names: Vec<&str> = self
            .columns
            .iter()
            .map(|c| c["name"].as_str().unwrap_or(""))
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let mut record = Map::new();
                if let Value::Array(values) = row {
                    for (name, value) in names.iter().zip(values) {
                        record.insert((*name).to_string(), value.clone());
                    }
                }
                record
            })
            .collect()
    }

    /// Keeps only the rows `keep` accepts (by their record).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Map<String, Value>) -> bool) {
        let records = self.records();
        let mut index = 0;
        self.rows.retain(|_| {
            let kept = keep(&records[index]);
            index += 1;
            kept
        });
    }

    /// The JSON the API answers with.
    pub(super) fn into_json(self) -> Value {
        json!({"columns": self.columns, "rows": self.rows, "truncated": self.truncated})
    }
}

/// How one column's values become JSON.
enum Column<'a> {
    Integer,
    Float,
    Boolean,
    Text,
    Formatted(ArrayFormatter<'a>),
}

impl<'a> Column<'a> {
    fn new(array: &'a dyn Array, options: &'a FormatOptions<'a>) -> Result<Self> {
        Ok(match array.data_type() {
            t if t.is_integer() => Column::Integer,
            DataType::Float32 | DataType::Float64 => Column::Float,
            DataType::Boolean => Column::Boolean,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Text,
            _ => Column::Formatted(ArrayFormatter::try_new(array, options)?),
        })
    }

    fn value(&self, array: &dyn Array, row: usize) -> Value {
        if array.is_null(row) {
            return Value::Null;
        }
        match self {
            Column::Integer => integer(array, row),
            Column::Float => {
                let v = match array.data_type() {
                    DataType::Float32 => f64::from(
                        array
                            .as_primitive::<arrow::datatypes::Float32Type>()
                            .value(row),
                    ),
                    _ => array
                        .as_primitive::<arrow::datatypes::Float64Type>()
                        .value(row),
                };
                serde_json::Number::from_f64(v).map_or_else(|| json!(v.to_string()), Value::Number)
            }
            Column::Boolean => Value::Bool(array.as_boolean().value(row)),
            Column::Text => match array.data_type() {
                DataType::LargeUtf8 => json!(array.as_string::<i64>().value(row)),
                DataType::Utf8View => json!(array.as_string_view().value(row)),
                _ => json!(array.as_string::<i32>().value(row)),
            },
            Column::Formatted(f) => json!(f.value(row).to_string()),
        }
    }
}

fn integer(array: &dyn Array, row: usize) -> Value {
    use arrow::datatypes::*;
    match array.data_type() {
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        _ => json!(array.as_primitive::<UInt64Type>().value(row)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    #[test]
    fn values_keep_their_json_types_and_the_limit_holds() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(Float64Array::from(vec![0.5, f64::NAN, 2.0])),
                Arc::new(StringArray::from(vec!["a", "b\"", "c"])),
                Arc::new(TimestampMillisecondArray::from(vec![0, 1000, 2000])),
            ],
        )
        .unwrap();
        let mut table = Table::new(&schema, 2);
        table.push(&batch).unwrap();
        assert!(table.full());
        let json = table.into_json();
        assert_eq!(json["truncated"], true);
        assert_eq!(
            json["rows"],
            json!([
                [1, 0.5, "a", "1970-01-01T00:00:00"],
                [null, "NaN", "b\"", "1970-01-01T00:00:01"]
            ])
        );
        assert_eq!(json["columns"][3]["type"], "Timestamp(ms)");
    }
}
