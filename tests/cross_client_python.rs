//! Cross-client tests through the emulator: events sent by the official Python client
//! (`azure-eventhub`) are read by our consumer with every section intact, and events sent by
//! our producer are read by the official consumer. The events are the deterministic functions
//! of their index defined in `tests/python/crossspec.py`, mirrored here; both sides check
//! everything they receive against them and the emulator's own view of its partitions.
//!
//! Gated like `tests/emulator_python.rs`: `EVENTHUBS_PYTHON_CLIENT` names the interpreter,
//! otherwise each test prints a skip line and passes.
#![cfg(feature = "emulator")]

mod python_support;
mod support;

use bytes::Bytes;
use eventhubs::amqp::codec::{Str, Symbol, Timestamp, Uuid, Value};
use eventhubs::amqp::types::message::{Body, Header, Message, MessageId, Properties, PropertyMap};
use eventhubs::{
    BatchOptions, ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions,
    SendOptions,
};
use python_support::*;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// The events: a mirror of crossspec.py (change both together).

const MODES: [(&str, usize, usize); 5] = [
    ("single", 0, 200),
    ("list", 200, 400),
    ("batch", 400, 600),
    ("key", 600, 800),
    ("pid", 800, 1000),
];
const TOTAL: usize = 1000;
const CHUNK: usize = 20;
const KEYS: usize = 5;
const CONTENT_TYPE: &str = "application/x-cross-client";
const BIG: usize = 300_000;
const EPOCH_2024_MS: i64 = 1_704_067_200_000;

fn mode_of(i: usize) -> &'static str {
    MODES
        .iter()
        .find(|(_, lo, hi)| (*lo..*hi).contains(&i))
        .map(|m| m.0)
        .unwrap_or_else(|| panic!("index {i} outside every mode"))
}

fn key_of(i: usize) -> Option<String> {
    (mode_of(i) == "key").then(|| format!("xkey-ü{}", (i / CHUNK) % KEYS))
}

fn pid_of(i: usize, partition_count: usize) -> Option<usize> {
    (mode_of(i) == "pid").then_some((i / CHUNK) % partition_count)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Style {
    Singles,
    List,
    Batch,
}

fn chunk_style(start: usize) -> Style {
    let (mode, lo, _) = MODES[MODES.iter().position(|m| m.0 == mode_of(start)).unwrap()];
    match mode {
        "single" => Style::Singles,
        "list" => Style::List,
        "batch" => Style::Batch,
        _ => [Style::Batch, Style::List, Style::Singles][((start - lo) / CHUNK) % 3],
    }
}

fn uuid(n: u128) -> Uuid {
    Uuid(n.to_be_bytes())
}

fn string(s: impl Into<String>) -> Value {
    Value::String(Str::from(s.into()))
}

fn binary(b: impl Into<Bytes>) -> Value {
    Value::Binary(b.into())
}

fn body_of(i: usize) -> Body {
    let data = |b: Vec<u8>| Body::Data(vec![Bytes::from(b)].into());
    if i % 200 == 102 {
        return data((0..BIG).map(|k| ((i + 13 * k) % 256) as u8).collect());
    }
    let n = i as i32;
    match i % 50 {
        0 => data((0..=255).collect()),
        1 => data(Vec::new()),
        10 => Body::Value(Value::List(vec![
            Value::Int(n),
            string(format!("value-{i}")),
            binary(&b"\x00\xff"[..]),
            Value::Bool(true),
            Value::Null,
            Value::Double(2.5),
        ])),
        25 => Body::Value(Value::Map(vec![
            (string("n"), Value::Int(n)),
            (string("s"), string(format!("map-{i}"))),
        ])),
        33 => Body::Value(string(format!("scalar-{i}"))),
        40 => Body::Sequence(vec![
            vec![Value::Int(n), string("a")],
            vec![binary(&b"\x01\x02"[..]), Value::Null],
        ]),
        45 => Body::Data(
            vec![
                Bytes::from(format!("part-{i}")),
                Bytes::from((0..5).map(|k| ((i + k) % 256) as u8).collect::<Vec<_>>()),
                Bytes::from_static(b"z"),
            ]
            .into(),
        ),
        _ => {
            let mut b = format!("event {i} ").into_bytes();
            b.extend((0..i % 23).map(|k| ((i * 7 + k) % 256) as u8));
            data(b)
        }
    }
}

/// (-1)^i * (100 i + 25) / 100 in decimal128's binary integer encoding: sign bit, exponent
/// biased by 6176 in the next 14 bits, coefficient in the low 113.
fn decimal_of(i: usize) -> [u8; 16] {
    let exponent = (6176 - 2) as u128;
    let bits = ((i as u128 % 2) << 127) | (exponent << 113) | (i as u128 * 100 + 25);
    bits.to_be_bytes()
}

/// Which client sent the events: a few things differ (see `props_of` and `header_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    Python,
    Ours,
}

