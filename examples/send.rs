//! Sends `N` events (env `N`, default 10) to partition 0 with the blocking API.
//!
//! Reads `EVENTHUB_CONNECTION_STRING` and `EVENTHUB_NAME`; defaults to the local emulator
//! (`ehub emulator`, hub `eh1`).
mod common;

use eventhubs::blocking::EventHubClient;
use eventhubs::{EventData, ProducerOptions};
use std::process::ExitCode;

const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

fn main() -> ExitCode {
    common::report(run())
}

fn run() -> Result<(), common::Failure> {
    let conn = std::env::var("EVENTHUB_CONNECTION_STRING").unwrap_or_else(|_| EMULATOR.to_owned());
    let hub = std::env::var("EVENTHUB_NAME").unwrap_or_else(|_| "eh1".to_owned());
    let n = common::count_from_env("N", 10)?;
    let client = EventHubClient::from_connection_string(&conn, Some(&hub))?;
    let producer = client.create_producer(ProducerOptions::partition("0"))?;
    for i in 0..n {
        let event = EventData::from(format!("Single message {i}")).with_property("index", i as i64);
        producer.send(event)?;
    }
    println!("sent {n} events to partition 0 of {hub}");
    producer.close()?;
    Ok(client.close()?)
}
