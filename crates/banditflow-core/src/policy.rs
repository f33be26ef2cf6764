//! The weight policy: the declared split, burn-in (per entity, then per arm), then a floor
//! under `p_best`, then an optional step limit from the previously published weights
//! (docs/semantics.md, "Weights"). Pure functions on slices in arm order; the caller keeps
//! the arms aligned.

/// Whether an entity's weights are still in burn-in or follow the posteriors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new entity some of whose arms have fewer than `min_trials` resolved trials (or one
    /// none of whose arms has them): weights stay uniform.
    BurnIn,
    /// Every arm has enough trials: weights follow `p_best`, floored.
    Adaptive,
    /// Out of burn-in with a confirmed winner (`docs/semantics.md`, "Decisions").
    Winner,
    /// Its last arm left (retired): one record with no arms says so, then none until it has
    /// arms again.
    Empty,
    /// `allocation = "static"`: the weights are the declared split, whatever the posteriors.
    Static,
}

impl Status {
    /// The status as written in the weight record: "burn_in", "adaptive", "winner" or
    /// "empty", "static".
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::BurnIn => "burn_in",
            Status::Adaptive => "adaptive",
            Status::Winner => "winner",
            Status::Empty => "empty",
            Status::Static => "static",
        }
    }
}

/// What burn-in needs to know of an entity besides its arms' trials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnIn<'a> {
    /// Resolved trials an arm needs in the window to follow its posterior.
    pub min_trials: u64,
    /// The weight of an arm still short of `min_trials` in an entity that has left burn-in
    /// (`None`: the share it would have in uniform burn-in, 1/K); never below the floor.
    pub new_arm_weight: Option<f64>,
    /// Whether the entity has left burn-in already (its last record was not `burn_in`).
    pub left: bool,
    /// The declared split in arm order ([`declared_split`]); `None`: uniform.
    pub split: Option<&'a [f64]>,
}

impl BurnIn<'_> {
    /// Entity-wide burn-in only: `min_trials` for every arm of an entity not yet out of it,
    /// uniform while it lasts.
    #[must_use]
    pub fn new(min_trials: u64) -> Self {
        BurnIn { min_trials, new_arm_weight: None, left: false, split: None }
    }
}

/// The split an entity's arms declared by their initial weights (`initial`, in arm order):
/// `None` when no arm declared one (uniform, 1/K each).
///
/// Arms without an initial weight share equally what the declared ones leave of 1; if they
/// leave nothing, each of them counts as 1/K. The result is normalised to sum to 1, so
/// declared weights that sum to less or more than 1 keep their ratios.
///
/// # Examples
/// ```
/// use banditflow_core::policy::declared_split;
/// assert_eq!(declared_split(&[None, None]), None);
/// let split = declared_split(&[Some(0.8), None, None]).unwrap();
/// assert!((split[0] - 0.8).abs() < 1e-12 && (split[1] - 0.1).abs() < 1e-12 && (split[2] - 0.1).abs() < 1e-12);
/// let split = declared_split(&[Some(0.5), Some(0.3)]).unwrap();
/// assert!((split[0] - 0.625).abs() < 1e-12 && (split[1] - 0.375).abs() < 1e-12);
/// ```
#[must_use]
pub fn declared_split(initial: &[Option<f64>]) -> Option<Vec<f64>> {
    let declared: Vec<f64> = initial.iter().flatten().map(|w| if w.is_finite() { w.max(0.0) } else { 0.0 }).collect();
    if declared.is_empty() {
        return None;
    }
    let k = initial.len();
    let undeclared = k - declared.len();
    let left_over = 1.0 - declared.iter().sum::<f64>();
    let share = if left_over > 0.0 { left_over / undeclared.max(1) as f64 } else { 1.0 / k as f64 };
    let raw: Vec<f64> = initial.iter().map(|w| w.map_or(share, |w| if w.is_finite() { w.max(0.0) } else { 0.0 })).collect();
    let total: f64 = raw.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return None;
    }
    Some(raw.iter().map(|w| w / total).collect())
}

