//! A partition manager in Azure Blob Storage with the layout every official Event Hubs SDK
//! uses, so processors on many machines, and of different SDKs, share one consumer group:
//! one empty blob per record named `{namespace}/{hub}/{group}/ownership|checkpoint/{partition}`
//! (all lower-cased), its values in metadata (`ownerid`; `offset`, `sequencenumber`), and
//! the blob's etag and last-modified time as the record's version and time.

mod http;
mod http_date;
mod listing;
mod shared_key;
mod storage_connection;

pub use storage_connection::{StorageConnectionString, StorageCredential, DEVELOPMENT_ACCOUNT};

use super::manager::{Checkpoint, Ownership, PartitionManager, PartitionManagerError, StoreFuture};
use crate::auth::{percent_encode, TokenCredential};
use ::hyper::Method;
use http::{Endpoint, Http};
use listing::{parse_list, ListedBlob};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Records under one prefix at most: a consumer group has one per partition (at most a few
/// thousand), so more is a wrong container, not a store to read to the end.
const MAX_LISTED: usize = 100_000;

/// How a [`BlobPartitionManager`] talks to the service.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlobOptions {
    /// Longest wait for one HTTP request (default 10 s).
    pub request_timeout: Duration,
    /// Retries after a timeout, a transport failure or a busy/failing status (default 4).
    pub max_retries: u32,
    /// First backoff, doubled on each retry, with jitter (default 200 ms).
    pub retry_delay: Duration,
    /// Longest backoff (default 4 s).
    pub max_retry_delay: Duration,
    /// Create the container on [`BlobPartitionManager::connect`] when it is missing
    /// (default false: a missing container is an error).
    pub create_container: bool,
    /// Blobs per List Blobs page (`maxresults`; default the service's, 5000).
    pub list_page_size: Option<u32>,
    /// Root certificates trusted for `https` endpoints in addition to the webpki roots: for a
    /// store behind a private CA or a self-signed certificate (Azurite with `--cert`).
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            request_timeout: Duration::from_secs(10),
            max_retries: 4,
            retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(4),
            create_container: false,
            list_page_size: None,
            extra_roots: Vec::new(),
        }
    }
}

impl BlobOptions {
    /// Sets [`BlobOptions::request_timeout`].
    pub fn with_request_timeout(mut self, value: Duration) -> Self {
        self.request_timeout = value;
        self
    }
    /// Sets [`BlobOptions::max_retries`].
    pub fn with_max_retries(mut self, value: u32) -> Self {
        self.max_retries = value;
        self
    }
    /// Sets [`BlobOptions::retry_delay`].
    pub fn with_retry_delay(mut self, value: Duration) -> Self {
        self.retry_delay = value;
        self
    }
    /// Sets [`BlobOptions::max_retry_delay`].
    pub fn with_max_retry_delay(mut self, value: Duration) -> Self {
        self.max_retry_delay = value;
        self
    }
    /// Sets [`BlobOptions::list_page_size`].
    pub fn with_list_page_size(mut self, value: u32) -> Self {
        self.list_page_size = Some(value.max(1));
        self
    }
    /// Sets [`BlobOptions::extra_roots`].
    pub fn with_extra_roots(
        mut self,
        value: Vec<rustls_pki_types::CertificateDer<'static>>,
    ) -> Self {
        self.extra_roots = value;
        self
    }
    /// Sets [`BlobOptions::create_container`].
    pub fn with_create_container(mut self, value: bool) -> Self {
        self.create_container = value;
        self
    }
}

/// Ownership and checkpoints as blobs in one container. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct BlobPartitionManager {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    page_size: Option<String>,
    container: String,
    credential_kind: &'static str,
}

impl fmt::Debug for BlobPartitionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobPartitionManager")
            .field("endpoint", &self.inner.http.endpoint().origin())
            .field("container", &self.inner.container)
            .field("credential", &self.inner.credential_kind)
            .finish()
    }
}

fn is_valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

impl BlobPartitionManager {
    /// A store in `container` of the account a storage connection string names; checks the
    /// container (creating it with [`BlobOptions::create_container`]), so a wrong key, SAS or
    /// container fails here with a clear error.
    pub async fn connect(
        connection_string: &str,
        container: &str,
        options: BlobOptions,
    ) -> Result<Self, PartitionManagerError> {
        let cs = StorageConnectionString::parse(connection_string)?;
        Self::connect_with(&cs.blob_endpoint, cs.credential, container, options).await
    }

    /// A store at `blob_endpoint` (e.g. `https://acct.blob.core.windows.net`) authorized by an
    /// Azure AD credential (scope `https://storage.azure.com/.default`).
    pub async fn connect_with_token(
        blob_endpoint: &str,
        credential: impl TokenCredential + 'static,
        container: &str,
        options: BlobOptions,
    ) -> Result<Self, PartitionManagerError> {
        let cred = StorageCredential::Token(Arc::new(credential));
        Self::connect_with(blob_endpoint, cred, container, options).await
    }

