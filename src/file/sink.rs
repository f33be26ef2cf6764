//! The file sink: weight records (`schemas/weights.schema.json`) or decision events
//! (`schemas/decision.schema.json`) as JSON lines, one per line, to a file or standard output;
//! and [`Background`], which does the writing on a thread of its own.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use banditflow_core::record::{EncodedDecision, EncodedRecord};

use super::{Failure, FileError};

/// How many ticks may wait for the writing thread before the dataflow is held back.
const BACKGROUND_TICKS: usize = 64;

/// A JSON-lines writer of weight records or decision events.
pub struct JsonLines {
    out: Box<dyn Write + Send>,
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

/// Weight records and decision events written by a thread of its own, so a replay's worker
/// computes the next tick while the last one is written. Ticks are written in the order they
/// are handed over; at most [`BACKGROUND_TICKS`] wait, then [`Background::write`] blocks.
pub struct Background {
    ticks: Option<SyncSender<(Vec<EncodedRecord>, Vec<EncodedDecision>)>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Failure>,
}

impl Background {
    /// Starts the thread writing records to `records` and events to `decisions` (either may
    /// be absent). The first error goes to `failure` and ends the writing.
    pub fn spawn(records: Option<JsonLines>, decisions: Option<JsonLines>, failure: Arc<Failure>) -> Result<Background, FileError> {
        let (ticks, arriving) = sync_channel::<(Vec<EncodedRecord>, Vec<EncodedDecision>)>(BACKGROUND_TICKS);
        let (mut records, mut decisions, failed) = (records, decisions, failure.clone());
        let thread = std::thread::Builder::new()
            .name("replay-writer".to_owned())
            .spawn(move || {
                for (batch, events) in arriving {
                    let written = match decisions.as_mut() {
                        Some(w) if !events.is_empty() => w.write_lines(events.iter().map(|d| d.json.as_str())),
                        _ => Ok(()),
                    }
                    .and_then(|()| records.as_mut().map_or(Ok(()), |w| w.write(&batch)));
                    if let Err(error) = written {
                        failed.fail(error);
                        return;
                    }
                }
            })
            .map_err(|source| FileError::Output { path: "the writing thread".to_owned(), source })?;
        Ok(Background { ticks: Some(ticks), thread: Some(thread), failure })
    }

    /// Hands one tick's records and events to the thread. After a failure they are dropped:
    /// the failure stops the replay.
    pub fn write(&self, batch: Vec<EncodedRecord>, decisions: Vec<EncodedDecision>) {
        if let Some(ticks) = &self.ticks {
            // An error means the thread has ended on a failure it recorded.
            let _ = ticks.send((batch, decisions));
        }
    }

    /// Waits until everything handed over is written.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.ticks.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                let source = io::Error::other("the writing thread panicked");
                self.failure.fail(FileError::Output { path: "the writing thread".to_owned(), source });
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.close();
    }
}