/// Application properties in wire order. Ours leave decimal128 out: the official client cannot
/// decode any (see `props_sent` in crossspec.py).
fn props_of(i: usize, sender: Sender) -> PropertyMap {
    let n = i as i64;
    let mut entries: Vec<(&str, Value)> = vec![
        ("i", Value::Int(n as i32)),
        ("neg", Value::Int((-n - 1) as i32)),
        ("mode", string(mode_of(i))),
        ("utf8", string(format!("ünï-€-{i}"))),
        ("half", Value::Double(n as f64 / 2.0 + 0.25)),
        ("even", Value::Bool(i.is_multiple_of(2))),
        ("raw", binary((i as u32).to_be_bytes().to_vec())),
        ("id", Value::Uuid(uuid(i as u128 + 1))),
        ("nothing", Value::Null),
        ("when", Value::Timestamp(Timestamp(EPOCH_2024_MS + n))),
        ("dec", Value::Decimal128(decimal_of(i))),
        ("u8", Value::Ubyte((i % 256) as u8)),
        ("i8", Value::Byte(((i % 256) as i16 - 128) as i8)),
        ("u16", Value::Ushort((i * 257 % 65536) as u16)),
        ("i16", Value::Short(-((i * 31 % 32768) as i16))),
        ("u32", Value::Uint(4_000_000_000 + i as u32)),
        ("u64", Value::Ulong((1u64 << 63) + i as u64)),
        ("i64", Value::Long(-(1i64 << 40) - n)),
        ("f32", Value::Float(i as f32 + 0.5)),
        ("sym", Value::Symbol(Symbol::from(format!("sym-{i}")))),
        ("u0", Value::Uint(0)),
        ("ul", Value::Ulong((i % 256) as u64)),
        ("imax", Value::Int(i32::MAX - n as i32)),
        ("empty", string("")),
        ("empty_raw", binary(Vec::new())),
        ("big_str", string(format!("{}{i}", "ü".repeat(200)))),
        (
            "big_raw",
            binary((0..300).map(|k| ((i + k) % 256) as u8).collect::<Vec<_>>()),
        ),
        ("clé", Value::Int(n as i32)),
    ];
    if sender == Sender::Ours {
        entries.retain(|(k, _)| *k != "dec");
    }
    PropertyMap::from(
        entries
            .into_iter()
            .map(|(k, v)| (Str::from(k), v))
            .collect::<Vec<_>>(),
    )
}

fn ids_of(i: usize) -> Option<(MessageId, MessageId)> {
    if !i.is_multiple_of(10) {
        return None;
    }
    let k = (i / 10) % 4;
    let id = |k: usize, prefix: &str, bin: &str, n: u64, u: u128| match k {
        0 => MessageId::from(format!("{prefix}-{i}")),
        1 => MessageId::Ulong(n),
        2 => MessageId::Uuid(uuid(u)),
        _ => MessageId::Binary(Bytes::from(format!("{bin}-{i}"))),
    };
    Some((
        id(k, "msg", "bin", i as u64, i as u128 + 7),
        id((k + 1) % 4, "corr", "cbin", i as u64 + 1, i as u128 + 9),
    ))
}

