//! Partition managers: optimistic concurrency, persistence, and surviving `kill -9`.

mod support;

use eventhubs::processor::{
    Checkpoint, FilePartitionManager, InMemoryPartitionManager, Ownership, PartitionManager,
};
use std::sync::Arc;
use std::time::SystemTime;

fn claim(p: &str, owner: &str, etag: Option<String>) -> Ownership {
    Ownership {
        fully_qualified_namespace: "ns.example".into(),
        event_hub_name: "eh1".into(),
        consumer_group: "$Default".into(),
        partition_id: p.into(),
        owner_id: owner.into(),
        last_modified_time: SystemTime::UNIX_EPOCH,
        etag,
    }
}

async fn cas_semantics(store: &dyn PartitionManager) {
    // Create-only claims: the first wins, the second (also without etag) loses.
    let won = store
        .claim_ownership(vec![claim("0", "a", None)])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    let etag = won[0].etag.clone().expect("store issues an etag");
    assert!(won[0].last_modified_time > SystemTime::UNIX_EPOCH);
    assert!(store
        .claim_ownership(vec![claim("0", "b", None)])
        .await
        .unwrap()
        .is_empty());
    // A stale etag loses; the current one wins and gets a new etag.
    assert!(store
        .claim_ownership(vec![claim("0", "b", Some("stale".into()))])
        .await
        .unwrap()
        .is_empty());
    let won = store
        .claim_ownership(vec![
            claim("0", "b", Some(etag.clone())),
            claim("1", "b", None),
        ])
        .await
        .unwrap();
    assert_eq!(won.len(), 2);
    assert_ne!(won[0].etag.as_deref(), Some(etag.as_str()));
    // The loser of a race with the same etag is left out of the result.
    let e = won[0].etag.clone();
    let (x, y) = tokio::join!(
        store.claim_ownership(vec![claim("0", "x", e.clone())]),
        store.claim_ownership(vec![claim("0", "y", e.clone())]),
    );
    assert_eq!(
        x.unwrap().len() + y.unwrap().len(),
        1,
        "exactly one concurrent claim wins"
    );
    // Listing is per consumer group, case-insensitive in the group name.
    let listed = store
        .list_ownership("ns.example", "eh1", "$default")
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(store
        .list_ownership("ns.example", "eh1", "cg1")
        .await
        .unwrap()
        .is_empty());
    // Checkpoints overwrite.
    for seq in [5, 9] {
        store
            .update_checkpoint(Checkpoint {
                fully_qualified_namespace: "ns.example".into(),
                event_hub_name: "eh1".into(),
                consumer_group: "$Default".into(),
                partition_id: "1".into(),
                offset: Some(format!("{}", seq * 100)),
                sequence_number: Some(seq),
            })
            .await
            .unwrap();
    }
    let cps = store
        .list_checkpoints("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].sequence_number, Some(9));
    assert_eq!(cps[0].offset.as_deref(), Some("900"));
}

#[tokio::test]
async fn in_memory_manager_has_store_semantics() {
    cas_semantics(&InMemoryPartitionManager::new()).await;
}

/// The Blob Storage store against Azurite (`EVENTHUBS_AZURITE`: its connection string), in a
/// container of its own, then a second instance (another machine, in effect) over the same.
#[tokio::test]
async fn blob_manager_has_store_semantics_on_azurite() {
    use eventhubs::processor::{BlobOptions, BlobPartitionManager};
    let Some(cs) = support::peer("EVENTHUBS_AZURITE", "Azurite (Blob Storage)") else {
        return;
    };
    let container = format!("contract-{}", std::process::id());
    let options = BlobOptions::default().with_create_container(true);
    let store = BlobPartitionManager::connect(&cs, &container, options.clone())
        .await
        .expect("Azurite reachable");
    cas_semantics(&store).await;
    let again = BlobPartitionManager::connect(&cs, &container, options)
        .await
        .unwrap();
    let listed = again
        .list_ownership("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let cps = again
        .list_checkpoints("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(cps[0].sequence_number, Some(9));
    println!("blob store contract passed on Azurite");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("eventhubs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn file_manager_has_store_semantics_and_persists() {
    let dir = temp_dir("filepm");
    cas_semantics(&FilePartitionManager::new(&dir).unwrap()).await;
    // A second instance (another process, in effect) sees the same state.
    let again = FilePartitionManager::new(&dir).unwrap();
    let listed = again
        .list_ownership("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let cps = again
        .list_checkpoints("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(cps[0].sequence_number, Some(9));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_manager_claims_are_exclusive_across_instances() {
    let dir = temp_dir("filepm-race");
    let stores: Vec<Arc<FilePartitionManager>> = (0..4)
        .map(|_| Arc::new(FilePartitionManager::new(&dir).unwrap()))
        .collect();
    for round in 0..20 {
        let current = stores[0]
            .list_ownership("ns.example", "eh1", "$Default")
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.partition_id == "7")
            .and_then(|o| o.etag);
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.clone();
                let c = claim("7", &format!("p{i}"), current.clone());
                tokio::spawn(async move { s.claim_ownership(vec![c]).await.unwrap().len() })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap();
        }
        assert_eq!(wins, 1, "round {round}: exactly one instance wins");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Child half of the kill test: writes checkpoints and claims as fast as it can, forever.
#[test]
fn kill_child_writer() {
    let Ok(dir) = std::env::var("EVENTHUBS_KILL_CHILD_DIR") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = FilePartitionManager::new(&dir).unwrap();
        let mut etag = None;
        for seq in 0i64.. {
            store
                .update_checkpoint(Checkpoint {
                    fully_qualified_namespace: "ns.example".into(),
                    event_hub_name: "eh1".into(),
                    consumer_group: "$Default".into(),
                    partition_id: "0".into(),
                    offset: Some((seq * 10).to_string()),
                    sequence_number: Some(seq),
                })
                .await
                .unwrap();
            let won = store
                .claim_ownership(vec![claim("0", "child", etag.clone())])
                .await
                .unwrap();
            etag = won.first().and_then(|o| o.etag.clone()).or(etag);
        }
    });
}

#[test]
fn file_manager_survives_kill_9_at_any_point() {
    let dir = temp_dir("filepm-kill");
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut last_seq = -1;
    for round in 0..8u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "kill_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("EVENTHUBS_KILL_CHILD_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + round * 37));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = FilePartitionManager::new(&dir).unwrap();
        let (cps, owners) = rt.block_on(async {
            (
                store
                    .list_checkpoints("ns.example", "eh1", "$Default")
                    .await,
                store.list_ownership("ns.example", "eh1", "$Default").await,
            )
        });
        // Every record parses (never torn), the checkpoint is internally consistent.
        let cps = cps.expect("checkpoints readable after kill -9");
        let owners = owners.expect("ownership readable after kill -9");
        if let Some(cp) = cps.first() {
            let seq = cp.sequence_number.unwrap();
            assert_eq!(cp.offset.as_deref(), Some((seq * 10).to_string().as_str()));
            // Each child starts from 0 again; what matters is that nothing is corrupt.
            last_seq = seq;
        }
        assert!(owners.len() <= 1);
        // The next child must be able to claim with the etag it reads, i.e. the lock was
        // released by the kill.
        if let Some(o) = owners.first() {
            let won = rt
                .block_on(store.claim_ownership(vec![claim("0", "parent", o.etag.clone())]))
                .unwrap();
            assert_eq!(won.len(), 1);
        }
    }
    assert!(last_seq >= 0, "the child wrote at least one checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn file_manager_removes_temporary_files_left_by_dead_writers() {
    let dir = temp_dir("filepm-tmp");
    let store = FilePartitionManager::new(&dir).unwrap();
    store
        .update_checkpoint(Checkpoint {
            fully_qualified_namespace: "ns.example".into(),
            event_hub_name: "eh1".into(),
            consumer_group: "$Default".into(),
            partition_id: "0".into(),
            offset: Some("10".into()),
            sequence_number: Some(1),
        })
        .await
        .unwrap();
    let listed_dirs: Vec<std::path::PathBuf> = walk(&dir)
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| p.parent().map(|d| d.to_path_buf()))
        .collect();
    let checkpoints = listed_dirs.first().expect("a checkpoint file").clone();
    let old = checkpoints.join(".tmp-999999-1");
    let fresh = checkpoints.join(".tmp-999999-2");
    std::fs::write(&old, "torn").unwrap();
    std::fs::write(&fresh, "being written").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    let cps = store
        .list_checkpoints("ns.example", "eh1", "$Default")
        .await
        .unwrap();
    assert_eq!(cps.len(), 1, "temporary files are never records");
    assert!(!old.exists(), "an hour-old temporary file is removed");
    assert!(fresh.exists(), "a fresh one may be a write in progress");
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
