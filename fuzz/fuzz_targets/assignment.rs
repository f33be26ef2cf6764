//! Any bytes as an assignment line: the decoder returns an assignment or a reason, and an
//! assignment it returns keeps the limits.
#![no_main]

use banditflow_core::limits::Limits;
use banditflow_core::wire::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let limits = Limits::default();
    let mut decoder = Decoder::new(None, limits);
    let mut names = Vec::new();
    if let Ok(assignment) = decoder.assignment(line, 1_800_000_000_000, &mut names) {
        assert!(assignment.ts >= 0);
        assert!(line.len() <= limits.max_record_bytes);
        assert!(names.iter().all(|n| !n.text.is_empty() && n.text.len() <= limits.max_id_bytes));
    }
});
