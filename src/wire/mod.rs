//! The Event Hubs vocabulary on the wire, written once and used by both the client and the
//! emulator: node addresses, CBS and management requests and replies, annotation keys, link
//! properties and capabilities, the batch format, the selector filter and the
//! `com.microsoft:*` error conditions.
//!
//! The AMQP layer below knows no Event Hubs word; everything Event Hubs adds to AMQP 1.0 is
//! named here, each with its encoding and its decoding, so a change to the protocol is one
//! change for both sides.

pub mod address;
pub mod annotations;
pub mod batch;
pub mod cbs;
pub mod condition;
pub mod idempotent;
pub mod link_props;
pub mod management;
pub mod partition_key;
pub mod rpc;
pub mod selector;

use crate::amqp::codec::Value;

/// Text of a value that a peer may send as string, symbol or (Python) UTF-8 binary.
pub(crate) fn lenient_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.as_str().to_owned()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        Value::Binary(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}
