//! Limited-memory BFGS for smooth unconstrained minimisation, as
//! scikit-learn's `lbfgs` solver runs it through SciPy's L-BFGS-B (without
//! bounds): the two-loop recursion over the last `memory` pairs of steps
//! and gradient changes, and the Moré–Thuente line search (MINPACK-2's
//! `dcsrch`/`dcstep`, the one L-BFGS-B calls) for a step satisfying the
//! strong Wolfe conditions, with the same constants (`c1 = 1e-3`,
//! `c2 = 0.9`, `xtol = 0.1`; the first step `1/‖d‖`, later ones 1).
//!
//! It stops when the largest gradient component is at most `gtol`
//! (SciPy's `pgtol`, scikit-learn's `tol`), when the objective's relative
//! decrease is at most `ftol`, after `max_iter` iterations, or when no
//! step along steepest descent decreases the objective. Everything is
//! sequential arithmetic in a fixed order: the same objective gives the
//! same iterates, bit for bit.

use std::collections::VecDeque;

/// What [`minimize`] runs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// Correction pairs kept (L-BFGS's `m`).
    pub(crate) memory: usize,
    /// Iterations at most.
    pub(crate) max_iter: usize,
    /// Stop when `max |∂f/∂xᵢ| <= gtol`.
    pub(crate) gtol: f64,
    /// Stop when `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`.
    pub(crate) ftol: f64,
    /// Objective evaluations per line search at most.
    pub(crate) max_line_search: usize,
}

impl Settings {
    /// scikit-learn's `LogisticRegression(solver='lbfgs')`: `m = 10`,
    /// `tol = 1e-4`, `ftol = 64·ε`, `maxls = 50`.
    pub(crate) fn scikit_learn(max_iter: usize) -> Self {
        Self {
            memory: 10,
            max_iter,
            gtol: 1e-4,
            ftol: 64.0 * f64::EPSILON,
            max_line_search: 50,
        }
    }
}

/// Why [`minimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The gradient is within `gtol`.
    Gradient,
    /// The objective stopped decreasing (`ftol`).
    Decrease,
    /// `max_iter` iterations ran.
    Iterations,
    /// No step along steepest descent decreased the objective (or it is
    /// not finite at the start).
    LineSearch,
}

/// Where [`minimize`] ended.
#[derive(Debug, Clone)]
#[allow(dead_code, reason = "all but the point are diagnostics, read by tests")]
pub(crate) struct Minimum {
    /// The point.
    pub(crate) x: Vec<f64>,
    /// The objective there.
    pub(crate) f: f64,
    /// `max |∂f/∂xᵢ|` there.
    pub(crate) gradient_max: f64,
    /// Iterations run (accepted steps).
    pub(crate) iterations: usize,
    /// Objective evaluations.
    pub(crate) evaluations: usize,
    /// Why it stopped.
    pub(crate) stop: Stop,
}

/// The largest step a line search tries (L-BFGS-B's `stpmx`).
const MAX_STEP: f64 = 1e10;

/// Minimises `objective` from `x0`. The objective writes the gradient at
/// its first argument into its second and returns the value; its error
/// ends the minimisation. `on_iteration(k)` is called after the `k`-th
/// accepted step.
pub(crate) fn minimize<E>(
    x0: Vec<f64>,
    settings: &Settings,
    mut objective: impl FnMut(&[f64], &mut [f64]) -> Result<f64, E>,
    mut on_iteration: impl FnMut(usize),
) -> Result<Minimum, E> {
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut f = objective(&x, &mut g)?;
    let mut evaluations = 1;
    let mut iterations = 0;
    // (s, y, 1 / sᵀy), oldest first.
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut d = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let finish = |x: Vec<f64>, f: f64, g: &[f64], iterations, evaluations, stop| Minimum {
        x,
        f,
        gradient_max: max_abs(g),
        iterations,
        evaluations,
        stop,
    };
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Ok(finish(x, f, &g, 0, evaluations, Stop::LineSearch));
    }
    loop {
        if max_abs(&g) <= settings.gtol {
            return Ok(finish(x, f, &g, iterations, evaluations, Stop::Gradient));
        }
        if iterations >= settings.max_iter {
            return Ok(finish(x, f, &g, iterations, evaluations, Stop::Iterations));
        }
        direction(&g, &history, &mut d);
        let mut slope = dot(&g, &d);
        if !(slope < 0.0 && slope.is_finite()) {
            // Not a descent direction (rounding in the curvature pairs):
            // start over from steepest descent.
            history.clear();
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
            slope = -dot(&g, &g);
        }
        let first = if history.is_empty() {
            (1.0 / dot(&d, &d).sqrt()).min(MAX_STEP)
        } else {
            1.0
        };
        let searched = line_search(
            &x,
            f,
            slope,
            &d,
            first,
            settings.max_line_search,
            &mut objective,
            &mut x_new,
            &mut g_new,
            &mut evaluations,
        )?;
        let Some(f_new) = searched else {
            if history.is_empty() {
                return Ok(finish(x, f, &g, iterations, evaluations, Stop::LineSearch));
            }
            // L-BFGS-B's recovery: forget the curvature pairs and retry
            // along steepest descent.
            history.clear();
            continue;
        };
        iterations += 1;
        // The new correction pair, skipped when its curvature is not
        // safely positive (as L-BFGS-B does).
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if history.len() == settings.memory.max(1) {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        let f_old = std::mem::replace(&mut f, f_new);
        on_iteration(iterations);
        if (f_old - f) / f_old.abs().max(f.abs()).max(1.0) <= settings.ftol
            && max_abs(&g) > settings.gtol
        {
            return Ok(finish(x, f, &g, iterations, evaluations, Stop::Decrease));
        }
    }
}

