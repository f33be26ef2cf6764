//! An exported dataset read back: its manifest and each entity's rows, sorted by `ts`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::export::manifest::{self, Manifest};
use crate::export::rows::DatasetRow;

/// One entity's rows.
#[derive(Clone, Debug)]
pub struct EntityRows {
    /// The entity.
    pub entity_id: String,
    /// Its rows, by `ts`.
    pub rows: Vec<DatasetRow>,
}

/// A dataset as `banditflow export` wrote it.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Its manifest.
    pub manifest: Manifest,
    /// Every entity's rows, in the manifest's order.
    pub entities: Vec<EntityRows>,
    /// The arm registry it was exported with, if any (`arms.jsonl` in its folder).
    pub arms: Option<PathBuf>,
}

impl Dataset {
    /// Reads the dataset in `dir` (its JSON-lines parts).
    pub fn read(dir: &Path) -> Result<Dataset, String> {
        let manifest = manifest::read(dir)?;
        let mut entities = Vec::with_capacity(manifest.entities.len());
        for part in &manifest.entities {
            let path = dir.join(&part.jsonl);
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut rows = Vec::with_capacity(part.rows as usize);
            for (n, line) in std::io::BufReader::with_capacity(1 << 20, file).lines().enumerate() {
                let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let row: DatasetRow = serde_json::from_str(&line).map_err(|e| format!("{} line {}: not a dataset row: {e}", path.display(), n + 1))?;
                rows.push(row);
            }
            if rows.len() as u64 != part.rows {
                return Err(format!("{} holds {} rows, its manifest says {}: the dataset was changed after export", path.display(), rows.len(), part.rows));
            }
            rows.sort_by_key(|r| r.ts);
            entities.push(EntityRows { entity_id: part.entity_id.clone(), rows });
        }
        let arms = Some(dir.join(crate::export::ARMS_COPY)).filter(|p| p.exists());
        Ok(Dataset { manifest, entities, arms })
    }
}
