//! Any bytes as an arm registry line; metadata that decodes is passed on as JSON.
#![no_main]

use banditflow_core::limits::Limits;
use banditflow_core::wire::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let mut decoder = Decoder::new(None, Limits::default());
    let mut names = Vec::new();
    if let Ok(registration) = decoder.registration(line, 1_800_000_000_000, &mut names) {
        if let Some(metadata) = &registration.metadata {
            assert!(serde_json::from_str::<serde_json::Value>(metadata).is_ok_and(|v| !v.is_null()), "metadata is JSON: {metadata}");
        }
    }
});
