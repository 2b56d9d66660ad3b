//! The event processor: balances the partitions of a consumer group across processor
//! instances through a [`PartitionManager`], and checkpoints.
//!
//! Your code implements [`PartitionProcessor`] (one instance per partition this process owns);
//! [`FilePartitionManager`] keeps ownership and checkpoints in a directory, so a restarted
//! processor resumes after its last checkpoint ([`InMemoryPartitionManager`] for one process).
//! With the default options a processor claims the free partitions at once: alone, it owns
//! every partition after its first balancing cycle.
//!
//! [`PartitionContext::update_checkpoint`] is durable when it returns;
//! [`PartitionContext::checkpoint_in_background`] returns at once and is written by a
//! per-partition writer at most once per
//! [`EventProcessorOptions::background_checkpoint_interval`] (default 1 s), for throughput when
//! a few re-processed events after a crash are fine.
//!
//! ```
//! # #[cfg(feature = "emulator")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use eventhubs::processor::{
//!     EventProcessor, EventProcessorOptions, FilePartitionManager, PartitionContext,
//!     PartitionProcessor,
//! };
//! use eventhubs::{EventData, EventHubClient, ProducerOptions, SendOptions};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! struct Count(Arc<AtomicUsize>);
//!
//! impl PartitionProcessor for Count {
//!     async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
//!         self.0.fetch_add(events.len(), Ordering::Relaxed);
//!         // Checkpoint after the work is done: a successor resumes after this event.
//!         if let Some(last) = events.last() {
//!             if let Err(e) = ctx.update_checkpoint_from_event(last).await {
//!                 eprintln!("checkpoint of partition {}: {e}", ctx.partition_id);
//!             }
//!         }
//!     }
//! }
//!
//! # let emulator = eventhubs::emulator::Emulator::start(
//! #     eventhubs::emulator::EmulatorOptions::ephemeral(),
//! # ).await?;
//! # let connection_string = emulator.connection_string();
//! let client = EventHubClient::from_connection_string(&connection_string, Some("eh1"))?;
//! let producer = client.create_producer(ProducerOptions::default()).await?;
//! producer
//!     .send_all((0..20).map(|i| EventData::from(format!("event {i}"))), SendOptions::default())
//!     .await?;
//!
//! let dir = std::env::temp_dir().join(format!("eventhubs-doc-{}", std::process::id()));
//! let manager = Arc::new(FilePartitionManager::new(&dir)?);
//! let seen = Arc::new(AtomicUsize::new(0));
//! let counter = seen.clone();
//! let processor = EventProcessor::new(
//!     client,
//!     "$default",
//!     move || Count(counter.clone()),
//!     manager,
//!     EventProcessorOptions::default(),
//! )?;
//! processor.start();
//! while seen.load(Ordering::Relaxed) < 20 {
//!     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! }
//! // Closes every partition processor and releases ownership for the other instances.
//! processor.stop().await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "emulator"))]
//! # fn main() {}
//! ```

mod balancer;
#[cfg(feature = "blob")]
mod blob;
mod file;
mod manager;
mod memory;

pub use balancer::{balance, plan, BalanceInput, BalancePlan, Strategy};
#[cfg(feature = "blob")]
pub use blob::{
    BlobOptions, BlobPartitionManager, StorageConnectionString, StorageCredential,
    DEVELOPMENT_ACCOUNT,
};
pub use file::FilePartitionManager;
mod event_processor;
pub use event_processor::{
    CloseReason, EventProcessor, EventProcessorOptions, PartitionContext, PartitionProcessor,
};
pub use manager::{Checkpoint, Ownership, PartitionManager, PartitionManagerError, StoreFuture};
pub use memory::InMemoryPartitionManager;
