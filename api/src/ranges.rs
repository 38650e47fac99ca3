//! HTTP range and conditional requests for the streaming route (RFC 9110).
//!
//! The asset handler heads the object, turns its metadata into a [`Meta`],
//! asks [`plan`] what to answer, and streams the planned bytes:
//!
//! | [`Plan`] | status | headers and body |
//! | --- | --- | --- |
//! | `NotModified` | 304 | `ETag`, `Last-Modified`; no body |
//! | `Full` | 200 | `Content-Length: size`, the whole object |
//! | `Partial(r)` | 206 | [`content_range`], `Content-Length: r.end - r.start`, the bytes of `r` |
//! | `Multipart(rs)` | 206 | [`Multipart::content_type`], [`Multipart::content_length`], [`Multipart::body`] |
//! | `Unsatisfiable` | 416 | [`unsatisfied_range`]; no body |
//! | `TooManyRanges` | 416 | [`unsatisfied_range`]; the JSON exception body |
//!
//! Every answer but 304 also carries `Accept-Ranges: bytes`, and every one
//! carries [`Meta::etag_header`] and [`http_date`] of `last_modified` when known.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _, TryStreamExt as _, future, stream};
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Method};
use httpdate::HttpDate;
use sha2::{Digest as _, Sha256};

/// Most ranges one `Range` header may list; more is [`Plan::TooManyRanges`].
pub const MAX_RANGES: usize = 64;

/// Longest `Range` header accepted, in bytes; longer is [`Plan::TooManyRanges`].
pub const MAX_RANGE_FIELD: usize = 8 * 1024;

/// What the storage backend knows about an object.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Length in bytes.
    pub size: u64,
    /// Entity tag as the storage gives it: quoted or not, maybe `W/"..."`.
    pub etag: Option<String>,
    /// Last modification time.
    pub last_modified: Option<DateTime<Utc>>,
}

impl Meta {
    /// The `ETag` header: the storage's tag, quoted, with any character an
    /// entity tag cannot hold dropped; `None` when there is no usable tag.
    pub fn etag_header(&self) -> Option<HeaderValue> {
        let (weak, opaque) = self.entity_tag()?;
        Some(ascii_value(&format!(
            "{}\"{opaque}\"",
            if weak { "W/" } else { "" }
        )))
    }

    /// The entity tag as (weak, opaque text without quotes). Both the `ETag`
    /// header and every comparison use this cleaned form, so a client that
    /// echoes the header always matches.
    fn entity_tag(&self) -> Option<(bool, String)> {
        let raw = self.etag.as_deref()?.trim();
        let (weak, quoted) = match raw.strip_prefix("W/") {
            Some(rest) if rest.starts_with('"') => (true, rest),
            _ => (false, raw),
        };
        let opaque = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or(quoted);
        let opaque: String = opaque
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"')
            .collect();
        (!opaque.is_empty()).then_some((weak, opaque))
    }
}

/// What to answer to a GET or HEAD of an object; see the module docs for the
/// status and headers of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `If-None-Match` or `If-Modified-Since` says the client's copy is current.
    NotModified,
    /// The whole object: no usable `Range`, or `If-Range` did not match.
    Full,
    /// One range (overlapping and adjacent ranges are merged into one).
    Partial(Range<u64>),
    /// Several disjoint ranges in ascending order, as `multipart/byteranges`.
    Multipart(Vec<Range<u64>>),
    /// No requested range overlaps the object.
    Unsatisfiable,
    /// The `Range` header lists more than [`MAX_RANGES`] ranges or is longer
    /// than [`MAX_RANGE_FIELD`]. Answering the whole object instead could mean
    /// sending gigabytes to a client that asked for crumbs, so the handler
    /// refuses with 416 and an exception body that names the limits.
    TooManyRanges,
}

