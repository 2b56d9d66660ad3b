//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so the corpus is a regression suite on the stable toolchain.
//!
//! The checks live in `fuzz/src/` and are compiled into this test as a module. To refresh the
//! seed files after changing the seed builders:
//! `cargo test --release --test fuzz_corpus_replay -- --ignored write_seeds`.

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use bytes::Bytes;
use eventhubs::amqp::types::message::Message;
use fuzz::seeds::{self, TARGETS};
use proptest::collection::vec;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) -> usize {
    let files = corpus_files(target);
    for path in &files {
        let data = std::fs::read(path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| seeds::run_target(target, &data));
        if outcome.is_err() {
            panic!("{target}: corpus file {} fails its check", path.display());
        }
    }
    files.len()
}

#[test]
fn replay_decode_value_corpus() {
    assert!(replay("decode_value") > 0);
}

#[test]
fn replay_parse_frame_corpus() {
    assert!(replay("parse_frame") > 0);
}

#[test]
fn replay_decode_message_corpus() {
    assert!(replay("decode_message") > 0);
}

#[test]
fn replay_engine_client_corpus() {
    assert!(replay("engine_client") > 0);
}

#[test]
fn replay_engine_server_corpus() {
    assert!(replay("engine_server") > 0);
}

#[test]
fn replay_websocket_frames_corpus() {
    assert!(replay("websocket_frames") > 0);
}

#[test]
fn replay_proxy_reply_corpus() {
    assert!(replay("proxy_reply") > 0);
}

/// The seed builders' current output passes every check too (not only the files on disk).
#[test]
fn seeds_pass_their_targets() {
    for (target, inputs) in seeds::all() {
        assert!(!inputs.is_empty(), "{target} has no seeds");
        for data in inputs {
            seeds::run_target(target, &data);
        }
    }
}

/// The engine seeds are real exchanges: replayed a byte at a time they reach the open
/// connection, sessions, links and deliveries on both sides.
#[test]
fn engine_seeds_reach_deliveries() {
    use eventhubs::amqp::engine::EndpointRole;
    use fuzz::engine::{run, Options};
    let (client, server) = seeds::engine();
    for (role, inputs) in [
        (EndpointRole::Client, client),
        (EndpointRole::Server, server),
    ] {
        for data in inputs.iter().filter(|d| d[1] == 0) {
            let opts = Options(data[0]);
            let s = run(role, data);
            assert_eq!(s.opened, 1, "{role:?} {opts:?}: {s:?}");
            assert!(s.sessions >= 1, "{role:?} {opts:?}: {s:?}");
            assert!(s.links >= 2, "{role:?} {opts:?}: {s:?}");
            if !opts.refuse_links() {
                assert!(s.deliveries >= 1, "{role:?} {opts:?}: {s:?}");
            }
            assert_eq!(s.closed, 1, "{role:?} {opts:?}: {s:?}");
        }
    }
}

/// The WebSocket seeds carry real messages through the framing (and the upgrade), so the
/// fuzzer starts from inputs that reach past the header checks.
#[test]
fn websocket_seeds_reach_messages() {
    use eventhubs::amqp::io::ws::read_peer_bytes;
    let seeds = seeds::websocket_frames();
    let as_server = read_peer_bytes(&seeds[0][1..], true, false);
    assert!(as_server.binary_messages >= 2, "{as_server:?}");
    let upgraded = read_peer_bytes(&seeds[1][1..], true, true);
    assert!(
        upgraded.upgraded && upgraded.binary_messages >= 2,
        "{upgraded:?}"
    );
}

/// Every target has a corpus directory with at least its seeds' count of files.
#[test]
fn every_target_has_a_corpus() {
    for target in TARGETS {
        assert!(!corpus_files(target).is_empty(), "{target} has no corpus");
    }
}

/// Writes the seeds into the corpus directories (run by hand, see the module docs).
#[test]
#[ignore = "writes files; run by hand to refresh the seeds"]
fn write_seeds() {
    for (target, inputs) in seeds::all() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, data) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), data).expect("seed file");
        }
    }
}

proptest::proptest! {
    /// The `decode_message` target's in-place check on generated events, whole and with one
    /// byte changed (the corpus seldom holds an event of the usual shape).
    #[test]
    fn events_read_in_place_have_the_parts_the_scan_finds(
        annotations in vec(("[a-z-]{1,12}", any::<i64>()), 0..4),
        body in vec(any::<u8>(), 0..64),
        flip in any::<prop::sample::Index>(),
        to in any::<u8>(),
        mutate in any::<bool>(),
    ) {
        let mut m = Message::with_data(Bytes::from(body));
        for (k, v) in annotations {
            m.message_annotations_mut().insert(k.as_str(), v);
        }
        m.application_properties_mut().insert("p", 1i64);
        let mut bytes = m.to_bytes().to_vec();
        if mutate {
            let at = flip.index(bytes.len());
            bytes[at] = to;
        }
        fuzz::check_read_in_place(&Bytes::from(bytes));
    }
}
