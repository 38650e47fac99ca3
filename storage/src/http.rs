//! One source for dCache WebDAV doors, EOS XrdHttp and plain WebDAV servers.
//!
//! Written on `reqwest` rather than `object_store`'s HTTP store because the
//! servers in the field need what that store cannot be told to do: header
//! names sent Title-Case (XrdHttp matches `Range`, `Depth` and `Want-Digest`
//! case-sensitively), PROPFIND answers without `resourcetype` on files or
//! without the trailing slash on collections, range answers that are not
//! 206 or carry a malformed `Content-Range`, the `authz=` query token of EOS,
//! and RFC 3230 digests. Behaviour is chosen by what the server does, not
//! by a flag: only bounded ranges are ever asked for (no suffix or open
//! ranges), and a server that answers a range with 200 is read only as far
//! as needed before the connection is dropped.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use percent_encoding::percent_decode_str;
use quick_xml::events::Event;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::error::{Error, ErrorKind};
use crate::source::{
    ByteStream, Digests, Entry, EntryKind, IoStats, Level, Source, SourceSettings, bump,
    check_listed_dir, is_hidden, is_zarr_name,
};

/// Characters escaped in a path segment (RFC 3986 `pchar` complement).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"#;

/// A WebDAV / XrdHttp / dCache door source.
#[derive(Debug)]
pub struct HttpSource {
    client: reqwest::Client,
    /// For streaming to clients: no limit on a whole request's duration,
    /// only on silence (a 10 GB object takes as long as it takes).
    stream_client: reqwest::Client,
    /// Root URL without credentials, trailing slash trimmed.
    root: url::Url,
    bearer: Option<String>,
    authz: Option<String>,
    basic: Option<(String, Option<String>)>,
    digests: Mutex<HashMap<String, Digests>>,
    /// The server refused a request only because it carried `Want-Digest`
    /// (XrdHttp without checksums configured answers 405): stop asking.
    no_digests: AtomicBool,
    stats: Arc<IoStats>,
}

