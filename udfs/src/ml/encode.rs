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
    let (values, finite) = match array.data_type() {
        DataType::Float32 => {
            let raw = array.as_primitive::<Float32Type>().values();
            (Arc::clone(array), standardise(raw, mean, scale, out))
        }
        _ => {
            let values = cast(array, &DataType::Float64)?;
            let finite = standardise(
                values.as_primitive::<Float64Type>().values(),
                mean,
                scale,
                out,
            );
            (values, finite)
        }
    };
    let column = &mut out[start..];
    let nulls = values.nulls().filter(|n| n.null_count() > 0);
    if finite && nulls.is_none() {
        return Ok(());
    }
    // A null's slot may hold anything: nulls are written afterwards, and
    // only then is a non-finite value an error.
    if let Some(nulls) = nulls {
        for i in nulls
            .iter()
            .enumerate()
            .filter(|(_, valid)| !valid)
            .map(|(i, _)| i)
        {
            column[i] = 0.0;
        }
    }
    let Some(row) = column.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let value = cast(&values.slice(row, 1), &DataType::Float64)?;
    exec_err!(
        "feature {name} has a NaN, infinite or out-of-range value ({}, row {} of the batch): \
         replace or filter it out",
        value.as_primitive::<Float64Type>().value(0),
        row + 1
    )
}

/// A column value standardised into the tensor's `f32`.
trait Standardise: Copy {
    fn standardised(self, mean: f64, scale: f64) -> f32;
}

impl Standardise for f64 {
    #[inline(always)]
    fn standardised(self, mean: f64, scale: f64) -> f32 {
        ((self - mean) * scale) as f32
    }
}

/// `f32` values are standardised in `f32`: twice the lanes of `f64`, and
/// the rounding this adds stays within the input's own precision
/// (`mean` rounded to `f32` is off by at most what `x` itself can be).
impl Standardise for f32 {
    #[inline(always)]
    fn standardised(self, mean: f64, scale: f64) -> f32 {
        (self - mean as f32) * scale as f32
    }
}

/// Appends `(x − mean) · scale` of each value to `out` as `f32`, and says
/// whether every result is finite.
///
/// This loop runs over every feature value `predict` scores, so on x86-64
/// it is also compiled for AVX2 and that copy is chosen when the CPU has
/// it (the default target only assumes SSE2, which halves the lanes).
fn standardise<T: Standardise>(values: &[T], mean: f64, scale: f64, out: &mut Vec<f32>) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { standardise_avx2(values, mean, scale, out) };
    }
    standardise_portable(values, mean, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn standardise_avx2<T: Standardise>(
    values: &[T],
    mean: f64,
    scale: f64,
    out: &mut Vec<f32>,
) -> bool {
    standardise_portable(values, mean, scale, out)
}

#[inline(always)]
fn standardise_portable<T: Standardise>(
    values: &[T],
    mean: f64,
    scale: f64,
    out: &mut Vec<f32>,
) -> bool {
    // Chunks small enough that the check reads what was just written
    // from L1, rather than a second pass over the column.
    const CHUNK: usize = 2048;
    let mut non_finite = 0u32;
    out.reserve(values.len());
    for chunk in values.chunks(CHUNK) {
        let start = out.len();
        out.extend(chunk.iter().map(|v| v.standardised(mean, scale)));
        // An exponent of all ones is an infinity or a NaN.
        non_finite |= out[start..].iter().fold(0, |acc, v| {
            acc | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000)
        });
    }
    non_finite == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float32Array, Float64Array, Int32Array, StringArray};

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

    #[test]
    fn checks_every_value_but_nulls() {
        let encoder = Encoder::new(vec![Feature {
            name: "x".into(),
            data_type: "FLOAT".into(),
            encoding: Encoding::Numeric {
                mean: 1.0,
                std: 0.5,
            },
        }]);
        // Longer than one checked chunk; a null's slot holds NaN.
        let rows = 5000;
        let mut values: Vec<f32> = (0..rows).map(|i| (i % 7) as f32).collect();
        values[4321] = f32::NAN;
        let valid = (0..rows).map(|i| i != 4321).collect::<Vec<_>>();
        let x: ArrayRef = Arc::new(Float32Array::new(values.clone().into(), Some(valid.into())));
        let m = encoder.encode(&[x], rows).unwrap();
        assert_eq!(m[4321], 0.0);
        assert_eq!(m[4320], ((4320 % 7) as f32 - 1.0) * 2.0);
        assert_eq!(m[rows - 1], (((rows - 1) % 7) as f32 - 1.0) * 2.0);
        // Not null, in the last chunk: refused, and the row is named.
        values[4999] = f32::INFINITY;
        let x: ArrayRef = Arc::new(Float32Array::from(values.clone()));
        let e = encoder.encode(&[x], rows).unwrap_err().to_string();
        assert!(e.contains("row 4322"), "{e}");
        values[4321] = 1.0;
        let x: ArrayRef = Arc::new(Float32Array::from(values));
        let e = encoder.encode(&[x], rows).unwrap_err().to_string();
        assert!(e.contains("(inf, row 5000 "), "{e}");
        // A double too large for f32 is out of range.
        let x: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 1e300]));
        let e = encoder.encode(&[x], 2).unwrap_err().to_string();
        assert!(e.contains("row 2"), "{e}");
    }
}
