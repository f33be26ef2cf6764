//! The `banditflow` command line, one file per command.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub mod demo;
pub mod generate;
pub mod replay;
pub mod run;

/// A flag that SIGTERM and SIGINT set: the worker and the demo stop gracefully on it.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}