    /// A store at `blob_endpoint` with any [`StorageCredential`].
    pub async fn connect_with(
        blob_endpoint: &str,
        credential: StorageCredential,
        container: &str,
        options: BlobOptions,
    ) -> Result<Self, PartitionManagerError> {
        if !is_valid_container(container) {
            return Err(PartitionManagerError::Config(format!(
                "{container:?} is not a valid container name (3-63 of a-z, 0-9 and single '-')"
            )));
        }
        let credential_kind = match credential {
            StorageCredential::SharedKey { .. } => "shared key",
            StorageCredential::Sas(_) => "SAS",
            StorageCredential::Token(_) => "token",
        };
        let create = options.create_container;
        let page_size = options.list_page_size.map(|n| n.to_string());
        let http = Http::new(Endpoint::parse(blob_endpoint)?, credential, options)?;
        let store = BlobPartitionManager {
            inner: Arc::new(Inner {
                http,
                page_size,
                container: container.to_owned(),
                credential_kind,
            }),
        };
        store.ensure_container(create).await?;
        Ok(store)
    }

    /// The container.
    pub fn container(&self) -> &str {
        &self.inner.container
    }

    async fn ensure_container(&self, create: bool) -> Result<(), PartitionManagerError> {
        let path = format!("/{}", self.inner.container);
        // A List Blobs of one blob works with container-level SAS too (Get Container
        // Properties needs more rights than a checkpoint store has).
        let q = [
            ("restype", "container"),
            ("comp", "list"),
            ("maxresults", "1"),
        ];
        let resp = self.inner.http.send(Method::GET, &path, &q, &[]).await?;
        match resp.status {
            200 => Ok(()),
            404 if create => {
                let resp = self
                    .inner
                    .http
                    .send(Method::PUT, &path, &[("restype", "container")], &[])
                    .await?;
                match resp.status {
                    201 | 409 => Ok(()),
                    _ => Err(service_error(&resp)),
                }
            }
            404 => Err(PartitionManagerError::ContainerNotFound(
                self.inner.container.clone(),
            )),
            _ => Err(service_error(&resp)),
        }
    }

    fn blob_path(&self, name: &str) -> String {
        let encoded: Vec<String> = name.split('/').map(percent_encode).collect();
        format!("/{}/{}", self.inner.container, encoded.join("/"))
    }

    /// Every blob under `prefix`, following `NextMarker` pages.
    async fn list(&self, prefix: &str) -> Result<Vec<ListedBlob>, PartitionManagerError> {
        let path = format!("/{}", self.inner.container);
        let mut marker: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut q = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
                ("include", "metadata"),
            ];
            if let Some(n) = self.inner.page_size.as_deref() {
                q.push(("maxresults", n));
            }
            if let Some(m) = marker.as_deref() {
                q.push(("marker", m));
            }
            let resp = self.inner.http.send(Method::GET, &path, &q, &[]).await?;
            match resp.status {
                200 => {}
                404 => {
                    return Err(PartitionManagerError::ContainerNotFound(
                        self.inner.container.clone(),
                    ))
                }
                _ => return Err(service_error(&resp)),
            }
            let page = parse_list(&String::from_utf8_lossy(&resp.body)).map_err(|why| {
                PartitionManagerError::Corrupt {
                    path: format!("List Blobs of {prefix}"),
                    why,
                }
            })?;
            out.extend(page.blobs);
            if out.len() > MAX_LISTED {
                return Err(PartitionManagerError::Corrupt {
                    path: format!("List Blobs of {prefix}"),
                    why: format!("more than {MAX_LISTED} records (a group has one per partition)"),
                });
            }
            match page.next_marker {
                Some(m) if marker.as_deref() != Some(m.as_str()) => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    async fn claim_one(
        &self,
        mut claim: Ownership,
    ) -> Result<Option<Ownership>, PartitionManagerError> {
        let name = record_name(
            &claim.fully_qualified_namespace,
            &claim.event_hub_name,
            &claim.consumer_group,
            "ownership",
            &claim.partition_id,
        );
        let path = self.blob_path(&name);
        let owner = ("x-ms-meta-ownerid", claim.owner_id.clone());
        let resp = match &claim.etag {
            Some(etag) => {
                let headers = [owner, ("if-match", quoted(etag))];
                self.inner
                    .http
                    .send(Method::PUT, &path, &[("comp", "metadata")], &headers)
                    .await?
            }
            None => {
                let headers = [
                    owner,
                    ("x-ms-blob-type", "BlockBlob".to_owned()),
                    ("if-none-match", "*".to_owned()),
                ];
                self.inner
                    .http
                    .send(Method::PUT, &path, &[], &headers)
                    .await?
            }
        };
        match resp.status {
            200 | 201 => {
                claim.etag = resp.header("etag").map(quoted);
                claim.last_modified_time = resp
                    .header("last-modified")
                    .and_then(http_date::parse)
                    .unwrap_or_else(SystemTime::now);
                Ok(Some(claim))
            }
            // Another owner won the race (412 on a stale etag, 409 when the blob appeared, 404
            // when it vanished): an outcome, not a failure.
            404 | 409 | 412 => {
                tracing::debug!(target: "eventhubs::blob", blob = name, status = resp.status, "ownership claim lost");
                Ok(None)
            }
            _ => Err(service_error(&resp)),
        }
    }
}

/// `If-Match` wants the quoted form; List Blobs may give it bare.
fn quoted(etag: &str) -> String {
    let e = etag.trim();
    if e.starts_with('"') || e.starts_with("W/") {
        e.to_owned()
    } else {
        format!("\"{e}\"")
    }
}

fn record_name(ns: &str, hub: &str, cg: &str, kind: &str, partition: &str) -> String {
    format!("{ns}/{hub}/{cg}/{kind}/{partition}").to_lowercase()
}

fn prefix(ns: &str, hub: &str, cg: &str, kind: &str) -> String {
    format!("{ns}/{hub}/{cg}/{kind}/").to_lowercase()
}

fn service_error(resp: &http::Response) -> PartitionManagerError {
    let (code, message) = resp.error();
    PartitionManagerError::Service {
        status: resp.status,
        code,
        message,
    }
}

impl PartitionManager for BlobPartitionManager {
    fn list_ownership<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Ownership>> {
        Box::pin(async move {
            let p = prefix(namespace, event_hub, consumer_group, "ownership");
            let blobs = self.list(&p).await?;
            Ok(blobs
                .into_iter()
                .filter_map(|b| {
                    let partition = b.name.strip_prefix(&p)?.to_owned();
                    Some(Ownership {
                        fully_qualified_namespace: namespace.to_owned(),
                        event_hub_name: event_hub.to_owned(),
                        consumer_group: consumer_group.to_owned(),
                        owner_id: b.meta("ownerid").unwrap_or("").to_owned(),
                        last_modified_time: http_date::parse(&b.last_modified)
                            .unwrap_or(SystemTime::UNIX_EPOCH),
                        etag: Some(quoted(&b.etag)),
                        partition_id: partition,
                    })
                })
                .collect())
        })
    }

