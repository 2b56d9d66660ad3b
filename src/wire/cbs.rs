//! The `$cbs` put-token request: a token for an audience, put before the links that need it.

use super::lenient_text;
use super::rpc::{NAME, OPERATION, TYPE};
use crate::amqp::codec::Value;
use crate::amqp::types::message::{Body, Message};

/// The one operation `$cbs` performs.
pub const PUT_TOKEN: &str = "put-token";
/// Request application property: when the token expires (informational).
pub const EXPIRATION: &str = "expiration";
/// The token type of Shared Access Signature tokens.
pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";
/// The token type of Azure AD (JSON Web) tokens.
pub const JWT_TOKEN_TYPE: &str = "jwt";

/// A put-token request as it travels: the token in an `amqp-value` body, the rest in
/// application properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutTokenRequest {
    /// [`SAS_TOKEN_TYPE`], [`JWT_TOKEN_TYPE`], or what the peer sent.
    pub token_type: String,
    /// The audience the token is for (the `name` property).
    pub audience: String,
    /// Expiry in seconds since the Unix epoch, when the request says.
    pub expiration: Option<u64>,
    /// The token; `None` when the body is not a string (or UTF-8 binary).
    pub token: Option<String>,
}

/// Why a message is not a put-token request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the $cbs node only supports operation put-token")]
pub struct NotPutToken;

impl PutTokenRequest {
    /// A request to put `token` of `token_type` for `audience`, expiring at `expiration`.
    pub fn new(
        token_type: impl Into<String>,
        audience: impl Into<String>,
        expiration: u64,
        token: impl Into<String>,
    ) -> PutTokenRequest {
        PutTokenRequest {
            token_type: token_type.into(),
            audience: audience.into(),
            expiration: Some(expiration),
            token: Some(token.into()),
        }
    }

    /// The request message (without the message id and reply-to the link adds). The
    /// expiration goes as Unix seconds in a string, as the Go client sends it.
    pub fn to_message(&self) -> Message {
        let mut m = match &self.token {
            Some(t) => Message::with_value(t.as_str()),
            None => Message::default(),
        };
        let p = m.application_properties_mut();
        p.insert(OPERATION, PUT_TOKEN);
        p.insert(TYPE, self.token_type.as_str());
        p.insert(NAME, self.audience.as_str());
        if let Some(e) = self.expiration {
            p.insert(EXPIRATION, e.to_string());
        }
        m
    }

    /// Reads a request, accepting what the SDKs send: text as string, symbol or binary, and
    /// the expiration as seconds (string or integer) or a timestamp.
    pub fn from_message(m: &Message) -> Result<PutTokenRequest, NotPutToken> {
        let text = |k: &str| m.application_property(k).and_then(lenient_text);
        if text(OPERATION).as_deref() != Some(PUT_TOKEN) {
            return Err(NotPutToken);
        }
        let expiration = m.application_property(EXPIRATION).and_then(|v| match v {
            Value::Timestamp(t) => u64::try_from(t.millis() / 1000).ok(),
            v => match lenient_text(v) {
                Some(s) => s.trim().parse().ok(),
                None => v.as_i64().and_then(|n| u64::try_from(n).ok()),
            },
        });
        let token = match &m.body {
            Body::Value(Value::String(s)) => Some(s.as_str().to_owned()),
            Body::Value(Value::Binary(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        Ok(PutTokenRequest {
            token_type: text(TYPE).unwrap_or_default(),
            audience: text(NAME).unwrap_or_default(),
            expiration,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{encode_to_vec, Timestamp};
    use bytes::Bytes;

    fn wire(m: &Message) -> Message {
        Message::decode(Bytes::from(encode_to_vec(m))).unwrap()
    }

    #[test]
    fn put_token_round_trips() {
        let r = PutTokenRequest::new(
            SAS_TOKEN_TYPE,
            "amqps://h/eh1",
            1_700_000_000,
            "SharedAccessSignature sr=x",
        );
        let m = r.to_message();
        assert_eq!(
            m.application_property(OPERATION),
            Some(&Value::from(PUT_TOKEN))
        );
        assert_eq!(
            m.application_property(EXPIRATION),
            Some(&Value::from("1700000000"))
        );
        assert_eq!(PutTokenRequest::from_message(&wire(&m)), Ok(r));
    }

    #[test]
    fn lenient_forms_are_read() {
        let mut m = Message::with_value(Value::Binary(Bytes::from_static(b"tok")));
        let p = m.application_properties_mut();
        p.insert(OPERATION, Value::Binary(Bytes::from_static(b"put-token")));
        p.insert(TYPE, Value::Symbol(JWT_TOKEN_TYPE.into()));
        p.insert(NAME, "aud");
        p.insert(EXPIRATION, Timestamp(1_700_000_000_999));
        let r = PutTokenRequest::from_message(&wire(&m)).unwrap();
        assert_eq!(r.token_type, JWT_TOKEN_TYPE);
        assert_eq!(r.audience, "aud");
        assert_eq!(r.expiration, Some(1_700_000_000));
        assert_eq!(r.token.as_deref(), Some("tok"));
        m.application_properties_mut().insert(EXPIRATION, 5i64);
        assert_eq!(
            PutTokenRequest::from_message(&m).unwrap().expiration,
            Some(5)
        );
    }

    #[test]
    fn other_operations_and_bodies() {
        let mut m = PutTokenRequest::new(SAS_TOKEN_TYPE, "a", 1, "t").to_message();
        m.application_properties_mut()
            .insert(OPERATION, "delete-token");
        assert_eq!(PutTokenRequest::from_message(&m), Err(NotPutToken));
        assert_eq!(
            NotPutToken.to_string(),
            "the $cbs node only supports operation put-token"
        );
        let mut m = PutTokenRequest::new(SAS_TOKEN_TYPE, "a", 1, "t").to_message();
        m.body = Body::Value(Value::Int(1));
        let r = PutTokenRequest::from_message(&m).unwrap();
        assert_eq!(r.token, None);
    }
}
