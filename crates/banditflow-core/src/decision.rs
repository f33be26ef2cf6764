//! Decision rules: each arm's state (`exploring`, `winner`, `stopped`), changed only by a
//! rule whose condition held for `confirm_ticks` consecutive ticks, and what the states do to
//! the weights (docs/semantics.md, "Decisions").
//!
//! The rules, evaluated at every tick an entity's record is computed, for the arms out of
//! burn-in (the entity's, or an arm's own while it is short of `min_trials`: such an arm is
//! neither stopped nor made the winner, and a winner that falls short is cleared):
//! - `winner`: the arm with the largest `p_best` has `p_best >= winner_p_best` and expected
//!   loss `<= winner_max_loss` (only one arm is winner at a time, and a lone arm never is);
//! - `winner_cleared`: the winner no longer meets that condition (or the entity is back in
//!   burn-in): it is exploring again;
//! - `stop`: an exploring arm has `p_best < stop_p_best` (never with `stop_p_best = 0`, and
//!   never the last arm not stopped);
//! - `redeclared`: the arm registry declares a stopped arm active again: it explores again at
//!   once (a stop is otherwise final).
//!
//! A condition that holds at a tick starts (or continues) a streak; the state changes at the
//! `confirm_ticks`-th consecutive tick. Between records an entity's statistics do not change,
//! so a streak continues through ticks without a record; the weight state evaluates an
//! entity with a streak at every tick, so the change lands exactly on its tick.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{DecisionConfig, OnWinner};
use crate::event::NameId;

/// An arm's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "snake_case")]
pub enum ArmState {
    /// Served by the policy.
    #[default]
    Exploring,
    /// The confirmed best arm.
    Winner,
    /// Confirmed hopeless: its weight is capped at 0 or the floor until it is re-declared.
    Stopped,
}

impl ArmState {
    /// The state as the weight record spells it (its serde name).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ArmState::Exploring => "exploring",
            ArmState::Winner => "winner",
            ArmState::Stopped => "stopped",
        }
    }
}

/// The rule behind a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An arm became the winner.
    Winner,
    /// The winner lost its lead.
    WinnerCleared,
    /// An arm was stopped.
    Stop,
    /// A stopped arm was declared active again on the arm registry.
    Redeclared,
}

/// What the rules need to know of an arm at a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standing {
    /// The arm.
    pub arm: NameId,
    /// Its `p_best`.
    pub p_best: f64,
    /// Its expected loss.
    pub expected_loss: f64,
    /// Whether it is in burn-in: the entity's, or its own (fewer than `min_trials` trials).
    pub burn_in: bool,
}

/// A state change of one arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The arm.
    pub arm: NameId,
    /// Its state before.
    pub from: ArmState,
    /// Its state after.
    pub to: ArmState,
    /// The rule that changed it.
    pub rule: Rule,
}

/// One arm's state and the streak towards a change, if one is running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Track {
    /// The arm's state.
    pub state: ArmState,
    /// The state the running streak leads to and the tick it started at.
    pub toward: Option<(ArmState, u64)>,
}

/// The decision state of one entity: a track per arm it has listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Decisions {
    /// Per arm.
    pub arms: BTreeMap<NameId, Track>,
}

impl Rule {
    /// The rule as decision events and metrics name it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Winner => "winner",
            Rule::WinnerCleared => "winner_cleared",
            Rule::Stop => "stop",
            Rule::Redeclared => "redeclared",
        }
    }
}

impl Decisions {
    /// The state of `arm` (exploring if it has none yet).
    #[must_use]
    pub fn state(&self, arm: NameId) -> ArmState {
        self.arms.get(&arm).map_or(ArmState::Exploring, |t| t.state)
    }

    /// Whether some streak is running: the entity must be evaluated at the next tick.
    #[must_use]
    pub fn deciding(&self) -> bool {
        self.arms.values().any(|t| t.toward.is_some())
    }

    /// Whether some arm is the winner.
    #[must_use]
    pub fn has_winner(&self) -> bool {
        self.arms.values().any(|t| t.state == ArmState::Winner)
    }

    /// Forgets the arms not in `arms` (retired): declared again later, they start afresh.
    pub fn retain(&mut self, arms: &[NameId]) {
        self.arms.retain(|arm, _| arms.contains(arm));
    }

