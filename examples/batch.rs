//! Sends `N` events (env `N`, default 100) to partition 0 in as few batches as fit, with the
//! blocking API: `try_add` gives an event back when the batch is full.
//!
//! Reads `EVENTHUB_CONNECTION_STRING` and `EVENTHUB_NAME`; defaults to the local emulator
//! (`ehub emulator`, hub `eh1`).
mod common;

use eventhubs::blocking::EventHubClient;
use eventhubs::{BatchOptions, EventData, ProducerOptions};
use std::process::ExitCode;

const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

fn main() -> ExitCode {
    common::report(run())
}

fn run() -> Result<(), common::Failure> {
    let conn = std::env::var("EVENTHUB_CONNECTION_STRING").unwrap_or_else(|_| EMULATOR.to_owned());
    let hub = std::env::var("EVENTHUB_NAME").unwrap_or_else(|_| "eh1".to_owned());
    let n = common::count_from_env("N", 100)?;
    let client = EventHubClient::from_connection_string(&conn, Some(&hub))?;
    let producer = client.create_producer(ProducerOptions::partition("0"))?;
    let mut batch = producer.create_batch(BatchOptions::default())?;
    let mut batches = 0;
    for i in 0..n {
        let event = EventData::from(format!("Batch event {i}"));
        if let Err(event) = batch.try_add(event) {
            // Full: send it and start a new one with the event that did not fit.
            let full =
                std::mem::replace(&mut batch, producer.create_batch(BatchOptions::default())?);
            println!(
                "sending a batch of {} events ({} bytes)",
                full.len(),
                full.size()
            );
            producer.send(full)?;
            batches += 1;
            if batch.try_add(event).is_err() {
                eprintln!("event {i} is too large for an empty batch; skipped");
            }
        }
    }
    if !batch.is_empty() {
        println!(
            "sending a batch of {} events ({} bytes)",
            batch.len(),
            batch.size()
        );
        producer.send(batch)?;
        batches += 1;
    }
    println!("sent {n} events in {batches} batches to partition 0 of {hub}");
    producer.close()?;
    Ok(client.close()?)
}
