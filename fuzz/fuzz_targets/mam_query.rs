//! Fuzz target: `roost_fuzz_targets::mam_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::mam_query(data));
