//! `network_tracing` is a per-client switch: the client that turns it on logs every frame of
//! its connection at INFO (plus connection/link/token events), while another client in the
//! same process keeps its frames at DEBUG, and neither ever logs a secret.
//!
//! A binary of its own because it installs a global subscriber that records every event.

use eventhubs::amqp::engine::FRAME_TRACE_TARGET;
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{EventData, EventHubClientBuilder, ProducerOptions, NETWORK_TRACE_TARGET};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Debug)]
struct Recorded {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Recorded {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            fields,
        });
    }
}

fn frame_events(all: &[Recorded], level: Level) -> Vec<&Recorded> {
    all.iter()
        .filter(|e| e.target == FRAME_TRACE_TARGET && e.level == level)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_tracing_is_per_client_and_logs_frames_at_info() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("the only subscriber of this binary");

    let emu = Emulator::start(EmulatorOptions::ephemeral()).await.unwrap();
    let conn_str = emu.connection_string();
    let key = conn_str
        .split(';')
        .find_map(|kv| kv.strip_prefix("SharedAccessKey="))
        .expect("the emulator's connection string has a key")
        .to_string();
    let make = |tracing_on: bool| {
        EventHubClientBuilder::from_connection_string(&conn_str, Some("eh1"))
            .unwrap()
            .network_tracing(tracing_on)
            .build()
            .unwrap()
    };
    let loud = make(true);
    let quiet = make(false);
    for client in [&loud, &quiet] {
        client.get_partition_ids().await.unwrap();
        let producer = client
            .create_producer(ProducerOptions::partition("0"))
            .await
            .unwrap();
        producer.send(EventData::from("traced")).await.unwrap();
        producer.close().await.unwrap();
    }
    loud.close().await.unwrap();
    quiet.close().await.unwrap();
    drop(emu);

    let all = recorder.0.lock().unwrap().clone();
    let info = frame_events(&all, Level::INFO);
    let info_conns: BTreeSet<&str> = info
        .iter()
        .map(|e| e.fields.get("conn").map(String::as_str).unwrap_or("?"))
        .collect();
    assert_eq!(
        info_conns.len(),
        1,
        "exactly the traced client's connection logs frames at INFO: {info_conns:?}"
    );
    let traced = *info_conns.iter().next().unwrap();
    assert!(traced.starts_with("eventhubs-"), "{traced}");

    // Everything a reader of the trace needs, both ways: the protocol header, SASL, and the
    // performatives of connecting, CBS, management, sending and closing.
    let seen: BTreeSet<(String, String)> = info
        .iter()
        .filter_map(|e| {
            let dir = e.fields.get("dir")?.clone();
            let what = e
                .fields
                .get("performative")
                .or_else(|| e.fields.get("sasl"))
                .or_else(|| e.fields.get("header").map(|_| &e.target))?;
            let what = if what == FRAME_TRACE_TARGET {
                "header".to_string()
            } else {
                what.clone()
            };
            Some((dir, what))
        })
        .collect();
    for (dir, what) in [
        ("out", "header"),
        ("out", "amqp:sasl-init:list"),
        ("in", "amqp:sasl-outcome:list"),
        ("out", "open"),
        ("in", "open"),
        ("out", "begin"),
        ("out", "attach"),
        ("in", "attach"),
        ("in", "flow"),
        ("out", "transfer"),
        ("in", "transfer"),
        ("in", "disposition"),
        ("out", "detach"),
        ("out", "close"),
    ] {
        assert!(
            seen.contains(&(dir.to_string(), what.to_string())),
            "no INFO frame event {dir} {what}; saw {seen:?}"
        );
    }

    // The untraced client's frames are still there at DEBUG, under its own connection id.
    let debug_conns: BTreeSet<&str> = frame_events(&all, Level::DEBUG)
        .iter()
        .filter_map(|e| e.fields.get("conn").map(String::as_str))
        .filter(|c| c.starts_with("eventhubs-") && !c.starts_with("eventhubs-emulator"))
        .collect();
    assert!(
        !debug_conns.is_empty(),
        "the quiet client's frames at DEBUG"
    );
    assert!(
        !debug_conns.contains(traced),
        "the traced client logs no frame at DEBUG"
    );

    // Client-level events: only from the traced client.
    let network: Vec<&Recorded> = all
        .iter()
        .filter(|e| e.target == NETWORK_TRACE_TARGET)
        .collect();
    assert!(
        network.iter().any(|e| e
            .fields
            .get("message")
            .is_some_and(|m| m.starts_with("connecting to"))),
        "{network:?}"
    );
    let connects = network
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("connected"))
        })
        .count();
    assert_eq!(connects, 1, "one connection, of the traced client only");

    // No secret in any event at any level: neither the key nor a token built from it.
    for e in &all {
        for v in e.fields.values() {
            assert!(!v.contains(&key), "the key leaked into {e:?}");
            assert!(!v.contains("sig="), "a SAS token leaked into {e:?}");
        }
    }
}
