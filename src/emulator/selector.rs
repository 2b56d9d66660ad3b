//! Where a consumer's selector filter ([`crate::wire::selector::Selector`]) starts it in the
//! emulator's logs, whose offsets are decimal integers.

use super::store::Start;
pub use crate::wire::selector::SelectorError;
use crate::wire::selector::{Selector, Start as At};

/// Parses a selector expression into a start position. Tolerates missing or extra whitespace,
/// `>`, `>=` and `=`, quoted or unquoted values; an offset must be an integer.
pub fn parse_selector(expr: &str) -> Result<Start, SelectorError> {
    let Selector { start, inclusive } = Selector::parse(expr)?;
    Ok(match start {
        At::Earliest => Start::Earliest,
        At::Latest => Start::Latest,
        At::Offset(o) => match o.parse::<i64>() {
            Ok(-1) => Start::Earliest,
            Ok(n) => Start::Offset(n, inclusive),
            Err(_) => return Err(SelectorError(expr.to_owned())),
        },
        At::SequenceNumber(n) => Start::Sequence(n, inclusive),
        At::EnqueuedTime(ms) => Start::EnqueuedTime(ms, inclusive),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_the_sdks_send() {
        let p = |s| parse_selector(s).unwrap();
        assert_eq!(p("amqp.annotation.x-opt-offset > '-1'"), Start::Earliest);
        assert_eq!(p("amqp.annotation.x-opt-offset > '@latest'"), Start::Latest);
        assert_eq!(
            p("amqp.annotation.x-opt-offset >'12345'"),
            Start::Offset(12345, false)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-offset >= '7'"),
            Start::Offset(7, true)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number > '5'"),
            Start::Sequence(5, false)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number>=5"),
            Start::Sequence(5, true)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueued-time > 1700000000000"),
            Start::EnqueuedTime(1_700_000_000_000, false)
        );
        assert!(parse_selector("x > 1").is_err());
        assert!(parse_selector("amqp.annotation.x-opt-offset < '1'").is_err());
        assert!(parse_selector("amqp.annotation.x-opt-offset > 'abc'").is_err());
    }
}
