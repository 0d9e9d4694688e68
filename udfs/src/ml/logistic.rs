//! Logistic regression by L-BFGS on the full training matrix, streamed.
//!
//! The objective is scikit-learn's: the mean cross-entropy of the rows
//! (sigmoid of one logit for two classes, softmax of one logit per class
//! for more) plus `l2 · Σ‖W‖²` — the bias is not penalised, so `l2 =
//! 1 / (2·C·n)` is scikit-learn's `C`. Each evaluation of the objective
//! and its gradient is one pass over the `(width, rows)` matrix in chunks
//! of columns: per chunk the logits (`W·X + b`), the losses and residuals
//! (probability − label), and `R·Xᵀ`, summed in `f64`. Working memory is
//! one chunk's logits and two row vectors per thread (`(logits + 2) ×
//! chunk` f64: 96 KiB for two classes and 32 features) and one gradient
//! per shard (at most 64), whatever the number of rows; the matrix is
//! read where it is, not copied.
//!
//! On the CPU the chunk products are plain loops over the `f32` matrix
//! (one read of each chunk per evaluation, while it is in cache; compiled
//! for AVX2 too), spread over threads by shards: the chunks are grouped
//! into a fixed number of consecutive shards, each summed in chunk order,
//! and the shards' sums added in shard order. Chunk and shard boundaries
//! depend only on the matrix's shape, so the value and gradient — hence
//! the fitted weights — are the same bit for bit however many threads
//! ran. They are about 4× faster than the same pass as candle matmuls
//! (800 000 × 32, two classes, two cores: 16 ms against 63 ms; see the
//! ignored test `objective_timings`), which is what other devices run:
//! candle matmuls in `f64` on the device, the chunks' sums added on the
//! host in order.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{CpuStorage, DType, Storage, Tensor};

use super::lbfgs::{self, Minimum, Settings};
use super::model::{bias_name, weight_name};

/// Shards of the CPU pass (at most; fewer when there are fewer chunks).
const SHARDS: usize = 64;

/// Columns per chunk for the tensor (device) pass.
const DEVICE_CHUNK: usize = 1 << 16;

/// Columns per chunk of the CPU pass for `width` features: a chunk of
/// the matrix is about 512 KiB, so that it is still in cache when the
/// gradient reads it again after the logits did.
fn cpu_chunk(width: usize) -> usize {
    ((1 << 17) / width.max(1)).clamp(256, 8192) / 64 * 64
}

/// A fitted logistic regression.
#[derive(Debug)]
#[allow(dead_code, reason = "the minimum is a diagnostic, read by tests")]
pub(crate) struct Fit {
    /// `weight_0` `(logits, width)` and `bias_0` `(logits, 1)`, `f32`, on
    /// the matrix's device.
    pub(crate) tensors: HashMap<String, Tensor>,
    /// Where L-BFGS ended: the parameters (the weights row by row, then the
    /// biases), the objective, iterations and evaluations.
    pub(crate) minimum: Minimum,
}

/// Fits `classes` classes (`labels[i]` the class index of column `i` of
/// `x`, `(width, rows)` `f32`) by L-BFGS from zero weights with
/// scikit-learn's settings and `max_iter` iterations at most, telling
/// `progress` `(iteration, max_iter)` after each.
pub(crate) fn fit(
    x: &Tensor,
    labels: &[u32],
    classes: usize,
    l2: f64,
    max_iter: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> candle_core::Result<Fit> {
    let settings = Settings::scikit_learn(max_iter);
    fit_with(
        x,
        labels,
        classes,
        l2,
        &settings,
        candle_core::utils::get_num_threads(),
        progress,
    )
}

/// [`fit`] with its L-BFGS settings and CPU threads given.
pub(crate) fn fit_with(
    x: &Tensor,
    labels: &[u32],
    classes: usize,
    l2: f64,
    settings: &Settings,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> candle_core::Result<Fit> {
    let (width, rows) = x.dims2()?;
    if labels.len() != rows {
        candle_core::bail!("{} labels for {rows} rows", labels.len());
    }
    if classes < 2 || labels.iter().any(|c| *c as usize >= classes) {
        candle_core::bail!("labels must be class indexes below {classes} (at least 2 classes)");
    }
    let objective = Objective {
        labels,
        rows,
        width,
        logits: if classes == 2 { 1 } else { classes },
        l2,
        chunk: cpu_chunk(width),
        threads,
    };
    let start = vec![0.0; objective.parameters()];
    let max_iter = settings.max_iter as u64;
    let report = |k: usize| progress(k as u64, max_iter);
    let minimum = if x.device().is_cpu() {
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let values = match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(v)), Some((from, to))) => &v[from..to],
            _ => candle_core::bail!("the training matrix is not a contiguous f32 CPU tensor"),
        };
        lbfgs::minimize(
            start,
            settings,
            |theta, grad| Ok::<f64, candle_core::Error>(objective.cpu(values, theta, grad)),
            report,
        )?
    } else {
        lbfgs::minimize(
            start,
            settings,
            |theta, grad| objective.tensor(x, theta, grad),
            report,
        )?
    };
    let (k, d) = (objective.logits, width);
    let weights: Vec<f32> = minimum.x[..k * d].iter().map(|v| *v as f32).collect();
    let biases: Vec<f32> = minimum.x[k * d..].iter().map(|v| *v as f32).collect();
    let tensors = HashMap::from([
        (
            weight_name(0),
            Tensor::from_vec(weights, (k, d), x.device())?,
        ),
        (bias_name(0), Tensor::from_vec(biases, (k, 1), x.device())?),
    ]);
    Ok(Fit { tensors, minimum })
}

