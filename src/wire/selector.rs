//! The start-position filter of a receiver: a source filter-set entry
//! `apache.org:selector-filter:string` whose value is an SQL-like expression over the event
//! annotations, e.g. `amqp.annotation.x-opt-sequence-number > '41'`.

use super::annotations::{ENQUEUED_TIME, OFFSET, SEQUENCE_NUMBER};
use crate::amqp::codec::{Descriptor, Str, Symbol, Value};
use crate::amqp::types::messaging::Source;

/// Key of the selector filter in a source's filter set (also its symbolic descriptor).
pub const FILTER_KEY: Symbol = Symbol::from_static("apache.org:selector-filter:string");
/// Numeric descriptor of the selector filter value (Apache domain `0x468C`, id 4).
pub const FILTER_CODE: u64 = 0x0000_468C_0000_0004;
/// What the expression's annotation names start with.
pub const ANNOTATION_PREFIX: &str = "amqp.annotation.";
/// The offset value that means "the first event retained".
pub const EARLIEST_OFFSET: &str = "-1";
/// The offset value that means "only events enqueued from now on".
pub const LATEST_OFFSET: &str = "@latest";

/// Where a selector starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first event retained (offset `-1`).
    Earliest,
    /// Only events enqueued after the attach (offset `@latest`).
    Latest,
    /// At an opaque offset.
    Offset(String),
    /// At a sequence number.
    SequenceNumber(i64),
    /// At an enqueued time, in ms since the Unix epoch.
    EnqueuedTime(i64),
}

/// A start position as the selector expresses it: where, and whether the named event is
/// included (`>=`) or not (`>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// Where the selector starts.
    pub start: Start,
    /// True for `>=` (or `=`), false for `>`.
    pub inclusive: bool,
}

/// Why an expression was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported selector filter {0:?}")]
pub struct SelectorError(pub String);

impl Selector {
    /// The expression, with the value quoted in single quotes (a quote in an offset doubled).
    pub fn expression(&self) -> String {
        let op = if self.inclusive { ">=" } else { ">" };
        let (field, value) = match &self.start {
            Start::Earliest => (OFFSET, EARLIEST_OFFSET.to_owned()),
            Start::Latest => (OFFSET, LATEST_OFFSET.to_owned()),
            Start::Offset(o) => (OFFSET, o.replace('\'', "''")),
            Start::SequenceNumber(n) => (SEQUENCE_NUMBER, n.to_string()),
            Start::EnqueuedTime(ms) => (ENQUEUED_TIME, ms.to_string()),
        };
        format!("{ANNOTATION_PREFIX}{field} {op} '{value}'")
    }

    /// Parses an expression the way the SDKs write them: missing or extra whitespace, `>`,
    /// `>=` and `=`, quoted or unquoted values. Offsets stay opaque text; sequence numbers and
    /// times must be integers.
    pub fn parse(expr: &str) -> Result<Selector, SelectorError> {
        let bad = || SelectorError(expr.to_owned());
        let rest = expr
            .trim()
            .strip_prefix(ANNOTATION_PREFIX)
            .ok_or_else(bad)?;
        let (field, rest) = [OFFSET, SEQUENCE_NUMBER, ENQUEUED_TIME]
            .into_iter()
            .find_map(|f| rest.strip_prefix(f).map(|r| (f, r)))
            .ok_or_else(bad)?;
        let rest = rest.trim_start();
        let (inclusive, rest) = if let Some(r) = rest.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (false, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (true, r)
        } else {
            return Err(bad());
        };
        let value = rest.trim();
        let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Some(quoted) => quoted.replace("''", "'"),
            None => value.to_owned(),
        };
        let start = if field == OFFSET {
            match value.as_str() {
                EARLIEST_OFFSET => Start::Earliest,
                LATEST_OFFSET => Start::Latest,
                _ => Start::Offset(value),
            }
        } else {
            let n: i64 = value.parse().map_err(|_| bad())?;
            if field == SEQUENCE_NUMBER {
                Start::SequenceNumber(n)
            } else {
                Start::EnqueuedTime(n)
            }
        };
        Ok(Selector { start, inclusive })
    }

    /// This selector set on `source` (replacing any selector it had).
    pub fn apply(&self, source: Source) -> Source {
        with_filter(source, self.expression())
    }

    /// The selector on `source`: `None` without one, an error when it cannot be read.
    pub fn from_source(source: &Source) -> Option<Result<Selector, SelectorError>> {
        filter_expression(source).map(Selector::parse)
    }
}

