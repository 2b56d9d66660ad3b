//! A hub's runtime state: partitions, routing of sends, and the reader registry that enforces
//! owner levels (epochs) and the five-readers limit.

use super::config::HubConfig;
use super::store::Partition;
use crate::amqp::codec::Timestamp;
use crate::amqp::types::error::{condition, AmqpError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most concurrent readers without an owner level per partition and consumer group.
pub const MAX_NON_EPOCH_READERS: usize = 5;

struct Reader {
    id: u64,
    epoch: Option<i64>,
    kick: Option<oneshot::Sender<AmqpError>>,
}

#[derive(Default)]
struct Readers {
    next_id: u64,
    list: Vec<Reader>,
}

/// One event hub.
pub struct Hub {
    /// Its configuration.
    pub config: HubConfig,
    /// Its partitions, by id.
    pub partitions: Vec<Arc<Partition>>,
    /// When the emulator created it.
    pub created_at: Timestamp,
    round_robin: AtomicUsize,
    readers: Mutex<HashMap<(String, u32), Readers>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Keeps a reader registered; dropping it unregisters.
pub struct ReaderGuard {
    hub: Arc<Hub>,
    key: (String, u32),
    id: u64,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut readers = self.hub.lock_readers();
        if let Some(r) = readers.get_mut(&self.key) {
            r.list.retain(|x| x.id != self.id);
        }
    }
}

fn stolen(description: String) -> AmqpError {
    AmqpError::with_description(condition::LINK_STOLEN, description)
}

impl Hub {
    /// A hub with the given partitions.
    pub fn new(config: HubConfig, partitions: Vec<Arc<Partition>>) -> Self {
        Hub {
            config,
            partitions,
            created_at: Timestamp::now(),
            round_robin: AtomicUsize::new(0),
            readers: Mutex::new(HashMap::new()),
        }
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Readers>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer group's configured name, matched case-insensitively.
    pub fn consumer_group(&self, name: &str) -> Option<&str> {
        self.config
            .consumer_groups
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// The partition for a partition key: the service's hash, shared with the client's
    /// buffered producer so both pick the same partition.
    pub fn partition_for_key(&self, key: &str) -> u32 {
        crate::wire::partition_key::partition_index(key, self.config.partition_count)
    }

    /// The next partition in round-robin order.
    pub fn next_partition(&self) -> u32 {
        (self.round_robin.fetch_add(1, Ordering::Relaxed) % self.config.partition_count as usize)
            as u32
    }

    /// Registers a reader of `partition` in consumer group `group`, applying the owner-level
    /// rules: a reader with an owner level at least as high as every other one takes the
    /// partition (the others get `amqp:link:stolen` through their kick channel); a lower one,
    /// or one without an owner level while an owner exists, is refused; at most five readers
    /// without an owner level.
    pub fn register_reader(
        self: &Arc<Self>,
        group: &str,
        partition: u32,
        epoch: Option<i64>,
    ) -> Result<(ReaderGuard, oneshot::Receiver<AmqpError>), AmqpError> {
        let key = (group.to_ascii_lowercase(), partition);
        let mut all = self.lock_readers();
        let readers = all.entry(key.clone()).or_default();
        let top = readers.list.iter().filter_map(|r| r.epoch).max();
        match (epoch, top) {
            (Some(e), Some(t)) if e < t => {
                return Err(stolen(format!(
                    "a receiver with the higher owner level {t} is active on partition {partition} of consumer group {group}; owner level {e} cannot take it"
                )))
            }
            (Some(e), _) => {
                for r in readers.list.iter_mut() {
                    if let Some(kick) = r.kick.take() {
                        let _ = kick.send(stolen(format!(
                            "a receiver with owner level {e} took partition {partition} of consumer group {group}"
                        )));
                    }
                }
            }
            (None, Some(t)) => {
                return Err(stolen(format!(
                    "a receiver with owner level {t} owns partition {partition} of consumer group {group}; receivers without an owner level are refused"
                )))
            }
            (None, None) => {
                if readers.list.iter().filter(|r| r.kick.is_some()).count() >= MAX_NON_EPOCH_READERS {
                    return Err(AmqpError::with_description(
                        condition::RESOURCE_LIMIT_EXCEEDED,
                        format!(
                            "at most {MAX_NON_EPOCH_READERS} receivers per partition and consumer group without an owner level"
                        ),
                    ));
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        readers.next_id += 1;
        let id = readers.next_id;
        readers.list.push(Reader {
            id,
            epoch,
            kick: Some(tx),
        });
        Ok((
            ReaderGuard {
                hub: self.clone(),
                key,
                id,
            },
            rx,
        ))
    }
}
