//! Storage connection strings (`AccountName=…;AccountKey=…`, `UseDevelopmentStorage=true`)
//! and the credentials a blob request is authorized with.

use crate::auth::TokenCredential;
use crate::processor::PartitionManagerError as BlobError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;
use std::sync::Arc;

/// The well-known account of the storage emulators (Azurite), public by design.
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// How blob requests are authorized.
#[derive(Clone)]
pub enum StorageCredential {
    /// Shared Key: every request is signed with the account key.
    SharedKey {
        /// The storage account name.
        account: String,
        /// The decoded account key.
        key: Vec<u8>,
    },
    /// A shared access signature, appended to every request's query (no leading `?`).
    Sas(String),
    /// Azure AD bearer tokens for the `https://storage.azure.com/.default` scope.
    Token(Arc<dyn TokenCredential>),
}

impl fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageCredential::SharedKey { account, .. } => f
                .debug_struct("SharedKey")
                .field("account", account)
                .field("key", &"<redacted>")
                .finish(),
            StorageCredential::Sas(_) => f.write_str("Sas(<redacted>)"),
            StorageCredential::Token(_) => f.write_str("Token(..)"),
        }
    }
}

impl StorageCredential {
    /// A Shared Key credential from an account name and its base64 key.
    pub fn shared_key(account: &str, key_base64: &str) -> Result<Self, BlobError> {
        let key = STANDARD
            .decode(key_base64.trim())
            .map_err(|_| BlobError::Config("AccountKey is not valid base64".into()))?;
        Ok(StorageCredential::SharedKey {
            account: account.to_owned(),
            key,
        })
    }

    /// A SAS credential (with or without the leading `?`).
    pub fn sas(token: &str) -> Self {
        StorageCredential::Sas(token.trim().trim_start_matches('?').to_owned())
    }
}

/// A parsed storage connection string: the blob service endpoint and its credential.
#[derive(Clone, Debug)]
pub struct StorageConnectionString {
    /// Base URL of the blob service, without a trailing slash
    /// (e.g. `https://acct.blob.core.windows.net`, `http://127.0.0.1:10000/devstoreaccount1`).
    pub blob_endpoint: String,
    /// The credential the string carries.
    pub credential: StorageCredential,
}

impl StorageConnectionString {
    /// Parses `Key=Value;…` as the Azure portal and Azurite document it.
    pub fn parse(s: &str) -> Result<Self, BlobError> {
        let mut get = std::collections::HashMap::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                BlobError::Config(format!(
                    "connection string part without '=': {:?}",
                    k_only(part)
                ))
            })?;
            get.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        let dev = get
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if dev {
            let endpoint = get
                .get("developmentstorageproxyuri")
                .map(|p| format!("{}/{DEVELOPMENT_ACCOUNT}", p.trim_end_matches('/')))
                .unwrap_or_else(|| DEVELOPMENT_BLOB_ENDPOINT.to_owned());
            return Ok(StorageConnectionString {
                blob_endpoint: endpoint,
                credential: StorageCredential::shared_key(DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY)?,
            });
        }
        let account = get.get("accountname").cloned();
        let endpoint = match get.get("blobendpoint") {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => {
                let account = account.as_deref().ok_or_else(|| {
                    BlobError::Config(
                        "connection string has neither BlobEndpoint nor AccountName".into(),
                    )
                })?;
                let protocol = get
                    .get("defaultendpointsprotocol")
                    .map_or("https", String::as_str);
                let suffix = get
                    .get("endpointsuffix")
                    .map_or("core.windows.net", String::as_str);
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        let credential = if let Some(sas) = get.get("sharedaccesssignature") {
            StorageCredential::sas(sas)
        } else {
            let key = get.get("accountkey").ok_or_else(|| {
                BlobError::Config(
                    "connection string has no AccountKey or SharedAccessSignature".into(),
                )
            })?;
            let account = account.as_deref().ok_or_else(|| {
                BlobError::Config("connection string has AccountKey but no AccountName".into())
            })?;
            StorageCredential::shared_key(account, key)?
        };
        Ok(StorageConnectionString {
            blob_endpoint: endpoint,
            credential,
        })
    }
}

/// The key of a `key=value` part, so that an error never echoes a secret value.
fn k_only(part: &str) -> &str {
    part.get(..part.len().min(24)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_is_azurite() {
        let c = StorageConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.blob_endpoint, DEVELOPMENT_BLOB_ENDPOINT);
        assert!(
            matches!(c.credential, StorageCredential::SharedKey { ref account, .. } if account == DEVELOPMENT_ACCOUNT)
        );
    }

    #[test]
    fn account_strings_build_the_endpoint() {
        let c = StorageConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.blob_endpoint, "https://acct.blob.core.windows.net");
        let c = StorageConnectionString::parse(
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;SharedAccessSignature=?sv=1&sig=abc",
        )
        .unwrap();
        assert_eq!(c.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert!(matches!(c.credential, StorageCredential::Sas(ref s) if s == "sv=1&sig=abc"));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let c = StorageConnectionString::parse("AccountName=acct;AccountKey=c2VjcmV0a2V5").unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("c2VjcmV0a2V5") && !dbg.contains("secretkey"),
            "{dbg}"
        );
        let sas = StorageCredential::sas("sv=1&sig=TOPSECRET");
        assert!(!format!("{sas:?}").contains("TOPSECRET"));
        let err =
            StorageConnectionString::parse("AccountName=acct;AccountKey=not base64!").unwrap_err();
        assert!(!err.to_string().contains("not base64!"), "{err}");
        assert!(StorageConnectionString::parse("AccountName=acct").is_err());
    }
}
