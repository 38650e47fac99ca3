#![allow(clippy::unwrap_used, reason = "test code")]
//! Assets made readable, end to end: the streaming route
//! (`/assets/{source}/{path}`) with ranges and conditional requests on every
//! backend, HMAC-signed URLs (`/sign`), presigned S3 URLs, collection
//! tokens (`/token/{collection}`), items rewritten for signing and public
//! reading, rate limits, and the 4xx answers of each.
//!
//! The S3, WebDAV and XrdHttp servers are the ones `scripts/test` starts
//! (`ARCOLAKE_TEST_S3_URL`, `ARCOLAKE_TEST_WEBDAV_URL`,
//! `ARCOLAKE_TEST_XRDHTTP_URL`), each holding a copy of `fixtures/ingest`.
//! Without them only the local source is checked, unless
//! `ARCOLAKE_TEST_REQUIRE_SERVERS` is set.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures::StreamExt as _;
use serde_json::{Value, json};
use storage::signing::{Scope, UrlSigner};
use storage::sources::{PublicAssets, SignMode};
use storage::{PathFilter, Registered, Registry, Source, SourceSettings};
use support::backends::{backends, local_source as local, server};
use support::{TOKEN, TestApp};
use tower::ServiceExt as _;

/// The server's public root, as the harness configures it.
const ROOT: &str = "http://stac.test/api";
/// The URL-signing key of every app here: id `k1`.
const KEYS: &str = "k1:0123456789abcdef0123456789abcdef-assets";
/// A small COG of `fixtures/ingest`, and its neighbour of the same size.
const COG: &str = "s2/T31UFU_20230615T104621_B02.tif";
const B02: &str = "T31UFU_20230615T104621_B02.tif";
const B03: &str = "T31UFU_20230615T104621_B03.tif";
/// A Zarr v2 store of `fixtures/ingest`.
const ZARR: &str = "era_v2.zarr";
const AUTH_EXTENSION: &str = "https://stac-extensions.github.io/authentication/v1.1.0/schema.json";
const ALTERNATE_EXTENSION: &str =
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json";

// ---------------------------------------------------------------- sources

fn ingest() -> PathBuf {
    support::fixture("ingest")
}

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A source signed through the streaming route, public assets proxied.
fn registered(name: &str, collection: &str, source: &Arc<dyn Source>) -> Registered {
    Registered {
        name: name.into(),
        collection: collection.into(),
        source: Arc::clone(source),
        sign: SignMode::Proxy,
        public_assets: PublicAssets::Proxy,
        paths: PathFilter::default(),
    }
}

// ---------------------------------------------------------------- the app

fn signer() -> UrlSigner {
    UrlSigner::parse(KEYS).unwrap()
}

fn settings(sources: Vec<Registered>) -> api::ServeConfig {
    assert_eq!(ADMIN.1, format!("Bearer {TOKEN}"));
    api::ServeConfig {
        admin_token: Some(TOKEN.into()),
        public_url: Some(format!("{ROOT}/").parse().unwrap()),
        registry: Arc::new(Registry::new(sources).unwrap()),
        signer: Arc::new(signer()),
        sign_expiry: Duration::from_secs(3600),
        sign_expiry_max: Duration::from_secs(7200),
        ..api::ServeConfig::default()
    }
}

async fn app_with(sources: Vec<Registered>) -> TestApp {
    TestApp::with_settings(settings(sources)).await
}

