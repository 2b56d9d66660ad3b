//! Fuzz target `decode_message`: see [`eventhubs_fuzz::fuzz_decode_message`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::fuzz_decode_message(data));
