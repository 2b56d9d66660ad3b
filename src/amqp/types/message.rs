//! The AMQP message: its sections, and the message as their concatenation.
//!
//! Decoding is zero-copy: [`Message::decode`] keeps `data` bodies, strings and binaries as
//! slices of the input buffer. Encoding knows its exact size ([`Encode::encoded_len`]), which
//! the Event Hubs batch code relies on to account for bytes before it writes them.

use crate::amqp::codec::{
    composite_len, composite_type, format_code, write_composite_header, Decode, DecodeError,
    DecodeErrorKind, Decoder, Descriptor, Encode, Str, Symbol, Timestamp, Uuid, Value,
};
use bytes::{BufMut, Bytes};

pub use super::section_map::{MapKey, SectionMap};

/// Numeric descriptor of the `header` section.
pub const HEADER_CODE: u64 = 0x70;
/// Numeric descriptor of the `delivery-annotations` section.
pub const DELIVERY_ANNOTATIONS_CODE: u64 = 0x71;
/// Numeric descriptor of the `message-annotations` section.
pub const MESSAGE_ANNOTATIONS_CODE: u64 = 0x72;
/// Numeric descriptor of the `properties` section.
pub const PROPERTIES_CODE: u64 = 0x73;
/// Numeric descriptor of the `application-properties` section.
pub const APPLICATION_PROPERTIES_CODE: u64 = 0x74;
/// Numeric descriptor of a `data` body section.
pub const DATA_CODE: u64 = 0x75;
/// Numeric descriptor of an `amqp-sequence` body section.
pub const AMQP_SEQUENCE_CODE: u64 = 0x76;
/// Numeric descriptor of the `amqp-value` body section.
pub const AMQP_VALUE_CODE: u64 = 0x77;
/// Numeric descriptor of the `footer` section.
pub const FOOTER_CODE: u64 = 0x78;

/// Symbolic descriptor of `header`.
pub const HEADER_NAME: &str = "amqp:header:list";
/// Symbolic descriptor of `delivery-annotations`.
pub const DELIVERY_ANNOTATIONS_NAME: &str = "amqp:delivery-annotations:map";
/// Symbolic descriptor of `message-annotations`.
pub const MESSAGE_ANNOTATIONS_NAME: &str = "amqp:message-annotations:map";
/// Symbolic descriptor of `properties`.
pub const PROPERTIES_NAME: &str = "amqp:properties:list";
/// Symbolic descriptor of `application-properties`.
pub const APPLICATION_PROPERTIES_NAME: &str = "amqp:application-properties:map";
/// Symbolic descriptor of `data`.
pub const DATA_NAME: &str = "amqp:data:binary";
/// Symbolic descriptor of `amqp-sequence`.
pub const AMQP_SEQUENCE_NAME: &str = "amqp:amqp-sequence:list";
/// Symbolic descriptor of `amqp-value`.
pub const AMQP_VALUE_NAME: &str = "amqp:amqp-value:*";
/// Symbolic descriptor of `footer`.
pub const FOOTER_NAME: &str = "amqp:footer:map";

/// Reads `0x00 <descriptor>` and checks it names the expected section.
fn expect_section(d: &mut Decoder, code: u64, name: &'static str) -> Result<(), DecodeError> {
    let at = d.offset();
    let descriptor = d.read_descriptor()?;
    if descriptor.matches(code, name) {
        Ok(())
    } else {
        Err(DecodeError {
            offset: at,
            kind: DecodeErrorKind::UnexpectedDescriptor {
                expected: name,
                found: format!("{descriptor:?}"),
            },
        })
    }
}

/// Size of `0x00 <small ulong code>`: every section code fits a smallulong.
const SECTION_PREFIX_LEN: usize = 3;

fn write_section_prefix<B: BufMut>(buf: &mut B, code: u64) {
    buf.put_u8(0x00);
    code.encode(buf);
}

// ---------------------------------------------------------------------------------------------
// header

composite_type! {
    /// Transport headers of a message.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Header(HEADER_CODE, HEADER_NAME) {
        /// Whether intermediaries must store the message durably.
        pub durable: bool => or_default,
        /// Relative priority (default 4).
        pub priority: u8 => or(4),
        /// Time to live in milliseconds.
        pub ttl: Option<u32> => optional,
        /// True when the message has not been acquired by any link before.
        pub first_acquirer: bool => or_default,
        /// Number of earlier unsuccessful delivery attempts.
        pub delivery_count: u32 => or_default,
    }
}

impl Default for Header {
    /// The defaults the spec assigns to absent fields (priority 4, everything else off).
    fn default() -> Self {
        Header {
            durable: false,
            priority: 4,
            ttl: None,
            first_acquirer: false,
            delivery_count: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// annotations

/// A key of an annotations map: a symbol (the usual case) or a ulong (reserved).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AnnotationKey {
    /// A symbolic key such as `x-opt-sequence-number`.
    Symbol(Symbol),
    /// A numeric key.
    Ulong(u64),
}

impl AnnotationKey {
    /// The key's text when it is a symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnnotationKey::Symbol(s) => Some(s.as_str()),
            AnnotationKey::Ulong(_) => None,
        }
    }
}

