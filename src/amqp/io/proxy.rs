//! HTTP CONNECT tunnels: reaching the peer through an HTTP proxy, as corporate networks that
//! only let HTTPS out require. The tunnel is set up before TLS, so the proxy sees only the
//! target's name and port, never the AMQP (or WebSocket) traffic.

use crate::amqp::error::Error;
use base64::Engine as _;
use std::fmt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest proxy answer to `CONNECT` we read: a status line and headers fit easily, and a
/// hostile proxy cannot make us buffer more.
pub const MAX_CONNECT_REPLY: usize = 8 * 1024;

/// An HTTP proxy to tunnel connections through. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyOptions {
    /// The proxy's host name or address.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// Basic credentials (user, password) sent as `Proxy-Authorization`.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .finish()
    }
}

impl ProxyOptions {
    /// A proxy at `host:port` without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ProxyOptions {
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Sets Basic credentials.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses `http://[user:password@]host[:port][/]` (port 80 by default; user and password
    /// may be percent-encoded). Errors never repeat the URL, which may hold a password.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Proxy(format!("proxy URL: {why}"));
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(bad("only http:// proxies are supported")),
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("a path is not allowed"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport, 80).ok_or_else(|| bad("bad host or port"))?;
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in user"))?;
                let pass = percent_decode(pass).ok_or_else(|| bad("bad %-escape in password"))?;
                Some((user, pass))
            }
            None => None,
        };
        Ok(ProxyOptions {
            host,
            port,
            credentials,
        })
    }

    /// The proxy named by `HTTPS_PROXY` (or `https_proxy`) for connections to `target`, unless
    /// `NO_PROXY` (or `no_proxy`) exempts it; `None` when no proxy applies.
    pub fn from_env(target: &str) -> Result<Option<Self>, Error> {
        let var = |a: &str, b: &str| {
            std::env::var(a)
                .ok()
                .or_else(|| std::env::var(b).ok())
                .filter(|v| !v.trim().is_empty())
        };
        let Some(url) = var("HTTPS_PROXY", "https_proxy") else {
            return Ok(None);
        };
        if let Some(no) = var("NO_PROXY", "no_proxy") {
            if no_proxy_matches(&no, target) {
                return Ok(None);
            }
        }
        Self::from_url(url.trim()).map(Some)
    }
}

/// Whether a `NO_PROXY` list (comma separated; `*`, exact names, and domain suffixes with or
/// without a leading dot) exempts `host`.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.split(':').next().unwrap_or("").to_ascii_lowercase();
        let entry = entry.trim_start_matches('.');
        if entry.is_empty() {
            return false;
        }
        entry == "*"
            || host == entry
            || (host.len() > entry.len()
                && host.ends_with(entry)
                && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
    })
}

fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, default_port),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `CONNECT` request for `target_host:target_port`.
fn connect_request(proxy: &ProxyOptions, target_host: &str, target_port: u16) -> String {
    let authority = if target_host.contains(':') {
        format!("[{target_host}]:{target_port}")
    } else {
        format!("{target_host}:{target_port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = &proxy.credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// What a complete proxy answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectReply {
    /// The HTTP status code.
    pub status: u16,
    /// The status line as the proxy sent it (printable ASCII only, for error messages).
    pub status_line: String,
}

/// Parses the proxy's answer so far: `Ok(None)` until the blank line that ends the headers,
/// then the status. Bytes past the blank line are not looked at. Never panics.
pub fn parse_connect_reply(buf: &[u8]) -> Result<Option<ConnectReply>, Error> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() >= MAX_CONNECT_REPLY {
            return Err(Error::Proxy(format!(
                "proxy answer to CONNECT exceeds {MAX_CONNECT_REPLY} bytes"
            )));
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line: String = head[..line_end]
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(status) if version.starts_with("HTTP/1.") => Ok(Some(ConnectReply {
            status,
            status_line: line,
        })),
        _ => Err(Error::Proxy(format!(
            "proxy answered CONNECT with something that is not HTTP: {line:?}"
        ))),
    }
}

/// Asks the proxy on `tcp` to open a tunnel to `target_host:target_port`; on success the
/// stream is the tunnel. A refusal is [`Error::Proxy`] carrying the proxy's status line.
pub async fn tunnel(
    tcp: &mut TcpStream,
    proxy: &ProxyOptions,
    target_host: &str,
    target_port: u16,
) -> Result<(), Error> {
    let where_ = format!("proxy {}:{}", proxy.host, proxy.port);
    tcp.write_all(connect_request(proxy, target_host, target_port).as_bytes())
        .await?;
    // One byte at a time: the tunnel's first bytes after the headers belong to the layer
    // above, so we must not read past the blank line.
    let mut buf = Vec::with_capacity(256);
    loop {
        let mut byte = [0u8; 1];
        let n = tcp.read(&mut byte).await?;
        if n == 0 {
            return Err(Error::Proxy(format!(
                "{where_} closed the connection before answering CONNECT to {target_host}:{target_port}"
            )));
        }
        buf.push(byte[0]);
        if byte[0] != b'\n' && buf.len() < MAX_CONNECT_REPLY {
            continue;
        }
        match parse_connect_reply(&buf) {
            Ok(None) => continue,
            Ok(Some(r)) if (200..300).contains(&r.status) => return Ok(()),
            Ok(Some(r)) => {
                return Err(Error::Proxy(format!(
                    "{where_} refused CONNECT to {target_host}:{target_port}: {}",
                    r.status_line
                )))
            }
            Err(Error::Proxy(m)) => return Err(Error::Proxy(format!("{where_}: {m}"))),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_credentials() {
        let p = ProxyOptions::from_url("http://u%40x:p%3Ass@proxy.example:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert_eq!(p.credentials, Some(("u@x".into(), "p:ss".into())));
        let p = ProxyOptions::from_url("127.0.0.1").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.credentials),
            ("127.0.0.1", 80, None)
        );
        let p = ProxyOptions::from_url("http://[::1]:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert!(ProxyOptions::from_url("https://p:1").is_err());
        assert!(ProxyOptions::from_url("http://p:notaport").is_err());
        let e = ProxyOptions::from_url("socks5://u:secret@p:1").unwrap_err();
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn debug_hides_the_password() {
        let p = ProxyOptions::new("h", 1).with_credentials("user", "s3cret");
        let d = format!("{p:?}");
        assert!(d.contains("user") && !d.contains("s3cret"), "{d}");
    }

    #[test]
    fn the_request_carries_basic_credentials() {
        let p = ProxyOptions::new("h", 1).with_credentials("a", "b");
        let r = connect_request(&p, "ns.example", 443);
        assert!(r.starts_with("CONNECT ns.example:443 HTTP/1.1\r\n"));
        assert!(r.contains("Proxy-Authorization: Basic YTpi\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn replies_parse_and_stay_bounded() {
        assert_eq!(parse_connect_reply(b"HTTP/1.1 200 Conn").unwrap(), None);
        let r = parse_connect_reply(b"HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 407);
        assert_eq!(r.status_line, "HTTP/1.0 407 Proxy Authentication Required");
        assert!(parse_connect_reply(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_connect_reply(&vec![b'a'; MAX_CONNECT_REPLY]).is_err());
    }

    #[test]
    fn no_proxy_lists_match_names_and_suffixes() {
        assert!(no_proxy_matches(
            "localhost, .servicebus.windows.net",
            "ns.servicebus.windows.net"
        ));
        assert!(no_proxy_matches(
            "servicebus.windows.net",
            "ns.servicebus.windows.net"
        ));
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("127.0.0.1:5671", "127.0.0.1"));
        assert!(!no_proxy_matches(
            "bus.windows.net",
            "ns.servicebus.windows.net"
        ));
        assert!(!no_proxy_matches("", "x"));
    }
}