/// Create a collection only callers granted it may see.
async fn restricted_collection(app: &TestApp, id: &str) {
    let mut c = support::collection(id);
    c["arcolake:access"] = json!("restricted");
    let r = app.write("POST", "/collections", Some(&c)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Create an item whose assets are `assets`, through the API.
async fn item_with_assets(app: &TestApp, collection: &str, id: &str, assets: Value) {
    let mut it = support::item(collection, id, 5.0, 45.0, "2023-06-15T10:46:21Z");
    it["assets"] = assets;
    let r = app
        .write(
            "POST",
            &format!("/collections/{collection}/items"),
            Some(&it),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

// ---------------------------------------------------------------- requests

/// An answer with its body as bytes (asset bodies are not text), and the
/// error that cut the body off after the headers were sent, if any.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    broken: Option<String>,
}

impl Raw {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered no JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.body).into_owned();
        if let Some(e) = &self.broken {
            let _ = write!(text, " [the body broke off: {e}]");
        }
        text
    }
}

async fn send(app: &TestApp, request: Request<Body>) -> Raw {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let mut chunks = response.into_body().into_data_stream();
    let (mut body, mut broken) = (Vec::new(), None);
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => body.extend_from_slice(&c),
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    Raw {
        status,
        headers,
        body,
        broken,
    }
}

async fn request(app: &TestApp, method: Method, uri: &str, headers: &[(&str, &str)]) -> Raw {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(app, builder.body(Body::empty()).unwrap()).await
}

async fn get(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Raw {
    request(app, Method::GET, uri, headers).await
}

/// The `Authorization` header of the admin ([`TOKEN`]), who sees every
/// collection.
const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");

/// A GET as the server sees it from the client at `ip`.
async fn get_from(app: &TestApp, ip: [u8; 4], uri: &str) -> Raw {
    let request = Request::get(uri)
        .extension(ConnectInfo(SocketAddr::from((ip, 40_000))))
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

/// The `signedUrl` scheme's authorization API (Authentication extension
/// v1.1.0: in the scheme's flow).
fn authorization_api(schemes: &Value) -> &Value {
    let scheme = &schemes["arcolake"];
    assert_eq!(scheme["type"], "signedUrl", "{schemes}");
    &scheme["flows"]["authorizationCode"]["authorizationApi"]
}

/// Assert a JSON exception with `status` whose description holds `needle`.
fn assert_exception(r: &Raw, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let body = r.json();
    assert!(body["code"].is_string(), "{body}");
    let description = body["description"].as_str().unwrap();
    assert!(
        description.contains(needle),
        "{needle:?} not in {description:?}"
    );
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `GET /sign` of `href` as the admin; the answer must be a 200.
async fn sign(app: &TestApp, href: &str, expires_in: Option<u64>) -> Value {
    let mut uri = format!("/sign?href={}", encode(href));
    if let Some(s) = expires_in {
        let _ = write!(uri, "&expires_in={s}");
    }
    let r = get(app, &uri, &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// The router path of a URL under the public root.
fn route(url: &str) -> String {
    url.strip_prefix(ROOT)
        .unwrap_or_else(|| panic!("{url} is not under {ROOT}"))
        .to_owned()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An RFC 3339 expiry as Unix seconds.
fn expiry_of(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("no expiry: {v}")))
        .unwrap()
        .timestamp()
}

/// The value of query parameter `key` of a URL.
fn param(url: &str, key: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {url}"))
        .1
        .into_owned()
}

/// `url` with query parameter `key` set to `value`.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key {
                value.into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// A hex digest with its first digit changed.
fn flip_first_digit(hex: &str) -> String {
    let first = if hex.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &hex[1..])
}

/// The parts of a `multipart/byteranges` body: each part's
/// `Content-Range` and bytes.
fn byteranges(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    let delimiter = format!("\r\n--{boundary}");
    let d = delimiter.as_bytes();
    let starts: Vec<usize> = (0..body.len().saturating_sub(d.len() - 1))
        .filter(|&i| body[i..].starts_with(d))
        .collect();
    assert_eq!(starts.first(), Some(&0), "the body opens with the boundary");
    let last = *starts.last().unwrap();
    assert_eq!(
        &body[last + d.len()..],
        b"--\r\n",
        "the body ends with the closing delimiter"
    );
    starts
        .windows(2)
        .map(|w| {
            let part = &body[w[0] + d.len()..w[1]];
            let part = part.strip_prefix(b"\r\n").unwrap();
            let split = part.windows(4).position(|x| x == b"\r\n\r\n").unwrap();
            let head = std::str::from_utf8(&part[..split]).unwrap();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Range: "))
                .unwrap_or_else(|| panic!("a part without Content-Range: {head:?}"))
                .to_owned();
            assert!(
                head.lines()
                    .any(|l| l.starts_with("Content-Type: image/tiff")),
                "{head:?}"
            );
            (range, part[split + 4..].to_vec())
        })
        .collect()
}

/// Fetch `url` outside the router, with curl: (status, body).
fn curl(url: &str) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--noproxy", "*", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl is installed (scripts/test needs it)");
    let split = out.stdout.iter().rposition(|b| *b == b'\n').unwrap();
    let code = std::str::from_utf8(&out.stdout[split + 1..])
        .unwrap()
        .parse()
        .unwrap();
    (code, out.stdout[..split].to_vec())
}

// ---------------------------------------------------------------- ranges

/// Every answer of the streaming route to one object of one backend.
async fn check_ranges(app: &TestApp, name: &str, want: &[u8]) {
    let uri = format!("/assets/{name}/{COG}");
    let size = want.len();
    let full = get(app, &uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(full.status, StatusCode::OK, "{name}: {}", full.text());
    assert!(full.body == want, "{name}: the whole object");
    assert_eq!(
        full.header(header::CONTENT_LENGTH),
        Some(size.to_string().as_str()),
        "{name}"
    );
    assert_eq!(full.header(header::ACCEPT_RANGES), Some("bytes"), "{name}");
    assert_eq!(
        full.header(header::CONTENT_ENCODING),
        None,
        "{name}: stored bytes are not compressed"
    );
    assert!(
        full.header(header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("image/tiff")),
        "{name}: {:?}",
        full.headers
    );

    for (range, first, end) in [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, size),
        ("bytes=-50", size - 50, size),
    ] {
        let r = get(app, &uri, &[("range", range)]).await;
        assert_eq!(
            r.status,
            StatusCode::PARTIAL_CONTENT,
            "{name} {range}: {}",
            r.text()
        );
        assert!(r.body == want[first..end], "{name} {range}: the bytes");
        assert_eq!(
            r.header(header::CONTENT_RANGE).unwrap(),
            format!("bytes {first}-{}/{size}", end - 1),
            "{name} {range}"
        );
        assert_eq!(
            r.header(header::CONTENT_LENGTH).unwrap(),
            (end - first).to_string(),
            "{name} {range}"
        );
    }

    let multi = get(app, &uri, &[("range", "bytes=0-9,200-299")]).await;
    assert_eq!(
        multi.status,
        StatusCode::PARTIAL_CONTENT,
        "{name}: {}",
        multi.text()
    );
    assert_eq!(
        multi.header(header::CONTENT_LENGTH).unwrap(),
        multi.body.len().to_string(),
        "{name}: the multipart length is exact"
    );
    let parts = byteranges(multi.header(header::CONTENT_TYPE).unwrap(), &multi.body);
    assert_eq!(
        parts,
        vec![
            (format!("bytes 0-9/{size}"), want[..10].to_vec()),
            (format!("bytes 200-299/{size}"), want[200..300].to_vec()),
        ],
        "{name}: the parts"
    );

    let outside = get(app, &uri, &[("range", "bytes=999999999-")]).await;
    assert_exception(&outside, StatusCode::RANGE_NOT_SATISFIABLE, "");
    assert_eq!(
        outside.header(header::CONTENT_RANGE).unwrap(),
        format!("bytes */{size}"),
        "{name}"
    );

    let head = request(app, Method::HEAD, &uri, &[]).await;
    assert_eq!(head.status, StatusCode::OK, "{name}");
    assert!(head.body.is_empty(), "{name}: HEAD has no body");
    assert_eq!(
        head.header(header::CONTENT_LENGTH).unwrap(),
        size.to_string(),
        "{name}"
    );
    assert_eq!(head.header(header::ACCEPT_RANGES), Some("bytes"), "{name}");
    // HEAD ignores Range: clients read the size from its Content-Length.
    let head = request(app, Method::HEAD, &uri, &[("range", "bytes=0-9")]).await;
    assert_eq!(head.status, StatusCode::OK, "{name}");
    assert_eq!(
        head.header(header::CONTENT_LENGTH).unwrap(),
        size.to_string(),
        "{name}"
    );

    match full.header(header::ETAG) {
        Some(etag) => {
            let same = get(app, &uri, &[("if-none-match", etag)]).await;
            assert_eq!(same.status, StatusCode::NOT_MODIFIED, "{name}: {etag}");
            assert!(same.body.is_empty(), "{name}");
            assert_eq!(same.header(header::ETAG), Some(etag), "{name}");
            let other = get(app, &uri, &[("if-none-match", "\"not-this-one\"")]).await;
            assert_eq!(other.status, StatusCode::OK, "{name}");
            assert!(other.body == want, "{name}");
        }
        None => assert!(
            !matches!(name, "local" | "s3"),
            "{name}: object_store backends always have an ETag"
        ),
    }
}

#[tokio::test]
async fn every_backend_streams_ranges_multipart_and_conditionals_of_the_exact_bytes() {
    let backends = backends();
    let app = app_with(
        backends
            .iter()
            .map(|(name, s)| registered(name, &format!("c-{name}"), s))
            .collect(),
    )
    .await;
    let want = bytes_of(&ingest().join(COG));
    for (name, _) in &backends {
        app.collection(&format!("c-{name}")).await;
        check_ranges(&app, name, &want).await;
    }
}

#[tokio::test]
async fn unknown_sources_and_missing_files_are_404s() {
    let backends = backends();
    let app = app_with(
        backends
            .iter()
            .map(|(name, s)| registered(name, &format!("c-{name}"), s))
            .collect(),
    )
    .await;
    let r = get(&app, &format!("/assets/nosuch/{COG}"), &[]).await;
    assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
    for (name, _) in &backends {
        app.collection(&format!("c-{name}")).await;
        let r = get(&app, &format!("/assets/{name}/s2/missing.tif"), &[]).await;
        assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
        let r = request(
            &app,
            Method::HEAD,
            &format!("/assets/{name}/s2/missing.tif"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}");
    }
}

// ---------------------------------------------------------------- names and directories

/// The HTTP doors of the test harness at their root, where `scripts/test`
/// puts copies of the COG under names that need escaping.
fn doors_at_their_root() -> Vec<(&'static str, Arc<dyn Source>)> {
    let mut doors = Vec::new();
    for (var, name) in [
        ("ARCOLAKE_TEST_WEBDAV_URL", "dav"),
        ("ARCOLAKE_TEST_XRDHTTP_URL", "xrd"),
    ] {
        if server(var).is_some() {
            let mut root = url::Url::parse(&std::env::var(var).unwrap()).unwrap();
            root.set_path("/");
            let settings = SourceSettings::default().with_env();
            doors.push((
                name,
                storage::source::open(root.as_str(), &settings).unwrap(),
            ));
        }
    }
    doors
}

const ODD_NAMES: [&str; 3] = ["a b.tif", "per%cent.tif", "zoë.tif"];

#[tokio::test]
async fn names_that_need_escaping_stream_from_the_http_doors() {
    let doors = doors_at_their_root();
    if doors.is_empty() {
        return;
    }
    let app = app_with(
        doors
            .iter()
            .map(|(name, s)| registered(name, "odd", s))
            .collect(),
    )
    .await;
    restricted_collection(&app, "odd").await;
    let want = bytes_of(&ingest().join(COG));
    for (name, source) in &doors {
        for file in ODD_NAMES {
            let href = source.href(&format!("odd names/{file}"));
            let signed = sign(&app, &href, None).await;
            let url = signed["href"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("{ROOT}/assets/{name}/odd%20names/")),
                "{url}"
            );
            let r = get(&app, &route(url), &[]).await;
            assert_eq!(r.status, StatusCode::OK, "{name} {file}: {}", r.text());
            assert!(r.body == want, "{name} {file}");
            let r = get(&app, &route(url), &[("range", "bytes=-50")]).await;
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{name} {file}");
            assert!(r.body == want[want.len() - 50..], "{name} {file}");
        }
    }
}

/// A local file is named in its href by the escaped key (`per%25cent.tif`,
/// `zo%C3%AB.tif`); signing that href must give a URL that reads the file.
#[tokio::test]
async fn local_files_whose_names_need_escaping_stream_through_their_signed_hrefs() {
    let dir = tempfile::tempdir().unwrap();
    let want = bytes_of(&ingest().join(COG));
    for file in ODD_NAMES {
        std::fs::write(dir.path().join(file), &want).unwrap();
    }
    let source = local(dir.path());
    let app = app_with(vec![registered("odd", "odd", &source)]).await;
    app.collection("odd").await;
    for file in ODD_NAMES {
        let signed = sign(&app, &source.href(file), None).await;
        let url = signed["href"].as_str().unwrap();
        let r = get(&app, &route(url), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{file} ({url}): {}", r.text());
        assert!(r.body == want, "{file}");
    }
}

/// A directory (a Zarr store's root, a folder) is not an object: 404, as on
/// a local source. S3 is left out: it has no directories, and the test
/// server (s3s-fs) answers a directory's key with a 500.
#[tokio::test]
async fn a_directory_is_no_asset_on_any_backend() {
    let backends: Vec<_> = backends().into_iter().filter(|(n, _)| *n != "s3").collect();
    let app = app_with(
        backends
            .iter()
            .map(|(name, s)| registered(name, &format!("c-{name}"), s))
            .collect(),
    )
    .await;
    for (name, _) in &backends {
        app.collection(&format!("c-{name}")).await;
        for dir in [ZARR, "s2"] {
            let uri = format!("/assets/{name}/{dir}");
            let r = get(&app, &uri, &[]).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{uri}: {:?} {}",
                r.headers,
                r.text()
            );
            assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
            let r = request(&app, Method::HEAD, &uri, &[]).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "HEAD {uri}: {:?}",
                r.headers
            );
        }
    }
}

// ---------------------------------------------------------------- signing

/// An app with a restricted source `priv` (collection `secret`, over
/// `fixtures/ingest/s2`) and a public source `mirror` (collection `open`)
/// holding copies of the same two files under the same names.
struct Signing {
    app: TestApp,
    private: Arc<dyn Source>,
    _mirror: tempfile::TempDir,
}

async fn signing_app() -> Signing {
    let mirror = tempfile::tempdir().unwrap();
    for f in [B02, B03] {
        std::fs::copy(ingest().join("s2").join(f), mirror.path().join(f)).unwrap();
    }
    let private = local(&ingest().join("s2"));
    let app = app_with(vec![
        registered("priv", "secret", &private),
        registered("mirror", "open", &local(mirror.path())),
    ])
    .await;
    restricted_collection(&app, "secret").await;
    app.collection("open").await;
    Signing {
        app,
        private,
        _mirror: mirror,
    }
}

#[tokio::test]
async fn a_restricted_asset_is_hidden_until_signed_and_its_signed_href_streams_it() {
    let s = signing_app().await;
    let app = &s.app;
    let want = bytes_of(&ingest().join(COG));
    let path = format!("/assets/priv/{B02}");
    let hidden = get(app, &path, &[]).await;
    assert_exception(&hidden, StatusCode::NOT_FOUND, "no such asset");
    // The admin sees every collection, so it may stream without signing.
    assert!(get(app, &path, &[ADMIN]).await.body == want);
    // Signing needs a caller who sees the collection.
    let href = s.private.href(B02);
    let r = get(app, &format!("/sign?href={}", encode(&href)), &[]).await;
    assert_exception(&r, StatusCode::NOT_FOUND, "");

    let before = now();
    let signed = sign(app, &href, None).await;
    let url = signed["href"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{ROOT}/assets/priv/{B02}?")),
        "{url}"
    );
    assert_eq!(param(url, "kid"), "k1");
    let expiry = expiry_of(&signed["msft:expiry"]);
    assert_eq!(param(url, "exp"), expiry.to_string());
    assert!(
        (before + 3600..=now() + 3600).contains(&expiry),
        "the default validity is an hour: {signed}"
    );
    let r = get(app, &route(url), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == want, "the signed href streams the object");
    let r = get(app, &route(url), &[("range", "bytes=0-99")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body == want[..100]);

    // A storage href that steps out of the source is refused.
    let out = format!(
        "{}/../utm_uint16_cog.tif",
        s.private.href(B02).rsplit_once('/').unwrap().0
    );
    let r = get(app, &format!("/sign?href={}", encode(&out)), &[ADMIN]).await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "");
    let r = get(app, "/sign", &[ADMIN]).await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "href");
}