    /// A stopped arm declared active again explores from now on.
    pub fn redeclared(&mut self, arm: NameId) -> Option<Change> {
        let track = self.arms.get_mut(&arm)?;
        if track.state != ArmState::Stopped {
            return None;
        }
        *track = Track::default();
        Some(Change { arm, from: ArmState::Stopped, to: ArmState::Exploring, rule: Rule::Redeclared })
    }

    /// Applies the rules at `tick` to the arms' standings (record order). Returns the state
    /// changes, in arm order.
    pub fn evaluate(&mut self, rules: &DecisionConfig, tick: u64, arms: &[Standing]) -> Vec<Change> {
        let confirm = u64::from(rules.confirm_ticks.max(1));
        let meets_winner = |s: &Standing| s.p_best >= rules.winner_p_best && s.expected_loss <= rules.winner_max_loss;
        // The leading arm: the largest p_best, the first in record order among equals.
        let top = arms.iter().fold(None::<&Standing>, |best, s| match best {
            Some(b) if b.p_best >= s.p_best => Some(b),
            _ => Some(s),
        });
        let has_winner = arms.iter().any(|s| self.state(s.arm) == ArmState::Winner);
        let not_stopped = arms.iter().filter(|s| self.state(s.arm) != ArmState::Stopped).count();
        let mut changes = Vec::new();
        for standing in arms {
            let track = self.arms.entry(standing.arm).or_default();
            let goal = match track.state {
                ArmState::Stopped => None,
                ArmState::Winner => (standing.burn_in || !meets_winner(standing)).then_some(ArmState::Exploring),
                ArmState::Exploring if standing.burn_in => None,
                ArmState::Exploring => {
                    let leads = top.is_some_and(|t| t.arm == standing.arm);
                    if !has_winner && leads && arms.len() > 1 && meets_winner(standing) {
                        Some(ArmState::Winner)
                    } else if rules.stop_p_best > 0.0 && standing.p_best < rules.stop_p_best && not_stopped > 1 {
                        Some(ArmState::Stopped)
                    } else {
                        None
                    }
                }
            };
            track.toward = match (goal, track.toward) {
                (None, _) => None,
                (Some(g), Some((to, since))) if to == g => Some((g, since)),
                (Some(g), _) => Some((g, tick)),
            };
            if let Some((to, since)) = track.toward {
                if tick + 1 >= since + confirm {
                    let rule = match (track.state, to) {
                        (_, ArmState::Winner) => Rule::Winner,
                        (_, ArmState::Stopped) => Rule::Stop,
                        _ => Rule::WinnerCleared,
                    };
                    changes.push(Change { arm: standing.arm, from: track.state, to, rule });
                    *track = Track { state: to, toward: None };
                }
            }
        }
        changes
    }
}

/// Shapes policy weights (record order) by the arms' states: a stopped arm gets at most `cap`
/// (0 with `allow_stop`, else the floor) and what it gives up goes to the arms not stopped in
/// proportion to their weights; with `on_winner = "exploit"`, every other arm gets the floor
/// (stopped ones their cap, arms in their own burn-in, `short`, keep their new-arm weight)
/// and the winner the rest.
pub fn shape(weights: &mut [f64], states: &[ArmState], short: &[bool], rules: &DecisionConfig, floor: f64) {
    let cap = stopped_cap(rules, floor);
    if rules.on_winner == OnWinner::Exploit {
        if let Some(winner) = states.iter().position(|s| *s == ArmState::Winner) {
            for ((w, s), short) in weights.iter_mut().zip(states).zip(short) {
                *w = match (s, short) {
                    (ArmState::Stopped, _) => cap,
                    (_, true) => *w,
                    _ => floor,
                };
            }
            let others: f64 = weights.iter().enumerate().filter(|(i, _)| *i != winner).map(|(_, w)| w).sum();
            weights[winner] = (1.0 - others).max(0.0);
            return;
        }
    }
    cap_stopped(weights, states, cap);
}

/// The weight a stopped arm is held to: 0 with `allow_stop`, else the policy's floor.
#[must_use]
pub fn stopped_cap(rules: &DecisionConfig, floor: f64) -> f64 {
    if rules.allow_stop {
        0.0
    } else {
        floor
    }
}

