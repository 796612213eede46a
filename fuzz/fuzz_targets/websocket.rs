//! Fuzz target: `roost_fuzz_targets::websocket`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::websocket(data));
