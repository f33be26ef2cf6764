//! An unmodified GrowthBook SDK (Python, from PyPI into a throwaway venv) pointed at
//! `banditflow serve` assigns every one of 10,000 units the same arm as the client's
//! `assign` does, for entities of 2, 3 and 10 arms, unit ids outside ASCII included; and
//! `/assign` answers as the library does.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banditflow_client::{Assigner, Defaults, WeightRecord, WeightsCache};
use common::*;
use serde_json::{json, Value};

const PREFIX: &str = "gb";
const UNITS: usize = 10_000;
/// Pinned so the test checks against a known SDK (4.0.0 hashes UTF-16 code units).
const SDK: &str = "growthbook==4.0.0";

fn entities() -> Vec<(&'static str, Vec<f64>)> {
    let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
    ten[4] = 0.0; // an arm with no weight owns no range
    let total: f64 = ten.iter().sum();
    vec![("hero", vec![0.3, 0.7]), ("ranker", vec![0.2, 0.5, 0.3]), ("feed", ten.iter().map(|w| w / total).collect())]
}

fn record(entity: &str, weights: &[f64], computed_at: i64) -> WeightRecord {
    let arms: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"arm_id": format!("arm-{i}"), "weight": w, "p_best": w, "alpha": 1.0, "beta": 1.0, "trials": 0, "successes": 0,
            "mean": 0.5, "ci95": [0.0, 1.0], "expected_loss": 0.0, "vs_control": null, "state": "exploring"}))
        .collect();
    serde_json::from_value(json!({"entity_id": entity, "version": 1_000, "as_of": 1_000, "computed_at": computed_at, "status": "adaptive", "arms": arms,
        "chi_square": {"statistic": 0.0, "dof": 0, "p_value": 1.0},
        "srm": {"statistic": 0.0, "dof": 0, "p_value": 1.0, "flagged": false, "matched": 0, "unmatched": 0},
        "max_age_hint_ms": 5_000, "dataflow": "gb-test", "schema_version": banditflow_client::SCHEMA_VERSION}))
    .expect("a weight record")
}

/// Unit ids: mostly ASCII, some accented, some CJK, some outside the Basic Multilingual Plane.
fn units() -> Vec<String> {
    (0..UNITS)
        .map(|i| match i {
            _ if i % 101 == 0 => format!("emoji-😀-{i}"),
            _ if i % 13 == 0 => format!("用户-{i}"),
            _ if i % 7 == 0 => format!("ünïcödé-{i}"),
            _ => format!("user-{i}"),
        })
        .collect()
}

fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// A venv with the GrowthBook SDK in `dir`; its python.
fn sdk_python(dir: &Path) -> std::path::PathBuf {
    let venv = dir.join("venv");
    let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 -m venv");
    assert!(status.success(), "python3 -m venv failed (is python3-venv installed? scripts/test.sh installs it)");
    let pip = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", SDK]).output().expect("pip");
    assert!(pip.status.success(), "pip install {SDK}: {}", String::from_utf8_lossy(&pip.stderr));
    venv.join("bin/python")
}

const SCRIPT: &str = r#"
import json, sys
from growthbook import GrowthBook
api_host, units_file = sys.argv[1], sys.argv[2]
units = open(units_file, encoding="utf-8").read().split("\n")
gb = GrowthBook(api_host=api_host, client_key="banditflow")
gb.load_features()
out = {}
for feature in sorted(gb.get_features().keys()):
    arms = []
    for unit in units:
        gb.set_attributes({"id": unit})
        arms.append(gb.eval_feature(feature).value)
    out[feature] = arms
print(json.dumps(out))
"#;

#[test]
fn a_growthbook_sdk_pointed_at_serve_assigns_every_unit_as_assign_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    let redis = Redis::start(&redis_dir);
    let now = now_ms();
    let mut connection = redis.connection();
    let local = Arc::new(WeightsCache::new());
    for (entity, weights) in entities() {
        let r = record(entity, &weights, now);
        let _: () = redis::cmd("SET").arg(format!("{PREFIX}:{entity}")).arg(serde_json::to_string(&r).expect("json")).query(&mut connection).expect("SET");
        local.offer(r);
    }
    let mut job = format!("name = \"gb-test\"\ntick = \"1s\"\nwindow = \"10m\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n\n[redis]\nurl = \"{}\"\nprefix = \"{PREFIX}\"\n", redis.url());
    for (entity, weights) in entities() {
        let arms: Vec<String> = (0..weights.len()).map(|i| format!("\"arm-{i}\"")).collect();
        job.push_str(&format!("\n[[arms]]\nentity_id = \"{entity}\"\narm_ids = [{}]\n", arms.join(", ")));
    }
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job).expect("job");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_banditflow"))
        .args(["serve", "--dataflow"])
        .arg(&job_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--max-age", "1h"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(port, "/readyz").is_none_or(|(status, _)| status != 200) {
        let exited = serve.try_wait().ok().flatten();
        assert!(Instant::now() < deadline && exited.is_none(), "serve never became ready ({exited:?}): {}", std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The library's answers.
    let assigner = Assigner::new(local, Defaults::new(None));
    let units = units();
    let expected: Vec<(&str, Vec<String>)> =
        entities().iter().map(|(entity, _)| (*entity, units.iter().map(|u| assigner.assign(entity, u).expect("served").arm_id).collect())).collect();

    // The service's /assign agrees with the library (a sample: one request each).
    for (entity, arms) in &expected {
        for i in (0..UNITS).step_by(97) {
            let (status, body) = http_get(port, &format!("/assign?entity={entity}&unit={}", percent_encoded(&units[i]))).expect("GET /assign");
            assert_eq!(status, 200, "{body}");
            let served: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!((served["arm_id"].as_str(), served["unit_id"].as_str()), (Some(arms[i].as_str()), Some(units[i].as_str())), "{entity}: {body}");
            assert_eq!(served["weights_version"], 1_000);
        }
    }

    // The SDK's answers, from the service's features payload.
    let python = sdk_python(dir.path());
    let units_file = dir.path().join("units.txt");
    std::fs::write(&units_file, units.join("\n")).expect("units");
    let output = Command::new(python).arg("-c").arg(SCRIPT).arg(format!("http://127.0.0.1:{port}")).arg(&units_file).output().expect("run the SDK");
    assert!(output.status.success(), "the SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    let sdk: Value = serde_json::from_slice(&output.stdout).expect("the SDK's JSON");
    for (entity, arms) in &expected {
        let got: Vec<String> = sdk[entity].as_array().unwrap_or_else(|| panic!("no feature {entity} in {sdk}")).iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect();
        assert_eq!(got.len(), UNITS);
        let differing: Vec<(&String, &String, &String)> = units.iter().zip(arms).zip(&got).filter(|((_, a), b)| a != b).map(|((u, a), b)| (u, a, b)).take(5).collect();
        assert!(differing.is_empty(), "{entity}: the SDK differs from assign, e.g. (unit, assign, SDK) {differing:?}");
        let distinct: std::collections::BTreeSet<&String> = arms.iter().collect();
        assert!(distinct.len() > 1, "{entity}: more than one arm served");
    }
    let _ = serve.kill();
    let _ = serve.wait();
}
