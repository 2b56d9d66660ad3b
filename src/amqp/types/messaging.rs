//! Link termini (`source`, `target`) and delivery states (`received` and the four outcomes).

use super::definitions::Fields;
use super::error::AmqpError;
use crate::amqp::codec::{
    composite_type, Decode, DecodeError, DecodeErrorKind, Decoder, Descriptor, Encode, ListReader,
    Str, Symbol, Value,
};
use bytes::BufMut;

/// A source's `filter` field: filter names to described filter values (or null).
pub type FilterSet = Vec<(Symbol, Value)>;

/// Which terminus state the node keeps across link recovery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TerminusDurability {
    /// No state is durable (the default).
    #[default]
    None,
    /// Only the terminus configuration is durable.
    Configuration,
    /// Configuration and unsettled deliveries are durable.
    UnsettledState,
}

impl TerminusDurability {
    fn code(self) -> u32 {
        match self {
            TerminusDurability::None => 0,
            TerminusDurability::Configuration => 1,
            TerminusDurability::UnsettledState => 2,
        }
    }
}

impl Encode for TerminusDurability {
    fn encoded_len(&self) -> usize {
        self.code().encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.code().encode(buf)
    }
}

/// When a terminus's expiry timer starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TerminusExpiryPolicy {
    /// When the link detaches.
    LinkDetach,
    /// When the session ends (the default).
    #[default]
    SessionEnd,
    /// When the connection closes.
    ConnectionClose,
    /// Never.
    Never,
}

impl TerminusExpiryPolicy {
    /// The policy's symbol.
    pub fn as_symbol(self) -> Symbol {
        Symbol::from_static(match self {
            TerminusExpiryPolicy::LinkDetach => "link-detach",
            TerminusExpiryPolicy::SessionEnd => "session-end",
            TerminusExpiryPolicy::ConnectionClose => "connection-close",
            TerminusExpiryPolicy::Never => "never",
        })
    }

    /// The policy named by `s`, `None` for a symbol the spec does not define.
    pub fn from_symbol(s: &Symbol) -> Option<Self> {
        Some(match s.as_str() {
            "link-detach" => TerminusExpiryPolicy::LinkDetach,
            "session-end" => TerminusExpiryPolicy::SessionEnd,
            "connection-close" => TerminusExpiryPolicy::ConnectionClose,
            "never" => TerminusExpiryPolicy::Never,
            _ => return None,
        })
    }
}

impl Encode for TerminusExpiryPolicy {
    fn encoded_len(&self) -> usize {
        self.as_symbol().encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.as_symbol().encode(buf)
    }
}

/// A terminus's `durable` field: one of the three durability codes.
fn read_durability(l: &mut ListReader) -> Result<TerminusDurability, DecodeError> {
    Ok(match l.optional::<u32>()? {
        None | Some(0) => TerminusDurability::None,
        Some(1) => TerminusDurability::Configuration,
        Some(2) => TerminusDurability::UnsettledState,
        Some(_) => return Err(l.invalid("durable")),
    })
}

/// A terminus's `expiry-policy` field: one of the four policy symbols.
fn read_expiry_policy(l: &mut ListReader) -> Result<TerminusExpiryPolicy, DecodeError> {
    match l.optional::<Symbol>()? {
        None => Ok(TerminusExpiryPolicy::default()),
        Some(s) => TerminusExpiryPolicy::from_symbol(&s).ok_or_else(|| l.invalid("expiry-policy")),
    }
}

/// A source's `default-outcome` field: any delivery state but `received`, which is no outcome.
fn read_default_outcome(l: &mut ListReader) -> Result<Option<DeliveryState>, DecodeError> {
    match l.optional::<DeliveryState>()? {
        Some(DeliveryState::Received(_)) => Err(l.invalid("default-outcome")),
        other => Ok(other),
    }
}

/// Numeric descriptor of `amqp:source:list`.
pub const SOURCE_CODE: u64 = 0x28;
/// Symbolic descriptor of the source terminus.
pub const SOURCE_NAME: &str = "amqp:source:list";