impl HttpSource {
    /// A source rooted at `url`.
    pub fn new(url: &str, settings: &SourceSettings) -> Result<Self, Error> {
        crate::init_tls();
        let mut root = url::Url::parse(url).map_err(|e| {
            Error::config(format!(
                "{}: {e}",
                crate::redact::text(url, &settings.secrets())
            ))
        })?;
        let mut basic = settings
            .username
            .clone()
            .map(|u| (u, settings.password.clone()));
        if !root.username().is_empty() {
            let user = percent_decode_str(root.username())
                .decode_utf8_lossy()
                .into_owned();
            let pass = root
                .password()
                .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned());
            basic = Some((user, pass));
            let _ = root.set_username("");
            let _ = root.set_password(None);
        }
        let mut authz = settings.authz_token.clone();
        let pairs: Vec<(String, String)> = root.query_pairs().into_owned().collect();
        if let Some((_, token)) = pairs.iter().find(|(k, _)| k == "authz") {
            authz = Some(token.clone());
        }
        root.set_query(None);
        root.set_fragment(None);
        let trimmed = root.path().trim_end_matches('/').to_owned();
        root.set_path(&trimmed);
        let builder = || {
            reqwest::Client::builder()
                .http1_title_case_headers()
                .http1_only()
                .user_agent(concat!("arcolake/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(15))
                .pool_max_idle_per_host(settings.concurrency.max(8))
        };
        let built = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| Error::config(crate::redact::urls(&format!("{url}: {e}"))))
        };
        let client = built(builder().timeout(Duration::from_secs(120)))?;
        let stream_client = built(builder().read_timeout(Duration::from_secs(60)))?;
        Ok(Self {
            client,
            stream_client,
            root,
            bearer: settings.bearer_token.clone(),
            authz,
            basic,
            digests: Mutex::default(),
            no_digests: AtomicBool::new(settings.kind.as_deref() == Some("xrdhttp")),
            stats: Arc::default(),
        })
    }

    /// The URL of a relative path, without credentials.
    fn url_of(&self, path: &str) -> url::Url {
        let mut url = self.root.clone();
        // The root of a server has the path "/": joined as is, a child would
        // become "//child", which doors answer with 400.
        let mut p = self.root.path().trim_end_matches('/').to_owned();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.push('/');
            p.push_str(&percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string());
        }
        if p.is_empty() {
            p.push('/');
        }
        url.set_path(&p);
        url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_with(&self.client, method, path)
    }

    fn request_with(&self, client: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let mut url = self.url_of(path);
        if let Some(t) = &self.authz {
            url.query_pairs_mut().append_pair("authz", t);
        }
        let mut req = client.request(method, url);
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        } else if let Some((u, p)) = &self.basic {
            req = req.basic_auth(u, p.as_deref());
        }
        req
    }

    async fn send(&self, req: RequestBuilder, path: &str) -> Result<Response, Error> {
        req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            Error::new(kind, self.href(path), scrub(&e.without_url().to_string()))
        })
    }

    /// Send a request built by `build`, asking for digests unless the server
    /// has refused that; on a refusal, ask again without and remember.
    async fn send_wanting_digests(
        &self,
        path: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Error> {
        if self.no_digests.load(Ordering::Relaxed) {
            return self.send(build(), path).await;
        }
        let resp = self
            .send(build().header("Want-Digest", "adler32, md5"), path)
            .await?;
        if matches!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::BAD_REQUEST
        ) {
            let retry = self.send(build(), path).await?;
            if retry.status().is_success() {
                self.no_digests.store(true, Ordering::Relaxed);
                tracing::debug!(source = %self.root, "server refuses Want-Digest; not asking again");
            }
            return Ok(retry);
        }
        Ok(resp)
    }

    fn status_error(&self, path: &str, status: StatusCode) -> Error {
        Error::from_status(self.href(path), status.as_u16())
    }

    fn remember_digests(&self, path: &str, resp: &Response) {
        if let Some(d) = parse_digest_headers(resp.headers())
            && let Ok(mut map) = self.digests.lock()
        {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(path.to_owned(), d);
        }
    }

    /// Whether `path` is a collection (a directory), by PROPFIND Depth 0.
    async fn is_collection(&self, path: &str) -> Result<bool, Error> {
        let method = Method::from_bytes(b"PROPFIND").expect("valid method");
        let req = self
            .request(method, path)
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(PROPFIND_BODY);
        let resp = self.send(req, path).await?;
        if resp.status() != StatusCode::MULTI_STATUS {
            return Ok(false);
        }
        let body = read_bounded(resp, 1 << 20)
            .await
            .map_err(|e| Error::request(self.href(path), e))?;
        Ok(parse_multistatus(&body).is_ok_and(|r| r.iter().any(|d| d.collection)))
    }

    /// Every entry under `dir`, depth first, directories in name order.
    fn walk(&self, dir: String) -> BoxStream<'_, Result<Entry, Error>> {
        let walk = Walk {
            dirs: vec![dir],
            ready: std::collections::VecDeque::new(),
        };
        futures::stream::unfold(walk, move |mut w| async move {
            loop {
                if let Some(e) = w.ready.pop_front() {
                    return Some((Ok(e), w));
                }
                let dir = w.dirs.pop()?;
                let level = match self.level(&dir).await {
                    Ok(level) => level,
                    Err(e) => {
                        w.dirs.clear();
                        return Some((Err(e), w));
                    }
                };
                w.ready.extend(level.entries);
                w.dirs.extend(level.dirs.into_iter().rev());
            }
        })
        .boxed()
    }

    /// One level of `dir`: its directories in name order, its files and
    /// Zarr stores in the server's order.
    async fn level(&self, dir: &str) -> Result<Level, Error> {
        let mut level = Level::default();
        for (name, listed) in self.list_dir(dir).await? {
            if is_hidden(&name) {
                continue;
            }
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            match listed {
                Listed::Dir if is_zarr_name(&name) => level.entries.push(Entry::zarr_store(rel)),
                Listed::Dir => level.dirs.push(rel),
                Listed::File(e) => level.entries.push(e),
            }
        }
        level.dirs.sort();
        Ok(level)
    }

    /// One directory's children (PROPFIND, Depth 1).
    async fn list_dir(&self, dir: &str) -> Result<Vec<(String, Listed)>, Error> {
        bump(&self.stats.lists);
        let method = Method::from_bytes(b"PROPFIND").expect("valid method");
        let req = self
            .request(method, dir)
            .header("Depth", "1")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(PROPFIND_BODY);
        let resp = self.send(req, dir).await?;
        let status = resp.status();
        if status != StatusCode::MULTI_STATUS && !status.is_success() {
            return Err(self.status_error(dir, status));
        }
        let body = read_bounded(resp, MAX_PROPFIND_BYTES)
            .await
            .map_err(|e| Error::request(self.href(dir), e))?;
        let responses = parse_multistatus(&body).map_err(|e| {
            Error::request(self.href(dir), format!("unreadable PROPFIND answer: {e}"))
        })?;
        drop(body);
        let dir_segments = decoded_segments(self.url_of(dir).path());
        let mut out = Vec::with_capacity(responses.len());
        for r in responses {
            let name = match place(&dir_segments, &r.href) {
                Ok(Some(name)) => name,
                Ok(None) => continue,
                Err(why) => {
                    self.stats.unplaced(
                        r.href.clone(),
                        format!("listed under {}, but {why}; not registered", self.href(dir)),
                    );
                    continue;
                }
            };
            let is_dir = r.collection || r.href.trim_end().ends_with('/');
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let listed = if is_dir {
                Listed::Dir
            } else {
                Listed::File(Entry {
                    path: rel.clone(),
                    size: r.length.unwrap_or(0),
                    modified: r.modified,
                    etag: r.etag,
                    kind: EntryKind::File,
                })
            };
            out.push((name, listed));
        }
        Ok(out)
    }
}

