//! A partition manager in a directory, shared by processor processes on one machine (or a
//! shared filesystem). Writes are atomic (temp file, fsync, rename, fsync of the directory)
//! and claims compare etags under an exclusive file lock, so a process killed at any point
//! leaves every record either old or new, never torn.

use super::manager::{Checkpoint, Ownership, PartitionManager, PartitionManagerError, StoreFuture};
use crate::auth::{percent_decode, percent_encode};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ownership and checkpoints as small files under a root directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FilePartitionManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Makes temp-file names and etags unique within the process.
    counter: AtomicU64,
}

fn io(path: &Path, source: std::io::Error) -> PartitionManagerError {
    PartitionManagerError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn corrupt(path: &Path, why: &str) -> PartitionManagerError {
    PartitionManagerError::Corrupt {
        path: path.display().to_string(),
        why: why.to_owned(),
    }
}

/// Reads `key=value` lines.
fn read_fields(path: &Path) -> Result<Option<Vec<(String, String)>>, PartitionManagerError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A temporary file older than this was left by a writer that died between create and
/// rename (a write takes milliseconds).
const STALE_TMP_AGE: Duration = Duration::from_secs(600);

/// Removes a leftover temporary file, best effort: another lister may get there first.
fn remove_if_stale(entry: &fs::DirEntry) {
    let stale = entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_TMP_AGE);
    if stale {
        let _ = fs::remove_file(entry.path());
    }
}

