//! The off-policy estimators against an independent implementation: a small numpy program,
//! written from the estimators' published definitions (as Open Bandit Pipeline's
//! `ope/estimators.py` states them: `InverseProbabilityWeighting`,
//! `SelfNormalizedInverseProbabilityWeighting`, `DoublyRobust`), run in a throwaway venv on
//! the same rows: propensities, candidate probabilities and reward model. Point estimates,
//! the effective sample size and the normal-approximation intervals agree to 1e-9.

use std::process::Command;

use banditflow_core::evaluation::{estimate, LoggedRow};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A row's data, owned: [`LoggedRow`] borrows its arms' probabilities.
struct Owned {
    reward: f64,
    arm: usize,
    propensity: f64,
    candidate: Vec<f64>,
    model: Vec<f64>,
}

impl Owned {
    fn row(&self) -> LoggedRow<'_> {
        LoggedRow { reward: self.reward, arm: self.arm, propensity: self.propensity, candidate: &self.candidate, model: &self.model }
    }
}

/// `n` rows over `k` arms: a logging policy and a candidate that differ, rewards from rates.
fn rows(n: usize, k: usize, seed: u64) -> Vec<Owned> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let rates: Vec<f64> = (0..k).map(|_| rng.random_range(0.02..0.2)).collect();
    (0..n)
        .map(|_| {
            let mut logging: Vec<f64> = (0..k).map(|_| rng.random_range(0.05..1.0)).collect();
            let total: f64 = logging.iter().sum();
            logging.iter_mut().for_each(|p| *p /= total);
            let mut candidate: Vec<f64> = (0..k).map(|a| if a == 0 { 0.0 } else { rng.random_range(0.0..1.0) }).collect();
            let total: f64 = candidate.iter().sum();
            candidate.iter_mut().for_each(|p| *p /= total);
            let draw: f64 = rng.random();
            let mut arm = k - 1;
            let mut cumulative = 0.0;
            for (a, p) in logging.iter().enumerate() {
                cumulative += p;
                if draw < cumulative {
                    arm = a;
                    break;
                }
            }
            let reward = f64::from(u8::from(rng.random_bool(rates[arm])));
            let model: Vec<f64> = rates.iter().map(|r| (r + rng.random_range(-0.01..0.01)).clamp(0.0, 1.0)).collect();
            Owned { reward, arm, propensity: logging[arm], candidate, model }
        })
        .collect()
}

const REFERENCE: &str = r#"
import json, sys
import numpy as np
data = json.load(open(sys.argv[1]))
reward = np.array(data["reward"], dtype=float)
action = np.array(data["action"], dtype=int)
pscore = np.array(data["pscore"], dtype=float)
pi_e = np.array(data["action_dist"], dtype=float)          # n x K
q_hat = np.array(data["estimated_rewards"], dtype=float)   # n x K
clip = float(data["clip"])
n = reward.shape[0]
idx = np.arange(n)
w = pi_e[idx, action] / pscore
def normal(terms):
    m = terms.mean()
    se = terms.std(ddof=1) / np.sqrt(n)
    return m, [m - 1.959963984540054 * se, m + 1.959963984540054 * se]
ips_terms = w * reward
ips, ips_ci = normal(ips_terms)
snips = ips_terms.sum() / w.sum()
lin = w * (reward - snips) / w.mean()
se = lin.std(ddof=1) / np.sqrt(n)
snips_ci = [snips - 1.959963984540054 * se, snips + 1.959963984540054 * se]
dr_terms = (pi_e * q_hat).sum(axis=1) + w * (reward - q_hat[idx, action])
dr, dr_ci = normal(dr_terms)
print(json.dumps({"ips": ips, "ips_ci": ips_ci, "snips": snips, "snips_ci": snips_ci, "dr": dr, "dr_ci": dr_ci,
                  "ess": w.sum() ** 2 / (w ** 2).sum(), "above_clip": float((w > clip).mean())}))
"#;

#[test]
fn ips_snips_and_dr_agree_with_a_numpy_reference_to_1e_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let venv = dir.path().join("venv");
    assert!(Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 -m venv").success(), "python3 -m venv failed");
    let pip = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", "numpy==2.2.6"]).output().expect("pip");
    assert!(pip.status.success(), "pip install numpy: {}", String::from_utf8_lossy(&pip.stderr));
    for (n, k, seed) in [(2_000, 2, 1), (5_000, 3, 2), (10_000, 10, 3)] {
        let rows = rows(n, k, seed);
        let clip = 5.0;
        let views: Vec<LoggedRow<'_>> = rows.iter().map(Owned::row).collect();
        let ours = estimate(&views, clip).expect("rows");
        let input = json!({
            "reward": rows.iter().map(|r| r.reward).collect::<Vec<_>>(),
            "action": rows.iter().map(|r| r.arm).collect::<Vec<_>>(),
            "pscore": rows.iter().map(|r| r.propensity).collect::<Vec<_>>(),
            "action_dist": rows.iter().map(|r| r.candidate.clone()).collect::<Vec<_>>(),
            "estimated_rewards": rows.iter().map(|r| r.model.clone()).collect::<Vec<_>>(),
            "clip": clip,
        });
        let path = dir.path().join(format!("rows-{seed}.json"));
        std::fs::write(&path, input.to_string()).expect("rows file");
        let output = Command::new(venv.join("bin/python")).arg("-c").arg(REFERENCE).arg(&path).output().expect("run the reference");
        assert!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
        let reference: Value = serde_json::from_slice(&output.stdout).expect("the reference's JSON");
        let close = |name: &str, ours: f64, theirs: &Value| {
            let theirs = theirs.as_f64().unwrap_or(f64::NAN);
            assert!((ours - theirs).abs() <= 1e-9, "n = {n}, K = {k}: {name} {ours} against numpy's {theirs}");
        };
        close("ips", ours.ips.estimate, &reference["ips"]);
        close("snips", ours.snips.estimate, &reference["snips"]);
        close("dr", ours.dr.estimate, &reference["dr"]);
        close("ess", ours.ess, &reference["ess"]);
        close("above_clip", ours.above_clip, &reference["above_clip"]);
        for (name, ci) in [("ips_ci", ours.ips.ci95), ("snips_ci", ours.snips.ci95), ("dr_ci", ours.dr.ci95)] {
            close(name, ci[0], &reference[name][0]);
            close(name, ci[1], &reference[name][1]);
        }
        assert!(ours.ess < n as f64 && ours.ess > 1.0, "the candidate differs from the logging policy: {}", ours.ess);
    }
}