#[derive(Debug)]
enum Listed {
    Dir,
    File(Entry),
}

struct Walk {
    dirs: Vec<String>,
    ready: std::collections::VecDeque<Entry>,
}

#[async_trait]
impl Source for HttpSource {
    fn list(&self) -> BoxStream<'_, Result<Entry, Error>> {
        self.walk(String::new())
    }

    fn list_under(&self, dir: &str) -> BoxStream<'_, Result<Entry, Error>> {
        if let Err(e) = check_listed_dir(dir) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.walk(dir.to_owned())
    }

    async fn list_level(&self, dir: &str) -> Result<Option<Level>, Error> {
        if !dir.is_empty() {
            check_listed_dir(dir)?;
        }
        self.level(dir).await.map(Some)
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, Error> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let want = usize::try_from(range.end - range.start)
            .map_err(|_| Error::request(self.href(path), "range too large"))?;
        let range_header = format!("bytes={}-{}", range.start, range.end - 1);
        let resp = self
            .send_wanting_digests(path, || {
                self.request(Method::GET, path)
                    .header("Range", range_header.as_str())
            })
            .await?;
        let status = resp.status();
        self.remember_digests(path, &resp);
        let skip = match status {
            StatusCode::PARTIAL_CONTENT => {
                // Trust the start in Content-Range when it parses; some servers
                // send a malformed one, and then the start we asked for.
                content_range_start(resp.headers()).map_or(0, |s| range.start.saturating_sub(s))
            }
            StatusCode::OK => range.start,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(Error::request(
                    self.href(path),
                    "range beyond the end of the file",
                ));
            }
            s => return Err(self.status_error(path, s)),
        };
        let bytes = take_range(resp, skip, want)
            .await
            .map_err(|e| Error::request(self.href(path), e))?;
        self.stats.read(bytes.len(), false);
        Ok(bytes)
    }

    async fn read_small(&self, path: &str) -> Result<Option<Bytes>, Error> {
        let resp = self.send(self.request(Method::GET, path), path).await?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                self.stats.read(0, true);
                return Ok(None);
            }
            s if !s.is_success() => return Err(self.status_error(path, s)),
            _ => {}
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::request(self.href(path), e.without_url()))?;
        self.stats.read(bytes.len(), true);
        Ok(Some(bytes))
    }

    async fn head(&self, path: &str) -> Result<Option<Entry>, Error> {
        bump(&self.stats.heads);
        let resp = self
            .send_wanting_digests(path, || self.request(Method::HEAD, path))
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s if !s.is_success() => return Err(self.status_error(path, s)),
            _ => {}
        }
        self.remember_digests(path, &resp);
        let h = resp.headers();
        let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Doors answer HEAD on a directory too (an empty body, or an HTML
        // listing): what looks like one is asked about by PROPFIND, and a
        // directory is no object.
        // (XrdHttp answers a directory as it answers a file: a length and
        // nothing else, so any answer without validators is asked about.)
        let maybe_directory = text("content-type").is_some_and(|t| t.starts_with("text/html"))
            || (text("etag").is_none() && text("last-modified").is_none());
        if maybe_directory && self.is_collection(path).await? {
            return Ok(None);
        }
        Ok(Some(Entry {
            path: path.to_owned(),
            size: text("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            modified: text("last-modified").and_then(|v| parse_http_date(&v)),
            etag: text("etag"),
            kind: EntryKind::File,
        }))
    }

    fn digests(&self, path: &str) -> Option<Digests> {
        self.digests.lock().ok()?.remove(path)
    }

    async fn child_dirs(&self, dir: &str, max: usize) -> Result<Option<Vec<String>>, Error> {
        let mut names: Vec<String> = self
            .list_dir(dir)
            .await?
            .into_iter()
            .filter(|(name, listed)| matches!(listed, Listed::Dir) && !is_hidden(name))
            .map(|(name, _)| name)
            .take(max)
            .collect();
        names.sort();
        Ok(Some(names))
    }

    async fn stream(&self, path: &str, range: Range<u64>) -> Result<ByteStream, Error> {
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let req = self
            .request_with(&self.stream_client, Method::GET, path)
            .header("Range", format!("bytes={}-{}", range.start, range.end - 1));
        let resp = self.send(req, path).await?;
        let skip = match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                content_range_start(resp.headers()).map_or(0, |s| range.start.saturating_sub(s))
            }
            // The door ignored the range: skip to its start.
            StatusCode::OK => range.start,
            s => return Err(self.status_error(path, s)),
        };
        self.stats.read(0, false);
        let body = resp
            .bytes_stream()
            .map(|c| c.map_err(|e| scrub(&e.without_url().to_string())));
        Ok(crate::source::window(
            body,
            skip,
            range.end - range.start,
            self.href(path),
        ))
    }

    async fn macaroon(&self, path: &str, validity: Duration) -> Result<Option<String>, Error> {
        let url = self.url_of(path);
        let caveat_path = decoded_segments(url.path()).join("/");
        let body = serde_json::json!({
            "caveats": ["activity:DOWNLOAD,LIST", format!("path:/{caveat_path}")],
            "validity": format!("PT{}S", validity.as_secs().max(1)),
        });
        let req = self
            .request(Method::POST, path)
            .header("Content-Type", "application/macaroon-request")
            .body(body.to_string());
        let resp = self.send(req, path).await?;
        match resp.status() {
            // No macaroons at this door: the caller streams through the proxy.
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {
                return Ok(None);
            }
            s if !s.is_success() => return Err(self.status_error(path, s)),
            _ => {}
        }
        let text = read_bounded(resp, 1 << 20)
            .await
            .map_err(|e| Error::request(self.href(path), e))?;
        // dCache answers {"macaroon", "uri": {...}}, XRootD/EOS {"macaroon"}
        // only: the door URL is built here either way.
        let macaroon = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("macaroon")?.as_str().map(str::to_owned))
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                Error::request(
                    self.href(path),
                    "the door's macaroon answer has no `macaroon`",
                )
            })?;
        let mut signed = url;
        signed.query_pairs_mut().append_pair("authz", &macaroon);
        Ok(Some(signed.to_string()))
    }

    fn relative(&self, href: &str) -> Option<String> {
        let url = url::Url::parse(href).ok()?;
        if url.scheme() != self.root.scheme()
            || url.host_str() != self.root.host_str()
            || url.port_or_known_default() != self.root.port_or_known_default()
        {
            return None;
        }
        let root = decoded_segments(self.root.path());
        let segments = decoded_segments(url.path());
        (segments.len() > root.len() && segments[..root.len()] == root[..])
            .then(|| segments[root.len()..].join("/"))
    }

    fn href(&self, path: &str) -> String {
        self.url_of(path).to_string()
    }

    fn describe(&self) -> String {
        self.root.to_string()
    }

    fn stats(&self) -> Arc<IoStats> {
        Arc::clone(&self.stats)
    }
}

