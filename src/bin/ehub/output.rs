//! How `ehub receive` writes each event on stdout: a kcat-style `--format` string or `--json`
//! lines with typed properties.

use crate::timefmt;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use eventhubs::amqp::types::message::{AnnotationKey, MessageId};
use eventhubs::{AmqpValue, EventData};
use serde_json::{json, Map, Value as Json};

/// The `--format` directives, for `--help`.
pub const DIRECTIVES: &str = "%p partition, %s sequence number, %o offset, %t enqueued time \
     (RFC 3339 UTC), %T enqueued time (epoch ms), %k partition key, %b body, %S body size, \
     %h properties (k=v,...), %c content type, %m message id, %% a %; escapes \\n \\t \\\\";

/// One piece of a parsed `--format` string.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(Vec<u8>),
    Field(char),
}

/// A parsed `--format` string.
#[derive(Debug)]
pub struct Format(Vec<Piece>);

impl Format {
    /// `%b\n`: the body and a newline, the default.
    pub fn body_line() -> Format {
        Format(vec![Piece::Field('b'), Piece::Text(vec![b'\n'])])
    }

    /// Parses `spec`, refusing unknown directives so that a typo does not print silently.
    pub fn parse(spec: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('%') => text.push(b'%'),
                    Some(f) if "psotTkbShcm".contains(f) => {
                        if !text.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut text)));
                        }
                        pieces.push(Piece::Field(f));
                    }
                    other => {
                        return Err(format!(
                            "bad --format {spec:?}: unknown directive %{}; known: {DIRECTIVES}",
                            other.map(String::from).unwrap_or_default()
                        ))
                    }
                },
                '\\' => match chars.next() {
                    Some('n') => text.push(b'\n'),
                    Some('t') => text.push(b'\t'),
                    Some('r') => text.push(b'\r'),
                    Some('0') => text.push(0),
                    Some('\\') => text.push(b'\\'),
                    Some(other) => {
                        text.push(b'\\');
                        text.extend(other.to_string().as_bytes());
                    }
                    None => text.push(b'\\'),
                },
                c => text.extend(c.to_string().as_bytes()),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format(pieces))
    }

    /// Appends `event`, read from `partition`, to `out`.
    pub fn write(&self, partition: &str, event: &EventData, out: &mut Vec<u8>) {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Field(f) => field(*f, partition, event, out),
            }
        }
    }
}

fn field(f: char, partition: &str, e: &EventData, out: &mut Vec<u8>) {
    let s = match f {
        'p' => partition.to_owned(),
        's' => e
            .sequence_number()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        'o' => e.offset().unwrap_or_default().to_owned(),
        't' => e
            .enqueued_time_millis()
            .map(timefmt::rfc3339)
            .unwrap_or_default(),
        'T' => e
            .enqueued_time_millis()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        'k' => e.partition_key().unwrap_or_default().to_owned(),
        'b' => {
            out.extend_from_slice(e.body());
            return;
        }
        'S' => e.body().len().to_string(),
        'h' => e
            .properties()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(","),
        'c' => e.content_type().unwrap_or_default().to_owned(),
        'm' => e.message_id().map(message_id).unwrap_or_default(),
        _ => String::new(),
    };
    out.extend_from_slice(s.as_bytes());
}

/// A property value as text, for `%h`.
fn plain(v: &AmqpValue) -> String {
    match typed(v).get("value") {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// An AMQP value as `{"type": ..., "value": ...}`, so that `long 5` and `string "5"` differ.
pub fn typed(v: &AmqpValue) -> Json {
    use AmqpValue as V;
    let (ty, value) = match v {
        V::Null => ("null", Json::Null),
        V::Bool(b) => ("boolean", json!(b)),
        V::Ubyte(n) => ("ubyte", json!(n)),
        V::Ushort(n) => ("ushort", json!(n)),
        V::Uint(n) => ("uint", json!(n)),
        V::Ulong(n) => ("ulong", json!(n)),
        V::Byte(n) => ("byte", json!(n)),
        V::Short(n) => ("short", json!(n)),
        V::Int(n) => ("int", json!(n)),
        V::Long(n) => ("long", json!(n)),
        V::Float(n) => ("float", json!(n)),
        V::Double(n) => ("double", json!(n)),
        V::Decimal32(b) => ("decimal32", json!(hex(b))),
        V::Decimal64(b) => ("decimal64", json!(hex(b))),
        V::Decimal128(b) => ("decimal128", json!(hex(b))),
        V::Char(c) => ("char", json!(c.to_string())),
        V::Timestamp(t) => ("timestamp", json!(timefmt::rfc3339(t.millis()))),
        V::Uuid(u) => ("uuid", json!(uuid(&u.0))),
        V::Binary(b) => ("binary", json!(STANDARD.encode(b))),
        V::String(s) => ("string", json!(s.as_str())),
        V::Symbol(s) => ("symbol", json!(s.as_str())),
        V::List(items) => ("list", Json::Array(items.iter().map(typed).collect())),
        V::Map(pairs) => (
            "map",
            Json::Array(
                pairs
                    .iter()
                    .map(|(k, v)| json!([typed(k), typed(v)]))
                    .collect(),
            ),
        ),
        V::Array(_) => ("array", json!(format!("{v:?}"))),
        V::Described(_) => ("described", json!(format!("{v:?}"))),
    };
    json!({ "type": ty, "value": value })
}

fn message_id(m: &MessageId) -> String {
    match m {
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid(&u.0),
        MessageId::Binary(b) => STANDARD.encode(b),
        MessageId::String(s) => s.as_str().to_owned(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn uuid(b: &[u8; 16]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One `--json` line (without the newline).
pub fn json_line(partition: &str, e: &EventData) -> Json {
    let (body, encoding) = match std::str::from_utf8(e.body()) {
        Ok(s) => (json!(s), "utf-8"),
        Err(_) => (json!(STANDARD.encode(e.body())), "base64"),
    };
    let properties: Map<String, Json> = e
        .properties()
        .map(|(k, v)| (k.to_owned(), typed(v)))
        .collect();
    let system: Map<String, Json> = e
        .system_properties()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    let key = match k {
                        AnnotationKey::Symbol(s) => s.as_str().to_owned(),
                        AnnotationKey::Ulong(n) => n.to_string(),
                    };
                    (key, typed(v))
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "partition": partition,
        "sequence_number": e.sequence_number(),
        "offset": e.offset(),
        "enqueued_time": e.enqueued_time_millis().map(timefmt::rfc3339),
        "partition_key": e.partition_key(),
        "content_type": e.content_type(),
        "body": body,
        "body_encoding": encoding,
        "properties": properties,
        "system_properties": system,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let f = Format::parse("%p:%s %b\\n%%").unwrap();
        let mut out = Vec::new();
        f.write(
            "3",
            &EventData::new("hi").with_property("a", 1i64),
            &mut out,
        );
        assert_eq!(out, b"3: hi\n%");
        let e = Format::parse("%q").unwrap_err();
        assert!(e.contains("%q") && e.contains("%p partition"), "{e}");
        let mut out = Vec::new();
        Format::parse("%h").unwrap().write(
            "0",
            &EventData::new("x")
                .with_property("a", 1i64)
                .with_property("b", "c"),
            &mut out,
        );
        assert_eq!(out, b"a=1,b=c");
    }
}
