//! Heap allocations per event on the producer's hot path, counted by a global allocator: adding
//! events to an `EventDataBatch`, and sending full batches with `EventHubProducer::send` to an
//! emulator. The targets are "0 amortized": what a batch costs is paid per batch (buffer growth,
//! one transfer, one outcome), never per event.
//!
//! The emulator runs as a separate `ehub emulator` process, so every allocation in this process
//! during a measured window is the client's, whichever thread made it; this binary holds a
//! single test so that no other test allocates concurrently. The client runs on a current-thread
//! runtime. Events are built outside the windows that measure `try_add` and `send` (building an
//! `EventData` is the caller's allocation: its boxed message and the body's section list), and
//! that cost is measured and printed on its own.
//!
//! `cargo test --release --test producer_allocations -- --nocapture` prints the figures.
#![cfg(feature = "cli")]

use bytes::Bytes;
use eventhubs::{BatchOptions, EventData, EventDataBatch, EventHubClient, ProducerOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const EHUB: &str = env!("CARGO_BIN_EXE_ehub");
const MIB: usize = 1024 * 1024;

/// Counts allocations (fresh, zeroed and reallocations) while `COUNTING` is on; frees are
/// not counted.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn note() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; counting
// touches only atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while `f` runs.
fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (out, ALLOCATIONS.load(Ordering::Relaxed))
}

/// `n` events of `size` bytes sharing one body.
fn events(size: usize, n: usize) -> Vec<EventData> {
    let body = Bytes::from(vec![0x5a; size]);
    (0..n).map(|_| EventData::new(body.clone())).collect()
}

/// Fills `batch` from `events` until it is full; returns how many went in.
fn fill(batch: &mut EventDataBatch, events: &mut std::vec::IntoIter<EventData>) -> usize {
    let mut added = 0;
    for e in events.by_ref() {
        if batch.try_add(e).is_err() {
            break;
        }
        added += 1;
    }
    added
}

struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ehub emulator` on a free port; returns it with its connection string.
fn start_emulator() -> (Emulator, String) {
    let mut child = Command::new(EHUB)
        .args(["emulator", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ehub emulator");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let emulator = Emulator(child);
    // The connection string is the line after "connection string:".
    let cs = lines
        .by_ref()
        .map(|l| l.expect("emulator output"))
        .skip_while(|l| l != "connection string:")
        .nth(1)
        .expect("the emulator prints its connection string");
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (emulator, cs)
}

#[test]
fn batch_add_and_send_allocate_nothing_per_event() {
    // Event construction: what the caller pays per event, for reference.
    let body = Bytes::from(vec![0x5a; 100]);
    let (built, construct) = count(|| {
        (0..10_000)
            .map(|_| EventData::new(body.clone()))
            .collect::<Vec<_>>()
    });
    drop(built);
    let construct = (construct.saturating_sub(1)) as f64 / 10_000.0; // minus the Vec itself
    println!("EventData::new (caller side): {construct:.3} allocations per event");

    // try_add into a 1 MiB batch of 100 B events.
    let mut pool = events(100, 20_000).into_iter();
    let mut batch = EventDataBatch::new(MIB, None);
    let (added, adds) = count(|| fill(&mut batch, &mut pool));
    assert!(added > 9000, "a 1 MiB batch holds {added} events of 100 B");
    let per_add = adds as f64 / added as f64;
    println!(
        "try_add: {adds} allocations for {added} events of 100 B in a 1 MiB batch: {per_add:.5} per event"
    );
    assert!(
        per_add < 0.01,
        "try_add allocates {per_add} times per event"
    );
    drop(batch);

    let (_emulator, cs) = start_emulator();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = EventHubClient::from_connection_string(&cs, Some("eh1")).expect("client");
        let producer = client
            .create_producer(ProducerOptions::partition("0"))
            .await
            .expect("producer");
        for (size, batches, bound) in [(100usize, 20usize, 0.01f64), (65536, 40, 0.5)] {
            // Batches are created and filled outside the window: it covers `send` alone.
            let per_batch_guess = MIB / size + 1;
            let mut pool = events(size, per_batch_guess * (batches + 1)).into_iter();
            let mut full = Vec::new();
            for _ in 0..batches + 1 {
                let mut b = producer
                    .create_batch(BatchOptions::default())
                    .await
                    .expect("batch");
                fill(&mut b, &mut pool);
                full.push(b);
            }
            // The first send warms buffers and tables that later sends reuse.
            producer
                .send(full.remove(0))
                .await
                .expect("warm-up send");
            let sent: usize = full.iter().map(EventDataBatch::len).sum();
            ALLOCATIONS.store(0, Ordering::Relaxed);
            COUNTING.store(true, Ordering::SeqCst);
            for b in full {
                producer.send(b).await.expect("send");
            }
            COUNTING.store(false, Ordering::SeqCst);
            let sends = ALLOCATIONS.load(Ordering::Relaxed);
            let per_event = sends as f64 / sent as f64;
            println!(
                "send: {sends} allocations for {batches} batches ({sent} events of {size} B): {:.1} per batch, {per_event:.4} per event",
                sends as f64 / batches as f64
            );
            assert!(
                per_event < bound,
                "send allocates {per_event} times per event of {size} B"
            );
        }
        producer.close().await.expect("close");
        client.close().await.expect("close client");
    });
}
