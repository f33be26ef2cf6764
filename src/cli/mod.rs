//! The `banditflow` command line, one file per command.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub mod arms;
pub mod demo;
pub mod evaluate;
pub mod export;
pub mod generate;
pub mod replay;
pub mod report;
pub mod run;
pub mod serve;
pub mod simulate;

/// A flag that SIGTERM and SIGINT set: the worker and the demo stop gracefully on it.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

/// The messages of an error and its causes, each once: a cause whose text its parent
/// already includes is left out.
pub fn error_chain(error: &anyhow::Error) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !messages.iter().any(|m| m.contains(&text)) {
            messages.push(text);
        }
    }
    messages
}

/// What the user sees of a failed command: `error: …` and its causes, never a backtrace
/// (`RUST_BACKTRACE` is for panics, not for ordinary errors).
pub fn error_report(error: &anyhow::Error) -> String {
    let mut chain = error_chain(error).into_iter();
    let mut report = format!("error: {}", chain.next().unwrap_or_default());
    for cause in chain {
        report.push_str("\n  caused by: ");
        report.push_str(&cause);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read job.toml: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(Outer { source: io });
        assert_eq!(error_report(&error), "error: cannot read job.toml: no such file");
        let error = anyhow::Error::new(std::io::Error::other("disk full")).context("cannot write out.jsonl");
        assert_eq!(error_report(&error), "error: cannot write out.jsonl\n  caused by: disk full");
    }
}
