//! The file connector: JSON-lines inputs for replay ([`source`], each worker reading its
//! share through [`blocks`]), JSON-lines weight records out ([`sink`]) and the lines the
//! decoder refused ([`rejects`]).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub mod blocks;
pub mod rejects;
pub mod sink;
pub mod source;

/// A replay input: a file, or standard input (`-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A JSON-lines file.
    File(PathBuf),
    /// Standard input, read by worker 0 alone.
    Stdin,
}

impl Input {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    /// The input as a user named it: its path, or `-`.
    pub fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "-".to_owned(),
        }
    }

    /// Its length in bytes (0 for standard input, whose length is unknown).
    pub fn byte_len(&self) -> Result<u64, FileError> {
        match self {
            Input::Stdin => Ok(0),
            Input::File(path) => std::fs::metadata(path).map(|m| m.len()).map_err(|source| FileError::Input { path: self.name(), source }),
        }
    }
}

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An input could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The input.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The output.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// The first file error of a run, shared by its workers; once set, every worker stops (a
/// stopped worker would hold the others' time).
#[derive(Debug, Default)]
pub struct Failure {
    error: Mutex<Option<FileError>>,
    failed: AtomicBool,
}

impl Failure {
    /// Records `error` unless an earlier one is recorded.
    pub fn fail(&self, error: FileError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Whether some worker has failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first error, taken out.
    pub fn take(&self) -> Option<FileError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}
