//! The `banditflow` binary end to end: replay from files and standard input, bad lines
//! counted and skipped, output valid against `schemas/weights.schema.json`, clear errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_banditflow"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, o) = (dir.join("a.jsonl"), dir.join("o.jsonl"));
    let out = bin()
        .args(["generate", "--count", "20000", "--entities", "4", "--arms", "3", "--duration-ms", "14400000", "--rate", "0.1"])
        .arg("--assignments-out")
        .arg(&a)
        .arg("--outcomes-out")
        .arg(&o)
        .output()
        .expect("run generate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("generate prints a JSON summary");
    assert_eq!(summary["assignments"], 20_000);
    (a, o)
}

fn weights_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo("schemas/weights.schema.json")).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

#[test]
fn replay_output_validates_against_the_weight_schema_and_bad_lines_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = generate(dir.path());
    // Bad lines in the middle of good ones: counted by reason, never fatal.
    let mut bad = std::fs::read_to_string(&a).expect("read");
    bad.insert_str(bad.find('\n').expect("lines") + 1, "{\"assignment_id\": 3}\nnot json\n\n");
    std::fs::write(&a, bad).expect("write");
    let out_file = dir.path().join("weights.jsonl");
    let outcomes = std::fs::read(&o).expect("read outcomes");
    let mut child = bin()
        .args(["replay", "--workers", "2", "--dataflow"])
        .arg(repo("dataflows/bench.toml"))
        .arg("--assignments")
        .arg(&a)
        .args(["--outcomes", "-", "--out"])
        .arg(&out_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn replay");
    child.stdin.take().expect("stdin").write_all(&outcomes).expect("feed outcomes on stdin");
    let out = child.wait_with_output().expect("replay finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary_line = stderr.lines().find_map(|l| l.strip_prefix("summary: ")).expect("a summary line");
    let summary: Value = serde_json::from_str(summary_line).expect("summary is JSON");
    assert_eq!(summary["assignments_read"], 20_002);
    assert_eq!(summary["malformed"]["invalid_field"], 1);
    assert_eq!(summary["malformed"]["invalid_json"], 1);
    assert_eq!(summary["assignments_applied"], 20_000);
    let validator = weights_validator();
    let text = std::fs::read_to_string(&out_file).expect("output written");
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert!(records.len() > 100, "{} records", records.len());
    assert_eq!(summary["records_written"], records.len());
    for r in &records {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{r}: {errors:?}");
        let sum: f64 = r["arms"].as_array().expect("arms").iter().map(|a| a["weight"].as_f64().expect("weight")).sum();
        assert!((sum - 1.0).abs() < 1e-9, "weights sum to {sum}");
    }
    // Versions strictly increase per entity.
    let mut last = std::collections::HashMap::new();
    for r in &records {
        let v = r["version"].as_u64().expect("version");
        if let Some(prev) = last.insert(r["entity_id"].to_string(), v) {
            assert!(v > prev);
        }
    }
}

#[test]
fn replay_rejects_an_invalid_job_file_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("bad.toml");
    std::fs::write(&job, "name = \"x\"\ntick = \"1m\"\nwindow = \"10m\"\nattribution = \"30m\"\nallowed_lateness = \"1m\"\n").expect("write");
    let out = bin().args(["replay", "--assignments", "a", "--outcomes", "b", "--dataflow"]).arg(&job).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`window`") && stderr.contains("`attribution`"), "{stderr}");
}

