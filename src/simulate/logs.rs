//! The logs of one simulated repetition, in the wire formats a deployment would have: the
//! assignments serving made (with the `weights_version` they were drawn under), the outcomes,
//! the arm registry, and the weight records read back. `banditflow replay` over the first
//! three gives the fourth; the offline evaluation reads them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use banditflow_core::record::WeightRecord;

/// The four log files of a repetition, open for writing.
pub struct Logs {
    dir: PathBuf,
    assignments: BufWriter<File>,
    outcomes: BufWriter<File>,
    arms: BufWriter<File>,
    weights: BufWriter<File>,
    failed: Option<String>,
}

impl Logs {
    /// Creates `dir` and its four files (`assignments.jsonl`, `outcomes.jsonl`,
    /// `arms.jsonl`, `weights.jsonl`).
    pub fn create(dir: &Path) -> Result<Logs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let open = |name: &str| File::create(dir.join(name)).map(BufWriter::new).map_err(|e| format!("cannot create {}: {e}", dir.join(name).display()));
        Ok(Logs { dir: dir.to_path_buf(), assignments: open("assignments.jsonl")?, outcomes: open("outcomes.jsonl")?, arms: open("arms.jsonl")?, weights: open("weights.jsonl")?, failed: None })
    }

    fn line(&mut self, which: fn(&mut Logs) -> &mut BufWriter<File>, value: serde_json::Value) {
        if self.failed.is_some() {
            return;
        }
        let out = which(self);
        let written = serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::from).and_then(|()| out.write_all(b"\n"));
        if let Err(e) = written {
            self.failed = Some(format!("cannot write the logs in {}: {e}", self.dir.display()));
        }
    }

    /// An assignment as serving would log it, with the probability it gave the arm.
    pub fn assignment(&mut self, id: &str, entity: &str, arm: &str, ts: i64, version: u64, propensity: f64) {
        let mut line = serde_json::json!({"assignment_id": id, "entity_id": entity, "arm_id": arm, "ts": ts, "propensity": propensity});
        if version != 0 {
            line["weights_version"] = version.into();
        }
        self.line(|l| &mut l.assignments, line);
    }

    /// A conversion.
    pub fn outcome(&mut self, id: &str, ts: i64) {
        self.line(|l| &mut l.outcomes, serde_json::json!({"assignment_id": id, "ts": ts}));
    }

    /// An arm registry record.
    pub fn registration(&mut self, entity: &str, arm: &str, active: bool, ts: i64) {
        let state = if active { "active" } else { "retired" };
        self.line(|l| &mut l.arms, serde_json::json!({"entity_id": entity, "arm_id": arm, "state": state, "ts": ts}));
    }

    /// A weight record read back.
    pub fn record(&mut self, record: &WeightRecord) {
        match serde_json::to_value(record) {
            Ok(value) => self.line(|l| &mut l.weights, value),
            Err(e) => self.failed = Some(format!("cannot encode a weight record: {e}")),
        }
    }

    /// Flushes the files; the first failure, if any.
    pub fn finish(mut self) -> Result<(), String> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        for out in [&mut self.assignments, &mut self.outcomes, &mut self.arms, &mut self.weights] {
            out.flush().map_err(|e| format!("cannot write the logs in {}: {e}", self.dir.display()))?;
        }
        Ok(())
    }
}
