//! Training, on candle tensors, deterministic for a given `seed` on CPU.
//!
//! - `linear_regression`: the normal equations `(XᵀX/n + l2·I) w = Xᵀy/n`
//!   accumulated over column chunks of the encoded matrix with candle
//!   matmuls (in f64), solved by Cholesky — the exact least-squares
//!   solution, as scikit-learn's `LinearRegression` (`Ridge` with `l2`).
//! - `logistic_regression` (`solver 'lbfgs'`, the default): L-BFGS on the
//!   full training set, as scikit-learn's `LogisticRegression` — the
//!   two-loop recursion over 10 correction pairs and the Moré–Thuente
//!   line search for the strong Wolfe conditions (`lbfgs.rs`), from
//!   zero weights, until `max |∇| <= 1e-4` (scikit-learn's `tol`) or
//!   `max_iter` iterations (default 100). The objective is the mean
//!   binary cross-entropy on one logit (two classes) or softmax
//!   cross-entropy on one logit per class, plus `l2 · Σ‖W‖²` on the
//!   weights, not the bias (`l2 = 1 / (2·C·n)` is scikit-learn's `C`; the
//!   default 0 is unpenalised, and on separable rows, where the weights
//!   would grow without end, the fit still stops by `max_iter` with
//!   finite weights). Why L-BFGS: the problem is convex, smooth and small
//!   (`classes × (width + 1)` parameters) against many rows, so a
//!   quasi-Newton method on exact full-batch gradients reaches the optimum
//!   in tens of passes over the data where Adam needs hundreds of epochs
//!   of mini-batches and a step size to tune. Each pass streams the
//!   `(width, rows)` matrix in column chunks (`logistic.rs`): the
//!   logits, losses and `residuals·Xᵀ` of one chunk at a time, summed in
//!   f64, so the working memory is a chunk's logits per thread and a
//!   gradient per shard — bounded by the chunk and the model, not by the
//!   rows. On the CPU the chunks go to threads in a fixed number of
//!   shards whose sums are added in a fixed order: the same rows give the
//!   same weights bit for bit, whatever the thread count. With 800 000 ×
//!   32 rows a pass takes about 15 ms on two cores and a fit ten
//!   iterations, as scikit-learn's. `solver 'adam'` keeps the mini-batch
//!   path below (`epochs`, `learning_rate`, `batch_size`; naming one of
//!   them without a solver chooses Adam).
//! - `mlp_classifier`, `mlp_regressor` (and `logistic_regression` with
//!   `solver 'adam'`): dense layers trained by Adam on shuffled
//!   mini-batches, with a numerically stable binary cross-entropy on
//!   logits, softmax cross-entropy for several classes, or mean squared
//!   error on the standardised target; `l2` adds `l2 · Σ‖W‖²`. Logistic
//!   weights start at zero (the problem is convex); MLP weights
//!   He-uniform from the seeded generator.
//! - `kmeans`: k-means++ seeding and Lloyd iterations until assignments
//!   stop changing (or `max_iter`), best of `n_init` seeds by inertia.
//!
//! A `validation_split` share of the rows (shuffled by `seed`) is held out
//! and the metrics are computed on it (on the training rows when the split
//! is 0).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use datafusion::common::{Result, exec_err, plan_err};

use super::data::{TargetValues, TrainingData};
use super::error::candle_err;
use super::metrics::{self, Metrics};
use super::model::{
    CENTROIDS, ModelKind, ModelSpec, Target, TrainedModel, bias_name, squared_distances,
    weight_name,
};
use super::rng::Rng;

/// Training options (`OPTIONS (…)` of `CREATE MODEL`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// The target column (supervised kinds).
    pub target: Option<String>,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Rows per step.
    pub batch_size: usize,
    /// Hidden layer widths (MLPs).
    pub hidden_layers: Vec<usize>,
    /// Clusters (k-means).
    pub k: usize,
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Share of rows held out for the metrics.
    pub validation_split: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Device name (`auto`, `cpu`, `cuda[:N]`), when given.
    pub device: Option<String>,
    /// Lloyd iterations (k-means) or L-BFGS iterations (logistic
    /// regression) at most.
    pub max_iter: usize,
    /// K-means restarts.
    pub n_init: usize,
    /// How logistic regression is fitted.
    pub solver: Solver,
}

