//! Authentication: connection strings, SAS tokens, and token credentials.

mod connection_string;
mod credential;
mod sas;

pub use connection_string::{ConnectionString, ConnectionStringError};
pub use credential::{
    AccessToken, SasCredential, SharedAccessSignatureCredential, TokenCredential, TokenFuture,
};
pub use sas::{
    generate_sas_token, parse_sas_token, percent_decode, percent_encode, verify_sas_token,
    SasToken, SasVerifyError, SAS_TOKEN_TYPE,
};