/// Read `want` bytes after skipping `skip` from a response body, then drop it.
async fn take_range(resp: Response, skip: u64, want: usize) -> Result<Bytes, String> {
    let mut out = BytesMut::with_capacity(want.min(1 << 24));
    let mut skip = skip;
    let mut body = resp.bytes_stream();
    while out.len() < want {
        let Some(chunk) = body.next().await else {
            break;
        };
        let mut chunk = chunk.map_err(|e| e.without_url().to_string())?;
        if skip > 0 {
            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
            let _ = chunk.split_to(n);
            skip -= n as u64;
        }
        let n = chunk.len().min(want - out.len());
        out.extend_from_slice(&chunk[..n]);
    }
    if out.len() < want {
        return Err(format!("short read: {} of {want} bytes", out.len()));
    }
    Ok(out.freeze())
}

/// The first byte position of a `Content-Range: bytes a-b/n` header.
fn content_range_start(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get("content-range")?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// RFC 3230 `Digest: adler32=…, md5=…` (md5 is base64; some servers send hex).
fn parse_digest_headers(h: &reqwest::header::HeaderMap) -> Option<Digests> {
    let mut d = Digests::default();
    for v in h.get_all("digest") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let Some((alg, val)) = part.trim().split_once('=') else {
                continue;
            };
            match alg.to_ascii_lowercase().as_str() {
                "adler32" => d.adler32 = Some(val.trim().to_ascii_lowercase()),
                "md5" => d.md5 = md5_hex(val.trim()),
                _ => {}
            }
        }
    }
    (d.adler32.is_some() || d.md5.is_some()).then_some(d)
}

