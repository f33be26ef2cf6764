//! Replay's dead-letter output (`--rejects FILE`): every input line the decoder refused, with
//! its reason, which input and line it was, and the line itself, one JSON object per line
//! (`schemas/reject.schema.json`). Shared by the workers; lines are written in the order they
//! were refused, each naming its input and line so the file sorts back into input order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine;
use serde::Serialize;

use super::FileError;

/// One refused line as the rejects file holds it.
#[derive(Serialize)]
struct Reject<'a> {
    reason: &'a str,
    input: &'a str,
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
}

/// The rejects file, written by every worker.
pub struct Rejects {
    out: Mutex<BufWriter<File>>,
    name: String,
    written: AtomicU64,
}

impl Rejects {
    /// Creates (or truncates) the rejects file at `path`.
    pub fn create(path: &Path) -> Result<Rejects, FileError> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|source| FileError::Output { path: name.clone(), source })?;
        Ok(Rejects { out: Mutex::new(BufWriter::new(file)), name, written: AtomicU64::new(0) })
    }

    /// Writes line `line` (1-based) of `input`, refused for `reason`: as `raw` if it is
    /// UTF-8, else as `raw_base64`.
    pub fn write(&self, reason: &str, input: &str, line: u64, raw: &[u8]) -> Result<(), FileError> {
        let text = std::str::from_utf8(raw).ok();
        let reject = Reject { reason, input, line, raw: text, raw_base64: text.is_none().then(|| base64::engine::general_purpose::STANDARD.encode(raw)) };
        let fail = |source| FileError::Output { path: self.name.clone(), source };
        // A worker that panicked while holding the lock left whole lines behind it.
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::to_writer(&mut *out, &reject).map_err(|e| fail(e.into()))?;
        out.write_all(b"\n").map_err(fail)?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> Result<(), FileError> {
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.flush().map_err(|source| FileError::Output { path: self.name.clone(), source })
    }
}
