//! A simulation scenario: an environment whose truth is known (how many arms, their rates,
//! how the rates move, how arms come and go, how late outcomes arrive) and how long and how
//! often to run the dataflow against it. `banditflow simulate` reads it from TOML; the keys
//! are those of the README's "Simulate" section.
//!
//! Steps are the simulator's clock: one unit is served per step (per entity), and one step is
//! one millisecond of event time, so the job file's durations read as steps.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the scenario file says.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its name, for reports.
    pub name: String,
    /// Units served per entity, one per step.
    pub steps: u64,
    /// Independent repetitions (each with its own environment draw).
    pub reps: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// The weights are refreshed every this many steps: the dataflow's tick.
    pub refresh_every: u64,
    /// The job file whose window, attribution, prior, policy and decision rules are run, as
    /// written in the scenario (relative paths are read from the scenario's folder).
    pub dataflow: PathBuf,
    /// Independent copies of the problem in one dataflow.
    pub entities: u32,
    /// Number of arms live at any time.
    pub arms: u32,
    /// Where each arm's rate comes from.
    pub rates: Rates,
    /// Standard deviation per step of each rate's random walk on the logit scale (0: none).
    pub drift_sd_per_step: f64,
    /// Per step, the probability that one live arm is retired and replaced (0: never).
    pub churn_probability: f64,
    /// How long after its assignment an outcome arrives.
    pub delay: Delay,
}

/// Where the arms' true rates come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Rates {
    /// These rates, one per arm (arms that churn in draw from nothing: churn needs `Beta`).
    Fixed(Vec<f64>),
    /// Each arm's rate drawn from Beta(a, b), new arms included.
    Beta(f64, f64),
}

