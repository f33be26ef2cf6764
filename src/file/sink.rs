//! The file sink: weight records (`schemas/weights.schema.json`) or decision events
//! (`schemas/decision.schema.json`) as JSON lines, one per line, to a file or standard output.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use banditflow_core::record::EncodedRecord;

use super::FileError;

/// A JSON-lines writer of weight records or decision events.
pub struct JsonLines {
    out: Box<dyn Write>,
    name: String,
}

impl JsonLines {
    /// Creates (or truncates) `path`; standard output when `None`.
    pub fn create(path: Option<&Path>) -> Result<JsonLines, FileError> {
        match path {
            None => Ok(JsonLines { out: Box::new(BufWriter::new(io::stdout())), name: "standard output".to_owned() }),
            Some(path) => {
                let name = path.display().to_string();
                let file = File::create(path).map_err(|source| FileError::Output { path: name.clone(), source })?;
                Ok(JsonLines { out: Box::new(BufWriter::new(file)), name })
            }
        }
    }

    /// Writes one tick's records and flushes them, so a reader sees whole ticks.
    pub fn write(&mut self, batch: &[EncodedRecord]) -> Result<(), FileError> {
        self.write_lines(batch.iter().map(|r| r.json.as_str()))
    }

    /// Writes one tick's lines (JSON, without their newline) and flushes them.
    pub fn write_lines<'a>(&mut self, lines: impl Iterator<Item = &'a str>) -> Result<(), FileError> {
        let mut lines = lines;
        let result = lines.try_for_each(|json| {
            self.out.write_all(json.as_bytes())?;
            self.out.write_all(b"\n")
        });
        result.and_then(|()| self.out.flush()).map_err(|source| FileError::Output { path: self.name.clone(), source })
    }
}
