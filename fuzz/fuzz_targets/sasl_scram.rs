//! Fuzz target: `roost_fuzz_targets::sasl_scram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::sasl_scram(data));