impl From<Symbol> for AnnotationKey {
    fn from(s: Symbol) -> Self {
        AnnotationKey::Symbol(s)
    }
}

impl From<&str> for AnnotationKey {
    fn from(s: &str) -> Self {
        AnnotationKey::Symbol(Symbol::from(s))
    }
}

impl From<u64> for AnnotationKey {
    fn from(n: u64) -> Self {
        AnnotationKey::Ulong(n)
    }
}

impl Encode for AnnotationKey {
    fn encoded_len(&self) -> usize {
        match self {
            AnnotationKey::Symbol(s) => s.encoded_len(),
            AnnotationKey::Ulong(n) => n.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            AnnotationKey::Symbol(s) => s.encode(buf),
            AnnotationKey::Ulong(n) => n.encode(buf),
        }
    }
}

impl Decode for AnnotationKey {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let found = d.peek_u8()?;
        if matches!(found, format_code::SYM8 | format_code::SYM32) {
            return Symbol::decode(d).map(AnnotationKey::Symbol);
        }
        match d.read_value()? {
            Value::Symbol(s) => Ok(AnnotationKey::Symbol(s)),
            Value::Ulong(n) => Ok(AnnotationKey::Ulong(n)),
            _ => Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedType {
                    expected: "annotation key (symbol or ulong)",
                    found,
                },
            }),
        }
    }
}

/// An annotations map (delivery annotations, message annotations, footer), in wire order.
pub type Annotations = SectionMap<AnnotationKey>;

impl Annotations {
    /// The value under numeric `key`.
    pub fn get_code(&self, key: u64) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| *k == AnnotationKey::Ulong(key))
            .map(|(_, v)| v)
    }
}

impl MapKey for AnnotationKey {
    fn is_named(&self, name: &str) -> bool {
        self.as_str() == Some(name)
    }

    fn decode_entries(d: &mut Decoder) -> Result<Option<Vec<(Self, Value)>>, DecodeError> {
        Option::<Vec<(AnnotationKey, Value)>>::decode(d)
    }
}

macro_rules! map_section {
    ($(#[$doc:meta])* $ty:ident($inner:ty), $code:expr, $name:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $ty(pub $inner);

        impl std::ops::Deref for $ty {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl std::ops::DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }

        impl From<$inner> for $ty {
            fn from(v: $inner) -> Self {
                $ty(v)
            }
        }

        impl Encode for $ty {
            fn encoded_len(&self) -> usize {
                SECTION_PREFIX_LEN + self.0.encoded_len()
            }
            fn encode<B: BufMut>(&self, buf: &mut B) {
                write_section_prefix(buf, $code);
                self.0.encode(buf)
            }
        }

        impl Decode for $ty {
            fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
                expect_section(d, $code, $name)?;
                <$inner>::decode(d).map($ty)
            }
        }
    };
}

map_section!(
    /// Annotations for the next hop only (Event Hubs puts runtime metrics here).
    DeliveryAnnotations(Annotations),
    DELIVERY_ANNOTATIONS_CODE,
    DELIVERY_ANNOTATIONS_NAME
);
map_section!(
    /// Annotations that travel with the message (Event Hubs: `x-opt-sequence-number`, ...).
    MessageAnnotations(Annotations),
    MESSAGE_ANNOTATIONS_CODE,
    MESSAGE_ANNOTATIONS_NAME
);
map_section!(
    /// Annotations computed over the whole message (hashes, signatures).
    Footer(Annotations),
    FOOTER_CODE,
    FOOTER_NAME
);
map_section!(
    /// Application-defined properties: string keys, simple values.
    ApplicationProperties(PropertyMap),
    APPLICATION_PROPERTIES_CODE,
    APPLICATION_PROPERTIES_NAME
);

// ---------------------------------------------------------------------------------------------
// application properties

/// The map of an application-properties section: string keys, in wire order.
///
/// Decoding also accepts symbol keys (read as strings) so one lax peer's key type does not cost
/// the whole message; encoding always writes strings.
pub type PropertyMap = SectionMap<Str>;

impl MapKey for Str {
    fn is_named(&self, name: &str) -> bool {
        *self == name
    }

    fn decode_entries(d: &mut Decoder) -> Result<Option<Vec<(Self, Value)>>, DecodeError> {
        let pairs = Option::<Vec<(PropertyKey, Value)>>::decode(d)?;
        Ok(pairs.map(|p| p.into_iter().map(|(k, v)| (k.0, v)).collect()))
    }
}

/// A property key as read from the wire: a string, or a symbol taken as one.
struct PropertyKey(Str);