/// The solver of `logistic_regression` (option `solver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// L-BFGS on the full training set (the default, as scikit-learn's).
    Lbfgs,
    /// Adam on shuffled mini-batches for `epochs` (`learning_rate`,
    /// `batch_size`), as MLPs are trained.
    Adam,
}

impl Solver {
    /// Its name in `OPTIONS (solver '…')`.
    pub fn name(self) -> &'static str {
        match self {
            Solver::Lbfgs => "lbfgs",
            Solver::Adam => "adam",
        }
    }
}

/// The option names a kind accepts.
pub fn accepted_options(kind: ModelKind) -> Vec<&'static str> {
    let mut names = vec!["validation_split", "seed", "device"];
    match kind {
        ModelKind::LinearRegression => names.extend(["target", "l2"]),
        ModelKind::LogisticRegression => names.extend([
            "target",
            "epochs",
            "learning_rate",
            "batch_size",
            "l2",
            "max_iter",
            "solver",
        ]),
        ModelKind::MlpClassifier | ModelKind::MlpRegressor => names.extend([
            "target",
            "epochs",
            "learning_rate",
            "batch_size",
            "l2",
            "hidden_layers",
        ]),
        ModelKind::Kmeans => names.extend(["k", "max_iter", "n_init"]),
    }
    names
}

impl TrainOptions {
    /// The steps [`train_with_progress`] reports for `kind` and their
    /// unit: L-BFGS iterations out of `max_iter` (it may stop sooner),
    /// epochs of Adam, initialisations of k-means; none for linear
    /// regression.
    pub fn progress_steps(&self, kind: ModelKind) -> Option<(&'static str, u64)> {
        match kind {
            ModelKind::LinearRegression => None,
            ModelKind::Kmeans => Some(("initialisations", self.n_init as u64)),
            ModelKind::LogisticRegression if self.solver == Solver::Lbfgs => {
                Some(("iterations", self.max_iter as u64))
            }
            _ => Some(("epochs", self.epochs as u64)),
        }
    }

    /// Options for `kind` from `key value` pairs; unknown keys and bad
    /// values are planning errors naming the option.
    pub fn parse(kind: ModelKind, pairs: &[(String, String)]) -> Result<Self> {
        let mut o = TrainOptions {
            target: None,
            epochs: if kind == ModelKind::LogisticRegression {
                50
            } else {
                100
            },
            learning_rate: 0.01,
            batch_size: 256,
            hidden_layers: vec![64, 32],
            k: 8,
            l2: 0.0,
            validation_split: 0.2,
            seed: 42,
            device: None,
            max_iter: if kind == ModelKind::LogisticRegression {
                100
            } else {
                300
            },
            n_init: 3,
            solver: Solver::Lbfgs,
        };
        let accepted = accepted_options(kind);
        for (key, value) in pairs {
            if !accepted.contains(&key.as_str()) {
                return plan_err!(
                    "unknown option {key} for {}: expected one of {}",
                    kind.name(),
                    accepted.join(", ")
                );
            }
            let bad = |what: &str| -> Result<Self> {
                plan_err!("option {key} must be {what}, got '{value}'")
            };
            let count = |min: usize| value.parse::<usize>().ok().filter(|v| *v >= min);
            let number = || value.parse::<f64>().ok().filter(|v| v.is_finite());
            match key.as_str() {
                "target" => o.target = Some(value.clone()),
                "epochs" => match count(1) {
                    Some(v) => o.epochs = v,
                    None => return bad("a positive integer"),
                },
                "batch_size" => match count(1) {
                    Some(v) => o.batch_size = v,
                    None => return bad("a positive integer"),
                },
                "k" => match count(1) {
                    Some(v) => o.k = v,
                    None => return bad("a positive integer"),
                },
                "max_iter" => match count(1) {
                    Some(v) => o.max_iter = v,
                    None => return bad("a positive integer"),
                },
                "solver" => match value.trim().to_lowercase().as_str() {
                    "lbfgs" => o.solver = Solver::Lbfgs,
                    "adam" => o.solver = Solver::Adam,
                    _ => return bad("'lbfgs' or 'adam'"),
                },
                "n_init" => match count(1) {
                    Some(v) => o.n_init = v,
                    None => return bad("a positive integer"),
                },
                "seed" => match value.parse::<u64>() {
                    Ok(v) => o.seed = v,
                    Err(_) => return bad("a non-negative integer"),
                },
                "learning_rate" => match number().filter(|v| *v > 0.0) {
                    Some(v) => o.learning_rate = v,
                    None => return bad("a positive number"),
                },
                "l2" => match number().filter(|v| *v >= 0.0) {
                    Some(v) => o.l2 = v,
                    None => return bad("a non-negative number"),
                },
                "validation_split" => match number().filter(|v| (0.0..1.0).contains(v)) {
                    Some(v) => o.validation_split = v,
                    None => return bad("a number in [0, 1)"),
                },
                "hidden_layers" => {
                    let widths: Option<Vec<usize>> = value
                        .split(',')
                        .map(|w| w.trim().parse::<usize>().ok().filter(|w| *w > 0))
                        .collect();
                    match widths {
                        Some(w) if !w.is_empty() => o.hidden_layers = w,
                        _ => return bad("comma-separated positive widths such as '64,32'"),
                    }
                }
                "device" => {
                    super::device::DeviceChoice::parse(value).map_err(|e| {
                        datafusion::error::DataFusionError::Plan(format!("option device: {e}"))
                    })?;
                    o.device = Some(value.clone());
                }
                _ => unreachable!("accepted options are handled"),
            }
        }
        if kind == ModelKind::LogisticRegression {
            // Adam's own options choose Adam unless a solver is named;
            // with L-BFGS they would be ignored, so they are refused.
            let adam_options: Vec<&str> = pairs
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| matches!(*k, "epochs" | "learning_rate" | "batch_size"))
                .collect();
            let named = pairs.iter().any(|(k, _)| k == "solver");
            if !adam_options.is_empty() {
                if !named {
                    o.solver = Solver::Adam;
                } else if o.solver == Solver::Lbfgs {
                    return plan_err!(
                        "option {} applies to solver 'adam'; solver 'lbfgs' takes max_iter and l2",
                        adam_options.join(", ")
                    );
                }
            }
            if pairs.iter().any(|(k, _)| k == "max_iter") && o.solver == Solver::Adam {
                return plan_err!(
                    "option max_iter applies to solver 'lbfgs'; solver 'adam' takes epochs"
                );
            }
        }
        Ok(o)
    }
}