/// The loss and the gradient summed over some rows (not yet divided by
/// their number): the weights' row by row, then the biases'.
type Sums = (f64, Vec<f64>);

/// The objective over one training matrix.
#[derive(Debug, Clone)]
struct Objective<'a> {
    /// Class index of each row.
    labels: &'a [u32],
    rows: usize,
    width: usize,
    /// 1 (binary) or the number of classes.
    logits: usize,
    l2: f64,
    /// Columns per chunk (CPU).
    chunk: usize,
    /// Threads of the CPU pass.
    threads: usize,
}

impl Objective<'_> {
    fn parameters(&self) -> usize {
        self.logits * (self.width + 1)
    }

    /// The value and gradient from the sums over the rows: means, plus the
    /// penalty on the weights.
    fn finish(&self, theta: &[f64], loss: f64, sums: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.rows as f64;
        let weights = self.logits * self.width;
        let mut penalty = 0.0;
        for (i, (g, s)) in grad.iter_mut().zip(sums).enumerate() {
            *g = s / n;
            if i < weights {
                *g += 2.0 * self.l2 * theta[i];
                penalty += theta[i] * theta[i];
            }
        }
        loss / n + self.l2 * penalty
    }

    /// The value, and the gradient into `grad`, over `x` (`(width,
    /// rows)` row-major) on the CPU.
    fn cpu(&self, x: &[f32], theta: &[f64], grad: &mut [f64]) -> f64 {
        let chunks = self.rows.div_ceil(self.chunk);
        let shards = SHARDS.min(chunks).max(1);
        let results: Vec<Mutex<Option<Sums>>> = (0..shards).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let work = || {
            let mut scratch = vec![0.0; (self.logits + 2) * self.chunk];
            loop {
                let s = next.fetch_add(1, Ordering::Relaxed);
                if s >= shards {
                    break;
                }
                let sums = self.shard(
                    x,
                    theta,
                    s * chunks / shards..(s + 1) * chunks / shards,
                    &mut scratch,
                );
                *results[s].lock().expect("a shard's slot") = Some(sums);
            }
        };
        let threads = self.threads.clamp(1, shards);
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        let mut loss = 0.0;
        let mut sums = vec![0.0; self.parameters()];
        for slot in results {
            let (l, g) = slot
                .into_inner()
                .expect("a shard's slot")
                .expect("every shard ran");
            loss += l;
            sums.iter_mut().zip(&g).for_each(|(s, g)| *s += g);
        }
        self.finish(theta, loss, &sums, grad)
    }

    /// The loss and gradient sums of chunks `chunks`, in order: compiled
    /// for AVX2 as well and picked at run time (the default target assumes
    /// SSE2). Both give the same bits: the arithmetic is the same
    /// element-wise operations and lane-wise sums, only wider.
    fn shard(&self, x: &[f32], theta: &[f64], chunks: Range<usize>, scratch: &mut [f64]) -> Sums {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.shard_avx2(x, theta, chunks, scratch) };
        }
        self.shard_portable(x, theta, chunks, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn shard_avx2(
        &self,
        x: &[f32],
        theta: &[f64],
        chunks: Range<usize>,
        scratch: &mut [f64],
    ) -> Sums {
        self.shard_portable(x, theta, chunks, scratch)
    }

    #[inline(always)]
    fn shard_portable(
        &self,
        x: &[f32],
        theta: &[f64],
        chunks: Range<usize>,
        scratch: &mut [f64],
    ) -> Sums {
        let (n, d, k) = (self.rows, self.width, self.logits);
        let (w, b) = theta.split_at(k * d);
        let mut loss = 0.0;
        let mut sums = vec![0.0; k * (d + 1)];
        for c in chunks {
            let start = c * self.chunk;
            let len = self.chunk.min(n - start);
            let column = |j: usize| &x[j * n + start..j * n + start + len];
            let (z, work) = scratch.split_at_mut(k * self.chunk);
            let z = &mut z[..k * len];
            // Logits, 4 features at a time.
            for (class, zc) in z.chunks_exact_mut(len).enumerate() {
                zc.fill(b[class]);
                let wc = &w[class * d..(class + 1) * d];
                let mut j = 0;
                while j + 4 <= d {
                    axpy4(
                        zc,
                        [wc[j], wc[j + 1], wc[j + 2], wc[j + 3]],
                        [column(j), column(j + 1), column(j + 2), column(j + 3)],
                    );
                    j += 4;
                }
                for (j, wj) in wc.iter().enumerate().skip(j) {
                    axpy1(zc, *wj, column(j));
                }
            }
            let y = &self.labels[start..start + len];
            loss += if k == 1 {
                binary_residuals(z, y)
            } else {
                softmax_residuals(z, y, k, len, work)
            };
            // Residuals times the features.
            for (class, rc) in z.chunks_exact(len).enumerate() {
                let g = &mut sums[class * d..(class + 1) * d];
                let mut j = 0;
                while j + 4 <= d {
                    let dots = dot4(rc, [column(j), column(j + 1), column(j + 2), column(j + 3)]);
                    for (g, v) in g[j..j + 4].iter_mut().zip(dots) {
                        *g += v;
                    }
                    j += 4;
                }
                for (j, gj) in g.iter_mut().enumerate().skip(j) {
                    *gj += dot1(rc, column(j));
                }
                sums[k * d + class] += sum(rc);
            }
        }
        (loss, sums)
    }

    /// The value and gradient with candle operations on `x`'s device.
    fn tensor(&self, x: &Tensor, theta: &[f64], grad: &mut [f64]) -> candle_core::Result<f64> {
        let (n, d, k) = (self.rows, self.width, self.logits);
        let device = x.device();
        let w = Tensor::from_slice(&theta[..k * d], (k, d), device)?;
        let b = Tensor::from_slice(&theta[k * d..], (k, 1), device)?;
        let mut loss = 0.0;
        let mut sums = vec![0.0; k * (d + 1)];
        let mut start = 0;
        while start < n {
            let len = DEVICE_CHUNK.min(n - start);
            let xc = x.narrow(1, start, len)?.to_dtype(DType::F64)?;
            let z = w.matmul(&xc)?.broadcast_add(&b)?;
            let y = &self.labels[start..start + len];
            let (chunk_loss, r) = if k == 1 {
                let t: Vec<f64> = y.iter().map(|c| f64::from(*c)).collect();
                let t = Tensor::from_vec(t, (1, len), device)?;
                // max(z, 0) − z·y + ln(1 + e^−|z|).
                let softplus = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
                let l = ((z.relu()? - (&z * &t)?)? + softplus)?
                    .sum_all()?
                    .to_scalar::<f64>()?;
                let p = z.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
                (l, (p - t)?)
            } else {
                let mut onehot = vec![0.0; k * len];
                for (i, c) in y.iter().enumerate() {
                    onehot[*c as usize * len + i] = 1.0;
                }
                let t = Tensor::from_vec(onehot, (k, len), device)?;
                let m = z.max_keepdim(0)?;
                let e = z.broadcast_sub(&m)?.exp()?;
                let s = e.sum_keepdim(0)?;
                let l = (m + s.log()?)?.sum_all()?.to_scalar::<f64>()?
                    - (&z * &t)?.sum_all()?.to_scalar::<f64>()?;
                (l, (e.broadcast_div(&s)? - t)?)
            };
            loss += chunk_loss;
            let g = r.matmul(&xc.t()?)?.flatten_all()?.to_vec1::<f64>()?;
            let gb = r.sum(1)?.to_vec1::<f64>()?;
            for (s, v) in sums.iter_mut().zip(g.iter().chain(&gb)) {
                *s += v;
            }
            start += len;
        }
        Ok(self.finish(theta, loss, &sums, grad))
    }
}

