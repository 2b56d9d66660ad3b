//! Reads partition 0 from the earliest event until `N` events (env `N`, default 10) or a 10 s
//! idle gap, with the blocking API; one line per event, then `received N events`.
//!
//! Reads `EVENTHUB_CONNECTION_STRING` and `EVENTHUB_NAME`; defaults to the local emulator
//! (`ehub emulator`, hub `eh1`).
mod common;

use eventhubs::blocking::EventHubClient;
use eventhubs::{ConsumerOptions, EventPosition};
use std::process::ExitCode;
use std::time::Duration;

const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

fn main() -> ExitCode {
    common::report(run())
}

fn run() -> Result<(), common::Failure> {
    let conn = std::env::var("EVENTHUB_CONNECTION_STRING").unwrap_or_else(|_| EMULATOR.to_owned());
    let hub = std::env::var("EVENTHUB_NAME").unwrap_or_else(|_| "eh1".to_owned());
    let n = common::count_from_env("N", 10)?;
    let client = EventHubClient::from_connection_string(&conn, Some(&hub))?;
    let mut consumer = client.create_consumer(
        "$default",
        "0",
        EventPosition::earliest(),
        ConsumerOptions::default(),
    )?;
    let mut received = 0;
    while received < n {
        let events = consumer.receive(n - received, Duration::from_secs(10))?;
        if events.is_empty() {
            break;
        }
        for e in events {
            println!(
                "sequence number {} offset {} body {:?}",
                e.sequence_number().unwrap_or(-1),
                e.offset().unwrap_or("?"),
                String::from_utf8_lossy(e.body())
            );
            received += 1;
        }
    }
    println!("received {received} events");
    consumer.close()?;
    Ok(client.close()?)
}
