//! Fuzz target `proxy_reply`: see [`eventhubs_fuzz::fuzz_proxy_reply`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventhubs_fuzz::fuzz_proxy_reply(data));
