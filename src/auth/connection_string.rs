//! Event Hubs connection strings: `Endpoint=sb://host/;SharedAccessKeyName=..;...`.

use std::fmt;

/// A parsed connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Namespace host (from `Endpoint`), without scheme, port or path.
    pub host: String,
    /// Port from `Endpoint`, if it named one.
    pub port: Option<u16>,
    /// `SharedAccessKeyName`.
    pub key_name: Option<String>,
    /// `SharedAccessKey` (used as-is as the HMAC key; never printed).
    pub key: Option<String>,
    /// `EntityPath`: the event hub.
    pub entity_path: Option<String>,
    /// `SharedAccessSignature`: a complete pre-built token (never printed).
    pub shared_access_signature: Option<String>,
    /// `UseDevelopmentEmulator=true`: plain AMQP on 5672, no TLS.
    pub use_development_emulator: bool,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("key_name", &self.key_name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("entity_path", &self.entity_path)
            .field(
                "shared_access_signature",
                &self.shared_access_signature.as_ref().map(|_| "<redacted>"),
            )
            .field("use_development_emulator", &self.use_development_emulator)
            .finish()
    }
}

/// What is wrong with a connection string. Messages name the key and never echo secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// A `;`-separated part has no `=`.
    #[error("connection string segment {index} has no '=' (expected Key=Value)")]
    MissingEquals {
        /// 0-based index of the segment.
        index: usize,
    },
    /// A known key has an empty value.
    #[error("connection string key {0} has an empty value")]
    EmptyValue(&'static str),
    /// A required key is absent.
    #[error("connection string is missing {0}")]
    Missing(&'static str),
    /// `Endpoint` is not `scheme://host[:port][/]`.
    #[error("connection string Endpoint is not a URL with a host: {0}")]
    BadEndpoint(String),
    /// `SharedAccessKeyName` without `SharedAccessKey`, or the other way round.
    #[error("connection string has {present} but not {missing}")]
    Unpaired {
        /// The key that is present.
        present: &'static str,
        /// Its missing partner.
        missing: &'static str,
    },
    /// Both a key and a pre-built signature.
    #[error("connection string has both SharedAccessKey and SharedAccessSignature; use one")]
    KeyAndSignature,
    /// `UseDevelopmentEmulator` is neither true nor false.
    #[error("connection string UseDevelopmentEmulator must be true or false, not {0:?}")]
    BadEmulatorFlag(String),
    /// The event hub given explicitly differs from `EntityPath`.
    #[error(
        "event hub name {given:?} differs from the connection string's EntityPath {entity_path:?}"
    )]
    HubMismatch {
        /// The explicitly given name.
        given: String,
        /// The connection string's EntityPath.
        entity_path: String,
    },
    /// No event hub name at all.
    #[error("no event hub name: pass one or put EntityPath in the connection string")]
    NoHub,
}

impl ConnectionString {
    /// Parses a connection string. Keys match case-insensitively; unknown keys are ignored;
    /// values may contain `=` (only the first one splits).
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        let mut endpoint = None;
        let mut cs = ConnectionString {
            host: String::new(),
            port: None,
            key_name: None,
            key: None,
            entity_path: None,
            shared_access_signature: None,
            use_development_emulator: false,
        };
        for (index, segment) in s.split(';').enumerate() {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let (k, v) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::MissingEquals { index })?;
            let (k, v) = (k.trim(), v.trim());
            let key: &'static str = match k.to_ascii_lowercase().as_str() {
                "endpoint" => "Endpoint",
                "sharedaccesskeyname" => "SharedAccessKeyName",
                "sharedaccesskey" => "SharedAccessKey",
                "entitypath" => "EntityPath",
                "sharedaccesssignature" => "SharedAccessSignature",
                "usedevelopmentemulator" => "UseDevelopmentEmulator",
                _ => continue,
            };
            if v.is_empty() {
                return Err(ConnectionStringError::EmptyValue(key));
            }
            let v = v.to_owned();
            match key {
                "Endpoint" => endpoint = Some(v),
                "SharedAccessKeyName" => cs.key_name = Some(v),
                "SharedAccessKey" => cs.key = Some(v),
                "EntityPath" => cs.entity_path = Some(v),
                "SharedAccessSignature" => cs.shared_access_signature = Some(v),
                _ => {
                    cs.use_development_emulator = match v.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ConnectionStringError::BadEmulatorFlag(v)),
                    }
                }
            }
        }
        let endpoint = endpoint.ok_or(ConnectionStringError::Missing("Endpoint"))?;
        let (host, port) = parse_endpoint(&endpoint)?;
        cs.host = host;
        cs.port = port;
        match (&cs.key_name, &cs.key, &cs.shared_access_signature) {
            (Some(_), Some(_), Some(_)) | (None, Some(_), Some(_)) => {
                return Err(ConnectionStringError::KeyAndSignature)
            }
            (Some(_), None, None) => {
                return Err(ConnectionStringError::Unpaired {
                    present: "SharedAccessKeyName",
                    missing: "SharedAccessKey",
                })
            }
            (None, Some(_), None) => {
                return Err(ConnectionStringError::Unpaired {
                    present: "SharedAccessKey",
                    missing: "SharedAccessKeyName",
                })
            }
            (None, None, None) => {
                return Err(ConnectionStringError::Missing(
                    "SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature",
                ))
            }
            _ => {}
        }
        Ok(cs)
    }

    /// The event hub to use: `explicit` wins but must agree with `EntityPath` when both exist.
    pub fn hub_name(&self, explicit: Option<&str>) -> Result<String, ConnectionStringError> {
        match (explicit, &self.entity_path) {
            (Some(g), Some(e)) if g != e => Err(ConnectionStringError::HubMismatch {
                given: g.to_owned(),
                entity_path: e.clone(),
            }),
            (Some(g), _) => Ok(g.to_owned()),
            (None, Some(e)) => Ok(e.clone()),
            (None, None) => Err(ConnectionStringError::NoHub),
        }
    }

    /// The AMQP port: the endpoint's, else 5672 for the emulator and 5671 (TLS) otherwise.
    pub fn amqp_port(&self) -> u16 {
        self.port.unwrap_or(if self.use_development_emulator {
            5672
        } else {
            5671
        })
    }
}