/// `d = −H·g` by the two-loop recursion, `H₀ = (sᵀy / yᵀy)·I` from the
/// newest pair (`d = −g` without pairs).
fn direction(g: &[f64], history: &VecDeque<(Vec<f64>, Vec<f64>, f64)>, d: &mut [f64]) {
    d.copy_from_slice(g);
    let mut alphas = vec![0.0; history.len()];
    for (i, (s, y, rho)) in history.iter().enumerate().rev() {
        let a = rho * dot(s, d);
        alphas[i] = a;
        d.iter_mut().zip(y).for_each(|(d, y)| *d -= a * y);
    }
    if let Some((s, y, _)) = history.back() {
        let gamma = dot(s, y) / dot(y, y);
        d.iter_mut().for_each(|d| *d *= gamma);
    }
    for ((s, y, rho), a) in history.iter().zip(&alphas) {
        let b = rho * dot(y, d);
        d.iter_mut().zip(s).for_each(|(d, s)| *d += (a - b) * s);
    }
    d.iter_mut().for_each(|d| *d = -*d);
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Searches `x + stp·d` for a step satisfying the strong Wolfe conditions
/// from `first`; on success the point, its gradient and value are in
/// `x_new`, `g_new` and the result. `None` when the search fails: too
/// many evaluations, or an end without a decrease.
#[allow(clippy::too_many_arguments)]
fn line_search<E>(
    x: &[f64],
    f0: f64,
    slope0: f64,
    d: &[f64],
    first: f64,
    max_evaluations: usize,
    objective: &mut impl FnMut(&[f64], &mut [f64]) -> Result<f64, E>,
    x_new: &mut [f64],
    g_new: &mut [f64],
    evaluations: &mut usize,
) -> Result<Option<f64>, E> {
    let mut search = MoreThuente::start(f0, slope0, first, 0.0, MAX_STEP);
    let mut stp = first;
    let mut tries = 0;
    loop {
        for ((xn, x), d) in x_new.iter_mut().zip(x).zip(d) {
            *xn = x + stp * d;
        }
        let f = objective(x_new, g_new)?;
        *evaluations += 1;
        tries += 1;
        let slope = dot(g_new, d);
        if !f.is_finite() || !slope.is_finite() {
            // Beyond the objective's finite region: back off towards the
            // best step so far (Moré–Thuente needs finite values).
            if tries >= max_evaluations {
                return Ok(None);
            }
            stp = search.back_off(stp);
            continue;
        }
        match search.next(f, slope, stp) {
            Search::Evaluate(next) => {
                if tries >= max_evaluations {
                    return Ok(None);
                }
                stp = next;
            }
            Search::Converged => return Ok(Some(f)),
            // As L-BFGS-B, a warning ends the search at the last point,
            // kept only when it decreased the objective.
            Search::Warning => return Ok((f < f0).then_some(f)),
        }
    }
}

/// What the line search asks for next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Search {
    /// Evaluate at this step.
    Evaluate(f64),
    /// The last step satisfies the strong Wolfe conditions.
    Converged,
    /// The interval of uncertainty is too small, or the step is at a
    /// bound: stop at the last step.
    Warning,
}