/// Burn-in then floor.
///
/// An entity in burn-in (it has not left it, and some arm has fewer than `min_trials`
/// trials; or no arm has them) gets the declared split, floored as below (uniform without
/// one), and status `BurnIn`. Once every arm has
/// `min_trials`, w(k) = floor + (1 - K*floor) p_best(k) (uniform if K*floor >= 1), status
/// `Adaptive`. An entity that has left burn-in does not go back when an arm short of
/// `min_trials` joins (or falls short): each such arm gets the new-arm weight (by default its
/// share of the declared split, 1/K without one), and the arms
/// with their trials share the rest by the same floor rule over their own `p_best`. If the
/// short arms would leave the others nothing, or less than the floor each, every arm gets 1/K.
///
/// `p_best` and `trials` are in the same arm order. `p_best` is clamped at 0 and
/// renormalised first, so the weights sum to 1 within rounding even if it is slightly off;
/// a negative `floor` counts as 0. With no arms the answer is empty and `Adaptive`
/// (every arm, of none, has its trials).
///
/// # Examples
/// ```
/// use banditflow_core::policy::{target_weights, BurnIn, Status};
/// let (w, status) = target_weights(&[0.7, 0.3], &[40, 500], &BurnIn::new(100), 0.1);
/// assert_eq!((w, status), (vec![0.5, 0.5], Status::BurnIn));
/// let (w, status) = target_weights(&[0.7, 0.3], &[400, 500], &BurnIn::new(100), 0.1);
/// assert_eq!(status, Status::Adaptive);
/// assert!((w[0] - (0.1 + 0.8 * 0.7)).abs() < 1e-12 && (w[1] - (0.1 + 0.8 * 0.3)).abs() < 1e-12);
/// // Out of burn-in, a third arm joins: it gets 1/3, the two others share 2/3 by their p_best.
/// let settled = BurnIn { left: true, ..BurnIn::new(100) };
/// let (w, status) = target_weights(&[0.6, 0.3, 0.1], &[400, 500, 0], &settled, 0.1);
/// assert_eq!(status, Status::Adaptive);
/// assert!((w[2] - 1.0 / 3.0).abs() < 1e-12 && (w[0] - (0.1 + (2.0 / 3.0 - 0.2) * 0.6 / 0.9)).abs() < 1e-12);
/// ```
///
/// # Panics
/// If `p_best`, `trials` and the split differ in length.
#[must_use]
pub fn target_weights(p_best: &[f64], trials: &[u64], burn_in: &BurnIn, floor: f64) -> (Vec<f64>, Status) {
    assert_eq!(p_best.len(), trials.len(), "p_best and trials must describe the same arms");
    let k = p_best.len();
    let uniform = vec![1.0 / k as f64; k];
    if let Some(split) = burn_in.split {
        assert_eq!(split.len(), k, "the split must describe the same arms");
    }
    let floor = if floor.is_nan() { 0.0 } else { floor.max(0.0) };
    let ready: Vec<bool> = trials.iter().map(|&t| t >= burn_in.min_trials).collect();
    let short = ready.iter().filter(|r| !**r).count();
    if short > 0 && (!burn_in.left || short == k) {
        let weights = match burn_in.split {
            Some(split) if (k as f64) * floor < 1.0 => split.iter().map(|s| floor + (1.0 - k as f64 * floor) * s).collect(),
            _ => uniform,
        };
        return (weights, Status::BurnIn);
    }
    let share = |i: usize| burn_in.split.map_or(1.0 / k as f64, |s| s[i]);
    let new_arm = |i: usize| burn_in.new_arm_weight.unwrap_or_else(|| share(i)).max(floor);
    let rest = 1.0 - (0..k).filter(|&i| !ready[i]).map(new_arm).sum::<f64>();
    // The arms with their trials share `rest` by the floor rule over their own p_best.
    let spare = rest - (k - short) as f64 * floor;
    if short > 0 && (spare < 0.0 || rest <= 0.0) {
        return (uniform, Status::Adaptive);
    }
    let clean: Vec<f64> = p_best.iter().zip(&ready).map(|(&p, &r)| if r && p.is_finite() { p.max(0.0) } else { 0.0 }).collect();
    let total: f64 = clean.iter().sum();
    let weights = clean
        .iter()
        .zip(&ready)
        .enumerate()
        .map(|(i, (&p, &r))| match (r, spare > 0.0 && total > 0.0) {
            (false, _) => new_arm(i),
            (true, true) => floor + spare * (p / total),
            // No room above the floors (or no information at all): share equally.
            (true, false) => rest / (k - short) as f64,
        })
        .collect();
    (weights, Status::Adaptive)
}

