//! SASL frame bodies (AMQP 1.0 part 5.3): mechanisms, init, challenge, response, outcome.

use crate::amqp::codec::{
    composite_type, Decode, DecodeError, DecodeErrorKind, Decoder, Encode, ListReader, Str, Symbol,
};
use bytes::{BufMut, Bytes};
use std::fmt;

/// Mechanism names used with Event Hubs and its emulator.
pub mod mechanism {
    use crate::amqp::codec::Symbol;

    /// No credentials in SASL; authorization happens later through CBS.
    pub const ANONYMOUS: Symbol = Symbol::from_static("ANONYMOUS");
    /// Microsoft's "credentials will arrive via CBS" mechanism.
    pub const MSSBCBS: Symbol = Symbol::from_static("MSSBCBS");
    /// `\0user\0password` in the initial response.
    pub const PLAIN: Symbol = Symbol::from_static("PLAIN");
    /// Credentials from the transport (TLS client certificate).
    pub const EXTERNAL: Symbol = Symbol::from_static("EXTERNAL");
}

/// Numeric descriptor of `amqp:sasl-mechanisms:list`.
pub const SASL_MECHANISMS_CODE: u64 = 0x40;
/// Numeric descriptor of `amqp:sasl-init:list`.
pub const SASL_INIT_CODE: u64 = 0x41;
/// Numeric descriptor of `amqp:sasl-challenge:list`.
pub const SASL_CHALLENGE_CODE: u64 = 0x42;
/// Numeric descriptor of `amqp:sasl-response:list`.
pub const SASL_RESPONSE_CODE: u64 = 0x43;
/// Numeric descriptor of `amqp:sasl-outcome:list`.
pub const SASL_OUTCOME_CODE: u64 = 0x44;
/// Symbolic descriptor of `sasl-mechanisms`.
pub const SASL_MECHANISMS_NAME: &str = "amqp:sasl-mechanisms:list";
/// Symbolic descriptor of `sasl-init`.
pub const SASL_INIT_NAME: &str = "amqp:sasl-init:list";
/// Symbolic descriptor of `sasl-challenge`.
pub const SASL_CHALLENGE_NAME: &str = "amqp:sasl-challenge:list";
/// Symbolic descriptor of `sasl-response`.
pub const SASL_RESPONSE_NAME: &str = "amqp:sasl-response:list";
/// Symbolic descriptor of `sasl-outcome`.
pub const SASL_OUTCOME_NAME: &str = "amqp:sasl-outcome:list";

/// Prints secret bytes as their length only.
struct Redacted<'a>(&'a Bytes);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

composite_type! {
    /// The server's list of mechanisms it supports.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct SaslMechanisms(SASL_MECHANISMS_CODE, SASL_MECHANISMS_NAME) {
        /// Supported mechanisms, in the server's order of preference.
        pub mechanisms: Vec<Symbol> => required("sasl-server-mechanisms"),
    }
}

composite_type! {
    /// The client's chosen mechanism and its first response.
    ///
    /// `Debug` never shows the initial response: for PLAIN it holds the password.
    #[derive(Clone, PartialEq, Eq)]
    pub struct SaslInit(SASL_INIT_CODE, SASL_INIT_NAME) {
        /// The chosen mechanism.
        pub mechanism: Symbol => required("mechanism"),
        /// Mechanism-specific first message (PLAIN: `\0user\0password`).
        pub initial_response: Option<Bytes> => optional,
        /// The host the client wants to reach (virtual hosting).
        pub hostname: Option<Str> => optional,
    }
}

impl SaslInit {
    /// An init for `mechanism` with no response and no hostname.
    pub fn new(mechanism: Symbol) -> Self {
        SaslInit {
            mechanism,
            initial_response: None,
            hostname: None,
        }
    }

    /// ANONYMOUS with an empty initial response (what the Python client sends).
    pub fn anonymous() -> Self {
        SaslInit {
            initial_response: Some(Bytes::new()),
            ..SaslInit::new(mechanism::ANONYMOUS)
        }
    }

