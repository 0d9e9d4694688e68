//! Training, on candle tensors, deterministic for a given `seed` on CPU.
//!
//! - `linear_regression`: the normal equations `(XᵀX/n + l2·I) w = Xᵀy/n`
//!   accumulated over column chunks of the encoded matrix with candle
//!   matmuls (in f64), solved by Cholesky — the exact least-squares
//!   solution, as scikit-learn's `LinearRegression` (`Ridge` with `l2`).
//! - `logistic_regression`, `mlp_classifier`, `mlp_regressor`: dense
//!   layers trained by Adam on shuffled mini-batches, with a numerically
//!   stable binary cross-entropy on logits, softmax cross-entropy for
//!   several classes, or mean squared error on the standardised target;
//!   `l2` adds `l2 · Σ‖W‖²`. Logistic weights start at zero (the problem
//!   is convex); MLP weights He-uniform from the seeded generator.
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
    /// Lloyd iterations at most (k-means).
    pub max_iter: usize,
    /// K-means restarts.
    pub n_init: usize,
}

/// The option names a kind accepts.
pub fn accepted_options(kind: ModelKind) -> Vec<&'static str> {
    let mut names = vec!["validation_split", "seed", "device"];
    match kind {
        ModelKind::LinearRegression => names.extend(["target", "l2"]),
        ModelKind::LogisticRegression => {
            names.extend(["target", "epochs", "learning_rate", "batch_size", "l2"])
        }
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
            max_iter: 300,
            n_init: 3,
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
/// fit — epochs of a network, initialisations of k-means; linear
/// regression solves in one step and reports none.
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
    // The split: a seeded permutation, the last share held out.
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::new(options.seed).shuffle(&mut order);
    let held = ((n as f64) * options.validation_split).round() as usize;
    let held = if held == 0 || held >= n { 0 } else { held };
    let (train_idx, valid_idx) = order.split_at(n - held);
    let mut train_idx = train_idx.to_vec();
    train_idx.sort_unstable();
    let eval_idx: Vec<u32> = if held == 0 {
        train_idx.clone()
    } else {
        let mut v = valid_idx.to_vec();
        v.sort_unstable();
        v
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
            let labels = if classes == 2 {
                let y: Vec<f32> = y.iter().map(|c| *c as f32).collect();
                Labels::Binary(
                    Tensor::from_vec(y, (1, train_idx.len()), device).map_err(candle_err)?,
                )
            } else {
                Labels::Classes(Tensor::from_vec(y, train_idx.len(), device).map_err(candle_err)?)
            };
            let tensors = fit_network(&layers, &x_train, &labels, options, device, progress)
                .map_err(candle_err)?;
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
