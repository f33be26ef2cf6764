//! Every job file shipped in `dataflows/` loads and validates: the examples users copy from
//! must never rot.

use std::path::{Path, PathBuf};

use banditflow::deployment::Job;

fn shipped_job_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_job_file_loads() {
    let files = shipped_job_files();
    assert!(!files.is_empty(), "no *.toml in dataflows/");
    for path in files {
        if let Err(error) = Job::load(&path) {
            panic!("{error}");
        }
    }
}

#[test]
fn default_job_file_says_what_the_docs_say() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/default.toml");
    let job = Job::load(&path).expect("default.toml loads").dataflow;
    assert_eq!(job.name, "default");
    assert_eq!(
        (
            job.tick_ms,
            job.window_ms,
            job.attribution_ms,
            job.allowed_lateness_ms
        ),
        (60_000, 86_400_000, 1_800_000, 120_000)
    );
    assert_eq!((job.prior.alpha, job.prior.beta), (1.0, 1.0));
    assert_eq!(
        (job.policy.min_trials, job.policy.floor, job.policy.max_step),
        (100, 0.02, Some(0.1))
    );
}

#[test]
fn bench_job_file_has_no_step_limit() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/bench.toml");
    let job = Job::load(&path).expect("bench.toml loads").dataflow;
    assert_eq!(job.allowed_lateness_ms, 60_000);
    assert_eq!((job.policy.min_trials, job.policy.floor), (50, 0.01));
    assert_eq!(job.policy.max_step, None);
}