/// Step limit: move from `previous` toward `target` along the straight line, as far as
/// keeps every arm's change within `max_step`.
///
/// The result is a convex combination of the two, so it keeps their common sum and any
/// floor both respect. If `previous` itself is off 1 by more than rounding (say it was
/// parsed back from a record), the difference goes to the largest weight, which has the
/// most room above any floor. A `max_step` that is not positive keeps `previous`.
///
/// # Examples
/// ```
/// use banditflow_core::policy::limit_step;
/// // The largest change (0.4) is cut to 0.1: a quarter of the way along the line.
/// let w = limit_step(&[0.5, 0.3, 0.2], &[0.9, 0.05, 0.05], 0.1);
/// assert!((w[0] - 0.6).abs() < 1e-12 && (w[1] - 0.2375).abs() < 1e-12 && (w[2] - 0.1625).abs() < 1e-12);
/// ```
///
/// # Panics
/// If `previous` and `target` differ in length.
#[must_use]
pub fn limit_step(previous: &[f64], target: &[f64], max_step: f64) -> Vec<f64> {
    assert_eq!(previous.len(), target.len(), "previous and target must describe the same arms");
    let largest_change = previous.iter().zip(target).map(|(p, t)| (t - p).abs()).fold(0.0, f64::max);
    if largest_change == 0.0 {
        return target.to_vec();
    }
    let lambda = if max_step.is_nan() { 0.0 } else { (max_step.max(0.0) / largest_change).min(1.0) };
    if lambda >= 1.0 {
        return target.to_vec();
    }
    let mut weights: Vec<f64> = previous.iter().zip(target).map(|(p, t)| p + lambda * (t - p)).collect();
    let excess = weights.iter().sum::<f64>() - 1.0;
    if excess.abs() > 1e-12 {
        if let Some(top) = weights.iter_mut().max_by(|a, b| a.total_cmp(b)) {
            *top = (*top - excess).max(0.0);
        }
    }
    weights
}