/// The Moré–Thuente line search (MINPACK-2's `dcsrch`), driven by
/// reverse communication: [`MoreThuente::next`] takes the value and
/// slope at the step it asked for.
#[derive(Debug, Clone)]
struct MoreThuente {
    gtol: f64,
    xtol: f64,
    stpmin: f64,
    stpmax: f64,
    finit: f64,
    ginit: f64,
    gtest: f64,
    bracketed: bool,
    stage: u8,
    width: f64,
    width1: f64,
    stx: f64,
    fx: f64,
    gx: f64,
    sty: f64,
    fy: f64,
    gy: f64,
    stmin: f64,
    stmax: f64,
}

impl MoreThuente {
    /// L-BFGS-B's constants: sufficient decrease `1e-3`, curvature `0.9`,
    /// relative interval width `0.1`.
    fn start(f: f64, slope: f64, stp: f64, stpmin: f64, stpmax: f64) -> Self {
        let (ftol, gtol, xtol) = (1e-3, 0.9, 0.1);
        let width = stpmax - stpmin;
        Self {
            gtol,
            xtol,
            stpmin,
            stpmax,
            finit: f,
            ginit: slope,
            gtest: ftol * slope,
            bracketed: false,
            stage: 1,
            width,
            width1: width / 0.5,
            stx: 0.0,
            fx: f,
            gx: slope,
            sty: 0.0,
            fy: f,
            gy: slope,
            stmin: 0.0,
            stmax: stp + 4.0 * stp,
        }
    }

    /// A step between the best one and `stp`, where the objective was not
    /// finite; steps beyond it are not tried again.
    fn back_off(&mut self, stp: f64) -> f64 {
        if stp > self.stx {
            self.stpmax = self.stpmax.min(self.stx + 0.75 * (stp - self.stx));
        }
        self.stx + 0.5 * (stp - self.stx)
    }

    /// Whether the bracket leaves no room: `stp` at or outside it
    /// (rounding), or the bracket within `xtol` of its size.
    fn cornered(&self, stp: f64) -> bool {
        self.bracketed
            && (stp <= self.stmin
                || stp >= self.stmax
                || self.stmax - self.stmin <= self.xtol * self.stmax)
    }