composite_type! {
    /// The source terminus of a link: where messages come from.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Source(SOURCE_CODE, SOURCE_NAME) {
        /// The node's address.
        pub address: Option<Str> => optional,
        /// What state survives link recovery.
        pub durable: TerminusDurability => with(read_durability),
        /// When the expiry timer starts.
        pub expiry_policy: TerminusExpiryPolicy => with(read_expiry_policy),
        /// Expiry timeout in seconds.
        pub timeout: u32 => or_default,
        /// Asks the peer to create the node.
        pub dynamic: bool => or_default,
        /// Properties of a dynamically created node.
        pub dynamic_node_properties: Option<Fields> => optional,
        /// `move` or `copy`.
        pub distribution_mode: Option<Symbol> => optional,
        /// Filters selecting the messages to transfer.
        pub filter: Option<FilterSet> => optional,
        /// Outcome applied to deliveries settled without one (never `received`).
        pub default_outcome: Option<DeliveryState> => with(read_default_outcome),
        /// Outcomes the source supports.
        pub outcomes: Option<Vec<Symbol>> => optional,
        /// Extension capabilities.
        pub capabilities: Option<Vec<Symbol>> => optional,
    }
}

impl Source {
    /// A source for `address` with every other field at its default.
    pub fn new(address: impl Into<Str>) -> Self {
        Source {
            address: Some(address.into()),
            ..Source::default()
        }
    }
}

/// Numeric descriptor of `amqp:target:list`.
pub const TARGET_CODE: u64 = 0x29;
/// Symbolic descriptor of the target terminus.
pub const TARGET_NAME: &str = "amqp:target:list";

composite_type! {
    /// The target terminus of a link: where messages go.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Target(TARGET_CODE, TARGET_NAME) {
        /// The node's address.
        pub address: Option<Str> => optional,
        /// What state survives link recovery.
        pub durable: TerminusDurability => with(read_durability),
        /// When the expiry timer starts.
        pub expiry_policy: TerminusExpiryPolicy => with(read_expiry_policy),
        /// Expiry timeout in seconds.
        pub timeout: u32 => or_default,
        /// Asks the peer to create the node.
        pub dynamic: bool => or_default,
        /// Properties of a dynamically created node.
        pub dynamic_node_properties: Option<Fields> => optional,
        /// Extension capabilities.
        pub capabilities: Option<Vec<Symbol>> => optional,
    }
}

impl Target {
    /// A target for `address` with every other field at its default.
    pub fn new(address: impl Into<Str>) -> Self {
        Target {
            address: Some(address.into()),
            ..Target::default()
        }
    }
}

/// Numeric descriptor of `amqp:received:list`.
pub const RECEIVED_CODE: u64 = 0x23;
/// Numeric descriptor of `amqp:accepted:list`.
pub const ACCEPTED_CODE: u64 = 0x24;
/// Numeric descriptor of `amqp:rejected:list`.
pub const REJECTED_CODE: u64 = 0x25;
/// Numeric descriptor of `amqp:released:list`.
pub const RELEASED_CODE: u64 = 0x26;
/// Numeric descriptor of `amqp:modified:list`.
pub const MODIFIED_CODE: u64 = 0x27;
/// Symbolic descriptor of `received`.
pub const RECEIVED_NAME: &str = "amqp:received:list";
/// Symbolic descriptor of `accepted`.
pub const ACCEPTED_NAME: &str = "amqp:accepted:list";
/// Symbolic descriptor of `rejected`.
pub const REJECTED_NAME: &str = "amqp:rejected:list";
/// Symbolic descriptor of `released`.
pub const RELEASED_NAME: &str = "amqp:released:list";
/// Symbolic descriptor of `modified`.
pub const MODIFIED_NAME: &str = "amqp:modified:list";

composite_type! {
    /// Partial-delivery progress, used when resuming links (not a terminal outcome).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Received(RECEIVED_CODE, RECEIVED_NAME) {
        /// Index of the first section not yet completely received.
        pub section_number: u32 => required("section-number"),
        /// Offset within that section of the first byte not yet received.
        pub section_offset: u64 => required("section-offset"),
    }
}

composite_type! {
    /// The message was processed successfully.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Accepted(ACCEPTED_CODE, ACCEPTED_NAME);
}