impl Decode for PropertyKey {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let found = d.peek_u8()?;
        if matches!(found, format_code::STR8 | format_code::STR32) {
            return Str::decode(d).map(PropertyKey);
        }
        match d.read_value()? {
            Value::String(s) => Ok(PropertyKey(s)),
            Value::Symbol(s) => Ok(PropertyKey(Str::from_utf8(s.as_bytes().clone()).map_err(
                |_| DecodeError {
                    offset: at,
                    kind: DecodeErrorKind::InvalidUtf8,
                },
            )?)),
            _ => Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedType {
                    expected: "application property key (string)",
                    found,
                },
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// properties

/// A message id or correlation id: one of the four types AMQP allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// A ulong id.
    Ulong(u64),
    /// A UUID id (what the Python client sends).
    Uuid(Uuid),
    /// A binary id.
    Binary(Bytes),
    /// A string id.
    String(Str),
}

impl From<u64> for MessageId {
    fn from(v: u64) -> Self {
        MessageId::Ulong(v)
    }
}
impl From<Uuid> for MessageId {
    fn from(v: Uuid) -> Self {
        MessageId::Uuid(v)
    }
}
impl From<Bytes> for MessageId {
    fn from(v: Bytes) -> Self {
        MessageId::Binary(v)
    }
}
impl From<Str> for MessageId {
    fn from(v: Str) -> Self {
        MessageId::String(v)
    }
}
impl From<&str> for MessageId {
    fn from(v: &str) -> Self {
        MessageId::String(v.into())
    }
}
impl From<String> for MessageId {
    fn from(v: String) -> Self {
        MessageId::String(v.into())
    }
}

impl From<MessageId> for Value {
    fn from(id: MessageId) -> Self {
        match id {
            MessageId::Ulong(v) => Value::Ulong(v),
            MessageId::Uuid(v) => Value::Uuid(v),
            MessageId::Binary(v) => Value::Binary(v),
            MessageId::String(v) => Value::String(v),
        }
    }
}

impl Encode for MessageId {
    fn encoded_len(&self) -> usize {
        match self {
            MessageId::Ulong(v) => v.encoded_len(),
            MessageId::Uuid(v) => v.encoded_len(),
            MessageId::Binary(v) => v.encoded_len(),
            MessageId::String(v) => v.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            MessageId::Ulong(v) => v.encode(buf),
            MessageId::Uuid(v) => v.encode(buf),
            MessageId::Binary(v) => v.encode(buf),
            MessageId::String(v) => v.encode(buf),
        }
    }
}

impl Decode for MessageId {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let found = d.peek_u8()?;
        match d.read_value()? {
            Value::Ulong(v) => Ok(MessageId::Ulong(v)),
            Value::Uuid(v) => Ok(MessageId::Uuid(v)),
            Value::Binary(v) => Ok(MessageId::Binary(v)),
            Value::String(v) => Ok(MessageId::String(v)),
            _ => Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedType {
                    expected: "message id (ulong, uuid, binary or string)",
                    found,
                },
            }),
        }
    }
}

composite_type! {
    /// Immutable properties of a message.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Properties(PROPERTIES_CODE, PROPERTIES_NAME) {
        /// Application-assigned message id.
        pub message_id: Option<MessageId> => optional,
        /// Identity of the user that produced the message.
        pub user_id: Option<Bytes> => optional,
        /// Destination address.
        pub to: Option<Str> => optional,
        /// Application subject.
        pub subject: Option<Str> => optional,
        /// Address to reply to.
        pub reply_to: Option<Str> => optional,
        /// Id of the message this one relates to (replies echo the request's message id).
        pub correlation_id: Option<MessageId> => optional,
        /// MIME type of the body.
        pub content_type: Option<Symbol> => optional,
        /// Content encoding of the body.
        pub content_encoding: Option<Symbol> => optional,
        /// When the message expires.
        pub absolute_expiry_time: Option<Timestamp> => optional,
        /// When the message was created.
        pub creation_time: Option<Timestamp> => optional,
        /// Group the message belongs to.
        pub group_id: Option<Str> => optional,
        /// Position within the group.
        pub group_sequence: Option<u32> => optional,
        /// Group to reply to.
        pub reply_to_group_id: Option<Str> => optional,
    }
}

// ---------------------------------------------------------------------------------------------
// body

/// Encoded size of a `data` section holding `n` bytes: `00 53 75` + vbin8/vbin32 + the bytes.
///
/// This is the per-event cost that batch size accounting charges (5 or 8 bytes of overhead).
pub fn data_section_len(n: usize) -> usize {
    SECTION_PREFIX_LEN + if n <= 0xff { 2 + n } else { 5 + n }
}

