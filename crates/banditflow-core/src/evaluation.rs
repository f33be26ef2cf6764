//! Off-policy estimators: what a candidate policy's expected reward would have been on logged
//! traffic, from each logged row's reward, the probability the logging policy gave the served
//! arm (its propensity), and the probabilities the candidate gives every arm.
//!
//! The definitions are the standard ones (as Open Bandit Pipeline's `ope/estimators.py`
//! states them), with `w_i = π_e(a_i) / π_b(a_i)`:
//! - IPS: `(1/n) Σ w_i r_i`;
//! - self-normalised IPS: `Σ w_i r_i / Σ w_i`;
//! - doubly robust: `(1/n) Σ [Σ_a π_e(a) q(a) + w_i (r_i − q(a_i))]`, with the reward model
//!   `q` given per row and arm (banditflow uses each arm's windowed mean).
//!
//! Intervals are normal approximations: the estimate ± 1.96 standard errors, the standard
//! error being the sample standard deviation of the per-row terms over √n (for SNIPS, of its
//! linearisation `w_i (r_i − V) / mean(w)`, the delta method).

/// One logged row as the estimators see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoggedRow<'a> {
    /// The reward observed (0 or 1 for a conversion).
    pub reward: f64,
    /// The index of the served arm in `candidate` and `model`.
    pub arm: usize,
    /// The probability the logging policy gave the served arm; rows with 0 (or none) cannot
    /// be weighted and are left out by the caller, and counted.
    pub propensity: f64,
    /// The candidate's probability of each arm for this row.
    pub candidate: &'a [f64],
    /// The reward model's prediction for each arm for this row.
    pub model: &'a [f64],
}

/// An estimate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The point estimate.
    pub estimate: f64,
    /// `[low, high]`: the estimate ± 1.96 standard errors.
    pub ci95: [f64; 2],
}

/// Every estimator's answer for one set of rows.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimates {
    /// Rows used.
    pub rows: u64,
    /// Inverse propensity scoring.
    pub ips: Estimate,
    /// Self-normalised IPS.
    pub snips: Estimate,
    /// Doubly robust.
    pub dr: Estimate,
    /// Effective sample size, `(Σw)² / Σw²` (0 when every weight is 0).
    pub ess: f64,
    /// Share of rows whose weight is above the clip threshold.
    pub above_clip: f64,
    /// The mean observed reward (the logged policy's).
    pub logged_reward: f64,
    /// The same with its interval (the normal approximation of a mean).
    pub logged: Estimate,
}

/// The 97.5% quantile of the standard normal distribution.
const Z_975: f64 = 1.959_963_984_540_054;

