//! The AMQP message: its sections, and the message as their concatenation.
//!
//! Decoding is zero-copy: [`Message::decode`] keeps `data` bodies, strings and binaries as
//! slices of the input buffer. Encoding knows its exact size ([`Encode::encoded_len`]), so a
//! writer can account for bytes before it writes them.

use crate::amqp::codec::{
    composite_len, composite_type, format_code, write_composite_header, Decode, DecodeError,
    DecodeErrorKind, Decoder, Descriptor, Encode, SliceWriter, Str, Symbol, Timestamp, Uuid, Value,
};
use bytes::{BufMut, Bytes};
use std::cell::RefCell;

#[doc(hidden)]
pub use super::section_map::check_lazy_map;
pub use super::section_map::{MapKey, SectionMap};
pub(crate) use raw::walk_sections;
pub use raw::{EventLayout, RawMessage};

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
pub(crate) fn expect_section(
    d: &mut Decoder,
    code: u64,
    name: &'static str,
) -> Result<(), DecodeError> {
    if d.eat_small_descriptor(code) {
        return Ok(());
    }
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

/// `0x00 <small ulong code>` as bytes (every section code is below 0x100).
const fn section_prefix(code: u64) -> [u8; SECTION_PREFIX_LEN] {
    [0x00, format_code::SMALLULONG, code as u8]
}

fn write_section_prefix<B: BufMut>(buf: &mut B, code: u64) {
    buf.put_slice(&section_prefix(code));
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
    /// A symbolic key such as `x-trace-id`.
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
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match self {
            AnnotationKey::Symbol(s) => s.write_to(w),
            AnnotationKey::Ulong(n) => n.write_to(w),
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
        self.iter()
            .find(|(k, _)| *k == AnnotationKey::Ulong(key))
            .map(|(_, v)| v)
    }
}

impl MapKey for AnnotationKey {
    const EXPECTED: &'static str = "annotation key (symbol or ulong)";

    fn is_own_key_code(code: u8) -> bool {
        matches!(
            code,
            format_code::SYM8
                | format_code::SYM32
                | format_code::SMALLULONG
                | format_code::ULONG
                | format_code::ULONG0
        )
    }

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
            #[inline]
            fn write_to(&self, w: &mut SliceWriter<'_>) {
                w.put_array(section_prefix($code));
                self.0.write_to(w)
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
    /// Annotations that travel with the message.
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
    const EXPECTED: &'static str = "application property key (string)";

    /// Strings only: a symbol key is read as a string, so the map is written anew.
    fn is_own_key_code(code: u8) -> bool {
        matches!(code, format_code::STR8 | format_code::STR32)
    }

    fn is_accepted_key_code(code: u8) -> bool {
        matches!(
            code,
            format_code::STR8 | format_code::STR32 | format_code::SYM8 | format_code::SYM32
        )
    }

    fn is_named(&self, name: &str) -> bool {
        *self == name
    }

    fn decode_entries(d: &mut Decoder) -> Result<Option<Vec<(Self, Value)>>, DecodeError> {
        if d.skip_null()? {
            return Ok(None);
        }
        d.read_map_with(|d| PropertyKey::decode(d).map(|k| k.0), Value::decode)
            .map(Some)
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

mod body;
mod data_sections;
mod id;
mod raw;
#[cfg(test)]
mod tests;

pub use body::Body;
pub use body::{data_section_len, write_data_section_header};
pub use data_sections::{DataSections, IntoIter as DataSectionsIntoIter};
pub use id::MessageId;

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
            body: Body::Data(DataSections::one(data.into())),
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
            let kind = next_section(d, prev)?;
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
                        body => *body = Body::Data(DataSections::one(data)),
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

/// The kind of the section that starts at `d` (nothing consumed), refused unless it may
/// follow `prev`: sections must come in spec order, one body kind, no repeated
/// non-repeatable section, no unknown descriptor.
fn next_section(d: &Decoder, prev: Option<SectionKind>) -> Result<SectionKind, DecodeError> {
    let at = d.offset();
    let unexpected = |found: String| DecodeError {
        offset: at,
        kind: DecodeErrorKind::UnexpectedDescriptor {
            expected: "message section in spec order",
            found,
        },
    };
    // The usual numeric descriptor is recognised in place; anything else (symbolic, unknown,
    // malformed) is read on a copy of the decoder for its error.
    let kind = match d.peek_descriptor_code().and_then(SectionKind::of_code) {
        Some(kind) => kind,
        None => {
            let descriptor = d.clone().read_descriptor()?;
            SectionKind::of(&descriptor).ok_or_else(|| unexpected(format!("{descriptor:?}")))?
        }
    };
    match prev {
        Some(prev) if !kind.may_follow(prev) => {
            Err(unexpected(format!("{} after {}", kind.name(), prev.name())))
        }
        _ => Ok(kind),
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
    /// With [`Message::encode_after_body`] this lets a writer put body sections of its own
    /// making between the message's other sections; the footer, if any, must come after them.
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

/// [`put_section`] into a slice writer.
fn write_section_in<T: Encode>(section: &Option<T>, w: &mut SliceWriter<'_>) {
    if let Some(s) = section {
        s.write_to(w);
    }
}

/// Room for a message's head: the sections before the body and the first data section's
/// header. An event's head is rarely over a few hundred bytes; a larger one is written by the
/// sized path.
const HEAD_ROOM: usize = 1024;
/// Room on the stack, for a head written while the thread's room is in use or gone.
const STACK_HEAD_ROOM: usize = 256;

thread_local! {
    /// Each thread's room for heads, reused so that no encode clears a fresh buffer.
    static HEAD: RefCell<[u8; HEAD_ROOM]> = const { RefCell::new([0; HEAD_ROOM]) };
}

impl Message {
    /// Calls `f` with the message's head written in one pass (`None` when it did not fit)
    /// and the first data section, whose bytes follow the head.
    fn with_head<R>(&self, mut f: impl FnMut(Option<&[u8]>, Option<&Bytes>) -> R) -> R {
        let mut run = |room: &mut [u8]| {
            let mut head = SliceWriter::new(room);
            let first = self.write_head(&mut head);
            f((!head.is_full()).then(|| head.written()), first)
        };
        let in_thread_room = HEAD.try_with(|room| {
            room.try_borrow_mut()
                .ok()
                .map(|mut room| run(&mut room[..]))
        });
        match in_thread_room {
            Ok(Some(done)) => done,
            // The thread's room is already gone (thread teardown), or in use, which nothing
            // does today: no section writes a message of its own.
            _ => run(&mut [0u8; STACK_HEAD_ROOM]),
        }
    }

    /// Writes the head into `w`: the sections before the body, then the first data section's
    /// header, whose bytes are returned to follow it.
    fn write_head<'m>(&'m self, w: &mut SliceWriter<'_>) -> Option<&'m Bytes> {
        write_section_in(&self.header, w);
        write_section_in(&self.delivery_annotations, w);
        write_section_in(&self.message_annotations, w);
        write_section_in(&self.properties, w);
        write_section_in(&self.application_properties, w);
        let Body::Data(sections) = &self.body else {
            return None;
        };
        let first = sections.first()?;
        w.put_array(section_prefix(DATA_CODE));
        w.put_variable_header(format_code::VBIN8, format_code::VBIN32, first.len());
        Some(first)
    }
}

impl Message {
    /// The encoding in a buffer of its own, exactly its size. The head is written once, into
    /// the thread's room, and its size is what sizes the buffer: no pass over the sections to
    /// size them first (as `encoded_len` then `encode` would make).
    pub fn to_bytes(&self) -> Bytes {
        // A `Vec` of exactly its length becomes `Bytes` without a copy or a reallocation.
        let buf = self.with_head(|head, first| match head {
            Some(head) => {
                let mut buf = Vec::with_capacity(head.len() + self.after_head_len(first));
                buf.extend_from_slice(head);
                self.write_after_head(first, &mut buf);
                buf
            }
            None => {
                let mut buf = Vec::with_capacity(self.encoded_len());
                self.encode_by_parts(&mut buf);
                buf
            }
        });
        Bytes::from(buf)
    }

    /// Writes the message section by section, each sized first: for heads too large for the
    /// room.
    fn encode_by_parts<B: BufMut>(&self, buf: &mut B) {
        self.encode_before_body(buf);
        self.body.encode(buf);
        self.encode_after_body(buf);
    }

    /// Size of what follows a head written by `write_head` that returned `first`.
    fn after_head_len(&self, first: Option<&Bytes>) -> usize {
        let body = match (first, &self.body) {
            (Some(first), Body::Data(sections)) => {
                first.len()
                    + sections
                        .iter()
                        .skip(1)
                        .map(|b| data_section_len(b.len()))
                        .sum::<usize>()
            }
            _ => self.body.encoded_len(),
        };
        body + self.after_body_len()
    }

    /// Writes what follows a head written by `write_head` that returned `first`: the rest of
    /// the body and the footer.
    fn write_after_head<B: BufMut>(&self, first: Option<&Bytes>, buf: &mut B) {
        match (first, &self.body) {
            (Some(first), Body::Data(sections)) => {
                buf.put_slice(first);
                for b in sections.iter().skip(1) {
                    write_data_section_header(buf, b.len());
                    buf.put_slice(b);
                }
            }
            _ => self.body.encode(buf),
        }
        self.encode_after_body(buf);
    }
}

impl Encode for Message {
    fn encoded_len(&self) -> usize {
        self.before_body_len() + self.body.encoded_len() + self.after_body_len()
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.with_head(|head, first| match head {
            Some(head) => {
                buf.put_slice(head);
                self.write_after_head(first, buf);
            }
            None => self.encode_by_parts(buf),
        })
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