/// A filter-set entry holding `expression` (numeric descriptor, as the Go and Rust SDKs send).
pub fn filter_entry(expression: impl Into<Str>) -> (Symbol, Value) {
    (
        FILTER_KEY,
        Value::described(
            Descriptor::Code(FILTER_CODE),
            Value::String(expression.into()),
        ),
    )
}

/// `source` with its selector filter set to `expression` (any other filters kept, one
/// selector entry at most).
pub fn with_filter(mut source: Source, expression: impl Into<Str>) -> Source {
    let (key, value) = filter_entry(expression);
    let filters = source.filter.get_or_insert_with(Vec::new);
    match filters.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => filters.push((key, value)),
    }
    source
}

/// The selector expression on `source`, in either descriptor form.
pub fn filter_expression(source: &Source) -> Option<&str> {
    let value = source
        .filter
        .as_ref()?
        .iter()
        .find(|(k, _)| *k == FILTER_KEY)
        .map(|(_, v)| v)?;
    match value {
        Value::Described(d) if d.descriptor.matches(FILTER_CODE, FILTER_KEY.as_str()) => {
            match &d.value {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec};
    use crate::position::EventPosition;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sel(start: Start, inclusive: bool) -> Selector {
        Selector { start, inclusive }
    }

    #[test]
    fn expressions_as_the_sdks_write_them() {
        let cases = [
            (
                sel(Start::Earliest, false),
                "amqp.annotation.x-opt-offset > '-1'",
            ),
            (
                sel(Start::Latest, false),
                "amqp.annotation.x-opt-offset > '@latest'",
            ),
            (
                sel(Start::Offset("4096".into()), true),
                "amqp.annotation.x-opt-offset >= '4096'",
            ),
            (
                sel(Start::SequenceNumber(41), false),
                "amqp.annotation.x-opt-sequence-number > '41'",
            ),
            (
                sel(Start::EnqueuedTime(1234), true),
                "amqp.annotation.x-opt-enqueued-time >= '1234'",
            ),
            (
                sel(Start::Offset("a'b".into()), false),
                "amqp.annotation.x-opt-offset > 'a''b'",
            ),
        ];
        for (s, text) in cases {
            assert_eq!(s.expression(), text);
            assert_eq!(Selector::parse(text), Ok(s));
        }
    }

    #[test]
    fn lenient_forms_parse() {
        let p = |s| Selector::parse(s).unwrap();
        assert_eq!(
            p("amqp.annotation.x-opt-offset >'12345'"),
            sel(Start::Offset("12345".into()), false)
        );
        assert_eq!(
            p("  amqp.annotation.x-opt-sequence-number>=5 "),
            sel(Start::SequenceNumber(5), true)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number = '5'"),
            sel(Start::SequenceNumber(5), true)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueued-time > 1700000000000"),
            sel(Start::EnqueuedTime(1_700_000_000_000), false)
        );
        for bad in [
            "x > 1",
            "amqp.annotation.x-opt-offset < '1'",
            "amqp.annotation.x-opt-sequence-number > 'abc'",
            "amqp.annotation.x-opt-enqueued-time > ",
            "amqp.annotation.x-opt-publisher > '1'",
        ] {
            assert_eq!(Selector::parse(bad), Err(SelectorError(bad.to_owned())));
        }
    }

    #[test]
    fn filter_has_the_event_hubs_wire_form() {
        let s = with_filter(Source::new("eh/Partitions/0"), "x > '1'");
        let bytes = encode_to_vec(&s);
        let key = b"\xa3\x21apache.org:selector-filter:string";
        let value = b"\x00\x80\x00\x00\x46\x8c\x00\x00\x00\x04\xa1\x07x > '1'";
        let entry: Vec<u8> = key.iter().chain(value.iter()).copied().collect();
        assert!(bytes.windows(entry.len()).any(|w| w == entry));
        assert_eq!(filter_expression(&s), Some("x > '1'"));
        // Replacing keeps one entry.
        let s = with_filter(s, "y >= '2'");
        assert_eq!(s.filter.as_ref().map(Vec::len), Some(1));
        assert_eq!(filter_expression(&s), Some("y >= '2'"));
    }

    #[test]
    fn symbolic_descriptor_is_read() {
        let s = Source {
            filter: Some(vec![(
                FILTER_KEY,
                Value::described(
                    Descriptor::Symbol(FILTER_KEY),
                    Value::from("amqp.annotation.x-opt-sequence-number > '5'"),
                ),
            )]),
            ..Source::default()
        };
        let back: Source = decode_exact(Bytes::from(encode_to_vec(&s))).unwrap();
        assert_eq!(
            Selector::from_source(&back),
            Some(Ok(sel(Start::SequenceNumber(5), false)))
        );
        assert_eq!(filter_expression(&Source::default()), None);
        assert_eq!(Selector::from_source(&Source::default()), None);
    }

    #[test]
    fn apply_then_read_from_the_source() {
        let s = sel(Start::EnqueuedTime(-5), true);
        let source = s.apply(Source::new("eh1/ConsumerGroups/$default/Partitions/0"));
        let back: Source = decode_exact(Bytes::from(encode_to_vec(&source))).unwrap();
        assert_eq!(Selector::from_source(&back), Some(Ok(s)));
    }

    #[test]
    fn positions_as_selectors() {
        assert_eq!(
            EventPosition::earliest().selector(),
            "amqp.annotation.x-opt-offset > '-1'"
        );
        assert_eq!(
            EventPosition::latest().selector(),
            "amqp.annotation.x-opt-offset > '@latest'"
        );
        assert_eq!(EventPosition::offset("-1"), EventPosition::earliest());
        assert_eq!(EventPosition::offset("@latest"), EventPosition::latest());
        assert_eq!(
            EventPosition::offset("4096").inclusive(true).selector(),
            "amqp.annotation.x-opt-offset >= '4096'"
        );
        assert_eq!(
            EventPosition::sequence_number(41).selector(),
            "amqp.annotation.x-opt-sequence-number > '41'"
        );
        assert_eq!(
            EventPosition::enqueued_time(UNIX_EPOCH + Duration::from_millis(1234))
                .inclusive(true)
                .selector(),
            "amqp.annotation.x-opt-enqueued-time >= '1234'"
        );
        assert_eq!(
            EventPosition::from(sel(Start::Offset("-1".into()), true)),
            EventPosition::earliest().inclusive(true)
        );
    }

    fn position() -> impl Strategy<Value = EventPosition> {
        prop_oneof![
            Just(EventPosition::earliest()),
            Just(EventPosition::latest()),
            "[ -~]{0,24}".prop_map(EventPosition::offset),
            any::<i64>().prop_map(EventPosition::sequence_number),
            any::<i64>().prop_map(EventPosition::enqueued_time_millis),
        ]
        .prop_flat_map(|p| any::<bool>().prop_map(move |i| p.clone().inclusive(i)))
    }

    proptest! {
        #[test]
        fn position_to_filter_to_parsed_is_the_same_position(p in position()) {
            let source = p.selector_filter().apply(Source::new("eh1/ConsumerGroups/$default/Partitions/0"));
            let wire: Source = decode_exact(Bytes::from(encode_to_vec(&source))).unwrap();
            let parsed = Selector::from_source(&wire).expect("a filter").expect("parses");
            prop_assert_eq!(EventPosition::from(parsed), p);
        }
    }
}