/// A trained model and how it did.
#[derive(Debug)]
pub struct Trained {
    /// The model.
    pub model: TrainedModel,
    /// Metrics on the held-out rows (or the training rows).
    pub metrics: Metrics,
    /// Rows trained on and held out.
    pub training_rows: usize,
    /// Rows the metrics were computed on.
    pub validation_rows: usize,
}

/// Trains a model of `kind` on `data`.
pub fn train(
    kind: ModelKind,
    data: TrainingData,
    options: &TrainOptions,
    device: &Device,
) -> Result<Trained> {
    train_with_progress(kind, data, options, device, &|_, _| {})
}

/// What [`train_with_progress`] reports: `(done, total)` steps of the
/// fit — L-BFGS iterations out of `max_iter` (logistic regression),
/// epochs of a network, initialisations of k-means; linear regression
/// solves in one step and reports none. See
/// [`TrainOptions::progress_steps`].
pub type TrainProgress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// [`train`], telling `progress` after each step of the fit.
pub fn train_with_progress(
    kind: ModelKind,
    data: TrainingData,
    options: &TrainOptions,
    device: &Device,
    progress: TrainProgress<'_>,
) -> Result<Trained> {
    let n = data.rows;
    let width = data.x.len() / n;
    if kind == ModelKind::Kmeans && options.k > n {
        return exec_err!(
            "kmeans with k = {} needs at least {} rows, the query returned {n}",
            options.k,
            options.k
        );
    }
    // The split: a seeded permutation, the last share held out (every
    // row, in order, when none is).
    let held = ((n as f64) * options.validation_split).round() as usize;
    let held = if held == 0 || held >= n { 0 } else { held };
    let (train_idx, eval_idx) = if held == 0 {
        let all: Vec<u32> = (0..n as u32).collect();
        (all.clone(), all)
    } else {
        let mut order: Vec<u32> = (0..n as u32).collect();
        Rng::new(options.seed).shuffle(&mut order);
        let (train_idx, valid_idx) = order.split_at(n - held);
        let mut train_idx = train_idx.to_vec();
        train_idx.sort_unstable();
        let mut eval_idx = valid_idx.to_vec();
        eval_idx.sort_unstable();
        (train_idx, eval_idx)
    };

    let x_all = Tensor::from_vec(data.x, (width, n), device).map_err(candle_err)?;
    let columns = |idx: &[u32]| -> Result<Tensor> {
        let idx = Tensor::from_slice(idx, idx.len(), device).map_err(candle_err)?;
        x_all.index_select(&idx, 1).map_err(candle_err)
    };
    let x_train = if held == 0 {
        x_all.clone()
    } else {
        columns(&train_idx)?
    };
    let x_eval = if held == 0 {
        x_train.clone()
    } else {
        columns(&eval_idx)?
    };

    let features = data.features;
    let (model, metrics) = match data.target {
        TargetValues::None => {
            let (centroids, _) = kmeans(&x_train, options, device, progress).map_err(candle_err)?;
            let spec = ModelSpec {
                kind,
                features,
                target: None,
                layers: vec![width, options.k],
            };
            let model = TrainedModel::new(
                spec,
                HashMap::from([(CENTROIDS.to_string(), centroids)]),
                device,
            )
            .map_err(datafusion::error::DataFusionError::Execution)?;
            let (_, distances) = model.assign(&x_eval).map_err(candle_err)?;
            let inertia = distances.iter().map(|d| *d as f64).sum::<f64>();
            (model, Metrics::from([("inertia".to_string(), inertia)]))
        }
        TargetValues::Numbers(values, target) => {
            let standardised: Vec<f32> = values
                .iter()
                .map(|v| ((v - target.mean) / target.std) as f32)
                .collect();
            let pick = |idx: &[u32]| -> Vec<f32> {
                idx.iter().map(|i| standardised[*i as usize]).collect()
            };
            let y_train = Tensor::from_vec(pick(&train_idx), (1, train_idx.len()), device)
                .map_err(candle_err)?;
            let layers = layer_widths(kind, width, 1, options);
            let tensors = if kind == ModelKind::LinearRegression {
                normal_equations(&x_train, &y_train, options.l2).map_err(candle_err)?
            } else {
                fit_network(
                    &layers,
                    &x_train,
                    &Labels::Values(y_train),
                    options,
                    device,
                    progress,
                )
                .map_err(candle_err)?
            };
            let model = build(kind, features, Some(target), layers, tensors, device)?;
            let predicted = model.forward(&x_eval).map_err(candle_err)?;
            let t = model
                .spec()
                .target
                .as_ref()
                .expect("regressors have a target");
            let predicted: Vec<f64> = predicted
                .flatten_all()
                .and_then(|p| p.to_vec1::<f32>())
                .map_err(candle_err)?
                .into_iter()
                .map(|p| p as f64 * t.std + t.mean)
                .collect();
            let truth: Vec<f64> = eval_idx.iter().map(|i| values[*i as usize]).collect();
            let metrics = metrics::regression(&truth, &predicted);
            (model, metrics)
        }
        TargetValues::Classes(indexes, target) => {
            let classes = target.classes.len();
            let pick =
                |idx: &[u32]| -> Vec<u32> { idx.iter().map(|i| indexes[*i as usize]).collect() };
            let outputs = if classes == 2 { 1 } else { classes };
            let layers = layer_widths(kind, width, outputs, options);
            let y = pick(&train_idx);
            let tensors =
                if kind == ModelKind::LogisticRegression && options.solver == Solver::Lbfgs {
                    super::logistic::fit(
                        &x_train,
                        &y,
                        classes,
                        options.l2,
                        options.max_iter,
                        progress,
                    )
                    .map_err(candle_err)?
                    .tensors
                } else {
                    let rows = y.len();
                    let labels = if classes == 2 {
                        let y: Vec<f32> = y.iter().map(|c| *c as f32).collect();
                        Labels::Binary(Tensor::from_vec(y, (1, rows), device).map_err(candle_err)?)
                    } else {
                        Labels::Classes(Tensor::from_vec(y, rows, device).map_err(candle_err)?)
                    };
                    fit_network(&layers, &x_train, &labels, options, device, progress)
                        .map_err(candle_err)?
                };
            let model = build(kind, features, Some(target), layers, tensors, device)?;
            let p = model
                .probabilities(&x_eval)
                .and_then(|p| p.t())
                .and_then(|p| p.contiguous())
                .and_then(|p| p.flatten_all())
                .and_then(|p| p.to_vec1::<f32>())
                .map_err(candle_err)?;
            let p: Vec<f64> = p.into_iter().map(f64::from).collect();
            let metrics = metrics::classification(&pick(&eval_idx), &p, classes);
            (model, metrics)
        }
    };
    Ok(Trained {
        model,
        metrics,
        training_rows: train_idx.len(),
        validation_rows: eval_idx.len(),
    })
}

