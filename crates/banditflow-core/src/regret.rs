//! Cumulative regret: per step, the true rate of the best live arm minus that of the arm
//! served (its expectation, not the coin flip), summed over steps and sampled at log-spaced
//! steps; and its mean and standard error over repetitions.

/// About `points` steps from 1 to `steps`, spaced evenly on a log scale, each once, `steps`
/// last. The curves are sampled after these many steps.
pub fn sample_steps(steps: u64, points: usize) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(points + 1);
    let top = (steps.max(1) as f64).ln();
    for i in 0..points.max(1) {
        let step = (top * i as f64 / (points.max(2) - 1) as f64).exp().round() as u64;
        let step = step.clamp(1, steps.max(1));
        if out.last() != Some(&step) {
            out.push(step);
        }
    }
    if out.last() != Some(&steps.max(1)) {
        out.push(steps.max(1));
    }
    out
}

/// The cumulative regret of one policy in one repetition, sampled at fixed steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    at: Vec<u64>,
    next: usize,
    steps: u64,
    total: f64,
    /// The cumulative regret after each sampled step.
    pub values: Vec<f64>,
}

impl Curve {
    /// An empty curve sampled after the steps `at` (increasing).
    pub fn new(at: &[u64]) -> Curve {
        Curve { at: at.to_vec(), next: 0, steps: 0, total: 0.0, values: Vec::with_capacity(at.len()) }
    }

    /// Adds one step's regret.
    pub fn add(&mut self, regret: f64) {
        self.total += regret;
        self.steps += 1;
        if self.at.get(self.next) == Some(&self.steps) {
            self.values.push(self.total);
            self.next += 1;
        }
    }

    /// The regret summed over every step so far.
    pub fn total(&self) -> f64 {
        self.total
    }
}

/// Mean and standard error (sample standard deviation / √n; 0 for one repetition) of each
/// sampled point over repetitions, each a curve's `values` of the same length.
pub fn mean_and_se(reps: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
    let len = reps.iter().map(|r| r.len()).min().unwrap_or(0);
    let n = reps.len() as f64;
    let mut mean = Vec::with_capacity(len);
    let mut se = Vec::with_capacity(len);
    for i in 0..len {
        let m = reps.iter().map(|r| r[i]).sum::<f64>() / n;
        let variance = if reps.len() > 1 { reps.iter().map(|r| (r[i] - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        mean.push(m);
        se.push((variance / n).sqrt());
    }
    (mean, se)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_steps_are_log_spaced_distinct_and_end_at_the_last_step() {
        let at = sample_steps(1_000_000, 61);
        assert_eq!((at[0], *at.last().unwrap_or(&0)), (1, 1_000_000));
        assert!(at.windows(2).all(|w| w[0] < w[1]));
        assert!(at.contains(&1_000) && at.contains(&100), "{at:?}");
        assert_eq!(sample_steps(3, 61), vec![1, 2, 3]);
    }

    #[test]
    fn curves_sample_the_running_total_and_reps_summarize() {
        let at = sample_steps(100, 5);
        let mut curve = Curve::new(&at);
        for _ in 0..100 {
            curve.add(0.5);
        }
        assert_eq!(curve.values, at.iter().map(|s| *s as f64 * 0.5).collect::<Vec<_>>());
        let (mean, se) = mean_and_se(&[&[1.0, 2.0], &[3.0, 6.0]]);
        assert_eq!(mean, vec![2.0, 4.0]);
        assert!((se[0] - 1.0).abs() < 1e-12 && (se[1] - 2.0).abs() < 1e-12, "{se:?}");
    }
}