fn has_extras(i: usize) -> bool {
    i % 10 == 5
}

/// The `properties` section event i carries, if any.
fn properties_of(i: usize) -> Option<Properties> {
    if let Some((message_id, correlation_id)) = ids_of(i) {
        return Some(Properties {
            message_id: Some(message_id),
            correlation_id: Some(correlation_id),
            content_type: Some(Symbol::from(CONTENT_TYPE)),
            ..Properties::default()
        });
    }
    has_extras(i).then(|| Properties {
        user_id: Some(Bytes::from(format!("user-{i}"))),
        to: Some(Str::from(format!("to-{i}"))),
        subject: Some(Str::from(format!("subject-{i}"))),
        reply_to: Some(Str::from(format!("reply-{i}"))),
        content_encoding: Some(Symbol::from("gzip")),
        absolute_expiry_time: Some(Timestamp(1_800_000_000_000 + i as i64)),
        creation_time: Some(Timestamp(1_700_000_000_000 + i as i64)),
        group_id: Some(Str::from(format!("group-{}", i % 7))),
        group_sequence: Some(i as u32),
        reply_to_group_id: Some(Str::from(format!("rgroup-{i}"))),
        ..Properties::default()
    })
}

fn header_of(i: usize, sender: Sender) -> Option<Header> {
    // When the official client puts a partition key on the events of a batch (or of a list,
    // which it sends as one), it replaces each event's header with one that only says durable.
    if sender == Sender::Python && mode_of(i) == "key" && chunk_style(i) != Style::Singles {
        return Some(Header {
            durable: true,
            ..Header::default()
        });
    }
    has_extras(i).then(|| Header {
        durable: true,
        priority: (i / 10 % 10) as u8,
        ttl: Some(60_000 + i as u32),
        first_acquirer: i % 20 == 5,
        delivery_count: (i % 3) as u32,
    })
}

fn annotations_of(i: usize) -> Vec<(&'static str, Value)> {
    if !has_extras(i) {
        return Vec::new();
    }
    vec![
        ("x-opt-cross-str", string(format!("ann-{i}"))),
        ("x-opt-cross-num", Value::Int(i as i32)),
    ]
}

/// Event i as our producer sends it: through `EventData`'s setters where it has them, through
/// the raw message for the rest.
fn outgoing(i: usize) -> EventData {
    let mut e = match body_of(i) {
        Body::Data(d) if d.len() == 1 => EventData::new(d[0].clone()),
        body => EventData::from_outgoing_message(Message {
            body,
            ..Message::default()
        }),
    };
    for (k, v) in props_of(i, Sender::Ours) {
        e.set_property(k, v);
    }
    if let Some((message_id, correlation_id)) = ids_of(i) {
        e.set_message_id(message_id);
        e.set_correlation_id(correlation_id);
        e.set_content_type(CONTENT_TYPE);
    } else if let Some(p) = properties_of(i) {
        e.raw_message_mut().properties = Some(p);
    }
    e.raw_message_mut().header = header_of(i, Sender::Ours);
    for (k, v) in annotations_of(i) {
        e.raw_message_mut().message_annotations_mut().insert(k, v);
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Collects failed checks, like ehtest.Checks: every check can fail and says what differed.
#[derive(Default)]
struct Checks {
    count: usize,
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        self.count += 1;
        if !ok {
            self.failures.push(what());
        }
        ok
    }

    fn equal<T: PartialEq + Debug>(&mut self, got: T, want: T, what: &str) -> bool {
        let ok = got == want;
        self.check(ok, || format!("{what}: got {got:?}, want {want:?}"))
    }

    fn assert_ok(&self, what: &str) {
        let shown: Vec<String> = self
            .failures
            .iter()
            .take(30)
            .map(|f| {
                let mut f = f.clone();
                if f.len() > 600 {
                    let cut = (0..=600)
                        .rev()
                        .find(|&n| f.is_char_boundary(n))
                        .unwrap_or(0);
                    f.truncate(cut);
                    f.push_str(" ...");
                }
                f
            })
            .collect();
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} checks failed:\n{}",
            self.failures.len(),
            self.count,
            shown.join("\n")
        );
        println!("{what}: {} checks passed", self.count);
    }
}

