//! [`EventData`]: one event, as sent or as received.

use crate::amqp::codec::{Encode, Str, Timestamp, Value};
use crate::amqp::types::message::{
    Annotations, Body, DataSections, Message, MessageId, PropertyMap,
};
use bytes::Bytes;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::wire::annotations::{
    ENQUEUED_TIME as ENQUEUED_TIME_ANNOTATION, OFFSET as OFFSET_ANNOTATION,
    PARTITION_KEY as PARTITION_KEY_ANNOTATION, SEQUENCE_NUMBER as SEQUENCE_NUMBER_ANNOTATION,
};

/// Converts an AMQP timestamp to a `SystemTime`.
pub(crate) fn timestamp_to_system_time(t: Timestamp) -> SystemTime {
    let ms = t.millis();
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// An event: a body, application properties and an optional partition key; received events
/// also carry their sequence number, offset, enqueued time and the service's annotations.
///
/// The event is kept as the AMQP message it is on the wire, so sending encodes it directly
/// and a received body is a slice of the frame it arrived in (no copy).
#[derive(Clone, Debug, PartialEq)]
pub struct EventData {
    // Boxed: a message with all its optional sections is large, and events move a lot.
    message: Box<Message>,
    received: bool,
}

impl Default for EventData {
    fn default() -> Self {
        EventData::new(Bytes::new())
    }
}

macro_rules! event_from {
    ($($t:ty),*) => {
        $(impl From<$t> for EventData {
            fn from(body: $t) -> Self {
                EventData::new(body)
            }
        })*
    };
}

event_from!(Bytes, Vec<u8>, String, &'static str, &'static [u8]);

impl EventData {
    /// An event with `body` (one AMQP `data` section).
    pub fn new(body: impl Into<Bytes>) -> Self {
        EventData {
            message: Box::new(Message::with_data(body.into())),
            received: false,
        }
    }

    /// An event read from a received AMQP message.
    pub fn from_message(message: Message) -> Self {
        EventData {
            message: Box::new(message),
            received: true,
        }
    }

    /// An event to send made from an arbitrary AMQP message (e.g. an `amqp-value` body).
    pub fn from_outgoing_message(message: Message) -> Self {
        EventData {
            message: Box::new(message),
            received: false,
        }
    }

    /// The body: the bytes of the event's `data` section (empty when the body is not exactly
    /// one `data` section — see [`EventData::raw_message`] for those).
    pub fn body(&self) -> &Bytes {
        static EMPTY: Bytes = Bytes::from_static(b"");
        self.message.body.single_data().unwrap_or(&EMPTY)
    }

    /// The body as UTF-8 text.
    pub fn body_as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self.body())
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.message.body = Body::Data(DataSections::one(body.into()));
    }

    /// The application property `key`.
    pub fn property(&self, key: &str) -> Option<&Value> {
        self.message.application_property(key)
    }

    /// A scalar application property, read in place on a received event (see
    /// [`SectionMap::get_scalar`](crate::amqp::types::section_map::SectionMap::get_scalar)).
    fn scalar_property(&self, key: &str) -> Option<Value> {
        self.message
            .application_properties
            .as_ref()?
            .get_scalar(key)
    }

    /// The application property `key` as text, when it is a string or symbol.
    pub fn property_str(&self, key: &str) -> Option<&str> {
        self.message.application_properties.as_ref()?.get_str(key)
    }

    /// The application property `key` as an integer, when it is an AMQP integer of any width
    /// and signedness whose value fits an `i64`.
    pub fn property_i64(&self, key: &str) -> Option<i64> {
        self.scalar_property(key)?.as_i64()
    }

    /// The application property `key` as a floating-point number (AMQP float or double).
    pub fn property_f64(&self, key: &str) -> Option<f64> {
        match self.scalar_property(key)? {
            Value::Double(v) => Some(v),
            Value::Float(v) => Some(v.into()),
            _ => None,
        }
    }

    /// The application property `key`, when it is a boolean.
    pub fn property_bool(&self, key: &str) -> Option<bool> {
        match self.scalar_property(key)? {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The application property `key`, when it is binary.
    pub fn property_bytes(&self, key: &str) -> Option<&Bytes> {
        match self.property(key)? {
            Value::Binary(v) => Some(v),
            _ => None,
        }
    }

    /// The application property `key` as a point in time, when it is an AMQP timestamp.
    pub fn property_time(&self, key: &str) -> Option<SystemTime> {
        match self.scalar_property(key)? {
            Value::Timestamp(t) => Some(timestamp_to_system_time(t)),
            _ => None,
        }
    }

    /// The application properties in order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.message
            .application_properties
            .iter()
            .flat_map(|p| p.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The application properties map, if there is one.
    pub fn properties_map(&self) -> Option<&PropertyMap> {
        self.message.application_properties.as_ref().map(|p| &p.0)
    }

    /// Sets an application property (string keys; values are AMQP simple types).
    pub fn set_property(&mut self, key: impl Into<Str>, value: impl Into<Value>) -> &mut Self {
        self.message.application_properties_mut().insert(key, value);
        self
    }

    /// Builder form of [`EventData::set_property`].
    pub fn with_property(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.set_property(key, value);
        self
    }

    /// The partition key (annotation `x-opt-partition-key`).
    pub fn partition_key(&self) -> Option<&str> {
        self.message
            .message_annotations
            .as_ref()?
            .get_str(PARTITION_KEY_ANNOTATION)
    }

    /// Sets (or with `None` removes) the partition key.
    pub fn set_partition_key(&mut self, key: Option<&str>) {
        match key {
            Some(k) => {
                self.message
                    .message_annotations_mut()
                    .insert(PARTITION_KEY_ANNOTATION, k);
            }
            None => {
                if let Some(a) = &mut self.message.message_annotations {
                    a.remove(PARTITION_KEY_ANNOTATION);
                    if a.is_empty() {
                        self.message.message_annotations = None;
                    }
                }
            }
        }
    }

    /// Builder form of [`EventData::set_partition_key`].
    pub fn with_partition_key(mut self, key: &str) -> Self {
        self.set_partition_key(Some(key));
        self
    }

    /// The AMQP message id, if set.
    pub fn message_id(&self) -> Option<&MessageId> {
        self.message.properties.as_ref()?.message_id.as_ref()
    }

    /// Sets the AMQP message id.
    pub fn set_message_id(&mut self, id: impl Into<MessageId>) {
        self.message.properties_mut().message_id = Some(id.into());
    }

    /// The content type, if set.
    pub fn content_type(&self) -> Option<&str> {
        self.message
            .properties
            .as_ref()?
            .content_type
            .as_ref()
            .map(|s| s.as_str())
    }

    /// Sets the content type (MIME type of the body).
    pub fn set_content_type(&mut self, content_type: &str) {
        self.message.properties_mut().content_type = Some(content_type.into());
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&MessageId> {
        self.message.properties.as_ref()?.correlation_id.as_ref()
    }

    /// Sets the correlation id.
    pub fn set_correlation_id(&mut self, id: impl Into<MessageId>) {
        self.message.properties_mut().correlation_id = Some(id.into());
    }

    /// True for events that came from the service.
    pub fn is_received(&self) -> bool {
        self.received
    }

    /// The sequence number the service assigned (received events).
    pub fn sequence_number(&self) -> Option<i64> {
        self.message
            .message_annotations
            .as_ref()?
            .get_scalar(SEQUENCE_NUMBER_ANNOTATION)?
            .as_i64()
    }

    /// The offset the service assigned (received events; an opaque string).
    pub fn offset(&self) -> Option<&str> {
        self.message
            .message_annotations
            .as_ref()?
            .get_str(OFFSET_ANNOTATION)
    }

    /// When the service enqueued the event (received events).
    pub fn enqueued_time(&self) -> Option<SystemTime> {
        self.enqueued_time_millis()
            .map(|ms| timestamp_to_system_time(Timestamp(ms)))
    }

    /// The enqueued time in milliseconds since the Unix epoch (received events).
    pub fn enqueued_time_millis(&self) -> Option<i64> {
        let annotations = self.message.message_annotations.as_ref()?;
        match annotations.get_scalar(ENQUEUED_TIME_ANNOTATION)? {
            Value::Timestamp(t) => Some(t.millis()),
            v => v.as_i64(),
        }
    }

    /// The message annotations: the service's system properties (`x-opt-*` and others).
    pub fn system_properties(&self) -> Option<&Annotations> {
        self.message.message_annotations.as_ref().map(|a| &a.0)
    }

    /// The AMQP message as received (or as it will be sent).
    pub fn raw_message(&self) -> &Message {
        &self.message
    }

    /// Mutable access to the AMQP message, for fields without a dedicated accessor.
    pub fn raw_message_mut(&mut self) -> &mut Message {
        &mut self.message
    }

    /// The AMQP message, consuming the event.
    pub fn into_message(self) -> Message {
        *self.message
    }

    /// Size of the event encoded as a complete AMQP message.
    pub fn encoded_len(&self) -> usize {
        self.message.encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::encode_to_vec;

    #[test]
    fn accessors_read_the_message() {
        let mut e = EventData::from("hello")
            .with_property("k", 5i32)
            .with_partition_key("pk");
        e.set_content_type("text/plain");
        e.set_message_id("m1");
        assert_eq!(e.body_as_str().unwrap(), "hello");
        assert_eq!(e.property("k"), Some(&Value::Int(5)));
        assert_eq!(e.properties().count(), 1);
        assert_eq!(e.partition_key(), Some("pk"));
        assert_eq!(e.content_type(), Some("text/plain"));
        assert!(!e.is_received());
        e.set_partition_key(None);
        assert_eq!(e.partition_key(), None);
        assert!(e.raw_message().message_annotations.is_none());
        assert_eq!(e.encoded_len(), encode_to_vec(e.raw_message()).len());
    }

    #[test]
    fn typed_property_getters() {
        let e = EventData::from("x")
            .with_property("at", Timestamp(-1500))
            .with_property("big", u64::MAX)
            .with_property("sym", crate::amqp::codec::Symbol::from("s"));
        assert_eq!(
            e.property_time("at"),
            Some(UNIX_EPOCH - Duration::from_millis(1500))
        );
        assert_eq!(
            e.property_i64("big"),
            None,
            "a ulong beyond i64 is not truncated"
        );
        assert_eq!(e.property_str("sym"), Some("s"));
        assert_eq!(e.property_bool("sym"), None);
        assert_eq!(e.property_f64("at"), None);
        assert_eq!(e.property_bytes("at"), None);
    }

    /// A received event answers its typed getters in place (its maps are not built) with
    /// what the event it was sent as answers.
    #[test]
    fn typed_getters_of_a_decoded_event_match_the_sent_one() {
        let mut sent = EventData::from("x")
            .with_property("at", Timestamp(-1500))
            .with_property("n", 42i32)
            .with_property("f", 2.5f32)
            .with_property("b", true)
            .with_property("s", "text")
            .with_partition_key("pk");
        let a = sent.raw_message_mut().message_annotations_mut();
        a.insert(SEQUENCE_NUMBER_ANNOTATION, 7i64);
        a.insert(OFFSET_ANNOTATION, "1024");
        a.insert(ENQUEUED_TIME_ANNOTATION, Timestamp(1_000));
        let mut wire = bytes::BytesMut::new();
        sent.raw_message().encode(&mut wire);
        let got = EventData::from_message(Message::decode(wire.freeze()).unwrap());
        for k in ["at", "n", "f", "b", "s", "missing"] {
            assert_eq!(got.property_str(k), sent.property_str(k), "{k}");
            assert_eq!(got.property_i64(k), sent.property_i64(k), "{k}");
            assert_eq!(got.property_f64(k), sent.property_f64(k), "{k}");
            assert_eq!(got.property_bool(k), sent.property_bool(k), "{k}");
            assert_eq!(got.property_time(k), sent.property_time(k), "{k}");
        }
        assert_eq!(got.property_f64("f"), Some(2.5));
        assert_eq!(got.sequence_number(), Some(7));
        assert_eq!(got.offset(), Some("1024"));
        assert_eq!(got.enqueued_time_millis(), Some(1_000));
        assert_eq!(got.partition_key(), Some("pk"));
        // Read whole, the same.
        assert_eq!(got.property("s"), sent.property("s"));
        assert_eq!(got.raw_message(), sent.raw_message());
    }

    #[test]
    fn received_fields_and_zero_copy_body() {
        let mut m = Message::with_data(Bytes::from_static(b"payload"));
        let a = m.message_annotations_mut();
        a.insert(SEQUENCE_NUMBER_ANNOTATION, 7i64);
        a.insert(OFFSET_ANNOTATION, "4096");
        a.insert(ENQUEUED_TIME_ANNOTATION, Timestamp(1_700_000_000_123));
        let wire = Bytes::from(encode_to_vec(&m));
        let e = EventData::from_message(Message::decode(wire.clone()).unwrap());
        assert!(e.is_received());
        assert_eq!(e.sequence_number(), Some(7));
        assert_eq!(e.offset(), Some("4096"));
        assert_eq!(e.enqueued_time_millis(), Some(1_700_000_000_123));
        assert_eq!(
            e.enqueued_time().unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        let p = e.body().as_ptr() as usize;
        let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        assert!(range.contains(&p));
        assert_eq!(e.system_properties().unwrap().len(), 3);
    }
}
