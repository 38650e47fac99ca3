//! Assets made readable: signed URLs, prefix tokens, the public `alternate`
//! hrefs to the streaming route, and the Authentication extension.
//!
//! An asset href belongs to a configured source when the registry resolves
//! it (or when it is already a URL of our streaming route). Such an asset is
//! handed out three ways:
//!
//! - **signed** (`/sign`, `?sign=true`): the storage's own presigned URL
//!   (S3), the door's URL with a macaroon (dCache, `XRootD`), or an HMAC-signed
//!   URL to `/assets/{source}/{path}` — as the source's `sign` setting says;
//! - **by prefix token** (`/token/{collection}`): one signature over a whole
//!   collection's sources, for directory formats (a Zarr store is many
//!   objects); it goes in the query string or as a bearer token. Directory
//!   formats are always routed through the proxy, also on S3: a presigned
//!   URL names one object, and presigning every chunk of a store up front
//!   cannot work for stores of millions of chunks;
//! - **publicly** (assets of public collections): an `alternate` href
//!   (`https`) to the streaming route that needs no signature.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use catalog::links::Links;
use catalog::store::StoredItem;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use storage::signing::Scope;
use storage::sources::{PublicAssets, SignMode};
use storage::{ErrorKind, Registered};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The Authentication extension.
pub const AUTH_EXTENSION: &str =
    "https://stac-extensions.github.io/authentication/v1.1.0/schema.json";
/// The Alternate Assets extension.
pub const ALTERNATE_EXTENSION: &str =
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json";
/// The name of our signing scheme in `auth:schemes`.
pub const SCHEME: &str = "arcolake";
/// The asset member holding a signed href's expiry (RFC 3339).
pub const EXPIRY_FIELD: &str = "arcolake:expiry";

/// A signed href and when it stops working (`None`: the href was not ours
/// to sign and is returned as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The href to use.
    pub href: String,
    /// Its expiry.
    pub expiry: Option<DateTime<Utc>>,
}

/// RFC 3339 with seconds, as every expiry is written.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The unsigned streaming URL of `path` in source `name`.
pub fn proxy_url(links: &Links, name: &str, path: &str) -> String {
    let mut url = links.url("/assets/");
    url.push_str(&catalog::links::segment(name));
    for seg in path.split('/') {
        url.push('/');
        url.push_str(&catalog::links::segment(seg));
    }
    url
}

/// The source name and path of a streaming-route path (after `/assets/`):
/// each segment percent-decoded, and refused when a decoded segment holds a
/// slash or backslash (an encoded slash) or is `.`, `..` or empty.
pub fn parse_route_path(raw: &str) -> Result<(String, String), ApiError> {
    let mut segments = Vec::new();
    for seg in raw.split('/') {
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| ApiError::bad_request("the asset path is not UTF-8 once decoded"))?;
        if decoded.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains(['/', '\\', '\0'])
        {
            return Err(ApiError::bad_request(
                "the asset path must name a file inside a source: no empty, `.` or `..` \
                 segments and no encoded slashes",
            ));
        }
        segments.push(decoded.into_owned());
    }
    if segments.len() < 2 {
        return Err(ApiError::not_found(
            "an asset URL is /assets/{source}/{path}",
        ));
    }
    let name = segments.remove(0);
    Ok((name, segments.join("/")))
}

/// The error a storage failure is for a client.
pub fn storage_error(e: storage::Error) -> ApiError {
    let (status, code, description) = match e.kind() {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NotFound", "no such asset"),
        ErrorKind::InvalidPath => (
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the asset path leaves its source (`..`, or a symbolic link out of it)",
        ),
        ErrorKind::InvalidRange => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RangeNotSatisfiable",
            "the range lies outside the object",
        ),
        ErrorKind::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "GatewayTimeout",
            "the storage behind this asset did not answer in time",
        ),
        ErrorKind::Permission | ErrorKind::Unavailable | ErrorKind::Config => (
            StatusCode::BAD_GATEWAY,
            "BadGateway",
            "the storage behind this asset failed; the error has been logged",
        ),
    };
    ApiError::new(status, code, description).with_source(e)
}

/// Signing for one request: the caller, and what it may see (looked up
/// once per collection).
pub struct Signer<'a> {
    state: &'a AppState,
    links: &'a Links,
    caller: &'a Caller,
    /// Collection → whether it is restricted (`None`: no such collection),
    /// read once per collection per request.
    flags: HashMap<String, Option<bool>>,
}

