//! [`EventHubConsumer`]: reads one partition of a consumer group from an [`EventPosition`].
//!
//! The consumer keeps a credit window of `prefetch` events (bounded memory). When its link or
//! connection is lost it re-attaches from the last event it handed out, exclusive — no gap, no
//! duplicate. When a consumer with a higher owner level takes the partition over
//! (`amqp:link:stolen`), it fails with [`ErrorKind::ConsumerDisconnected`] and does not retry.

use crate::amqp::codec::{Decoder, Value};
use crate::amqp::types::definitions::Fields;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::message::{MESSAGE_ANNOTATIONS_CODE, MESSAGE_ANNOTATIONS_NAME};
use crate::amqp::{ReceivedMessage, ReceiverOptions};
use crate::client::{close_in_background, EventHubClient, LinkHandle};
use crate::error::{Error, ErrorKind};
use crate::event::{
    timestamp_to_system_time, EventData, OFFSET_ANNOTATION, SEQUENCE_NUMBER_ANNOTATION,
};
use crate::position::EventPosition;
use crate::wire::address::consumer_path;
use crate::wire::annotations::RuntimeMetrics;
use crate::wire::link_props;
use bytes::Bytes;
use futures_core::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// The default consumer group.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// Options for [`EventHubClient::create_consumer`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Owner level (epoch): the consumer with the highest level owns the partition exclusively.
    pub owner_level: Option<i64>,
    /// Events buffered ahead of `receive` (credit window); defaults to the client's (300).
    pub prefetch: Option<u32>,
    /// Ask the service for the partition's last enqueued event with each delivery.
    pub track_last_enqueued_event_properties: bool,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl ConsumerOptions {
    /// Sets the owner level (epoch): a consumer with a higher one takes the partition over.
    pub fn with_owner_level(mut self, value: i64) -> Self {
        self.owner_level = Some(value);
        self
    }

    /// Sets how many events may be buffered ahead of `receive` (by default the client's).
    pub fn with_prefetch(mut self, value: u32) -> Self {
        self.prefetch = Some(value);
        self
    }

    /// Sets whether the service reports the partition's last enqueued event with each delivery.
    pub fn with_track_last_enqueued_event_properties(mut self, value: bool) -> Self {
        self.track_last_enqueued_event_properties = value;
        self
    }
}

/// The partition's last enqueued event, as reported along with received events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastEnqueuedEventProperties {
    /// Its sequence number.
    pub sequence_number: Option<i64>,
    /// Its offset.
    pub offset: Option<String>,
    /// When it was enqueued.
    pub enqueued_time: Option<SystemTime>,
    /// When the service read this information.
    pub retrieval_time: Option<SystemTime>,
}

type ReceiverLink = LinkHandle<crate::amqp::Receiver>;

/// Reads events from one partition.
pub struct EventHubConsumer {
    client: EventHubClient,
    consumer_group: String,
    partition_id: String,
    path: String,
    start: EventPosition,
    options: ConsumerOptions,
    prefetch: u32,
    link: Option<ReceiverLink>,
    last_sequence_number: Option<i64>,
    last_offset: Option<String>,
    last_enqueued: Option<LastEnqueuedEventProperties>,
    disconnected: Option<Error>,
    /// An undecodable event met after a batch had events in it: the next call returns it, so
    /// the events before it are not lost with it.
    undecodable: Option<Error>,
    /// A batch already taken from the link whose `receive` was cancelled while it let the
    /// driver send credit: the next call returns it first, so cancelling a `receive` (a
    /// `select!`, a timeout) loses no event.
    ready: Vec<EventData>,
}

impl std::fmt::Debug for EventHubConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubConsumer")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("last_sequence_number", &self.last_sequence_number)
            .finish()
    }
}

impl EventHubClient {
    /// A consumer of `partition_id` in `consumer_group` starting at `position`. The link is
    /// attached before this returns, so an unknown group or partition fails here.
    pub async fn create_consumer(
        &self,
        consumer_group: &str,
        partition_id: &str,
        position: EventPosition,
        options: ConsumerOptions,
    ) -> Result<EventHubConsumer, Error> {
        if consumer_group.is_empty() || partition_id.is_empty() {
            return Err(Error::invalid_argument(
                "consumer group and partition id must not be empty",
            ));
        }
        let prefetch = options.prefetch.unwrap_or(self.options().prefetch);
        let mut c = EventHubConsumer {
            client: self.clone(),
            consumer_group: consumer_group.to_owned(),
            partition_id: partition_id.to_owned(),
            path: consumer_path(self.event_hub_name(), consumer_group, partition_id),
            start: position,
            options,
            prefetch,
            link: None,
            last_sequence_number: None,
            last_offset: None,
            last_enqueued: None,
            disconnected: None,
            undecodable: None,
            ready: Vec::new(),
        };
        c.ensure_link_with_retry().await?;
        Ok(c)
    }
}

