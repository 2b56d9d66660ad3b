//! The event processor: balances the partitions of a consumer group across processor
//! instances through a [`PartitionManager`], and checkpoints.

mod balancer;
#[cfg(feature = "blob")]
mod blob;
mod file;
mod manager;
mod memory;

pub use balancer::{balance, BalanceInput, Strategy};
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