/// Writes the header of a `data` section whose `n` content bytes the caller writes next, e.g.
/// an encoded event inside a batch envelope. `n` must fit in a u32 (frames are far smaller).
pub fn write_data_section_header<B: BufMut>(buf: &mut B, n: usize) {
    write_section_prefix(buf, DATA_CODE);
    if n <= 0xff {
        buf.put_u8(0xa0);
        buf.put_u8(n as u8);
    } else {
        buf.put_u8(0xb0);
        buf.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// The body of a message: one kind of body section.
///
/// On the wire `Data(vec![])` and `Sequence(vec![])` are the same as `Empty` (no sections), so
/// they decode as `Empty`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Body {
    /// One or more `data` sections (Event Hubs events use exactly one).
    Data(Vec<Bytes>),
    /// One or more `amqp-sequence` sections.
    Sequence(Vec<Vec<Value>>),
    /// One `amqp-value` section.
    Value(Value),
    /// No body section.
    #[default]
    Empty,
}

impl Body {
    /// The bytes of the only `data` section, when the body is exactly one.
    pub fn single_data(&self) -> Option<&Bytes> {
        match self {
            Body::Data(v) if v.len() == 1 => v.first(),
            _ => None,
        }
    }

    /// True when no body section is written.
    pub fn is_empty(&self) -> bool {
        match self {
            Body::Data(v) => v.is_empty(),
            Body::Sequence(v) => v.is_empty(),
            Body::Value(_) => false,
            Body::Empty => true,
        }
    }
}

fn sequence_section_len(items: &[Value]) -> usize {
    let content = items.iter().map(Encode::encoded_len).sum();
    composite_len(AMQP_SEQUENCE_CODE, items.len(), content)
}

impl Encode for Body {
    fn encoded_len(&self) -> usize {
        match self {
            Body::Data(sections) => sections.iter().map(|b| data_section_len(b.len())).sum(),
            Body::Sequence(sections) => sections.iter().map(|s| sequence_section_len(s)).sum(),
            Body::Value(v) => SECTION_PREFIX_LEN + v.encoded_len(),
            Body::Empty => 0,
        }
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Body::Data(sections) => {
                for b in sections {
                    write_data_section_header(buf, b.len());
                    buf.put_slice(b);
                }
            }
            Body::Sequence(sections) => {
                for items in sections {
                    let content = items.iter().map(Encode::encoded_len).sum();
                    write_composite_header(buf, AMQP_SEQUENCE_CODE, items.len(), content);
                    for item in items {
                        item.encode(buf);
                    }
                }
            }
            Body::Value(v) => {
                write_section_prefix(buf, AMQP_VALUE_CODE);
                v.encode(buf);
            }
            Body::Empty => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// message

/// The kinds of section, in the order a message must carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SectionKind {
    Header,
    DeliveryAnnotations,
    MessageAnnotations,
    Properties,
    ApplicationProperties,
    Data,
    Sequence,
    Value,
    Footer,
}

impl SectionKind {
    const ALL: [(SectionKind, u64, &'static str); 9] = [
        (SectionKind::Header, HEADER_CODE, HEADER_NAME),
        (
            SectionKind::DeliveryAnnotations,
            DELIVERY_ANNOTATIONS_CODE,
            DELIVERY_ANNOTATIONS_NAME,
        ),
        (
            SectionKind::MessageAnnotations,
            MESSAGE_ANNOTATIONS_CODE,
            MESSAGE_ANNOTATIONS_NAME,
        ),
        (SectionKind::Properties, PROPERTIES_CODE, PROPERTIES_NAME),
        (
            SectionKind::ApplicationProperties,
            APPLICATION_PROPERTIES_CODE,
            APPLICATION_PROPERTIES_NAME,
        ),
        (SectionKind::Data, DATA_CODE, DATA_NAME),
        (
            SectionKind::Sequence,
            AMQP_SEQUENCE_CODE,
            AMQP_SEQUENCE_NAME,
        ),
        (SectionKind::Value, AMQP_VALUE_CODE, AMQP_VALUE_NAME),
        (SectionKind::Footer, FOOTER_CODE, FOOTER_NAME),
    ];

    fn of(descriptor: &Descriptor) -> Option<SectionKind> {
        Self::ALL
            .iter()
            .find(|(_, code, name)| descriptor.matches(*code, name))
            .map(|(kind, _, _)| *kind)
    }

    fn of_code(code: u64) -> Option<SectionKind> {
        Self::ALL
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(kind, _, _)| *kind)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("section", |(_, _, name)| name)
    }

    /// Position in the section order; the three body kinds share one slot.
    fn rank(self) -> u8 {
        match self {
            SectionKind::Header => 0,
            SectionKind::DeliveryAnnotations => 1,
            SectionKind::MessageAnnotations => 2,
            SectionKind::Properties => 3,
            SectionKind::ApplicationProperties => 4,
            SectionKind::Data | SectionKind::Sequence | SectionKind::Value => 5,
            SectionKind::Footer => 6,
        }
    }

    /// True when `self` may follow `prev`: later in the order, or another section of a
    /// repeatable body kind.
    fn may_follow(self, prev: SectionKind) -> bool {
        self.rank() > prev.rank()
            || (self == prev && matches!(self, SectionKind::Data | SectionKind::Sequence))
    }
}

/// An AMQP message: optional sections around a body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Transport headers.
    pub header: Option<Header>,
    /// Annotations for the next hop.
    pub delivery_annotations: Option<DeliveryAnnotations>,
    /// Annotations that travel with the message.
    pub message_annotations: Option<MessageAnnotations>,
    /// Standard immutable properties.
    pub properties: Option<Properties>,
    /// Application properties.
    pub application_properties: Option<ApplicationProperties>,
    /// The body.
    pub body: Body,
    /// The footer.
    pub footer: Option<Footer>,
}

impl Message {
    /// A message whose body is one `data` section (an Event Hubs event body).
    pub fn with_data(data: impl Into<Bytes>) -> Self {
        Message {
            body: Body::Data(vec![data.into()]),
            ..Message::default()
        }
    }

    /// A message whose body is one `amqp-value` section (management and CBS requests).
    pub fn with_value(value: impl Into<Value>) -> Self {
        Message {
            body: Body::Value(value.into()),
            ..Message::default()
        }
    }

    /// The header, created with defaults if absent.
    pub fn header_mut(&mut self) -> &mut Header {
        self.header.get_or_insert_with(Header::default)
    }

    /// The message annotations, created empty if absent.
    pub fn message_annotations_mut(&mut self) -> &mut Annotations {
        &mut self
            .message_annotations
            .get_or_insert_with(Default::default)
            .0
    }

    /// The delivery annotations, created empty if absent.
    pub fn delivery_annotations_mut(&mut self) -> &mut Annotations {
        &mut self
            .delivery_annotations
            .get_or_insert_with(Default::default)
            .0
    }

    /// The properties, created empty if absent.
    pub fn properties_mut(&mut self) -> &mut Properties {
        self.properties.get_or_insert_with(Default::default)
    }

    /// The application properties, created empty if absent.
    pub fn application_properties_mut(&mut self) -> &mut PropertyMap {
        &mut self
            .application_properties
            .get_or_insert_with(Default::default)
            .0
    }

    /// A message annotation by symbol key.
    pub fn message_annotation(&self, key: &str) -> Option<&Value> {
        self.message_annotations.as_ref()?.get(key)
    }

    /// An application property by key.
    pub fn application_property(&self, key: &str) -> Option<&Value> {
        self.application_properties.as_ref()?.get(key)
    }

    /// Decodes a whole buffer as one message. `data` bodies, strings and binaries are slices
    /// of `bytes` (no copy).
    pub fn decode(bytes: Bytes) -> Result<Message, DecodeError> {
        Self::decode_from(&mut Decoder::new(bytes))
    }

    /// Decodes sections until `d` is exhausted (a transfer payload is exactly one message).
    ///
    /// Sections must come in spec order; a section out of order, a second body kind, a
    /// repeated non-repeatable section or an unknown descriptor is an
    /// [`DecodeErrorKind::UnexpectedDescriptor`] error at that section.
    pub fn decode_from(d: &mut Decoder) -> Result<Message, DecodeError> {
        let mut msg = Message::default();
        let mut prev: Option<SectionKind> = None;
        while !d.is_empty() {
            let at = d.offset();
            let unexpected = |found: String| DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedDescriptor {
                    expected: "message section in spec order",
                    found,
                },
            };
            // The usual numeric descriptor is recognised in place; anything else (symbolic,
            // unknown, malformed) is read on a copy of the decoder for its error.
            let kind = match d.peek_descriptor_code().and_then(SectionKind::of_code) {
                Some(kind) => kind,
                None => {
                    let descriptor = d.clone().read_descriptor()?;
                    SectionKind::of(&descriptor)
                        .ok_or_else(|| unexpected(format!("{descriptor:?}")))?
                }
            };
            if let Some(prev) = prev {
                if !kind.may_follow(prev) {
                    return Err(unexpected(format!("{} after {}", kind.name(), prev.name())));
                }
            }
            match kind {
                SectionKind::Header => msg.header = Some(Header::decode(d)?),
                SectionKind::DeliveryAnnotations => {
                    msg.delivery_annotations = Some(DeliveryAnnotations::decode(d)?)
                }
                SectionKind::MessageAnnotations => {
                    msg.message_annotations = Some(MessageAnnotations::decode(d)?)
                }
                SectionKind::Properties => msg.properties = Some(Properties::decode(d)?),
                SectionKind::ApplicationProperties => {
                    msg.application_properties = Some(ApplicationProperties::decode(d)?)
                }
                SectionKind::Data => {
                    expect_section(d, DATA_CODE, DATA_NAME)?;
                    let data = Bytes::decode(d)?;
                    match &mut msg.body {
                        Body::Data(sections) => sections.push(data),
                        body => *body = Body::Data(vec![data]),
                    }
                }
                SectionKind::Sequence => {
                    expect_section(d, AMQP_SEQUENCE_CODE, AMQP_SEQUENCE_NAME)?;
                    let at = d.offset();
                    let found = d.peek_u8()?;
                    let items = match d.read_value()? {
                        Value::List(items) => items,
                        _ => {
                            return Err(DecodeError {
                                offset: at,
                                kind: DecodeErrorKind::UnexpectedType {
                                    expected: "list",
                                    found,
                                },
                            })
                        }
                    };
                    match &mut msg.body {
                        Body::Sequence(sections) => sections.push(items),
                        body => *body = Body::Sequence(vec![items]),
                    }
                }
                SectionKind::Value => {
                    expect_section(d, AMQP_VALUE_CODE, AMQP_VALUE_NAME)?;
                    msg.body = Body::Value(d.read_value()?);
                }
                SectionKind::Footer => msg.footer = Some(Footer::decode(d)?),
            }
            prev = Some(kind);
        }
        Ok(msg)
    }
}

