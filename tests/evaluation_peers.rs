//! `banditflow export` and `banditflow evaluate` against code we did not write: the exported
//! Parquet files open in pyarrow (from PyPI, in a throwaway venv) with the documented column
//! types and the same rows as the JSON lines, and a small numpy program — written from the
//! estimators' published definitions (Open Bandit Pipeline's `ope/estimators.py`), doing its
//! own look-up of the candidate's weights and its own reward model from the Parquet rows —
//! gives the IPS, SNIPS and DR estimates and intervals `evaluate --format json` prints, to 1e-9.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn banditflow(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_banditflow")).args(args).output().expect("run banditflow");
    assert!(output.status.success(), "banditflow {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A venv in `dir` with pyarrow and numpy; its python.
fn python(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 -m venv");
    assert!(status.success(), "python3 -m venv failed (is python3-venv installed? scripts/test.sh installs it)");
    let pip = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", "numpy==2.2.6", "pyarrow==21.0.0"]).output().expect("pip");
    assert!(pip.status.success(), "pip install: {}", String::from_utf8_lossy(&pip.stderr));
    venv.join("bin/python")
}

/// Reads one entity's Parquet file and the candidate's records, and prints the estimates of
/// every window as JSON.
const REFERENCE: &str = r#"
import json, sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

parquet, jsonl, records_path, windows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
clip = float(sys.argv[5])
table = pq.read_table(parquet)
types = {f.name: str(f.type) for f in table.schema}
rows = table.to_pylist()
lines = [json.loads(l) for l in open(jsonl) if l.strip()]
same = len(rows) == len(lines) and all(
    r["assignment_id"] == l["assignment_id"] and r["ts"] == l["ts"] and r["reward"] == l["reward"]
    and r["propensity"] == l["propensity"] and json.loads(r["context"]) == l["context"] for r, l in zip(rows, lines))

entity = rows[0]["entity_id"]
records = sorted((json.loads(l) for l in open(records_path) if l.strip()), key=lambda r: r["as_of"])
records = [r for r in records if r["entity_id"] == entity]
arms = sorted({r["arm_id"] for r in rows} | {a["arm_id"] for rec in records for a in rec["arms"]})
K = len(arms)
as_of = np.array([r["as_of"] for r in records])

first_arms = {a["arm_id"] for a in records[0]["arms"]} if records else set(r["arm_id"] for r in rows)

def candidate(ts):
    i = np.searchsorted(as_of, ts, side="left") - 1   # newest record with as_of < ts
    if i < 0:   # before the first record: uniform over the arms it lists
        return np.array([1.0 / len(first_arms) if a in first_arms else 0.0 for a in arms])
    weights = {a["arm_id"]: a["weight"] for a in records[i]["arms"]}
    return np.array([weights.get(a, 0.0) for a in arms])

def normal(terms, n):
    m = terms.mean()
    se = terms.std(ddof=1) / np.sqrt(n)
    return {"estimate": m, "ci95": [m - 1.959963984540054 * se, m + 1.959963984540054 * se]}

out = []
for start, end in windows:
    use = [r for r in rows if start <= r["ts"] < end and r["propensity"] is not None and r["propensity"] > 0]
    n = len(use)
    action = np.array([arms.index(r["arm_id"]) for r in use])
    reward = np.array([r["reward"] for r in use], dtype=float)
    pscore = np.array([r["propensity"] for r in use])
    pi_e = np.array([candidate(r["ts"]) for r in use])
    # The reward model: each arm's mean reward in the window (the window's mean for an arm without rows).
    q = np.array([reward[action == k].mean() if (action == k).any() else reward.mean() for k in range(K)])
    q_hat = np.tile(q, (n, 1))
    idx = np.arange(n)
    w = pi_e[idx, action] / pscore
    ips = normal(w * reward, n)                                   # IPW: mean(w r)
    snips_v = (w * reward).sum() / w.sum()                         # SNIPW: sum(w r) / sum(w)
    lin = w * (reward - snips_v) / w.mean()
    se = lin.std(ddof=1) / np.sqrt(n)
    snips = {"estimate": snips_v, "ci95": [snips_v - 1.959963984540054 * se, snips_v + 1.959963984540054 * se]}
    dr = normal((pi_e * q_hat).sum(axis=1) + w * (reward - q_hat[idx, action]), n)   # DR
    out.append({"window_end": end, "rows": n, "ips": ips, "snips": snips, "dr": dr,
                "ess": w.sum() ** 2 / (w ** 2).sum(), "above_clip": float((w > clip).mean())})
print(json.dumps({"types": types, "same_as_jsonl": same, "windows": out}))
"#;

#[test]
fn pyarrow_reads_the_dataset_and_numpy_gives_the_same_estimates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |name: &str| dir.path().join(name).display().to_string();
    let job = root().join("dataflows/simulate.toml");
    std::fs::write(
        dir.path().join("scenario.toml"),
        format!("name = \"reference\"\ndataflow = \"{}\"\nsteps = 6000\nreps = 1\nseed = 9\nrefresh_every = 100\nentities = 2\n[arms]\ncount = 4\nrate = {{ beta = [3.0, 12.0] }}\n[delay]\nkind = \"exponential\"\nsteps = 5\n", job.display()),
    )
    .expect("scenario");
    let candidate = std::fs::read_to_string(&job).expect("job").replace("floor = 0.01", "floor = 0.15").replace("min_trials = 20", "min_trials = 200");
    std::fs::write(dir.path().join("explore.toml"), candidate).expect("candidate");
    banditflow(&["simulate", "--scenario", &d("scenario.toml"), "--log-dir", &d("logs"), "--quiet", "--out", &d("report.json")]);
    let rep = |name: &str| dir.path().join("logs/rep-000").join(name).display().to_string();
    banditflow(&["export", "--quiet", "--dataflow", &job.display().to_string(), "--assignments", &rep("assignments.jsonl"), "--outcomes", &rep("outcomes.jsonl"), "--arms", &rep("arms.jsonl"), "--weights", &rep("weights.jsonl"), "--out", &d("dataset")]);
    let json = banditflow(&["evaluate", "--quiet", "--dataset", &d("dataset"), "--candidate", &d("explore.toml"), "--window", "2s", "--step", "1s", "--format", "json", "--weights-out", &d("candidates")]);
    let ours: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("dataset/manifest.json")).expect("manifest")).expect("json");
    let python = python(dir.path());
    let mut checked = 0;
    for part in manifest["entities"].as_array().expect("entities") {
        let entity = part["entity_id"].as_str().expect("id");
        let mine: Vec<&Value> = ours.iter().filter(|r| r["entity_id"] == entity).collect();
        assert!(mine.len() >= 5, "{entity}: one row per window end");
        let windows: Vec<[i64; 2]> = mine.iter().map(|r| [r["window_start"].as_i64().expect("start"), r["window_end"].as_i64().expect("end")]).collect();
        let output = Command::new(&python)
            .arg("-c")
            .arg(REFERENCE)
            .arg(dir.path().join("dataset").join(part["parquet"].as_str().expect("parquet")))
            .arg(dir.path().join("dataset").join(part["jsonl"].as_str().expect("jsonl")))
            .arg(dir.path().join("candidates/explore.jsonl"))
            .arg(serde_json::to_string(&windows).expect("windows"))
            .arg("10")
            .output()
            .expect("run the reference");
        assert!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
        let reference: Value = serde_json::from_slice(&output.stdout).expect("the reference's JSON");
        let types = &reference["types"];
        for (column, expected) in [("assignment_id", "string"), ("entity_id", "string"), ("arm_id", "string"), ("unit_id", "string"), ("ts", "int64"), ("resolved_at", "int64"), ("reward", "int8"), ("weights_version", "uint64"), ("propensity", "double"), ("propensity_source", "string"), ("fallback", "bool"), ("sticky", "bool"), ("context", "string")] {
            assert_eq!(types[column], expected, "{column}: {types}");
        }
        assert_eq!(reference["same_as_jsonl"], true, "the Parquet rows are the JSON lines' rows");
        for (row, theirs) in mine.iter().zip(reference["windows"].as_array().expect("windows")) {
            assert_eq!(row["rows"], theirs["rows"]);
            let close = |path: &[&str]| {
                let pick = |v: &Value| path.iter().fold(v.clone(), |v, p| match p.parse::<usize>() {
                    Ok(i) => v[i].clone(),
                    Err(_) => v[*p].clone(),
                });
                let (a, b) = (pick(row).as_f64().expect("ours"), pick(theirs).as_f64().expect("numpy's"));
                assert!((a - b).abs() <= 1e-9, "{entity} window ending {}: {path:?} {a} against numpy's {b}", row["window_end"]);
            };
            for estimator in ["ips", "snips", "dr"] {
                close(&[estimator, "estimate"]);
                close(&[estimator, "ci95", "0"]);
                close(&[estimator, "ci95", "1"]);
            }
            close(&["ess"]);
            close(&["above_clip"]);
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} windows checked");
}
