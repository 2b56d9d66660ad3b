//! `--from` positions (`beginning`, `end`, `seq:N`, `seq:>N`, `offset:X`, `time:T`, `-N`, ...)
//! and, for `-N`, where each partition starts.

use crate::timefmt;
use eventhubs::{EventPosition, PartitionProperties};

/// The valid forms, for `--help` and for the message about a bad one.
pub const FORMS: &str = "beginning, end, seq:N, seq:>N, offset:X, offset:>X, time:T, time:>T \
     (T: ISO 8601 or epoch ms) or -N (the last N events)";

/// A start position as written, before a partition's properties pin it down.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    Beginning,
    End,
    Sequence(i64, bool),
    Offset(String, bool),
    Time(i64, bool),
    Last(i64),
}

/// Parses `text`; `seq:`, `offset:` and `time:` are inclusive unless the value starts with `>`.
pub fn parse(text: &str) -> Result<Start, String> {
    let bad = || format!("bad --from {text:?}: expected {FORMS}");
    if let Some(n) = text.strip_prefix('-') {
        return match n.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Start::Last(n)),
            _ => Err(bad()),
        };
    }
    Ok(match text.split_once(':') {
        None if matches!(text, "beginning" | "earliest") => Start::Beginning,
        None if matches!(text, "end" | "latest") => Start::End,
        None => Start::Sequence(text.parse().map_err(|_| bad())?, true),
        Some((kind, value)) => {
            let (value, inclusive) = match value.strip_prefix('>') {
                Some(v) => (v, false),
                None => (value, true),
            };
            match kind {
                "seq" => Start::Sequence(value.parse().map_err(|_| bad())?, inclusive),
                "offset" if !value.is_empty() => Start::Offset(value.to_owned(), inclusive),
                "time" => Start::Time(timefmt::parse(value).ok_or_else(bad)?, inclusive),
                _ => return Err(bad()),
            }
        }
    })
}

impl Start {
    /// The position in every partition, unless it depends on the partition (`-N`).
    pub fn fixed(&self) -> Option<EventPosition> {
        Some(match self {
            Start::Beginning => EventPosition::earliest(),
            Start::End => EventPosition::latest(),
            Start::Sequence(n, inclusive) => {
                EventPosition::sequence_number(*n).inclusive(*inclusive)
            }
            Start::Offset(o, inclusive) => EventPosition::offset(o.clone()).inclusive(*inclusive),
            Start::Time(ms, inclusive) => {
                EventPosition::enqueued_time_millis(*ms).inclusive(*inclusive)
            }
            Start::Last(_) => return None,
        })
    }
}

/// Where partition `p` is read from (as of its properties read before reading starts).
pub fn resolve(from: &Start, p: &PartitionProperties) -> EventPosition {
    match from {
        Start::Last(n) if !p.is_empty => {
            let first = p
                .last_enqueued_sequence_number
                .saturating_sub(n.saturating_sub(1))
                .max(p.beginning_sequence_number);
            EventPosition::sequence_number(first).inclusive(true)
        }
        // An empty partition: whatever comes first.
        Start::Last(_) => EventPosition::earliest(),
        other => other.fixed().unwrap_or_else(EventPosition::earliest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("beginning"), Ok(Start::Beginning));
        assert_eq!(parse("latest"), Ok(Start::End));
        assert_eq!(parse("seq:5"), Ok(Start::Sequence(5, true)));
        assert_eq!(parse("seq:>5"), Ok(Start::Sequence(5, false)));
        assert_eq!(parse("7"), Ok(Start::Sequence(7, true)));
        assert_eq!(parse("offset:>40"), Ok(Start::Offset("40".into(), false)));
        assert_eq!(parse("time:0"), Ok(Start::Time(0, true)));
        assert_eq!(parse("-3"), Ok(Start::Last(3)));
        for bad in [
            "seq:abc",
            "-0",
            "--1",
            "offset:",
            "time:>soon",
            "middle",
            "x:1",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("--from") && e.contains("seq:>N"), "{e}");
        }
    }
}