    fn claim_ownership<'a>(&'a self, claims: Vec<Ownership>) -> StoreFuture<'a, Vec<Ownership>> {
        Box::pin(async move {
            let mut won = Vec::with_capacity(claims.len());
            for claim in claims {
                if let Some(c) = self.claim_one(claim).await? {
                    won.push(c);
                }
            }
            Ok(won)
        })
    }

    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let name = record_name(
                &checkpoint.fully_qualified_namespace,
                &checkpoint.event_hub_name,
                &checkpoint.consumer_group,
                "checkpoint",
                &checkpoint.partition_id,
            );
            let path = self.blob_path(&name);
            let mut headers = Vec::new();
            if let Some(o) = &checkpoint.offset {
                headers.push(("x-ms-meta-offset", o.clone()));
            }
            if let Some(s) = checkpoint.sequence_number {
                headers.push(("x-ms-meta-sequencenumber", s.to_string()));
            }
            let http = &self.inner.http;
            let resp = http
                .send(Method::PUT, &path, &[("comp", "metadata")], &headers)
                .await?;
            let resp = if resp.status == 404 {
                headers.push(("x-ms-blob-type", "BlockBlob".to_owned()));
                http.send(Method::PUT, &path, &[], &headers).await?
            } else {
                resp
            };
            match resp.status {
                200 | 201 => Ok(()),
                _ => Err(service_error(&resp)),
            }
        })
    }

    fn list_checkpoints<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Checkpoint>> {
        Box::pin(async move {
            let p = prefix(namespace, event_hub, consumer_group, "checkpoint");
            let blobs = self.list(&p).await?;
            let mut out = Vec::with_capacity(blobs.len());
            for b in blobs {
                let Some(partition) = b.name.strip_prefix(&p) else {
                    continue;
                };
                let sequence_number = match b.meta("sequencenumber") {
                    Some(s) => {
                        Some(
                            s.parse::<i64>()
                                .map_err(|_| PartitionManagerError::Corrupt {
                                    path: b.name.clone(),
                                    why: format!("sequencenumber {s:?} is not an integer"),
                                })?,
                        )
                    }
                    None => None,
                };
                out.push(Checkpoint {
                    fully_qualified_namespace: namespace.to_owned(),
                    event_hub_name: event_hub.to_owned(),
                    consumer_group: consumer_group.to_owned(),
                    partition_id: partition.to_owned(),
                    offset: b.meta("offset").map(str::to_owned),
                    sequence_number,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_like_the_official_sdks() {
        assert_eq!(
            record_name(
                "NS.servicebus.windows.net",
                "MyHub",
                "$Default",
                "ownership",
                "0"
            ),
            "ns.servicebus.windows.net/myhub/$default/ownership/0"
        );
        assert_eq!(quoted("0x8D1"), "\"0x8D1\"");
        assert_eq!(quoted("\"0x8D1\""), "\"0x8D1\"");
        assert!(is_valid_container("checkpoints-1"));
        assert!(
            !is_valid_container("Checkpoints")
                && !is_valid_container("a")
                && !is_valid_container("a--b")
        );
    }
}