fn build(
    kind: ModelKind,
    features: Vec<super::encode::Feature>,
    target: Option<Target>,
    layers: Vec<usize>,
    tensors: HashMap<String, Tensor>,
    device: &Device,
) -> Result<TrainedModel> {
    let spec = ModelSpec {
        kind,
        features,
        target,
        layers,
    };
    TrainedModel::new(spec, tensors, device).map_err(datafusion::error::DataFusionError::Execution)
}

/// `[in, hidden…, out]`.
fn layer_widths(kind: ModelKind, width: usize, outputs: usize, o: &TrainOptions) -> Vec<usize> {
    let mut layers = vec![width];
    if matches!(kind, ModelKind::MlpClassifier | ModelKind::MlpRegressor) {
        layers.extend(&o.hidden_layers);
    }
    layers.push(outputs);
    layers
}

/// What a network is fitted to.
enum Labels {
    /// Regression targets, `(1, n)`.
    Values(Tensor),
    /// 0/1 labels, `(1, n)`.
    Binary(Tensor),
    /// Class indexes, `(n,)` u32.
    Classes(Tensor),
}

/// Exact (ridge) least squares: weight `(1, d)` and bias `(1, 1)`.
fn normal_equations(
    x: &Tensor,
    y: &Tensor,
    l2: f64,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let (d, n) = x.dims2()?;
    let device = x.device();
    let mut a = Tensor::zeros((d + 1, d + 1), DType::F64, device)?;
    let mut b = Tensor::zeros((d + 1, 1), DType::F64, device)?;
    let chunk = 1 << 16;
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let xc = x.narrow(1, start, len)?.to_dtype(DType::F64)?;
        let ones = Tensor::ones((1, len), DType::F64, device)?;
        let xa = Tensor::cat(&[&xc, &ones], 0)?;
        let yc = y.narrow(1, start, len)?.to_dtype(DType::F64)?;
        a = (a + xa.matmul(&xa.t()?)?)?;
        b = (b + xa.matmul(&yc.t()?)?)?;
        start += len;
    }
    let mut a = (a / n as f64)?.to_device(&Device::Cpu)?.to_vec2::<f64>()?;
    let b: Vec<f64> = (b / n as f64)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    for (i, row) in a.iter_mut().enumerate().take(d) {
        row[i] += l2;
    }
    let w = solve_spd(a, &b);
    let weight = Tensor::from_vec(
        w[..d].iter().map(|v| *v as f32).collect::<Vec<_>>(),
        (1, d),
        device,
    )?;
    let bias = Tensor::from_vec(vec![w[d] as f32], (1, 1), device)?;
    Ok(HashMap::from([
        (weight_name(0), weight),
        (bias_name(0), bias),
    ]))
}