impl EventHubConsumer {
    /// The consumer group.
    pub fn consumer_group(&self) -> &str {
        &self.consumer_group
    }

    /// The partition id.
    pub fn partition_id(&self) -> &str {
        &self.partition_id
    }

    /// The owner level, if any.
    pub fn owner_level(&self) -> Option<i64> {
        self.options.owner_level
    }

    /// The sequence number of the last event handed out.
    pub fn last_sequence_number(&self) -> Option<i64> {
        self.last_sequence_number
    }

    /// The offset of the last event handed out.
    pub fn last_offset(&self) -> Option<&str> {
        self.last_offset.as_deref()
    }

    /// The partition's last enqueued event, when tracking is on and a delivery reported it.
    pub fn last_enqueued_event_properties(&self) -> Option<&LastEnqueuedEventProperties> {
        self.last_enqueued.as_ref()
    }

    /// Where the next attach starts: after the last event handed out, else the start position.
    fn resume_position(&self) -> EventPosition {
        match self.last_sequence_number {
            Some(n) => EventPosition::sequence_number(n).inclusive(false),
            None => self.start.clone(),
        }
    }

    fn receiver_options(&self) -> ReceiverOptions {
        let mut o = ReceiverOptions::new(self.path.as_str());
        o.source = self.resume_position().selector_filter().apply(o.source);
        o.prefetch = self.prefetch.max(1);
        let mut props: Fields = Vec::new();
        if let Some(level) = self.options.owner_level {
            props.push(link_props::owner_level(level));
        }
        if !props.is_empty() {
            o.properties = Some(props);
        }
        if self.options.track_last_enqueued_event_properties {
            o.desired_capabilities = Some(vec![link_props::ENABLE_RECEIVER_RUNTIME_METRIC]);
        }
        o
    }

    async fn ensure_link(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.disconnected {
            return Err(e.clone());
        }
        if self.link.is_some() {
            return Ok(());
        }
        let options = self.receiver_options();
        let l = self
            .client
            .open_receiver(&self.path, options)
            .await
            .map_err(|e| self.classify(e))?;
        self.link = Some(l);
        Ok(())
    }

