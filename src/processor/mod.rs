//! The event processor: balances the partitions of a consumer group across processor
//! instances through a [`PartitionManager`], and checkpoints.

mod balancer;
mod file;
mod manager;
mod memory;

pub use balancer::{balance, BalanceInput, Strategy};
pub use file::FilePartitionManager;
pub use manager::{Checkpoint, Ownership, PartitionManager, PartitionManagerError, StoreFuture};
pub use memory::InMemoryPartitionManager;