/// Solves `a · x = b` for a symmetric positive semi-definite `a` by
/// Cholesky, adding the smallest diagonal jitter that makes it definite
/// (collinear one-hot columns make `XᵀX` singular; the jitter then picks
/// the minimum-norm solution's neighbour, whose predictions are the same).
fn solve_spd(a: Vec<Vec<f64>>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let scale = (0..n)
        .map(|i| a[i][i].abs())
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut jitter = 0.0;
    loop {
        let mut l = vec![vec![0.0; n]; n];
        let mut ok = true;
        'outer: for i in 0..n {
            for j in 0..=i {
                let mut s = a[i][j] + if i == j { jitter } else { 0.0 };
                for (x, y) in l[i][..j].iter().zip(&l[j][..j]) {
                    s -= x * y;
                }
                if i == j {
                    if s <= 1e-12 * scale {
                        ok = false;
                        break 'outer;
                    }
                    l[i][i] = s.sqrt();
                } else {
                    l[i][j] = s / l[j][j];
                }
            }
        }
        if ok {
            let mut z = vec![0.0; n];
            for i in 0..n {
                let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
                z[i] = (b[i] - s) / l[i][i];
            }
            let mut x = vec![0.0; n];
            for i in (0..n).rev() {
                let s: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
                x[i] = (z[i] - s) / l[i][i];
            }
            return x;
        }
        jitter = if jitter == 0.0 {
            1e-10 * scale
        } else {
            jitter * 10.0
        };
    }
}