#[tokio::test]
async fn a_tampered_or_moved_signature_is_a_403_that_says_why() {
    let s = signing_app().await;
    let app = &s.app;
    let signed = sign(app, &s.private.href(B02), None).await;
    let url = signed["href"].as_str().unwrap().to_owned();
    let sig = param(&url, "sig");
    let exp: i64 = param(&url, "exp").parse().unwrap();
    let query = url.split_once('?').unwrap().1;
    // The mirror streams its copy to anyone: a 403 there is the signature's.
    assert_eq!(
        get(app, &format!("/assets/mirror/{B02}"), &[]).await.status,
        StatusCode::OK
    );
    for (what, tampered, needle) in [
        (
            "another file",
            format!("/assets/priv/{B03}?{query}"),
            "does not match",
        ),
        (
            "a later exp",
            route(&with_param(&url, "exp", &(exp + 1).to_string())),
            "does not match",
        ),
        (
            "a changed digit",
            route(&with_param(&url, "sig", &flip_first_digit(&sig))),
            "does not match",
        ),
        (
            "another kid",
            route(&with_param(&url, "kid", "k2")),
            "no longer has",
        ),
        (
            "no exp",
            format!("/assets/priv/{B02}?kid=k1&sig={sig}"),
            "exp",
        ),
        (
            "another source",
            format!("/assets/mirror/{B02}?{query}"),
            "does not match",
        ),
    ] {
        let r = get(app, &tampered, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text());
        assert_exception(&r, StatusCode::FORBIDDEN, needle);
    }
    // A collection token is no object signature, and the reverse.
    let r = get(app, &format!("/assets/priv/{B02}?col=secret&{query}"), &[]).await;
    assert_exception(&r, StatusCode::FORBIDDEN, "does not match");
}

