//! Shared helpers for the client integration tests: an emulator on an ephemeral port.
#![allow(dead_code)]

use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{EventHubClient, EventHubClientBuilder, RetryOptions};
use std::time::Duration;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts an emulator with the default entities (hub `eh1`, 4 partitions, `$default`, `cg1`).
pub async fn emulator() -> Emulator {
    init_tracing();
    Emulator::start(EmulatorOptions::ephemeral())
        .await
        .expect("emulator starts")
}

/// Quick retries so that tests of failures do not wait long.
pub fn fast_retry() -> RetryOptions {
    RetryOptions {
        max_retries: 5,
        delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        ..RetryOptions::default()
    }
}

pub fn builder(emulator: &Emulator) -> EventHubClientBuilder {
    EventHubClientBuilder::from_connection_string(&emulator.connection_string(), Some("eh1"))
        .unwrap()
        .retry(fast_retry())
        .operation_timeout(Duration::from_secs(10))
}

pub fn client(emulator: &Emulator) -> EventHubClient {
    builder(emulator).build().unwrap()
}
