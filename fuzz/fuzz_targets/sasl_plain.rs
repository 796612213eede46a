//! Fuzz target: `roost_fuzz_targets::sasl_plain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::sasl_plain(data));
