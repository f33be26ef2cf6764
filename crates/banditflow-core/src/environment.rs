//! The simulated world of one entity in one repetition: the true rate of every live arm, how
//! the rates drift, when arms are retired and replaced, and each unit's outcome.
//!
//! Serving sees arms through **slots**: a fixed number of places, each holding one live arm
//! at a time. Churn replaces the arm in a slot; until the next refresh serving still draws
//! slots by the published weights, so the new arm inherits the old one's weight.
//!
//! Every random draw comes from a stream of its own, seeded from (seed, rep, entity, purpose):
//! the environment's path (rates, drift, churn) does not depend on what is served, so every
//! policy compared on it meets the same world (common random numbers).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, StandardNormal};

use crate::scenario::{Delay, Rates, Scenario};

/// What a random stream is for.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    /// Initial rates, drift and churn.
    World = 1,
    /// Which slot serving draws.
    Serving = 2,
    /// Whether a unit converts, and when.
    Outcomes = 3,
}

/// A seeded stream for (seed, rep, entity, purpose): distinct inputs give unrelated streams.
pub fn stream(seed: u64, rep: u32, entity: u32, purpose: Purpose) -> ChaCha8Rng {
    // SplitMix64's finalizer over the packed inputs: cheap, and every bit of each input
    // reaches every bit of the seed.
    let mut z = seed ^ (u64::from(rep) << 40) ^ (u64::from(entity) << 8) ^ (purpose as u64);
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(z);
    rng.set_stream(purpose as u64);
    rng
}

/// An arm in a slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveArm {
    /// The arm's number: arms are named `arm-NNN` in the order they were created.
    pub number: u32,
    /// Its true rate now.
    pub rate: f64,
}

/// One arm retired and its replacement, at a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Churn {
    /// The slot.
    pub slot: usize,
    /// The arm retired.
    pub retired: u32,
    /// The arm that takes its place.
    pub added: u32,
}

/// The world of one entity in one repetition.
pub struct Environment {
    world: ChaCha8Rng,
    outcomes: ChaCha8Rng,
    slots: Vec<LiveArm>,
    next_number: u32,
    new_rate: Option<Beta<f64>>,
    drift_sd: f64,
    churn: f64,
    delay: Delay,
    exponential: Option<Exp<f64>>,
}

/// The name of arm number `number`.
pub fn arm_name(number: u32) -> String {
    format!("arm-{number:03}")
}

impl Environment {
    /// The world of `entity` in repetition `rep` of `scenario`, its arms drawn.
    pub fn new(scenario: &Scenario, rep: u32, entity: u32) -> Environment {
        let mut world = stream(scenario.seed, rep, entity, Purpose::World);
        let new_rate = match scenario.rates {
            // Checked when the scenario was read: positive, finite.
            Rates::Beta(a, b) => Beta::new(a, b).ok(),
            Rates::Fixed(_) => None,
        };
        let slots: Vec<LiveArm> = (0..scenario.arms)
            .map(|i| {
                let rate = match (&scenario.rates, &new_rate) {
                    (Rates::Fixed(rates), _) => rates[i as usize],
                    (_, Some(beta)) => beta.sample(&mut world),
                    (Rates::Beta(..), None) => 0.5,
                };
                LiveArm { number: i, rate }
            })
            .collect();
        let exponential = match scenario.delay {
            Delay::Exponential(mean) if mean > 0.0 => Exp::new(1.0 / mean).ok(),
            _ => None,
        };
        Environment {
            world,
            outcomes: stream(scenario.seed, rep, entity, Purpose::Outcomes),
            next_number: scenario.arms,
            slots,
            new_rate,
            drift_sd: scenario.drift_sd_per_step,
            churn: scenario.churn_probability,
            delay: scenario.delay,
            exponential,
        }
    }

    /// The live arms, by slot.
    pub fn slots(&self) -> &[LiveArm] {
        &self.slots
    }

    /// Moves the world one step on: the rates drift, and with the churn probability one slot
    /// chosen uniformly gets a new arm.
    pub fn advance(&mut self) -> Option<Churn> {
        if self.drift_sd > 0.0 {
            for arm in &mut self.slots {
                let z: f64 = StandardNormal.sample(&mut self.world);
                arm.rate = logistic(logit(arm.rate) + self.drift_sd * z);
            }
        }
        if self.churn > 0.0 && self.world.random::<f64>() < self.churn {
            let slot = self.world.random_range(0..self.slots.len());
            let rate = self.new_rate.map_or(0.5, |beta| beta.sample(&mut self.world));
            let retired = self.slots[slot].number;
            let added = self.next_number;
            self.next_number += 1;
            self.slots[slot] = LiveArm { number: added, rate };
            return Some(Churn { slot, retired, added });
        }
        None
    }

