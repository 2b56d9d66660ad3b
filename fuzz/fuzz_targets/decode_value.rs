//! Fuzz target `decode_value`: see [`eventhubs_fuzz::fuzz_decode_value`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::fuzz_decode_value(data));
