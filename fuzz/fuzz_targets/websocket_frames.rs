//! Fuzz target `websocket_frames`: see [`eventhubs_fuzz::fuzz_websocket_frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::fuzz_websocket_frames(data));
