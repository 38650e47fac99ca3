//! Storage sources: where files are listed and read.
//!
//! A [`Source`] lists the files under its root as a stream (bounded memory:
//! entries flow through, nothing collects the whole listing) and reads byte
//! ranges of them. S3-compatible stores and local mounts go through
//! `object_store`; dCache doors, EOS XrdHttp and plain WebDAV servers
//! through [`http::HttpSource`], which copes with the ways such servers differ.

pub mod http;
pub mod object;
pub mod redact;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

/// Errors of a storage source. Messages carry URLs without credentials.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The object does not exist.
    #[error("{0}: not found")]
    NotFound(String),
    /// A request failed.
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
    /// The source could not be set up (bad URL, missing settings).
    #[error("{0}")]
    Config(String),
}

impl SourceError {
    pub(crate) fn request(url: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Request {
            url: url.into(),
            reason: reason.to_string(),
        }
    }
}

/// What a listing yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A plain file.
    File,
    /// The root of a Zarr store (a directory, listed as one entry).
    ZarrStore,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the source root, `/`-separated, no leading slash.
    pub path: String,
    /// Size in bytes (0 for a Zarr store).
    pub size: u64,
    /// Last modification time, when the storage reports one.
    pub modified: Option<DateTime<Utc>>,
    /// The storage's entity tag, when it reports one (many do not).
    pub etag: Option<String>,
    /// File or Zarr store.
    pub kind: EntryKind,
}

impl Entry {
    /// The change token: the ETag, else size and modification time.
    pub fn token(&self) -> String {
        match (&self.etag, &self.modified) {
            (Some(e), _) => format!("etag:{e}"),
            (None, Some(m)) => format!("size:{}:mtime:{}", self.size, m.timestamp_millis()),
            (None, None) => format!("size:{}", self.size),
        }
    }
}

/// Checksums a server volunteered (RFC 3230 `Digest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// Adler-32, lower-case hex.
    pub adler32: Option<String>,
    /// MD5, lower-case hex.
    pub md5: Option<String>,
}

/// Request counters, shared by a source and whoever reports on it.
#[derive(Debug, Default)]
pub struct IoStats {
    /// Listing requests (LIST pages, PROPFINDs, directory reads).
    pub lists: AtomicU64,
    /// Range or whole-object reads.
    pub reads: AtomicU64,
    /// Reads that asked for the whole object.
    pub whole_reads: AtomicU64,
    /// HEAD requests.
    pub heads: AtomicU64,
    /// Bytes received by reads.
    pub bytes: AtomicU64,
    /// Listing entries that could not be placed under the directory that was
    /// listed (href, reason): reported, never silently dropped.
    pub unplaced: std::sync::Mutex<Vec<(String, String)>>,
}

impl IoStats {
    pub(crate) fn unplaced(&self, href: String, reason: String) {
        if let Ok(mut list) = self.unplaced.lock()
            && list.len() < 100_000
        {
            list.push((href, reason));
        }
    }

    /// Take the unplaced listing entries recorded so far.
    pub fn take_unplaced(&self) -> Vec<(String, String)> {
        self.unplaced
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub(crate) fn read(&self, bytes: usize, whole: bool) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if whole {
            self.whole_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A storage location that can be listed and read.
#[async_trait]
pub trait Source: Send + Sync {
    /// Every file under the root, and every Zarr store as one entry, hidden
    /// and temporary files left out. Order is the storage's.
    fn list(&self) -> BoxStream<'_, Result<Entry, SourceError>>;

    /// Bytes `range` of the object at `path`.
    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, SourceError>;

    /// A whole small object (Zarr metadata documents, coordinate chunks);
    /// `None` when it does not exist.
    async fn read_small(&self, path: &str) -> Result<Option<Bytes>, SourceError>;

    /// Metadata of one object; `None` when it does not exist.
    async fn head(&self, path: &str) -> Result<Option<Entry>, SourceError>;

    /// Checksums the server volunteered for `path` while it was read, if any.
    fn digests(&self, _path: &str) -> Option<Digests> {
        None
    }

    /// The storage's own URL of `path` (`s3://…`, `https://door/…`, `file:///…`).
    fn href(&self, path: &str) -> String;

    /// An `https` URL of `path` beside [`Source::href`], where one exists.
    fn alternate_href(&self, _path: &str) -> Option<String> {
        None
    }

    /// Names of the directories directly under `dir` (the nodes of a Zarr
    /// store), at most `max` of them; `None` where the storage cannot list
    /// one level.
    async fn child_dirs(
        &self,
        _dir: &str,
        _max: usize,
    ) -> Result<Option<Vec<String>>, SourceError> {
        Ok(None)
    }

    /// The source URL, without credentials, for reports.
    fn describe(&self) -> String;

    /// Request counters.
    fn stats(&self) -> Arc<IoStats>;
}

/// Whether a path segment names a hidden or temporary file.
pub fn is_hidden(segment: &str) -> bool {
    segment.starts_with('.')
        || segment.starts_with('~')
        || segment.ends_with('~')
        || segment.ends_with(".tmp")
        || segment.ends_with(".part")
        || segment.ends_with(".partial")
        || segment.starts_with(".nfs")
}

/// Where a listed key lies: in a Zarr store (its root path), hidden, or plain.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyClass<'a> {
    Plain,
    Hidden,
    InZarr(&'a str),
}

/// Classify a key. Segments inside a Zarr store are not checked for
/// hiddenness (`.zarray`, `.zmetadata` belong to the store).
pub(crate) fn classify(key: &str) -> KeyClass<'_> {
    let mut end = 0;
    for segment in key.split('/') {
        let seg_end = end + segment.len();
        if is_hidden(segment) {
            return KeyClass::Hidden;
        }
        if is_zarr_name(segment) && seg_end < key.len() {
            return KeyClass::InZarr(&key[..seg_end]);
        }
        end = seg_end + 1;
    }
    KeyClass::Plain
}

/// A directory name that marks a Zarr store.
pub fn is_zarr_name(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    lower.ends_with(".zarr") || lower.ends_with(".zarr2") || lower.ends_with(".zarr3")
}

/// Open the source a URL names: `s3://bucket/prefix`, `http(s)://…`,
/// `file:///path` or a plain path.
pub fn open(url: &str, settings: &SourceSettings) -> Result<Arc<dyn Source>, SourceError> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(object::ObjectSource::s3(url, settings)?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(http::HttpSource::new(url, settings)?));
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => std::path::PathBuf::from(percent_decode(p).map_err(|e| {
            SourceError::Config(format!("bad file URL {}: {e}", redact::urls(url)))
        })?),
        None if url.contains("://") => {
            return Err(SourceError::Config(format!(
                "unsupported storage URL {url}: use s3://, http(s)://, file:// or a path"
            )));
        }
        None => std::path::PathBuf::from(url),
    };
    Ok(Arc::new(object::ObjectSource::local(&path, settings)?))
}