    async fn ensure_link_with_retry(&mut self) -> Result<(), Error> {
        let retry = self.client.options().retry.clone();
        let timeout = self.client.options().operation_timeout;
        let mut attempt = 0;
        loop {
            let r = match tokio::time::timeout(timeout, self.ensure_link()).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    ErrorKind::OperationTimeout,
                    format!(
                        "attaching to {} did not complete within {timeout:?}",
                        self.path
                    ),
                )),
            };
            match r {
                Err(e) if e.is_transient() && attempt < retry.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(retry.delay_for(attempt, Some(&e))).await;
                }
                r => return r,
            }
        }
    }

    /// Stolen links become a sticky [`ErrorKind::ConsumerDisconnected`].
    fn classify(&mut self, e: Error) -> Error {
        if e.kind() == ErrorKind::ConsumerDisconnected {
            self.disconnected = Some(e.clone());
        }
        e
    }

    /// Drops the current link (closing it in the background).
    fn drop_link(&mut self) {
        if let Some(l) = self.link.take() {
            let client = self.client.clone();
            close_in_background(async move {
                let conn = l.conn.clone();
                l.close().await;
                client.connection_failed(&conn).await;
            });
        }
    }

    /// Turns a delivery into an event and records its position. The delivery is decoded before
    /// it is settled: an event that does not decode is rejected and returned as an
    /// [`ErrorKind::EventData`] error naming its sequence number, and the position moves past
    /// it, so that reading goes on with the next event.
    fn take(&mut self, m: ReceivedMessage) -> Result<EventData, Error> {
        let event = self.take_unnoted(m)?;
        self.note_offset(&event);
        Ok(event)
    }

    /// [`Self::take`] without recording the offset, for a batch whose caller records it once
    /// from the batch's last event with [`Self::note_offset`] (finding it is a search of the
    /// annotations, too dear to repeat for every event).
    fn take_unnoted(&mut self, m: ReceivedMessage) -> Result<EventData, Error> {
        let msg = match m.message() {
            Ok(msg) => msg,
            Err(e) => return Err(self.undecodable(&m, &e.to_string())),
        };
        if let Some(l) = &self.link {
            let _ = l.link().accept(&m);
        }
        if self.options.track_last_enqueued_event_properties {
            if let Some(da) = &msg.delivery_annotations {
                let m = RuntimeMetrics::from_annotations(da);
                self.last_enqueued = Some(LastEnqueuedEventProperties {
                    sequence_number: m.last_enqueued_sequence_number,
                    offset: m.last_enqueued_offset,
                    enqueued_time: m.last_enqueued_time.map(timestamp_to_system_time),
                    retrieval_time: m.retrieval_time.map(timestamp_to_system_time),
                });
            }
        }
        let event = EventData::from_message(msg);
        if let Some(n) = event.sequence_number() {
            self.last_sequence_number = Some(n);
        }
        Ok(event)
    }

    /// Records `event`'s offset as the last one read.
    fn note_offset(&mut self, event: &EventData) {
        if let Some(o) = event.offset() {
            // Reuses the string: one allocation per link rather than per event.
            match &mut self.last_offset {
                Some(s) => {
                    s.clear();
                    s.push_str(o);
                }
                None => self.last_offset = Some(o.to_owned()),
            }
        }
    }

    /// Rejects an event that does not decode, records its position as far as its annotations
    /// can be read, and describes it.
    fn undecodable(&mut self, m: &ReceivedMessage, why: &str) -> Error {
        if let Some(l) = &self.link {
            let _ = l.link().reject(
                m,
                Some(AmqpError::with_description(condition::DECODE_ERROR, why)),
            );
        }
        let (seq, offset) = lenient_position(m.payload());
        if seq.is_some() {
            self.last_sequence_number = seq;
            self.last_offset = offset;
        }
        let at = seq.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        Error::new(
            ErrorKind::EventData,
            format!(
                "undecodable event (sequence number {at}) from {}: {why}",
                self.path
            ),
        )
    }

    /// Waits up to `timeout` for the first event, then returns it with whatever else is
    /// already buffered, up to `max_batch_size` events. An empty list means nothing arrived
    /// in time. Link and connection losses are recovered from transparently. An event that
    /// does not decode is returned as an [`ErrorKind::EventData`] error naming its sequence
    /// number (after the events before it, on the next call), and the next call goes on after
    /// it.
    ///
    /// Cancel-safe: a call dropped before it returns (a `select!` branch that lost, a
    /// timeout) loses no event; what it had taken comes back from the next call.
    pub async fn receive(
        &mut self,
        max_batch_size: usize,
        timeout: Duration,
    ) -> Result<Vec<EventData>, Error> {
        let max_batch_size = max_batch_size.max(1);
        if !self.ready.is_empty() {
            let rest = self.ready.split_off(max_batch_size.min(self.ready.len()));
            return Ok(std::mem::replace(&mut self.ready, rest));
        }
        if let Some(e) = self.undecodable.take() {
            return Err(e);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let retry = self.client.options().retry.clone();
        let mut attempt = 0u32;
        loop {
            match tokio::time::timeout_at(deadline, self.ensure_link()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_transient() && attempt < retry.max_retries => {
                    attempt += 1;
                    let d = retry.delay_for(attempt, Some(&e));
                    tokio::time::sleep(d).await;
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(Vec::new()),
            }
            let Some(l) = self.link.as_mut() else {
                continue;
            };
            let first = match tokio::time::timeout_at(deadline, l.link_mut().recv()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(r) => r,
            };
            match first {
                Ok(m) => {
                    let mut out =
                        Vec::with_capacity(max_batch_size.min(self.prefetch as usize + 1));
                    out.push(self.take(m)?);
                    while out.len() < max_batch_size {
                        let Some(m) = self.link.as_mut().and_then(|l| l.link_mut().try_recv())
                        else {
                            break;
                        };
                        match self.take_unnoted(m) {
                            Ok(e) => out.push(e),
                            Err(e) => {
                                self.undecodable = Some(e);
                                break;
                            }
                        }
                    }
                    // An undecodable event after these has recorded its own position.
                    if self.undecodable.is_none() && out.len() > 1 {
                        if let Some(e) = out.iter().rev().find(|e| e.offset().is_some()) {
                            self.note_offset(e);
                        }
                    }
                    // Kept here across the await: cancelled there, the next call returns it.
                    self.ready = out;
                    if let Some(l) = self.link.as_mut() {
                        l.link_mut().flush_credit().await;
                    }
                    return Ok(std::mem::take(&mut self.ready));
                }
                Err(e) => {
                    let mut err = self.classify(Error::from_amqp(
                        ErrorKind::EventHub,
                        format!("receiving from {}", self.path),
                        e,
                    ));
                    if err.kind() == ErrorKind::Authentication {
                        if let Some(l) = &self.link {
                            let audience = self.client.audience(&self.path);
                            l.conn.cbs.invalidate(&audience);
                        }
                        err = err.lapsed_authorization();
                    }
                    self.drop_link();
                    if err.is_transient() && attempt < retry.max_retries {
                        attempt += 1;
                        tracing::debug!(target: "eventhubs::consumer", error = %err, "re-attaching");
                        tokio::time::sleep(
                            retry
                                .delay_for(attempt, Some(&err))
                                .min(Duration::from_millis(200) * attempt),
                        )
                        .await;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// The next event, waiting as long as it takes: `Ok(event)` as soon as one is there
    /// (buffered events come back at once, without a round trip); it never returns for an idle
    /// partition. Transient failures (a lost connection or link) are retried underneath and do
    /// not end the wait; `Err` means a permanent failure or retries used up (the error's kind
    /// says which, e.g. [`ErrorKind::ConsumerDisconnected`] when a higher owner level took the
    /// partition). To stop waiting after a while, use [`Self::receive`] with a timeout.
    pub async fn next_event(&mut self) -> Result<EventData, Error> {
        loop {
            let mut v = self.receive(1, Duration::from_secs(3600)).await?;
            if let Some(e) = v.pop() {
                return Ok(e);
            }
        }
    }

    /// The consumer as a stream of events ([`futures_core::Stream`], so every stream
    /// combinator works on it): it yields events until a permanent error, which it yields
    /// once before it ends. An event that does not decode is yielded as an
    /// [`ErrorKind::EventData`] error naming its sequence number, and the stream goes on. Events already buffered are handed out without waiting or
    /// allocating; dropping the stream loses nothing (an event is only counted as handed out
    /// when the stream yields it).
    ///
    /// ```
    /// # #[cfg(feature = "emulator")]
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use eventhubs::*;
    /// # let emulator = eventhubs::emulator::Emulator::start(
    /// #     eventhubs::emulator::EmulatorOptions::ephemeral(),
    /// # ).await?;
    /// # let client = EventHubClient::from_connection_string(&emulator.connection_string(), Some("eh1"))?;
    /// # let producer = client.create_producer(ProducerOptions::partition("0")).await?;
    /// # producer.send_all((0..3).map(|i| EventData::from(format!("e{i}"))), SendOptions::default()).await?;
    /// let mut consumer = client
    ///     .create_consumer("$default", "0", EventPosition::earliest(), ConsumerOptions::default())
    ///     .await?;
    /// let mut stream = consumer.stream();
    /// let mut bodies = Vec::new();
    /// while let Some(event) = stream.next().await {
    ///     bodies.push(event?.body_as_str()?.to_owned());
    ///     if bodies.len() == 3 {
    ///         break; // the stream waits for more otherwise
    ///     }
    /// }
    /// assert_eq!(bodies, ["e0", "e1", "e2"]);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "emulator"))]
    /// # fn main() {}
    /// ```
    pub fn stream(&mut self) -> EventStream<'_> {
        EventStream {
            state: StreamState::Idle(self),
        }
    }

    /// An event already buffered on the link, without waiting.
    fn try_take_buffered(&mut self) -> Option<Result<EventData, Error>> {
        if !self.ready.is_empty() {
            // Only after a cancelled `receive`: rare, so the shift does not matter.
            return Some(Ok(self.ready.remove(0)));
        }
        if self.disconnected.is_some() {
            return None;
        }
        if let Some(e) = self.undecodable.take() {
            return Some(Err(e));
        }
        let m = self.link.as_mut()?.link_mut().try_recv()?;
        Some(self.take(m))
    }

    /// Detaches the link.
    pub async fn close(mut self) -> Result<(), Error> {
        if let Some(l) = self.link.take() {
            l.close().await;
        }
        Ok(())
    }
}

/// The sequence number and offset of an event that does not decode, read from its message
/// annotations alone (the sections before them read as plain values); `None` where even that
/// fails.
fn lenient_position(payload: &Bytes) -> (Option<i64>, Option<String>) {
    let mut d = Decoder::new(payload.clone());
    while !d.is_empty() {
        let Ok(Value::Described(section)) = d.read_value() else {
            break;
        };
        if section
            .descriptor
            .matches(MESSAGE_ANNOTATIONS_CODE, MESSAGE_ANNOTATIONS_NAME)
        {
            let seq = section
                .value
                .map_get(SEQUENCE_NUMBER_ANNOTATION)
                .and_then(Value::as_i64);
            let offset = section
                .value
                .map_get(OFFSET_ANNOTATION)
                .and_then(Value::as_str)
                .map(str::to_owned);
            return (seq, offset);
        }
    }
    (None, None)
}

/// Whether a stream keeps going after yielding `r`: after events, and after an event that did
/// not decode (the events behind it are still readable).
fn goes_on(r: &Result<EventData, Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::EventData,
    }
}

type NextEvent<'a> =
    Pin<Box<dyn Future<Output = (&'a mut EventHubConsumer, Result<EventData, Error>)> + Send + 'a>>;

enum StreamState<'a> {
    /// Ready for the next poll; holds the consumer.
    Idle(&'a mut EventHubConsumer),
    /// Waiting for an event (or a re-attach); the future holds the consumer meanwhile.
    Waiting(NextEvent<'a>),
    /// A permanent error was yielded.
    Done,
}

/// An asynchronous stream of a consumer's events (see [`EventHubConsumer::stream`]).
pub struct EventStream<'a> {
    state: StreamState<'a>,
}

impl std::fmt::Debug for EventStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            StreamState::Idle(_) => "idle",
            StreamState::Waiting(_) => "waiting",
            StreamState::Done => "done",
        };
        f.debug_struct("EventStream")
            .field("state", &state)
            .finish()
    }
}

impl EventStream<'_> {
    /// The next event; `None` after a permanent error has been returned. The same as
    /// `StreamExt::next`, for callers without a stream extension crate.
    pub async fn next(&mut self) -> Option<Result<EventData, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for EventStream<'_> {
    type Item = Result<EventData, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, StreamState::Done) {
                StreamState::Done => return Poll::Ready(None),
                StreamState::Idle(consumer) => {
                    // The hot path: prefetched events need no future and no allocation.
                    if let Some(r) = consumer.try_take_buffered() {
                        if goes_on(&r) {
                            this.state = StreamState::Idle(consumer);
                        }
                        return Poll::Ready(Some(r));
                    }
                    this.state = StreamState::Waiting(Box::pin(async move {
                        let r = consumer.next_event().await;
                        (consumer, r)
                    }));
                }
                StreamState::Waiting(mut next) => match next.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = StreamState::Waiting(next);
                        return Poll::Pending;
                    }
                    Poll::Ready((consumer, r)) => {
                        if goes_on(&r) {
                            this.state = StreamState::Idle(consumer);
                        }
                        return Poll::Ready(Some(r));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{Encode, Str};
    use crate::amqp::types::message::Message;

    fn annotated(seq: i64) -> bytes::BytesMut {
        let mut m = Message::with_data(Bytes::from_static(b"body"));
        let a = m.message_annotations_mut();
        a.insert(SEQUENCE_NUMBER_ANNOTATION, Value::Long(seq));
        a.insert(OFFSET_ANNOTATION, Value::String(Str::from("640")));
        let mut buf = bytes::BytesMut::new();
        m.encode(&mut buf);
        buf
    }

    #[test]
    fn the_position_of_an_event_whose_body_does_not_decode_is_read_from_its_annotations() {
        let mut buf = annotated(7);
        // A truncated body: the message no longer decodes, its annotations still do.
        buf.truncate(buf.len() - 2);
        let bytes = buf.freeze();
        assert!(Message::decode(bytes.clone()).is_err());
        assert_eq!(lenient_position(&bytes), (Some(7), Some("640".to_owned())));
    }

    #[test]
    fn no_position_when_the_annotations_do_not_decode_either() {
        assert_eq!(
            lenient_position(&Bytes::from_static(b"\x00\x53")),
            (None, None)
        );
        assert_eq!(lenient_position(&Bytes::new()), (None, None));
        let mut buf = annotated(7);
        buf.truncate(12);
        assert_eq!(lenient_position(&buf.freeze()), (None, None));
    }
}