    /// PLAIN with `\0username\0password` (RFC 4616, no authorization identity).
    pub fn plain(username: &str, password: &str) -> Self {
        let mut response = Vec::with_capacity(2 + username.len() + password.len());
        response.push(0);
        response.extend_from_slice(username.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        SaslInit {
            initial_response: Some(Bytes::from(response)),
            ..SaslInit::new(mechanism::PLAIN)
        }
    }

    /// Sets the hostname.
    pub fn with_hostname(mut self, hostname: impl Into<Str>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Splits a PLAIN initial response into (authzid, authcid, password); `None` when it is
    /// not of that shape.
    pub fn plain_credentials(&self) -> Option<(&[u8], &[u8], &[u8])> {
        let r = self.initial_response.as_ref()?;
        let mut parts = r.split(|b| *b == 0);
        let (authz, authc, pass) = (parts.next()?, parts.next()?, parts.next()?);
        match parts.next() {
            None => Some((authz, authc, pass)),
            Some(_) => None,
        }
    }
}

impl fmt::Debug for SaslInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslInit")
            .field("mechanism", &self.mechanism)
            .field(
                "initial_response",
                &self.initial_response.as_ref().map(Redacted),
            )
            .field("hostname", &self.hostname)
            .finish()
    }
}

composite_type! {
    /// A server challenge.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SaslChallenge(SASL_CHALLENGE_CODE, SASL_CHALLENGE_NAME) {
        /// Mechanism-specific challenge data.
        pub challenge: Bytes => required("challenge"),
    }
}

composite_type! {
    /// The client's answer to a challenge. `Debug` redacts it: it may carry credentials.
    #[derive(Clone, PartialEq, Eq)]
    pub struct SaslResponse(SASL_RESPONSE_CODE, SASL_RESPONSE_NAME) {
        /// Mechanism-specific response data.
        pub response: Bytes => required("response"),
    }
}

impl fmt::Debug for SaslResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslResponse")
            .field("response", &Redacted(&self.response))
            .finish()
    }
}

/// The result of the SASL exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaslCode {
    /// Authentication succeeded.
    Ok,
    /// Bad credentials.
    Auth,
    /// A system error, unspecified whether permanent.
    Sys,
    /// A permanent system error.
    SysPerm,
    /// A transient system error.
    SysTemp,
}

impl SaslCode {
    /// The code's wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            SaslCode::Ok => 0,
            SaslCode::Auth => 1,
            SaslCode::Sys => 2,
            SaslCode::SysPerm => 3,
            SaslCode::SysTemp => 4,
        }
    }

    /// The code for a wire value, `None` outside 0..=4.
    pub fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => SaslCode::Ok,
            1 => SaslCode::Auth,
            2 => SaslCode::Sys,
            3 => SaslCode::SysPerm,
            4 => SaslCode::SysTemp,
            _ => return None,
        })
    }
}

impl Encode for SaslCode {
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.as_u8().encode(buf)
    }
}

composite_type! {
    /// The server's verdict.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SaslOutcome(SASL_OUTCOME_CODE, SASL_OUTCOME_NAME) {
        /// The result.
        pub code: SaslCode => with(read_outcome_code),
        /// Mechanism-specific data for the client.
        pub additional_data: Option<Bytes> => optional,
    }
}

/// The outcome's code, which must be one the spec defines.
fn read_outcome_code(l: &mut ListReader) -> Result<SaslCode, DecodeError> {
    let code = l.required::<u8>("code")?;
    SaslCode::from_u8(code).ok_or_else(|| l.invalid("code"))
}

impl SaslOutcome {
    /// An outcome with `code` and no additional data.
    pub fn new(code: SaslCode) -> Self {
        SaslOutcome {
            code,
            additional_data: None,
        }
    }
}

/// The body of a SASL frame (frame type 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslFrameBody {
    /// Server → client: supported mechanisms.
    Mechanisms(SaslMechanisms),
    /// Client → server: chosen mechanism.
    Init(SaslInit),
    /// Server → client: challenge.
    Challenge(SaslChallenge),
    /// Client → server: response.
    Response(SaslResponse),
    /// Server → client: result.
    Outcome(SaslOutcome),
}

