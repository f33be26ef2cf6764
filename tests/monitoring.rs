//! The alert rules in `monitoring/` are valid and fire and clear as their promtool unit tests
//! say. promtool comes from Debian's `prometheus` package (scripts/test.sh installs it).

mod common;

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> (bool, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool is not installed (run scripts/test.sh, which installs it): {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn alert_rules_are_valid() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "{out}");
    assert!(out.contains("10 rules found"), "{out}");
}

#[test]
fn every_alert_fires_and_clears_in_its_promtool_unit_test() {
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(ok, "{out}");
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/alerts.yml")).expect("rules");
    let tests = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/alerts_test.yml")).expect("tests");
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "{alert} has no unit test");
    }
}

/// Every `banditflow_*` metric named in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("banditflow_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_use_only_metrics_the_worker_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("monitoring/dashboard.json")).expect("dashboard")).expect("dashboard is JSON");
    // Importable: a title, a uid, panels with unique ids and positions, queries on Prometheus.
    assert_eq!(dashboard["uid"], "banditflow");
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: std::collections::BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().expect("id")).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids repeat");
    let mut exprs = String::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push_str(target["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    for wanted in ["banditflow_consumer_lag_messages", "banditflow_event_time_lag_seconds", "banditflow_events_total", "banditflow_publish_latency_seconds_bucket", "banditflow_arm_weight", "banditflow_arm_p_best"] {
        assert!(exprs.contains(wanted), "the dashboard does not show {wanted}");
    }
    let alerts = std::fs::read_to_string(root.join("monitoring/alerts.yml")).expect("alerts");

    // A live endpoint: the demo's worker.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_banditflow"))
        .args(["demo", "--duration", "12s", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo");
    std::thread::sleep(std::time::Duration::from_secs(8));
    let (_, page) = common::http_get(port, "/metrics").expect("GET /metrics from the demo");
    let _ = demo.wait();
    let exported = metric_names(&page);
    for name in metric_names(&exprs).union(&metric_names(&alerts)) {
        assert!(exported.contains(name), "{name} is used but not exported; exported: {exported:?}");
    }
}