    /// The largest true rate among the live arms.
    pub fn best_rate(&self) -> f64 {
        self.slots.iter().map(|a| a.rate).fold(0.0, f64::max)
    }

    /// The slot of the best live arm (the first among equals).
    pub fn best_slot(&self) -> usize {
        let best = self.best_rate();
        self.slots.iter().position(|a| a.rate == best).unwrap_or(0)
    }

    /// The mean true rate of the live arms: what a uniform split earns per unit.
    pub fn mean_rate(&self) -> f64 {
        self.slots.iter().map(|a| a.rate).sum::<f64>() / self.slots.len().max(1) as f64
    }

    /// Whether a unit served the arm in `slot` converts, and if so how many steps later its
    /// outcome arrives.
    pub fn outcome(&mut self, slot: usize) -> Option<u64> {
        let converts = self.outcomes.random::<f64>() < self.slots[slot].rate;
        // The delay is drawn either way, so one unit's conversion does not shift the draws
        // of the next.
        let delay = match (self.delay, &self.exponential) {
            (Delay::None, _) | (Delay::Exponential(_), None) => 0,
            (Delay::Fixed(steps), _) => steps,
            (Delay::Exponential(_), Some(exp)) => exp.sample(&mut self.outcomes) as u64,
        };
        converts.then_some(delay)
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Draws a slot from `weights` (non-negative, any total) with `rng`; uniform if they are all 0.
pub fn draw_slot(weights: &[f64], rng: &mut impl Rng) -> usize {
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return rng.random_range(0..weights.len().max(1));
    }
    let mut u = rng.random::<f64>() * total;
    for (slot, w) in weights.iter().enumerate() {
        if u < *w {
            return slot;
        }
        u -= w;
    }
    // Rounding left u at the very end: the last slot with weight.
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn scenario(extra: &str, rates: &str) -> Scenario {
        let text = format!("name = \"t\"\nsteps = 100\nrefresh_every = 10\ndataflow = \"j.toml\"\nseed = 7\n[arms]\ncount = 3\n{rates}\n{extra}");
        Scenario::from_toml_str(&text, Path::new("s.toml")).expect("scenario")
    }

    #[test]
    fn the_same_seed_gives_the_same_world_and_another_rep_another() {
        let s = scenario("[drift]\nsd_per_step = 0.01\n[churn]\nprobability = 0.05\n", "rate = { beta = [2, 8] }");
        let path = |rep| {
            let mut env = Environment::new(&s, rep, 0);
            (0..500).map(|_| (env.advance(), env.slots().to_vec())).collect::<Vec<_>>()
        };
        assert_eq!(path(0), path(0));
        assert_ne!(path(0), path(1));
        assert!(path(0).iter().filter(|(c, _)| c.is_some()).count() > 5, "churn happens at 5% a step");
    }

    #[test]
    fn outcomes_follow_the_rates_and_the_delay() {
        let s = scenario("[delay]\nkind = \"fixed\"\nsteps = 4\n", "rates = [0.0, 0.5, 1.0]");
        let mut env = Environment::new(&s, 0, 0);
        assert_eq!((env.best_rate(), env.best_slot(), env.mean_rate()), (1.0, 2, 0.5));
        assert_eq!(env.outcome(0), None);
        assert_eq!(env.outcome(2), Some(4));
        let converted = (0..10_000).filter(|_| env.outcome(1).is_some()).count();
        assert!((4_700..5_300).contains(&converted), "{converted}");
    }

    #[test]
    fn slots_are_drawn_by_weight() {
        let mut rng = stream(1, 0, 0, Purpose::Serving);
        let mut seen = [0u32; 3];
        for _ in 0..10_000 {
            seen[draw_slot(&[0.2, 0.0, 0.8], &mut rng)] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!((1_800..2_200).contains(&seen[0]), "{seen:?}");
        assert!((0..3).contains(&draw_slot(&[0.0, 0.0, 0.0], &mut rng)));
    }
}
