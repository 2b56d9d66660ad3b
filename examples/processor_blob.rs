//! An event processor whose ownership and checkpoints live in Blob Storage (Azurite or a real
//! account), in the layout the official SDKs share: it starts from the stored checkpoints
//! (earliest where there are none), checkpoints after each batch, prints
//! `partition P sequence S` per event, and stops after `N` events (default 10) or 10 s
//! without one, printing `processed N events` last.
//!
//! Reads `EVENTHUB_CONNECTION_STRING` and `EVENTHUB_NAME` (default: the local emulator, hub
//! `eh1`), `STORAGE_CONNECTION_STRING` (default `UseDevelopmentStorage=true`, i.e. Azurite),
//! `BLOB_CONTAINER` (default `checkpoints`, created when missing) and `CONSUMER_GROUP`
//! (default `$default`).
mod common;

use eventhubs::processor::{
    BlobOptions, BlobPartitionManager, EventProcessor, EventProcessorOptions, PartitionContext,
    PartitionProcessor, Strategy,
};
use eventhubs::{EventData, EventHubClient, EventPosition};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

/// Hands each event to `main` (which prints them in one place), then checkpoints the batch.
struct Forward(mpsc::UnboundedSender<(String, i64)>);

impl PartitionProcessor for Forward {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        for e in &events {
            let _ = self
                .0
                .send((ctx.partition_id.clone(), e.sequence_number().unwrap_or(-1)));
        }
        if let Some(last) = events.last() {
            if let Err(e) = ctx.update_checkpoint_from_event(last).await {
                eprintln!("checkpoint of partition {} failed: {e}", ctx.partition_id);
            }
        }
    }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::report(run().await)
}

async fn run() -> Result<(), common::Failure> {
    let conn = env_or("EVENTHUB_CONNECTION_STRING", EMULATOR);
    let hub = env_or("EVENTHUB_NAME", "eh1");
    let storage = env_or("STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true");
    let container = env_or("BLOB_CONTAINER", "checkpoints");
    let group = env_or("CONSUMER_GROUP", "$default");
    let n = common::count_from_env("N", 10)?;

    let client = EventHubClient::from_connection_string(&conn, Some(&hub))?;
    let store = BlobPartitionManager::connect(
        &storage,
        &container,
        BlobOptions::default().with_create_container(true),
    )
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let processor = EventProcessor::new(
        client.clone(),
        &group,
        move || Forward(tx.clone()),
        Arc::new(store),
        // Greedy: a processor alone claims every partition in its first cycle.
        EventProcessorOptions::default()
            .with_initial_position(EventPosition::earliest())
            .with_strategy(Strategy::Greedy),
    )?;
    processor.start();
    let mut processed = 0;
    while processed < n {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((partition, sequence))) => {
                println!("partition {partition} sequence {sequence}");
                processed += 1;
            }
            _ => break,
        }
    }
    processor.stop().await;
    println!("processed {processed} events");
    Ok(client.close().await?)
}