impl FilePartitionManager {
    /// A store rooted at `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, PartitionManagerError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io(&root, e))?;
        Ok(FilePartitionManager {
            inner: Arc::new(Inner {
                root,
                counter: AtomicU64::new(0),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

impl Inner {
    fn group_dir(&self, ns: &str, hub: &str, cg: &str, kind: &str) -> PathBuf {
        self.root
            .join(percent_encode(ns))
            .join(percent_encode(hub))
            .join(percent_encode(&cg.to_ascii_lowercase()))
            .join(kind)
    }

    /// Writes `contents` to `path` atomically and durably.
    fn write_atomic(&self, path: &Path, contents: &str) -> Result<(), PartitionManagerError> {
        let dir = path.parent().unwrap_or(&self.root);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(contents.as_bytes()).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))
    }

    fn new_etag(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{nanos:x}-{:x}-{:x}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, PartitionManagerError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                remove_if_stale(&entry);
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            if let Some(partition) = percent_decode(&name) {
                out.push((partition, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn read_ownership(
        path: &Path,
        ns: &str,
        hub: &str,
        cg: &str,
        partition: &str,
    ) -> Result<Option<Ownership>, PartitionManagerError> {
        let Some(fields) = read_fields(path)? else {
            return Ok(None);
        };
        let owner = field(&fields, "owner_id")
            .and_then(percent_decode)
            .ok_or_else(|| corrupt(path, "no owner_id"))?;
        let etag = field(&fields, "etag").ok_or_else(|| corrupt(path, "no etag"))?;
        let ms: u64 = field(&fields, "last_modified_ms")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(path, "no last_modified_ms"))?;
        Ok(Some(Ownership {
            fully_qualified_namespace: ns.to_owned(),
            event_hub_name: hub.to_owned(),
            consumer_group: cg.to_owned(),
            partition_id: partition.to_owned(),
            owner_id: owner,
            last_modified_time: UNIX_EPOCH + Duration::from_millis(ms),
            etag: Some(etag.to_owned()),
        }))
    }

    fn claim_blocking(
        &self,
        claims: Vec<Ownership>,
    ) -> Result<Vec<Ownership>, PartitionManagerError> {
        let mut won = Vec::new();
        for mut claim in claims {
            let dir = self.group_dir(
                &claim.fully_qualified_namespace,
                &claim.event_hub_name,
                &claim.consumer_group,
                "ownership",
            );
            fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let lock_path = dir.join(".lock");
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| io(&lock_path, e))?;
            // Held until `lock` drops: read-compare-write is atomic across processes.
            lock.lock().map_err(|e| io(&lock_path, e))?;
            let path = dir.join(percent_encode(&claim.partition_id));
            let current = Self::read_ownership(
                &path,
                &claim.fully_qualified_namespace,
                &claim.event_hub_name,
                &claim.consumer_group,
                &claim.partition_id,
            )?;
            if current.and_then(|c| c.etag) != claim.etag {
                continue;
            }
            let now = SystemTime::now();
            let ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let etag = self.new_etag();
            self.write_atomic(
                &path,
                &format!(
                    "owner_id={}\netag={etag}\nlast_modified_ms={ms}\n",
                    percent_encode(&claim.owner_id)
                ),
            )?;
            claim.etag = Some(etag);
            claim.last_modified_time = UNIX_EPOCH + Duration::from_millis(ms as u64);
            won.push(claim);
        }
        Ok(won)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PartitionManagerError> + Send + 'static,
) -> Result<T, PartitionManagerError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(PartitionManagerError::Other(format!(
            "store task failed: {e}"
        )))
    })
}

impl PartitionManager for FilePartitionManager {
    fn list_ownership<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Ownership>> {
        let dir = self
            .inner
            .group_dir(namespace, event_hub, consumer_group, "ownership");
        let (ns, hub, cg) = (
            namespace.to_owned(),
            event_hub.to_owned(),
            consumer_group.to_owned(),
        );
        Box::pin(blocking(move || {
            let mut out = Vec::new();
            for (partition, path) in Inner::list_dir(&dir)? {
                if let Some(o) = Inner::read_ownership(&path, &ns, &hub, &cg, &partition)? {
                    out.push(o);
                }
            }
            Ok(out)
        }))
    }

    fn claim_ownership<'a>(&'a self, claims: Vec<Ownership>) -> StoreFuture<'a, Vec<Ownership>> {
        let this = self.inner.clone();
        Box::pin(blocking(move || this.claim_blocking(claims)))
    }

    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
        let this = self.inner.clone();
        Box::pin(blocking(move || {
            let dir = this.group_dir(
                &checkpoint.fully_qualified_namespace,
                &checkpoint.event_hub_name,
                &checkpoint.consumer_group,
                "checkpoint",
            );
            fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let path = dir.join(percent_encode(&checkpoint.partition_id));
            this.write_atomic(
                &path,
                &format!(
                    "offset={}\nsequence_number={}\n",
                    checkpoint
                        .offset
                        .as_deref()
                        .map(percent_encode)
                        .unwrap_or_default(),
                    checkpoint
                        .sequence_number
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ),
            )
        }))
    }

    fn list_checkpoints<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Checkpoint>> {
        let dir = self
            .inner
            .group_dir(namespace, event_hub, consumer_group, "checkpoint");
        let (ns, hub, cg) = (
            namespace.to_owned(),
            event_hub.to_owned(),
            consumer_group.to_owned(),
        );
        Box::pin(blocking(move || {
            let mut out = Vec::new();
            for (partition, path) in Inner::list_dir(&dir)? {
                let Some(fields) = read_fields(&path)? else {
                    continue;
                };
                let offset = field(&fields, "offset")
                    .filter(|v| !v.is_empty())
                    .map(|v| percent_decode(v).ok_or_else(|| corrupt(&path, "bad offset")))
                    .transpose()?;
                let sequence_number = field(&fields, "sequence_number")
                    .filter(|v| !v.is_empty())
                    .map(|v| v.parse().map_err(|_| corrupt(&path, "bad sequence_number")))
                    .transpose()?;
                out.push(Checkpoint {
                    fully_qualified_namespace: ns.clone(),
                    event_hub_name: hub.clone(),
                    consumer_group: cg.clone(),
                    partition_id: partition,
                    offset,
                    sequence_number,
                });
            }
            Ok(out)
        }))
    }
}