impl SaslFrameBody {
    /// The frame's symbolic name, for tracing.
    pub fn name(&self) -> &'static str {
        match self {
            SaslFrameBody::Mechanisms(_) => SASL_MECHANISMS_NAME,
            SaslFrameBody::Init(_) => SASL_INIT_NAME,
            SaslFrameBody::Challenge(_) => SASL_CHALLENGE_NAME,
            SaslFrameBody::Response(_) => SASL_RESPONSE_NAME,
            SaslFrameBody::Outcome(_) => SASL_OUTCOME_NAME,
        }
    }
}

impl Encode for SaslFrameBody {
    fn encoded_len(&self) -> usize {
        match self {
            SaslFrameBody::Mechanisms(v) => v.encoded_len(),
            SaslFrameBody::Init(v) => v.encoded_len(),
            SaslFrameBody::Challenge(v) => v.encoded_len(),
            SaslFrameBody::Response(v) => v.encoded_len(),
            SaslFrameBody::Outcome(v) => v.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            SaslFrameBody::Mechanisms(v) => v.encode(buf),
            SaslFrameBody::Init(v) => v.encode(buf),
            SaslFrameBody::Challenge(v) => v.encode(buf),
            SaslFrameBody::Response(v) => v.encode(buf),
            SaslFrameBody::Outcome(v) => v.encode(buf),
        }
    }
}

impl Decode for SaslFrameBody {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let descriptor = d.clone().read_descriptor()?;
        let is = |code, name| descriptor.matches(code, name);
        if is(SASL_MECHANISMS_CODE, SASL_MECHANISMS_NAME) {
            SaslMechanisms::decode(d).map(SaslFrameBody::Mechanisms)
        } else if is(SASL_INIT_CODE, SASL_INIT_NAME) {
            SaslInit::decode(d).map(SaslFrameBody::Init)
        } else if is(SASL_CHALLENGE_CODE, SASL_CHALLENGE_NAME) {
            SaslChallenge::decode(d).map(SaslFrameBody::Challenge)
        } else if is(SASL_RESPONSE_CODE, SASL_RESPONSE_NAME) {
            SaslResponse::decode(d).map(SaslFrameBody::Response)
        } else if is(SASL_OUTCOME_CODE, SASL_OUTCOME_NAME) {
            SaslOutcome::decode(d).map(SaslFrameBody::Outcome)
        } else {
            Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedDescriptor {
                    expected: "SASL frame body",
                    found: format!("{descriptor:?}"),
                },
            })
        }
    }
}

macro_rules! frame_from {
    ($($t:ident => $v:ident),*) => {
        $(impl From<$t> for SaslFrameBody {
            fn from(v: $t) -> Self {
                SaslFrameBody::$v(v)
            }
        })*
    };
}

