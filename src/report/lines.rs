//! Reading a report's JSON-lines files one line at a time, a damaged line passed on as it is
//! for its reader to count.

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Why a report's input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {error}", path.display())]
pub struct InputError {
    /// The file.
    pub path: PathBuf,
    /// What the operating system said.
    pub error: std::io::Error,
}

/// Calls `each` with every line of `path` (its end trimmed; "" for a line that is not UTF-8).
pub fn for_each_line(path: &Path, mut each: impl FnMut(&str)) -> Result<(), InputError> {
    let error = |error| InputError { path: path.to_path_buf(), error };
    let file = std::fs::File::open(path).map_err(error)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(error)? == 0 {
            return Ok(());
        }
        // A line that is not UTF-8 is malformed like any other: the decoder refuses "".
        let text = std::str::from_utf8(&line).unwrap_or("");
        if !text.trim().is_empty() || text.is_empty() {
            each(text.trim_end());
        }
    }
}
