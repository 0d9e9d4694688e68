//! A trained model: its kind, features, target and tensors, and the
//! forward pass `predict` runs on each batch.
//!
//! Every kind but k-means is a stack of dense layers (`W · X + b`, ReLU
//! between hidden layers): linear and logistic regression are one layer,
//! the MLPs several. The output layer gives the regression value
//! (de-standardised), one logit (binary classification, the positive class
//! being the second of the sorted classes) or one logit per class. K-means
//! keeps its centroids and assigns each row to the nearest.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, ListArray, StringArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field};
use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};
use datafusion::common::{DataFusionError, Result, exec_err};
use serde::{Deserialize, Serialize};

use super::encode::{Encoder, Feature, is_categorical_type, is_numeric_type};
use super::error::candle_err;

/// The model types `CREATE MODEL … TYPE` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Least squares (ridge with `l2`), solved exactly.
    LinearRegression,
    /// Binary (sigmoid) or multiclass (softmax) logistic regression.
    LogisticRegression,
    /// A multi-layer perceptron classifier.
    MlpClassifier,
    /// A multi-layer perceptron regressor.
    MlpRegressor,
    /// K-means clustering.
    Kmeans,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::LinearRegression,
        ModelKind::LogisticRegression,
        ModelKind::MlpClassifier,
        ModelKind::MlpRegressor,
        ModelKind::Kmeans,
    ];

    /// The kind called `name` in SQL.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::LinearRegression => "linear_regression",
            ModelKind::LogisticRegression => "logistic_regression",
            ModelKind::MlpClassifier => "mlp_classifier",
            ModelKind::MlpRegressor => "mlp_regressor",
            ModelKind::Kmeans => "kmeans",
        }
    }

    /// Whether it predicts a label.
    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            ModelKind::LogisticRegression | ModelKind::MlpClassifier
        )
    }

    /// Whether it predicts a number.
    pub fn is_regressor(self) -> bool {
        matches!(self, ModelKind::LinearRegression | ModelKind::MlpRegressor)
    }
}

/// What a supervised model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The target column.
    pub name: String,
    /// Its Arrow type (labels are returned in it).
    pub data_type: String,
    /// Classifiers: the labels seen in training, sorted (as text).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Regressors: the model predicts `(y − mean) / std`.
    #[serde(default)]
    pub mean: f64,
    /// See `mean`.
    #[serde(default = "one")]
    pub std: f64,
}

fn one() -> f64 {
    1.0
}

impl Target {
    /// The target's Arrow type.
    pub fn arrow_type(&self) -> Result<DataType> {
        DataType::from_str(&self.data_type).map_err(DataFusionError::from)
    }
}

/// Everything about a model but its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The model type.
    pub kind: ModelKind,
    /// The inputs, in training order.
    pub features: Vec<Feature>,
    /// What it predicts (none for k-means).
    pub target: Option<Target>,
    /// Layer widths, the encoded input first: `[in, hidden…, out]`; for
    /// k-means `[in, k]`.
    pub layers: Vec<usize>,
}

impl ModelSpec {
    /// The SQL type `predict` returns.
    pub fn output_type(&self) -> Result<DataType> {
        match (&self.target, self.kind) {
            (_, ModelKind::Kmeans) => Ok(DataType::Int32),
            (Some(t), k) if k.is_classifier() => t.arrow_type(),
            _ => Ok(DataType::Float64),
        }
    }

    /// The type `predict_proba` returns: the positive class's probability
    /// (binary) or one probability per class (multiclass).
    pub fn proba_type(&self) -> Option<DataType> {
        let classes = self.target.as_ref()?.classes.len();
        if !self.kind.is_classifier() {
            None
        } else if classes == 2 {
            Some(DataType::Float64)
        } else {
            Some(DataType::List(Arc::new(Field::new_list_field(
                DataType::Float64,
                true,
            ))))
        }
    }

