//! Fuzz target `engine_server`: see [`eventhubs_fuzz::engine::fuzz_engine_server`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::engine::fuzz_engine_server(data));