fn percent_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
}

/// Per-source settings: credentials and endpoint details. Values come from
/// the config file or the environment; [`std::fmt::Debug`] never shows secrets.
#[derive(Clone, Default)]
pub struct SourceSettings {
    /// S3 endpoint (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// S3 region (`AWS_REGION`).
    pub region: Option<String>,
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<String>,
    /// S3 path-style requests (default for custom endpoints).
    pub path_style: Option<bool>,
    /// Plain-HTTP endpoints allowed (`AWS_ALLOW_HTTP`).
    pub allow_http: Option<bool>,
    /// Bearer token (dCache macaroon, EOS/XrdHttp token).
    pub bearer_token: Option<String>,
    /// Token sent as the `authz=` query parameter (EOS).
    pub authz_token: Option<String>,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// Force an HTTP behaviour: `webdav`, `dcache`, `xrdhttp`.
    pub kind: Option<String>,
    /// Concurrent requests a source may have in flight.
    pub concurrency: usize,
    /// Local sources: follow symbolic links that lead out of the root
    /// (by default they are reported and not followed).
    pub follow_links_outside: bool,
}

impl std::fmt::Debug for SourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("SourceSettings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret(&self.secret_access_key))
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("bearer_token", &secret(&self.bearer_token))
            .field("authz_token", &secret(&self.authz_token))
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .field("follow_links_outside", &self.follow_links_outside)
            .finish()
    }
}

impl SourceSettings {
    /// Fill unset fields from the standard environment variables.
    #[must_use]
    pub fn with_env(mut self) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let flag = |k: &str| var(k).map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"));
        self.endpoint = self
            .endpoint
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| var("AWS_ENDPOINT"));
        self.region = self
            .region
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"));
        self.access_key_id = self.access_key_id.or_else(|| var("AWS_ACCESS_KEY_ID"));
        self.secret_access_key = self
            .secret_access_key
            .or_else(|| var("AWS_SECRET_ACCESS_KEY"));
        self.allow_http = self.allow_http.or_else(|| flag("AWS_ALLOW_HTTP"));
        self.path_style = self.path_style.or_else(|| flag("AWS_S3_PATH_STYLE"));
        self.bearer_token = self.bearer_token.or_else(|| var("ARCOLAKE_BEARER_TOKEN"));
        self.authz_token = self.authz_token.or_else(|| var("ARCOLAKE_AUTHZ_TOKEN"));
        self.username = self.username.or_else(|| var("ARCOLAKE_HTTP_USER"));
        self.password = self.password.or_else(|| var("ARCOLAKE_HTTP_PASSWORD"));
        self
    }

    /// Every secret value, for scrubbing text before it is logged or reported.
    pub fn secrets(&self) -> Vec<String> {
        [
            &self.secret_access_key,
            &self.bearer_token,
            &self.authz_token,
            &self.password,
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect()
    }
}

/// Counts requests made through a source; used by the I/O budget tests too.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified() {
        assert_eq!(classify("a/b.tif"), KeyClass::Plain);
        assert_eq!(classify("a/.hidden/b.tif"), KeyClass::Hidden);
        assert_eq!(classify("a/b.tif.part"), KeyClass::Hidden);
        assert_eq!(
            classify("a/c.zarr/.zmetadata"),
            KeyClass::InZarr("a/c.zarr")
        );
        assert_eq!(classify("c.zarr/lat/0"), KeyClass::InZarr("c.zarr"));
        assert_eq!(classify("a/c.zarr"), KeyClass::Plain);
    }

    #[test]
    fn tokens_prefer_etags() {
        let mut e = Entry {
            path: "a".into(),
            size: 3,
            modified: None,
            etag: Some("\"x\"".into()),
            kind: EntryKind::File,
        };
        assert_eq!(e.token(), "etag:\"x\"");
        e.etag = None;
        assert_eq!(e.token(), "size:3");
    }

    #[test]
    fn settings_debug_hides_secrets() {
        let s = SourceSettings {
            secret_access_key: Some("topsecret".into()),
            bearer_token: Some("macaroon".into()),
            ..SourceSettings::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("macaroon"),
            "{shown}"
        );
        assert_eq!(s.secrets().len(), 2);
    }
}