    fn next(&mut self, f: f64, g: f64, mut stp: f64) -> Search {
        let ftest = self.finit + stp * self.gtest;
        if self.stage == 1 && f <= ftest && g >= 0.0 {
            self.stage = 2;
        }
        if f <= ftest && g.abs() <= self.gtol * -self.ginit {
            return Search::Converged;
        }
        if self.cornered(stp)
            || (stp == self.stpmax && f <= ftest && g <= self.gtest)
            || (stp == self.stpmin && (f > ftest || g >= self.gtest))
        {
            return Search::Warning;
        }
        // In the first stage, a modified function (f − stp·gtest) is used
        // while it has a higher value than the sufficient decrease line.
        if self.stage == 1 && f <= self.fx && f > ftest {
            let gtest = self.gtest;
            let mut fxm = self.fx - self.stx * gtest;
            let mut fym = self.fy - self.sty * gtest;
            let mut gxm = self.gx - gtest;
            let mut gym = self.gy - gtest;
            let fm = f - stp * gtest;
            let gm = g - gtest;
            step(
                &mut self.stx,
                &mut fxm,
                &mut gxm,
                &mut self.sty,
                &mut fym,
                &mut gym,
                &mut stp,
                fm,
                gm,
                &mut self.bracketed,
                self.stmin,
                self.stmax,
            );
            self.fx = fxm + self.stx * gtest;
            self.fy = fym + self.sty * gtest;
            self.gx = gxm + gtest;
            self.gy = gym + gtest;
        } else {
            step(
                &mut self.stx,
                &mut self.fx,
                &mut self.gx,
                &mut self.sty,
                &mut self.fy,
                &mut self.gy,
                &mut stp,
                f,
                g,
                &mut self.bracketed,
                self.stmin,
                self.stmax,
            );
        }
        // Bisect when the interval does not shrink enough.
        if self.bracketed {
            if (self.sty - self.stx).abs() >= 0.66 * self.width1 {
                stp = self.stx + 0.5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
        }
        if self.bracketed {
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = stp + 1.1 * (stp - self.stx);
            self.stmax = stp + 4.0 * (stp - self.stx);
        }
        stp = stp.max(self.stpmin).min(self.stpmax);
        // Without further progress possible, the best step so far.
        if self.cornered(stp) {
            stp = self.stx;
        }
        Search::Evaluate(stp)
    }
}

/// MINPACK-2's `dcstep`: a safeguarded cubic or quadratic step and the
/// update of the interval `[stx, sty]` that contains a step satisfying
/// the conditions.
#[allow(clippy::too_many_arguments)]
fn step(
    stx: &mut f64,
    fx: &mut f64,
    dx: &mut f64,
    sty: &mut f64,
    fy: &mut f64,
    dy: &mut f64,
    stp: &mut f64,
    fp: f64,
    dp: f64,
    bracketed: &mut bool,
    stpmin: f64,
    stpmax: f64,
) {
    let sgnd = dp * (*dx / dx.abs());
    let stpf;
    if fp > *fx {
        // A higher value: the minimum is bracketed; the cubic step if it
        // is closer to stx than the quadratic one, else their average.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp < *stx {
            gamma = -gamma;
        }
        let p = (gamma - *dx) + theta;
        let q = ((gamma - *dx) + gamma) + dp;
        let r = p / q;
        let stpc = *stx + r * (*stp - *stx);
        let stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = if (stpc - *stx).abs() < (stpq - *stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        };
        *bracketed = true;
    } else if sgnd < 0.0 {
        // Derivatives of opposite sign: bracketed; the step farther from
        // stp of the cubic and the secant.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + *dx;
        let r = p / q;
        let stpc = *stp + r * (*stx - *stp);
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = if (stpc - *stp).abs() > (stpq - *stp).abs() {
            stpc
        } else {
            stpq
        };
        *bracketed = true;
    } else if dp.abs() < dx.abs() {
        // Same sign, the derivative's magnitude decreasing: the cubic
        // step only when it tends to infinity in this direction.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * 0f64.max((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = (gamma + (*dx - dp)) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            *stp + r * (*stx - *stp)
        } else if *stp > *stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if *bracketed {
            let mut f = if (stpc - *stp).abs() < (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            f = if *stp > *stx {
                f.min(*stp + 0.66 * (*sty - *stp))
            } else {
                f.max(*stp + 0.66 * (*sty - *stp))
            };
            stpf = f;
        } else {
            let f = if (stpc - *stp).abs() > (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            stpf = f.min(stpmax).max(stpmin);
        }
    } else {
        // Same sign, the derivative not decreasing: the cubic step with
        // the other end, or a bound.
        stpf = if *bracketed {
            let theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            let s = theta.abs().max(dy.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (*dy / s) * (dp / s)).sqrt();
            if *stp > *sty {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + *dy;
            let r = p / q;
            *stp + r * (*sty - *stp)
        } else if *stp > *stx {
            stpmax
        } else {
            stpmin
        };
    }
    // The interval that contains a minimiser.
    if fp > *fx {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if sgnd < 0.0 {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x0: Vec<f64>, settings: &Settings, f: impl Fn(&[f64], &mut [f64]) -> f64) -> Minimum {
        minimize::<()>(x0, settings, |x, g| Ok(f(x, g)), |_| {}).unwrap()
    }

    /// `½ xᵀAx − bᵀx` with an ill-conditioned, coupled `A`: its minimum
    /// solves `Ax = b`.
    #[test]
    fn lbfgs_minimises_a_quadratic() {
        let n = 20;
        let a = |i: usize, j: usize| -> f64 {
            if i == j {
                1.0 + 100.0 * i as f64
            } else if i.abs_diff(j) == 1 {
                0.5
            } else {
                0.0
            }
        };
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let settings = Settings {
            gtol: 1e-7,
            ftol: 0.0,
            ..Settings::scikit_learn(500)
        };
        let m = run(vec![0.0; n], &settings, |x, g| {
            let mut f = 0.0;
            for i in 0..n {
                let ax: f64 = (0..n).map(|j| a(i, j) * x[j]).sum();
                g[i] = ax - b[i];
                f += 0.5 * x[i] * ax - b[i] * x[i];
            }
            f
        });
        assert_eq!(m.stop, Stop::Gradient, "{m:?}");
        for (i, b) in b.iter().enumerate() {
            let ax: f64 = (0..n).map(|j| a(i, j) * m.x[j]).sum();
            assert!((ax - b).abs() <= 1e-7, "row {i}: {ax} vs {b}");
        }
        assert!(m.iterations < 100, "{m:?}");
    }

    /// The Rosenbrock function in 2 and 10 dimensions, from the classic
    /// start: its minimum is all ones.
    #[test]
    fn lbfgs_minimises_rosenbrock() {
        for n in [2, 10] {
            let mut x0 = vec![1.0; n];
            for i in (0..n).step_by(2) {
                x0[i] = -1.2;
            }
            let settings = Settings {
                gtol: 1e-8,
                ftol: 0.0,
                ..Settings::scikit_learn(1000)
            };
            let m = run(x0, &settings, |x, g| {
                g.iter_mut().for_each(|g| *g = 0.0);
                let mut f = 0.0;
                for i in 0..n - 1 {
                    let t = x[i + 1] - x[i] * x[i];
                    let u = 1.0 - x[i];
                    f += 100.0 * t * t + u * u;
                    g[i] += -400.0 * t * x[i] - 2.0 * u;
                    g[i + 1] += 200.0 * t;
                }
                f
            });
            assert_eq!(m.stop, Stop::Gradient, "n = {n}: {m:?}");
            assert!(
                m.x.iter().all(|v| (v - 1.0).abs() < 1e-6),
                "n = {n}: {:?}",
                m.x
            );
            assert!(m.iterations < 200, "n = {n}: {m:?}");
        }
    }

    /// Every step the search accepts satisfies both strong Wolfe
    /// conditions with L-BFGS-B's constants.
    #[test]
    fn line_search_satisfies_strong_wolfe() {
        // φ(α) = −α / (α² + β) (Moré and Thuente's first test) from
        // several first steps, and a convex quartic.
        type Phi = fn(f64) -> (f64, f64);
        let cases: [Phi; 2] = [
            |a| (-a / (a * a + 2.0), (a * a - 2.0) / (a * a + 2.0).powi(2)),
            |a| ((a - 3.0).powi(4) + a, 4.0 * (a - 3.0).powi(3) + 1.0),
        ];
        for (c, phi) in cases.iter().enumerate() {
            for first in [1e-3, 1e-1, 1.0, 10.0, 1000.0] {
                let (f0, g0) = phi(0.0);
                let mut search = MoreThuente::start(f0, g0, first, 0.0, MAX_STEP);
                let mut stp = first;
                let mut evaluations = 0;
                let end = loop {
                    let (f, g) = phi(stp);
                    evaluations += 1;
                    match search.next(f, g, stp) {
                        Search::Evaluate(next) => stp = next,
                        other => break other,
                    }
                    assert!(evaluations < 30, "case {c} from {first}");
                };
                assert_eq!(end, Search::Converged, "case {c} from {first}");
                let (f, g) = phi(stp);
                assert!(f <= f0 + 1e-3 * stp * g0, "case {c} from {first}: {stp}");
                assert!(g.abs() <= 0.9 * g0.abs(), "case {c} from {first}: {stp}");
            }
        }
    }

    /// An objective that is infinite beyond a barrier: the search backs
    /// off from it and finds the minimum inside.
    #[test]
    fn lbfgs_backs_off_where_the_objective_is_infinite() {
        // f(x) = −x − 10·ln(4 − x), finite for x < 4, least at x = −6; from
        // far left the quasi-Newton step overshoots the barrier.
        let barrier = |x: &[f64], g: &mut [f64]| {
            if x[0] >= 4.0 {
                g[0] = f64::NAN;
                return f64::INFINITY;
            }
            g[0] = -1.0 + 10.0 / (4.0 - x[0]);
            -x[0] - 10.0 * (4.0 - x[0]).ln()
        };
        for start in [3.9, -20.0, -100.0] {
            let settings = Settings {
                gtol: 1e-8,
                ..Settings::scikit_learn(100)
            };
            let m = run(vec![start], &settings, barrier);
            assert!((m.x[0] + 6.0).abs() < 1e-6, "from {start}: {m:?}");
            assert_eq!(m.stop, Stop::Gradient, "from {start}: {m:?}");
        }
    }

    #[test]
    fn lbfgs_stops_at_max_iter_and_reports_iterations() {
        let seen = std::cell::RefCell::new(Vec::new());
        let settings = Settings {
            gtol: 0.0,
            ftol: 0.0,
            ..Settings::scikit_learn(3)
        };
        let m = minimize::<()>(
            vec![-1.2, 1.0],
            &settings,
            |x, g| {
                let t = x[1] - x[0] * x[0];
                let u = 1.0 - x[0];
                g[0] = -400.0 * t * x[0] - 2.0 * u;
                g[1] = 200.0 * t;
                Ok(100.0 * t * t + u * u)
            },
            |k| seen.borrow_mut().push(k),
        )
        .unwrap();
        assert_eq!(m.stop, Stop::Iterations);
        assert_eq!(m.iterations, 3);
        assert_eq!(*seen.borrow(), vec![1, 2, 3]);
    }
}
