//! `-H KEY[:TYPE]=VALUE`: an application property with the AMQP type it is sent as, so that a
//! consumer that reads `n` as a long gets a long and not the string "5".

use crate::timefmt;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use eventhubs::amqp::codec::{Symbol, Timestamp, Uuid};
use eventhubs::AmqpValue;

/// The types `-H` takes, for `--help` and for the message about a bad one.
pub const TYPES: &str = "string (the default), symbol, bool, i8, i16, i32, i64, u8, u16, u32, \
     u64, f32, f64, timestamp (ISO 8601 or epoch ms), uuid, binary (base64)";

/// Parses `KEY=VALUE` (a string) or `KEY:TYPE=VALUE`. The key ends at the first `=`; in a key
/// with a `:`, what follows the last `:` is the type (so `a:b:string=c` is key `a:b`).
pub fn parse(h: &str) -> Result<(String, AmqpValue), String> {
    let usage = |why: &str| format!("-H {h:?}: {why}; expected KEY=VALUE or KEY:TYPE=VALUE");
    let (key, value) = h
        .split_once('=')
        .ok_or_else(|| usage("no '=' before the value"))?;
    let (key, ty) = key.rsplit_once(':').unwrap_or((key, "string"));
    if key.is_empty() {
        return Err(usage("the KEY is empty"));
    }
    let bad = |what: &str| format!("-H {h:?}: {value:?} is not {what}");
    fn num<T: std::str::FromStr>(
        v: &str,
        bad: impl Fn(&str) -> String,
        what: &str,
    ) -> Result<T, String> {
        v.trim().parse().map_err(|_| bad(what))
    }
    let v = match ty.to_ascii_lowercase().as_str() {
        "string" | "str" => AmqpValue::from(value),
        "symbol" => AmqpValue::Symbol(Symbol::from(value)),
        "bool" | "boolean" => AmqpValue::Bool(match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad("true or false")),
        }),
        "i8" | "byte" => AmqpValue::Byte(num(value, bad, "an i8")?),
        "i16" | "short" => AmqpValue::Short(num(value, bad, "an i16")?),
        "i32" | "int" => AmqpValue::Int(num(value, bad, "an i32")?),
        "i64" | "long" => AmqpValue::Long(num(value, bad, "an i64")?),
        "u8" | "ubyte" => AmqpValue::Ubyte(num(value, bad, "a u8")?),
        "u16" | "ushort" => AmqpValue::Ushort(num(value, bad, "a u16")?),
        "u32" | "uint" => AmqpValue::Uint(num(value, bad, "a u32")?),
        "u64" | "ulong" => AmqpValue::Ulong(num(value, bad, "a u64")?),
        "f32" | "float" => AmqpValue::Float(num(value, bad, "an f32")?),
        "f64" | "double" => AmqpValue::Double(num(value, bad, "an f64")?),
        "timestamp" => AmqpValue::Timestamp(Timestamp(
            timefmt::parse(value).ok_or_else(|| bad("ISO 8601 or epoch milliseconds"))?,
        )),
        "uuid" => AmqpValue::Uuid(Uuid(
            uuid(value).ok_or_else(|| bad("a UUID (8-4-4-4-12 hex digits)"))?,
        )),
        "binary" => AmqpValue::Binary(STANDARD.decode(value).map_err(|_| bad("base64"))?.into()),
        other => return Err(format!("-H {h:?}: unknown type {other:?}; types: {TYPES}")),
    };
    Ok((key.to_owned(), v))
}

/// The 16 bytes of a UUID written as 32 hex digits, with or without the dashes in the usual
/// places.
fn uuid(text: &str) -> Option<[u8; 16]> {
    let dashes: Vec<usize> = text.match_indices('-').map(|(i, _)| i).collect();
    if !(dashes.is_empty() || dashes == [8, 13, 18, 23]) {
        return None;
    }
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16);
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        let p = |h: &str| parse(h).unwrap();
        assert_eq!(p("a=b"), ("a".into(), AmqpValue::from("b")));
        assert_eq!(
            p("a=x=y").1,
            AmqpValue::from("x=y"),
            "the key ends at the first ="
        );
        assert_eq!(p("empty=").1, AmqpValue::from(""));
        assert_eq!(p("n:i64=5"), ("n".into(), AmqpValue::Long(5)));
        assert_eq!(p("n:LONG=-5").1, AmqpValue::Long(-5));
        assert_eq!(p("ok:bool=true").1, AmqpValue::Bool(true));
        assert_eq!(p("b:u8=255").1, AmqpValue::Ubyte(255));
        assert_eq!(p("f:f64=1.5").1, AmqpValue::Double(1.5));
        assert_eq!(p("s:symbol=x").1, AmqpValue::Symbol(Symbol::from("x")));
        assert_eq!(
            p("t:timestamp=1000").1,
            AmqpValue::Timestamp(Timestamp(1000))
        );
        assert_eq!(
            p("t:timestamp=1970-01-01T00:00:01Z").1,
            AmqpValue::Timestamp(Timestamp(1000))
        );
        assert_eq!(p("bin:binary=AAE=").1, AmqpValue::Binary(vec![0, 1].into()));
        let mut id = [0u8; 16];
        id[0] = 0x12;
        id[15] = 0xff;
        assert_eq!(
            p("id:uuid=12000000-0000-0000-0000-0000000000ff").1,
            AmqpValue::Uuid(Uuid(id))
        );
        assert_eq!(
            p("id:uuid=120000000000000000000000000000ff").1,
            AmqpValue::Uuid(Uuid(id))
        );
        assert_eq!(p("a:b:string=c"), ("a:b".into(), AmqpValue::from("c")));
        for (bad, needle) in [
            ("novalue", "KEY:TYPE=VALUE"),
            ("=v", "KEY is empty"),
            (":i64=5", "KEY is empty"),
            ("n:i46=5", "unknown type"),
            ("a:b=c", "types: string"),
            ("n:i64=five", "not an i64"),
            ("n:u8=256", "not a u8"),
            ("ok:bool=yes", "true or false"),
            ("id:uuid=12-34", "UUID"),
            ("id:uuid=1200000-00000-0000-0000-0000000000ff", "UUID"),
            ("t:timestamp=soon", "ISO 8601"),
            ("bin:binary=***", "base64"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
