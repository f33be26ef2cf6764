//! The frequentist and Bayesian summaries a weight record carries besides `p_best`: credible
//! intervals of the posteriors, the comparison of each arm with a control, Pearson's test of
//! the window's success/failure table, and the goodness-of-fit test behind the sample-ratio
//! check. Pure functions of counts; `docs/semantics.md` ("Statistics") says what each means.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};
// libm's erfc (musl's, within an ulp) rather than statrs's, which is ~5e-11 off at 0.5.
use libm::erfc;

pub use crate::posterior::{credible_interval, mean};

/// The standard normal's 97.5% quantile: the half-width of a 95% interval in standard errors.
pub const Z_975: f64 = 1.959_963_984_540_054;

/// A chi-square test's result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChiSquare {
    /// Pearson's statistic, Σ (observed - expected)² / expected.
    pub statistic: f64,
    /// Degrees of freedom (0 when there is nothing to compare).
    pub dof: u32,
    /// Upper tail probability of the statistic under the chi-square distribution with `dof`
    /// degrees of freedom (1 when `dof` is 0).
    pub p_value: f64,
}

impl ChiSquare {
    /// A statistic with its degrees of freedom and upper-tail p-value.
    #[must_use]
    pub fn of(statistic: f64, dof: u32) -> Self {
        ChiSquare { statistic, dof, p_value: chi_square_sf(statistic, dof) }
    }
}

/// An arm against the control: difference of the observed rates with a 95% interval and a
/// p-value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersusControl {
    /// Observed rate of the arm minus that of the control.
    pub diff: f64,
    /// Newcombe's hybrid score interval for the difference (method 10 of Newcombe 1998:
    /// built from the two Wilson score intervals), 95%.
    pub ci95: [f64; 2],
    /// Two-sided p-value of the pooled two-proportion z-test.
    pub p_value: f64,
}