/// Decide how to answer `method` with `headers` for the object `meta`, per
/// RFC 9110 §13.2.2 (conditionals) and §14 (ranges).
///
/// - Methods other than GET and HEAD: [`Plan::Full`], nothing is evaluated.
/// - `If-None-Match` (any field line, `*` or a list, weak comparison) decides
///   304 when present; otherwise `If-Modified-Since`, at one-second
///   resolution, the resolution of `Last-Modified`.
/// - `Range` is honoured for GET only. HEAD with `Range` is [`Plan::Full`]:
///   §14.2 defines range handling for GET alone and tells servers to ignore
///   `Range` elsewhere, and clients (GDAL `/vsicurl/`, fsspec, curl `-I`) read
///   the object size from the `Content-Length` of a HEAD, which a 206 would
///   shrink to the range length.
/// - `If-Range` with an entity tag matches only a strong tag equal to ours;
///   with a date, only a date equal to `Last-Modified`. No match: the whole
///   object.
/// - A `Range` with another unit than `bytes` or bad syntax (including a
///   range whose first position exceeds its last) is ignored. Last positions
///   are clamped to the object; unsatisfiable ranges are dropped; the rest
///   are sorted and overlapping or adjacent ones merged.
/// - A suffix range (`bytes=-N`, N > 0) of an empty object is satisfiable
///   (§14.1.1) but no `Content-Range` can express it; the whole empty object
///   is exactly the bytes asked for, so that is [`Plan::Full`]. Any other
///   range of an empty object is unsatisfiable.
pub fn plan(method: &Method, headers: &HeaderMap, meta: &Meta) -> Plan {
    if method != Method::GET && method != Method::HEAD {
        return Plan::Full;
    }
    if not_modified(headers, meta) {
        return Plan::NotModified;
    }
    match headers.get(RANGE).map(HeaderValue::to_str) {
        Some(Ok(field)) if method == Method::GET && if_range_matches(headers, meta) => {
            ranges(field, meta.size)
        }
        _ => Plan::Full,
    }
}

/// `Content-Range` of a 206 with one part: `bytes first-last/size`.
pub fn content_range(range: &Range<u64>, size: u64) -> HeaderValue {
    ascii_value(&range_text(range, size))
}

/// `Content-Range` of a 416: `bytes */size`.
pub fn unsatisfied_range(size: u64) -> HeaderValue {
    ascii_value(&format!("bytes */{size}"))
}

/// An HTTP date (IMF-fixdate) for `Last-Modified`; times outside the years
/// 1970 to 9999 are clamped into them.
pub fn http_date(time: DateTime<Utc>) -> HeaderValue {
    ascii_value(&to_http_date(time).to_string())
}

/// A `multipart/byteranges` body (RFC 9110 §14.6) in the layout nginx and
/// Apache send: each part is `CRLF --boundary CRLF`, its `Content-Type` and
/// `Content-Range` lines, a blank line and the bytes; a `CRLF --boundary--
/// CRLF` closes the body.
pub struct Multipart {
    boundary: String,
    parts: Vec<(Range<u64>, Bytes)>,
    closing: Bytes,
}

impl Multipart {
    /// The body for `ranges` (non-empty, as in [`Plan::Multipart`]) of an
    /// object of `size` bytes and media type `content_type`. The boundary is
    /// new on every call and unpredictable, so object bytes cannot forge it.
    pub fn new(ranges: &[Range<u64>], size: u64, content_type: &str) -> Self {
        let boundary = boundary(ranges, size);
        let content_type: String = content_type.chars().filter(|c| !c.is_control()).collect();
        let parts = ranges
            .iter()
            .map(|range| {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    range_text(range, size)
                );
                (range.clone(), Bytes::from(head))
            })
            .collect();
        let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        Self {
            boundary,
            parts,
            closing,
        }
    }

    /// The response `Content-Type`: `multipart/byteranges; boundary=...`.
    pub fn content_type(&self) -> HeaderValue {
        ascii_value(&format!("multipart/byteranges; boundary={}", self.boundary))
    }

    /// The exact length of [`Multipart::body`]: part headers, range bytes and
    /// the closing delimiter.
    pub fn content_length(&self) -> u64 {
        let parts: u64 = self
            .parts
            .iter()
            .map(|(range, head)| head.len() as u64 + range.end.saturating_sub(range.start))
            .sum();
        parts + self.closing.len() as u64
    }

    /// Stream the body, fetching the bytes of one range at a time, only when
    /// the previous part is sent. `fetch` must yield exactly the bytes of the
    /// range it is given; its errors are passed on (a response body aborts at
    /// the first).
    pub fn body<F, Fut, S, E>(self, mut fetch: F) -> impl Stream<Item = Result<Bytes, E>>
    where
        F: FnMut(Range<u64>) -> Fut,
        Fut: Future<Output = Result<S, E>>,
        S: Stream<Item = Result<Bytes, E>>,
    {
        let Self { parts, closing, .. } = self;
        stream::iter(parts)
            .map(move |(range, head)| {
                stream::once(future::ready(Ok(head)))
                    .chain(stream::once(fetch(range)).try_flatten())
            })
            .flatten()
            .chain(stream::once(future::ready(Ok(closing))))
    }
}

