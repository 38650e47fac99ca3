//! Signing (`/sign`, `/token/{collection}`) and the streaming route
//! (`/assets/{source}/{path}`).
//!
//! The streaming route serves an object of a configured source with the
//! HTTP semantics data readers need (ranges, multipart ranges, conditional
//! requests, HEAD), streamed from the storage chunk by chunk: memory stays
//! flat whatever the object's size, a slow client slows the upstream read,
//! and a client that goes away cancels it. A request is allowed by one of:
//!
//! - an object signature (`exp`, `kid`, `sig`) from `/sign`;
//! - a prefix token (`col`, `exp`, `kid`, `sig`) from `/token/{collection}`,
//!   in the query string or as `Authorization: Bearer <token>`;
//! - an API key, JWT or the admin token that sees the source's collection;
//! - nothing, for a public collection whose source offers public assets.
//!
//! A bad signature is a 403 that says why; a request with no signature for
//! a collection the caller cannot see is a 404, as if the asset did not
//! exist. A signature is a capability until it expires: it is checked
//! against the keys, not against the caller's current grants.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use catalog::CollectionId;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use storage::signing::{Refusal, Scope, Signature};
use storage::sources::PublicAssets;

use crate::assets::{Signer, parse_route_path, proxy_url, rfc3339, storage_error};
use crate::auth::{Caller, identify, is_stream_token, presented};
use crate::error::{ApiError, Exception};
use crate::extract::{Base, ClientAddr, Json, Path, Query};
use crate::limits::Kind;
use crate::ranges::{self, Meta, Multipart, Plan};
use crate::state::AppState;

/// Query of `GET /sign`.
#[derive(Debug, Deserialize)]
pub struct SignParams {
    /// The asset href to sign.
    href: Option<String>,
    /// Seconds the signature should last (default 1 h, capped at the
    /// server's maximum and the storage's own limit).
    expires_in: Option<u64>,
}

/// Body of `POST /sign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    /// The hrefs to sign.
    hrefs: Vec<String>,
    /// Seconds the signatures should last.
    expires_in: Option<u64>,
}

/// Most hrefs one `POST /sign` may carry.
pub const MAX_SIGN_BATCH: usize = 10_000;

fn signed_json(signed: &crate::assets::Signed) -> Value {
    json!({"href": signed.href, "msft:expiry": signed.expiry.map(rfc3339)})
}

/// Sign one asset href (the Planetary Computer SAS API's shape).
#[utoipa::path(
    get, path = "/sign", operation_id = "signHref", tag = "Assets",
    params(
        ("href" = String, Query, description = "The asset href to sign (a storage href, or a URL of the streaming route to extend)"),
        ("expires_in" = Option<u64>, Query, description = "Seconds the signature lasts (default 3600, at most the server's maximum)"),
    ),
    responses(
        (status = 200, description = "`{\"href\": <signed URL>, \"msft:expiry\": <RFC 3339>}`; an href no source covers comes back unchanged with `msft:expiry: null`", content_type = "application/json", body = Object),
        (status = 400, description = "No href, or a bad expires_in", body = Exception),
        (status = 401, description = "A credential was given and is not valid", body = Exception),
        (status = 404, description = "The caller may not read this asset", body = Exception),
        (status = 429, description = "Too many signing requests", body = Exception),
    )
)]
pub async fn sign_get(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    Query(params): Query<SignParams>,
) -> Result<Response, ApiError> {
    state
        .settings
        .limits
        .spend(Kind::Sign, &address.limit_key(&caller.who), 1)?;
    let href = params
        .href
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request("href is required: the asset href to sign"))?;
    let mut assets = Signer::new(&state, &links, &caller);
    let validity = assets.validity(params.expires_in)?;
    let answer = assets.sign(&href, validity).await?;
    Ok(axum::Json(signed_json(&answer)).into_response())
}

