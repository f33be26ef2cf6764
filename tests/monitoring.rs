//! The alert rules in `monitoring/` are valid and fire and clear as their promtool unit tests
//! say. promtool comes from Debian's `prometheus` package (scripts/test.sh installs it).

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
    assert!(out.contains("6 rules found"), "{out}");
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
