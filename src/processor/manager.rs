//! Ownership and checkpoint records, and the `PartitionManager` trait that stores them.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

/// Who owns a partition of a consumer group, as last written to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// Namespace host, e.g. `ns.servicebus.windows.net` (part of the key).
    pub fully_qualified_namespace: String,
    /// Event hub (part of the key).
    pub event_hub_name: String,
    /// Consumer group (part of the key).
    pub consumer_group: String,
    /// Partition (part of the key).
    pub partition_id: String,
    /// The owning processor; empty means released.
    pub owner_id: String,
    /// Set by the store on every successful write; ownership expires from here.
    pub last_modified_time: SystemTime,
    /// Store-issued version; a claim must present the current one (`None`: create only).
    pub etag: Option<String>,
}

/// The last processed event of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Namespace host (part of the key).
    pub fully_qualified_namespace: String,
    /// Event hub (part of the key).
    pub event_hub_name: String,
    /// Consumer group (part of the key).
    pub consumer_group: String,
    /// Partition (part of the key).
    pub partition_id: String,
    /// Offset of the last processed event.
    pub offset: Option<String>,
    /// Sequence number of the last processed event.
    pub sequence_number: Option<i64>,
}

/// A partition manager failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionManagerError {
    /// The store could not be read or written.
    #[error("partition store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stored record could not be parsed.
    #[error("partition store record {path} is malformed: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The store refused the credentials (HTTP 401/403), with the service's error code and
    /// message.
    #[error("partition store authentication failed ({code}): {message}")]
    Authentication {
        /// The service's error code, e.g. `AuthenticationFailed`.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The store answered a request with an error status.
    #[error("partition store returned HTTP {status} ({code}): {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The store could not be reached or did not answer in time (after retries).
    #[error("partition store unreachable: {0}")]
    Unavailable(String),
    /// The blob container the store lives in does not exist.
    #[error("blob container {0:?} does not exist (create it, or enable create_container)")]
    ContainerNotFound(String),
    /// The store's configuration (connection string, endpoint, names) is invalid.
    #[error("partition store configuration: {0}")]
    Config(String),
    /// Any other store failure (for custom stores).
    #[error("partition store: {0}")]
    Other(String),
}

/// The future a [`PartitionManager`] method returns.
pub type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, PartitionManagerError>> + Send + 'a>>;

/// Stores ownership and checkpoints for processors that share a consumer group. Claims are
/// optimistic: a claim whose etag is not the stored one fails and is left out of the result.
pub trait PartitionManager: Send + Sync {
    /// Every ownership record of a consumer group.
    fn list_ownership<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Ownership>>;

    /// Writes each claim whose etag matches the stored record (or, with `etag: None`, that
    /// has no record yet); returns those that succeeded, with new etag and time.
    fn claim_ownership<'a>(&'a self, claims: Vec<Ownership>) -> StoreFuture<'a, Vec<Ownership>>;

    /// Records a checkpoint.
    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()>;

    /// Every checkpoint of a consumer group.
    fn list_checkpoints<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Checkpoint>>;
}