/// Binary cross-entropy on logits (`max(z, 0) − z·y + ln(1 + e^−|z|)`,
/// stable for any logit) summed; each logit is replaced by its residual
/// `σ(z) − y`.
#[inline(always)]
fn binary_residuals(z: &mut [f64], y: &[u32]) -> f64 {
    let mut loss = 0.0;
    for (z, y) in z.iter_mut().zip(y) {
        let t = *z;
        let e = (-t.abs()).exp();
        let positive = *y == 1;
        // ln(1 + e) as ln(u) corrected for the rounding of u = 1 + e: as
        // accurate as `ln_1p` for e in (0, 1], at a fraction of its cost.
        let u = 1.0 + e;
        let softplus = u.ln() - ((u - 1.0) - e) / u;
        loss += if positive { (-t).max(0.0) } else { t.max(0.0) } + softplus;
        let p = if t >= 0.0 { 1.0 / u } else { e / u };
        *z = if positive { p - 1.0 } else { p };
    }
    loss
}

/// Softmax cross-entropy of the `len` columns of `z` (`k` rows of logits)
/// summed; the logits are replaced by the residuals `softmax(z) − onehot`.
/// Class by class over the rows (so that all but `exp` and `ln`
/// vectorise), with `work` (`2·len`) for each row's largest logit and sum
/// of exponentials.
#[inline(always)]
fn softmax_residuals(z: &mut [f64], y: &[u32], k: usize, len: usize, work: &mut [f64]) -> f64 {
    let (m, s) = work[..2 * len].split_at_mut(len);
    m.copy_from_slice(&z[..len]);
    for zc in z.chunks_exact(len).skip(1) {
        for (m, z) in m.iter_mut().zip(zc) {
            *m = m.max(*z);
        }
    }
    let mut loss = 0.0;
    for (i, (y, m)) in y.iter().zip(&*m).enumerate() {
        loss += m - z[*y as usize * len + i];
    }
    s.fill(0.0);
    for zc in z.chunks_exact_mut(len).take(k) {
        for ((z, m), s) in zc.iter_mut().zip(&*m).zip(s.iter_mut()) {
            let e = (*z - m).exp();
            *z = e;
            *s += e;
        }
    }
    for s in s.iter() {
        loss += s.ln();
    }
    for zc in z.chunks_exact_mut(len).take(k) {
        for (z, s) in zc.iter_mut().zip(&*s) {
            *z /= s;
        }
    }
    for (i, y) in y.iter().enumerate() {
        z[*y as usize * len + i] -= 1.0;
    }
    loss
}