/// Brings every stopped arm down to `cap`, handing the excess to the arms not stopped in
/// proportion to their weights (equally if they have none).
pub fn cap_stopped(weights: &mut [f64], states: &[ArmState], cap: f64) {
    let mut excess = 0.0;
    for (w, s) in weights.iter_mut().zip(states) {
        if *s == ArmState::Stopped && *w > cap {
            excess += *w - cap;
            *w = cap;
        }
    }
    if excess <= 0.0 {
        return;
    }
    let open: Vec<usize> = (0..weights.len()).filter(|&i| states[i] != ArmState::Stopped).collect();
    let total: f64 = open.iter().map(|&i| weights[i]).sum();
    for &i in &open {
        weights[i] += if total > 0.0 { excess * weights[i] / total } else { excess / open.len() as f64 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(confirm_ticks: u32) -> DecisionConfig {
        DecisionConfig { confirm_ticks, ..DecisionConfig::default() }
    }

    fn standing(arm: NameId, p_best: f64, expected_loss: f64) -> Standing {
        Standing { arm, p_best, expected_loss, burn_in: false }
    }

    #[test]
    fn a_winner_needs_confirm_ticks_consecutive_ticks_and_clears_the_same_way() {
        let rules = rules(3);
        let mut d = Decisions::default();
        let leading = [standing(1, 0.96, 0.0005), standing(2, 0.04, 0.02)];
        let behind = [standing(1, 0.94, 0.0005), standing(2, 0.06, 0.02)];
        assert!(d.evaluate(&rules, 10, &leading).is_empty());
        assert!(d.evaluate(&rules, 11, &leading).is_empty());
        // The streak breaks at 12: it starts again at 13.
        assert!(d.evaluate(&rules, 12, &behind).is_empty());
        assert!(d.evaluate(&rules, 13, &leading).is_empty());
        assert!(d.evaluate(&rules, 14, &leading).is_empty());
        assert!(d.deciding());
        let changes = d.evaluate(&rules, 15, &leading);
        assert_eq!(changes, vec![Change { arm: 1, from: ArmState::Exploring, to: ArmState::Winner, rule: Rule::Winner }]);
        assert!(d.has_winner() && !d.deciding());
        assert!(d.evaluate(&rules, 16, &behind).is_empty());
        assert!(d.evaluate(&rules, 17, &behind).is_empty());
        let changes = d.evaluate(&rules, 18, &behind);
        assert_eq!(changes, vec![Change { arm: 1, from: ArmState::Winner, to: ArmState::Exploring, rule: Rule::WinnerCleared }]);
    }

    #[test]
    fn thresholds_just_above_and_just_below_decide_whether_a_rule_fires() {
        let rules = rules(1);
        let (wp, wl, sp) = (rules.winner_p_best, rules.winner_max_loss, rules.stop_p_best);
        let fires = |arm: Standing| {
            let mut d = Decisions::default();
            d.evaluate(&rules, 1, &[arm, standing(2, 1.0 - arm.p_best, 0.5)]).iter().find(|c| c.arm == 1).map(|c| c.rule)
        };
        assert_eq!(fires(standing(1, wp, wl)), Some(Rule::Winner), "at both thresholds");
        assert_eq!(fires(standing(1, wp.next_down(), wl)), None, "p_best just below");
        assert_eq!(fires(standing(1, wp, wl.next_up())), None, "loss just above");
        assert_eq!(fires(standing(1, sp.next_down(), 0.5)), Some(Rule::Stop), "p_best just below stop_p_best");
        assert_eq!(fires(standing(1, sp, 0.5)), None, "at stop_p_best: not below it");
        let never = DecisionConfig { stop_p_best: 0.0, confirm_ticks: 1, ..DecisionConfig::default() };
        let mut d = Decisions::default();
        assert!(d.evaluate(&never, 1, &[standing(1, 0.0, 0.5), standing(2, 1.0, 0.0)]).iter().all(|c| c.rule != Rule::Stop));
        // confirm_ticks: the change lands at the confirm_ticks-th tick, not one before.
        for confirm in [1u32, 2, 5] {
            let rules = DecisionConfig { confirm_ticks: confirm, ..DecisionConfig::default() };
            let mut d = Decisions::default();
            let fired: Vec<u64> = (10..20).filter(|&t| !d.evaluate(&rules, t, &[standing(1, 0.99, 0.0), standing(2, 0.01, 0.01)]).is_empty()).collect();
            assert_eq!(fired, vec![10 + u64::from(confirm) - 1], "confirm_ticks = {confirm}");
        }
    }

    #[test]
    fn a_stop_is_final_until_the_arm_is_redeclared_and_never_takes_the_last_arm() {
        let rules = rules(1);
        let mut d = Decisions::default();
        let burning = |s: Standing| Standing { burn_in: true, ..s };
        let changes = d.evaluate(&rules, 1, &[burning(standing(1, 0.9995, 0.0)), burning(standing(2, 0.0005, 0.1))]);
        assert!(changes.is_empty(), "no rule applies in burn-in");
        // An arm in its own burn-in is neither stopped nor made the winner; the others are judged.
        let changes = d.evaluate(&rules, 1, &[standing(1, 0.9995, 0.0), burning(standing(2, 0.0005, 0.1))]);
        assert_eq!(changes.iter().map(|c| (c.arm, c.rule)).collect::<Vec<_>>(), vec![(1, Rule::Winner)]);
        let changes = d.evaluate(&rules, 2, &[burning(standing(1, 0.9995, 0.0)), standing(2, 0.0005, 0.1)]);
        assert_eq!(changes.iter().map(|c| (c.arm, c.rule)).collect::<Vec<_>>(), vec![(1, Rule::WinnerCleared), (2, Rule::Stop)]);
        let mut d = Decisions::default();
        let changes = d.evaluate(&rules, 2, &[standing(1, 0.9995, 0.0), standing(2, 0.0005, 0.1)]);
        assert_eq!(changes.iter().map(|c| (c.arm, c.rule)).collect::<Vec<_>>(), vec![(1, Rule::Winner), (2, Rule::Stop)]);
        assert!(d.evaluate(&rules, 3, &[standing(1, 0.5, 0.0), standing(2, 0.5, 0.1)]).iter().all(|c| c.arm == 1));
        assert_eq!(d.state(2), ArmState::Stopped);
        assert_eq!(d.redeclared(2).map(|c| c.rule), Some(Rule::Redeclared));
        assert_eq!(d.state(2), ArmState::Exploring);
        // With every other arm stopped, the last one is never stopped.
        let mut d = Decisions::default();
        let three = [standing(1, 0.0004, 0.1), standing(2, 0.0004, 0.1), standing(3, 0.9992, 0.0)];
        d.evaluate(&rules, 1, &three);
        let lone = [standing(1, 0.0004, 0.1), standing(2, 0.0004, 0.1), standing(3, 0.0002, 0.0)];
        assert_eq!(d.evaluate(&rules, 2, &lone).iter().map(|c| c.rule).collect::<Vec<_>>(), vec![Rule::WinnerCleared]);
        assert!(d.evaluate(&rules, 3, &lone).is_empty());
        assert_eq!(d.state(3), ArmState::Exploring);
    }

    #[test]
    fn stopped_arms_give_their_weight_to_the_others_and_exploit_leaves_the_floor() {
        let states = [ArmState::Exploring, ArmState::Stopped, ArmState::Exploring];
        let mut w = vec![0.3, 0.2, 0.5];
        shape(&mut w, &states, &[false; 3], &DecisionConfig { allow_stop: true, ..DecisionConfig::default() }, 0.05);
        assert!((w[0] - 0.375).abs() < 1e-12 && w[1] == 0.0 && (w[2] - 0.625).abs() < 1e-12, "{w:?}");
        let mut w = vec![0.3, 0.2, 0.5];
        shape(&mut w, &states, &[false; 3], &DecisionConfig::default(), 0.05);
        assert!((w[1] - 0.05).abs() < 1e-12 && (w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{w:?}");
        let exploit = DecisionConfig { on_winner: OnWinner::Exploit, allow_stop: true, ..DecisionConfig::default() };
        let mut w = vec![0.3, 0.2, 0.5];
        shape(&mut w, &[ArmState::Exploring, ArmState::Stopped, ArmState::Winner], &[false; 3], &exploit, 0.05);
        assert_eq!(w, vec![0.05, 0.0, 0.95]);
        // An arm in its own burn-in keeps its new-arm weight under exploit.
        let mut w = vec![0.25, 0.25, 0.5];
        shape(&mut w, &[ArmState::Exploring, ArmState::Exploring, ArmState::Winner], &[true, false, false], &exploit, 0.05);
        assert_eq!(w, vec![0.25, 0.05, 0.7]);
    }
}