/// What a full read of the hub showed, for comparison with the other side's view.
#[derive(Debug, Default)]
struct ReadBack {
    /// Event indexes per partition, in the order read.
    order: Vec<Vec<usize>>,
    per_mode: BTreeMap<String, usize>,
    key_partitions: BTreeMap<String, BTreeSet<usize>>,
}

/// Every partition from earliest with our consumer: exactly `counts[p]` events each.
async fn read_all(client: &EventHubClient, counts: &[i64]) -> Vec<Vec<EventData>> {
    let mut out = Vec::new();
    for (p, &n) in counts.iter().enumerate() {
        let mut c = client
            .create_consumer(
                "$default",
                &p.to_string(),
                EventPosition::earliest(),
                ConsumerOptions::default(),
            )
            .await
            .expect("consumer");
        let mut events = Vec::new();
        while events.len() < n as usize {
            let got = c
                .receive(300, Duration::from_secs(10))
                .await
                .expect("receive");
            assert!(
                !got.is_empty(),
                "partition {p}: timed out after {} of {n} events",
                events.len()
            );
            events.extend(got);
        }
        // Anything beyond what the emulator counted would show up now.
        let extra = c
            .receive(10, Duration::from_millis(300))
            .await
            .expect("receive");
        assert!(
            extra.is_empty(),
            "partition {p}: {} unexpected events",
            extra.len()
        );
        c.close().await.expect("close");
        out.push(events);
    }
    out
}

/// Checks every event read against the spec and the partitions' system properties; `window`
/// is when the events were sent (ms since the epoch).
fn verify(
    c: &mut Checks,
    partitions: &[Vec<EventData>],
    window: (i64, i64),
    sender: Sender,
) -> ReadBack {
    let count = partitions.len();
    let (lo_ms, hi_ms) = (window.0 - 2000, window.1 + 2000);
    let mut back = ReadBack::default();
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for (p, events) in partitions.iter().enumerate() {
        let seqs: Vec<Option<i64>> = events.iter().map(EventData::sequence_number).collect();
        let want: Vec<Option<i64>> = (0..events.len() as i64).map(Some).collect();
        c.equal(seqs, want, &format!("partition {p}: sequence numbers"));
        let offsets: Vec<i64> = events
            .iter()
            .map(|e| e.offset().and_then(|o| o.parse().ok()).unwrap_or(-1))
            .collect();
        c.check(
            offsets.first().is_none_or(|&o| o >= 0) && offsets.windows(2).all(|w| w[0] < w[1]),
            || format!("partition {p}: offsets not strictly increasing: {offsets:?}"),
        );
        let times: Vec<i64> = events
            .iter()
            .map(|e| e.enqueued_time_millis().unwrap_or(0))
            .collect();
        c.check(times.windows(2).all(|w| w[0] <= w[1]), || {
            format!("partition {p}: enqueued times go back")
        });
        let mut order = Vec::new();
        for e in events {
            let i = match e.property("i") {
                Some(&Value::Int(i)) if (0..TOTAL as i32).contains(&i) => i as usize,
                other => {
                    c.check(false, || {
                        format!("partition {p}: event without a valid index ({other:?})")
                    });
                    continue;
                }
            };
            let seq = e.sequence_number().unwrap_or(-1);
            let where_ = format!("event {i} (partition {p}, seq {seq})");
            if let Some(first) = seen.insert(i, p) {
                c.check(false, || {
                    format!("{where_} delivered twice (also on partition {first})")
                });
            }
            order.push(i);
            check_event(c, e, i, sender, &where_);
            let t = e.enqueued_time_millis().unwrap_or(0);
            c.check((lo_ms..=hi_ms).contains(&t), || {
                format!("{where_}: enqueued time {t} outside the send window [{lo_ms}, {hi_ms}]")
            });
            if let Some(want) = pid_of(i, count) {
                c.equal(p, want, &format!("{where_} partition"));
            }
            if let Some(k) = key_of(i) {
                back.key_partitions.entry(k).or_default().insert(p);
            }
            *back.per_mode.entry(mode_of(i).to_owned()).or_default() += 1;
        }
        c.check(order.windows(2).all(|w| w[0] < w[1]), || {
            format!("partition {p}: events not in the order they were sent: {order:?}")
        });
        back.order.push(order);
    }
    c.equal(seen.len(), TOTAL, "distinct events read back");
    for (k, pids) in &back.key_partitions {
        c.equal(pids.len(), 1, &format!("partitions of the events with {k}"));
    }
    for mode in ["single", "list", "batch"] {
        let pids: BTreeSet<usize> = (0..count)
            .filter(|&p| back.order[p].iter().any(|&i| mode_of(i) == mode))
            .collect();
        c.equal(
            pids.len(),
            count,
            &format!("partitions the hub-routed {mode} events went to"),
        );
    }
    back
}

