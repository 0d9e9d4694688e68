//! Feature encoding, recorded with the model so training and `predict`
//! encode rows identically.
//!
//! - Numbers (integers, floats, decimals, booleans as 0/1) are
//!   standardised with the training rows' mean and population standard
//!   deviation (1 when a feature is constant); a null is imputed with the
//!   mean, i.e. 0 after standardising. NaN and infinite values are refused.
//! - Text is one-hot encoded over the training vocabulary (sorted); a null
//!   or a value not seen in training encodes as all zeros.
//!
//! A batch of rows becomes one `f32` matrix of shape `(width, rows)`: each
//! encoded column is contiguous, so a batch is written column by column,
//! and every layer computes `W · X`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::{Result, exec_err};
use serde::{Deserialize, Serialize};

/// One input column of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The column's name in the training query.
    pub name: String,
    /// Its type in training, as SQL prints it.
    pub data_type: String,
    /// How its values become numbers.
    pub encoding: Encoding,
}

/// How a feature's values become numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// `(x − mean) / std`; nulls become 0.
    Numeric {
        /// Mean over the training rows.
        mean: f64,
        /// Population standard deviation (1 for a constant feature).
        std: f64,
    },
    /// One-hot over the training vocabulary.
    Categorical {
        /// The values seen in training, sorted.
        vocabulary: Vec<String>,
    },
}

impl Feature {
    /// Encoded columns this feature takes.
    pub fn width(&self) -> usize {
        match &self.encoding {
            Encoding::Numeric { .. } => 1,
            Encoding::Categorical { vocabulary } => vocabulary.len(),
        }
    }

    /// `name TYPE`, as error messages and the registry list features.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.data_type)
    }
}

/// Whether a column of this type is a numeric feature.
pub fn is_numeric_type(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Whether a column of this type is a categorical feature.
pub fn is_categorical_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_categorical_type(v),
        _ => false,
    }
}

/// Encodes batches for a fixed list of features.
#[derive(Debug, Clone)]
pub struct Encoder {
    features: Vec<Feature>,
    /// Per categorical feature, value → position in its vocabulary.
    lookups: Vec<HashMap<String, usize>>,
    width: usize,
}

impl Encoder {
    /// An encoder for `features`.
    pub fn new(features: Vec<Feature>) -> Self {
        let lookups = features
            .iter()
            .map(|f| match &f.encoding {
                Encoding::Categorical { vocabulary } => vocabulary
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), i))
                    .collect(),
                Encoding::Numeric { .. } => HashMap::new(),
            })
            .collect();
        let width = features.iter().map(Feature::width).sum();
        Self {
            features,
            lookups,
            width,
        }
    }

    /// The features, in order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Encoded width of one row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Encodes `rows` rows, one array per feature, into a `(width, rows)`
    /// matrix flattened row by row.
    pub fn encode(&self, arrays: &[ArrayRef], rows: usize) -> Result<Vec<f32>> {
        if arrays.len() != self.features.len() {
            return exec_err!(
                "expected {} feature columns, got {}",
                self.features.len(),
                arrays.len()
            );
        }
        // Written once, column after column: no zero-filling first.
        let mut out = Vec::with_capacity(self.width * rows);
        for ((feature, lookup), array) in self.features.iter().zip(&self.lookups).zip(arrays) {
            if array.len() != rows {
                return exec_err!(
                    "feature {} has {} values in a batch of {rows} rows",
                    feature.name,
                    array.len()
                );
            }
            match &feature.encoding {
                Encoding::Numeric { mean, std } => {
                    encode_numeric(&feature.name, array, *mean, *std, &mut out)?;
                }
                Encoding::Categorical { vocabulary } => {
                    let strings = cast(array, &DataType::Utf8)?;
                    let strings = strings.as_string::<i32>();
                    let start = out.len();
                    out.resize(start + vocabulary.len() * rows, 0.0);
                    let block = &mut out[start..];
                    for (row, value) in strings.iter().enumerate() {
                        if let Some(i) = value.and_then(|v| lookup.get(v)) {
                            block[i * rows + row] = 1.0;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Standardises one numeric column onto the end of `out`. `f32` and `f64`
/// columns are read as they are; other numbers are cast to `f64` first.
fn encode_numeric(
    name: &str,
    array: &ArrayRef,
    mean: f64,
    std: f64,
    out: &mut Vec<f32>,
) -> Result<()> {
    let scale = 1.0 / std;
    let start = out.len();
    let values = match array.data_type() {
        DataType::Float32 => {
            let raw = array.as_primitive::<Float32Type>().values();
            out.extend(raw.iter().map(|v| ((f64::from(*v) - mean) * scale) as f32));
            Arc::clone(array)
        }
        _ => {
            let values = cast(array, &DataType::Float64)?;
            let raw = values.as_primitive::<Float64Type>().values();
            out.extend(raw.iter().map(|v| ((v - mean) * scale) as f32));
            values
        }
    };
    let column = &mut out[start..];
    // A null's slot may hold anything: nulls are written afterwards.
    if let Some(nulls) = values.nulls().filter(|n| n.null_count() > 0) {
        for i in nulls
            .iter()
            .enumerate()
            .filter(|(_, valid)| !valid)
            .map(|(i, _)| i)
        {
            column[i] = 0.0;
        }
    }
    if column.iter().fold(true, |ok, v| ok & v.is_finite()) {
        return Ok(());
    }
    let row = column.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let value = cast(&values.slice(row, 1), &DataType::Float64)?;
    exec_err!(
        "feature {name} has a NaN, infinite or out-of-range value ({}, row {} of the batch): \
         replace or filter it out",
        value.as_primitive::<Float64Type>().value(0),
        row + 1
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array, StringArray};

    use super::*;

    #[test]
    fn encodes_column_blocks() {
        let encoder = Encoder::new(vec![
            Feature {
                name: "x".into(),
                data_type: "INT".into(),
                encoding: Encoding::Numeric {
                    mean: 2.0,
                    std: 2.0,
                },
            },
            Feature {
                name: "c".into(),
                data_type: "VARCHAR".into(),
                encoding: Encoding::Categorical {
                    vocabulary: vec!["a".into(), "b".into()],
                },
            },
        ]);
        assert_eq!(encoder.width(), 3);
        let x: ArrayRef = Arc::new(Int32Array::from(vec![Some(0), None, Some(6)]));
        let c: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("zz"), None]));
        let m = encoder.encode(&[x, c], 3).unwrap();
        // x standardised (null → 0), then one row per category.
        assert_eq!(m, vec![-1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        let nan: ArrayRef = Arc::new(Float64Array::from(vec![1.0, f64::NAN]));
        let c: ArrayRef = Arc::new(StringArray::from(vec!["a", "a"]));
        let e = encoder.encode(&[nan, c], 2).unwrap_err().to_string();
        assert!(
            e.contains("feature x has a NaN") && e.contains("row 2"),
            "{e}"
        );
    }
}
