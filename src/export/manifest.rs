//! `manifest.json`: what an evaluation dataset holds and where it came from — row counts,
//! time range, per-entity counts, the SHA-256 of the job file and of every input, the tool's
//! version.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One file the dataset was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The path as it was given.
    pub path: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
}

/// A file's SHA-256 and length, computed from its bytes as they are read.
#[derive(Default)]
pub struct Hashing {
    hasher: Sha256,
    bytes: u64,
}

impl Hashing {
    /// More of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// The file's [`Source`].
    pub fn finish(self, path: &Path) -> Source {
        let sha256 = self.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Source { path: path.display().to_string(), sha256, bytes: self.bytes }
    }
}

impl Source {
    /// Hashes the file at `path`.
    pub fn of(path: &Path) -> std::io::Result<Source> {
        let mut file = std::fs::File::open(path)?;
        let mut hashing = Hashing::default();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hashing.update(&buf[..n]);
        }
        Ok(hashing.finish(path))
    }
}

/// One entity's dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityPart {
    /// The entity.
    pub entity_id: String,
    /// Its rows.
    pub rows: u64,
    /// Rows with reward 1.
    pub rewards: u64,
    /// Rows whose propensity could not be found.
    pub null_propensity: u64,
    /// Rows by where their propensity came from.
    pub propensity_sources: BTreeMap<String, u64>,
    /// Its first and last `ts`.
    pub time_range: [i64; 2],
    /// The Parquet file, relative to the dataset's folder.
    pub parquet: String,
    /// The JSON-lines file, relative to the dataset's folder.
    pub jsonl: String,
}

/// The manifest of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `banditflow` and its version.
    pub tool: String,
    /// The job's name.
    pub dataflow: String,
    /// The job's tick and attribution window, ms (what decided `resolved_at` and `reward`).
    pub tick_ms: u64,
    /// See `tick_ms`.
    pub attribution_ms: u64,
    /// The job file.
    pub job: Source,
    /// The inputs, by flag (`assignments`, `outcomes`, `arms`, `weights`).
    pub inputs: BTreeMap<String, Source>,
    /// Rows written, every entity.
    pub rows: u64,
    /// Rows whose propensity could not be found (kept, with a null propensity).
    pub null_propensity: u64,
    /// Of those, rows whose assignment logged a `propensity` outside (0, 1].
    pub invalid_propensity: u64,
    /// The first and last `ts` of the rows (`None` without rows).
    pub time_range: Option<[i64; 2]>,
    /// Assignment lines that are not rows, by why: still pending at the end of the input
    /// (`unresolved`), retired arm, duplicate, conflict, and each reason a line was refused;
    /// with the rows they add up to the assignment lines read.
    pub left_out: BTreeMap<String, u64>,
    /// Outcome and arm registry lines refused, by `input: reason`.
    pub refused_lines: BTreeMap<String, u64>,
    /// Weights-file lines that were not weight records.
    pub unreadable_weight_lines: u64,
    /// Each entity's part, by entity id.
    pub entities: Vec<EntityPart>,
}

/// The name of the manifest in a dataset's folder.
pub const MANIFEST: &str = "manifest.json";

/// Reads a dataset's manifest.
pub fn read(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut track = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut track).map_err(|e| format!("{} is not a dataset manifest: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_the_bytes() {
        let dir = std::env::temp_dir().join(format!("banditflow-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("abc.txt");
        std::fs::write(&path, b"abc").expect("write");
        let source = Source::of(&path).expect("hash");
        // FIPS 180-2's example.
        assert_eq!(source.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(source.bytes, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
