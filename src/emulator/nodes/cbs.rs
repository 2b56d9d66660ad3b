//! The `$cbs` node: verifies put-token requests and grants the connection the token's audience.

use crate::amqp::types::message::{Body, Message};
use crate::auth::{verify_sas_token, SasVerifyError};
use crate::emulator::routing::{audience_host, audience_path, now_secs, Conn};
use crate::wire::cbs::{PutTokenRequest, PUT_TOKEN, SAS_TOKEN_TYPE};

pub(crate) fn put_token(conn: &Conn, request: &Message) -> (i32, String, Body) {
    let request = match PutTokenRequest::from_message(request) {
        Ok(r) => r,
        Err(e) => return (400, e.to_string(), Body::Empty),
    };
    let token_type = request.token_type;
    if token_type != SAS_TOKEN_TYPE {
        return (
            401,
            format!("token type {token_type:?} is not supported by the emulator; use SAS"),
            Body::Empty,
        );
    }
    let Some(token) = request.token else {
        return (
            400,
            format!("{PUT_TOKEN} body must be the token string"),
            Body::Empty,
        );
    };
    let keys = &conn.shared.keys;
    match verify_sas_token(
        &token,
        |name| keys.iter().find(|k| k.name == name).map(|k| k.key.as_str()),
        now_secs(),
    ) {
        Ok(t) => {
            // As the service: a token signed for another namespace grants nothing here, even
            // when the key happens to be the same.
            if !conn.serves_audience(&t.audience) {
                let host = audience_host(&t.audience).unwrap_or_default();
                return (
                    401,
                    format!("the token's audience host {host:?} is not this namespace"),
                    Body::Empty,
                );
            }
            let path = audience_path(&t.audience);
            // A namespace-wide token is fine; one for an entity must name a hub we have.
            let hub = path.split('/').next().unwrap_or_default();
            if !hub.is_empty() && conn.hub(hub).is_none() {
                return (404, format!("no event hub named {hub:?}"), Body::Empty);
            }
            conn.grant(path, t.expiry);
            // The service accepts a token with 202, and some clients (fe2o3-amqp-cbs, under
            // the official Rust SDK) take nothing else as success.
            (202, "Accepted".into(), Body::Empty)
        }
        // A token that is not a SAS token at all is a bad request; one that is well formed but
        // does not verify (signature, key name, expiry) is unauthorized.
        Err(e @ SasVerifyError::Malformed(_)) => (400, e.to_string(), Body::Empty),
        Err(e) => (401, e.to_string(), Body::Empty),
    }
}
