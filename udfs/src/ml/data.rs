//! Training rows, gathered from the plan's record batches as they stream
//! in: each column is encoded on arrival (numbers as `f64`, text as codes
//! into a growing vocabulary), so the query's batches are never held, and
//! the feature statistics are computed once the stream ends.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use datafusion::common::{Result, exec_err, plan_err};

use super::encode::{Encoding, Feature, is_categorical_type, is_numeric_type};
use super::model::{ModelKind, Target};

/// Encoded training rows.
#[derive(Debug)]
pub struct TrainingData {
    /// Number of rows.
    pub rows: usize,
    /// The features with their encodings.
    pub features: Vec<Feature>,
    /// The encoded matrix, `(width, rows)` flattened row by row.
    pub x: Vec<f32>,
    /// The target.
    pub target: TargetValues,
}

/// Target values of the training rows.
#[derive(Debug)]
pub enum TargetValues {
    /// Unsupervised (k-means).
    None,
    /// Regression: the values, and the target description.
    Numbers(Vec<f64>, Target),
    /// Classification: each row's class index into `target.classes`.
    Classes(Vec<u32>, Target),
}

/// A column being gathered.
#[derive(Debug)]
enum Column {
    /// Values, NaN standing for null.
    Numeric(Vec<f64>),
    /// Codes into `vocabulary` (`u32::MAX` for null).
    Categorical {
        codes: Vec<u32>,
        vocabulary: HashMap<String, u32>,
    },
}

/// Gathers a training query's batches.
#[derive(Debug)]
pub struct Collector {
    model: String,
    kind: ModelKind,
    /// (column index, name, SQL type) of each feature.
    feature_columns: Vec<(usize, String, DataType)>,
    columns: Vec<Column>,
    target: Option<(usize, String, DataType)>,
    target_numbers: Vec<f64>,
    target_labels: Column,
    rows: usize,
}

impl Collector {
    /// A collector for `model` of `kind` over rows of `schema`; every
    /// column but `target` is a feature.
    pub fn new(
        model: &str,
        kind: ModelKind,
        schema: &SchemaRef,
        target: Option<&str>,
    ) -> Result<Self> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let target = match (kind, target) {
            (ModelKind::Kmeans, Some(t)) => {
                return plan_err!(
                    "model {model}: kmeans is unsupervised and takes no target (got target '{t}')"
                );
            }
            (ModelKind::Kmeans, None) => None,
            (_, None) => {
                return plan_err!(
                    "model {model}: {} needs OPTIONS (target 'column'); the query's columns are {}",
                    kind.name(),
                    names.join(", ")
                );
            }
            (_, Some(t)) => {
                let Some(i) = names.iter().position(|n| n == t) else {
                    return plan_err!(
                        "model {model}: the target column '{t}' is not in the training query; \
                         its columns are {}",
                        names.join(", ")
                    );
                };
                let data_type = schema.field(i).data_type().clone();
                let fits = if kind.is_regressor() {
                    data_type.is_numeric()
                } else {
                    data_type.is_integer()
                        || data_type == DataType::Boolean
                        || is_categorical_type(&data_type)
                };
                if !fits {
                    let wanted = if kind.is_regressor() {
                        "a numeric target"
                    } else {
                        "a label target (text, boolean or integer); use a regressor for \
                         continuous numbers"
                    };
                    return plan_err!(
                        "model {model}: {} needs {wanted}, but '{t}' is {data_type}",
                        kind.name()
                    );
                }
                Some((i, t.to_string(), data_type))
            }
        };
        let mut feature_columns = Vec::new();
        let mut columns = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if target.as_ref().is_some_and(|(t, _, _)| *t == i) {
                continue;
            }
            let data_type = field.data_type().clone();
            let column = if is_numeric_type(&data_type) {
                Column::Numeric(Vec::new())
            } else if is_categorical_type(&data_type) {
                Column::Categorical {
                    codes: Vec::new(),
                    vocabulary: HashMap::new(),
                }
            } else {
                return plan_err!(
                    "model {model}: column '{}' is {data_type}, which cannot be a feature \
                     (numbers, booleans and text can): cast or leave it out",
                    field.name()
                );
            };
            feature_columns.push((i, field.name().clone(), data_type));
            columns.push(column);
        }
        if feature_columns.is_empty() {
            return plan_err!("model {model}: the training query has no feature columns");
        }
        Ok(Self {
            model: model.to_string(),
            kind,
            feature_columns,
            columns,
            target,
            target_numbers: Vec::new(),
            target_labels: Column::Categorical {
                codes: Vec::new(),
                vocabulary: HashMap::new(),
            },
            rows: 0,
        })
    }

    /// Adds one batch.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let first_row = self.rows;
        for ((i, name, _), column) in self.feature_columns.iter().zip(&mut self.columns) {
            push_column(&self.model, name, batch.column(*i), column, first_row)?;
        }
        if let Some((i, name, _)) = &self.target {
            let array = batch.column(*i);
            if array.null_count() > 0 {
                let row = (0..array.len()).find(|r| array.is_null(*r)).unwrap_or(0);
                return exec_err!(
                    "model {}: the target {name} is null in row {}: filter such rows out \
                     (WHERE {name} IS NOT NULL)",
                    self.model,
                    first_row + row + 1
                );
            }
            if self.kind.is_regressor() {
                let mut values = Column::Numeric(std::mem::take(&mut self.target_numbers));
                push_column(&self.model, name, array, &mut values, first_row)?;
                let Column::Numeric(v) = values else {
                    unreachable!("numeric column")
                };
                self.target_numbers = v;
            } else {
                push_column(&self.model, name, array, &mut self.target_labels, first_row)?;
            }
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Computes the feature statistics and encodes every row.
    pub fn finish(self) -> Result<TrainingData> {
        let rows = self.rows;
        if rows == 0 {
            return exec_err!(
                "model {}: the training query returned no rows; nothing was registered",
                self.model
            );
        }
        let mut features = Vec::new();
        let mut blocks: Vec<Vec<f32>> = Vec::new();
        for ((_, name, data_type), column) in self.feature_columns.into_iter().zip(self.columns) {
            match column {
                Column::Numeric(values) => {
                    let present: Vec<f64> =
                        values.iter().copied().filter(|v| !v.is_nan()).collect();
                    if present.is_empty() {
                        return exec_err!(
                            "model {}: feature {name} is null in every training row: \
                             leave it out",
                            self.model
                        );
                    }
                    let n = present.len() as f64;
                    let mean = present.iter().sum::<f64>() / n;
                    let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                    blocks.push(
                        values
                            .iter()
                            .map(|v| {
                                if v.is_nan() {
                                    0.0
                                } else {
                                    ((v - mean) / std) as f32
                                }
                            })
                            .collect(),
                    );
                    features.push(Feature {
                        name,
                        data_type: sql_type(&data_type),
                        encoding: Encoding::Numeric { mean, std },
                    });
                }
                Column::Categorical { codes, vocabulary } => {
                    if vocabulary.is_empty() {
                        return exec_err!(
                            "model {}: feature {name} is null in every training row: \
                             leave it out",
                            self.model
                        );
                    }
                    let (sorted, remap) = sorted_vocabulary(vocabulary);
                    let mut block = vec![0f32; sorted.len() * rows];
                    for (row, code) in codes.iter().enumerate() {
                        if *code != u32::MAX {
                            block[remap[*code as usize] as usize * rows + row] = 1.0;
                        }
                    }
                    blocks.push(block);
                    features.push(Feature {
                        name,
                        data_type: sql_type(&data_type),
                        encoding: Encoding::Categorical { vocabulary: sorted },
                    });
                }
            }
        }
        let target = match self.target {
            None => TargetValues::None,
            Some((_, name, data_type)) if self.kind.is_regressor() => {
                let values = self.target_numbers;
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                if values.iter().any(|v| v.is_nan()) {
                    return exec_err!("model {}: the target {name} has NaN values", self.model);
                }
                let target = Target {
                    name,
                    data_type: data_type.to_string(),
                    classes: Vec::new(),
                    mean,
                    std: if var > 0.0 { var.sqrt() } else { 1.0 },
                };
                TargetValues::Numbers(values, target)
            }
            Some((_, name, data_type)) => {
                let Column::Categorical { codes, vocabulary } = self.target_labels else {
                    unreachable!("labels are categorical")
                };
                let (classes, remap) = sorted_vocabulary(vocabulary);
                if classes.len() < 2 {
                    return exec_err!(
                        "model {}: the target {name} has a single class ({}); a classifier \
                         needs at least two",
                        self.model,
                        classes.first().map(String::as_str).unwrap_or("")
                    );
                }
                let indexes = codes.iter().map(|c| remap[*c as usize]).collect();
                TargetValues::Classes(
                    indexes,
                    Target {
                        name,
                        data_type: data_type.to_string(),
                        classes,
                        mean: 0.0,
                        std: 1.0,
                    },
                )
            }
        };
        Ok(TrainingData {
            rows,
            features,
            x: blocks.concat(),
            target,
        })
    }
}

