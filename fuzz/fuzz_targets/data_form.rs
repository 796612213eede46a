//! Fuzz target: `roost_fuzz_targets::data_form`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::data_form(data));
