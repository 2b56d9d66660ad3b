//! The event processor: balances the partitions of a consumer group across processor
//! instances through a [`PartitionManager`], and checkpoints.

mod balancer;
mod file;
mod manager;
mod memory;

pub use balancer::{balance, plan, BalanceInput, BalancePlan, Strategy};
pub use file::FilePartitionManager;
mod event_processor;
pub use event_processor::{
    CloseReason, EventProcessor, EventProcessorOptions, PartitionContext, PartitionProcessor,
};
pub use manager::{Checkpoint, Ownership, PartitionManager, PartitionManagerError, StoreFuture};
pub use memory::InMemoryPartitionManager;
