//! Model metrics, as scikit-learn defines them: accuracy, precision,
//! recall, F1 (binary: of the positive class, the second sorted label;
//! multiclass: macro averages), ROC AUC (binary; multiclass: macro
//! one-vs-rest) and log loss for classifiers; RMSE, MAE and R² for
//! regressors; inertia (the sum of squared distances to the nearest
//! centroid, in the standardised space) for k-means.

use std::collections::BTreeMap;

/// Metric name → value, in name order.
pub type Metrics = BTreeMap<String, f64>;

/// Regression metrics.
pub fn regression(truth: &[f64], predicted: &[f64]) -> Metrics {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut tss) = (0.0, 0.0, 0.0);
    for (t, p) in truth.iter().zip(predicted) {
        se += (t - p).powi(2);
        ae += (t - p).abs();
        tss += (t - mean).powi(2);
    }
    let r2 = if tss > 0.0 {
        1.0 - se / tss
    } else if se == 0.0 {
        1.0
    } else {
        0.0
    };
    Metrics::from([
        ("rmse".into(), (se / n).sqrt()),
        ("mae".into(), ae / n),
        ("r2".into(), r2),
    ])
}

/// Classification metrics from true class indexes and each row's class
/// probabilities (`probabilities[row * classes + class]`).
pub fn classification(truth: &[u32], probabilities: &[f64], classes: usize) -> Metrics {
    let n = truth.len();
    let predicted: Vec<u32> = probabilities
        .chunks_exact(classes)
        .map(|p| {
            p.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, v)| {
                    if *v > best.1 { (i, *v) } else { best }
                })
                .0 as u32
        })
        .collect();
    let correct = truth.iter().zip(&predicted).filter(|(t, p)| t == p).count();
    let mut log_loss = 0.0;
    for (row, t) in truth.iter().enumerate() {
        let p = probabilities[row * classes + *t as usize].clamp(1e-15, 1.0 - 1e-15);
        log_loss -= p.ln();
    }
    let per_class = |c: u32| {
        let tp = truth
            .iter()
            .zip(&predicted)
            .filter(|(t, p)| **t == c && **p == c)
            .count() as f64;
        let predicted_c = predicted.iter().filter(|p| **p == c).count() as f64;
        let actual_c = truth.iter().filter(|t| **t == c).count() as f64;
        let precision = if predicted_c > 0.0 {
            tp / predicted_c
        } else {
            0.0
        };
        let recall = if actual_c > 0.0 { tp / actual_c } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let scores: Vec<f64> = (0..n)
            .map(|row| probabilities[row * classes + c as usize])
            .collect();
        let positives: Vec<bool> = truth.iter().map(|t| *t == c).collect();
        (precision, recall, f1, roc_auc(&scores, &positives))
    };
    let (precision, recall, f1, auc) = if classes == 2 {
        per_class(1)
    } else {
        let all: Vec<_> = (0..classes as u32).map(per_class).collect();
        let mean =
            |f: fn(&(f64, f64, f64, f64)) -> f64| all.iter().map(f).sum::<f64>() / classes as f64;
        (mean(|m| m.0), mean(|m| m.1), mean(|m| m.2), mean(|m| m.3))
    };
    Metrics::from([
        ("accuracy".into(), correct as f64 / n.max(1) as f64),
        ("precision".into(), precision),
        ("recall".into(), recall),
        ("f1".into(), f1),
        ("auc".into(), auc),
        ("log_loss".into(), log_loss / n.max(1) as f64),
    ])
}

/// Area under the ROC curve: the Mann–Whitney statistic with tied scores
/// counted half. NaN when one class is absent.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Average rank of the tie group (1-based).
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            if positive[*k] {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    let p = positive.iter().filter(|x| **x).count() as f64;
    let q = positive.len() as f64 - p;
    if p == 0.0 || q == 0.0 {
        return f64::NAN;
    }
    (rank_sum - p * (p + 1.0) / 2.0) / (p * q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_metrics() {
        let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        assert!((m["mae"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((m["rmse"] - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m["r2"] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn classification_metrics_match_sklearn() {
        // sklearn: accuracy 0.75, precision 1.0, recall 0.5, f1 2/3,
        // roc_auc 0.75, log_loss 0.4722879538.
        let truth = [0, 0, 1, 1];
        let p1 = [0.1, 0.4, 0.35, 0.8];
        let probabilities: Vec<f64> = p1.iter().flat_map(|p| [1.0 - p, *p]).collect();
        let m = classification(&truth, &probabilities, 2);
        assert_eq!(m["accuracy"], 0.75);
        assert_eq!(m["precision"], 1.0);
        assert_eq!(m["recall"], 0.5);
        assert!((m["f1"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m["auc"] - 0.75).abs() < 1e-12);
        assert!(
            (m["log_loss"] - 0.472_287_953_8).abs() < 1e-9,
            "{}",
            m["log_loss"]
        );
        // Ties count half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
    }
}