/// Sign many hrefs at once (a batch form of `GET /sign`).
#[utoipa::path(
    post, path = "/sign", operation_id = "signHrefs", tag = "Assets",
    request_body(content = Object, description = "`{\"hrefs\": [...], \"expires_in\": seconds}`", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"signed\": [{\"href\", \"msft:expiry\"}, ...]}` in the order given", content_type = "application/json", body = Object),
        (status = 400, description = "Not a list of hrefs, or more than 10,000", body = Exception),
        (status = 404, description = "The caller may not read one of the assets", body = Exception),
        (status = 429, description = "Too many signing requests", body = Exception),
    )
)]
pub async fn sign_post(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    Json(body): Json<SignBody>,
) -> Result<Response, ApiError> {
    if body.hrefs.len() > MAX_SIGN_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_SIGN_BATCH} hrefs per request, not {}",
            body.hrefs.len()
        )));
    }
    // A batch spends one signing request per started hundred hrefs.
    let cost = body.hrefs.len().div_ceil(100).max(1);
    state
        .settings
        .limits
        .spend(Kind::Sign, &address.limit_key(&caller.who), cost)?;
    let mut assets = Signer::new(&state, &links, &caller);
    let validity = assets.validity(body.expires_in)?;
    let mut answers = Vec::with_capacity(body.hrefs.len());
    for href in &body.hrefs {
        answers.push(signed_json(&assets.sign(href, validity).await?));
    }
    Ok(axum::Json(json!({"signed": answers})).into_response())
}

/// A prefix token for every asset of a collection (Zarr stores,
/// partitioned datasets).
#[utoipa::path(
    get, path = "/token/{collectionId}", operation_id = "collectionToken", tag = "Assets",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("expires_in" = Option<u64>, Query, description = "Seconds the token lasts"),
    ),
    responses(
        (status = 200, description = "`{\"token\": <query string without ?>, \"msft:expiry\": <RFC 3339>}`: append `?<token>` to a streaming-route URL of the collection, or send `Authorization: Bearer <token>`", content_type = "application/json", body = Object),
        (status = 404, description = "No such collection, or not visible to the caller", body = Exception),
        (status = 429, description = "Too many signing requests", body = Exception),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    Path(collection): Path<String>,
    Query(params): Query<SignParams>,
) -> Result<Response, ApiError> {
    state
        .settings
        .limits
        .spend(Kind::Sign, &address.limit_key(&caller.who), 1)?;
    let collection = CollectionId::new(collection).map_err(ApiError::bad_request)?;
    let signer = Signer::new(&state, &links, &caller);
    state
        .store
        .require_collection(&collection, &caller.visibility)
        .await?;
    let validity = signer.validity(params.expires_in)?;
    let (token, expiry) = signer.token(collection.as_str(), validity);
    Ok(axum::Json(json!({"token": token, "msft:expiry": rfc3339(expiry)})).into_response())
}

/// What a streaming request presents to be allowed.
enum Pass {
    /// An object signature.
    Object { exp: i64, sig: Signature },
    /// A prefix token for a collection.
    Collection {
        col: String,
        exp: i64,
        sig: Signature,
    },
    /// Neither: the caller's credential (or none) decides.
    Caller,
}

fn pass_of(pairs: &[(String, String)]) -> Result<Pass, ApiError> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(sig) = get("sig") else {
        return Ok(Pass::Caller);
    };
    let exp = get("exp")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the signature has no valid `exp`",
            )
        })?;
    let sig = Signature {
        kid: get("kid").unwrap_or_default(),
        sig,
    };
    Ok(match get("col") {
        Some(col) => Pass::Collection { col, exp, sig },
        None => Pass::Object { exp, sig },
    })
}

fn refused(r: Refusal) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "Forbidden", r.to_string())
}