composite_type! {
    /// The message is invalid and will not be processed.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Rejected(REJECTED_CODE, REJECTED_NAME) {
        /// Why it was rejected.
        pub error: Option<AmqpError> => optional,
    }
}

composite_type! {
    /// The message was not processed and may be redelivered unchanged.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Released(RELEASED_CODE, RELEASED_NAME);
}

composite_type! {
    /// The message was not processed and is to be modified before redelivery.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Modified(MODIFIED_CODE, MODIFIED_NAME) {
        /// Count the attempt as a failed delivery (increments `delivery-count`).
        pub delivery_failed: bool => or_default,
        /// Do not redeliver to this link.
        pub undeliverable_here: bool => or_default,
        /// Annotations to merge into the message's message-annotations.
        pub message_annotations: Option<Fields> => optional,
    }
}

/// The state of a delivery as carried by `transfer`, `disposition` and `unsettled` maps.
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryState {
    /// Partially received (not terminal).
    Received(Received),
    /// Terminal: processed.
    Accepted(Accepted),
    /// Terminal: invalid, with an error.
    Rejected(Rejected),
    /// Terminal: not processed, may be redelivered.
    Released(Released),
    /// Terminal: not processed, redeliver modified.
    Modified(Modified),
}

impl DeliveryState {
    /// True for the four outcomes; false for `received`.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, DeliveryState::Received(_))
    }

    /// True for `accepted`.
    pub fn is_accepted(&self) -> bool {
        matches!(self, DeliveryState::Accepted(_))
    }

    /// The error of a `rejected` outcome.
    pub fn error(&self) -> Option<&AmqpError> {
        match self {
            DeliveryState::Rejected(r) => r.error.as_ref(),
            _ => None,
        }
    }

    /// A `rejected` outcome with `error`.
    pub fn rejected(error: AmqpError) -> Self {
        DeliveryState::Rejected(Rejected { error: Some(error) })
    }

    /// The symbolic descriptor of this state, as used in a source's `outcomes`.
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::Received(_) => RECEIVED_NAME,
            DeliveryState::Accepted(_) => ACCEPTED_NAME,
            DeliveryState::Rejected(_) => REJECTED_NAME,
            DeliveryState::Released(_) => RELEASED_NAME,
            DeliveryState::Modified(_) => MODIFIED_NAME,
        }
    }
}

impl From<Received> for DeliveryState {
    fn from(v: Received) -> Self {
        DeliveryState::Received(v)
    }
}
impl From<Accepted> for DeliveryState {
    fn from(v: Accepted) -> Self {
        DeliveryState::Accepted(v)
    }
}
impl From<Rejected> for DeliveryState {
    fn from(v: Rejected) -> Self {
        DeliveryState::Rejected(v)
    }
}
impl From<Released> for DeliveryState {
    fn from(v: Released) -> Self {
        DeliveryState::Released(v)
    }
}
impl From<Modified> for DeliveryState {
    fn from(v: Modified) -> Self {
        DeliveryState::Modified(v)
    }
}

impl Encode for DeliveryState {
    fn encoded_len(&self) -> usize {
        match self {
            DeliveryState::Received(v) => v.encoded_len(),
            DeliveryState::Accepted(v) => v.encoded_len(),
            DeliveryState::Rejected(v) => v.encoded_len(),
            DeliveryState::Released(v) => v.encoded_len(),
            DeliveryState::Modified(v) => v.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            DeliveryState::Received(v) => v.encode(buf),
            DeliveryState::Accepted(v) => v.encode(buf),
            DeliveryState::Rejected(v) => v.encode(buf),
            DeliveryState::Released(v) => v.encode(buf),
            DeliveryState::Modified(v) => v.encode(buf),
        }
    }
}

