//! Frame-level tracing: every frame in and out is an event under `eventhubs::amqp::frames`
//! with its channel, performative and size.

mod amqp_support;

use amqp_support::QueueBroker;
use eventhubs::amqp::engine::FRAME_TRACE_TARGET;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{
    ConnectOptions, Connection, ListenerOptions, ReceiverOptions, SenderOptions,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Debug, Default, Clone)]
struct FrameEvent {
    target: String,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<FrameEvent>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut e = FrameEvent {
            target: event.metadata().target().to_owned(),
            ..FrameEvent::default()
        };
        event.record(&mut Fields(&mut e.fields));
        self.0.lock().unwrap().push(e);
    }
}

// One thread, so the subscriber set for this thread sees the drivers' tasks too.
#[tokio::test(flavor = "current_thread")]
async fn every_frame_in_and_out_is_traced() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let b = QueueBroker::start(ListenerOptions::default()).await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", b.port()))
        .await
        .unwrap();
    let s = conn.open_session().await.unwrap();
    let tx = s.attach_sender(SenderOptions::new("traced")).await.unwrap();
    const N: usize = 50;
    for i in 0..N {
        let o = tx.send(&Message::with_data(format!("m{i}"))).await.unwrap();
        assert!(o.is_some_and(|s| s.is_accepted()));
    }
    let mut rx = s
        .attach_receiver(ReceiverOptions::new("traced"))
        .await
        .unwrap();
    for _ in 0..N {
        let m = rx.recv().await.unwrap();
        rx.accept(&m).unwrap();
    }
    rx.close().await.unwrap();
    tx.close().await.unwrap();
    s.end().await.unwrap();
    conn.close().await.unwrap();
    // Let the server side finish writing and reading its last frames.
    amqp_support::eventually(5, || {
        let ev = capture.0.lock().unwrap();
        let closes = ev
            .iter()
            .filter(|e| e.fields.get("performative").map(String::as_str) == Some("close"))
            .count();
        (closes == 4).then_some(())
    })
    .await;

    let events = capture.0.lock().unwrap().clone();
    let frames: Vec<&FrameEvent> = events
        .iter()
        .filter(|e| e.fields.contains_key("performative"))
        .collect();
    assert!(!frames.is_empty());
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for f in &frames {
        assert_eq!(f.target, FRAME_TRACE_TARGET, "{f:?}");
        assert_eq!(FRAME_TRACE_TARGET, "eventhubs::amqp::frames");
        for field in ["dir", "channel", "size"] {
            assert!(f.fields.contains_key(field), "{field} missing in {f:?}");
        }
        let size: usize = f.fields["size"].parse().expect("numeric size");
        assert!(size > 0, "{f:?}");
        *count
            .entry((f.fields["dir"].clone(), f.fields["performative"].clone()))
            .or_default() += 1;
    }
    // Both ends are in this process: every frame written by one is read by the other.
    let perfs = [
        "open",
        "begin",
        "attach",
        "flow",
        "transfer",
        "disposition",
        "detach",
        "end",
        "close",
    ];
    for p in perfs {
        let out = count.get(&("out".into(), p.into())).copied().unwrap_or(0);
        let inn = count.get(&("in".into(), p.into())).copied().unwrap_or(0);
        assert_eq!(out, inn, "{p}: {out} written, {inn} read ({count:?})");
        assert!(out > 0, "no {p} frame traced");
    }
    let get = |d: &str, p: &str| count.get(&(d.into(), p.into())).copied().unwrap_or(0);
    assert_eq!(get("out", "open"), 2);
    assert_eq!(get("out", "begin"), 2);
    assert_eq!(get("out", "attach"), 4);
    assert_eq!(get("out", "detach"), 4);
    assert_eq!(get("out", "end"), 2);
    assert_eq!(get("out", "close"), 2);
    assert_eq!(get("out", "transfer"), 2 * N, "each message crosses twice");
    // Protocol headers are traced too (client AMQP header and the server's answer).
    let headers = events
        .iter()
        .filter(|e| e.target == FRAME_TRACE_TARGET && e.fields.contains_key("header"))
        .count();
    assert!(headers >= 2, "protocol headers traced: {headers}");
    println!("{} frame events traced: {count:?}", frames.len());
}
