//! A partition file that runs out of space mid-record, or cannot sync, must lose nothing
//! acknowledged and keep nothing refused.

use super::*;
use crate::amqp::types::message::Message;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The knobs a test turns on the failing file while the partition owns it.
#[derive(Default)]
struct Faults {
    /// Bytes the "disk" still takes; a write past it stores the prefix and fails.
    space: AtomicUsize,
    truncate_fails: AtomicBool,
    sync_fails: AtomicBool,
    syncs: AtomicUsize,
}

struct FailingFile {
    file: File,
    faults: Arc<Faults>,
}

impl LogSink for FailingFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let space = self.faults.space.load(Ordering::SeqCst);
        let n = bytes.len().min(space);
        self.file.write_all(&bytes[..n])?;
        self.faults.space.store(space - n, Ordering::SeqCst);
        if n < bytes.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if self.faults.truncate_fails.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("truncate refused"));
        }
        LogSink::truncate(&mut self.file, len)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.faults.sync_fails.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("sync refused"));
        }
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Fixture {
    dir: PathBuf,
    path: PathBuf,
    faults: Arc<Faults>,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ehub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let faults = Arc::new(Faults::default());
        faults.space.store(usize::MAX, Ordering::SeqCst);
        Fixture {
            path: partition_path(&dir, "eh1", 0),
            dir,
            faults,
        }
    }

    fn open(&self, fsync: Fsync) -> Partition {
        let faults = self.faults.clone();
        Partition::open_with(&self.path, Retention::default(), fsync, move |file| {
            Box::new(FailingFile { file, faults })
        })
        .unwrap()
    }

    fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).unwrap().len()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn events(bodies: &[&'static str]) -> Vec<Message> {
    bodies
        .iter()
        .map(|b| Message::with_data(Bytes::from_static(b.as_bytes())))
        .collect()
}

/// (sequence number, body) of everything a freshly reopened partition holds.
fn after_restart(path: &Path) -> Vec<(i64, String)> {
    let p = Partition::open(path, Retention::default(), Fsync::Never).unwrap();
    p.read(0, usize::MAX)
        .into_iter()
        .map(|e| {
            let m = Message::decode(e.message).unwrap();
            let body = m.body.single_data().unwrap().clone();
            (e.sequence_number, String::from_utf8(body.to_vec()).unwrap())
        })
        .collect()
}

fn pairs(items: &[(i64, &str)]) -> Vec<(i64, String)> {
    items.iter().map(|(s, b)| (*s, b.to_string())).collect()
}

#[test]
fn a_full_disk_mid_record_refuses_the_batch_and_loses_nothing_acknowledged() {
    let fx = Fixture::new("store-full");
    let p = fx.open(Fsync::Never);
    let acked = p.append(events(&["a", "b"]), None).unwrap();
    assert_eq!(acked[1].sequence_number, 1);
    let len = fx.file_len();

    // The disk fills five bytes into the next batch's first record.
    fx.faults.space.store(5, Ordering::SeqCst);
    let e = p
        .append(events(&["refused-1", "refused-2"]), None)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
    let text = e.to_string();
    assert!(
        text.contains("no space left") && text.contains("nothing stored"),
        "{text}"
    );
    assert_eq!(fx.file_len(), len, "the partial record is cut back");
    assert!(p.append(events(&["refused-3"]), None).is_err());
    assert_eq!(fx.file_len(), len);

    // Still serving what it has, and nothing of the refused batches is visible.
    assert_eq!(p.info().last_sequence_number, 1);
    assert_eq!(p.read(0, 10).len(), 2);
    assert_eq!(p.resolve(Start::Latest), 2);

    // Space returns: appends work and continue the sequence right after the last acked one.
    fx.faults.space.store(usize::MAX, Ordering::SeqCst);
    let next = p.append(events(&["c"]), None).unwrap();
    assert_eq!(next[0].sequence_number, 2);
    assert_eq!(
        next[0].offset,
        acked[1].offset + acked[1].message.len() as i64
    );
    drop(p);

    let expected = pairs(&[(0, "a"), (1, "b"), (2, "c")]);
    assert_eq!(after_restart(&fx.path), expected);
    let p = Partition::open(&fx.path, Retention::default(), Fsync::Never).unwrap();
    assert_eq!(
        p.append(events(&["d"]), None).unwrap()[0].sequence_number,
        3
    );
}

#[test]
fn a_partial_record_that_cannot_be_cut_poisons_the_partition() {
    let fx = Fixture::new("store-poison");
    let p = fx.open(Fsync::Never);
    p.append(events(&["a", "b"]), None).unwrap();
    fx.faults.space.store(3, Ordering::SeqCst);
    fx.faults.truncate_fails.store(true, Ordering::SeqCst);
    assert!(p.append(events(&["refused"]), None).is_err());

    // Even with space back, writing after the partial record would hide it from recovery.
    fx.faults.space.store(usize::MAX, Ordering::SeqCst);
    fx.faults.truncate_fails.store(false, Ordering::SeqCst);
    let e = p.append(events(&["also-refused"]), None).unwrap_err();
    assert!(e.to_string().contains("unusable"), "{e}");
    assert_eq!(p.read(0, 10).len(), 2, "still serving what it has");
    drop(p);

    // Recovery cuts the partial record; the acknowledged events are all there.
    assert_eq!(after_restart(&fx.path), pairs(&[(0, "a"), (1, "b")]));
    let p = Partition::open(&fx.path, Retention::default(), Fsync::Never).unwrap();
    assert_eq!(
        p.append(events(&["c"]), None).unwrap()[0].sequence_number,
        2
    );
}

#[test]
fn a_failed_sync_refuses_the_batch_under_always() {
    let fx = Fixture::new("store-sync");
    let p = fx.open(Fsync::Always);
    p.append(events(&["a"]), None).unwrap();
    let len = fx.file_len();
    fx.faults.sync_fails.store(true, Ordering::SeqCst);
    assert!(p.append(events(&["refused"]), None).is_err());
    assert_eq!(fx.file_len(), len);
    fx.faults.sync_fails.store(false, Ordering::SeqCst);
    p.append(events(&["b"]), None).unwrap();
    drop(p);
    assert_eq!(after_restart(&fx.path), pairs(&[(0, "a"), (1, "b")]));
}

#[test]
fn fsync_modes_sync_when_they_say() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let syncs_for = |fsync: Fsync, name: &str| {
        let fx = Fixture::new(name);
        let p = fx.open(fsync);
        let mut counts = Vec::new();
        for at in [0, 10, 50, 150, 160] {
            p.append_at(events(&["x"]), None, t0 + ms(at)).unwrap();
            counts.push(fx.faults.syncs.load(Ordering::SeqCst));
        }
        // A quiet tail: the flusher's tick syncs it once its period has passed.
        p.sync_if_due(t0 + ms(200)).unwrap();
        counts.push(fx.faults.syncs.load(Ordering::SeqCst));
        p.sync_if_due(t0 + ms(300)).unwrap();
        counts.push(fx.faults.syncs.load(Ordering::SeqCst));
        p.sync_if_due(t0 + ms(400)).unwrap();
        counts.push(fx.faults.syncs.load(Ordering::SeqCst));
        counts
    };
    assert_eq!(syncs_for(Fsync::Never, "fsync-never"), [0; 8]);
    assert_eq!(
        syncs_for(Fsync::Always, "fsync-always"),
        [1, 2, 3, 4, 5, 5, 5, 5]
    );
    assert_eq!(
        syncs_for(Fsync::Interval(ms(100)), "fsync-interval"),
        [1, 1, 1, 2, 2, 2, 3, 3],
        "at most one sync per 100 ms, and the dirty tail synced once it is due"
    );
}
