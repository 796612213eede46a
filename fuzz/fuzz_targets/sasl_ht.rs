//! Fuzz target: `roost_fuzz_targets::sasl_ht`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::sasl_ht(data));