/// Upper tail of the chi-square distribution with `dof` degrees of freedom at `statistic`.
///
/// Every record computes two of these. For the usual few degrees of freedom the tail has a
/// closed form, a short sum (`closed_form_sf`), about a tenth of the cost of the incomplete
/// gamma function; larger cases go to `statrs`.
fn chi_square_sf(statistic: f64, dof: u32) -> f64 {
    if dof == 0 || statistic.is_nan() || statistic <= 0.0 {
        return 1.0;
    }
    if statistic.is_infinite() {
        return 0.0;
    }
    if dof <= CLOSED_FORM_DOF && statistic < 1_400.0 {
        return closed_form_sf(statistic, dof).clamp(0.0, 1.0);
    }
    match ChiSquared::new(f64::from(dof)) {
        Ok(distribution) => distribution.sf(statistic).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// Degrees of freedom up to which [`closed_form_sf`] is used.
const CLOSED_FORM_DOF: u32 = 100;

/// The chi-square upper tail for integer `dof` as a finite sum, with `h = x / 2`:
/// even `dof = 2m`: `e^-h Σ_{j<m} h^j / j!`; odd `dof = 2m + 1`:
/// `erfc(√h) + e^-h Σ_{j<m} h^(j+1/2) / Γ(j + 3/2)`. All terms are positive (no cancellation);
/// `x < 1400` keeps `e^-h` a normal float.
fn closed_form_sf(x: f64, dof: u32) -> f64 {
    let h = 0.5 * x;
    let m = dof / 2;
    if dof.is_multiple_of(2) {
        let mut term = (-h).exp();
        let mut sum = term;
        for j in 1..m {
            term *= h / f64::from(j);
            sum += term;
        }
        sum
    } else {
        let mut sum = erfc(h.sqrt());
        // h^(1/2) / Γ(3/2) = 2 √(h / π).
        let mut term = (-h).exp() * 2.0 * (h / std::f64::consts::PI).sqrt();
        for j in 0..m {
            sum += term;
            term *= h / (f64::from(j) + 1.5);
        }
        sum
    }
}

/// Pearson's chi-square test of independence, without continuity correction, of a K x 2
/// table of `(trials, successes)` per arm (its cells: successes and failures).
///
/// Rows or columns that are all zero carry no information and are left out (so the degrees
/// of freedom are `(rows - 1) * (columns - 1)` of what remains); with fewer than two of
/// either left, the statistic is 0 with 0 degrees of freedom and a p-value of 1.
///
/// # Examples
/// ```
/// use banditflow_core::statistics::independence;
/// let test = independence([(100, 10), (100, 20)]);
/// assert_eq!(test.dof, 1);
/// assert!((test.statistic - 3.9215686).abs() < 1e-6);
/// ```
#[must_use]
pub fn independence<I>(arms: I) -> ChiSquare
where
    I: IntoIterator<Item = (u64, u64)>,
    I::IntoIter: Clone,
{
    // Two passes over the arms (totals, then the statistic) instead of a table: this runs
    // for every record.
    let rows = arms.into_iter().filter(|(trials, _)| *trials > 0).map(|(trials, successes)| {
        let s = successes.min(trials) as f64;
        (s, trials as f64 - s)
    });
    let (mut count, mut successes, mut failures) = (0usize, 0.0, 0.0);
    for (s, f) in rows.clone() {
        count += 1;
        successes += s;
        failures += f;
    }
    let total = successes + failures;
    if count < 2 || successes == 0.0 || failures == 0.0 {
        return ChiSquare::of(0.0, 0);
    }
    let mut statistic = 0.0;
    for (s, f) in rows {
        let n = s + f;
        let expected_s = n * successes / total;
        let expected_f = n * failures / total;
        statistic += (s - expected_s).powi(2) / expected_s + (f - expected_f).powi(2) / expected_f;
    }
    ChiSquare::of(statistic, (count - 1) as u32)
}

/// Pearson's goodness-of-fit statistic of `(observed, expected)` counts per category (same
/// total), with `K - 1` degrees of freedom over the categories expected at all.
///
/// A category observed but expected never (expected 0) makes the statistic infinite and the
/// p-value 0; categories neither expected nor observed are left out.
#[must_use]
pub fn goodness_of_fit(categories: impl IntoIterator<Item = (f64, f64)>) -> ChiSquare {
    let mut statistic = 0.0;
    let mut expected_at_all = 0u32;
    for (o, e) in categories {
        if e > 0.0 {
            statistic += (o - e).powi(2) / e;
            expected_at_all += 1;
        } else if o > 0.0 {
            statistic = f64::INFINITY;
        }
    }
    ChiSquare::of(statistic, expected_at_all.saturating_sub(1))
}

/// The Wilson score interval of `successes` out of `trials` (trials > 0), 95%.
fn wilson(successes: f64, trials: f64) -> (f64, f64) {
    let p = successes / trials;
    let z2 = Z_975 * Z_975;
    let centre = p + z2 / (2.0 * trials);
    let spread = Z_975 * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    let denominator = 1.0 + z2 / trials;
    (((centre - spread) / denominator).max(0.0), ((centre + spread) / denominator).min(1.0))
}

/// An arm's observed rate against the control's: both as `(trials, successes)`.
///
/// The interval is Newcombe's hybrid score interval (not Wald's, which collapses to a point
/// at zero counts); the p-value is that of the pooled z-test,
/// `z = (p1 - p0) / sqrt(p (1 - p) (1/n1 + 1/n0))` with `p` the pooled rate, two-sided. With
/// no trials on either side there is nothing to compare: `diff` 0, interval `[-1, 1]`,
/// p-value 1; with a pooled rate of 0 or 1 the rates are equal and the p-value is 1.
///
/// # Examples
/// ```
/// use banditflow_core::statistics::versus_control;
/// let v = versus_control((1000, 120), (1000, 100));
/// assert!((v.diff - 0.02).abs() < 1e-12);
/// assert!(v.ci95[0] < 0.0 && v.ci95[1] > 0.04 && v.p_value > 0.05);
/// ```
#[must_use]
pub fn versus_control(arm: (u64, u64), control: (u64, u64)) -> VersusControl {
    let (n1, n0) = (arm.0 as f64, control.0 as f64);
    if arm.0 == 0 || control.0 == 0 {
        return VersusControl { diff: 0.0, ci95: [-1.0, 1.0], p_value: 1.0 };
    }
    let (s1, s0) = (arm.1.min(arm.0) as f64, control.1.min(control.0) as f64);
    let (p1, p0) = (s1 / n1, s0 / n0);
    let diff = p1 - p0;
    let (l1, u1) = wilson(s1, n1);
    let (l0, u0) = wilson(s0, n0);
    let low = diff - ((p1 - l1).powi(2) + (u0 - p0).powi(2)).sqrt();
    let high = diff + ((u1 - p1).powi(2) + (p0 - l0).powi(2)).sqrt();
    let pooled = (s1 + s0) / (n1 + n0);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0);
    let p_value = if variance > 0.0 {
        let z = diff / variance.sqrt();
        erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
    } else {
        1.0
    };
    VersusControl { diff, ci95: [low.max(-1.0), high.min(1.0)], p_value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_one_sided_tables_have_nothing_to_test() {
        assert_eq!(independence([]), ChiSquare { statistic: 0.0, dof: 0, p_value: 1.0 });
        assert_eq!(independence([(10, 3)]).dof, 0);
        assert_eq!(independence([(10, 0), (20, 0)]).dof, 0, "no successes anywhere");
        assert_eq!(independence([(10, 10), (20, 20)]).dof, 0, "no failures anywhere");
        // An arm without trials is left out: the other two are still compared.
        assert_eq!(independence([(10, 3), (0, 0), (10, 7)]).dof, 1);
    }

    #[test]
    fn the_closed_form_tail_is_the_incomplete_gamma_function() {
        // Against statrs's regularized upper incomplete gamma, across the degrees of freedom
        // it is used for and statistics from tiny to where the tail underflows.
        for dof in 1..=CLOSED_FORM_DOF {
            let distribution = ChiSquared::new(f64::from(dof)).expect("dof");
            for x in [1e-9, 1e-3, 0.1, 0.5, 1.0, 2.0, 3.84, 7.5, 15.0, 40.0, 99.0, 150.0, 300.0, 700.0, 1_399.0] {
                let (ours, theirs) = (closed_form_sf(x, dof), distribution.sf(x));
                let tolerance = 1e-12 * theirs.max(1e-300) + 1e-300;
                assert!((ours - theirs).abs() <= tolerance.max(1e-15 * theirs), "dof {dof}, x {x}: {ours} against {theirs}");
            }
        }
    }

    #[test]
    fn goodness_of_fit_flags_an_arm_served_that_should_never_be() {
        let test = goodness_of_fit([(50.0, 50.5), (50.0, 50.5), (1.0, 0.0)]);
        assert_eq!((test.statistic, test.p_value), (f64::INFINITY, 0.0));
        let test = goodness_of_fit([(50.0, 50.0), (50.0, 50.0), (0.0, 0.0)]);
        assert_eq!((test.statistic, test.dof, test.p_value), (0.0, 1, 1.0));
    }

    #[test]
    fn no_trials_or_a_pooled_rate_at_an_end_give_no_evidence() {
        assert_eq!(versus_control((0, 0), (10, 2)).p_value, 1.0);
        let all = versus_control((10, 10), (20, 20));
        assert_eq!((all.diff, all.p_value), (0.0, 1.0));
        assert!(all.ci95[0] < 0.0 && all.ci95[1] > 0.0, "{all:?}");
    }
}