/// The media type of an object by its name (the item's own `type` is not
/// known to a request that names only a path).
fn media_type(path: &str) -> &'static str {
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "tif" | "tiff" => "image/tiff; application=geotiff",
        "parquet" | "geoparquet" => "application/vnd.apache.parquet",
        "pmtiles" => "application/vnd.pmtiles",
        "fgb" => "application/flatgeobuf",
        "json" | "zarray" | "zattrs" | "zgroup" | "zmetadata" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "nc" => "application/netcdf",
        _ if name == "zarr.json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// A body that counts what it sent and writes the audit line when it ends,
/// completed or cut off by the client.
struct Audited<S> {
    inner: S,
    sent: u64,
    done: bool,
    line: Option<AuditLine>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

struct AuditLine {
    request_id: String,
    caller: String,
    source: String,
    path: String,
    status: u16,
    /// The body's length: a body that sent it all is complete (the server
    /// stops polling once Content-Length bytes are out).
    length: u64,
}

impl<S> Stream for Audited<S>
where
    S: Stream<Item = Result<Bytes, storage::Error>> + Unpin,
{
    type Item = Result<Bytes, storage::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => self.sent += chunk.len() as u64,
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "the storage failed while an asset was streamed");
            }
            Poll::Ready(None) => self.done = true,
            Poll::Pending => {}
        }
        next
    }
}

impl AuditLine {
    /// Write the line: `bytes` sent, the answer `complete` or cut off.
    fn write(&self, bytes: u64, complete: bool) {
        tracing::info!(
            target: "arcolake::audit",
            action = "stream",
            request_id = %self.request_id,
            caller = %self.caller,
            source = %self.source,
            path = %self.path,
            status = self.status,
            bytes,
            complete,
        );
    }
}

impl<S> Drop for Audited<S> {
    fn drop(&mut self) {
        if let Some(l) = self.line.take() {
            l.write(self.sent, self.done || self.sent == l.length);
        }
    }
}

/// Stream an asset (GET and HEAD), with ranges and conditional requests.
#[utoipa::path(
    get, path = "/assets/{source}/{path}", operation_id = "streamAsset", tag = "Assets",
    params(
        ("source" = String, Path, description = "The source's name in the sources file"),
        ("path" = String, Path, description = "The object's path inside the source"),
        ("exp" = Option<i64>, Query, description = "Expiry of a signature (Unix seconds)"),
        ("kid" = Option<String>, Query, description = "Key id of a signature"),
        ("sig" = Option<String>, Query, description = "The signature"),
        ("col" = Option<String>, Query, description = "The collection of a prefix token"),
    ),
    responses(
        (status = 200, description = "The object", content_type = "application/octet-stream"),
        (status = 206, description = "The ranges asked for (one, or `multipart/byteranges`)"),
        (status = 302, description = "Redirect to a presigned URL (sources with `public_assets = \"presign\"`)"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "A path that leaves its source", body = Exception),
        (status = 403, description = "A forged, expired or misplaced signature", body = Exception),
        (status = 404, description = "No such asset, or not visible to the caller", body = Exception),
        (status = 416, description = "No range inside the object", body = Exception),
        (status = 429, description = "Too many requests from this caller", body = Exception),
        (status = 502, description = "The storage failed", body = Exception),
        (status = 504, description = "The storage did not answer in time", body = Exception),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Base(links): Base,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let address = ClientAddr::of(&parts, state.settings.trust_proxy);
    match serve_asset(&state, &links, &parts, address).await {
        Ok(response) => response,
        Err(e) => {
            // Refusals are audited too: who tried what, and the answer.
            tracing::info!(
                target: "arcolake::audit",
                action = "stream",
                request_id = %request_id(&parts),
                caller = %address.limit_key("refused"),
                path = %parts.uri.path(),
                status = e.status().as_u16(),
                bytes = 0,
                complete = false,
            );
            e.into_response()
        }
    }
}

