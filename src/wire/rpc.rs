//! What `$cbs` and `$management` requests and replies share: the application-property keys
//! that name the operation and its entity, and the reply's status (`status-code` and
//! `status-description`).

use crate::amqp::codec::{Str, Value};
use crate::amqp::types::message::{ApplicationProperties, Message, PropertyMap};

/// Request application property: the operation (`put-token`, `READ`).
pub const OPERATION: &str = "operation";
/// Request application property: the entity (CBS: the token audience; management: the hub).
pub const NAME: &str = "name";
/// Request application property: the token type (CBS) or the entity type (management).
pub const TYPE: &str = "type";

/// Application property: the HTTP-like status code (an AMQP int).
pub const STATUS_CODE: &str = "status-code";
/// Application property: text explaining the status.
pub const STATUS_DESCRIPTION: &str = "status-description";
/// The camel-case spelling of [`STATUS_CODE`] some services use.
pub const STATUS_CODE_CAMEL: &str = "statusCode";
/// The camel-case spelling of [`STATUS_DESCRIPTION`] some services use.
pub const STATUS_DESCRIPTION_CAMEL: &str = "statusDescription";

/// A reply's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// 200 for success; 400, 401, 404, ... as in HTTP. 0 when the reply had none.
    pub code: i64,
    /// Human-readable text; empty when the reply had none.
    pub description: String,
}

impl Status {
    /// A status with `code` and `description`.
    pub fn new(code: i64, description: impl Into<String>) -> Status {
        Status {
            code,
            description: description.into(),
        }
    }

    /// True for a 2xx code.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Reads the status of `reply`, in either spelling.
    pub fn from_message(reply: &Message) -> Status {
        let get = |a: &str, b: &str| {
            reply
                .application_property(a)
                .or_else(|| reply.application_property(b))
        };
        let code = get(STATUS_CODE, STATUS_CODE_CAMEL)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let description = get(STATUS_DESCRIPTION, STATUS_DESCRIPTION_CAMEL)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Status { code, description }
    }

    /// Sets `reply`'s application properties to this status (the code as an int, which strict
    /// clients require, when it fits).
    pub fn write_to(&self, reply: &mut Message) {
        let code = match i32::try_from(self.code) {
            Ok(c) => Value::Int(c),
            Err(_) => Value::Long(self.code),
        };
        let mut app = PropertyMap::new();
        app.insert(STATUS_CODE, code);
        app.insert(
            STATUS_DESCRIPTION,
            Value::String(Str::from(self.description.as_str())),
        );
        reply.application_properties = Some(ApplicationProperties(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{encode_to_vec, Encode};
    use bytes::Bytes;

    #[test]
    fn status_round_trips_with_an_int_code() {
        let mut m = Message::default();
        Status::new(404, "no event hub named \"x\"").write_to(&mut m);
        assert_eq!(m.application_property(STATUS_CODE), Some(&Value::Int(404)));
        let back = Message::decode(Bytes::from(encode_to_vec(&m))).unwrap();
        let s = Status::from_message(&back);
        assert_eq!(s, Status::new(404, "no event hub named \"x\""));
        assert!(!s.is_success());
        assert!(Status::new(202, "").is_success());
        assert!(m.encoded_len() > 0);
    }

    #[test]
    fn camel_case_and_missing_status() {
        let mut m = Message::default();
        let p = m.application_properties_mut();
        p.insert(STATUS_CODE_CAMEL, Value::Long(200));
        p.insert(STATUS_DESCRIPTION_CAMEL, "OK");
        assert_eq!(Status::from_message(&m), Status::new(200, "OK"));
        assert_eq!(
            Status::from_message(&Message::default()),
            Status::new(0, "")
        );
    }
}