impl Message {
    /// Size of the sections that precede the body (header through application properties).
    pub fn before_body_len(&self) -> usize {
        self.header.encoded_len_if_some()
            + self.delivery_annotations.encoded_len_if_some()
            + self.message_annotations.encoded_len_if_some()
            + self.properties.encoded_len_if_some()
            + self.application_properties.encoded_len_if_some()
    }

    /// Writes the sections that precede the body.
    ///
    /// With [`Message::encode_after_body`] this lets a batch writer put its own body sections
    /// (one [`write_data_section_header`] plus encoded event per event) between the envelope's
    /// sections; the footer, if any, must come after them.
    pub fn encode_before_body<B: BufMut>(&self, buf: &mut B) {
        put_section(&self.header, buf);
        put_section(&self.delivery_annotations, buf);
        put_section(&self.message_annotations, buf);
        put_section(&self.properties, buf);
        put_section(&self.application_properties, buf);
    }

    /// Size of the sections that follow the body (the footer).
    pub fn after_body_len(&self) -> usize {
        self.footer.encoded_len_if_some()
    }

    /// Writes the sections that follow the body (the footer).
    pub fn encode_after_body<B: BufMut>(&self, buf: &mut B) {
        put_section(&self.footer, buf);
    }
}

/// Absent sections are left out entirely (not written as null).
fn put_section<T: Encode, B: BufMut>(section: &Option<T>, buf: &mut B) {
    if let Some(s) = section {
        s.encode(buf);
    }
}

