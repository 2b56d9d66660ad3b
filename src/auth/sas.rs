//! Shared Access Signature tokens: making them (clients) and checking them (the emulator).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::wire::cbs::SAS_TOKEN_TYPE;

/// Percent-encodes everything but the URL-unreserved characters (`A-Z a-z 0-9 - _ . ~`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space, as form encoding does); `None` when malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn sign(key: &str, string_to_sign: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Makes a token for `resource` (the audience URI, e.g. `sb://ns.host/hub`) valid until
/// `expiry` (Unix seconds), signed with the SharedAccessKey's text.
pub fn generate_sas_token(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let sr = percent_encode(resource);
    let sig = STANDARD.encode(sign(key, &format!("{sr}\n{expiry}")));
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        percent_encode(&sig),
        percent_encode(key_name)
    )
}

/// The parts of a SAS token, as transmitted except where noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SasToken {
    /// `sr` as transmitted (what the signature covers).
    pub sr: String,
    /// `sr` decoded: the audience URI.
    pub audience: String,
    /// `sig`, decoded from URL and base64.
    pub signature: Vec<u8>,
    /// `se`: expiry in Unix seconds.
    pub expiry: u64,
    /// `se` as transmitted (what the signature covers).
    se_text: String,
    /// `skn`, decoded: the key name.
    pub key_name: String,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasVerifyError {
    /// Not of the form `SharedAccessSignature k=v&...` with `sr`, `sig`, `se`, `skn`.
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    /// No key with that name is configured.
    #[error("unknown SAS key name {0:?}")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("SAS token signature does not match")]
    BadSignature,
    /// The token has expired.
    #[error("SAS token expired at {expiry} (now {now})")]
    Expired {
        /// Token expiry, Unix seconds.
        expiry: u64,
        /// The time of the check.
        now: u64,
    },
}

/// Splits a token into its fields (any order).
pub fn parse_sas_token(token: &str) -> Result<SasToken, SasVerifyError> {
    let body =
        token
            .trim()
            .strip_prefix("SharedAccessSignature ")
            .ok_or(SasVerifyError::Malformed(
                "missing 'SharedAccessSignature ' prefix",
            ))?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for part in body.split('&') {
        let (k, v) = part
            .split_once('=')
            .ok_or(SasVerifyError::Malformed("field without '='"))?;
        match k {
            "sr" => sr = Some(v),
            "sig" => sig = Some(v),
            "se" => se = Some(v),
            "skn" => skn = Some(v),
            _ => {}
        }
    }
    let sr = sr.ok_or(SasVerifyError::Malformed("no sr"))?;
    let sig = sig.ok_or(SasVerifyError::Malformed("no sig"))?;
    let se = se.ok_or(SasVerifyError::Malformed("no se"))?;
    let skn = skn.ok_or(SasVerifyError::Malformed("no skn"))?;
    let signature = percent_decode(sig)
        .and_then(|s| STANDARD.decode(s.replace(' ', "+")).ok())
        .ok_or(SasVerifyError::Malformed("sig is not URL-encoded base64"))?;
    Ok(SasToken {
        audience: percent_decode(sr).ok_or(SasVerifyError::Malformed("sr is not URL-encoded"))?,
        sr: sr.to_owned(),
        signature,
        expiry: se
            .parse()
            .map_err(|_| SasVerifyError::Malformed("se is not a number"))?,
        se_text: se.to_owned(),
        key_name: percent_decode(skn).ok_or(SasVerifyError::Malformed("skn is not URL-encoded"))?,
    })
}

/// Checks a token's signature against the key its `skn` names and its expiry against `now`
/// (Unix seconds). The audience is returned for the caller to match against the entity.
pub fn verify_sas_token<'k>(
    token: &str,
    key_for: impl Fn(&str) -> Option<&'k str>,
    now: u64,
) -> Result<SasToken, SasVerifyError> {
    let t = parse_sas_token(token)?;
    let key = key_for(&t.key_name).ok_or_else(|| SasVerifyError::UnknownKey(t.key_name.clone()))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| SasVerifyError::BadSignature)?;
    mac.update(format!("{}\n{}", t.sr, t.se_text).as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&t.signature)
        .map_err(|_| SasVerifyError::BadSignature)?;
    if t.expiry <= now {
        return Err(SasVerifyError::Expired {
            expiry: t.expiry,
            now,
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_verify_and_tampering_fails() {
        let t = generate_sas_token("sb://localhost/eh1", "Root", "SAS_KEY_VALUE", 2_000_000_000);
        assert!(t.starts_with("SharedAccessSignature sr=sb%3A%2F%2Flocalhost%2Feh1&sig="));
        let keys = |n: &str| (n == "Root").then_some("SAS_KEY_VALUE");
        let ok = verify_sas_token(&t, keys, 1_900_000_000).unwrap();
        assert_eq!(ok.audience, "sb://localhost/eh1");
        assert_eq!(ok.key_name, "Root");
        assert_eq!(
            verify_sas_token(&t, keys, 2_000_000_000),
            Err(SasVerifyError::Expired {
                expiry: 2_000_000_000,
                now: 2_000_000_000
            })
        );
        let wrong_key = |_: &str| Some("other");
        assert_eq!(
            verify_sas_token(&t, wrong_key, 0),
            Err(SasVerifyError::BadSignature)
        );
        let tampered = t.replace("eh1", "eh2");
        assert_eq!(
            verify_sas_token(&tampered, keys, 0),
            Err(SasVerifyError::BadSignature)
        );
        let later = t.replace("se=2000000000", "se=2100000000");
        assert_eq!(
            verify_sas_token(&later, keys, 0),
            Err(SasVerifyError::BadSignature)
        );
        assert!(matches!(
            verify_sas_token("Bearer x", keys, 0),
            Err(SasVerifyError::Malformed(_))
        ));
        let none = |_: &str| None;
        assert_eq!(
            verify_sas_token(&t, none, 0),
            Err(SasVerifyError::UnknownKey("Root".into()))
        );
    }

    #[test]
    fn known_signature_vector() {
        // HMAC-SHA256("key", "sb%3A%2F%2Fh%2Fe\n1") computed independently with Python's hmac.
        let t = generate_sas_token("sb://h/e", "n", "key", 1);
        let parsed = parse_sas_token(&t).unwrap();
        assert_eq!(
            STANDARD.encode(&parsed.signature),
            "CFXewdG7Xp/jfEnQVVLQFM8SebTYVhbkSddsHWHThc4="
        );
        assert_eq!(percent_decode("a%2Bb+c"), Some("a+b c".into()));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_encode("a b/~"), "a%20b%2F~");
    }
}