/// An entity tag parsed from a request header, quotes removed.
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// The entity tag at the start of `text` and the text after it.
fn split_entity_tag(text: &str) -> Option<(Tag<'_>, &str)> {
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (opaque, rest) = quoted.strip_prefix('"')?.split_once('"')?;
    Some((Tag { weak, opaque }, rest))
}

/// Whether `If-None-Match` or, in its absence, `If-Modified-Since` says the
/// client's copy is current.
fn not_modified(headers: &HeaderMap, meta: &Meta) -> bool {
    if headers.contains_key(IF_NONE_MATCH) {
        let ours = meta.entity_tag();
        let ours = ours.as_ref().map(|(_, opaque)| opaque.as_str());
        return headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|field| none_match_lists(field, ours));
    }
    let since = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<HttpDate>().ok());
    match (since, meta.last_modified) {
        (Some(since), Some(modified)) => to_http_date(modified) <= since,
        _ => false,
    }
}

/// Whether one `If-None-Match` field is `*` or lists a tag weakly equal to
/// `ours`. Reading stops at the first element that is not an entity tag.
fn none_match_lists(field: &str, ours: Option<&str>) -> bool {
    if field.trim() == "*" {
        return true;
    }
    let Some(ours) = ours else { return false };
    let mut rest = field;
    while let Some((tag, after)) = split_entity_tag(rest.trim_start_matches([' ', '\t', ','])) {
        if tag.opaque == ours {
            return true;
        }
        rest = after;
    }
    false
}

/// Whether `If-Range` is absent or still names the object.
fn if_range_matches(headers: &HeaderMap, meta: &Meta) -> bool {
    let Some(field) = headers.get(IF_RANGE) else {
        return true;
    };
    let Ok(field) = field.to_str().map(str::trim) else {
        return false;
    };
    if let Some((tag, rest)) = split_entity_tag(field) {
        return rest.is_empty()
            && !tag.weak
            && meta
                .entity_tag()
                .is_some_and(|(weak, opaque)| !weak && opaque == tag.opaque);
    }
    match (field.parse::<HttpDate>(), meta.last_modified) {
        (Ok(date), Some(modified)) => to_http_date(modified) == date,
        _ => false,
    }
}

/// The plan for the `Range` field `field` of an object of `size` bytes.
fn ranges(field: &str, size: u64) -> Plan {
    if field.len() > MAX_RANGE_FIELD {
        return Plan::TooManyRanges;
    }
    let Some((unit, set)) = field.split_once('=') else {
        return Plan::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Plan::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return Plan::Full;
    }
    if specs.len() > MAX_RANGES {
        return Plan::TooManyRanges;
    }
    let mut satisfiable = Vec::with_capacity(specs.len());
    let mut suffix_of_empty = false;
    for spec in specs {
        let Some((first, last)) = spec.split_once('-') else {
            return Plan::Full;
        };
        match (position(first), position(last)) {
            (None, Some(0)) if first.is_empty() => {}
            (None, Some(_)) if first.is_empty() && size == 0 => suffix_of_empty = true,
            (None, Some(n)) if first.is_empty() => satisfiable.push(size - n.min(size)..size),
            (Some(first), None) if last.is_empty() => {
                if first < size {
                    satisfiable.push(first..size);
                }
            }
            (Some(first), Some(last)) if first <= last => {
                if first < size {
                    satisfiable.push(first..size.min(last.saturating_add(1)));
                }
            }
            _ => return Plan::Full,
        }
    }
    satisfiable.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(satisfiable.len());
    for range in satisfiable {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    match merged.as_slice() {
        [] if suffix_of_empty => Plan::Full,
        [] => Plan::Unsatisfiable,
        [one] => Plan::Partial(one.clone()),
        _ => Plan::Multipart(merged),
    }
}

/// A byte position: ASCII digits only, too large saturating to `u64::MAX`.
fn position(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().unwrap_or(u64::MAX))
}

