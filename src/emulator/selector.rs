//! The Event Hubs selector filter: `amqp.annotation.x-opt-offset > '123'` and friends.

use super::store::Start;

/// Why a selector was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported selector filter {0:?}")]
pub struct SelectorError(pub String);

/// Parses a selector expression into a start position. Tolerates missing or extra whitespace,
/// `>`, `>=` and `=`, quoted or unquoted values.
pub fn parse_selector(expr: &str) -> Result<Start, SelectorError> {
    let bad = || SelectorError(expr.to_owned());
    let e = expr.trim();
    let rest = e.strip_prefix("amqp.annotation.").ok_or_else(bad)?;
    let (field, rest) = [
        "x-opt-offset",
        "x-opt-sequence-number",
        "x-opt-enqueued-time",
    ]
    .iter()
    .find_map(|f| rest.strip_prefix(f).map(|r| (*f, r)))
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
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    if field == "x-opt-offset" && value == "@latest" {
        return Ok(Start::Latest);
    }
    let n: i64 = value.parse().map_err(|_| bad())?;
    Ok(match field {
        "x-opt-offset" if n == -1 => Start::Earliest,
        "x-opt-offset" => Start::Offset(n, inclusive),
        "x-opt-sequence-number" => Start::Sequence(n, inclusive),
        _ => Start::EnqueuedTime(n, inclusive),
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
