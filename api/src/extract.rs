//! Request extractors that answer bad input with the exception shape.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body; malformed JSON, a wrong media type or an oversized body each
/// get their own status (400, 415, 413) and a JSON exception.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// The deepest JSON nesting a search body may have.
pub const MAX_BODY_DEPTH: usize = 1_024;
/// Nesting above which a body is parsed on a stack of its own.
const DEEP_BODY: usize = 100;

/// A search body as a JSON value. Unlike [`Json`], deep nesting (a CQL2
/// expression 200 levels deep is 400 JSON levels) is parsed, on a grown
/// stack, up to [`MAX_BODY_DEPTH`]; deeper is a 400 that says the limit.
#[derive(Debug)]
pub struct SearchJson(pub serde_json::Value);

fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl<S: Send + Sync> FromRequest<S> for SearchJson {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the request body must be JSON: send Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PayloadTooLarge",
                        "the request body is too large",
                    )
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {e}"))
                }
            })?;
        let depth = json_depth(&bytes);
        if depth > MAX_BODY_DEPTH {
            return Err(ApiError::bad_request(format!(
                "the request body is nested {depth} levels deep; at most {MAX_BODY_DEPTH} are allowed"
            )));
        }
        let parse = || {
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            de.disable_recursion_limit();
            let value = <serde_json::Value as serde::Deserialize>::deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v));
            value.map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
        };
        let value = if depth > DEEP_BODY {
            stacker::grow(64 << 20, parse)?
        } else {
            parse()?
        };
        Ok(Self(value))
    }
}

/// Query parameters; unparseable ones are a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters; unparseable ones are a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the request body is too large",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the request body must be JSON: send Content-Type: application/json",
            ),
            _ => ApiError::bad_request(format!("invalid JSON body: {}", r.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", r.body_text()))
    }
}

/// The link builder for this request: the configured public URL, the
/// proxy's `Forwarded`/`X-Forwarded-*` headers when the proxy is trusted,
/// else the request's `Host`.
#[derive(Debug, Clone)]
pub struct Base(pub catalog::links::Links);

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `proto`, `host` from an RFC 7239 `Forwarded` header (first element).
fn forwarded(value: &str) -> (Option<String>, Option<String>) {
    let first = value.split(',').next().unwrap_or_default();
    let mut proto = None;
    let mut host = None;
    for pair in first.split(';') {
        if let Some((k, v)) = pair.split_once('=') {
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(v),
                "host" => host = Some(v),
                _ => {}
            }
        }
    }
    (proto, host)
}

fn safe_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
}

impl FromRequestParts<AppState> for Base {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let settings = &state.settings;
        if settings.trust_proxy {
            let (mut proto, mut host) = header(parts, "forwarded")
                .map(forwarded)
                .unwrap_or_default();
            if proto.is_none() {
                proto = header(parts, "x-forwarded-proto")
                    .map(|p| p.split(',').next().unwrap_or(p).trim().to_owned());
            }
            if host.is_none() {
                host = header(parts, "x-forwarded-host")
                    .map(|h| h.split(',').next().unwrap_or(h).trim().to_owned());
            }
            let prefix = header(parts, "x-forwarded-prefix")
                .unwrap_or_default()
                .trim_end_matches('/');
            if let Some(host) = host.filter(|h| safe_host(h)) {
                let proto = proto
                    .filter(|p| p == "http" || p == "https")
                    .unwrap_or_else(|| "http".into());
                let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                    prefix.to_owned()
                } else {
                    format!("/{prefix}")
                };
                return Ok(Self(catalog::links::Links::new(&format!(
                    "{proto}://{host}{prefix}"
                ))));
            }
        }
        if let Some(public) = &settings.public_url {
            return Ok(Self(catalog::links::Links::new(public.as_str())));
        }
        let host = header(parts, "host")
            .filter(|h| safe_host(h))
            .map_or_else(|| settings.listen.to_string(), str::to_owned);
        Ok(Self(catalog::links::Links::new(&format!("http://{host}"))))
    }
}

/// The client's address, for rate limits: the first hop of `Forwarded` or
/// `X-Forwarded-For` when the proxy is trusted, else the peer's address;
/// `None` when neither is known (a router called in-process).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl ClientAddr {
    /// The address of a request.
    pub fn of(parts: &Parts, trust_proxy: bool) -> Self {
        if trust_proxy {
            let forwarded = header(parts, "forwarded").and_then(|v| {
                let first = v.split(',').next()?;
                first.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    let v = v.trim().trim_matches('"');
                    let v = v
                        .strip_prefix('[')
                        .map_or(v, |v| v.split(']').next().unwrap_or(v));
                    (k.trim().eq_ignore_ascii_case("for")).then(|| v.parse().ok())?
                })
            });
            let x_forwarded = || {
                header(parts, "x-forwarded-for")
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse().ok())
            };
            if let Some(ip) = forwarded.or_else(x_forwarded) {
                return Self(Some(ip));
            }
        }
        Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        )
    }

    /// The rate-limit key of a caller: callers with a key or token are
    /// limited as themselves, anyone else by address.
    pub fn limit_key(self, who: &str) -> String {
        match self.0 {
            Some(ip) if !who.starts_with("key:") && !who.starts_with("jwt:") && who != "admin" => {
                format!("{who}@{ip}")
            }
            _ => who.to_owned(),
        }
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, state.settings.trust_proxy))
    }
}

/// Proof that the request carries the operator's admin bearer token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.settings.admin_token else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "writes are disabled: the operator has not configured an admin token (ARCOLAKE_ADMIN_TOKEN)",
            ));
        };
        let given = header(parts, "authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
        match given {
            Some(token)
                if crate::auth::same_secret(token.trim().as_bytes(), expected.as_bytes()) =>
            {
                Ok(Self)
            }
            Some(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the bearer token is not valid for writes",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "writes need an `Authorization: Bearer <admin token>` header",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_come_from_trusted_proxies_only() {
        let parts = |headers: &[(&str, &str)]| {
            let mut b = axum::http::Request::builder().uri("/x");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        let p = parts(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=5.6.7.8",
        )]);
        assert_eq!(
            ClientAddr::of(&p, true).0,
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(ClientAddr::of(&p, false).0, None);
        let p = parts(&[("x-forwarded-for", "10.1.2.3, 10.0.0.1")]);
        assert_eq!(
            ClientAddr::of(&p, true).0,
            Some("10.1.2.3".parse().unwrap())
        );
        let a = ClientAddr(Some("10.1.2.3".parse().unwrap()));
        assert_eq!(a.limit_key("anonymous"), "anonymous@10.1.2.3");
        assert_eq!(a.limit_key("key:abc"), "key:abc");
    }

    #[test]
    fn forwarded_header_is_parsed() {
        assert_eq!(
            forwarded("for=1.2.3.4;proto=https;host=\"stac.example.org\", for=5.6.7.8"),
            (Some("https".into()), Some("stac.example.org".into()))
        );
        assert!(!safe_host("evil.org/path"));
        assert!(safe_host("[::1]:8080"));
    }
}