/// The delay of an outcome after its assignment, in steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delay {
    /// In the same step.
    None,
    /// Always this many steps.
    Fixed(u64),
    /// Exponential with this mean, rounded down to whole steps.
    Exponential(f64),
}

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario `{}`: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file was read but is not a valid scenario.
    #[error("scenario `{}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key's path.
        message: String,
    },
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    steps: u64,
    #[serde(default = "one")]
    reps: u32,
    #[serde(default)]
    seed: u64,
    refresh_every: u64,
    dataflow: PathBuf,
    #[serde(default = "one")]
    entities: u32,
    arms: RawArms,
    drift: Option<RawDrift>,
    churn: Option<RawChurn>,
    delay: Option<RawDelay>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArms {
    count: u32,
    rates: Option<Vec<f64>>,
    rate: Option<RawRate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    beta: [f64; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    sd_per_step: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChurn {
    probability: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    kind: String,
    #[serde(default)]
    steps: f64,
}

impl Scenario {
    /// Parses and checks a scenario; `origin` names it in errors and anchors a relative
    /// `dataflow` path (its folder).
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Scenario, ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid { path: origin.to_path_buf(), message };
        // The job file's parser: the same messages, with the key and the line.
        let raw: RawScenario = crate::config::from_toml(text).map_err(|e| invalid(e.to_string()))?;
        let rates = match (raw.arms.rates, raw.arms.rate) {
            (Some(rates), None) => {
                if rates.len() != raw.arms.count as usize {
                    return Err(invalid(format!("arms.rates lists {} rates for arms.count = {}", rates.len(), raw.arms.count)));
                }
                if let Some(bad) = rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
                    return Err(invalid(format!("arms.rates: {bad} is not a rate in [0, 1]")));
                }
                Rates::Fixed(rates)
            }
            (None, Some(RawRate { beta: [a, b] })) => {
                if !(a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) {
                    return Err(invalid(format!("arms.rate.beta: [{a}, {b}] must be two positive numbers")));
                }
                Rates::Beta(a, b)
            }
            _ => return Err(invalid("[arms] needs exactly one of `rates = [...]` and `rate = { beta = [a, b] }`".into())),
        };
        let drift = raw.drift.map_or(0.0, |d| d.sd_per_step);
        if !(drift >= 0.0 && drift.is_finite()) {
            return Err(invalid(format!("drift.sd_per_step: {drift} must be 0 or more")));
        }
        let churn = raw.churn.map_or(0.0, |c| c.probability);
        if !(0.0..=1.0).contains(&churn) {
            return Err(invalid(format!("churn.probability: {churn} is not a probability")));
        }
        if churn > 0.0 && matches!(rates, Rates::Fixed(_)) {
            return Err(invalid("churn draws each new arm's rate from `arms.rate = { beta = [a, b] }`, not from `arms.rates`".into()));
        }
        let delay = match raw.delay {
            None => Delay::None,
            Some(d) if !(d.steps >= 0.0 && d.steps.is_finite()) => return Err(invalid(format!("delay.steps: {} must be 0 or more", d.steps))),
            Some(d) => match d.kind.as_str() {
                "none" => Delay::None,
                "fixed" => Delay::Fixed(d.steps.round() as u64),
                "exponential" => Delay::Exponential(d.steps),
                other => return Err(invalid(format!("delay.kind: `{other}` is not one of none, fixed, exponential"))),
            },
        };
        for (key, value) in [("steps", raw.steps), ("refresh_every", raw.refresh_every), ("arms.count", u64::from(raw.arms.count)), ("reps", u64::from(raw.reps)), ("entities", u64::from(raw.entities))] {
            if value == 0 {
                return Err(invalid(format!("{key} must be at least 1")));
            }
        }
        if raw.name.trim().is_empty() {
            return Err(invalid("name must not be empty".into()));
        }
        let dataflow = if raw.dataflow.is_relative() { origin.parent().unwrap_or(Path::new(".")).join(&raw.dataflow) } else { raw.dataflow };
        Ok(Scenario {
            name: raw.name,
            steps: raw.steps,
            reps: raw.reps,
            seed: raw.seed,
            refresh_every: raw.refresh_every,
            dataflow,
            entities: raw.entities,
            arms: raw.arms.count,
            rates,
            drift_sd_per_step: drift,
            churn_probability: churn,
            delay,
        })
    }

    /// Reads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read { path: path.to_path_buf(), error })?;
        Scenario::from_toml_str(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml_str(text, Path::new("scenarios/s.toml"))
    }

    const MINIMAL: &str = "name = \"s\"\nsteps = 1000\nrefresh_every = 10\ndataflow = \"../job.toml\"\n[arms]\ncount = 2\nrates = [0.1, 0.2]\n";

    #[test]
    fn a_minimal_scenario_takes_the_defaults_and_anchors_the_job_file() {
        let s = parse(MINIMAL).expect("valid");
        assert_eq!((s.reps, s.seed, s.entities, s.delay, s.churn_probability), (1, 0, 1, Delay::None, 0.0));
        assert_eq!(s.dataflow, Path::new("scenarios/../job.toml"));
        assert_eq!(s.rates, Rates::Fixed(vec![0.1, 0.2]));
    }

    #[test]
    fn every_mistake_is_named() {
        let cases = [
            (MINIMAL.replace("rates = [0.1, 0.2]", "rates = [0.1]"), "lists 1 rates"),
            (MINIMAL.replace("rates = [0.1, 0.2]", "rates = [0.1, 1.5]"), "1.5 is not a rate"),
            (MINIMAL.replace("rates = [0.1, 0.2]", "rate = { beta = [0, 1] }"), "two positive numbers"),
            (MINIMAL.replace("rates = [0.1, 0.2]", ""), "exactly one of"),
            (MINIMAL.replace("steps = 1000", "steps = 0"), "steps must be at least 1"),
            (MINIMAL.to_owned() + "[delay]\nkind = \"soon\"\n", "`soon` is not one of"),
            (MINIMAL.to_owned() + "[churn]\nprobability = 0.1\n", "churn draws each new arm"),
            (MINIMAL.replace("refresh_every", "refresh"), "unknown key `refresh` at line 3"),
            (MINIMAL.to_owned() + "[drift]\nsd_per_step = -1\n", "must be 0 or more"),
        ];
        for (text, expected) in cases {
            let error = parse(&text).expect_err(expected).to_string();
            assert!(error.contains(expected) && error.contains("scenarios/s.toml"), "{error}");
        }
    }
}