    /// The features as `name TYPE, …`.
    pub fn describe_features(&self) -> String {
        self.features
            .iter()
            .map(Feature::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks call argument types against the features: same count, a
    /// number for each numeric feature, text for each categorical one.
    pub fn check_arguments(&self, types: &[DataType]) -> std::result::Result<(), String> {
        let expected = || {
            format!(
                "{} feature(s) in training order: {}",
                self.features.len(),
                self.describe_features()
            )
        };
        if types.len() != self.features.len() {
            return Err(format!(
                "got {} feature argument(s), expected {}",
                types.len(),
                expected()
            ));
        }
        for (i, (f, t)) in self.features.iter().zip(types).enumerate() {
            let fits = match f.encoding {
                super::encode::Encoding::Numeric { .. } => is_numeric_type(t),
                super::encode::Encoding::Categorical { .. } => {
                    is_categorical_type(t) || t.is_null()
                }
            };
            if !fits {
                return Err(format!(
                    "argument {} is {t}, but feature {} is {}; expected {}",
                    i + 2,
                    f.name,
                    f.data_type,
                    expected()
                ));
            }
        }
        Ok(())
    }
}

/// A model ready to run: its spec, encoder and tensors on a device.
#[derive(Debug)]
pub struct TrainedModel {
    spec: ModelSpec,
    encoder: Encoder,
    tensors: HashMap<String, Tensor>,
    device: Device,
}

/// The name of layer `i`'s weight (`(out, in)`) or bias (`(out, 1)`).
pub(crate) fn weight_name(i: usize) -> String {
    format!("layers.{i}.weight")
}

pub(crate) fn bias_name(i: usize) -> String {
    format!("layers.{i}.bias")
}

pub(crate) const CENTROIDS: &str = "centroids";

impl TrainedModel {
    /// A model from its spec and tensors (checked against the spec), moved
    /// to `device`.
    pub fn new(
        spec: ModelSpec,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> std::result::Result<Self, String> {
        let mut moved = HashMap::new();
        let expect = |name: &str, dims: &[usize]| -> std::result::Result<Tensor, String> {
            let t = tensors
                .get(name)
                .ok_or_else(|| format!("the model's tensors lack {name}"))?;
            if t.dims() != dims {
                return Err(format!(
                    "tensor {name} has shape {:?}, expected {dims:?}",
                    t.dims()
                ));
            }
            t.to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .map_err(|e| e.to_string())
        };
        if spec.layers.len() < 2 {
            return Err("a model needs an input and an output width".into());
        }
        let width: usize = spec.features.iter().map(Feature::width).sum();
        if spec.layers[0] != width {
            return Err(format!(
                "the model's input width {} does not match its features ({width})",
                spec.layers[0]
            ));
        }
        if spec.kind == ModelKind::Kmeans {
            moved.insert(
                CENTROIDS.to_string(),
                expect(CENTROIDS, &[spec.layers[1], spec.layers[0]])?,
            );
        } else {
            for (i, pair) in spec.layers.windows(2).enumerate() {
                let (inputs, outputs) = (pair[0], pair[1]);
                moved.insert(weight_name(i), expect(&weight_name(i), &[outputs, inputs])?);
                moved.insert(bias_name(i), expect(&bias_name(i), &[outputs, 1])?);
            }
        }
        Ok(Self {
            encoder: Encoder::new(spec.features.clone()),
            spec,
            tensors: moved,
            device: device.clone(),
        })
    }

    /// A model from safetensors bytes.
    pub fn from_safetensors(
        spec: ModelSpec,
        bytes: &[u8],
        device: &Device,
    ) -> std::result::Result<Self, String> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| format!("unreadable model tensors: {e}"))?;
        Self::new(spec, tensors, device)
    }

    /// The tensors as safetensors bytes.
    pub fn to_safetensors(&self) -> std::result::Result<Vec<u8>, String> {
        let cpu: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?)))
            .collect::<candle_core::Result<_>>()
            .map_err(|e| e.to_string())?;
        safetensors::serialize(cpu.iter().map(|(k, v)| (k.as_str(), v)), None)
            .map_err(|e| e.to_string())
    }

    /// The spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One batch of feature columns as a `(width, rows)` tensor.
    pub fn input(&self, arrays: &[ArrayRef], rows: usize) -> Result<Tensor> {
        let data = self.encoder.encode(arrays, rows)?;
        Tensor::from_vec(data, (self.encoder.width(), rows), &self.device).map_err(candle_err)
    }

    /// The output layer's values for an input tensor: `(out, rows)`.
    ///
    /// On the CPU each layer is one [`Dense`] operation: the bias is
    /// written into the output and the product added onto it, and the ReLU
    /// applied in the same place; other devices use candle's operations.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let layers = self.spec.layers.len() - 1;
        let mut h = x.clone();
        for i in 0..layers {
            let w = &self.tensors[&weight_name(i)];
            let b = &self.tensors[&bias_name(i)];
            let relu = i + 1 < layers;
            h = if h.device().is_cpu() && h.dtype() == DType::F32 {
                w.apply_op3_no_bwd(&h.contiguous()?, b, &Dense { relu })?
            } else {
                let y = w.matmul(&h)?.broadcast_add(b)?;
                if relu { y.relu()? } else { y }
            };
        }
        Ok(h)
    }

    /// The nearest centroid of each column of `x` (k-means), and the
    /// squared distance to it.
    pub fn assign(&self, x: &Tensor) -> candle_core::Result<(Vec<u32>, Vec<f32>)> {
        let c = &self.tensors[CENTROIDS];
        let distances = squared_distances(c, x)?;
        let nearest = distances.argmin(0)?;
        let best = distances.min(0)?;
        Ok((nearest.to_vec1::<u32>()?, best.to_vec1::<f32>()?))
    }

    /// Class probabilities of an input, `(classes, rows)`; for a binary
    /// model the first row is the negative class.
    pub fn probabilities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let logits = self.forward(x)?;
        if logits.dim(0)? == 1 {
            let p = candle_nn::ops::sigmoid(&logits)?;
            Tensor::cat(&[&(1.0 - &p)?, &p], 0)
        } else {
            candle_nn::ops::softmax(&logits, 0)
        }
    }

    /// `predict` on one batch.
    pub fn predict(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let x = self.input(arrays, rows)?;
        match self.spec.kind {
            ModelKind::Kmeans => {
                let (nearest, _) = self.assign(&x).map_err(candle_err)?;
                Ok(Arc::new(Int32Array::from_iter_values(
                    nearest.into_iter().map(|c| c as i32),
                )))
            }
            k if k.is_regressor() => {
                let target = self.spec.target.as_ref();
                let (mean, std) = target.map_or((0.0, 1.0), |t| (t.mean, t.std));
                let y = self
                    .forward(&x)
                    .and_then(|y| y.flatten_all())
                    .and_then(|y| y.to_vec1::<f32>())
                    .map_err(candle_err)?;
                Ok(Arc::new(Float64Array::from_iter_values(
                    y.into_iter().map(|v| v as f64 * std + mean),
                )))
            }
            _ => {
                let p = self.probabilities(&x).map_err(candle_err)?;
                let classes = p
                    .argmax(0)
                    .and_then(|c| c.to_vec1::<u32>())
                    .map_err(candle_err)?;
                self.labels(&classes)
            }
        }
    }

    /// The labels of class indexes, in the target's type.
    pub fn labels(&self, classes: &[u32]) -> Result<ArrayRef> {
        let Some(target) = &self.spec.target else {
            return exec_err!("this model has no labels");
        };
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(&target.classes));
        let labels = take(&names, &UInt32Array::from(classes.to_vec()), None)?;
        Ok(cast(&labels, &target.arrow_type()?)?)
    }

    /// `predict_proba` on one batch.
    pub fn predict_proba(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let x = self.input(arrays, rows)?;
        let p = self.probabilities(&x).map_err(candle_err)?;
        let classes = p.dim(0).map_err(candle_err)?;
        let p = p
            .t()
            .and_then(|p| p.contiguous())
            .and_then(|p| p.flatten_all())
            .and_then(|p| p.to_vec1::<f32>())
            .map_err(candle_err)?;
        if classes == 2 {
            return Ok(Arc::new(Float64Array::from_iter_values(
                p.chunks_exact(2).map(|row| row[1] as f64),
            )));
        }
        let values = Float64Array::from_iter_values(p.iter().map(|v| *v as f64));
        Ok(Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::from_lengths(std::iter::repeat_n(classes, rows)),
            Arc::new(values),
            None,
        )?))
    }
}