impl Encode for Message {
    fn encoded_len(&self) -> usize {
        self.before_body_len() + self.body.encoded_len() + self.after_body_len()
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.encode_before_body(buf);
        self.body.encode(buf);
        self.encode_after_body(buf);
    }
}

/// Size of an optional section that is omitted (not written as null) when absent.
trait SectionLen {
    fn encoded_len_if_some(&self) -> usize;
}

impl<T: Encode> SectionLen for Option<T> {
    fn encoded_len_if_some(&self) -> usize {
        self.as_ref().map_or(0, Encode::encoded_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec};
    use crate::amqp::types::error::test_support::*;

    fn full_message() -> Message {
        let mut m = Message::with_data(Bytes::from_static(b"hello event"));
        *m.header_mut() = Header {
            durable: true,
            priority: 9,
            ttl: Some(60_000),
            first_acquirer: true,
            delivery_count: 2,
        };
        m.delivery_annotations_mut()
            .insert("last_enqueued_sequence_number", 41i64);
        let ma = m.message_annotations_mut();
        ma.insert("x-opt-sequence-number", 42i64);
        ma.insert("x-opt-offset", "4096");
        ma.insert("x-opt-enqueued-time", Timestamp(1_700_000_000_000));
        ma.insert(7u64, true);
        *m.properties_mut() = Properties {
            message_id: Some(MessageId::Uuid(Uuid([7; 16]))),
            user_id: Some(Bytes::from_static(b"me")),
            to: Some("eh1".into()),
            subject: Some("s".into()),
            reply_to: Some("$cbs".into()),
            correlation_id: Some(MessageId::Ulong(99)),
            content_type: Some("application/json".into()),
            content_encoding: Some("gzip".into()),
            absolute_expiry_time: Some(Timestamp(1)),
            creation_time: Some(Timestamp(-1)),
            group_id: Some("g".into()),
            group_sequence: Some(3),
            reply_to_group_id: Some("rg".into()),
        };
        m.application_properties_mut().insert("count", 3i32);
        m.application_properties_mut().insert("name", "x");
        m.footer = Some(Footer(Annotations::from(vec![(
            "hash".into(),
            Value::Uint(1),
        )])));
        m
    }

    fn assert_message_roundtrip(m: &Message) -> Vec<u8> {
        let bytes = encode_to_vec(m);
        assert_eq!(bytes.len(), m.encoded_len());
        assert_eq!(&Message::decode(Bytes::from(bytes.clone())).unwrap(), m);
        // A prefix either fails or is a message with fewer sections; never a panic.
        for cut in 0..bytes.len() {
            let _ = Message::decode(Bytes::copy_from_slice(&bytes[..cut]));
        }
        bytes
    }

    #[test]
    fn full_message_roundtrips() {
        assert_message_roundtrip(&full_message());
        assert_message_roundtrip(&Message::default());
        assert_eq!(encode_to_vec(&Message::default()), Vec::<u8>::new());
    }

    #[test]
    fn every_body_kind_roundtrips() {
        for body in [
            Body::Data(vec![Bytes::from_static(b"a"), Bytes::from(vec![9u8; 300])]),
            Body::Data(vec![Bytes::new()]),
            Body::Sequence(vec![
                vec![Value::Int(1)],
                vec![],
                vec![Value::from("x"); 100],
            ]),
            Body::Value(Value::Null),
            Body::Value(Value::Map(vec![(
                Value::from("operation"),
                Value::from("READ"),
            )])),
            Body::Empty,
        ] {
            let m = Message {
                body,
                ..full_message()
            };
            assert_message_roundtrip(&m);
        }
    }

    #[test]
    fn sections_roundtrip_alone_in_every_form() {
        let m = full_message();
        let header = m.header.unwrap();
        roundtrip(&header);
        alternatives(&header, HEADER_NAME);
        roundtrip(&Header::default());
        let props = m.properties.clone().unwrap();
        roundtrip(&props);
        alternatives(&props, PROPERTIES_NAME);
        roundtrip(&Properties::default());
        alternatives(&Properties::default(), PROPERTIES_NAME);
        roundtrip(&Properties {
            message_id: Some("id-1".into()),
            correlation_id: Some(MessageId::Binary(Bytes::from_static(b"\x01"))),
            ..Properties::default()
        });
        roundtrip(m.message_annotations.as_ref().unwrap());
        roundtrip(m.delivery_annotations.as_ref().unwrap());
        roundtrip(m.application_properties.as_ref().unwrap());
        roundtrip(m.footer.as_ref().unwrap());
        roundtrip(&MessageAnnotations::default());
    }

    #[test]
    fn empty_header_list_means_defaults() {
        let bytes = described_list(&Descriptor::Code(HEADER_CODE), &[], false);
        let h: Header = decode_exact(Bytes::from(bytes)).unwrap();
        assert_eq!(h, Header::default());
        assert_eq!(h.priority, 4);
        let bytes = described_list(
            &Descriptor::Code(HEADER_CODE),
            &[Value::Bool(true), Value::Null],
            true,
        );
        let h: Header = decode_exact(Bytes::from(bytes)).unwrap();
        assert!(h.durable);
        assert_eq!(h.priority, 4);
    }

    #[test]
    fn data_section_helpers_match_the_encoder() {
        for n in [0usize, 1, 255, 256, 70_000] {
            let body = Bytes::from(vec![0xabu8; n]);
            let m = Message::with_data(body.clone());
            let mut manual = Vec::new();
            write_data_section_header(&mut manual, n);
            assert_eq!(manual.len() + n, data_section_len(n));
            manual.extend_from_slice(&body);
            assert_eq!(encode_to_vec(&m), manual);
            let overhead = if n < 256 { 5 } else { 8 };
            assert_eq!(data_section_len(n), n + overhead);
        }
        let mut hdr = Vec::new();
        write_data_section_header(&mut hdr, 3);
        assert_eq!(hdr, [0x00, 0x53, 0x75, 0xa0, 3]);
    }

    #[test]
    fn nested_message_in_data_section() {
        // A batch envelope: each data section holds a fully encoded message.
        let inner = full_message();
        let inner_len = inner.encoded_len();
        let mut envelope = Vec::new();
        let mut ma = MessageAnnotations::default();
        ma.insert("x-opt-partition-key", "pk");
        ma.encode(&mut envelope);
        for _ in 0..2 {
            write_data_section_header(&mut envelope, inner_len);
            inner.encode(&mut envelope);
        }
        let expected_len = ma.encoded_len() + 2 * data_section_len(inner_len);
        assert_eq!(envelope.len(), expected_len);
        let outer = Message::decode(Bytes::from(envelope)).unwrap();
        let Body::Data(sections) = &outer.body else {
            panic!("data body expected");
        };
        assert_eq!(sections.len(), 2);
        for s in sections {
            assert_eq!(Message::decode(s.clone()).unwrap(), inner);
        }
    }

    #[test]
    fn decode_is_zero_copy() {
        let bytes = Bytes::from(encode_to_vec(&full_message()));
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let m = Message::decode(bytes.clone()).unwrap();
        let data = m.body.single_data().unwrap();
        assert_eq!(&data[..], b"hello event");
        let inside = |b: &[u8]| {
            let p = b.as_ptr() as usize;
            range.contains(&p) && p + b.len() <= range.end
        };
        assert!(inside(data));
        let props = m.properties.as_ref().unwrap();
        assert!(inside(props.to.as_ref().unwrap().as_bytes()));
        assert!(inside(props.user_id.as_ref().unwrap()));
        let Some(Value::String(offset)) = m.message_annotation("x-opt-offset") else {
            panic!("offset annotation");
        };
        assert!(inside(offset.as_bytes()));
    }

    #[test]
    fn sections_out_of_order_are_rejected() {
        let header = encode_to_vec(&Header::default());
        let props = encode_to_vec(&Properties::default());
        let data = encode_to_vec(&Body::Data(vec![Bytes::from_static(b"x")]));
        let value = encode_to_vec(&Body::Value(Value::Null));
        let seq = encode_to_vec(&Body::Sequence(vec![vec![]]));
        let footer = encode_to_vec(&Footer::default());
        let cat = |parts: &[&[u8]]| Bytes::from(parts.concat());
        let bad: [&[&[u8]]; 7] = [
            &[&props, &header],
            &[&header, &header],
            &[&data, &props],
            &[&data, &value],
            &[&value, &value],
            &[&seq, &data],
            &[&footer, &data],
        ];
        for parts in bad {
            let err = Message::decode(cat(parts)).unwrap_err();
            assert!(
                matches!(err.kind, DecodeErrorKind::UnexpectedDescriptor { .. }),
                "{err}"
            );
            assert_eq!(err.offset, parts[0].len());
        }
        let good: [&[&[u8]]; 4] = [
            &[&header, &props, &data, &data, &footer],
            &[&seq, &seq],
            &[&value, &footer],
            &[&footer],
        ];
        for parts in good {
            Message::decode(cat(parts)).unwrap();
        }
    }

    #[test]
    fn unknown_section_and_non_described_input_are_rejected() {
        let bytes = described_list(&Descriptor::Code(0x10), &[], false);
        assert!(matches!(
            Message::decode(Bytes::from(bytes)).unwrap_err().kind,
            DecodeErrorKind::UnexpectedDescriptor { .. }
        ));
        assert!(matches!(
            Message::decode(Bytes::from_static(&[0xa1, 0x01, b'x']))
                .unwrap_err()
                .kind,
            DecodeErrorKind::UnexpectedType { .. }
        ));
        // A data section whose value is not binary.
        assert!(matches!(
            Message::decode(Bytes::from_static(&[0x00, 0x53, 0x75, 0xa1, 0x01, b'x']))
                .unwrap_err()
                .kind,
            DecodeErrorKind::UnexpectedType { .. }
        ));
        // An amqp-sequence section whose value is not a list.
        assert!(matches!(
            Message::decode(Bytes::from_static(&[0x00, 0x53, 0x76, 0x40]))
                .unwrap_err()
                .kind,
            DecodeErrorKind::UnexpectedType { .. }
        ));
    }

    #[test]
    fn symbolic_section_descriptors_are_accepted() {
        let mut bytes = vec![0x00];
        Symbol::from_static(DATA_NAME).encode(&mut bytes);
        Bytes::from_static(b"payload").encode(&mut bytes);
        bytes.push(0x00);
        Symbol::from_static(FOOTER_NAME).encode(&mut bytes);
        Vec::<(Symbol, Value)>::new().encode(&mut bytes);
        let m = Message::decode(Bytes::from(bytes)).unwrap();
        assert_eq!(m.body.single_data().map(|b| &b[..]), Some(&b"payload"[..]));
        assert_eq!(m.footer, Some(Footer::default()));
        let mut bytes = vec![0x00];
        Symbol::from_static(AMQP_VALUE_NAME).encode(&mut bytes);
        Value::from("v").encode(&mut bytes);
        let m = Message::decode(Bytes::from(bytes)).unwrap();
        assert_eq!(m.body, Body::Value(Value::from("v")));
    }

    #[test]
    fn annotation_keys_and_lookup() {
        let mut a = Annotations::new();
        assert_eq!(a.insert("k", 1i32), None);
        assert_eq!(a.insert("k", 2i32), Some(Value::Int(1)));
        a.insert(5u64, "five");
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("k"), Some(&Value::Int(2)));
        assert_eq!(a.get_code(5), Some(&Value::from("five")));
        assert_eq!(a.remove("k"), Some(Value::Int(2)));
        assert!(a.get("k").is_none());
        // A string key is not an annotation key.
        let mut bytes = vec![0x00, 0x53, 0x72];
        vec![(Value::from("k"), Value::Null)].encode(&mut bytes);
        assert!(matches!(
            decode_err::<MessageAnnotations>(bytes),
            DecodeErrorKind::UnexpectedType { .. }
        ));
    }