/// `z += Σ w[f]·x[f]`, the four terms added left to right.
#[inline(always)]
fn axpy4(z: &mut [f64], w: [f64; 4], x: [&[f32]; 4]) {
    let len = z.len();
    let (x0, x1, x2, x3) = (&x[0][..len], &x[1][..len], &x[2][..len], &x[3][..len]);
    for ((((z, a), b), c), d) in z.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
        *z = *z
            + w[0] * f64::from(*a)
            + w[1] * f64::from(*b)
            + w[2] * f64::from(*c)
            + w[3] * f64::from(*d);
    }
}

#[inline(always)]
fn axpy1(z: &mut [f64], w: f64, x: &[f32]) {
    for (z, x) in z.iter_mut().zip(x) {
        *z += w * f64::from(*x);
    }
}

/// Partial sums per lane: the fixed summation order of the dot products.
const LANES: usize = 4;

/// `r·x[f]` for four features at once.
#[inline(always)]
fn dot4(r: &[f64], x: [&[f32]; 4]) -> [f64; 4] {
    let len = r.len();
    let x = x.map(|c| &c[..len]);
    let mut acc = [[0.0; LANES]; 4];
    let body = len / LANES * LANES;
    for (i, rv) in r[..body].chunks_exact(LANES).enumerate() {
        let at = i * LANES;
        for (acc, x) in acc.iter_mut().zip(&x) {
            for ((a, r), x) in acc.iter_mut().zip(rv).zip(&x[at..at + LANES]) {
                *a += r * f64::from(*x);
            }
        }
    }
    let mut out = [0.0; 4];
    for ((out, acc), x) in out.iter_mut().zip(&acc).zip(&x) {
        let mut s = acc.iter().sum::<f64>();
        for (r, x) in r[body..].iter().zip(&x[body..]) {
            s += r * f64::from(*x);
        }
        *out = s;
    }
    out
}