/// Fits dense layers with Adam on shuffled mini-batches.
fn fit_network(
    layers: &[usize],
    x: &Tensor,
    labels: &Labels,
    o: &TrainOptions,
    device: &Device,
    progress: TrainProgress<'_>,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut rng = Rng::new(o.seed.wrapping_add(1));
    let logistic = layers.len() == 2 && !matches!(labels, Labels::Values(_));
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for pair in layers.windows(2) {
        let (inputs, outputs) = (pair[0], pair[1]);
        let w: Vec<f32> = if logistic {
            vec![0.0; inputs * outputs]
        } else {
            // He-uniform, for ReLU layers.
            let bound = (6.0 / inputs as f64).sqrt();
            (0..inputs * outputs)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        weights.push(Var::from_vec(w, (outputs, inputs), device)?);
        biases.push(Var::zeros((outputs, 1), DType::F32, device)?);
    }
    let vars: Vec<Var> = weights.iter().chain(&biases).cloned().collect();
    let mut adam = AdamW::new(
        vars,
        ParamsAdamW {
            lr: o.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let n = x.dim(1)?;
    let batch = o.batch_size.min(n);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for epoch in 0..o.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let idx = Tensor::from_slice(chunk, chunk.len(), device)?;
            let xb = x.index_select(&idx, 1)?;
            let mut h = xb;
            for (i, (w, b)) in weights.iter().zip(&biases).enumerate() {
                h = w.as_tensor().matmul(&h)?.broadcast_add(b.as_tensor())?;
                if i + 1 < weights.len() {
                    h = h.relu()?;
                }
            }
            let loss = match labels {
                Labels::Values(y) => {
                    let yb = y.index_select(&idx, 1)?;
                    (h - yb)?.sqr()?.mean_all()?
                }
                Labels::Binary(y) => {
                    // mean(max(z, 0) − z·y + ln(1 + e^−|z|)), stable for
                    // any logit.
                    let yb = y.index_select(&idx, 1)?;
                    let softplus = (h.abs()?.neg()?.exp()? + 1.0)?.log()?;
                    ((h.relu()? - (&h * &yb)?)? + softplus)?.mean_all()?
                }
                Labels::Classes(y) => {
                    let yb = y.index_select(&idx, 0)?;
                    candle_nn::loss::cross_entropy(&h.t()?.contiguous()?, &yb)?
                }
            };
            let loss = if o.l2 > 0.0 {
                let mut penalty = Tensor::zeros((), DType::F32, device)?;
                for w in &weights {
                    penalty = (penalty + w.as_tensor().sqr()?.sum_all()?)?;
                }
                (loss + (penalty * o.l2)?)?
            } else {
                loss
            };
            adam.backward_step(&loss)?;
        }
        progress(epoch as u64 + 1, o.epochs as u64);
    }
    let mut out = HashMap::new();
    for (i, (w, b)) in weights.into_iter().zip(biases).enumerate() {
        out.insert(weight_name(i), w.into_inner());
        out.insert(bias_name(i), b.into_inner());
    }
    Ok(out)
}

/// K-means: the best of `n_init` k-means++ seedings refined by Lloyd's
/// iterations; returns centroids `(k, d)` and their inertia.
fn kmeans(
    x: &Tensor,
    o: &TrainOptions,
    device: &Device,
    progress: TrainProgress<'_>,
) -> candle_core::Result<(Tensor, f64)> {
    let (d, n) = x.dims2()?;
    let xt = x.t()?.contiguous()?; // (n, d): rows are points
    let mut best: Option<(Tensor, f64)> = None;
    for run in 0..o.n_init {
        let mut rng = Rng::new(o.seed.wrapping_add(1000 + run as u64));
        // k-means++: each next centre drawn with probability ∝ D².
        let first = rng.below(n);
        let mut centres = vec![xt.narrow(0, first, 1)?];
        let mut closest = squared_distances(&centres[0], x)?.flatten_all()?;
        while centres.len() < o.k {
            let weights = closest.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let total: f64 = weights.iter().sum();
            let pick = if total > 0.0 {
                let mut target = rng.uniform() * total;
                let mut chosen = n - 1;
                for (i, w) in weights.iter().enumerate() {
                    if target < *w {
                        chosen = i;
                        break;
                    }
                    target -= w;
                }
                chosen
            } else {
                rng.below(n)
            };
            let centre = xt.narrow(0, pick, 1)?;
            let distances = squared_distances(&centre, x)?.flatten_all()?;
            closest = closest.minimum(&distances)?;
            centres.push(centre);
        }
        let mut c = Tensor::cat(&centres, 0)?; // (k, d)
        let mut previous: Option<Vec<u32>> = None;
        for _ in 0..o.max_iter {
            let assignment = squared_distances(&c, x)?.argmin(0)?; // (n,)
            let sums =
                Tensor::zeros((o.k, d), DType::F32, device)?.index_add(&assignment, &xt, 0)?;
            let counts = Tensor::zeros((o.k, 1), DType::F32, device)?.index_add(
                &assignment,
                &Tensor::ones((n, 1), DType::F32, device)?,
                0,
            )?;
            // Empty clusters keep their centre.
            let empty = counts.eq(0.0)?;
            let means = sums.broadcast_div(&counts.maximum(1.0)?)?;
            c = empty.broadcast_as((o.k, d))?.where_cond(&c, &means)?;
            let assignment = assignment.to_vec1::<u32>()?;
            if previous.as_ref() == Some(&assignment) {
                break;
            }
            previous = Some(assignment);
        }
        let inertia = squared_distances(&c, x)?
            .min(0)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        if best.as_ref().is_none_or(|(_, b)| inertia < *b) {
            best = Some((c, inertia));
        }
        progress(run as u64 + 1, o.n_init as u64);
    }
    Ok(best.expect("n_init is at least 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let o = TrainOptions::parse(
            ModelKind::MlpRegressor,
            &[
                ("target".into(), "y".into()),
                ("hidden_layers".into(), "8, 4".into()),
            ],
        )
        .unwrap();
        assert_eq!(o.hidden_layers, vec![8, 4]);
        let e = TrainOptions::parse(ModelKind::Kmeans, &[("target".into(), "y".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option target for kmeans"), "{e}");
        let e = TrainOptions::parse(
            ModelKind::LogisticRegression,
            &[("epochs".into(), "-1".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("epochs must be a positive integer"), "{e}");
    }

    #[test]
    fn logistic_options_choose_the_solver() {
        let parse = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TrainOptions::parse(ModelKind::LogisticRegression, &pairs)
        };
        let o = parse(&[("target", "y")]).unwrap();
        assert_eq!((o.solver, o.max_iter), (Solver::Lbfgs, 100));
        let o = parse(&[("solver", "ADAM"), ("epochs", "3")]).unwrap();
        assert_eq!((o.solver, o.epochs), (Solver::Adam, 3));
        // Adam's options without a solver choose Adam; with L-BFGS they
        // would be ignored, so they are refused, as max_iter with Adam.
        let o = parse(&[("epochs", "3"), ("learning_rate", "0.1")]).unwrap();
        assert_eq!(o.solver, Solver::Adam);
        let e = parse(&[("solver", "lbfgs"), ("epochs", "3")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("option epochs applies to solver 'adam'"), "{e}");
        let e = parse(&[("solver", "adam"), ("max_iter", "3")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("option max_iter applies to solver 'lbfgs'"),
            "{e}"
        );
        let e = parse(&[("solver", "sgd")]).unwrap_err().to_string();
        assert!(
            e.contains("option solver must be 'lbfgs' or 'adam', got 'sgd'"),
            "{e}"
        );
        let e = parse(&[("max_iter", "0")]).unwrap_err().to_string();
        assert!(
            e.contains("option max_iter must be a positive integer"),
            "{e}"
        );
        let e = parse(&[("k", "2")]).unwrap_err().to_string();
        assert!(
            e.contains(
                "expected one of validation_split, seed, device, target, epochs, \
                 learning_rate, batch_size, l2, max_iter, solver"
            ),
            "{e}"
        );
        assert_eq!(
            parse(&[])
                .unwrap()
                .progress_steps(ModelKind::LogisticRegression),
            Some(("iterations", 100))
        );
        assert_eq!(
            parse(&[("solver", "adam")])
                .unwrap()
                .progress_steps(ModelKind::LogisticRegression),
            Some(("epochs", 50))
        );
        // k-means keeps its own default, and no solver.
        let o = TrainOptions::parse(ModelKind::Kmeans, &[]).unwrap();
        assert_eq!(o.max_iter, 300);
        assert!(
            TrainOptions::parse(ModelKind::Kmeans, &[("solver".into(), "adam".into())]).is_err()
        );
    }

    /// Standard normal features and labels from noisy linear scores: `w·x
    /// + noise > 0` for two classes, the largest of `classes` scores else.
    fn labelled(rows: usize, classes: usize, seed: u64) -> TrainingData {
        let width = 4;
        let mut rng = Rng::new(seed);
        let mut normal = move || rng.normal();
        let mut x = vec![0f32; width * rows];
        let mut labels = Vec::new();
        for i in 0..rows {
            for j in 0..width {
                x[j * rows + i] = normal() as f32;
            }
            let score = |c: usize| -> f64 {
                (0..width)
                    .map(|j| (((c + 2 * j) % 5) as f64 - 2.0) * f64::from(x[j * rows + i]))
                    .sum()
            };
            let scores: Vec<f64> = (0..classes.max(2))
                .map(|c| score(c) + 0.3 * normal())
                .collect();
            labels.push(if classes == 2 {
                u32::from(scores[0] > 0.0)
            } else {
                (0..classes)
                    .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                    .unwrap() as u32
            });
        }
        let features = (0..width)
            .map(|j| super::super::encode::Feature {
                name: format!("x{j}"),
                data_type: "DOUBLE".into(),
                encoding: super::super::encode::Encoding::Numeric {
                    mean: 0.0,
                    std: 1.0,
                },
            })
            .collect();
        TrainingData {
            rows,
            features,
            x,
            target: TargetValues::Classes(
                labels,
                Target {
                    name: "label".into(),
                    data_type: "Utf8".into(),
                    classes: (0..classes).map(|c| format!("c{c}")).collect(),
                    mean: 0.0,
                    std: 1.0,
                },
            ),
        }
    }

    fn logistic(pairs: &[(&str, &str)]) -> TrainOptions {
        let mut pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.push(("target".into(), "label".into()));
        TrainOptions::parse(ModelKind::LogisticRegression, &pairs).unwrap()
    }

    /// L-BFGS (the default) reaches the accuracy the boundary allows on
    /// held-out rows, with two classes and with three; progress counts
    /// iterations out of `max_iter`.
    #[test]
    fn logistic_regression_trains_by_lbfgs() {
        for classes in [2, 3] {
            let steps = std::sync::Mutex::new(Vec::new());
            let trained = train_with_progress(
                ModelKind::LogisticRegression,
                labelled(5000, classes, 21),
                &logistic(&[]),
                &Device::Cpu,
                &|done, total| steps.lock().unwrap().push((done, total)),
            )
            .unwrap();
            assert_eq!(
                (trained.training_rows, trained.validation_rows),
                (4000, 1000)
            );
            let accuracy = trained.metrics["accuracy"];
            assert!(accuracy > 0.9, "{classes} classes: accuracy {accuracy}");
            let steps = steps.into_inner().unwrap();
            assert!(!steps.is_empty() && steps.len() <= 100, "{steps:?}");
            assert!(
                steps
                    .iter()
                    .enumerate()
                    .all(|(i, s)| *s == (i as u64 + 1, 100))
            );
        }
    }

    /// The same rows and options train the same weights, bit for bit.
    #[test]
    fn logistic_training_is_reproducible() {
        for classes in [2, 3] {
            let bytes = || {
                train(
                    ModelKind::LogisticRegression,
                    labelled(3000, classes, 22),
                    &logistic(&[("l2", "0.001")]),
                    &Device::Cpu,
                )
                .unwrap()
                .model
                .to_safetensors()
                .unwrap()
            };
            assert_eq!(bytes(), bytes(), "{classes} classes");
        }
    }

    /// `solver 'adam'` keeps the mini-batch path.
    #[test]
    fn logistic_regression_trains_by_adam_on_request() {
        let trained = train(
            ModelKind::LogisticRegression,
            labelled(2000, 2, 23),
            &logistic(&[
                ("solver", "adam"),
                ("epochs", "20"),
                ("learning_rate", "0.05"),
            ]),
            &Device::Cpu,
        )
        .unwrap();
        let accuracy = trained.metrics["accuracy"];
        assert!(accuracy > 0.9, "accuracy {accuracy}");
    }

    #[test]
    fn cholesky_solves_and_tolerates_singular_systems() {
        let x = solve_spd(vec![vec![4.0, 2.0], vec![2.0, 3.0]], &[2.0, 5.0]);
        assert!(
            (x[0] + 0.5).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12,
            "{x:?}"
        );
        // Rank one: a solution still comes back.
        let x = solve_spd(vec![vec![1.0, 1.0], vec![1.0, 1.0]], &[2.0, 2.0]);
        assert!((x[0] + x[1] - 2.0).abs() < 1e-6, "{x:?}");
    }
}
