//! Fuzz target: `roost_fuzz_targets::room_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::room_config(data));
