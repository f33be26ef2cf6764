//! Any bytes as an outcome line, for a job that counts only some kinds and for one that
//! counts all.
#![no_main]

use banditflow_core::limits::Limits;
use banditflow_core::wire::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let kinds = vec!["click".to_owned()];
    let mut some = Decoder::new(Some(&kinds), Limits::default());
    let mut all = Decoder::new(None, Limits::default());
    let counted = some.outcome(line, 1_800_000_000_000);
    let any = all.outcome(line, 1_800_000_000_000);
    // Refused by one, refused by the other for the same reason; counted by one, read by both.
    match (&counted, &any) {
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Ok(None), Ok(Some(_))) => {}
        other => panic!("the two decoders disagree: {other:?}"),
    }
});