/// A vocabulary sorted (numerically when every value is a number), and
/// each old code's new position.
fn sorted_vocabulary(vocabulary: HashMap<String, u32>) -> (Vec<String>, Vec<u32>) {
    let mut entries: Vec<(String, u32)> = vocabulary.into_iter().collect();
    let numeric = entries.iter().all(|(v, _)| v.parse::<f64>().is_ok());
    if numeric {
        entries.sort_by(|a, b| {
            let (x, y) = (
                a.0.parse::<f64>().unwrap_or(0.0),
                b.0.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
    } else {
        entries.sort();
    }
    let mut remap = vec![0u32; entries.len()];
    for (position, (_, code)) in entries.iter().enumerate() {
        remap[*code as usize] = position as u32;
    }
    (entries.into_iter().map(|(v, _)| v).collect(), remap)
}

/// The type as SQL users write it.
pub fn sql_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            format!("{data_type}").to_uppercase()
        }
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Dictionary(_, v) => sql_type(v),
        other => other.to_string(),
    }
}

fn push_column(
    model: &str,
    name: &str,
    array: &dyn Array,
    column: &mut Column,
    first_row: usize,
) -> Result<()> {
    match column {
        Column::Numeric(values) => {
            let floats = cast(array, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            for (row, v) in floats.iter().enumerate() {
                match v {
                    None => values.push(f64::NAN),
                    Some(v) if v.is_finite() => values.push(v),
                    Some(v) => {
                        return exec_err!(
                            "model {model}: column {name} has the value {v} in row {}: \
                             NaN and infinite values cannot be trained on; filter or replace them",
                            first_row + row + 1
                        );
                    }
                }
            }
        }
        Column::Categorical { codes, vocabulary } => {
            let strings = cast(array, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            for v in strings.iter() {
                codes.push(match v {
                    None => u32::MAX,
                    Some(s) => match vocabulary.get(s) {
                        Some(code) => *code,
                        None => {
                            let code = vocabulary.len() as u32;
                            vocabulary.insert(s.to_string(), code);
                            code
                        }
                    },
                });
            }
        }
    }
    Ok(())
}