#[tokio::test]
async fn an_expired_signature_is_a_403_that_says_so() {
    let s = signing_app().await;
    let app = &s.app;
    let scope = Scope::Object {
        source: "priv",
        path: B02,
    };
    let url = |exp: i64| {
        let sig = signer().sign(&scope, exp);
        format!(
            "/assets/priv/{B02}?exp={exp}&kid={}&sig={}",
            sig.kid, sig.sig
        )
    };
    // Made with the server's key, the same URL in the future streams.
    assert_eq!(get(app, &url(now() + 60), &[]).await.status, StatusCode::OK);
    let r = get(app, &url(now() - 10), &[]).await;
    assert_exception(&r, StatusCode::FORBIDDEN, "expired");
}

#[tokio::test]
async fn asset_paths_that_leave_their_source_are_400s() {
    let s = signing_app().await;
    let app = &s.app;
    for path in [
        format!("/assets/mirror/../{B02}"),
        format!("/assets/mirror/x/../{B02}"),
        format!("/assets/mirror/%2e%2e/s2/{B02}"),
        format!("/assets/mirror/x/%2E%2E/{B02}"),
        format!("/assets/mirror/s2%2F{B02}"),
        format!("/assets/mirror/..%2F{B02}"),
        format!("/assets/mirror/..%5C{B02}"),
        format!("/assets/mirror/x%5C..%5C{B02}"),
        format!("/assets/mirror/./{B02}"),
        format!("/assets/mirror//{B02}"),
    ] {
        let r = get(app, &path, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text());
        assert_exception(&r, StatusCode::BAD_REQUEST, "");
    }
}

#[tokio::test]
async fn signing_a_signed_href_signs_the_same_path_afresh() {
    let s = signing_app().await;
    let app = &s.app;
    let first = sign(app, &s.private.href(B02), Some(60)).await;
    let url = first["href"].as_str().unwrap();
    let again = sign(app, url, Some(600)).await;
    let renewed = again["href"].as_str().unwrap();
    assert_eq!(
        renewed.split_once('?').unwrap().0,
        url.split_once('?').unwrap().0,
        "the same path"
    );
    assert!(
        expiry_of(&again["msft:expiry"]) >= expiry_of(&first["msft:expiry"]) + 500,
        "{first} {again}"
    );
    assert_eq!(
        param(renewed, "exp"),
        expiry_of(&again["msft:expiry"]).to_string()
    );
    assert_ne!(param(renewed, "sig"), param(url, "sig"));
    let r = get(app, &route(renewed), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == bytes_of(&ingest().join(COG)));
    // An unsigned streaming URL is signed the same way.
    let plain = sign(app, &format!("{ROOT}/assets/priv/{B03}"), None).await;
    assert!(
        plain["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ROOT}/assets/priv/{B03}?exp=")),
        "{plain}"
    );
    // Holding a signature gives no right to extend it.
    let r = get(app, &format!("/sign?href={}", encode(url)), &[]).await;
    assert_exception(&r, StatusCode::NOT_FOUND, "");
}

