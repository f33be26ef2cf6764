//! Any bytes as a checkpoint file, as they are and as the payload of a well-formed header
//! and checksum (so the decoder behind the checksum is reached too).
#![no_main]

use banditflow_core::checkpoint::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = decode(bytes);
    if let Ok(checkpoint) = decode(&banditflow_core::checkpoint::frame(bytes)) {
        // What decodes encodes back to a file that decodes to the same. Compared as bytes:
        // a NaN among the weights is not equal to itself.
        let file = encode(&checkpoint);
        let again = decode(&file).expect("an encoded checkpoint decodes");
        assert!(encode(&again) == file, "a checkpoint does not survive encoding");
    }
});
