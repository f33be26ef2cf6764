//! The file sink: weight records as JSON lines, one record per line, to a file or standard
//! output (`schemas/weights.schema.json`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use banditflow_core::record::EncodedRecord;

use super::FileError;

/// A JSON-lines writer of weight records.
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
        let result = batch.iter().try_for_each(|r| {
            self.out.write_all(r.json.as_bytes())?;
            self.out.write_all(b"\n")
        });
        result.and_then(|()| self.out.flush()).map_err(|source| FileError::Output { path: self.name.clone(), source })
    }
}