/// One dense layer on the CPU: `W · X + b`, then `max(·, 0)` when
/// `relu`; `W` is `(out, in)`, `X` `(in, rows)`, `b` `(out, 1)`, all `f32`.
///
/// It calls the `gemm` kernel candle's own matrix product calls, with two
/// differences that matter when a batch is scored in well under a
/// millisecond: the output starts as the bias (which the kernel adds the
/// product onto) rather than as zeros followed by another pass, and the
/// thread count is looked up once per process — candle looks it up on
/// every product, reading `/proc/cpuinfo`.
struct Dense {
    relu: bool,
}

/// Threads a large product may use: candle's choice, asked once.
fn gemm_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// The offset, rows and columns of a contiguous matrix inside `values`.
fn matrix(values: &[f32], layout: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    match (layout.dims(), layout.contiguous_offsets()) {
        (&[r, c], Some((start, end))) if end - start == r * c && end <= values.len() => {
            Ok((start, r, c))
        }
        (dims, _) => candle_core::bail!("dense layer needs contiguous 2-d tensors, got {dims:?}"),
    }
}

impl candle_core::CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        w: &CpuStorage,
        w_layout: &Layout,
        x: &CpuStorage,
        x_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(w), CpuStorage::F32(x), CpuStorage::F32(b)) = (w, x, b) else {
            candle_core::bail!("dense layer needs f32 tensors");
        };
        let (w_at, outputs, inputs) = matrix(w, w_layout)?;
        let (x_at, x_rows, rows) = matrix(x, x_layout)?;
        let (b_at, b_rows, b_cols) = matrix(b, b_layout)?;
        if x_rows != inputs || b_rows != outputs || b_cols != 1 {
            candle_core::bail!(
                "dense layer: weights {outputs}×{inputs}, input {x_rows}×{rows}, bias {b_rows}×{b_cols}"
            );
        }
        let (w, x, b) = (
            &w[w_at..w_at + outputs * inputs],
            &x[x_at..x_at + inputs * rows],
            &b[b_at..b_at + outputs],
        );
        let mut out = Vec::with_capacity(outputs * rows);
        for bias in b {
            out.extend(std::iter::repeat_n(*bias, rows));
        }
        if inputs > 0 && rows > 0 && outputs > 0 {
            let threads = gemm_threads();
            let parallelism = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: the three matrices are row-major slices of exactly
            // the sizes given (checked above): `out` is outputs × rows,
            // `w` outputs × inputs, `x` inputs × rows; the kernel reads and
            // writes only within them. `out ← 1·out + 1·(w · x)`.
            unsafe {
                gemm::gemm(
                    outputs,
                    rows,
                    inputs,
                    out.as_mut_ptr(),
                    1,
                    rows as isize,
                    true,
                    w.as_ptr(),
                    1,
                    inputs as isize,
                    x.as_ptr(),
                    1,
                    rows as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        if self.relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok((CpuStorage::F32(out), Shape::from((outputs, rows))))
    }
}

/// `‖c − x‖²` for every centroid (rows of `c`, `(k, d)`) and column of `x`
/// (`(d, n)`): `(k, n)`.
pub(crate) fn squared_distances(c: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let cx = c.matmul(x)?;
    let c2 = c.sqr()?.sum_keepdim(1)?;
    let x2 = x.sqr()?.sum_keepdim(0)?;
    (cx * -2.0)?.broadcast_add(&c2)?.broadcast_add(&x2)?.relu()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense layer gives what candle's matmul + bias (+ ReLU) give.
    #[test]
    fn dense_layer_matches_candle_ops() {
        let device = Device::Cpu;
        for (outputs, inputs, rows) in [(1, 32, 8192), (64, 32, 300), (3, 5, 1), (2, 1, 7)] {
            let values = |n: usize, seed: f32| -> Vec<f32> {
                (0..n)
                    .map(|i| (i as f32 * 0.37 + seed).sin() * 3.0)
                    .collect()
            };
            let w = Tensor::from_vec(values(outputs * inputs, 1.0), (outputs, inputs), &device)
                .unwrap();
            let x = Tensor::from_vec(values(inputs * rows, 2.0), (inputs, rows), &device).unwrap();
            let b = Tensor::from_vec(values(outputs, 3.0), (outputs, 1), &device).unwrap();
            for relu in [false, true] {
                let ours = w.apply_op3_no_bwd(&x, &b, &Dense { relu }).unwrap();
                let mut theirs = w.matmul(&x).unwrap().broadcast_add(&b).unwrap();
                if relu {
                    theirs = theirs.relu().unwrap();
                }
                assert_eq!(ours.dims(), &[outputs, rows]);
                let diff = (ours - theirs)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    diff < 1e-4,
                    "{outputs}×{inputs}×{rows}, relu {relu}: {diff}"
                );
            }
        }
        // A transposed (strided) input is refused by the operation itself;
        // `forward` makes it contiguous first.
        let x = Tensor::ones((4, 3), DType::F32, &device)
            .unwrap()
            .t()
            .unwrap();
        let w = Tensor::ones((2, 3), DType::F32, &device).unwrap();
        let b = Tensor::zeros((2, 1), DType::F32, &device).unwrap();
        assert!(w.apply_op3_no_bwd(&x, &b, &Dense { relu: false }).is_err());
        let ok = w
            .apply_op3_no_bwd(&x.contiguous().unwrap(), &b, &Dense { relu: false })
            .unwrap();
        assert_eq!(ok.to_vec2::<f32>().unwrap(), vec![vec![3.0; 4]; 2]);
    }
}