fn md5_hex(v: &str) -> Option<String> {
    use base64::Engine as _;
    if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(v.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    (raw.len() == 16).then(|| crate::signing::hex(&raw))
}

fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(v.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Largest PROPFIND answer read for one directory: a directory with more
/// entries than fit is an error with the reason, never gigabytes in memory.
const MAX_PROPFIND_BYTES: usize = 256 << 20;

/// A response body, read chunk by chunk up to `limit` bytes.
async fn read_bounded(mut resp: Response, limit: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!(
            "the directory listing is larger than {} MiB; list its subdirectories as separate sources",
            limit >> 20
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| scrub(&e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the directory listing is larger than {} MiB; list its subdirectories as separate sources",
                limit >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The percent-decoded, non-empty segments of a URL path. Some servers
/// (XrdHttp) send names unencoded: a segment whose decoding is not UTF-8
/// (`per%cent`) is taken as it stands.
fn decoded_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map_or_else(|_| s.to_owned(), std::borrow::Cow::into_owned)
        })
        .collect()
}

/// Where a PROPFIND `href` goes under the directory with the (decoded)
/// segments `dir`: `None` for the directory itself, else the child's decoded
/// name. Servers encode hrefs their own way (`%2F` or `/`, `%20`, upper- or
/// lower-case hex, trailing slashes), so decoded segments are compared, never
/// raw text; an href that is not a child is an error with the reason.
fn place(dir: &[String], href: &str) -> Result<Option<String>, String> {
    let abs = href_path(href).ok_or("its href is neither a path nor a URL")?;
    let segments = decoded_segments(&abs);
    if segments == dir {
        return Ok(None);
    }
    if segments.len() != dir.len() + 1 || segments[..dir.len()] != dir[..] {
        return Err(format!("{href:?} is not one of its children"));
    }
    let name = segments.last().cloned().unwrap_or_default();
    if name.contains('/') {
        return Err(format!(
            "{href:?} has an encoded '/' in its name, which cannot be addressed"
        ));
    }
    Ok(Some(name))
}

/// The path of a PROPFIND `href` (absolute path or full URL).
fn href_path(href: &str) -> Option<String> {
    let href = href.trim();
    if href.starts_with('/') {
        return Some(href.split(['?', '#']).next().unwrap_or(href).to_owned());
    }
    url::Url::parse(href).ok().map(|u| u.path().to_owned())
}

/// One `<response>` of a multistatus answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct DavResponse {
    href: String,
    collection: bool,
    length: Option<u64>,
    modified: Option<DateTime<Utc>>,
    etag: Option<String>,
}

/// Parse a multistatus body leniently: namespace prefixes are ignored,
/// missing properties are simply absent.
/// The responses of a PROPFIND answer; an answer cut off before its
/// closing `multistatus` is an error, not a shorter directory.
fn parse_multistatus(body: &[u8]) -> Result<Vec<DavResponse>, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut closed = false;
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut current: Option<DavResponse> = None;
    let mut field: Option<&'static str> = None;
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name();
                match local.as_ref() {
                    "response" => current = Some(DavResponse::default()),
                    "href" => field = Some("href"),
                    "collection" => {
                        if let Some(c) = current.as_mut() {
                            c.collection = true;
                        }
                    }
                    "getcontentlength" => field = Some("length"),
                    "getlastmodified" => field = Some("modified"),
                    "getetag" => field = Some("etag"),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let (Some(c), Some(f)) = (current.as_mut(), field) {
                    let text = t.xml10_content().into_owned();
                    let text = quick_xml::escape::unescape(&text)
                        .map(std::borrow::Cow::into_owned)
                        .unwrap_or(text);
                    let text = text.trim();
                    match f {
                        "href" if c.href.is_empty() => text.clone_into(&mut c.href),
                        "length" => c.length = text.parse().ok(),
                        "modified" => c.modified = parse_http_date(text),
                        "etag" if !text.is_empty() => c.etag = Some(text.to_owned()),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                field = None;
                match e.local_name().as_ref() {
                    "response" => out.extend(current.take()),
                    "multistatus" => closed = true,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !closed {
        return Err("the answer ends before its closing multistatus".into());
    }
    Ok(out)
}

/// Remove anything that looks like a credential from an error text.
fn scrub(text: &str) -> String {
    crate::redact::urls(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_placed_whatever_the_encoding_of_their_href() {
        let dir = decoded_segments("/data/odd%20names");
        for href in [
            "/data/odd%20names/a%20b.tif",
            "/data/odd names/a b.tif",
            "/data/odd%20names/a%20b.tif/",
            "http://door:2880/data/odd%20names/a%20b.tif",
        ] {
            assert_eq!(place(&dir, href), Ok(Some("a b.tif".into())), "{href}");
        }
        assert_eq!(
            place(&dir, "/data/odd%20names/zo%C3%AB.tif"),
            Ok(Some("zoë.tif".into()))
        );
        assert_eq!(
            place(&dir, "/data/odd%20names/zo%c3%ab.tif"),
            Ok(Some("zoë.tif".into()))
        );
        assert_eq!(
            place(&dir, "/data/odd%20names/per%25cent.tif"),
            Ok(Some("per%cent.tif".into()))
        );
        assert_eq!(place(&dir, "/data/odd%20names/"), Ok(None));
        assert_eq!(place(&dir, "/data/odd names"), Ok(None));
        assert!(place(&dir, "/pnfs/example.org/data/odd%20names/a.tif").is_err());
        assert!(place(&dir, "/data/odd%20names/a%2Fb.tif").is_err());
        let root: Vec<String> = Vec::new();
        assert_eq!(place(&root, "/cog/"), Ok(Some("cog".into())));
        assert_eq!(place(&root, "/"), Ok(None));
    }

    #[test]
    fn urls_of_a_source_at_a_server_root_have_no_doubled_slash() {
        for (root, path, want) in [
            ("http://door:2880/", "cog", "http://door:2880/cog"),
            (
                "http://door:2880",
                "cog/a b.tif",
                "http://door:2880/cog/a%20b.tif",
            ),
            (
                "http://door:2880/data/",
                "x.tif",
                "http://door:2880/data/x.tif",
            ),
            ("http://door:2880/data", "", "http://door:2880/data"),
            ("http://door:2880/", "", "http://door:2880/"),
        ] {
            let s = HttpSource::new(root, &SourceSettings::default()).unwrap();
            assert_eq!(s.url_of(path).as_str(), want, "{root} + {path}");
        }
    }

    #[test]
    fn a_multistatus_cut_short_is_an_error_not_a_shorter_directory() {
        let whole = br#"<?xml version="1.0"?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/data/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/data/a.tif</D:href><D:propstat><D:prop><D:getcontentlength>3</D:getcontentlength></D:prop></D:propstat></D:response>
</D:multistatus>"#;
        assert_eq!(parse_multistatus(whole).unwrap().len(), 2);
        let cut = whole.len() - "</D:multistatus>".len();
        let err = parse_multistatus(&whole[..cut]).unwrap_err();
        assert!(err.contains("closing multistatus"), "{err}");
    }

    #[test]
    fn multistatus_from_xrdhttp_without_resourcetype_on_files() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns1="http://apache.org/dav/props/" xmlns:ns0="DAV:">
<D:response><D:href>/data</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/data/sub</D:href><D:propstat><D:prop><D:getcontentlength>4096</D:getcontentlength><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/data/a%20b.tif</D:href><D:propstat><D:prop><D:getcontentlength>1234</D:getcontentlength><D:getlastmodified>Sat, 21 Nov 2026 10:00:00 GMT</D:getlastmodified></D:prop></D:propstat></D:response>
</D:multistatus>"#;
        let r = parse_multistatus(body).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[1].collection);
        assert!(!r[2].collection);
        assert_eq!(r[2].href, "/data/a%20b.tif");
        assert_eq!(r[2].length, Some(1234));
        assert!(r[2].modified.is_some());
        assert_eq!(r[2].etag, None);
    }

    #[test]
    fn digests_parse_base64_and_hex() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "digest",
            "adler32=03da0195, md5=XUFAKrxLKna5cZ2REBfFkg=="
                .parse()
                .unwrap(),
        );
        let d = parse_digest_headers(&h).unwrap();
        assert_eq!(d.adler32.as_deref(), Some("03da0195"));
        assert_eq!(d.md5.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
    }

    #[test]
    fn content_range_start_is_lenient() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-range", "bytes 100-199/1000".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        h.insert("content-range", "bytes 100-/1000".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        h.insert("content-range", "garbage".parse().unwrap());
        assert_eq!(content_range_start(&h), None);
    }

    #[test]
    fn tokens_are_scrubbed() {
        assert_eq!(
            scrub("GET /x?authz=secret failed"),
            "GET /x?authz=<redacted> failed"
        );
    }
}