impl Decode for DeliveryState {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        // Peek at the descriptor (in place for the usual numeric code, else on a copy of the
        // decoder), then let the variant re-read it.
        let at = d.offset();
        let descriptor = match d.peek_descriptor_code() {
            Some(code) => Descriptor::Code(code),
            None => d.clone().read_descriptor()?,
        };
        let is = |code, name| descriptor.matches(code, name);
        if is(RECEIVED_CODE, RECEIVED_NAME) {
            Received::decode(d).map(DeliveryState::Received)
        } else if is(ACCEPTED_CODE, ACCEPTED_NAME) {
            Accepted::decode(d).map(DeliveryState::Accepted)
        } else if is(REJECTED_CODE, REJECTED_NAME) {
            Rejected::decode(d).map(DeliveryState::Rejected)
        } else if is(RELEASED_CODE, RELEASED_NAME) {
            Released::decode(d).map(DeliveryState::Released)
        } else if is(MODIFIED_CODE, MODIFIED_NAME) {
            Modified::decode(d).map(DeliveryState::Modified)
        } else {
            Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedDescriptor {
                    expected: "delivery-state",
                    found: format!("{descriptor:?}"),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec, Array};
    use crate::amqp::types::error::condition;
    use crate::amqp::types::error::test_support::*;
    use bytes::Bytes;

    fn full_source() -> Source {
        Source {
            address: Some("amqps://ns/eh1/ConsumerGroups/$default/Partitions/0".into()),
            durable: TerminusDurability::UnsettledState,
            expiry_policy: TerminusExpiryPolicy::Never,
            timeout: 300,
            dynamic: true,
            dynamic_node_properties: Some(vec![("lifetime".into(), Value::Uint(7))]),
            distribution_mode: Some("copy".into()),
            filter: Some(vec![(
                "a-filter".into(),
                Value::described(Descriptor::Code(0x1234), Value::from("x > '1'")),
            )]),
            default_outcome: Some(DeliveryState::Released(Released)),
            outcomes: Some(vec![ACCEPTED_NAME.into(), REJECTED_NAME.into()]),
            capabilities: Some(vec!["topic".into()]),
        }
    }

    #[test]
    fn source_roundtrips_in_every_form() {
        let s = full_source();
        roundtrip(&s);
        alternatives(&s, SOURCE_NAME);
        let minimal = Source::new("eh1/ConsumerGroups/$default/Partitions/3");
        roundtrip(&minimal);
        alternatives(&minimal, SOURCE_NAME);
        roundtrip(&Source::default());
    }

    #[test]
    fn source_is_full_arity() {
        let (_, items) = split(&encode_to_vec(&Source::default()));
        assert_eq!(items.len(), 11);
        let (_, items) = split(&encode_to_vec(&Target::default()));
        assert_eq!(items.len(), 7);
    }

    #[test]
    fn empty_source_list_means_defaults() {
        let bytes = described_list(&Descriptor::Code(SOURCE_CODE), &[], false);
        let s: Source = decode_exact(Bytes::from(bytes)).unwrap();
        assert_eq!(s, Source::default());
        assert_eq!(s.expiry_policy, TerminusExpiryPolicy::SessionEnd);
    }

    #[test]
    fn source_rejects_bad_enumerations() {
        let code = Descriptor::Code(SOURCE_CODE);
        let bad_durable = described_list(&code, &[Value::Null, Value::Uint(3)], false);
        assert_eq!(
            decode_err::<Source>(bad_durable),
            DecodeErrorKind::InvalidField {
                composite: SOURCE_NAME,
                field: "durable"
            }
        );
        let bad_policy = described_list(
            &code,
            &[Value::Null, Value::Null, Value::Symbol("sometimes".into())],
            false,
        );
        assert!(matches!(
            decode_err::<Source>(bad_policy),
            DecodeErrorKind::InvalidField {
                field: "expiry-policy",
                ..
            }
        ));
        let mut items = vec![Value::Null; 8];
        items.push(Value::Described(Box::new(crate::amqp::codec::Described {
            descriptor: Descriptor::Code(RECEIVED_CODE),
            value: Value::List(vec![Value::Uint(0), Value::Ulong(0)]),
        })));
        assert!(matches!(
            decode_err::<Source>(described_list(&code, &items, false)),
            DecodeErrorKind::InvalidField {
                field: "default-outcome",
                ..
            }
        ));
    }

    #[test]
    fn capabilities_accept_a_single_symbol() {
        let mut items = vec![Value::Null; 6];
        items.push(Value::Symbol("one".into()));
        let t: Target = decode_exact(Bytes::from(described_list(
            &Descriptor::Code(TARGET_CODE),
            &items,
            false,
        )))
        .unwrap();
        assert_eq!(t.capabilities, Some(vec![Symbol::from("one")]));
        items[6] = Value::Array(Array::symbols(["a".into(), "b".into()]));
        let t: Target = decode_exact(Bytes::from(described_list(
            &Descriptor::Code(TARGET_CODE),
            &items,
            false,
        )))
        .unwrap();
        assert_eq!(t.capabilities.map(|c| c.len()), Some(2));
    }

    #[test]
    fn target_roundtrips_in_every_form() {
        let t = Target {
            address: Some("eh1/Partitions/1".into()),
            durable: TerminusDurability::Configuration,
            expiry_policy: TerminusExpiryPolicy::LinkDetach,
            timeout: 70000,
            dynamic: false,
            dynamic_node_properties: Some(vec![]),
            capabilities: Some(vec!["queue".into()]),
        };
        roundtrip(&t);
        alternatives(&t, TARGET_NAME);
        roundtrip(&Target::new("$cbs"));
        alternatives(&Target::new("$cbs"), TARGET_NAME);
    }

    fn all_states() -> Vec<DeliveryState> {
        vec![
            Received {
                section_number: 3,
                section_offset: 1 << 40,
            }
            .into(),
            Accepted.into(),
            Rejected::default().into(),
            DeliveryState::rejected(AmqpError::with_description(
                condition::LINK_MESSAGE_SIZE_EXCEEDED,
                "too big",
            )),
            Released.into(),
            Modified::default().into(),
            Modified {
                delivery_failed: true,
                undeliverable_here: true,
                message_annotations: Some(vec![("x-why".into(), Value::from("because"))]),
            }
            .into(),
        ]
    }

    #[test]
    fn delivery_states_roundtrip_in_every_form() {
        for s in all_states() {
            roundtrip(&s);
            alternatives(&s, s.name());
        }
        roundtrip(&Received {
            section_number: 0,
            section_offset: 0,
        });
        roundtrip(&Accepted);
        roundtrip(&Released);
        roundtrip(&Rejected::default());
        roundtrip(&Modified::default());
    }

    #[test]
    fn accepted_is_four_bytes() {
        assert_eq!(encode_to_vec(&Accepted), [0x00, 0x53, 0x24, 0x45]);
        assert_eq!(
            encode_to_vec(&DeliveryState::Released(Released)),
            [0x00, 0x53, 0x26, 0x45]
        );
    }

    #[test]
    fn terminal_and_helpers() {
        let states = all_states();
        assert!(!states[0].is_terminal());
        assert!(states[1..].iter().all(DeliveryState::is_terminal));
        assert!(states[1].is_accepted());
        assert_eq!(
            states[3].error().map(|e| e.condition.clone()),
            Some(condition::LINK_MESSAGE_SIZE_EXCEEDED)
        );
    }

    #[test]
    fn received_requires_both_fields() {
        let code = Descriptor::Code(RECEIVED_CODE);
        assert_eq!(
            decode_err::<DeliveryState>(described_list(&code, &[], false)),
            DecodeErrorKind::MissingField {
                composite: RECEIVED_NAME,
                field: "section-number"
            }
        );
        assert_eq!(
            decode_err::<Received>(described_list(&code, &[Value::Uint(1)], false)),
            DecodeErrorKind::MissingField {
                composite: RECEIVED_NAME,
                field: "section-offset"
            }
        );
    }

    #[test]
    fn unknown_delivery_state_is_typed_error() {
        // transactional-state (0x34) is not supported.
        let bytes = described_list(&Descriptor::Code(0x34), &[], false);
        assert!(matches!(
            decode_err::<DeliveryState>(bytes),
            DecodeErrorKind::UnexpectedDescriptor {
                expected: "delivery-state",
                ..
            }
        ));
        assert!(matches!(
            decode_err::<DeliveryState>(vec![0x45]),
            DecodeErrorKind::UnexpectedType { .. }
        ));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let bytes = encode_to_vec(&full_source());
        for i in 0..bytes.len() {
            for b in [0x00, 0x40, 0xff, 0xd0, 0xf0, 0xa3] {
                let mut m = bytes.clone();
                m[i] = b;
                let _ = decode_exact::<Source>(Bytes::from(m));
            }
        }
    }
}