fn request_id(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn serve_asset(
    state: &AppState,
    links: &catalog::links::Links,
    parts: &axum::http::request::Parts,
    address: ClientAddr,
) -> Result<Response, ApiError> {
    let raw = parts
        .uri
        .path()
        .strip_prefix("/assets/")
        .ok_or_else(|| ApiError::not_found("an asset URL is /assets/{source}/{path}"))?;
    let (name, path) = parse_route_path(raw)?;
    let mut pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let credential = presented(parts);
    if let Some(token) = credential.as_deref().filter(|c| is_stream_token(c))
        && !pairs.iter().any(|(k, _)| k == "sig")
    {
        pairs.extend(url::form_urlencoded::parse(token.as_bytes()).into_owned());
    }
    let now = chrono::Utc::now().timestamp();
    let signer = &state.settings.signer;
    let registry = &state.settings.registry;
    let no_such = || ApiError::not_found("no such asset");
    // A signature is checked before the source is looked up, so a forged
    // one says nothing about which sources exist.
    let (registered, who, anonymous) = match pass_of(&pairs)? {
        Pass::Object { exp, sig } => {
            let scope = Scope::Object {
                source: &name,
                path: &path,
            };
            signer.verify(&scope, exp, &sig, now).map_err(refused)?;
            let registered = registry.get(&name).ok_or_else(no_such)?;
            if !registered.paths.admits(&path) {
                return Err(no_such());
            }
            (registered, format!("signed:{}", sig.kid), false)
        }
        Pass::Collection { col, exp, sig } => {
            signer
                .verify(&Scope::Collection(&col), exp, &sig, now)
                .map_err(refused)?;
            let registered = registry.get(&name).ok_or_else(no_such)?;
            if col != registered.collection {
                return Err(refused(Refusal::Invalid));
            }
            // The token reads its collection's assets, as a caller granted
            // the collection would: not files its sources exclude, and, for
            // a public collection, not files a restricted one also serves.
            let holder = Caller {
                visibility: catalog::access::Visibility::granted([col.clone()]),
                who: format!("token:{col}"),
            };
            let mut access = Signer::new(state, links, &holder);
            let covering = access.locate(&proxy_url(links, &name, &path))?;
            if !access.readable(&covering, registered, &path).await? {
                return Err(no_such());
            }
            (registered, format!("token:{col}"), false)
        }
        Pass::Caller => {
            let registered = registry.get(&name).ok_or_else(no_such)?;
            let caller = identify(state, credential.as_deref()).await?;
            let anonymous = caller.who == "anonymous";
            let mut access = Signer::new(state, links, &caller);
            let covering = access.locate(&proxy_url(links, &name, &path))?;
            if !access.may_read(&covering, registered, &path).await? {
                return Err(no_such());
            }
            (registered, caller.who, anonymous)
        }
    };
    // Holders of a signed URL or a token, and anonymous readers, are told
    // apart by their address: one reader cannot use up another's budget.
    state
        .settings
        .limits
        .spend(Kind::Stream, &address.limit_key(&who), 1)?;
    let slot = state.settings.limits.stream_slot()?;
    let mut line = AuditLine {
        request_id: request_id(parts),
        caller: who,
        source: name.clone(),
        path: path.clone(),
        status: 0,
        length: 0,
    };
    let source = &registered.source;
    if anonymous && registered.public_assets == PublicAssets::Presign {
        let validity = state.settings.sign_expiry;
        if let Some(url) = source
            .presign(&path, validity)
            .await
            .map_err(storage_error)?
        {
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            line.status = 302;
            line.write(0, true);
            return Ok(r);
        }
    }
    let heads = &state.settings.heads;
    let entry = match heads.get(&name, &path) {
        Some(entry) => entry,
        None => {
            let entry = source
                .head(&path)
                .await
                .map_err(storage_error)?
                .ok_or_else(no_such)?;
            heads.put(&name, &path, &entry);
            entry
        }
    };
    let meta = Meta {
        size: entry.size,
        etag: entry.etag,
        last_modified: entry.modified,
    };
    respond(
        &parts.method,
        &parts.headers,
        &meta,
        registered,
        &path,
        line,
        slot,
    )
    .await
}

/// The answer to a streaming request for an object with `meta`.
async fn respond(
    method: &Method,
    headers: &HeaderMap,
    meta: &Meta,
    registered: &storage::Registered,
    path: &str,
    mut line: AuditLine,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let content_type = media_type(path);
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(tag) = meta.etag_header() {
        h.insert(header::ETAG, tag);
    }
    if let Some(t) = meta.last_modified {
        h.insert(header::LAST_MODIFIED, ranges::http_date(t));
    }
    let size = meta.size;
    let (status, body_ranges) = match ranges::plan(method, headers, meta) {
        Plan::NotModified => {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut().extend(h);
            line.status = 304;
            line.write(0, true);
            return Ok(r);
        }
        Plan::Unsatisfiable | Plan::TooManyRanges => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RangeNotSatisfiable",
                format!(
                    "no range asked for lies inside the object of {size} bytes, or more than {} \
                     ranges were asked for",
                    ranges::MAX_RANGES
                ),
            )
            .into_response();
            h.insert(header::CONTENT_RANGE, ranges::unsatisfied_range(size));
            r.headers_mut().extend(h);
            line.status = 416;
            line.write(0, true);
            return Ok(r);
        }
        Plan::Full => (StatusCode::OK, std::iter::once(0..size).collect()),
        Plan::Partial(r) => {
            h.insert(header::CONTENT_RANGE, ranges::content_range(&r, size));
            (StatusCode::PARTIAL_CONTENT, vec![r])
        }
        Plan::Multipart(rs) => (StatusCode::PARTIAL_CONTENT, rs),
    };
    line.status = status.as_u16();
    let multipart =
        (body_ranges.len() > 1).then(|| Multipart::new(&body_ranges, size, content_type));
    let length = multipart.as_ref().map_or_else(
        || body_ranges[0].end - body_ranges[0].start,
        Multipart::content_length,
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    line.length = length;
    h.insert(
        header::CONTENT_TYPE,
        multipart.as_ref().map_or_else(
            || HeaderValue::from_static(content_type),
            Multipart::content_type,
        ),
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response.headers_mut().extend(h);
    if *method == Method::HEAD {
        line.write(0, true);
        return Ok(response);
    }
    let source = std::sync::Arc::clone(&registered.source);
    let path = path.to_owned();
    let inner: storage::source::ByteStream = match multipart {
        None => source
            .stream(&path, body_ranges[0].clone())
            .await
            .map_err(storage_error)?,
        Some(m) => m
            .body(move |r| {
                let source = std::sync::Arc::clone(&source);
                let path = path.clone();
                async move { source.stream(&path, r).await }
            })
            .boxed(),
    };
    let body = Audited {
        inner,
        sent: 0,
        done: false,
        line: Some(line),
        _slot: slot,
    };
    *response.body_mut() = Body::from_stream(body);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_the_name() {
        assert_eq!(media_type("a/b.TIF"), "image/tiff; application=geotiff");
        assert_eq!(media_type("s.zarr/.zmetadata"), "application/json");
        assert_eq!(media_type("s.zarr/temp/0.0"), "application/octet-stream");
        assert_eq!(media_type("x.parquet"), "application/vnd.apache.parquet");
    }

    #[test]
    fn passes_are_read_from_the_query() {
        let pairs = |s: &str| -> Vec<(String, String)> {
            url::form_urlencoded::parse(s.as_bytes())
                .into_owned()
                .collect()
        };
        assert!(matches!(pass_of(&pairs("")).unwrap(), Pass::Caller));
        assert!(matches!(
            pass_of(&pairs("exp=5&kid=a&sig=00")).unwrap(),
            Pass::Object { exp: 5, .. }
        ));
        assert!(matches!(
            pass_of(&pairs("col=c&exp=5&kid=a&sig=00")).unwrap(),
            Pass::Collection { .. }
        ));
        assert_eq!(
            pass_of(&pairs("sig=00&exp=soon")).err().unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
}
