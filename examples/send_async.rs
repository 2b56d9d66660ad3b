//! Sends `N` events (env `N`, default 10) to partition 0 with the async API, several in flight
//! at once.
//!
//! Reads `EVENTHUB_CONNECTION_STRING` and `EVENTHUB_NAME`; defaults to the local emulator
//! (`ehub emulator`, hub `eh1`).
mod common;

use eventhubs::{EventData, EventHubClient, ProducerOptions};
use std::process::ExitCode;

const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

#[tokio::main]
async fn main() -> ExitCode {
    common::report(run().await)
}

async fn run() -> Result<(), common::Failure> {
    let conn = std::env::var("EVENTHUB_CONNECTION_STRING").unwrap_or_else(|_| EMULATOR.to_owned());
    let hub = std::env::var("EVENTHUB_NAME").unwrap_or_else(|_| "eh1".to_owned());
    let n = common::count_from_env("N", 10)?;
    let client = EventHubClient::from_connection_string(&conn, Some(&hub))?;
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await?;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..n {
        let producer = producer.clone();
        sends.spawn(async move {
            let event =
                EventData::from(format!("Single message {i}")).with_property("index", i as i64);
            producer.send(event).await
        });
    }
    while let Some(r) = sends.join_next().await {
        r??;
    }
    println!("sent {n} events to partition 0 of {hub}");
    producer.close().await?;
    Ok(client.close().await?)
}
