//! Building responses from JSON text: media types, ETags, 304s.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

pub use catalog::links::{GEOJSON, JSON};

/// A response with a JSON text body of the given media type.
pub fn json_text(status: StatusCode, media_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// Lower-case hex of `bytes` (digests in ETags, ids, boundaries).
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A 200 with a weak ETag over the body, or a 304 when the client's
/// `If-None-Match` already names it.
pub fn cacheable(request: &HeaderMap, media_type: &'static str, body: String) -> Response {
    let digest = Sha256::digest(body.as_bytes());
    let tag = format!("W/\"{}\"", hex(&digest[..12]));
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // Weak comparison (RFC 9110): the W/ prefix does not matter.
            let ours = tag.trim_start_matches("W/");
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == ours)
        });
    let mut response = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_text(StatusCode::OK, media_type, body)
    };
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