#[tokio::test]
async fn hrefs_no_source_covers_come_back_unchanged_and_batches_keep_their_order() {
    let s = signing_app().await;
    let app = &s.app;
    let foreign = "https://example.com/data/scene.tif";
    let r = sign(app, foreign, None).await;
    assert_eq!(r, json!({"href": foreign, "msft:expiry": null}));
    let hrefs = [s.private.href(B02), foreign.to_owned(), s.private.href(B03)];
    let r = app
        .write(
            "POST",
            "/sign",
            Some(&json!({"hrefs": hrefs, "expires_in": 120})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let signed = r.body["signed"].as_array().unwrap();
    assert_eq!(signed.len(), 3, "{}", r.text);
    assert!(
        signed[0]["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ROOT}/assets/priv/{B02}?")),
        "{}",
        r.text
    );
    assert_eq!(signed[1], json!({"href": foreign, "msft:expiry": null}));
    assert!(
        signed[2]["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ROOT}/assets/priv/{B03}?")),
        "{}",
        r.text
    );
    for s in [&signed[0], &signed[2]] {
        let e = expiry_of(&s["msft:expiry"]);
        assert!((now() + 110..=now() + 120).contains(&e), "{s}");
        let r = get(app, &route(s["href"].as_str().unwrap()), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{s}");
    }
    // A batch with an href the caller may not see fails as a whole.
    let r = app
        .post("/sign", &json!({"hrefs": [foreign, s.private.href(B02)]}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app
        .write("POST", "/sign", Some(&json!({"href": foreign})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let many = vec![foreign; 10_001];
    let r = app
        .write("POST", "/sign", Some(&json!({"hrefs": many})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["description"].as_str().unwrap().contains("10000"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn expires_in_is_capped_at_the_maximum_and_zero_is_refused() {
    let s = signing_app().await;
    let app = &s.app;
    let href = s.private.href(B02);
    let before = now();
    let capped = sign(app, &href, Some(30 * 24 * 3600)).await;
    let e = expiry_of(&capped["msft:expiry"]);
    assert!(
        (before + 7200..=now() + 7200).contains(&e),
        "capped at sign_expiry_max (2 h): {capped}"
    );
    let short = sign(app, &href, Some(5)).await;
    assert!((before + 5..=now() + 5).contains(&expiry_of(&short["msft:expiry"])));
    let r = get(
        app,
        &format!("/sign?href={}&expires_in=0", encode(&href)),
        &[ADMIN],
    )
    .await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "expires_in");
    let r = get(
        app,
        &format!("/sign?href={}&expires_in=soon", encode(&href)),
        &[ADMIN],
    )
    .await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "");
    let r = app
        .write(
            "POST",
            "/sign",
            Some(&json!({"hrefs": [href], "expires_in": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

// ---------------------------------------------------------------- presigned S3

#[tokio::test]
async fn presigned_s3_urls_read_the_object_until_they_expire() {
    let Some(s3) = server("ARCOLAKE_TEST_S3_URL") else {
        return;
    };
    let app = app_with(vec![Registered {
        sign: SignMode::Presign,
        ..registered("s3p", "lake", &s3)
    }])
    .await;
    restricted_collection(&app, "lake").await;
    let want = bytes_of(&ingest().join(COG));
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();

    let signed = sign(&app, &s3.href(COG), None).await;
    let url = signed["href"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/bucket/data/{COG}?",
            endpoint.trim_end_matches('/')
        )),
        "a URL of the S3 endpoint, not of /assets/: {url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(curl(url), (200, want.clone()));
    // The storage checks its own signature.
    let other = url.replace("_B02.tif?", "_B03.tif?");
    assert_eq!(curl(&other).0, 403, "{other}");

    let before = now();
    let short = sign(&app, &s3.href(COG), Some(1)).await;
    assert!((before + 1..=now() + 1).contains(&expiry_of(&short["msft:expiry"])));
    let url = short["href"].as_str().unwrap();
    assert_eq!(param(url, "X-Amz-Expires"), "1", "{url}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = curl(url);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    // The restricted source streams to no anonymous reader...
    assert_exception(
        &get(&app, &format!("/assets/s3p/{COG}"), &[]).await,
        StatusCode::NOT_FOUND,
        "",
    );
    // ...and a public one that offers presigned assets redirects them to
    // the storage.
    let app = app_with(vec![Registered {
        public_assets: PublicAssets::Presign,
        ..registered("s3pub", "open-lake", &s3)
    }])
    .await;
    app.collection("open-lake").await;
    let r = get(&app, &format!("/assets/s3pub/{COG}"), &[]).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let location = r.header(header::LOCATION).unwrap();
    assert!(location.starts_with(&endpoint), "{location}");
    assert_eq!(curl(location), (200, want));
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn a_collection_token_reads_every_object_of_its_sources_and_no_others() {
    let zarr = local(&ingest());
    let app = app_with(vec![
        registered("zsrc", "cubes", &zarr),
        registered("elsewhere", "other-cubes", &zarr),
    ])
    .await;
    restricted_collection(&app, "cubes").await;
    restricted_collection(&app, "other-cubes").await;
    let want = bytes_of(&ingest().join(ZARR).join(".zmetadata"));
    let path = format!("/assets/zsrc/{ZARR}/.zmetadata");
    assert_exception(&get(&app, &path, &[]).await, StatusCode::NOT_FOUND, "");
    assert_exception(
        &get(&app, "/token/cubes", &[]).await,
        StatusCode::NOT_FOUND,
        "",
    );

    let before = now();
    let r = get(&app, "/token/cubes?expires_in=600", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let answer = r.json();
    let token = answer["token"].as_str().unwrap().to_owned();
    assert!((before + 600..=now() + 600).contains(&expiry_of(&answer["msft:expiry"])));
    assert!(token.starts_with("col=cubes&exp="), "{token}");

    // JSON asset bytes go out as stored, never compressed (ranges would break).
    let r = get(
        &app,
        &format!("{path}?{token}"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header(header::CONTENT_ENCODING), None);
    assert!(r.body == want);
    let bearer = format!("Bearer {token}");
    let r = get(&app, &path, &[("authorization", &bearer)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == want);
    // Every object of the source: a chunk and a COG beside the store.
    let chunk = format!("{ZARR}/precip/0.0.0");
    let r = get(&app, &format!("/assets/zsrc/{chunk}?{token}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == bytes_of(&ingest().join(&chunk)));
    let r = get(
        &app,
        &format!("/assets/zsrc/{COG}?{token}"),
        &[("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{}", r.text());

    // Not another collection's source, in the query or as a bearer token.
    let other = format!("/assets/elsewhere/{ZARR}/.zmetadata");
    assert_exception(
        &get(&app, &format!("{other}?{token}"), &[]).await,
        StatusCode::FORBIDDEN,
        "",
    );
    assert_exception(
        &get(&app, &other, &[("authorization", &bearer)]).await,
        StatusCode::FORBIDDEN,
        "",
    );
    // Nor tampered with.
    let full = format!("{ROOT}{path}?{token}");
    for tampered in [
        with_param(&full, "sig", &flip_first_digit(&param(&full, "sig"))),
        with_param(&full, "col", "other-cubes"),
        with_param(
            &full,
            "exp",
            &(param(&full, "exp").parse::<i64>().unwrap() + 1).to_string(),
        ),
    ] {
        let r = get(&app, &route(&tampered), &[]).await;
        assert_exception(&r, StatusCode::FORBIDDEN, "does not match");
    }
    let forged = with_param(&format!("{ROOT}{other}?{token}"), "col", "other-cubes");
    assert_exception(
        &get(&app, &route(&forged), &[]).await,
        StatusCode::FORBIDDEN,
        "does not match",
    );
}

// ---------------------------------------------------------------- items

/// An app with a public source `pub` (collection `open`, over a copy of
/// the COG) and a restricted source `priv` (collection `secret`, over
/// `fixtures/ingest`), an item in each whose assets those sources cover,
/// and one asset no source covers. The roots do not nest: a file under both
/// would be as restricted as the stricter one.
struct Items {
    app: TestApp,
    public: Arc<dyn Source>,
    private: Arc<dyn Source>,
    /// Bind it where the app is used: the copy lives as long as it.
    _copy: tempfile::TempDir,
}

async fn items_app() -> Items {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(ingest().join(COG), copy.path().join(B02)).unwrap();
    let public = local(copy.path());
    let private = local(&ingest());
    let app = app_with(vec![
        registered("pub", "open", &public),
        registered("priv", "secret", &private),
    ])
    .await;
    app.collection("open").await;
    restricted_collection(&app, "secret").await;
    item_with_assets(
        &app,
        "open",
        "o1",
        json!({
            "B02": {"href": public.href(B02), "type": "image/tiff; application=geotiff; profile=cloud-optimized"},
            "foreign": {"href": "https://example.com/o1.tif", "type": "image/tiff"}
        }),
    )
    .await;
    item_with_assets(
        &app,
        "secret",
        "s1",
        json!({
            "cog": {"href": private.href("utm_uint16_cog.tif"), "type": "image/tiff; application=geotiff"},
            "zarr": {"href": private.href(ZARR), "type": "application/vnd+zarr"}
        }),
    )
    .await;
    Items {
        app,
        public,
        private,
        _copy: copy,
    }
}

fn extensions(item: &Value) -> Vec<&str> {
    item["stac_extensions"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The checks of a signed copy of item `s1`: the COG signed, the Zarr
/// store routed through the proxy with a bearer token that reads it.
async fn check_signed_secret_item(app: &TestApp, item: &Value, what: &str) {
    let cog = &item["assets"]["cog"];
    let href = cog["href"].as_str().unwrap();
    assert!(
        href.starts_with(&format!("{ROOT}/assets/priv/utm_uint16_cog.tif?exp=")),
        "{what}: {cog}"
    );
    assert_eq!(
        param(href, "exp"),
        expiry_of(&cog["arcolake:expiry"]).to_string(),
        "{what}"
    );
    assert_eq!(cog["auth:refs"], json!(["arcolake"]), "{what}");
    let r = get(app, &route(href), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
    assert!(
        r.body == bytes_of(&ingest().join("utm_uint16_cog.tif")),
        "{what}"
    );

    let zarr = &item["assets"]["zarr"];
    assert_eq!(
        zarr["href"],
        format!("{ROOT}/assets/priv/{ZARR}"),
        "{what}: {zarr}"
    );
    assert!(zarr["arcolake:expiry"].is_string(), "{what}: {zarr}");
    let authorization = zarr["xarray:storage_options"]["headers"]["Authorization"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {zarr}"));
    assert!(
        authorization.starts_with("Bearer col=secret&exp="),
        "{what}: {authorization}"
    );
    let metadata = format!("{}/.zmetadata", route(zarr["href"].as_str().unwrap()));
    assert_exception(&get(app, &metadata, &[]).await, StatusCode::NOT_FOUND, "");
    let r = get(app, &metadata, &[("authorization", authorization)]).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
    assert!(
        r.body == bytes_of(&ingest().join(ZARR).join(".zmetadata")),
        "{what}"
    );

    assert!(extensions(item).contains(&AUTH_EXTENSION), "{what}: {item}");
    assert_eq!(
        item["properties"]["auth:schemes"]["arcolake"]["type"], "signedUrl",
        "{what}"
    );
}

#[tokio::test]
async fn signed_items_carry_signed_hrefs_and_zarr_stores_a_bearer_token() {
    let Items { app, _copy, .. } = items_app().await;
    let r = get(&app, "/collections/secret/items/s1?sign=true", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    check_signed_secret_item(&app, &r.json(), "item").await;

    let r = get(&app, "/search?collections=secret&sign=true", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.json();
    assert_eq!(support::ids(&page), ["s1"]);
    check_signed_secret_item(&app, &page["features"][0], "GET /search").await;

    let r = app
        .write(
            "POST",
            "/search",
            Some(&json!({"collections": ["secret"], "sign": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_signed_secret_item(&app, &r.body["features"][0], "POST /search").await;

    let r = get(&app, "/collections/secret/items?sign=true", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    check_signed_secret_item(&app, &r.json()["features"][0], "items").await;

    // Anyone may sign a public item; an href no source covers stays as it was.
    let r = get(&app, "/collections/open/items/o1?sign=true", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let item = r.json();
    let b02 = &item["assets"]["B02"];
    assert!(
        b02["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ROOT}/assets/pub/{B02}?exp=")),
        "{b02}"
    );
    assert!(b02["arcolake:expiry"].is_string(), "{b02}");
    assert_eq!(
        item["assets"]["foreign"],
        json!({"href": "https://example.com/o1.tif", "type": "image/tiff"})
    );
    let r = get(&app, "/collections/open/items/o1?sign=maybe", &[]).await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "sign");
}

#[tokio::test]
async fn public_items_get_an_anonymous_alternate_href_and_restricted_ones_do_not() {
    let Items {
        app,
        public,
        private,
        _copy,
    } = items_app().await;
    let r = get(&app, "/collections/open/items/o1", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let item = r.json();
    let b02 = &item["assets"]["B02"];
    assert_eq!(b02["href"], public.href(B02), "the href is left as stored");
    assert!(b02.get("arcolake:expiry").is_none(), "{b02}");
    let alternate = b02["alternate"]["https"]["href"].as_str().unwrap();
    assert_eq!(alternate, format!("{ROOT}/assets/pub/{B02}"));
    assert_eq!(b02["auth:refs"], json!(["arcolake"]));
    let r = get(&app, &route(alternate), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == bytes_of(&ingest().join(COG)));
    let ext = extensions(&item);
    assert!(ext.contains(&AUTH_EXTENSION), "{ext:?}");
    assert!(ext.contains(&ALTERNATE_EXTENSION), "{ext:?}");
    assert_eq!(
        authorization_api(&item["properties"]["auth:schemes"]),
        &json!(format!("{ROOT}/sign"))
    );
    assert_eq!(
        item["assets"]["foreign"],
        json!({"href": "https://example.com/o1.tif", "type": "image/tiff"})
    );
    // The same on a page of items and of a search.
    let r = get(&app, "/collections/open/items", &[]).await;
    assert_eq!(
        r.json()["features"][0]["assets"]["B02"]["alternate"]["https"]["href"],
        alternate
    );
    let r = get(&app, "/search?collections=open", &[]).await;
    assert_eq!(
        r.json()["features"][0]["assets"]["B02"]["alternate"]["https"]["href"],
        alternate
    );

    let r = get(&app, "/collections/secret/items/s1", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let item = r.json();
    for key in ["cog", "zarr"] {
        let asset = &item["assets"][key];
        assert!(asset.get("alternate").is_none(), "{key}: {asset}");
        assert!(
            asset.get("xarray:storage_options").is_none(),
            "{key}: {asset}"
        );
        assert_eq!(asset["auth:refs"], json!(["arcolake"]), "{key}");
    }
    assert_eq!(
        item["assets"]["cog"]["href"],
        private.href("utm_uint16_cog.tif")
    );
    let ext = extensions(&item);
    assert!(ext.contains(&AUTH_EXTENSION), "{ext:?}");
    assert!(!ext.contains(&ALTERNATE_EXTENSION), "{ext:?}");
}

#[tokio::test]
async fn a_source_without_public_assets_is_read_only_through_signatures() {
    let source = local(&ingest().join("s2"));
    let app = app_with(vec![Registered {
        public_assets: PublicAssets::None,
        ..registered("pub", "open", &source)
    }])
    .await;
    app.collection("open").await;
    item_with_assets(
        &app,
        "open",
        "o1",
        json!({"B02": {"href": source.href(B02)}}),
    )
    .await;
    let path = format!("/assets/pub/{B02}");
    assert_exception(
        &get(&app, &path, &[]).await,
        StatusCode::NOT_FOUND,
        "no such asset",
    );
    assert_eq!(get(&app, &path, &[ADMIN]).await.status, StatusCode::OK);
    let item = get(&app, "/collections/open/items/o1", &[]).await.json();
    let b02 = &item["assets"]["B02"];
    assert!(b02.get("alternate").is_none(), "{b02}");
    assert_eq!(b02["auth:refs"], json!(["arcolake"]));
    assert!(!extensions(&item).contains(&ALTERNATE_EXTENSION), "{item}");
    // The collection is public: anyone may sign, and the signature reads.
    let r = get(
        &app,
        &format!("/sign?href={}", encode(&source.href(B02))),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = get(&app, &route(r.json()["href"].as_str().unwrap()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body == bytes_of(&ingest().join(COG)));
}

/// The module docs of `api::assets`: an href belongs to a source "when the
/// registry resolves it (or when it is already a URL of our streaming
/// route)"; `/sign` signs such an href, `?sign=true` must too.
#[tokio::test]
async fn items_whose_hrefs_are_streaming_urls_are_signed_too() {
    let source = local(&ingest().join("s2"));
    let app = app_with(vec![registered("priv", "secret", &source)]).await;
    restricted_collection(&app, "secret").await;
    let href = format!("{ROOT}/assets/priv/{B02}");
    let signed = sign(&app, &href, None).await;
    assert!(
        signed["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{href}?exp=")),
        "{signed}"
    );
    item_with_assets(
        &app,
        "secret",
        "s1",
        json!({"B02": {"href": href, "type": "image/tiff"}}),
    )
    .await;
    let r = get(&app, "/collections/secret/items/s1?sign=true", &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let b02 = &r.json()["assets"]["B02"];
    assert!(
        b02["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{href}?exp=")),
        "not signed: {b02}"
    );
    assert!(b02["arcolake:expiry"].is_string(), "{b02}");
    assert_eq!(b02["auth:refs"], json!(["arcolake"]));
}

#[tokio::test]
async fn collections_with_a_source_advertise_the_signing_scheme() {
    let Items { app, _copy, .. } = items_app().await;
    app.collection("plain").await;
    let r = get(&app, "/collections/open", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let c = r.json();
    let api = authorization_api(&c["auth:schemes"]);
    assert!(api.as_str().unwrap().ends_with("/sign"), "{c}");
    assert_eq!(api, &json!(format!("{ROOT}/sign")));
    let flow = &c["auth:schemes"]["arcolake"]["flows"]["authorizationCode"];
    assert_eq!(flow["method"], "GET", "{flow}");
    assert_eq!(flow["parameters"]["href"]["in"], "query", "{flow}");
    assert_eq!(flow["responseField"], "href", "{flow}");
    assert!(extensions(&c).contains(&AUTH_EXTENSION), "{c}");
    // The scheme's API answers as it says.
    let href = format!("{ROOT}/assets/pub/{B02}");
    let r = get(
        &app,
        &format!("{}?href={}", route(api.as_str().unwrap()), encode(&href)),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.json()["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{href}?exp="))
    );

    let r = get(&app, "/collections/secret", &[ADMIN]).await;
    assert_eq!(authorization_api(&r.json()["auth:schemes"]), api);
    let r = get(&app, "/collections/plain", &[]).await;
    let c = r.json();
    assert!(c.get("auth:schemes").is_none(), "{c}");
    assert!(!extensions(&c).contains(&AUTH_EXTENSION), "{c}");
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn signing_and_streaming_past_the_burst_are_429s_with_retry_after() {
    use api::limits::{Limits, Rate};
    let source = local(&ingest().join("s2"));
    let app = TestApp::with_settings(api::ServeConfig {
        limits: Limits::new(
            Rate {
                per_second: 0.001,
                burst: 2.0,
            },
            Rate {
                per_second: 0.001,
                burst: 3.0,
            },
            8,
        ),
        ..settings(vec![registered("pub", "open", &source)])
    })
    .await;
    app.collection("open").await;
    let href = source.href(B02);
    let limited = |r: &Raw| {
        assert_exception(r, StatusCode::TOO_MANY_REQUESTS, "too many");
        let after: u64 = r.header(header::RETRY_AFTER).unwrap().parse().unwrap();
        assert!(after >= 1, "{after}");
    };

    sign(&app, &href, None).await;
    sign(&app, &href, None).await;
    limited(&get(&app, &format!("/sign?href={}", encode(&href)), &[ADMIN]).await);
    limited(&get(&app, "/token/open", &[ADMIN]).await);
    // Signing items spends the same budget.
    limited(&get(&app, "/search?sign=true", &[ADMIN]).await);
    assert_eq!(get(&app, "/search", &[ADMIN]).await.status, StatusCode::OK);
    // Another caller has a bucket of its own.
    let r = get(&app, &format!("/sign?href={}", encode(&href)), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let path = format!("/assets/pub/{B02}");
    for _ in 0..3 {
        assert_eq!(get(&app, &path, &[]).await.status, StatusCode::OK);
    }
    limited(&get(&app, &path, &[]).await);
    let head = request(&app, Method::HEAD, &path, &[]).await;
    assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get(&app, &path, &[ADMIN]).await.status, StatusCode::OK);
    // Anonymous callers are told apart by their address.
    for _ in 0..3 {
        assert_eq!(
            get_from(&app, [10, 0, 0, 1], &path).await.status,
            StatusCode::OK
        );
    }
    limited(&get_from(&app, [10, 0, 0, 1], &path).await);
    assert_eq!(
        get_from(&app, [10, 0, 0, 2], &path).await.status,
        StatusCode::OK
    );
}

/// The stream limit is per caller: a reader of a signed URL must not spend
/// the budget of every other reader of URLs signed with the same key.
#[tokio::test]
async fn readers_of_signed_urls_are_limited_each_on_their_own() {
    use api::limits::{Limits, Rate};
    let source = local(&ingest().join("s2"));
    let app = TestApp::with_settings(api::ServeConfig {
        limits: Limits::new(
            Rate {
                per_second: 0.001,
                burst: 100.0,
            },
            Rate {
                per_second: 0.001,
                burst: 3.0,
            },
            8,
        ),
        ..settings(vec![registered("priv", "secret", &source)])
    })
    .await;
    restricted_collection(&app, "secret").await;
    let first = sign(&app, &source.href(B02), None).await;
    let second = sign(&app, &source.href(B03), None).await;
    let first = route(first["href"].as_str().unwrap());
    let second = route(second["href"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(
            get_from(&app, [10, 0, 0, 1], &first).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get_from(&app, [10, 0, 0, 1], &first).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client, another signed URL, signed at another time.
    let r = get_from(&app, [10, 0, 0, 2], &second).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

// ------------------------------------------- restricted files under public roots

/// A public source whose root holds a restricted source's directory (with a
/// name that URLs spell several ways), a hidden file, an excluded file and a
/// symbolic link into the restricted directory.
struct NestedLake {
    dir: PathBuf,
    app: TestApp,
}

impl NestedLake {
    async fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("arcolake-nested-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let secret = dir.join("restricted zone");
        std::fs::create_dir_all(&secret).unwrap();
        let cog = bytes_of(&ingest().join(COG));
        std::fs::write(secret.join("x.tif"), &cog).unwrap();
        std::fs::write(dir.join("open.tif"), &cog).unwrap();
        std::fs::write(dir.join("skip.tif"), &cog).unwrap();
        std::fs::write(dir.join(".env"), b"SECRET=1").unwrap();
        std::os::unix::fs::symlink(secret.join("x.tif"), dir.join("link.tif")).unwrap();
        let mut public = registered("pub", "open-lake", &local(&dir));
        public.paths = PathFilter::new(&[], &["skip.tif".into()]).unwrap();
        let app = app_with(vec![
            public,
            registered("sec", "closed-lake", &local(&secret)),
        ])
        .await;
        app.collection("open-lake").await;
        restricted_collection(&app, "closed-lake").await;
        Self { dir, app }
    }
}

impl Drop for NestedLake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_public_root_never_serves_a_restricted_sources_files() {
    let lake = NestedLake::new("public").await;
    let app = &lake.app;
    assert_eq!(
        get(app, "/assets/pub/open.tif", &[]).await.status,
        StatusCode::OK
    );
    // The restricted file through the public source, however it is spelled.
    for path in [
        "/assets/pub/restricted%20zone/x.tif",
        "/assets/pub/restricted zone/x.tif"
            .replace(' ', "%20")
            .as_str(),
        "/assets/pub/%72estricted%20zone/x.tif",
        "/assets/pub/link.tif",
        "/assets/pub/.env",
        "/assets/pub/skip.tif",
    ] {
        let r = get(app, path, &[]).await;
        assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
    }
    // Nor does /sign sign it for an anonymous caller.
    let base = url::Url::from_directory_path(&lake.dir).unwrap();
    for href in [
        format!("{base}restricted%20zone/x.tif"),
        format!("{base}%72estricted%20zone/x.tif"),
        format!("{base}restricted zone/x.tif"),
        format!("{base}link.tif"),
    ] {
        let r = get(app, &format!("/sign?href={}", urlencode(&href)), &[]).await;
        assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
    }
    // The admin reads it, through either source.
    assert_eq!(
        get(app, "/assets/pub/link.tif", &[ADMIN]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(app, "/assets/sec/x.tif", &[ADMIN]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_of_a_public_collection_reads_only_its_public_assets() {
    let lake = NestedLake::new("token").await;
    let app = &lake.app;
    let r = get(app, "/token/open-lake", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(app, &format!("/assets/pub/open.tif?{token}"), &[])
            .await
            .status,
        StatusCode::OK
    );
    for path in ["restricted%20zone/x.tif", "link.tif", ".env", "skip.tif"] {
        let r = get(app, &format!("/assets/pub/{path}?{token}"), &[]).await;
        assert_exception(&r, StatusCode::NOT_FOUND, "no such asset");
    }
}

#[tokio::test]
async fn a_forged_signature_says_nothing_of_which_sources_exist() {
    let lake = NestedLake::new("forged").await;
    let app = &lake.app;
    for source in ["sec", "no-such-source"] {
        let r = get(
            app,
            &format!("/assets/{source}/x.tif?exp=99999999999&kid=k1&sig=00"),
            &[],
        )
        .await;
        assert_exception(&r, StatusCode::FORBIDDEN, "does not match");
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
