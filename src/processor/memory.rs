//! A partition manager in memory, shareable by processors in one process, with the same
//! compare-and-swap semantics as a real store.

use super::manager::{Checkpoint, Ownership, PartitionManager, StoreFuture};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

type Key = (String, String, String, String);

fn key(ns: &str, hub: &str, cg: &str, p: &str) -> Key {
    (
        ns.to_owned(),
        hub.to_owned(),
        cg.to_ascii_lowercase(),
        p.to_owned(),
    )
}

/// Ownership and checkpoints held in memory (lost when the process ends).
#[derive(Debug, Default)]
pub struct InMemoryPartitionManager {
    ownership: Mutex<BTreeMap<Key, Ownership>>,
    checkpoints: Mutex<BTreeMap<Key, Checkpoint>>,
    version: AtomicU64,
}

impl InMemoryPartitionManager {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PartitionManager for InMemoryPartitionManager {
    fn list_ownership<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Ownership>> {
        Box::pin(async move {
            let map = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
            let cg = consumer_group.to_ascii_lowercase();
            Ok(map
                .iter()
                .filter(|(k, _)| k.0 == namespace && k.1 == event_hub && k.2 == cg)
                .map(|(_, v)| v.clone())
                .collect())
        })
    }

    fn claim_ownership<'a>(&'a self, claims: Vec<Ownership>) -> StoreFuture<'a, Vec<Ownership>> {
        Box::pin(async move {
            let mut map = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
            let mut won = Vec::new();
            for mut claim in claims {
                let k = key(
                    &claim.fully_qualified_namespace,
                    &claim.event_hub_name,
                    &claim.consumer_group,
                    &claim.partition_id,
                );
                let current = map.get(&k).and_then(|o| o.etag.clone());
                if current != claim.etag {
                    continue;
                }
                claim.etag = Some(self.version.fetch_add(1, Ordering::Relaxed).to_string());
                claim.last_modified_time = SystemTime::now();
                map.insert(k, claim.clone());
                won.push(claim);
            }
            Ok(won)
        })
    }

    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let k = key(
                &checkpoint.fully_qualified_namespace,
                &checkpoint.event_hub_name,
                &checkpoint.consumer_group,
                &checkpoint.partition_id,
            );
            self.checkpoints
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(k, checkpoint);
            Ok(())
        })
    }

    fn list_checkpoints<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Checkpoint>> {
        Box::pin(async move {
            let map = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
            let cg = consumer_group.to_ascii_lowercase();
            Ok(map
                .iter()
                .filter(|(k, _)| k.0 == namespace && k.1 == event_hub && k.2 == cg)
                .map(|(_, v)| v.clone())
                .collect())
        })
    }
}
