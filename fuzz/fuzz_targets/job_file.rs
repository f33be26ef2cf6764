//! Any text as a job file: it parses into a job or an error that says why, never a panic.
#![no_main]

use banditflow_core::config::Dataflow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(error) = Dataflow::from_toml_str(text) {
        assert!(!error.to_string().is_empty());
    }
});
