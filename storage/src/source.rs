//! Sources: where files are listed, read and streamed.
//!
//! A [`Source`] lists the files under its root as a stream (bounded memory:
//! entries flow through, nothing collects the whole listing) and reads byte
//! ranges of them. S3-compatible stores and local mounts go through
//! `object_store`; dCache doors, EOS XrdHttp and plain WebDAV servers
//! through [`crate::http::HttpSource`], which copes with the ways such servers differ.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::error::{Error, ErrorKind};

/// A stream of an object's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

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
    /// A Zarr store at `path`, listed as one entry.
    pub fn zarr_store(path: String) -> Self {
        Self {
            path,
            size: 0,
            modified: None,
            etag: None,
            kind: EntryKind::ZarrStore,
        }
    }

    /// The change token: the ETag, else size and modification time.
    pub fn token(&self) -> String {
        match (&self.etag, &self.modified) {
            (Some(e), _) => format!("etag:{e}"),
            (None, Some(m)) => format!("size:{}:mtime:{}", self.size, m.timestamp_millis()),
            (None, None) => format!("size:{}", self.size),
        }
    }
}

/// One level of a directory: the directories directly under it, and its
/// files and Zarr stores (what [`Source::list`] yields at that level).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    /// Directories that are neither hidden nor Zarr stores, as paths
    /// relative to the root, in name order.
    pub dirs: Vec<String>,
    /// Files and Zarr stores directly in the directory.
    pub entries: Vec<Entry>,
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
    fn list(&self) -> BoxStream<'_, Result<Entry, Error>>;

    /// What [`Source::list`] yields under the directory `dir` (relative to
    /// the root, no trailing slash), listing only that directory's tree
    /// where the storage allows it.
    fn list_under(&self, dir: &str) -> BoxStream<'_, Result<Entry, Error>> {
        let prefix = format!("{dir}/");
        self.list()
            .try_filter(move |e| std::future::ready(e.path.starts_with(&prefix)))
            .boxed()
    }

    /// One level of the directory `dir` (`""` for the root), in one
    /// request where the storage allows it; `None` where it cannot list
    /// one level.
    async fn list_level(&self, _dir: &str) -> Result<Option<Level>, Error> {
        Ok(None)
    }

    /// Bytes `range` of the object at `path`.
    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, Error>;

    /// A whole small object (Zarr metadata documents, coordinate chunks);
    /// `None` when it does not exist.
    async fn read_small(&self, path: &str) -> Result<Option<Bytes>, Error>;

    /// Metadata of one object; `None` when it does not exist.
    async fn head(&self, path: &str) -> Result<Option<Entry>, Error>;

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
    async fn child_dirs(&self, _dir: &str, _max: usize) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }

    /// Bytes `range` of `path` as a stream, read from the storage as the
    /// consumer takes them (bounded memory whatever the object's size;
    /// dropping the stream cancels the read).
    async fn stream(&self, path: &str, range: Range<u64>) -> Result<ByteStream, Error>;

    /// A URL of `path` that anyone holding it may GET until `expires` from
    /// now, signed by the storage itself (S3 `SigV4`); `None` where the
    /// storage cannot presign.
    async fn presign(&self, _path: &str, _expires: Duration) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// The longest validity the storage's own signatures allow.
    fn presign_limit(&self) -> Duration {
        Duration::ZERO
    }

    /// The door's URL of `path` with a read-only dCache/XRootD macaroon valid
    /// for `validity`; `None` where the door issues none (it answers 404 or
    /// 405 to the request, or the backend has no doors).
    async fn macaroon(&self, _path: &str, _validity: Duration) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// The relative path of an href this source made with [`Source::href`];
    /// `None` when the href lies outside the source.
    fn relative(&self, href: &str) -> Option<String>;

    /// Where `path` really is when a symbolic link inside the root leads
    /// elsewhere inside it (local sources); `None` when it is where it says.
    fn real_path(&self, _path: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// The source URL, without credentials, for reports.
    fn describe(&self) -> String;

    /// Request counters.
    fn stats(&self) -> Arc<IoStats>;
}

/// Refuse a relative path that could step out of a source's root: empty
/// or `.`/`..` segments, backslashes, NUL, a leading slash.
pub fn check_relative(path: &str) -> Result<(), Error> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains(['\\', '\0'])
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::new(
            ErrorKind::InvalidPath,
            path,
            "not a path inside the source (empty, `.` or `..` segments, backslashes)",
        ));
    }
    Ok(())
}

/// Refuse a directory path a crawl would list below the root: a leading
/// `/`, or empty, `.` or `..` segments. Names as storage lists them (with
/// backslashes, say) pass: they came from the storage itself.
pub fn check_listed_dir(dir: &str) -> Result<(), Error> {
    if dir.starts_with('/')
        || dir
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Error::new(
            ErrorKind::InvalidPath,
            dir,
            "not a directory inside the source (empty, `.` or `..` segments)",
        ));
    }
    Ok(())
}

/// Bytes `skip..skip + len` of a stream that starts at its object's byte
/// `0` (or wherever the server started it), passing chunks through as they
/// come; a stream that ends early is an error.
pub fn window<S, E>(inner: S, skip: u64, len: u64, what: String) -> ByteStream
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let state = (Box::pin(inner), skip, len);
    futures::stream::unfold(Some(state), move |state| {
        let what = what.clone();
        async move {
            let (mut inner, mut skip, mut left) = state?;
            loop {
                if left == 0 {
                    return None;
                }
                match inner.next().await {
                    None => {
                        let e = Error::request(
                            what,
                            format_args!("the storage ended the object {left} bytes early"),
                        );
                        return Some((Err(e), None));
                    }
                    Some(Err(e)) => return Some((Err(Error::request(what, e)), None)),
                    Some(Ok(mut chunk)) => {
                        if skip > 0 {
                            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
                            let _ = chunk.split_to(n);
                            skip -= n as u64;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                        chunk.truncate(n);
                        left -= n as u64;
                        return Some((Ok(chunk), Some((inner, skip, left))));
                    }
                }
            }
        }
    })
    .boxed()
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
pub enum KeyClass<'a> {
    Plain,
    Hidden,
    InZarr(&'a str),
}

/// Classify a key. Segments inside a Zarr store are not checked for
/// hiddenness (`.zarray`, `.zmetadata` belong to the store).
pub fn classify(key: &str) -> KeyClass<'_> {
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
pub fn open(url: &str, settings: &SourceSettings) -> Result<Arc<dyn Source>, Error> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(crate::object::ObjectSource::s3(url, settings)?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(crate::http::HttpSource::new(url, settings)?));
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => std::path::PathBuf::from(percent_decode(p).map_err(|e| {
            Error::config(format!("bad file URL {}: {e}", crate::redact::urls(url)))
        })?),
        None if url.contains("://") => {
            return Err(Error::config(format!(
                "unsupported storage URL {url}: use s3://, http(s)://, file:// or a path"
            )));
        }
        None => std::path::PathBuf::from(url),
    };
    Ok(Arc::new(crate::object::ObjectSource::local(
        &path, settings,
    )?))
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