/// The mean and the standard error of the mean of `terms` (0 for fewer than two).
fn mean_and_error(terms: &[f64]) -> (f64, f64) {
    let n = terms.len() as f64;
    if terms.is_empty() {
        return (0.0, 0.0);
    }
    let mean = terms.iter().sum::<f64>() / n;
    if terms.len() < 2 {
        return (mean, 0.0);
    }
    let variance = terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

fn interval(estimate: f64, error: f64) -> Estimate {
    Estimate { estimate, ci95: [estimate - Z_975 * error, estimate + Z_975 * error] }
}

/// The estimates over `rows` (each with a positive propensity), counting weights above
/// `clip` in `above_clip`. `None` without rows.
#[must_use]
pub fn estimate(rows: &[LoggedRow<'_>], clip: f64) -> Option<Estimates> {
    if rows.is_empty() {
        return None;
    }
    let n = rows.len() as f64;
    let weights: Vec<f64> = rows.iter().map(|r| r.candidate.get(r.arm).copied().unwrap_or(0.0) / r.propensity).collect();
    let ips_terms: Vec<f64> = rows.iter().zip(&weights).map(|(r, w)| w * r.reward).collect();
    let (ips, ips_error) = mean_and_error(&ips_terms);
    let weight_sum: f64 = weights.iter().sum();
    let squares: f64 = weights.iter().map(|w| w * w).sum();
    let mean_weight = weight_sum / n;
    let snips = if weight_sum > 0.0 { ips_terms.iter().sum::<f64>() / weight_sum } else { 0.0 };
    let snips_error = if mean_weight > 0.0 {
        let linear: Vec<f64> = rows.iter().zip(&weights).map(|(r, w)| w * (r.reward - snips) / mean_weight).collect();
        mean_and_error(&linear).1
    } else {
        0.0
    };
    let dr_terms: Vec<f64> = rows
        .iter()
        .zip(&weights)
        .map(|(r, w)| {
            let direct: f64 = r.candidate.iter().zip(r.model).map(|(p, q)| p * q).sum();
            direct + w * (r.reward - r.model.get(r.arm).copied().unwrap_or(0.0))
        })
        .collect();
    let (dr, dr_error) = mean_and_error(&dr_terms);
    Some(Estimates {
        rows: rows.len() as u64,
        ips: interval(ips, ips_error),
        snips: interval(snips, snips_error),
        dr: interval(dr, dr_error),
        ess: if squares > 0.0 { weight_sum * weight_sum / squares } else { 0.0 },
        above_clip: weights.iter().filter(|w| **w > clip).count() as f64 / n,
        logged_reward: rows.iter().map(|r| r.reward).sum::<f64>() / n,
        logged: {
            let rewards: Vec<f64> = rows.iter().map(|r| r.reward).collect();
            let (mean, error) = mean_and_error(&rewards);
            interval(mean, error)
        },
    })
}

/// The windows `[start, end)` of a running evaluation over rows whose `ts` lie in
/// `[first, last]`: without `window_ms` one window holding every row; with it, windows of
/// that length ending `step_ms` apart, the first ending `window_ms` after `first`, the last
/// the first to end after `last`. A window at least as long as the range is the one window
/// of every row.
#[must_use]
pub fn windows(first: i64, last: i64, window_ms: Option<u64>, step_ms: u64) -> Vec<(i64, i64)> {
    let Some(window) = window_ms.map(|w| w.clamp(1, i64::MAX as u64 / 4) as i64) else {
        return vec![(first, last.saturating_add(1))];
    };
    let step = step_ms.clamp(1, i64::MAX as u64 / 4) as i64;
    let mut out = Vec::new();
    let mut end = first.saturating_add(window);
    loop {
        out.push((end - window, end));
        if end > last {
            return out;
        }
        end = end.saturating_add(step);
    }
}

/// The reward model doubly robust uses: each arm's mean reward over `rows` (served arm,
/// reward), an arm without rows getting the mean of all of them (0 without rows).
#[must_use]
pub fn arm_means(rows: impl IntoIterator<Item = (usize, f64)>, arms: usize) -> Vec<f64> {
    let mut sums = vec![(0.0f64, 0u64); arms];
    let (mut total, mut count) = (0.0, 0u64);
    for (arm, reward) in rows {
        if let Some(s) = sums.get_mut(arm) {
            s.0 += reward;
            s.1 += 1;
        }
        total += reward;
        count += 1;
    }
    let overall = if count > 0 { total / count as f64 } else { 0.0 };
    sums.into_iter().map(|(sum, n)| if n > 0 { sum / n as f64 } else { overall }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(reward: f64, arm: usize, propensity: f64, candidate: &'a [f64], model: &'a [f64]) -> LoggedRow<'a> {
        LoggedRow { reward, arm, propensity, candidate, model }
    }

    #[test]
    fn the_logging_policy_evaluated_on_its_own_logs_gives_its_observed_reward() {
        // A candidate identical to the logging policy: every weight is 1.
        let rows: Vec<LoggedRow> = (0..100).map(|i| row(f64::from(i % 3 == 0), i % 2, 0.5, &[0.5, 0.5], &[0.3, 0.4])).collect();
        let e = estimate(&rows, 10.0).expect("rows");
        assert!((e.ips.estimate - e.logged_reward).abs() < 1e-12);
        assert!((e.snips.estimate - e.logged_reward).abs() < 1e-12);
        assert!((e.ess - 100.0).abs() < 1e-9, "{}", e.ess);
        assert_eq!(e.above_clip, 0.0);
        assert!(e.ips.ci95[0] < e.ips.estimate && e.ips.estimate < e.ips.ci95[1]);
    }

    #[test]
    fn hand_computed_values_on_three_rows() {
        let rows = vec![
            row(1.0, 0, 0.5, &[0.8, 0.2], &[0.6, 0.2]),
            row(0.0, 1, 0.5, &[0.8, 0.2], &[0.6, 0.2]),
            row(1.0, 1, 0.25, &[0.0, 1.0], &[0.5, 0.5]),
        ];
        let e = estimate(&rows, 3.0).expect("rows");
        // weights 1.6, 0.4, 4.0; rewards 1, 0, 1.
        assert!((e.ips.estimate - (1.6 + 4.0) / 3.0).abs() < 1e-12);
        assert!((e.snips.estimate - 5.6 / 6.0).abs() < 1e-12);
        // DR terms: 0.52 + 1.6·0.4; 0.52 + 0.4·(−0.2); 0.5 + 4·0.5.
        let dr = (0.52 + 0.64 + 0.52 - 0.08 + 0.5 + 2.0) / 3.0;
        assert!((e.dr.estimate - dr).abs() < 1e-12, "{}", e.dr.estimate);
        assert!((e.ess - 36.0 / (2.56 + 0.16 + 16.0)).abs() < 1e-12);
        assert!((e.above_clip - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_candidate_that_never_picks_the_served_arms_weighs_nothing_and_divides_by_nothing() {
        let rows: Vec<LoggedRow> = (0..10).map(|_| row(1.0, 0, 0.5, &[0.0, 1.0], &[0.5, 0.5])).collect();
        let e = estimate(&rows, 10.0).expect("rows");
        assert_eq!((e.ips.estimate, e.snips.estimate, e.ess), (0.0, 0.0, 0.0));
        assert!(e.dr.estimate.is_finite());
        assert_eq!(estimate(&[], 10.0), None);
    }

    #[test]
    fn windows_step_through_the_range_and_a_long_one_holds_it_all() {
        assert_eq!(windows(0, 99, None, 10), vec![(0, 100)]);
        assert_eq!(windows(0, 99, Some(100), 10), vec![(0, 100)]);
        assert_eq!(windows(0, 99, Some(1000), 10), vec![(0, 1000)]);
        assert_eq!(windows(0, 99, Some(50), 25), vec![(0, 50), (25, 75), (50, 100)]);
        assert_eq!(windows(0, 100, Some(50), 25), vec![(0, 50), (25, 75), (50, 100), (75, 125)]);
    }

    #[test]
    fn the_reward_model_is_each_arms_mean() {
        assert_eq!(arm_means([(0, 1.0), (0, 0.0), (1, 1.0)], 3), vec![0.5, 1.0, 2.0 / 3.0]);
        assert_eq!(arm_means([], 2), vec![0.0, 0.0]);
    }
}
