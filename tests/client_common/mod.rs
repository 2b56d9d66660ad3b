//! Shared helpers for the client integration tests: a client for an emulator (which
//! `support::emulator` starts), with quick retries.
#![allow(dead_code)]

use eventhubs::emulator::Emulator;
use eventhubs::{EventHubClient, EventHubClientBuilder, RetryOptions};
use std::time::Duration;

/// Quick retries so that tests of failures do not wait long.
pub fn fast_retry() -> RetryOptions {
    RetryOptions::default()
        .with_max_retries(5)
        .with_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
}

/// A client builder for hub `eh1` of `emulator`, with quick retries.
pub fn builder(emulator: &Emulator) -> EventHubClientBuilder {
    EventHubClientBuilder::from_connection_string(&emulator.connection_string(), Some("eh1"))
        .unwrap()
        .retry(fast_retry())
        .operation_timeout(Duration::from_secs(10))
}

/// A client for hub `eh1` of `emulator`.
pub fn client(emulator: &Emulator) -> EventHubClient {
    builder(emulator).build().unwrap()
}