/// The weights an entity's last record gave, carried over to its current arms (`arms`, by
/// id, in record order) for the step limit to walk from: a kept arm keeps its weight, a new
/// arm starts from 0, and the weight of arms that left (retired) is shared by the kept ones
/// in proportion to their weights, at once (it has to go somewhere: that one move is not
/// step-limited). `None` when no arm with weight is kept: nothing to walk from.
///
/// # Examples
/// ```
/// use banditflow_core::policy::carried_over;
/// // "b" retired (0.5 of the traffic), "d" new: "a" and "c" share b's weight 1:3, d starts at 0.
/// let before = carried_over(&[("a", 0.125), ("b", 0.5), ("c", 0.375)], &["a", "c", "d"]).unwrap();
/// assert_eq!(before, vec![0.25, 0.75, 0.0]);
/// ```
#[must_use]
pub fn carried_over(previous: &[(&str, f64)], arms: &[&str]) -> Option<Vec<f64>> {
    let kept: Vec<f64> = arms.iter().map(|arm| previous.iter().find(|(p, _)| p == arm).map_or(0.0, |(_, w)| w.max(0.0))).collect();
    let total: f64 = kept.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| kept.iter().map(|w| w / total).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn carried_over_weights_keep_kept_arms_start_new_ones_at_zero_and_share_what_left() {
        assert_eq!(carried_over(&[("a", 0.5), ("b", 0.5)], &["a", "b"]), Some(vec![0.5, 0.5]));
        assert_eq!(carried_over(&[("a", 0.5), ("b", 0.5)], &["a", "b", "c"]), Some(vec![0.5, 0.5, 0.0]));
        assert_eq!(carried_over(&[("a", 0.2), ("b", 0.8)], &["a"]), Some(vec![1.0]));
        assert_eq!(carried_over(&[("a", 1.0)], &["b", "c"]), None, "nothing kept");
        assert_eq!(carried_over(&[], &["a"]), None);
    }

    fn sum(w: &[f64]) -> f64 {
        w.iter().sum()
    }

    #[test]
    fn status_strings_match_the_weight_record() {
        assert_eq!(Status::BurnIn.as_str(), "burn_in");
        assert_eq!(Status::Adaptive.as_str(), "adaptive");
    }

    #[test]
    fn burn_in_is_uniform_until_every_arm_has_min_trials() {
        let (w, status) = target_weights(&[0.9, 0.05, 0.05], &[500, 500, 99], &BurnIn::new(100), 0.05);
        assert_eq!(status, Status::BurnIn);
        assert_eq!(w, vec![1.0 / 3.0; 3]);
        let (_, status) = target_weights(&[0.9, 0.05, 0.05], &[500, 500, 100], &BurnIn::new(100), 0.05);
        assert_eq!(status, Status::Adaptive);
    }

    #[test]
    fn out_of_burn_in_a_short_arm_gets_the_new_arm_weight_and_the_others_follow_p_best() {
        let settled = BurnIn { left: true, ..BurnIn::new(100) };
        // Default: the share of uniform burn-in, 1/K.
        let (w, status) = target_weights(&[0.5, 0.5, 0.0, 0.0], &[500, 500, 3, 0], &settled, 0.05);
        assert_eq!(status, Status::Adaptive);
        assert_eq!((w[2], w[3]), (0.25, 0.25));
        assert!((w[0] - 0.25).abs() < 1e-15 && (w[1] - 0.25).abs() < 1e-15, "{w:?}");
        let (w, _) = target_weights(&[0.9, 0.1, 0.0], &[500, 500, 0], &settled, 0.05);
        let rest = 1.0 - 1.0 / 3.0;
        assert!((w[0] - (0.05 + (rest - 0.1) * 0.9)).abs() < 1e-15 && (w[1] - (0.05 + (rest - 0.1) * 0.1)).abs() < 1e-15, "{w:?}");
        assert!((sum(&w) - 1.0).abs() < 1e-12);
        // A configured weight, never below the floor.
        let (w, _) = target_weights(&[0.9, 0.1, 0.0], &[500, 500, 0], &BurnIn { new_arm_weight: Some(0.1), ..settled }, 0.05);
        assert!((w[2] - 0.1).abs() < 1e-15 && (sum(&w) - 1.0).abs() < 1e-12, "{w:?}");
        let (w, _) = target_weights(&[0.9, 0.1, 0.0], &[500, 500, 0], &BurnIn { new_arm_weight: Some(0.01), ..settled }, 0.05);
        assert!((w[2] - 0.05).abs() < 1e-15, "{w:?}");
        // Short arms that would take everything: uniform.
        let (w, status) = target_weights(&[0.9, 0.1, 0.0], &[500, 0, 0], &BurnIn { new_arm_weight: Some(0.5), ..settled }, 0.0);
        assert_eq!((w, status), (vec![1.0 / 3.0; 3], Status::Adaptive));
        // No arm with its trials, or an entity that never left burn-in: uniform burn-in.
        assert_eq!(target_weights(&[0.9, 0.1], &[5, 0], &settled, 0.05), (vec![0.5; 2], Status::BurnIn));
        assert_eq!(target_weights(&[0.9, 0.1], &[500, 0], &BurnIn::new(100), 0.05), (vec![0.5; 2], Status::BurnIn));
    }

    #[test]
    fn the_declared_split_fills_undeclared_arms_from_what_is_left_and_is_normalised() {
        let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert_eq!(declared_split(&[]), None);
        assert_eq!(declared_split(&[None; 3]), None);
        assert!(close(&declared_split(&[Some(0.9), Some(0.1)]).unwrap(), &[0.9, 0.1]));
        assert!(close(&declared_split(&[Some(0.2), Some(0.2)]).unwrap(), &[0.5, 0.5]), "normalised");
        assert!(close(&declared_split(&[None, Some(0.4), None]).unwrap(), &[0.3, 0.4, 0.3]));
        // The declared ones take everything: an undeclared arm counts as 1/K.
        let split = declared_split(&[Some(0.7), Some(0.6), None]).unwrap();
        let total = 0.7 + 0.6 + 1.0 / 3.0;
        assert!(close(&split, &[0.7 / total, 0.6 / total, 1.0 / 3.0 / total]), "{split:?}");
    }

    #[test]
    fn burn_in_publishes_the_declared_split_floored_and_a_short_arm_gets_its_share() {
        let split = [0.7, 0.2, 0.1];
        let with_split = BurnIn { split: Some(&split), ..BurnIn::new(100) };
        let (w, status) = target_weights(&[0.1, 0.1, 0.8], &[500, 0, 0], &with_split, 0.0);
        assert_eq!((w, status), (split.to_vec(), Status::BurnIn));
        // Floored like p_best: floor + (1 - K floor) share.
        let (w, _) = target_weights(&[0.1, 0.1, 0.8], &[500, 0, 0], &with_split, 0.1);
        assert!(w.iter().zip([0.1 + 0.7 * 0.7, 0.1 + 0.7 * 0.2, 0.1 + 0.7 * 0.1]).all(|(a, b)| (a - b).abs() < 1e-15), "{w:?}");
        // Out of burn-in, the short arm gets its share of the split, the rest follow p_best.
        let settled = BurnIn { left: true, ..with_split };
        let (w, status) = target_weights(&[0.5, 0.5, 0.0], &[500, 500, 0], &settled, 0.0);
        assert_eq!(status, Status::Adaptive);
        assert!((w[2] - 0.1).abs() < 1e-15 && (w[0] - 0.45).abs() < 1e-15 && (w[1] - 0.45).abs() < 1e-15, "{w:?}");
        // A configured new-arm weight still wins over the split.
        let (w, _) = target_weights(&[0.5, 0.5, 0.0], &[500, 500, 0], &BurnIn { new_arm_weight: Some(0.3), ..settled }, 0.0);
        assert!((w[2] - 0.3).abs() < 1e-15, "{w:?}");
    }

    #[test]
    fn floor_mixes_p_best_with_the_floor() {
        let (w, status) = target_weights(&[0.7, 0.2, 0.1, 0.0], &[10; 4], &BurnIn::new(0), 0.05);
        assert_eq!(status, Status::Adaptive);
        let expected = [0.05 + 0.8 * 0.7, 0.05 + 0.8 * 0.2, 0.05 + 0.8 * 0.1, 0.05];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15, "{w:?}");
        }
        assert!((sum(&w) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn floor_too_large_for_the_arms_gives_uniform() {
        let (w, status) = target_weights(&[1.0, 0.0, 0.0, 0.0], &[10; 4], &BurnIn::new(0), 0.25);
        assert_eq!(status, Status::Adaptive);
        assert_eq!(w, vec![0.25; 4]);
        let (w, _) = target_weights(&[1.0, 0.0, 0.0], &[10; 3], &BurnIn::new(0), 0.5);
        assert_eq!(w, vec![1.0 / 3.0; 3]);
    }

    #[test]
    fn no_arms_give_no_weights() {
        let (w, status) = target_weights(&[], &[], &BurnIn::new(100), 0.1);
        assert!(w.is_empty());
        assert_eq!(status, Status::Adaptive);
        assert!(limit_step(&[], &[], 0.1).is_empty());
    }

    #[test]
    fn step_limit_moves_the_largest_change_by_exactly_max_step() {
        let w = limit_step(&[0.5, 0.5], &[0.9, 0.1], 0.1);
        assert!((w[0] - 0.6).abs() < 1e-15 && (w[1] - 0.4).abs() < 1e-15, "{w:?}");
        let w = limit_step(&[0.25; 4], &[0.55, 0.25, 0.1, 0.1], 0.15);
        // Largest change 0.3 -> half way along the line.
        let expected = [0.4, 0.25, 0.175, 0.175];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15, "{w:?}");
        }
    }

    #[test]
    fn step_within_the_limit_lands_on_the_target() {
        assert_eq!(limit_step(&[0.5, 0.5], &[0.55, 0.45], 0.1), vec![0.55, 0.45]);
        assert_eq!(limit_step(&[0.5, 0.5], &[0.5, 0.5], 0.0), vec![0.5, 0.5]);
    }

    #[test]
    fn zero_max_step_keeps_previous() {
        assert_eq!(limit_step(&[0.3, 0.7], &[0.9, 0.1], 0.0), vec![0.3, 0.7]);
    }

    #[test]
    fn step_from_weights_off_one_is_brought_back_to_one() {
        let w = limit_step(&[0.3, 0.7 + 1e-9], &[0.9, 0.1], 0.1);
        assert!((sum(&w) - 1.0).abs() < 1e-15, "{w:?}");
        // The excess is taken from the largest weight; the others only follow the line.
        assert!((w[0] - 0.4).abs() < 1e-9, "{w:?}");
        assert!((w[0] - 0.3).abs() <= 0.1, "{w:?}");
    }

    /// K arms with p_best values, trials, a floor and previous weights that obey it.
    fn scenario() -> impl Strategy<Value = ((Vec<f64>, Vec<f64>, Vec<u64>, u64, f64, f64, Option<f64>, bool), Option<Vec<f64>>)> {
        (1usize..=20).prop_flat_map(|k| {
            (
                prop::collection::vec(0.0f64..1.0, k),
                prop::collection::vec(0.0f64..1.0, k),
                prop::collection::vec(0u64..200, k),
                0u64..150,
                prop_oneof![Just(0.0), 0.0f64..(1.0 / k as f64), 0.0f64..0.3],
                prop_oneof![0.001f64..0.2, 0.2f64..1.0],
                prop_oneof![Just(None), (0.0f64..0.5).prop_map(Some)],
                any::<bool>(),
            )
                .prop_flat_map(move |rest| (Just(rest), prop::option::of(prop::collection::vec(0.001f64..1.0, k))))
        })
    }

    fn normalised(v: &[f64]) -> Vec<f64> {
        let s: f64 = v.iter().sum();
        if s > 0.0 {
            v.iter().map(|x| x / s).collect()
        } else {
            vec![1.0 / v.len() as f64; v.len()]
        }
    }

    proptest! {
        #[test]
        fn policy_weights_are_distributions_that_keep_floors_and_step_limit(
            ((p_raw, prev_raw, trials, min_trials, floor, max_step, new_arm_weight, left), split_raw) in scenario()
        ) {
            let k = p_raw.len();
            let p = normalised(&p_raw);
            let split = split_raw.map(|s| normalised(&s));
            let burn_in = BurnIn { min_trials, new_arm_weight, left, split: split.as_deref() };
            let (target, status) = target_weights(&p, &trials, &burn_in, floor);
            let (previous, _) = target_weights(&normalised(&prev_raw), &vec![u64::MAX; k], &BurnIn::new(0), floor);
            let floors_apply = (status == Status::Adaptive || split.is_some()) && (k as f64) * floor < 1.0;
            let check = |w: &[f64]| -> Result<(), TestCaseError> {
                prop_assert!(w.iter().all(|&x| x >= 0.0), "negative weight {:?}", w);
                prop_assert!((sum(w) - 1.0).abs() <= 1e-9, "sum {} for {:?}", sum(w), w);
                if floors_apply {
                    prop_assert!(w.iter().all(|&x| x >= floor - 1e-12), "floor {} broken by {:?}", floor, w);
                }
                Ok(())
            };
            check(&target)?;

            let mut current = previous;
            let steps_needed = (1.0 / max_step).ceil() as usize + 1;
            for _ in 0..steps_needed {
                let next = limit_step(&current, &target, max_step);
                for (a, b) in next.iter().zip(&current) {
                    prop_assert!((a - b).abs() <= max_step + 1e-12, "step {} > {}", (a - b).abs(), max_step);
                }
                check(&next)?;
                current = next;
            }
            prop_assert_eq!(current, target);
        }
    }
}
