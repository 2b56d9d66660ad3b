//! Encodes an Event Hubs-style message (message annotations, application properties and a
//! data section) as AMQP 1.0 values, prints the bytes, then decodes them again and prints the
//! values.
//!
//! Run with `cargo run --release --example codec_demo`.

use bytes::Bytes;
use eventhubs::amqp::codec::{Decoder, Descriptor, Encode, Symbol, Timestamp, Value};

fn section(code: u64, value: Value) -> Value {
    Value::described(Descriptor::Code(code), value)
}

fn sym(s: &'static str) -> Value {
    Value::Symbol(Symbol::from_static(s))
}

fn hex_dump(bytes: &[u8]) {
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = line
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        println!("  {:04x}  {:<48} {text}", i * 16, hex.join(" "));
    }
}

fn main() {
    let body = Bytes::from_static(br#"{"deviceId":"device-42","temperature":21.5}"#);
    let message = [
        // message-annotations, as the service stamps them on a received event
        section(
            0x72,
            Value::Map(vec![
                (sym("x-opt-sequence-number"), Value::Long(1_024)),
                (sym("x-opt-offset"), Value::from("8589934592")),
                (
                    sym("x-opt-enqueued-time"),
                    Value::Timestamp(Timestamp(1_700_000_000_123)),
                ),
                (sym("x-opt-partition-key"), Value::from("device-42")),
            ]),
        ),
        // application-properties: string keys, simple values
        section(
            0x74,
            Value::Map(vec![
                (Value::from("unit"), Value::from("celsius")),
                (Value::from("count"), Value::Int(3)),
            ]),
        ),
        // one data section holding the event body
        section(0x75, Value::Binary(body)),
    ];

    let size: usize = message.iter().map(Encode::encoded_len).sum();
    let mut buf = Vec::with_capacity(size);
    for s in &message {
        s.encode(&mut buf);
    }
    assert_eq!(buf.len(), size, "encoded_len is exact");
    println!(
        "encoded {} sections into {} bytes:",
        message.len(),
        buf.len()
    );
    hex_dump(&buf);

    let frame = Bytes::from(buf);
    let mut decoder = Decoder::new(frame.clone());
    println!("\ndecoded:");
    while !decoder.is_empty() {
        let at = decoder.offset();
        match decoder.read_value() {
            Ok(value) => {
                println!("  @{at}: {value:?}");
                if let Value::Described(d) = &value {
                    if let Value::Binary(b) = &d.value {
                        let start = b.as_ptr() as usize - frame.as_ptr() as usize;
                        println!(
                            "        body: {:?} (a zero-copy slice at offset {start} of the input)",
                            String::from_utf8_lossy(b)
                        );
                    }
                }
            }
            Err(e) => {
                eprintln!("decode failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
