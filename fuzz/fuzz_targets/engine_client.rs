//! Fuzz target `engine_client`: see [`eventhubs_fuzz::engine::fuzz_engine_client`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::engine::fuzz_engine_client(data));
