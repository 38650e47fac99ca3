#![allow(clippy::unwrap_used, reason = "test code")]
//! The dCache macaroon contract of [`storage::http::HttpSource::macaroon`].
//!
//! No dCache runs here: these tests check the documented request/response
//! contract (dCache book, "Requesting macaroons") against a small HTTP/1.1
//! server written in this file, not against a live door. The client must
//! `POST` to the asset's URL with `Content-Type: application/macaroon-request`,
//! authenticated with the door credential, and a JSON body
//! `{"caveats": ["activity:DOWNLOAD,LIST", "path:<asset path>"], "validity": "PT<s>S"}`.
//! dCache answers `{"macaroon", "uri": {...}}`, XRootD/EOS `{"macaroon"}` only;
//! either way the result is the door's URL of the asset with `?authz=<macaroon>`.
//! A door that issues no macaroons (404, 405, 501) means "use the proxy".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use storage::{ErrorKind, Source, SourceSettings};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A macaroon with the characters of base64 that a query must escape.
const MACAROON: &str = "MDAxY2xvY2F0aW9uIE9wdGlvbmFsLmVtcHR5CjAwMThpZGVudGlmaWVy+/x=";

/// Bytes `alice:s3cret` in base64, written out so the test does not reuse
/// the client's own encoding.
const ALICE_BASIC: &str = "Basic YWxpY2U6czNjcmV0";

/// One request as the door received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    /// The request target as sent: path and query, still percent-encoded.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (case-insensitive); `None` when absent.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A stand-in door: answers every request with one canned reply, one
/// request per connection, and records what it received.
struct Door {
    /// `http://127.0.0.1:PORT`.
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Door {
    /// A door answering `status` with the body `reply(base)`.
    async fn start(status: u16, reply: impl FnOnce(&str) -> String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = reply(&base);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let body = body.clone();
                tokio::spawn(async move { answer(conn, status, &body, &log).await });
            }
        });
        Self { base, received }
    }

    /// The one request the door received (it fails if there were others).
    fn only_request(&self) -> Received {
        let all = self.received.lock().unwrap().clone();
        assert_eq!(
            all.len(),
            1,
            "the door expected exactly one request: {all:#?}"
        );
        all.into_iter().next().unwrap()
    }

    /// Open an HTTP source rooted at `root` (a path on this door, with any
    /// query string).
    fn source(&self, root: &str, settings: &SourceSettings) -> Arc<dyn Source> {
        storage::source::open(&format!("{}{root}", self.base), settings).unwrap()
    }
}

/// Read one request (request line, headers, `Content-Length` body), record
/// it, answer it and close the connection. The request is recorded before
/// the answer goes out, so a client that has its answer finds it recorded.
async fn answer(
    mut conn: TcpStream,
    status: u16,
    body: &str,
    log: &Mutex<Vec<Received>>,
) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut request_body = buf[head_end + 4..].to_vec();
    while request_body.len() < length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        request_body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(Received {
        method,
        target,
        headers,
        body: request_body,
    });
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        501 => "Not Implemented",
        _ => "Status",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await.ok()?;
    let _ = conn.shutdown().await;
    Some(())
}

/// dCache's answer: the macaroon and the URIs it built with it.
fn dcache_reply(base: &str, path: &str) -> String {
    let target = format!("{base}{path}");
    json!({
        "macaroon": MACAROON,
        "uri": {
            "targetWithMacaroon": format!("{target}?authz={MACAROON}"),
            "baseWithMacaroon": format!("{base}/?authz={MACAROON}"),
            "target": target,
            "base": format!("{base}/"),
        }
    })
    .to_string()
}

/// The XRootD/EOS answer: the macaroon only.
fn xrootd_reply() -> String {
    json!({ "macaroon": MACAROON }).to_string()
}

fn bearer() -> SourceSettings {
    SourceSettings {
        bearer_token: Some("door-cred".into()),
        ..SourceSettings::default()
    }
}