#[test]
fn replay_of_a_missing_file_fails_with_its_name() {
    let out = bin()
        .args(["replay", "--outcomes", "-", "--assignments", "/nonexistent/assignments.jsonl", "--dataflow"])
        .arg(repo("dataflows/bench.toml"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/assignments.jsonl"));
}

#[test]
fn demo_runs_the_closed_loop_and_its_weights_favour_the_best_true_rates() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("demo.log");
    let mut demo = bin()
        .args(["demo", "--workers", "2", "--duration", "20s", "--metrics-listen", &format!("127.0.0.1:{port}"), "--log-file"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run demo");
    // The worker's metrics endpoint is up while the demo runs, and counts what it reads
    // (watched for as long as the demo runs: a debug build on a loaded machine is slow).
    let mut read = 0.0;
    while read <= 1_000.0 && demo.try_wait().ok().flatten().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let page = scrape(port).unwrap_or_default();
        read = page.lines().find_map(|l| l.strip_prefix(r#"banditflow_events_read_total{topic="assignments"} "#)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
    }
    assert!(read > 1_000.0, "the demo's metrics endpoint never showed 1,000 assignments read");
    // It ends by itself after its --duration (a generous deadline: this is not a speed test).
    // Its output is read meanwhile, so a full pipe cannot hold it up.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
            }
            bytes
        })
    };
    let stdout_reader = drain(demo.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr_reader = drain(demo.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while demo.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let ended = demo.try_wait().ok().flatten();
    if ended.is_none() {
        let _ = demo.kill();
        let _ = demo.wait();
    }
    let out = std::process::Output {
        status: ended.unwrap_or_else(|| demo.wait().expect("killed demo")),
        stdout: stdout_reader.join().expect("stdout"),
        stderr: stderr_reader.join().expect("stderr"),
    };
    assert!(ended.is_some(), "the demo did not end by itself: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("t+"), "no live table: {stdout}");
    // Not a terminal: plain tables, the legend once, no escape codes, no log lines.
    assert!(stdout.contains("What the columns mean") && stdout.contains("true rate") && !stdout.contains("true_rate"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "escape codes in a pipe: {stdout}");
    assert!(stdout.contains(&format!("log lines go to {}", log.display())), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("INFO") && !stderr.contains("worker starting"), "log lines on standard error: {stderr}");
    let logged = std::fs::read_to_string(&log).expect("the log file");
    assert!(logged.contains("worker starting") && logged.contains("mode=production"), "{logged}");
    assert!(!logged.contains('\x1b'), "escape codes in the log file: {logged}");
    let (_, last) = stdout.split_once("final weights:").unwrap_or_else(|| panic!("no final table: {stdout}"));
    // entity -> [(weight, true rate)] from the rows of the final table.
    let mut arms: std::collections::BTreeMap<&str, Vec<(f64, f64)>> = Default::default();
    let mut arm_ids: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for row in last.lines().map(str::split_whitespace).map(Iterator::collect::<Vec<_>>).filter(|c| c.len() == 8 && c[0].starts_with("entity-")) {
        let weight: f64 = row[2].parse().expect("weight");
        let truth: f64 = row[7].parse().expect("true rate");
        arms.entry(row[0]).or_default().push((weight, truth));
        arm_ids.entry(row[0]).or_default().push(row[1]);
    }
    assert_eq!(arms.len(), 4, "{last}");
    // The arms came from the registry: entity-000 lost its worst arm and gained arm-3 during
    // the run, as the demo said when it did it.
    let retired = stdout.lines().find_map(|l| l.strip_prefix("registry: ")?.split("retired entity-000/").nth(1)?.split_whitespace().next()).unwrap_or_else(|| panic!("no retirement: {stdout}"));
    assert!(stdout.contains("declared entity-000/arm-3 (a new model"), "{stdout}");
    assert!(!arm_ids["entity-000"].contains(&retired) && arm_ids["entity-000"].contains(&"arm-3"), "{retired}: {last}");
    for (entity, arms) in &arms {
        assert_eq!(arms.len(), 3, "{entity}: {last}");
        assert!((arms.iter().map(|a| a.0).sum::<f64>() - 1.0).abs() < 1e-3, "{entity}: {last}");
        if *entity == "entity-000" {
            // Its new arm came late: the bandit is still learning about it.
            continue;
        }
        let best_truth = arms.iter().map(|a| a.1).fold(0.0, f64::max);
        let favoured = arms.iter().max_by(|a, b| a.0.total_cmp(&b.0)).expect("arms");
        // The closed loop has shifted traffic to the best arm, or to one as good within noise.
        assert!(favoured.0 > 0.4 && favoured.1 >= best_truth - 0.02, "{entity}: {last}");
    }
    // What the weights gained over a uniform split, then the report of the run, last.
    let gain = stdout.lines().find(|l| l.contains("a uniform split of the same traffic would have produced")).unwrap_or_else(|| panic!("no gain line: {stdout}"));
    assert!(gain.contains('%'), "{gain}");
    let page = stdout.lines().rev().find(|l| !l.trim().is_empty()).and_then(|l| l.strip_prefix("demo: report of this run: ")).unwrap_or_else(|| panic!("the last line does not name the report: {stdout}"));
    let html = std::fs::read_to_string(page).expect("the demo's report");
    for entity in arms.keys() {
        assert!(html.contains(&format!("<section id=\"{entity}\"")), "{entity} missing from the report");
    }
    // The demo knows what it served: every entity has its cumulative assignments.
    assert_eq!(html.matches("data-chart=\"served\"").count(), arms.len(), "cumulative assignments per entity");
}

/// Replays the generated traffic of `dir` into `out` on `workers` workers.
fn replay_into(dir: &Path, out: &str, workers: &str) -> std::process::Output {
    let (a, o) = generate(dir);
    bin()
        .args(["replay", "--quiet", "--workers", workers, "--out", out, "--dataflow"])
        .arg(repo("dataflows/bench.toml"))
        .arg("--assignments")
        .arg(&a)
        .arg("--outcomes")
        .arg(&o)
        .output()
        .expect("run")
}

#[test]
fn replay_with_an_unwritable_output_fails_on_every_worker_count_without_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    for workers in ["1", "2"] {
        let out = replay_into(dir.path(), "/nonexistent/dir/weights.jsonl", workers);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/weights.jsonl"));
    }
}

#[test]
fn replay_whose_output_device_is_full_fails_naming_it_on_every_worker_count() {
    // Opening /dev/full works; every write to it fails, on the thread that writes the output.
    let dir = tempfile::tempdir().expect("tempdir");
    for workers in ["1", "2"] {
        let out = replay_into(dir.path(), "/dev/full", workers);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--out /dev/full with {workers} workers succeeded");
        assert!(stderr.contains("/dev/full"), "{stderr}");
    }
}

#[test]
fn run_without_a_kafka_section_says_so_and_fails() {
    let out = bin().args(["run", "--dataflow"]).arg(repo("dataflows/default.toml")).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[kafka]"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn run_against_an_unreachable_broker_names_the_topic_and_fails() {
    let broker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = broker.local_addr().expect("addr").port();
    drop(broker);
    // Nothing listens there: metadata requests time out (after 10 s) and the worker gives up
    // with the reason. librdkafka reports the refused connection many times a second.
    let out = bin()
        .args(["run", "--dataflow"])
        .arg(repo("dataflows/demo.toml"))
        .env("BANDITFLOW_KAFKA_BROKERS", format!("127.0.0.1:{port}"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("assignments"), "{stderr}");
    // The final error names the brokers it tried and what to check.
    let last = stderr.lines().rfind(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no final error: {stderr}"));
    assert!(last.contains(&format!("127.0.0.1:{port}")) && last.contains("[kafka] brokers"), "{last}");
    // A handful of lines, not one per retry; no colours in a pipe; no backtrace for a user error.
    assert!(stderr.lines().count() <= 8, "{} lines:\n{stderr}", stderr.lines().count());
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn demo_on_a_terminal_redraws_one_screen_with_the_legend_and_every_entity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typescript = dir.path().join("screen.txt");
    // `script` runs the demo under a pseudo-terminal and records what it draws.
    let command = format!(
        "stty cols 120 rows 50; exec {} demo --duration 9s --metrics-listen 127.0.0.1:0 --log-file {}",
        env!("CARGO_BIN_EXE_banditflow"),
        dir.path().join("demo.log").display()
    );
    let status = Command::new("script").args(["-qfec", &command]).arg(&typescript).stdin(Stdio::null()).stdout(Stdio::null()).status().expect("script (util-linux) runs");
    assert!(status.success());
    let drawn = String::from_utf8_lossy(&std::fs::read(&typescript).expect("typescript")).into_owned();
    // Each redraw starts at the top left; the last screen is what the user sees last.
    let frames: Vec<&str> = drawn.split("\x1b[H").skip(1).collect();
    assert!(frames.len() >= 2, "not redrawn in place: {drawn}");
    let screen = strip_escapes(frames.last().copied().unwrap_or_default());
    let screen = screen.split("demo done").next().unwrap_or_default();
    for part in ["weight    the share of traffic", "p_best    the probability", "status    burn_in", "version   the end of the tick", "events ", "metrics   http://127.0.0.1:"] {
        assert!(screen.contains(part), "`{part}` not on the screen:\n{screen}");
    }
    for entity in ["entity-000", "entity-001", "entity-002", "entity-003"] {
        assert!(screen.contains(&format!("{entity}  ")), "{entity} not on the screen:\n{screen}");
    }
    // Nothing but the screen: no log line between its rows.
    for line in screen.lines() {
        assert!(!line.contains(" INFO ") && !line.contains(" WARN ") && !line.starts_with("20"), "a log line on the screen: {line}");
    }
}

/// The text of a terminal stream without its escape sequences.
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[test]
fn demo_with_its_metrics_port_taken_says_how_to_pick_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr");
    let out = bin().args(["demo", "--duration", "5s", "--metrics-listen", &address.to_string()]).output().expect("demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&address.to_string()) && stderr.contains("in use") && stderr.contains("--metrics-listen 127.0.0.1:0"), "{stderr}");
}

/// GET /metrics from 127.0.0.1:`port`.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    Some(page)
}

#[test]
fn replay_serves_metrics_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = (dir.path().join("a.jsonl"), dir.path().join("o.jsonl"));
    let generated = bin()
        .args(["generate", "--count", "400000", "--entities", "20", "--arms", "3", "--duration-ms", "14400000"])
        .arg("--assignments-out")
        .arg(&a)
        .arg("--outcomes-out")
        .arg(&o)
        .output()
        .expect("generate");
    assert!(generated.status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut replay = bin()
        .args(["replay", "--quiet", "--out", "/dev/null", "--metrics-listen", &format!("127.0.0.1:{port}"), "--dataflow"])
        .arg(repo("dataflows/bench.toml"))
        .arg("--assignments")
        .arg(&a)
        .arg("--outcomes")
        .arg(&o)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("replay");
    let mut seen = None;
    while replay.try_wait().expect("wait").is_none() {
        if let Some(page) = scrape(port) {
            let read: f64 = page.lines().find_map(|l| l.strip_prefix(r#"banditflow_events_read_total{topic="assignments"} "#)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
            if read > 0.0 {
                seen = Some(read);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = replay.wait().expect("replay");
    assert!(status.success());
    let read = seen.expect("the replay's endpoint never showed any events read");
    assert!(read <= 400_000.0, "{read}");
}

#[test]
fn simulate_writes_its_report_its_plots_and_says_what_is_wrong_with_a_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (report, plot, sweep, sweep_plot) = (dir.path().join("r.json"), dir.path().join("r.svg"), dir.path().join("s.json"), dir.path().join("s.svg"));
    let scenario = repo("dataflows/scenarios/churn.toml");
    let out = bin()
        .args(["simulate", "--quiet", "--reps", "2", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&report)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run simulate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let steps = json["steps"].as_array().expect("steps").len();
    for policy in ["weights", "uniform", "oracle"] {
        assert_eq!(json[policy]["regret_mean"].as_array().map(Vec::len), Some(steps), "{policy}");
        assert_eq!(json[policy]["regret_se"].as_array().map(Vec::len), Some(steps), "{policy}");
        assert_eq!(json[policy]["final_regret"].as_array().map(Vec::len), Some(2), "{policy}");
    }
    let svg = std::fs::read_to_string(&plot).expect("plot");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in ["banditflow weights", "uniform split", "oracle at each refresh"] {
        assert!(svg.contains(label), "legend {label}");
    }
    assert!(svg.matches("<polyline").count() >= 3, "a line per policy");

    let out = bin()
        .args(["simulate", "--quiet", "--reps", "2", "--refresh-sweep", "100,1000", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&sweep)
        .arg("--plot")
        .arg(&sweep_plot)
        .output()
        .expect("run the sweep");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&sweep).expect("sweep")).expect("JSON");
    let refreshes: Vec<u64> = json["points"].as_array().expect("points").iter().filter_map(|p| p["refresh_every"].as_u64()).collect();
    assert_eq!(refreshes, vec![100, 1000]);
    assert!(std::fs::read_to_string(&sweep_plot).expect("sweep plot").contains("refresh every (steps)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"b\"\nsteps = 10\nrefresh_every = 5\ndataflow = \"x.toml\"\n[arms]\ncount = 2\nrates = [0.1]\n").expect("write");
    let out = bin().args(["simulate", "--scenario"]).arg(&bad).output().expect("run simulate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bad.toml") && stderr.contains("lists 1 rates"), "{stderr}");
}

#[test]
fn export_counts_the_lines_it_refuses_and_evaluate_names_a_missing_dataset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = generate(dir.path());
    // Bad lines among the good ones: refused, counted by reason in the manifest, nothing else lost.
    let mut text = std::fs::read_to_string(&a).expect("read");
    text.push_str("{not json\n{\"assignment_id\":\"x\",\"entity_id\":\"e\",\"ts\":5}\n");
    std::fs::write(&a, text).expect("write");
    let out = bin().args(["export", "--quiet", "--dataflow"]).arg(repo("dataflows/default.toml")).arg("--assignments").arg(&a).arg("--outcomes").arg(&o).arg("--out").arg(dir.path().join("dataset")).output().expect("run export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("dataset/manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["left_out"]["invalid_json"], 1, "{}", manifest["left_out"]);
    assert_eq!(manifest["left_out"]["invalid_field"], 1, "{}", manifest["left_out"]);
    let left_out: u64 = manifest["left_out"].as_object().expect("object").values().map(|v| v.as_u64().expect("count")).sum();
    assert_eq!(manifest["rows"].as_u64().expect("rows") + left_out, 20_002, "every line is a row or counted");
    assert_eq!(manifest["null_propensity"], manifest["rows"], "no propensity logged and no --weights: every one null");
    // A folder that is no dataset: the error names the manifest it looked for.
    let out = bin().args(["evaluate", "--dataset"]).arg(dir.path().join("nothing")).arg("--candidate").arg(repo("dataflows/default.toml")).output().expect("run evaluate");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing/manifest.json"), "{stderr}");
    // Without propensities there is nothing to weigh: every window says so, nothing divides by zero.
    let out = bin().args(["evaluate", "--quiet", "--format", "json", "--dataset"]).arg(dir.path().join("dataset")).arg("--candidate").arg(repo("dataflows/default.toml")).output().expect("run evaluate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a row")).collect();
    assert_eq!(rows.len(), 4, "one window per entity");
    for row in &rows {
        assert_eq!((row["rows"].as_u64(), row["ips"].is_null()), (Some(0), true), "{row}");
        assert!(row["no_propensity"].as_u64().is_some_and(|n| n > 0));
        assert!(row["warnings"].as_array().is_some_and(|w| w.len() == 2), "{row}");
    }
}