/// Every section of event i as read, compared with the spec with exact AMQP types.
fn check_event(c: &mut Checks, e: &EventData, i: usize, sender: Sender, where_: &str) {
    let m = e.raw_message();
    let want_body = body_of(i);
    if let Some(b) = want_body.single_data() {
        c.equal(e.body(), b, &format!("{where_} body"));
    } else {
        c.equal(&m.body, &want_body, &format!("{where_} body"));
    }
    let want = props_of(i, sender);
    let got = e.properties_map();
    c.check(got == Some(&want), || {
        format!(
            "{where_} application properties: {}",
            property_diff(got, &want)
        )
    });
    c.equal(
        m.properties.as_ref(),
        properties_of(i).as_ref(),
        &format!("{where_} properties"),
    );
    if let Some((message_id, correlation_id)) = ids_of(i) {
        c.equal(
            e.message_id(),
            Some(&message_id),
            &format!("{where_} message id"),
        );
        c.equal(
            e.correlation_id(),
            Some(&correlation_id),
            &format!("{where_} correlation id"),
        );
        c.equal(
            e.content_type(),
            Some(CONTENT_TYPE),
            &format!("{where_} content type"),
        );
    }
    c.equal(m.header, header_of(i, sender), &format!("{where_} header"));
    c.equal(
        m.delivery_annotations.as_ref(),
        None,
        &format!("{where_} delivery annotations"),
    );
    c.equal(m.footer.as_ref(), None, &format!("{where_} footer"));

    // Message annotations: the custom ones as sent, the partition key, and the service's
    // three; nothing else.
    let key = key_of(i);
    c.equal(
        e.partition_key(),
        key.as_deref(),
        &format!("{where_} partition key"),
    );
    let mut want_keys: BTreeSet<String> = annotations_of(i)
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    want_keys.extend(
        [
            "x-opt-sequence-number",
            "x-opt-offset",
            "x-opt-enqueued-time",
        ]
        .map(String::from),
    );
    if key.is_some() {
        want_keys.insert("x-opt-partition-key".into());
    }
    let got_keys: BTreeSet<String> = e
        .system_properties()
        .map(|a| {
            a.iter()
                .map(|(k, _)| k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    c.equal(
        got_keys,
        want_keys,
        &format!("{where_} message annotation keys"),
    );
    let a = e.system_properties();
    let get = |k: &str| a.and_then(|a| a.get(k)).cloned();
    for (k, v) in annotations_of(i) {
        c.equal(get(k), Some(v), &format!("{where_} annotation {k}"));
    }
    if let Some(k) = &key {
        c.equal(
            get("x-opt-partition-key"),
            Some(string(k.as_str())),
            &format!("{where_} x-opt-partition-key"),
        );
    }
    c.check(
        matches!(get("x-opt-sequence-number"), Some(Value::Long(_)))
            && matches!(get("x-opt-offset"), Some(Value::String(_)))
            && matches!(get("x-opt-enqueued-time"), Some(Value::Timestamp(_))),
        || format!("{where_}: service annotations of unexpected types: {a:?}"),
    );
}

/// What differs between two property maps, key by key (then their order).
fn property_diff(got: Option<&PropertyMap>, want: &PropertyMap) -> String {
    let Some(got) = got else {
        return "no application properties".into();
    };
    let mut out = Vec::new();
    for (k, w) in want.iter() {
        match got.get(k.as_str()) {
            Some(g) if g == w => {}
            g => out.push(format!("{k}: got {g:?}, want {w:?}")),
        }
    }
    for (k, g) in got.iter() {
        if want.get(k.as_str()).is_none() {
            out.push(format!("{k}: got {g:?}, not sent"));
        }
    }
    if out.is_empty() {
        let keys = |m: &PropertyMap| m.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
        out.push(format!("order {:?}, want {:?}", keys(got), keys(want)));
    }
    out.join("; ")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn temp_manifest(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("eventhubs-xclient-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("manifest.json");
    (dir, manifest)
}

fn client_for(run: &Running) -> EventHubClient {
    EventHubClient::from_connection_string(&run.emulator().connection_string(), Some(HUB))
        .expect("client")
}

/// The counts the emulator holds per partition, checked to be whole logs from sequence 0.
fn stored_counts(run: &Running) -> Vec<i64> {
    let stored = run.partitions();
    assert_eq!(
        stored.iter().map(|(n, _)| n).sum::<i64>(),
        TOTAL as i64,
        "the emulator stored {stored:?}"
    );
    assert!(
        stored.iter().all(|&(n, last)| last == n - 1),
        "partitions numbered from 0: {stored:?}"
    );
    stored.iter().map(|&(n, _)| n).collect()
}

fn mode_sizes() -> BTreeMap<String, usize> {
    MODES
        .iter()
        .map(|&(m, lo, hi)| (m.to_owned(), hi - lo))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The official client sends single events, lists and batches to the hub, by partition key
/// and to partition ids (xsend.py); our consumer reads every partition from earliest and
/// checks every section of every event with its exact AMQP types, and the system properties.
#[test]
fn python_sends_rust_reads_every_section() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let (dir, manifest) = temp_manifest("xsend");
    let sent = scenario(
        &py,
        "xsend.py",
        run.emulator(),
        &["--manifest", manifest.to_str().expect("utf-8 path")],
    );
    assert_eq!(sent["sent"], TOTAL);
    let m: Json =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    let window = (
        m["t_start_ms"].as_i64().expect("start"),
        m["t_end_ms"].as_i64().expect("end"),
    );
    let counts = stored_counts(&run);
    assert_eq!(m["partition_count"].as_u64(), Some(counts.len() as u64));

    let client = client_for(&run);
    let partitions = run.runtime.block_on(read_all(&client, &counts));
    let mut c = Checks::default();
    let back = verify(&mut c, &partitions, window, Sender::Python);
    c.assert_ok("events sent by the official client, read by ours");
    assert_eq!(back.per_mode, mode_sizes());
    assert_eq!(back.key_partitions.len(), KEYS);
    run.runtime.block_on(client.close()).expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Our producer sends single events, lists, batches, by partition key and to partition ids
/// (the same chunks as xsend.py); the official consumer reads and checks them all (xread.py).
/// Its counts per partition must be the emulator's, its order per partition the one our own
/// consumer reads (which also checks every event, with exact types), and its key-to-partition
/// map ours.
#[test]
fn rust_sends_python_reads_every_section() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let client = client_for(&run);
    let t_start = now_ms();
    let (count, styles) = run.runtime.block_on(send_all(&client));
    let t_end = now_ms();
    // Each style was used: singles 200 + a third of key and pid, and so on.
    assert_eq!(styles.values().sum::<usize>(), TOTAL, "{styles:?}");
    assert!(styles.len() == 3, "{styles:?}");

    let counts = stored_counts(&run);
    assert_eq!(counts.len(), count);
    let partitions = run.runtime.block_on(read_all(&client, &counts));
    let mut c = Checks::default();
    let ours = verify(&mut c, &partitions, (t_start, t_end), Sender::Ours);
    c.assert_ok("events sent by our producer, read by our consumer");
    run.runtime.block_on(client.close()).expect("close");

    let (dir, manifest) = temp_manifest("xread");
    let m = json!({
        "partition_count": count,
        "total": TOTAL,
        "t_start_ms": t_start,
        "t_end_ms": t_end,
    });
    std::fs::write(&manifest, m.to_string()).expect("manifest");
    let r = scenario(
        &py,
        "xread.py",
        run.emulator(),
        &["--manifest", manifest.to_str().expect("utf-8 path")],
    );
    for (p, &n) in counts.iter().enumerate() {
        assert_eq!(
            r["per_partition"][p.to_string()].as_i64(),
            Some(n),
            "partition {p}: {}",
            r["per_partition"]
        );
        let order: Vec<usize> = r["order"][p.to_string()]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as usize)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            order, ours.order[p],
            "partition {p}: order read by the official client"
        );
    }
    let per_mode: BTreeMap<String, usize> =
        serde_json::from_value(r["per_mode"].clone()).expect("per_mode");
    assert_eq!(per_mode, mode_sizes());
    let keys: BTreeMap<String, BTreeSet<usize>> = r["key_partitions"]
        .as_object()
        .expect("key_partitions")
        .iter()
        .map(|(k, v)| {
            let pids = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str()?.parse().ok())
                .collect();
            (k.clone(), pids)
        })
        .collect();
    assert_eq!(keys, ours.key_partitions);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends the TOTAL events with our producer in the chunks xsend.py uses; returns the partition
/// count and how many events went out in each style.
async fn send_all(client: &EventHubClient) -> (usize, BTreeMap<String, usize>) {
    let count = client
        .get_partition_ids()
        .await
        .expect("partition ids")
        .len();
    let hub = client
        .create_producer(ProducerOptions::default())
        .await
        .expect("producer");
    let mut to_partition = Vec::new();
    for p in 0..count {
        to_partition.push(
            client
                .create_producer(ProducerOptions::partition(p.to_string()))
                .await
                .expect("partition producer"),
        );
    }
    let mut styles: BTreeMap<String, usize> = BTreeMap::new();
    for (mode, lo, hi) in MODES {
        for start in (lo..hi).step_by(CHUNK) {
            let idx = start..(start + CHUNK).min(hi);
            let (producer, key) = match mode {
                "key" => (&hub, key_of(start)),
                "pid" => (&to_partition[pid_of(start, count).expect("pid")], None),
                _ => (&hub, None),
            };
            let options = match &key {
                Some(k) => SendOptions::default().with_partition_key(k.as_str()),
                None => SendOptions::default(),
            };
            let style = chunk_style(start);
            *styles.entry(format!("{style:?}")).or_default() += idx.len();
            match style {
                Style::Singles => {
                    for i in idx {
                        producer
                            .send_with_options(outgoing(i), options.clone())
                            .await
                            .unwrap_or_else(|e| panic!("send {i}: {e}"));
                    }
                }
                Style::List => {
                    let events: Vec<EventData> = idx.map(outgoing).collect();
                    producer
                        .send_with_options(events, options)
                        .await
                        .unwrap_or_else(|e| panic!("send list from {start}: {e}"));
                }
                Style::Batch => {
                    let mut batch = producer
                        .create_batch(match key {
                            Some(k) => BatchOptions::default().partition_key(k),
                            None => BatchOptions::default(),
                        })
                        .await
                        .expect("batch");
                    let n = idx.len();
                    for i in idx {
                        batch.add(outgoing(i)).expect("fits");
                    }
                    assert_eq!(batch.len(), n);
                    producer
                        .send(batch)
                        .await
                        .unwrap_or_else(|e| panic!("send batch from {start}: {e}"));
                }
            }
        }
    }
    hub.close().await.expect("close");
    for p in to_partition {
        p.close().await.expect("close");
    }
    (count, styles)
}