#[inline(always)]
fn dot1(r: &[f64], x: &[f32]) -> f64 {
    let mut acc = [0.0; LANES];
    let body = r.len() / LANES * LANES;
    for (rv, xv) in r[..body]
        .chunks_exact(LANES)
        .zip(x[..body].chunks_exact(LANES))
    {
        for ((a, r), x) in acc.iter_mut().zip(rv).zip(xv) {
            *a += r * f64::from(*x);
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for (r, x) in r[body..].iter().zip(&x[body..]) {
        s += r * f64::from(*x);
    }
    s
}

#[inline(always)]
fn sum(r: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let body = r.len() / LANES * LANES;
    for rv in r[..body].chunks_exact(LANES) {
        for (a, r) in acc.iter_mut().zip(rv) {
            *a += r;
        }
    }
    acc.iter().sum::<f64>() + r[body..].iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::rng::Rng;
    use candle_core::Device;

    fn no_progress() -> &'static (dyn Fn(u64, u64) + Sync) {
        &|_, _| {}
    }

    /// `rows` rows of `width` standard normal features (`(width, rows)`)
    /// and labels: binary, `w·x + noise > 0`, or, for `classes > 2`, the
    /// class of the largest of `classes` noisy linear scores.
    fn synthetic(
        rows: usize,
        width: usize,
        classes: usize,
        noise: f64,
        seed: u64,
    ) -> (Vec<f32>, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let mut normal = move || rng.normal();
        let mut x = vec![0f32; width * rows];
        let mut labels = Vec::with_capacity(rows);
        let weight = |c: usize, j: usize| (((c * 5 + j * 3) % 7) as f64 - 3.0) / 3.0;
        for i in 0..rows {
            for j in 0..width {
                x[j * rows + i] = normal() as f32;
            }
            let score = |c: usize| -> f64 {
                (0..width)
                    .map(|j| weight(c, j) * f64::from(x[j * rows + i]))
                    .sum()
            };
            if classes == 2 {
                labels.push(u32::from(score(0) + noise * normal() > 0.0));
            } else {
                let scores: Vec<f64> = (0..classes).map(|c| score(c) + noise * normal()).collect();
                let best = (0..classes)
                    .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                    .unwrap();
                labels.push(best as u32);
            }
        }
        (x, labels)
    }

    fn objective(labels: &[u32], width: usize, classes: usize, l2: f64) -> Objective<'_> {
        Objective {
            labels,
            rows: labels.len(),
            width,
            logits: if classes == 2 { 1 } else { classes },
            l2,
            chunk: 64,
            threads: 2,
        }
    }

    fn parameters(count: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..count).map(|_| rng.uniform() * 2.0 - 1.0).collect()
    }

    /// The accuracy of `fit`'s weights on `(x, labels)`.
    fn accuracy(fitted: &Fit, x: &[f32], labels: &[u32], width: usize, classes: usize) -> f64 {
        let rows = labels.len();
        let k = if classes == 2 { 1 } else { classes };
        let theta = &fitted.minimum.x;
        let correct = (0..rows)
            .filter(|i| {
                let logit = |c: usize| -> f64 {
                    theta[k * width + c]
                        + (0..width)
                            .map(|j| theta[c * width + j] * f64::from(x[j * rows + i]))
                            .sum::<f64>()
                };
                let predicted = if k == 1 {
                    u32::from(logit(0) > 0.0)
                } else {
                    (0..k)
                        .max_by(|a, b| logit(*a).total_cmp(&logit(*b)))
                        .unwrap() as u32
                };
                predicted == labels[*i]
            })
            .count();
        correct as f64 / rows as f64
    }

    /// The analytic gradient against central differences, binary and
    /// softmax, with the penalty, over many chunks and shards.
    #[test]
    fn gradient_matches_finite_differences() {
        for classes in [2, 3] {
            let (x, labels) = synthetic(1000, 5, classes, 1.0, 3);
            let o = objective(&labels, 5, classes, 0.01);
            let theta = parameters(o.parameters(), 9);
            let mut grad = vec![0.0; theta.len()];
            let f = o.cpu(&x, &theta, &mut grad);
            assert!(f.is_finite() && f > 0.0);
            let mut scratch = vec![0.0; theta.len()];
            for i in 0..theta.len() {
                let h = 1e-6;
                let mut t = theta.clone();
                t[i] += h;
                let up = o.cpu(&x, &t, &mut scratch);
                t[i] -= 2.0 * h;
                let down = o.cpu(&x, &t, &mut scratch);
                let numeric = (up - down) / (2.0 * h);
                assert!(
                    (numeric - grad[i]).abs() < 1e-6 * (1.0 + grad[i].abs()),
                    "{classes} classes, parameter {i}: {numeric} vs {}",
                    grad[i]
                );
            }
        }
    }

    /// The plain CPU pass and the candle pass (what other devices run)
    /// compute the same objective.
    #[test]
    fn cpu_and_tensor_passes_agree() {
        for classes in [2, 4] {
            let (x, labels) = synthetic(3000, 7, classes, 0.5, 5);
            let o = objective(&labels, 7, classes, 0.001);
            let theta = parameters(o.parameters(), 2);
            let (mut g1, mut g2) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
            let f1 = o.cpu(&x, &theta, &mut g1);
            let t = Tensor::from_vec(x.clone(), (7, 3000), &Device::Cpu).unwrap();
            let f2 = o.tensor(&t, &theta, &mut g2).unwrap();
            assert!((f1 - f2).abs() < 1e-12 * f1.abs(), "{f1} vs {f2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() < 1e-12, "{g1:?} vs {g2:?}");
            }
        }
    }

    /// Chunks and shards, not threads, fix the summation order: the same
    /// bits with 1, 2 or 5 threads.
    #[test]
    fn objective_is_independent_of_thread_count() {
        let (x, labels) = synthetic(5000, 6, 3, 1.0, 8);
        let mut o = objective(&labels, 6, 3, 0.0);
        let theta = parameters(o.parameters(), 4);
        let mut first: Option<(u64, Vec<u64>)> = None;
        for threads in [1, 2, 5] {
            o.threads = threads;
            let mut grad = vec![0.0; theta.len()];
            let f = o.cpu(&x, &theta, &mut grad);
            let bits = (f.to_bits(), grad.iter().map(|g| g.to_bits()).collect());
            match &first {
                None => first = Some(bits),
                Some(b) => assert_eq!(*b, bits, "{threads} threads"),
            }
        }
    }

    /// 300 rows of 3 features made from sines (the same in Python), and
    /// binary and 3-class labels.
    fn sines() -> (Vec<f32>, Vec<u32>, Vec<u32>) {
        let n = 300;
        let mut x = vec![0f32; 3 * n];
        let (mut binary, mut three) = (Vec::new(), Vec::new());
        for i in 0..n {
            let t = i as f64;
            let x0 = ((0.37 * t).sin() * 2.0) as f32;
            let x1 = (0.91 * t + 0.5).cos() as f32;
            let x2 = (((i * 7919) % 100) as f64 / 50.0 - 1.0) as f32;
            let (a, b, c) = (f64::from(x0), f64::from(x1), f64::from(x2));
            let noise = 0.8 * (2.3 * t).sin();
            binary.push(u32::from(a - 2.0 * b + 0.5 * c + noise > 0.1));
            let s = [a + 0.5 * noise, -a + b, 0.3 + c - 0.5 * b - 0.5 * noise];
            let best = (0..3).max_by(|p, q| s[*p].total_cmp(&s[*q])).unwrap();
            three.push(best as u32);
            x[i] = x0;
            x[n + i] = x1;
            x[2 * n + i] = x2;
        }
        (x, binary, three)
    }

    /// The same coefficients as scikit-learn 1.9's
    /// `LogisticRegression(C=1.0, tol=1e-12).fit(X, y)` on the same rows
    /// (binary and multinomial), with `l2 = 1 / (2·C·n)`.
    #[test]
    fn fit_matches_scikit_learn() {
        let (x, binary, three) = sines();
        let t = Tensor::from_vec(x, (3, 300), &Device::Cpu).unwrap();
        let settings = Settings {
            gtol: 1e-10,
            ..Settings::scikit_learn(1000)
        };
        let l2 = 1.0 / (2.0 * 300.0);
        let expected_binary = [
            2.2202950141597078,
            -4.200611345004271,
            1.209959484924079,
            -0.2334999594881482,
        ];
        let fitted = fit_with(&t, &binary, 2, l2, &settings, 2, no_progress()).unwrap();
        for (ours, theirs) in fitted.minimum.x.iter().zip(expected_binary) {
            assert!((ours - theirs).abs() < 1e-5, "{:?}", fitted.minimum);
        }
        let expected_three = [
            2.5553212898807076,
            -0.2850643867862632,
            -1.008430634685805,
            -2.5564848310693526,
            2.2571228878766254,
            -0.7690539280591548,
            0.0011635411886455347,
            -1.9720585010903622,
            1.7774845627449596,
            -0.32048479086211307,
            -0.11717255240988754,
            0.4376573432720016,
        ];
        let fitted = fit_with(&t, &three, 3, l2, &settings, 2, no_progress()).unwrap();
        for (ours, theirs) in fitted.minimum.x.iter().zip(expected_three) {
            assert!((ours - theirs).abs() < 1e-5, "{:?}", fitted.minimum);
        }
        // scikit-learn's default tolerance stops close to the same point.
        let fitted = fit(&t, &three, 3, l2, 100, no_progress()).unwrap();
        assert_eq!(fitted.minimum.stop, lbfgs::Stop::Gradient);
        for (ours, theirs) in fitted.minimum.x.iter().zip(expected_three) {
            assert!((ours - theirs).abs() < 1e-2, "{:?}", fitted.minimum);
        }
    }

    #[test]
    fn binary_fit_is_accurate_and_reports_progress() {
        let (x, labels) = synthetic(4000, 8, 2, 0.3, 11);
        let t = Tensor::from_vec(x.clone(), (8, 4000), &Device::Cpu).unwrap();
        let seen = Mutex::new(Vec::new());
        let fitted = fit(&t, &labels, 2, 0.0, 100, &|done, total| {
            seen.lock().unwrap().push((done, total))
        })
        .unwrap();
        assert_eq!(
            fitted.minimum.stop,
            lbfgs::Stop::Gradient,
            "{:?}",
            fitted.minimum
        );
        assert!(fitted.minimum.gradient_max <= 1e-4);
        // The boundary is linear and the noise small against the signal.
        let acc = accuracy(&fitted, &x, &labels, 8, 2);
        assert!(acc > 0.93, "accuracy {acc}");
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), fitted.minimum.iterations);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, s)| *s == (i as u64 + 1, 100))
        );
        assert_eq!(fitted.tensors[&weight_name(0)].dims(), &[1, 8]);
        assert_eq!(fitted.tensors[&bias_name(0)].dims(), &[1, 1]);
    }

    #[test]
    fn multiclass_fit_is_accurate() {
        let (x, labels) = synthetic(6000, 5, 3, 0.2, 12);
        let t = Tensor::from_vec(x.clone(), (5, 6000), &Device::Cpu).unwrap();
        let fitted = fit(&t, &labels, 3, 0.0, 100, no_progress()).unwrap();
        assert_eq!(
            fitted.minimum.stop,
            lbfgs::Stop::Gradient,
            "{:?}",
            fitted.minimum
        );
        let acc = accuracy(&fitted, &x, &labels, 5, 3);
        assert!(acc > 0.9, "accuracy {acc}");
        assert_eq!(fitted.tensors[&weight_name(0)].dims(), &[3, 5]);
        assert_eq!(fitted.tensors[&bias_name(0)].dims(), &[3, 1]);
    }

    /// Separable rows without a penalty: the loss has no minimum (the
    /// weights grow without end), yet the fit ends within `max_iter` with
    /// finite weights that separate the rows.
    #[test]
    fn separable_rows_end_with_finite_weights() {
        let (x, labels) = synthetic(2000, 4, 2, 0.0, 13);
        let t = Tensor::from_vec(x.clone(), (4, 2000), &Device::Cpu).unwrap();
        for max_iter in [5, 100] {
            let fitted = fit(&t, &labels, 2, 0.0, max_iter, no_progress()).unwrap();
            assert!(
                fitted.minimum.iterations <= max_iter,
                "{:?}",
                fitted.minimum
            );
            assert!(fitted.minimum.x.iter().all(|v| v.is_finite()));
            let acc = accuracy(&fitted, &x, &labels, 4, 2);
            let floor = if max_iter == 5 { 0.9 } else { 0.99 };
            assert!(acc > floor, "{max_iter}: {acc} {:?}", fitted.minimum);
        }
    }

    #[test]
    fn l2_shrinks_the_weights_not_the_bias() {
        let (x, labels) = synthetic(3000, 6, 2, 1.0, 14);
        let t = Tensor::from_vec(x, (6, 3000), &Device::Cpu).unwrap();
        let norm = |l2: f64| {
            let fitted = fit(&t, &labels, 2, l2, 100, no_progress()).unwrap();
            fitted.minimum.x[..6]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
        };
        let (free, some, much) = (norm(0.0), norm(0.01), norm(1.0));
        assert!(free > some && some > much, "{free} {some} {much}");
        assert!(much < 0.5, "{much}");
        // With a huge penalty the weights vanish and the bias alone fits
        // the class balance: σ(b) = share of positives.
        let fitted = fit(&t, &labels, 2, 1e6, 100, no_progress()).unwrap();
        let share = labels.iter().filter(|l| **l == 1).count() as f64 / labels.len() as f64;
        let b = fitted.minimum.x[6];
        assert!(
            (1.0 / (1.0 + (-b).exp()) - share).abs() < 1e-3,
            "{b} vs {share}"
        );
    }

    /// The AVX2 build of a shard's pass gives the portable one's bits.
    #[test]
    fn shard_pass_is_the_same_with_and_without_avx2() {
        for classes in [2, 3] {
            let (x, labels) = synthetic(1000, 11, classes, 1.0, 17);
            let o = objective(&labels, 11, classes, 0.0);
            let theta = parameters(o.parameters(), 5);
            let chunks = 1000usize.div_ceil(o.chunk);
            let mut scratch = vec![0.0; (o.logits + 2) * o.chunk];
            let portable = o.shard_portable(&x, &theta, 0..chunks, &mut scratch);
            let dispatched = o.shard(&x, &theta, 0..chunks, &mut scratch);
            assert_eq!(portable.0.to_bits(), dispatched.0.to_bits());
            assert_eq!(
                portable.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                dispatched.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    /// The same rows give the same weights, bit for bit, whatever the
    /// thread count.
    #[test]
    fn fit_is_deterministic() {
        let (x, labels) = synthetic(20_000, 9, 3, 1.0, 15);
        let t = Tensor::from_vec(x, (9, 20_000), &Device::Cpu).unwrap();
        let settings = Settings::scikit_learn(100);
        let bytes = |threads: usize| -> Vec<u32> {
            let fitted = fit_with(&t, &labels, 3, 0.0, &settings, threads, no_progress()).unwrap();
            let w = fitted.tensors[&weight_name(0)].flatten_all().unwrap();
            let b = fitted.tensors[&bias_name(0)].flatten_all().unwrap();
            let mut bits: Vec<u32> = w
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            bits.extend(b.to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()));
            bits
        };
        let first = bytes(2);
        assert_eq!(first, bytes(2));
        assert_eq!(first, bytes(1));
        assert_eq!(first, bytes(3));
    }

    /// Timings of one evaluation of the objective on 800 000 × 32 rows,
    /// the plain CPU pass against the candle pass, and of a whole fit (run
    /// in an optimised build: `--ignored --nocapture`).
    #[test]
    #[ignore = "a timing, for optimised builds"]
    fn objective_timings() {
        let (rows, width) = (800_000, 32);
        let (x, labels) = synthetic(rows, width, 2, 1.0, 16);
        let t = Tensor::from_vec(x.clone(), (width, rows), &Device::Cpu).unwrap();
        for classes in [2, 4] {
            let labels: Vec<u32> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if classes == 2 {
                        *l
                    } else {
                        (i % classes) as u32
                    }
                })
                .collect();
            let mut o = objective(&labels, width, classes, 0.0);
            o.chunk = cpu_chunk(width);
            o.threads = candle_core::utils::get_num_threads();
            let theta = parameters(o.parameters(), 1);
            let mut grad = vec![0.0; theta.len()];
            // The fastest of 7: the least disturbed by other work.
            let time = |f: &mut dyn FnMut()| {
                (0..7)
                    .map(|_| {
                        let started = std::time::Instant::now();
                        f();
                        started.elapsed().as_secs_f64()
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let cpu = time(&mut || {
                o.cpu(&x, &theta, &mut grad);
            });
            let threads = o.threads;
            o.threads = 1;
            let one = time(&mut || {
                o.cpu(&x, &theta, &mut grad);
            });
            o.threads = threads;
            let tensor = time(&mut || {
                o.tensor(&t, &theta, &mut grad).unwrap();
            });
            println!(
                "{classes} classes, {rows} × {width}: plain {:.1} ms ({} threads), {:.1} ms (1 thread); \
                 candle {:.1} ms",
                cpu * 1e3,
                o.threads,
                one * 1e3,
                tensor * 1e3
            );
        }
        let started = std::time::Instant::now();
        let fitted = fit(&t, &labels, 2, 0.0, 100, no_progress()).unwrap();
        println!(
            "fit: {:.3} s, {} iterations, {} evaluations, {:?}",
            started.elapsed().as_secs_f64(),
            fitted.minimum.iterations,
            fitted.minimum.evaluations,
            fitted.minimum.stop
        );
    }

    #[test]
    fn labels_are_checked() {
        let t = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let e = fit(&t, &[0, 1], 2, 0.0, 10, no_progress()).unwrap_err();
        assert!(e.to_string().contains("2 labels for 3 rows"), "{e}");
        let e = fit(&t, &[0, 1, 2], 2, 0.0, 10, no_progress()).unwrap_err();
        assert!(e.to_string().contains("class indexes below 2"), "{e}");
    }
}