fn basic() -> SourceSettings {
    SourceSettings {
        username: Some("alice".into()),
        password: Some("s3cret".into()),
        ..SourceSettings::default()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// `signed` is `href` with exactly one query pair, `authz=<MACAROON>`.
fn assert_signed_href(signed: &str, href: &str) {
    let signed = url::Url::parse(signed).unwrap();
    let href = url::Url::parse(href).unwrap();
    assert_eq!(
        (signed.scheme(), signed.host_str(), signed.port()),
        (href.scheme(), href.host_str(), href.port()),
        "{signed}"
    );
    assert_eq!(signed.path(), href.path(), "{signed}");
    let pairs: Vec<(String, String)> = signed.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [("authz".to_owned(), MACAROON.to_owned())],
        "{signed}"
    );
    assert_eq!(signed.fragment(), None, "{signed}");
}

#[tokio::test]
async fn the_request_is_a_post_to_the_asset_with_caveats_validity_and_the_door_credential() {
    let door = Door::start(200, |_| xrootd_reply()).await;
    let source = door.source("/root", &bearer());

    source.macaroon("dir/a b ë.tif", HOUR).await.unwrap();

    let request = door.only_request();
    assert_eq!(request.method, "POST");
    // The asset's URL: the space and the UTF-8 bytes of `ë` percent-encoded.
    assert_eq!(request.target, "/root/dir/a%20b%20%C3%AB.tif");
    assert_eq!(
        request.header("content-type"),
        Some("application/macaroon-request")
    );
    assert_eq!(request.header("authorization"), Some("Bearer door-cred"));
    assert_eq!(
        request.json(),
        json!({
            "caveats": ["activity:DOWNLOAD,LIST", "path:/root/dir/a b ë.tif"],
            "validity": "PT3600S",
        })
    );
}

#[tokio::test]
async fn the_path_caveat_is_the_decoded_absolute_path_of_the_asset() {
    let door = Door::start(200, |_| xrootd_reply()).await;
    let source = door.source("/pnfs/example.org/data", &bearer());

    source.macaroon("per%cent/zoë 1.tif", HOUR).await.unwrap();

    let request = door.only_request();
    assert_eq!(
        request.target,
        "/pnfs/example.org/data/per%25cent/zo%C3%AB%201.tif"
    );
    assert_eq!(
        request.json()["caveats"][1],
        "path:/pnfs/example.org/data/per%cent/zoë 1.tif"
    );
}

#[tokio::test]
async fn validity_is_an_iso_8601_duration_in_whole_seconds_at_least_one() {
    for (validity, want) in [
        (Duration::from_secs(90 * 60), "PT5400S"),
        (Duration::from_millis(2500), "PT2S"),
        (Duration::from_millis(300), "PT1S"),
    ] {
        let door = Door::start(200, |_| xrootd_reply()).await;
        let source = door.source("/root", &bearer());
        source.macaroon("a.tif", validity).await.unwrap();
        assert_eq!(door.only_request().json()["validity"], want, "{validity:?}");
    }
}

#[tokio::test]
async fn basic_auth_credentials_authenticate_the_request() {
    let door = Door::start(200, |_| xrootd_reply()).await;
    let source = door.source("/root", &basic());
    source.macaroon("a.tif", HOUR).await.unwrap();
    assert_eq!(
        door.only_request().header("authorization"),
        Some(ALICE_BASIC)
    );

    // The same credentials given in the source URL.
    let door = Door::start(200, |_| xrootd_reply()).await;
    let with_userinfo = door.base.replacen("http://", "http://alice:s3cret@", 1);
    let source =
        storage::source::open(&format!("{with_userinfo}/root"), &SourceSettings::default())
            .unwrap();
    let signed = source.macaroon("a.tif", HOUR).await.unwrap().unwrap();
    assert_eq!(
        door.only_request().header("authorization"),
        Some(ALICE_BASIC)
    );
    assert!(!signed.contains("s3cret"), "{signed}");
}

#[tokio::test]
async fn a_dcache_answer_gives_the_door_url_of_the_asset_with_the_macaroon() {
    let path = "/root/dir/a%20b%20%C3%AB.tif";
    let door = Door::start(200, |base| dcache_reply(base, path)).await;
    let source = door.source("/root", &bearer());

    let signed = source.macaroon("dir/a b ë.tif", HOUR).await.unwrap();

    let signed = signed.expect("dCache issued a macaroon");
    assert_signed_href(&signed, &source.href("dir/a b ë.tif"));
    assert_eq!(url::Url::parse(&signed).unwrap().path(), path);
    // `+`, `/` and `=` of the macaroon are escaped: a raw `+` in a query
    // reads as a space.
    assert!(!signed.contains('+'), "{signed}");
    assert!(!signed.contains("door-cred"), "{signed}");
}

#[tokio::test]
async fn an_xrootd_answer_with_only_the_macaroon_gives_the_same_url() {
    let door = Door::start(200, |_| xrootd_reply()).await;
    let source = door.source("/root", &bearer());

    let signed = source.macaroon("dir/a b ë.tif", HOUR).await.unwrap();

    assert_signed_href(
        &signed.expect("XRootD issued a macaroon"),
        &source.href("dir/a b ë.tif"),
    );
}

#[tokio::test]
async fn a_door_without_macaroons_means_use_the_proxy() {
    for status in [404, 405, 501] {
        let door = Door::start(status, |_| r#"{"error":"no"}"#.to_owned()).await;
        let source = door.source("/root", &bearer());
        let got = source.macaroon("a.tif", HOUR).await;
        assert!(matches!(got, Ok(None)), "HTTP {status}: {got:?}");
        assert_eq!(door.only_request().method, "POST", "HTTP {status}");
    }
}

#[tokio::test]
async fn a_refused_credential_is_a_permission_error() {
    for status in [401, 403] {
        let door = Door::start(status, |_| String::new()).await;
        let source = door.source("/root", &bearer());
        let err = source.macaroon("a.tif", HOUR).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Permission, "HTTP {status}: {err}");
        assert!(!err.to_string().contains("door-cred"), "{err}");
    }
}

#[tokio::test]
async fn a_success_without_a_macaroon_is_an_error() {
    for reply in [
        json!({ "uri": { "target": "http://door/a.tif" } }).to_string(),
        json!({ "macaroon": "" }).to_string(),
        json!({ "macaroon": 42 }).to_string(),
        "<html>door</html>".to_owned(),
        String::new(),
    ] {
        let door = Door::start(200, |_| reply.clone()).await;
        let source = door.source("/root", &bearer());
        let got = source.macaroon("a.tif", HOUR).await;
        assert!(got.is_err(), "{reply:?} gave {got:?}");
    }
}

/// EOS sources carry their token in the URL (`?authz=`). `request()` in
/// `http.rs` appends it to every request, the macaroon request included,
/// and sends no `Authorization` header when no bearer or basic credential
/// is configured. The URL handed out carries the new macaroon only, never
/// the source's own token.
#[tokio::test]
async fn a_source_token_in_the_url_goes_with_the_request_but_not_into_the_signed_url() {
    let door = Door::start(200, |_| xrootd_reply()).await;
    let source = door.source("/eos/data?authz=abc", &SourceSettings::default());

    let signed = source.macaroon("dir/a b.tif", HOUR).await.unwrap();

    let request = door.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/eos/data/dir/a%20b.tif?authz=abc");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.json()["caveats"][1],
        "path:/eos/data/dir/a b.tif",
        "the caveat names the path, not the query"
    );
    assert_signed_href(&signed.unwrap(), &source.href("dir/a b.tif"));
}

#[tokio::test]
async fn a_source_token_never_shows_in_errors() {
    let door = Door::start(403, |_| String::new()).await;
    let source = door.source("/eos/data?authz=abc", &SourceSettings::default());
    let err = source.macaroon("a.tif", HOUR).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission);
    assert_eq!(door.only_request().target, "/eos/data/a.tif?authz=abc");
    assert!(!err.to_string().contains("abc"), "{err}");
}
