//! The SASL authenticator the tests' servers use. Depends on nothing but `eventhubs`, so the
//! fuzz crate includes this file too (`#[path]`).

use eventhubs::amqp::codec::Symbol;
use eventhubs::amqp::engine::{SaslAuthenticator, SaslDecision};
use std::sync::Arc;

/// Offers the listed mechanisms; ANONYMOUS passes when offered, PLAIN only for one
/// user and password (any authorization id).
#[derive(Clone, Debug)]
pub struct TestAuth {
    /// The mechanisms offered, in order.
    pub offered: Vec<&'static str>,
    /// The user PLAIN accepts.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl TestAuth {
    /// `user`/`password` over PLAIN, plus ANONYMOUS.
    pub fn new(user: &str, password: &str) -> Arc<Self> {
        Arc::new(Self::offering(&["PLAIN", "ANONYMOUS"], user, password))
    }

    /// `user`/`password` over PLAIN, and only PLAIN.
    pub fn plain_only(user: &str, password: &str) -> Arc<Self> {
        Arc::new(Self::offering(&["PLAIN"], user, password))
    }

    /// Offers exactly `offered`.
    pub fn offering(offered: &[&'static str], user: &str, password: &str) -> Self {
        TestAuth {
            offered: offered.to_vec(),
            user: user.into(),
            password: password.into(),
        }
    }
}

impl SaslAuthenticator for TestAuth {
    fn mechanisms(&self) -> Vec<Symbol> {
        self.offered.iter().map(|m| Symbol::from(*m)).collect()
    }

    fn authenticate(
        &self,
        mechanism: &str,
        initial_response: &[u8],
        _hostname: Option<&str>,
    ) -> SaslDecision {
        // The engine asks only about mechanisms we offered; check anyway, as a server must.
        if !self.offered.contains(&mechanism) {
            return SaslDecision::Reject;
        }
        let accepted = match mechanism {
            "ANONYMOUS" => true,
            "PLAIN" => {
                // [authzid] NUL authcid NUL passwd
                let parts: Vec<&[u8]> = initial_response.split(|&b| b == 0).collect();
                parts.len() == 3
                    && parts[1] == self.user.as_bytes()
                    && parts[2] == self.password.as_bytes()
            }
            _ => false,
        };
        if accepted {
            SaslDecision::Accept
        } else {
            SaslDecision::Reject
        }
    }
}
