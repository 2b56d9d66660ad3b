//! Token credentials: where CBS tokens come from.

use super::sas::{generate_sas_token, parse_sas_token, SAS_TOKEN_TYPE};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A token and when it stops being valid.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token text put to the `$cbs` node.
    pub token: String,
    /// When it expires.
    pub expires_on: SystemTime,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// The future a [`TokenCredential`] returns.
pub type TokenFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<AccessToken, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// A source of tokens for claims-based security (Azure AD, SAS, or your own).
pub trait TokenCredential: Send + Sync {
    /// A token for `audience` (SAS: the resource URI; Azure AD: the scope).
    fn get_token<'a>(&'a self, audience: &'a str) -> TokenFuture<'a>;

    /// The CBS token type: `jwt` for Azure AD (the default), the SAS type for SAS credentials.
    fn token_type(&self) -> &str {
        crate::wire::cbs::JWT_TOKEN_TYPE
    }
}

/// Makes SAS tokens from a key name and key, each valid for `validity`.
#[derive(Clone)]
pub struct SasCredential {
    key_name: String,
    key: String,
    validity: Duration,
}

impl fmt::Debug for SasCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasCredential")
            .field("key_name", &self.key_name)
            .field("key", &"<redacted>")
            .field("validity", &self.validity)
            .finish()
    }
}

impl SasCredential {
    /// A credential for `key_name`/`key`, making tokens valid for one hour.
    pub fn new(key_name: impl Into<String>, key: impl Into<String>) -> Self {
        SasCredential {
            key_name: key_name.into(),
            key: key.into(),
            validity: Duration::from_secs(3600),
        }
    }

    /// Sets how long each token is valid (short values exercise refresh).
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenCredential for SasCredential {
    fn get_token<'a>(&'a self, audience: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            let expires_on = SystemTime::now() + self.validity;
            let expiry = unix_secs(expires_on).max(1);
            Ok(AccessToken {
                token: generate_sas_token(audience, &self.key_name, &self.key, expiry),
                expires_on: UNIX_EPOCH + Duration::from_secs(expiry),
            })
        })
    }

    fn token_type(&self) -> &str {
        SAS_TOKEN_TYPE
    }
}

/// A complete pre-built SAS token (`SharedAccessSignature` in a connection string). It cannot
/// be refreshed; its expiry comes from its `se` field.
#[derive(Clone)]
pub struct SharedAccessSignatureCredential {
    token: String,
    expires_on: SystemTime,
}

impl fmt::Debug for SharedAccessSignatureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAccessSignatureCredential")
            .field("token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

impl SharedAccessSignatureCredential {
    /// Wraps a token; fails when it is not a well-formed SAS token.
    pub fn new(token: impl Into<String>) -> Result<Self, super::sas::SasVerifyError> {
        let token = token.into();
        let parsed = parse_sas_token(&token)?;
        Ok(SharedAccessSignatureCredential {
            token,
            expires_on: UNIX_EPOCH + Duration::from_secs(parsed.expiry),
        })
    }
}

impl TokenCredential for SharedAccessSignatureCredential {
    fn get_token<'a>(&'a self, _audience: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            Ok(AccessToken {
                token: self.token.clone(),
                expires_on: self.expires_on,
            })
        })
    }

    fn token_type(&self) -> &str {
        SAS_TOKEN_TYPE
    }
}