frame_from!(SaslMechanisms => Mechanisms, SaslInit => Init, SaslChallenge => Challenge,
    SaslResponse => Response, SaslOutcome => Outcome);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec, Descriptor, Value};
    use crate::amqp::types::error::test_support::*;

    fn all_bodies() -> Vec<SaslFrameBody> {
        vec![
            SaslMechanisms {
                mechanisms: vec![mechanism::MSSBCBS, mechanism::ANONYMOUS, mechanism::PLAIN],
            }
            .into(),
            SaslMechanisms::default().into(),
            SaslInit::anonymous().into(),
            SaslInit::plain("RootManageSharedAccessKey", "s3cret")
                .with_hostname("ns.servicebus.windows.net")
                .into(),
            SaslInit::new(mechanism::MSSBCBS).into(),
            SaslChallenge {
                challenge: Bytes::from_static(b"nonce"),
            }
            .into(),
            SaslResponse {
                response: Bytes::from_static(b"proof"),
            }
            .into(),
            SaslOutcome::new(SaslCode::Ok).into(),
            SaslOutcome {
                code: SaslCode::SysTemp,
                additional_data: Some(Bytes::from_static(b"later")),
            }
            .into(),
        ]
    }

    #[test]
    fn every_body_roundtrips_in_every_form() {
        for b in all_bodies() {
            roundtrip(&b);
            alternatives(&b, b.name());
        }
    }

    #[test]
    fn every_code_roundtrips() {
        for n in 0..=4 {
            let code = SaslCode::from_u8(n).unwrap();
            assert_eq!(code.as_u8(), n);
            roundtrip(&SaslOutcome::new(code));
        }
        assert_eq!(SaslCode::from_u8(5), None);
    }

    #[test]
    fn plain_response_layout() {
        let init = SaslInit::plain("user", "pw");
        assert_eq!(init.initial_response.as_deref(), Some(&b"\0user\0pw"[..]));
        assert_eq!(
            init.plain_credentials(),
            Some((&b""[..], &b"user"[..], &b"pw"[..]))
        );
        assert_eq!(SaslInit::anonymous().plain_credentials(), None);
    }

    #[test]
    fn debug_redacts_secrets() {
        let init = SaslInit::plain("user", "hunter2-very-secret");
        let s = format!("{init:?} {:?}", SaslFrameBody::Init(init.clone()));
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("<redacted 25 bytes>"), "{s}");
        let r = SaslResponse {
            response: Bytes::from_static(b"hunter2"),
        };
        let s = format!("{r:?}");
        assert!(
            !s.contains("hunter2") && s.contains("<redacted 7 bytes>"),
            "{s}"
        );
    }

    #[test]
    fn mandatory_fields_are_named() {
        let cases: [(u64, &str, &str); 5] = [
            (
                SASL_MECHANISMS_CODE,
                SASL_MECHANISMS_NAME,
                "sasl-server-mechanisms",
            ),
            (SASL_INIT_CODE, SASL_INIT_NAME, "mechanism"),
            (SASL_CHALLENGE_CODE, SASL_CHALLENGE_NAME, "challenge"),
            (SASL_RESPONSE_CODE, SASL_RESPONSE_NAME, "response"),
            (SASL_OUTCOME_CODE, SASL_OUTCOME_NAME, "code"),
        ];
        for (code, name, field) in cases {
            for items in [vec![], vec![Value::Null]] {
                let bytes = described_list(&Descriptor::Code(code), &items, false);
                assert_eq!(
                    decode_err::<SaslFrameBody>(bytes),
                    DecodeErrorKind::MissingField {
                        composite: name,
                        field
                    }
                );
            }
        }
    }

    #[test]
    fn bad_code_and_unknown_body() {
        let bytes = described_list(
            &Descriptor::Code(SASL_OUTCOME_CODE),
            &[Value::Ubyte(9)],
            false,
        );
        assert_eq!(
            decode_err::<SaslOutcome>(bytes),
            DecodeErrorKind::InvalidField {
                composite: SASL_OUTCOME_NAME,
                field: "code"
            }
        );
        let bytes = described_list(&Descriptor::Code(0x10), &[], false);
        assert!(matches!(
            decode_err::<SaslFrameBody>(bytes),
            DecodeErrorKind::UnexpectedDescriptor { .. }
        ));
    }

    #[test]
    fn single_mechanism_symbol_is_accepted() {
        let bytes = described_list(
            &Descriptor::Code(SASL_MECHANISMS_CODE),
            &[Value::Symbol(mechanism::ANONYMOUS)],
            false,
        );
        let m: SaslMechanisms = decode_exact(Bytes::from(bytes)).unwrap();
        assert_eq!(m.mechanisms, vec![mechanism::ANONYMOUS]);
    }

    #[test]
    fn known_bytes() {
        // sasl-init ANONYMOUS, empty response, no hostname.
        assert_eq!(
            encode_to_vec(&SaslInit::anonymous()),
            b"\x00\x53\x41\xc0\x0f\x03\xa3\x09ANONYMOUS\xa0\x00\x40"
        );
        assert_eq!(
            encode_to_vec(&SaslOutcome::new(SaslCode::Ok)),
            b"\x00\x53\x44\xc0\x04\x02\x50\x00\x40"
        );
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        for b in all_bodies() {
            let bytes = encode_to_vec(&b);
            for i in 0..bytes.len() {
                for x in [0x00, 0x40, 0xff, 0xd0, 0xe0, 0xb0] {
                    let mut m = bytes.clone();
                    m[i] = x;
                    let _ = decode_exact::<SaslFrameBody>(Bytes::from(m));
                }
            }
        }
    }
}