/// `bytes first-last/size` for a non-empty range.
fn range_text(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// `time` at the one-second resolution of HTTP dates, clamped into the
/// years 1970 to 9999 they can carry.
fn to_http_date(time: DateTime<Utc>) -> HttpDate {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    HttpDate::from(SystemTime::from(time).clamp(UNIX_EPOCH, last))
}

/// A multipart boundary: 32 hex digits hashed from a per-process random key,
/// a call counter and the ranges.
fn boundary(ranges: &[Range<u64>], size: u64) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut digest = Sha256::new();
    digest.update(RandomState::new().hash_one(call).to_le_bytes());
    digest.update(call.to_le_bytes());
    digest.update(size.to_le_bytes());
    for range in ranges {
        digest.update(range.start.to_le_bytes());
        digest.update(range.end.to_le_bytes());
    }
    crate::response::hex(&digest.finalize()[..16])
}

/// A header value from text built here, which is visible ASCII and so always
/// accepted; the empty fallback only keeps request paths free of panics.
fn ascii_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;
    use std::pin::pin;

    use chrono::TimeZone as _;

    use super::*;

    const DATA: &[u8] = b"0123456789";

    fn meta(size: u64) -> Meta {
        Meta {
            size,
            etag: Some("\"abc\"".into()),
            last_modified: Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()),
        }
    }

    fn get(pairs: &[(&str, &str)], meta: &Meta) -> Plan {
        request(&Method::GET, pairs, meta)
    }

    fn request(method: &Method, pairs: &[(&str, &str)], meta: &Meta) -> Plan {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        plan(method, &headers, meta)
    }

    fn range(value: &str, size: u64) -> Plan {
        get(&[("range", value)], &meta(size))
    }

    type Chunks = stream::Iter<std::vec::IntoIter<Result<Bytes, Infallible>>>;

    /// The range `r` of `data`, one byte per chunk, as a storage fetch gives it.
    fn fetch(data: &[u8], r: Range<u64>) -> future::Ready<Result<Chunks, Infallible>> {
        let slice = &data[usize::try_from(r.start).unwrap()..usize::try_from(r.end).unwrap()];
        let chunks: Vec<_> = slice
            .iter()
            .map(|b| Ok(Bytes::copy_from_slice(&[*b])))
            .collect();
        future::ready(Ok(stream::iter(chunks)))
    }

    async fn collect(multipart: Multipart, data: &[u8]) -> Vec<u8> {
        let body = multipart.body(|r| fetch(data, r));
        let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
        chunks.concat()
    }

    #[test]
    fn every_range_form_is_read() {
        assert_eq!(range("bytes=2-4", 10), Plan::Partial(2..5));
        assert_eq!(range("bytes=7-", 10), Plan::Partial(7..10));
        assert_eq!(range("bytes=-3", 10), Plan::Partial(7..10));
        assert_eq!(range("bytes=0-0", 10), Plan::Partial(0..1));
        assert_eq!(range("Bytes=2-4", 10), Plan::Partial(2..5));
        assert_eq!(
            range("bytes=0-1 , 5-6", 10),
            Plan::Multipart(vec![0..2, 5..7])
        );
        assert_eq!(
            range("bytes=0-1,,5-6,", 10),
            Plan::Multipart(vec![0..2, 5..7])
        );
    }

    #[test]
    fn last_positions_and_suffixes_are_clamped_to_the_object() {
        assert_eq!(range("bytes=5-999", 10), Plan::Partial(5..10));
        assert_eq!(range("bytes=-100", 10), Plan::Partial(0..10));
        assert_eq!(
            range("bytes=0-99999999999999999999999", 10),
            Plan::Partial(0..10)
        );
        assert_eq!(
            range("bytes=-99999999999999999999999", 10),
            Plan::Partial(0..10)
        );
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable_and_dropped() {
        assert_eq!(range("bytes=10-", 10), Plan::Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), Plan::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Plan::Unsatisfiable);
        assert_eq!(
            range("bytes=99999999999999999999999-", 10),
            Plan::Unsatisfiable
        );
        assert_eq!(range("bytes=20-30,0-1", 10), Plan::Partial(0..2));
    }

    #[test]
    fn invalid_syntax_and_other_units_are_ignored() {
        for value in [
            "bytes=5-2",
            "bytes=abc",
            "bytes=1-2-3",
            "bytes=--5",
            "bytes=-",
            "bytes=",
            "bytes=,",
            "bytes 0-1",
            "bytes=+1-2",
            "bytes=0-1,x",
            "bytes=1 -2",
            "items=0-1",
            "none",
        ] {
            assert_eq!(range(value, 10), Plan::Full, "{value}");
        }
    }

    #[test]
    fn an_empty_object_serves_suffixes_whole_and_nothing_else() {
        assert_eq!(range("bytes=-5", 0), Plan::Full);
        assert_eq!(range("bytes=0-,-5", 0), Plan::Full);
        assert_eq!(range("bytes=0-", 0), Plan::Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Plan::Unsatisfiable);
        assert_eq!(range("bytes=-0", 0), Plan::Unsatisfiable);
        assert_eq!(get(&[], &meta(0)), Plan::Full);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_merged_in_order() {
        assert_eq!(range("bytes=0-1,2-3", 10), Plan::Partial(0..4));
        assert_eq!(range("bytes=0-9,2-3", 10), Plan::Partial(0..10));
        assert_eq!(
            range("bytes=5-9,0-2,1-3", 10),
            Plan::Multipart(vec![0..4, 5..10])
        );
        assert_eq!(
            range("bytes=-1,0-0", 10),
            Plan::Multipart(vec![0..1, 9..10])
        );
        assert_eq!(range("bytes=-5,3-", 10), Plan::Partial(3..10));
    }

    #[test]
    fn too_many_ranges_or_a_long_header_are_refused() {
        let list = |n: u64| {
            let specs: Vec<String> = (0..n).map(|i| format!("{}-{}", 2 * i, 2 * i)).collect();
            format!("bytes={}", specs.join(","))
        };
        assert!(matches!(range(&list(64), 1000), Plan::Multipart(r) if r.len() == 64));
        assert_eq!(range(&list(65), 1000), Plan::TooManyRanges);
        let long = format!("bytes=0-0{}", " ".repeat(MAX_RANGE_FIELD));
        assert_eq!(range(&long, 1000), Plan::TooManyRanges);
    }

    #[test]
    fn head_and_other_methods_ignore_range() {
        let m = meta(10);
        assert_eq!(
            request(&Method::HEAD, &[("range", "bytes=0-1")], &m),
            Plan::Full
        );
        assert_eq!(request(&Method::HEAD, &[], &m), Plan::Full);
        assert_eq!(
            request(&Method::POST, &[("range", "bytes=0-1")], &m),
            Plan::Full
        );
        assert_eq!(
            request(&Method::POST, &[("if-none-match", "*")], &m),
            Plan::Full
        );
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_lists_and_star() {
        let m = meta(10);
        let inm = |value| get(&[("if-none-match", value)], &m);
        assert_eq!(inm("\"abc\""), Plan::NotModified);
        assert_eq!(inm("\"x\", \"abc\""), Plan::NotModified);
        assert_eq!(inm("W/\"abc\""), Plan::NotModified);
        assert_eq!(inm("*"), Plan::NotModified);
        assert_eq!(inm("\"x\""), Plan::Full);
        assert_eq!(inm("abc"), Plan::Full);
        assert_eq!(inm("\"a,b\", \"abc\""), Plan::NotModified);
        let lines = [("if-none-match", "\"x\""), ("if-none-match", "\"abc\"")];
        assert_eq!(get(&lines, &m), Plan::NotModified);
        let weak = Meta {
            etag: Some("W/\"abc\"".into()),
            ..meta(10)
        };
        assert_eq!(
            get(&[("if-none-match", "\"abc\"")], &weak),
            Plan::NotModified
        );
        let untagged = Meta {
            etag: None,
            ..meta(10)
        };
        assert_eq!(get(&[("if-none-match", "*")], &untagged), Plan::NotModified);
        assert_eq!(get(&[("if-none-match", "\"abc\"")], &untagged), Plan::Full);
        let head = request(&Method::HEAD, &[("if-none-match", "\"abc\"")], &m);
        assert_eq!(head, Plan::NotModified);
    }

    #[test]
    fn a_match_beats_range_and_a_mismatch_lets_it_through() {
        let m = meta(10);
        let matching = [("if-none-match", "\"abc\""), ("range", "bytes=0-1")];
        assert_eq!(get(&matching, &m), Plan::NotModified);
        let other = [("if-none-match", "\"x\""), ("range", "bytes=0-1")];
        assert_eq!(get(&other, &m), Plan::Partial(0..2));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds_when_if_none_match_is_absent() {
        let m = meta(10);
        let ims = |value| get(&[("if-modified-since", value)], &m);
        assert_eq!(ims("Wed, 01 May 2024 12:00:00 GMT"), Plan::NotModified);
        assert_eq!(ims("Thu, 02 May 2024 12:00:00 GMT"), Plan::NotModified);
        assert_eq!(ims("Wed, 01 May 2024 11:59:59 GMT"), Plan::Full);
        assert_eq!(ims("yesterday"), Plan::Full);
        let fractional = Meta {
            last_modified: Some(Utc.timestamp_opt(1_714_564_800, 500_000_000).unwrap()),
            ..meta(10)
        };
        let since = [("if-modified-since", "Wed, 01 May 2024 12:00:00 GMT")];
        assert_eq!(get(&since, &fractional), Plan::NotModified);
        let undated = Meta {
            last_modified: None,
            ..meta(10)
        };
        assert_eq!(get(&since, &undated), Plan::Full);
        let both = [
            ("if-none-match", "\"x\""),
            ("if-modified-since", "Thu, 02 May 2024 12:00:00 GMT"),
        ];
        assert_eq!(get(&both, &m), Plan::Full);
    }

    #[test]
    fn if_range_needs_a_strong_equal_tag_or_the_exact_date() {
        let m = meta(10);
        let if_range =
            |value, meta: &Meta| get(&[("range", "bytes=0-1"), ("if-range", value)], meta);
        assert_eq!(if_range("\"abc\"", &m), Plan::Partial(0..2));
        assert_eq!(if_range("\"x\"", &m), Plan::Full);
        assert_eq!(if_range("W/\"abc\"", &m), Plan::Full);
        assert_eq!(if_range("\"abc\" junk", &m), Plan::Full);
        assert_eq!(
            if_range("Wed, 01 May 2024 12:00:00 GMT", &m),
            Plan::Partial(0..2)
        );
        assert_eq!(if_range("Thu, 02 May 2024 12:00:00 GMT", &m), Plan::Full);
        assert_eq!(if_range("garbage", &m), Plan::Full);
        let weak = Meta {
            etag: Some("W/\"abc\"".into()),
            ..meta(10)
        };
        assert_eq!(if_range("\"abc\"", &weak), Plan::Full);
        let bare = Meta {
            etag: None,
            last_modified: None,
            ..meta(10)
        };
        assert_eq!(if_range("\"abc\"", &bare), Plan::Full);
        assert_eq!(if_range("Wed, 01 May 2024 12:00:00 GMT", &bare), Plan::Full);
        assert_eq!(get(&[("if-range", "\"x\"")], &m), Plan::Full);
    }

    #[test]
    fn etags_are_quoted_and_cleaned() {
        let tag = |etag: Option<&str>| {
            Meta {
                etag: etag.map(str::to_owned),
                ..Meta::default()
            }
            .etag_header()
        };
        assert_eq!(tag(Some("abc")).unwrap(), "\"abc\"");
        assert_eq!(tag(Some("\"abc\"")).unwrap(), "\"abc\"");
        assert_eq!(tag(Some("W/\"abc\"")).unwrap(), "W/\"abc\"");
        assert_eq!(tag(Some("W/abc")).unwrap(), "\"W/abc\"");
        assert_eq!(tag(Some(" a b\"c\n\u{e9} ")).unwrap(), "\"abc\"");
        assert_eq!(tag(Some("\"\"")), None);
        assert_eq!(tag(None), None);
    }

    #[test]
    fn a_cleaned_etag_still_matches_what_the_client_echoes() {
        let m = Meta {
            etag: Some("a b".into()),
            ..meta(10)
        };
        let echoed = m.etag_header().unwrap();
        let echoed = echoed.to_str().unwrap();
        assert_eq!(get(&[("if-none-match", echoed)], &m), Plan::NotModified);
        let if_range = [("range", "bytes=0-1"), ("if-range", echoed)];
        assert_eq!(get(&if_range, &m), Plan::Partial(0..2));
    }

    #[test]
    fn header_values_are_formatted() {
        assert_eq!(content_range(&(0..5), 10), "bytes 0-4/10");
        assert_eq!(content_range(&(9..10), 10), "bytes 9-9/10");
        assert_eq!(unsatisfied_range(10), "bytes */10");
        let time = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 37).unwrap();
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
        let early = Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(http_date(early), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[tokio::test]
    async fn multipart_body_is_the_nginx_layout() {
        let multipart = Multipart::new(&[0..2, 5..10], 10, "text/plain");
        let b = multipart.boundary.clone();
        assert_eq!(b.len(), 32);
        assert_eq!(
            multipart.content_type(),
            format!("multipart/byteranges; boundary={b}").as_str()
        );
        let expected = format!(
            "\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n56789\
             \r\n--{b}--\r\n"
        );
        let length = multipart.content_length();
        let body = collect(multipart, DATA).await;
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(length, expected.len() as u64);
    }

    #[tokio::test]
    async fn multipart_content_length_is_the_body_length() {
        let big = vec![7u8; 5000];
        let cases: [(&[Range<u64>], u64, &str); 4] = [
            (&[0..1, 9..10], 10, "application/octet-stream"),
            (
                &[0..1000, 2000..5000],
                5000,
                "image/tiff; application=geotiff",
            ),
            (&[1..2, 3..4, 5..6, 7..8], 12_345_678_901, ""),
            (&[0..4999, 4999..5000], 5000, "text/plain\r\nX-Injected: 1"),
        ];
        for (ranges, size, content_type) in cases {
            let multipart = Multipart::new(ranges, size, content_type);
            let length = multipart.content_length();
            let body = collect(multipart, &big).await;
            assert_eq!(length, body.len() as u64, "{ranges:?}");
            assert!(!String::from_utf8_lossy(&body).contains("\r\nX-Injected"));
        }
    }

    #[tokio::test]
    async fn multipart_fetches_one_range_at_a_time() {
        let calls = Cell::new(0);
        let counted = |r| {
            calls.set(calls.get() + 1);
            fetch(DATA, r)
        };
        let multipart = Multipart::new(&[0..2, 5..7], 10, "text/plain");
        let mut body = pin!(multipart.body(counted));
        assert_eq!(calls.get(), 0);
        assert!(body.next().await.unwrap().unwrap().starts_with(b"\r\n--"));
        assert_eq!(body.next().await.unwrap().unwrap(), "0");
        assert_eq!(body.next().await.unwrap().unwrap(), "1");
        assert_eq!(calls.get(), 1);
        assert!(body.next().await.unwrap().unwrap().starts_with(b"\r\n--"));
        assert_eq!(calls.get(), 2);
    }

    #[tokio::test]
    async fn multipart_passes_on_a_failed_fetch() {
        let multipart = Multipart::new(&[0..2, 5..7], 10, "text/plain");
        let fetch = |r: Range<u64>| {
            future::ready(if r.start == 0 {
                Ok(stream::iter(vec![Ok(Bytes::from_static(b"01"))]))
            } else {
                Err("storage down")
            })
        };
        let chunks: Vec<_> = multipart.body(fetch).collect().await;
        assert_eq!(chunks[1], Ok(Bytes::from_static(b"01")));
        assert_eq!(chunks[3], Err("storage down"));
    }

    #[test]
    fn multipart_body_is_an_axum_body() {
        let multipart = Multipart::new(&[0..1, 2..3], 10, "text/plain");
        let _ = axum::body::Body::from_stream(multipart.body(|r| fetch(DATA, r)));
    }

    #[test]
    fn boundaries_differ_between_calls() {
        let a = Multipart::new(&[0..1, 2..3], 10, "text/plain");
        let b = Multipart::new(&[0..1, 2..3], 10, "text/plain");
        assert_ne!(a.boundary, b.boundary);
    }
}
