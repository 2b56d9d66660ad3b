//! The SASL layer of the connection, both roles.

use super::config::SaslDecision;
use super::connection::{err, Connection, ConnectionState, Phase, Role};
use super::frame_event;
use crate::amqp::codec::{Decode, Decoder};
use crate::amqp::frame::{self, ProtocolHeader, RawFrame, FRAME_TYPE_SASL};
use crate::amqp::types::error::condition;
use crate::amqp::types::sasl::{SaslCode, SaslFrameBody, SaslInit, SaslMechanisms, SaslOutcome};

impl Connection {
    fn write_sasl(&mut self, body: SaslFrameBody) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, dir = "out", sasl = body.name(), frame = ?body);
        frame::write_sasl_frame(&mut self.out, &body);
    }

    /// Server: the client asked for SASL; offer our mechanisms.
    pub(super) fn sasl_server_start(&mut self) {
        self.phase = Phase::Sasl;
        let mechanisms = self
            .config
            .sasl_server
            .as_ref()
            .map(|a| a.mechanisms())
            .unwrap_or_default();
        self.write_sasl(SaslFrameBody::Mechanisms(SaslMechanisms { mechanisms }));
    }

    pub(super) fn handle_sasl_frame(&mut self, raw: RawFrame) {
        if raw.frame_type != FRAME_TYPE_SASL {
            self.fail_sasl("AMQP frame during SASL negotiation");
            return;
        }
        let body = match SaslFrameBody::decode(&mut Decoder::new(raw.body)) {
            Ok(b) => b,
            Err(e) => {
                self.fail_sasl(&format!("bad SASL frame: {e}"));
                return;
            }
        };
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, dir = "in", sasl = body.name(), frame = ?body);
        match (self.role, body) {
            (Role::Client, SaslFrameBody::Mechanisms(m)) => self.sasl_client_choose(m),
            (Role::Client, SaslFrameBody::Outcome(o)) => {
                if o.code == SaslCode::Ok {
                    self.sasl_done = true;
                    self.phase = Phase::Header;
                    self.write_header(ProtocolHeader::AMQP);
                    self.send_open();
                } else {
                    self.finish(
                        Some(err(
                            condition::UNAUTHORIZED_ACCESS,
                            format!("SASL authentication failed (outcome {:?})", o.code),
                        )),
                        true,
                    );
                }
            }
            (Role::Client, SaslFrameBody::Challenge(_)) => {
                self.fail_sasl("SASL challenge for a mechanism that has none");
            }
            (Role::Server, SaslFrameBody::Init(init)) => self.sasl_server_judge(init),
            (_, other) => self.fail_sasl(&format!("unexpected SASL frame {}", other.name())),
        }
    }

    fn sasl_client_choose(&mut self, offered: SaslMechanisms) {
        let Some(mechanism) = self.config.sasl.clone() else {
            self.fail_sasl("server asked for SASL but no mechanism is configured");
            return;
        };
        if !offered
            .mechanisms
            .iter()
            .any(|m| m.as_str() == mechanism.name())
        {
            let list: Vec<&str> = offered.mechanisms.iter().map(|m| m.as_str()).collect();
            self.finish(
                Some(err(
                    condition::NOT_IMPLEMENTED,
                    format!(
                        "server offers SASL mechanisms {list:?}, not {}",
                        mechanism.name()
                    ),
                )),
                false,
            );
            return;
        }
        let init = SaslInit {
            mechanism: mechanism.name().into(),
            initial_response: Some(mechanism.initial_response()),
            hostname: self.config.hostname.as_deref().map(Into::into),
        };
        self.write_sasl(SaslFrameBody::Init(init));
    }

    fn sasl_server_judge(&mut self, init: SaslInit) {
        let Some(auth) = self.config.sasl_server.clone() else {
            self.fail_sasl("no SASL authenticator");
            return;
        };
        let offered = auth.mechanisms();
        let decision = if offered.contains(&init.mechanism) {
            auth.authenticate(
                init.mechanism.as_str(),
                init.initial_response.as_deref().unwrap_or_default(),
                init.hostname.as_deref(),
            )
        } else {
            SaslDecision::Reject
        };
        let code = match decision {
            SaslDecision::Accept => SaslCode::Ok,
            SaslDecision::Reject => SaslCode::Auth,
        };
        self.write_sasl(SaslFrameBody::Outcome(SaslOutcome::new(code)));
        if code == SaslCode::Ok {
            self.sasl_done = true;
            self.phase = Phase::Header;
        } else {
            self.finish(
                Some(err(
                    condition::UNAUTHORIZED_ACCESS,
                    format!("client failed SASL {} authentication", init.mechanism),
                )),
                false,
            );
        }
    }

    fn fail_sasl(&mut self, why: &str) {
        self.finish(Some(err(condition::CONNECTION_FRAMING_ERROR, why)), false);
        self.state = ConnectionState::Closed;
    }
}