    #[test]
    fn lax_peer_forms_are_tolerated() {
        // Null in place of an annotations map, and symbol keys in application properties.
        let m: MessageAnnotations =
            decode_exact(Bytes::from_static(&[0x00, 0x53, 0x72, 0x40])).unwrap();
        assert!(m.is_empty());
        let mut bytes = vec![0x00, 0x53, 0x74];
        vec![(Symbol::from("sym"), Value::Int(1))].encode(&mut bytes);
        let p: ApplicationProperties = decode_exact(Bytes::from(bytes)).unwrap();
        assert_eq!(p.get("sym"), Some(&Value::Int(1)));
    }

    #[test]
    fn bad_message_id_type_is_rejected() {
        let items = [Value::Int(5)];
        let bytes = described_list(&Descriptor::Code(PROPERTIES_CODE), &items, false);
        assert!(matches!(
            decode_err::<Properties>(bytes),
            DecodeErrorKind::UnexpectedType { .. }
        ));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let bytes = encode_to_vec(&full_message());
        for i in 0..bytes.len() {
            for b in [0x00, 0x40, 0xff, 0xd0, 0xf0, 0xb0, 0x75] {
                let mut m = bytes.clone();
                m[i] = b;
                let _ = Message::decode(Bytes::from(m));
            }
        }
    }
}