impl<'a> Signer<'a> {
    /// Signing for `caller`, with URLs under `links`.
    pub fn new(state: &'a AppState, links: &'a Links, caller: &'a Caller) -> Self {
        Self {
            state,
            links,
            caller,
            flags: HashMap::new(),
        }
    }

    /// Whether `collection` is restricted; `None` when it does not exist.
    async fn flag(&mut self, collection: &str) -> Result<Option<bool>, ApiError> {
        if let Some(f) = self.flags.get(collection) {
            return Ok(*f);
        }
        let f = self.state.store.collection_restricted(collection).await?;
        self.flags.insert(collection.to_owned(), f);
        Ok(f)
    }

    /// Whether the caller sees `collection`.
    pub async fn visible(&mut self, collection: &str) -> Result<bool, ApiError> {
        let flag = self.flag(collection).await?;
        Ok(flag.is_some_and(|r| self.caller.visibility.sees(collection, r)))
    }

    /// Whether the collections of all `covering` sources that serve the
    /// object are public (seen without credentials).
    async fn all_public(
        &mut self,
        covering: &[(&'a Registered, String)],
        chosen: &Registered,
        path: &str,
    ) -> Result<bool, ApiError> {
        for (source, _) in self.serving(covering, chosen, path)? {
            if self.flag(&source.collection).await? != Some(false) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The validity a request asks for, within the configured bounds.
    pub fn validity(&self, expires_in: Option<u64>) -> Result<Duration, ApiError> {
        let settings = &self.state.settings;
        match expires_in {
            None => Ok(settings.sign_expiry.min(settings.sign_expiry_max)),
            Some(0) => Err(ApiError::bad_request(
                "expires_in must be at least 1 second",
            )),
            Some(s) => Ok(Duration::from_secs(s).min(settings.sign_expiry_max)),
        }
    }

    /// The sources an href names, with the path inside each: those whose
    /// root covers a storage href (the deepest first), or those covering
    /// the object a URL of our own streaming route names (signed or not:
    /// re-signing extends it). Empty when no source covers it.
    pub fn locate(&self, href: &str) -> Result<Vec<(&'a Registered, String)>, ApiError> {
        let registry: &'a storage::Registry = &self.state.settings.registry;
        let ours = self.links.url("/assets/");
        if let Some(rest) = href.strip_prefix(&ours) {
            let raw = rest.split(['?', '#']).next().unwrap_or_default();
            let (name, path) = parse_route_path(raw)?;
            let Some(named) = registry.get(&name) else {
                return Ok(Vec::new());
            };
            let mut covering = registry
                .candidates(&named.source.href(&path))
                .map_err(storage_error)?;
            // The named source first: it is the one the URL streams from.
            covering.sort_by_key(|(s, _)| s.name != named.name);
            return Ok(covering);
        }
        registry.candidates(href).map_err(storage_error)
    }

    /// Whether the caller may read an object the `covering` sources serve
    /// through `chosen`: `chosen` serves `path` as an asset, the caller sees
    /// its collection, and, when that collection is public, every other
    /// collection serving the object too (a public source's root may hold a
    /// restricted source's files: restricted wins over public). A caller
    /// granted a restricted collection reads all of it, whatever other
    /// restricted collections share its files.
    pub async fn readable(
        &mut self,
        covering: &[(&Registered, String)],
        chosen: &Registered,
        path: &str,
    ) -> Result<bool, ApiError> {
        if !chosen.paths.admits(path) || !self.visible(&chosen.collection).await? {
            return Ok(false);
        }
        if self.restricted(&chosen.collection).await? {
            return Ok(true);
        }
        for (source, _) in self.serving(covering, chosen, path)? {
            if !self.visible(&source.collection).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the caller may read the bytes `chosen` serves at `path`
    /// (streamed, or made into tiles and features): [`Self::readable`],
    /// and no anonymous reader where the source offers public assets to
    /// no one.
    pub async fn may_read(
        &mut self,
        covering: &[(&Registered, String)],
        chosen: &Registered,
        path: &str,
    ) -> Result<bool, ApiError> {
        if self.caller.who == "anonymous" && chosen.public_assets == PublicAssets::None {
            return Ok(false);
        }
        self.readable(covering, chosen, path).await
    }

    /// Whether `collection` is restricted (exists and is not public).
    pub async fn restricted(&mut self, collection: &str) -> Result<bool, ApiError> {
        Ok(self.flag(collection).await? == Some(true))
    }

    /// The sources that serve the object `chosen` reads at `path`: those of
    /// `covering` whose filters admit it, and, when a symbolic link leads
    /// elsewhere inside the source, those serving the link's target (a link
    /// must not make a restricted file public).
    pub fn serving(
        &self,
        covering: &[(&'a Registered, String)],
        chosen: &Registered,
        path: &str,
    ) -> Result<Vec<(&'a Registered, String)>, ApiError> {
        let mut serving: Vec<(&'a Registered, String)> = covering
            .iter()
            .filter(|(s, rel)| s.paths.admits(rel))
            .cloned()
            .collect();
        if let Some(real) = chosen.source.real_path(path).map_err(storage_error)? {
            let target = self
                .state
                .settings
                .registry
                .candidates(&chosen.source.href(&real))
                .map_err(storage_error)?;
            serving.extend(target.into_iter().filter(|(s, rel)| s.paths.admits(rel)));
        }
        Ok(serving)
    }

    /// Sign one href for `validity`. An href no source covers comes back as
    /// it was with no expiry; one the caller may not read is a 404.
    pub async fn sign(&mut self, href: &str, validity: Duration) -> Result<Signed, ApiError> {
        let covering = self.locate(href)?;
        let Some((source, path)) = covering.first().cloned() else {
            return Ok(Signed {
                href: href.to_owned(),
                expiry: None,
            });
        };
        if !self.readable(&covering, source, &path).await? {
            return Err(ApiError::not_found("no such asset"));
        }
        self.sign_located(source, &path, validity).await
    }

    /// Sign `path` of `source`, and write the audit line.
    async fn sign_located(
        &self,
        source: &Registered,
        path: &str,
        validity: Duration,
    ) -> Result<Signed, ApiError> {
        let signed = self.make_signed(source, path, validity).await?;
        tracing::info!(
            target: "arcolake::audit",
            action = "sign",
            caller = %self.caller.who,
            source = %source.name,
            path = %path,
            expiry = %signed.expiry.map(rfc3339).unwrap_or_default(),
        );
        Ok(signed)
    }

    async fn make_signed(
        &self,
        source: &Registered,
        path: &str,
        validity: Duration,
    ) -> Result<Signed, ApiError> {
        let now = Utc::now();
        let until = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        match source.sign {
            SignMode::Presign => {
                let d = validity.min(source.source.presign_limit());
                if let Some(href) = source
                    .source
                    .presign(path, d)
                    .await
                    .map_err(storage_error)?
                {
                    return Ok(Signed {
                        href,
                        expiry: Some(until(d)),
                    });
                }
            }
            SignMode::Macaroon => {
                if let Some(href) = source
                    .source
                    .macaroon(path, validity)
                    .await
                    .map_err(storage_error)?
                {
                    return Ok(Signed {
                        href,
                        expiry: Some(until(validity)),
                    });
                }
            }
            SignMode::Proxy => {}
        }
        let expires = until(validity);
        let sig = self.state.settings.signer.sign(
            &Scope::Object {
                source: &source.name,
                path,
            },
            expires.timestamp(),
        );
        Ok(Signed {
            href: format!(
                "{}?exp={}&kid={}&sig={}",
                proxy_url(self.links, &source.name, path),
                expires.timestamp(),
                sig.kid,
                sig.sig
            ),
            expiry: Some(expires),
        })
    }

    /// A prefix token for every object of `collection`'s sources: a query
    /// string (no leading `?`) that also works as a bearer token.
    pub fn token(&self, collection: &str, validity: Duration) -> (String, DateTime<Utc>) {
        let expires = Utc::now() + chrono::Duration::from_std(validity).unwrap_or_default();
        let sig = self
            .state
            .settings
            .signer
            .sign(&Scope::Collection(collection), expires.timestamp());
        let col: String = url::form_urlencoded::byte_serialize(collection.as_bytes()).collect();
        tracing::info!(
            target: "arcolake::audit",
            action = "token",
            caller = %self.caller.who,
            collection = %collection,
            expiry = %rfc3339(expires),
        );
        (
            format!(
                "col={col}&exp={}&kid={}&sig={}",
                expires.timestamp(),
                sig.kid,
                sig.sig
            ),
            expires,
        )
    }

    /// Rewrite the assets of items whose hrefs a source covers: signed
    /// (`sign`), or with a public `alternate` href; `auth:refs` either way.
    /// Items no source covers are left as stored, unparsed.
    pub async fn items(&mut self, items: &mut [StoredItem], sign: bool) -> Result<(), ApiError> {
        let registry = &self.state.settings.registry;
        if registry.is_empty() {
            return Ok(());
        }
        // What a covered href starts with: a source's root, or our own
        // streaming route.
        let mut roots: Vec<String> = registry.iter().map(|r| r.source.describe()).collect();
        roots.push(self.links.url("/assets/"));
        let validity = self.validity(None)?;
        for item in items {
            if !roots.iter().any(|r| item.content.contains(r.as_str())) {
                continue;
            }
            let Ok(mut doc) = serde_json::from_str::<Value>(&item.content) else {
                continue;
            };
            if self.item(&mut doc, sign, validity).await? {
                item.content = doc.to_string();
            }
        }
        Ok(())
    }

    /// One item's assets; `true` when something changed.
    async fn item(
        &mut self,
        doc: &mut Value,
        sign: bool,
        validity: Duration,
    ) -> Result<bool, ApiError> {
        let collection = doc
            .get("collection")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(Value::Object(assets)) = doc.get_mut("assets") else {
            return Ok(false);
        };
        let mut changed = false;
        let mut alternates = false;
        for asset in assets.values_mut() {
            let Some(href) = asset.get("href").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let covering = self.locate(&href)?;
            // Sources may share a root: the item's own collection's source
            // is the one that serves it.
            let Some((source, path)) = covering
                .iter()
                .find(|(s, _)| Some(s.collection.as_str()) == collection.as_deref())
                .or_else(|| covering.first())
                .cloned()
            else {
                continue;
            };
            let Value::Object(asset) = asset else {
                continue;
            };
            let directory = is_directory_format(asset, &href);
            if sign {
                if !self.readable(&covering, source, &path).await? {
                    continue;
                }
                if directory {
                    let (token, expiry) = self.token(&source.collection, validity);
                    asset.insert(
                        "href".into(),
                        proxy_url(self.links, &source.name, &path).into(),
                    );
                    let options = json!({"headers": {"Authorization": format!("Bearer {token}")}});
                    let key = if is_zarr(asset, &href) {
                        "xarray:storage_options"
                    } else {
                        "table:storage_options"
                    };
                    asset.insert(key.into(), options);
                    asset.insert(EXPIRY_FIELD.into(), rfc3339(expiry).into());
                } else {
                    let signed = self.sign_located(source, &path, validity).await?;
                    asset.insert("href".into(), signed.href.into());
                    if let Some(e) = signed.expiry {
                        asset.insert(EXPIRY_FIELD.into(), rfc3339(e).into());
                    }
                }
            } else if source.public_assets != PublicAssets::None
                && source.paths.admits(&path)
                && self.all_public(&covering, source, &path).await?
            {
                let alternate = asset
                    .entry("alternate")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(alt) = alternate
                    && !alt.contains_key("https")
                {
                    alt.insert(
                        "https".into(),
                        json!({
                            "href": proxy_url(self.links, &source.name, &path),
                            "title": "HTTPS, streamed by arcolake",
                        }),
                    );
                    alternates = true;
                }
            }
            asset.insert("auth:refs".into(), json!([SCHEME]));
            changed = true;
        }
        if changed {
            if let Some(Value::Object(props)) = doc.get_mut("properties") {
                props.insert("auth:schemes".into(), self.schemes());
            }
            add_extension(doc, AUTH_EXTENSION);
            if alternates {
                add_extension(doc, ALTERNATE_EXTENSION);
            }
        }
        Ok(changed)
    }

    /// `auth:schemes` with our signing scheme: a `signedUrl` scheme of the
    /// Authentication extension (v1.1.0 puts the API in a flow).
    pub fn schemes(&self) -> Value {
        json!({
            SCHEME: {
                "type": "signedUrl",
                "description": "GET the authorization API with `href=<asset href>`; the answer's \
                                `href` reads the asset until `msft:expiry`. Restricted \
                                collections need an API key or token (Authorization: Bearer, \
                                or `api_key`).",
                "flows": {
                    "authorizationCode": {
                        "authorizationApi": self.links.url("/sign"),
                        "method": "GET",
                        "parameters": {
                            "href": {
                                "in": "query",
                                "required": true,
                                "description": "The asset href to sign",
                                "schema": {"type": "string"}
                            }
                        },
                        "responseField": "href"
                    }
                }
            }
        })
    }
}

/// A collection as JSON text; a collection that configured sources fill
/// also advertises the signing scheme (`auth:schemes`).
pub fn collection_document(
    state: &AppState,
    links: &Links,
    stored: &catalog::store::StoredCollection,
) -> String {
    let text = catalog::document::collection(stored, links);
    let registry = &state.settings.registry;
    if !registry.iter().any(|r| r.collection == stored.id) {
        return text;
    }
    let Ok(mut doc) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    let caller = Caller::anonymous();
    let schemes = Signer::new(state, links, &caller).schemes();
    if let Value::Object(map) = &mut doc {
        map.insert("auth:schemes".into(), schemes);
    }
    add_extension(&mut doc, AUTH_EXTENSION);
    doc.to_string()
}

/// Object metadata read a moment ago: the range requests of one reader on
/// one object (GDAL's reads of a COG, a Zarr store's chunks through one
/// token) cost one HEAD to the storage, not one each. An entry lives
/// [`HEAD_FRESH`]; ARCO objects are written once, and a rewrite is seen
/// after that long.
#[derive(Debug, Default)]
pub struct HeadCache {
    entries: std::sync::Mutex<HashMap<(String, String), (std::time::Instant, storage::Entry)>>,
}

/// How long a cached HEAD is used.
pub const HEAD_FRESH: Duration = Duration::from_secs(2);
const HEAD_CACHE_SIZE: usize = 10_000;

impl HeadCache {
    /// The metadata of `path` in `source`, if read within [`HEAD_FRESH`].
    pub fn get(&self, source: &str, path: &str) -> Option<storage::Entry> {
        let entries = self.entries.lock().ok()?;
        let (at, entry) = entries.get(&(source.to_owned(), path.to_owned()))?;
        (at.elapsed() < HEAD_FRESH).then(|| entry.clone())
    }

    /// Remember the metadata of `path` in `source`.
    pub fn put(&self, source: &str, path: &str, entry: &storage::Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= HEAD_CACHE_SIZE {
                entries.retain(|_, (at, _)| at.elapsed() < HEAD_FRESH);
                if entries.len() >= HEAD_CACHE_SIZE {
                    entries.clear();
                }
            }
            entries.insert(
                (source.to_owned(), path.to_owned()),
                (std::time::Instant::now(), entry.clone()),
            );
        }
    }
}

/// Add an extension schema URL to a document's `stac_extensions`.
pub fn add_extension(doc: &mut Value, url: &str) {
    let Value::Object(map) = doc else { return };
    let list = map
        .entry("stac_extensions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list
        && !list.iter().any(|v| v == url)
    {
        list.push(url.into());
    }
}

fn is_zarr(asset: &Map<String, Value>, href: &str) -> bool {
    asset
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains("zarr"))
        || storage::source::is_zarr_name(
            href.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default(),
        )
}

/// A store of many objects read by path (Zarr, a partitioned Parquet
/// dataset): one signature per file cannot serve it.
fn is_directory_format(asset: &Map<String, Value>, href: &str) -> bool {
    is_zarr(asset, href)
        || (href.ends_with('/')
            && asset
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("parquet")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_decoded_and_traversal_is_refused() {
        assert_eq!(
            parse_route_path("local/a%20b/z%C3%B6.tif").unwrap(),
            ("local".into(), "a b/zö.tif".into())
        );
        for bad in [
            "s/../x",
            "s/a/%2e%2e/x",
            "s/a%2Fb",
            "s//x",
            "s/a%5Cb",
            "s/./x",
        ] {
            assert_eq!(
                parse_route_path(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert_eq!(
            parse_route_path("only-source").unwrap_err().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn proxy_urls_round_trip_through_the_route_parser() {
        let links = Links::new("http://h:1/stac");
        let url = proxy_url(&links, "src", "dir/a b/per%cent/zö.tif");
        let raw = url.strip_prefix("http://h:1/stac/assets/").unwrap();
        assert_eq!(
            parse_route_path(raw).unwrap(),
            ("src".into(), "dir/a b/per%cent/zö.tif".into())
        );
    }
}
