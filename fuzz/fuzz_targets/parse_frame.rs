//! Fuzz target `parse_frame`: see [`eventhubs_fuzz::fuzz_parse_frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::fuzz_parse_frame(data));