/// `sb://host[:port][/...]` → host, port.
fn parse_endpoint(endpoint: &str) -> Result<(String, Option<u16>), ConnectionStringError> {
    let bad = || ConnectionStringError::BadEndpoint(endpoint.to_owned());
    let (_, rest) = endpoint.split_once("://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port: u16 = p.parse().map_err(|_| bad())?;
            (h, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_namespace_connection_string() {
        let cs = ConnectionString::parse(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc=def=;EntityPath=hub1",
        )
        .unwrap();
        assert_eq!(cs.host, "ns.servicebus.windows.net");
        assert_eq!(cs.port, None);
        assert_eq!(cs.key.as_deref(), Some("abc=def="));
        assert_eq!(cs.hub_name(None).unwrap(), "hub1");
        assert_eq!(cs.amqp_port(), 5671);
        assert!(!format!("{cs:?}").contains("abc=def="));
    }

    #[test]
    fn emulator_strings_and_case_insensitive_keys() {
        let cs = ConnectionString::parse(
            " endpoint=sb://localhost ; sharedaccesskeyname=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
        )
        .unwrap();
        assert_eq!(cs.host, "localhost");
        assert!(cs.use_development_emulator);
        assert_eq!(cs.amqp_port(), 5672);
        let cs = ConnectionString::parse(
            "Endpoint=sb://localhost:5673;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true",
        )
        .unwrap();
        assert_eq!(cs.amqp_port(), 5673);
    }

    #[test]
    fn errors_name_the_key() {
        use ConnectionStringError::*;
        let p = ConnectionString::parse;
        assert_eq!(
            p("SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(Missing("Endpoint"))
        );
        assert_eq!(
            p("Endpoint=sb://h/;SharedAccessKeyName=a"),
            Err(Unpaired {
                present: "SharedAccessKeyName",
                missing: "SharedAccessKey"
            })
        );
        assert_eq!(
            p("Endpoint=sb://h/;SharedAccessKey=b"),
            Err(Unpaired {
                present: "SharedAccessKey",
                missing: "SharedAccessKeyName"
            })
        );
        assert_eq!(
            p("Endpoint=sb://h/;Garbage"),
            Err(MissingEquals { index: 1 })
        );
        assert_eq!(
            p("Endpoint=;SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(EmptyValue("Endpoint"))
        );
        assert_eq!(
            p("Endpoint=nonsense;SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(BadEndpoint("nonsense".into()))
        );
        assert_eq!(
            p("Endpoint=sb://h:99999/;SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(BadEndpoint("sb://h:99999/".into()))
        );
        assert_eq!(
            p("Endpoint=sb://h/"),
            Err(Missing(
                "SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
            ))
        );
        assert_eq!(
            p("Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=b;SharedAccessSignature=x"),
            Err(KeyAndSignature)
        );
        assert_eq!(
            p("Endpoint=sb://h/;SharedAccessSignature=x;UseDevelopmentEmulator=yes"),
            Err(BadEmulatorFlag("yes".into()))
        );
        let cs = p("Endpoint=sb://h/;SharedAccessSignature=x;EntityPath=a").unwrap();
        assert!(matches!(cs.hub_name(Some("b")), Err(HubMismatch { .. })));
        assert_eq!(cs.hub_name(Some("a")).unwrap(), "a");
        let cs = p("Endpoint=sb://h/;SharedAccessSignature=x").unwrap();
        assert_eq!(cs.hub_name(None), Err(NoHub));
    }
}
