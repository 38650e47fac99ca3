//! The browse page as the server hands it out: the page, its embedded
//! files (versioned, cached, compressed), its policy of reading only this
//! server, and browsers sent to it from `/` while clients keep JSON. What
//! the page does in a browser is tested in headless Chromium
//! (`tests/clients/browse/check.mjs`, run by `scripts/test`).

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod support;

use std::io::Read as _;

use tower::ServiceExt as _;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use support::TestApp;

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// The page's configuration (the JSON in its `arcolake-config` script).
fn page_config(html: &str) -> serde_json::Value {
    let start = html.find(r#"id="arcolake-config">"#).unwrap() + r#"id="arcolake-config">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The static file addresses the page names.
fn static_urls(html: &str) -> Vec<String> {
    html.split(['"', '\''])
        .filter(|s| s.contains("/browse/static/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn browsers_land_on_the_page_and_clients_on_json() {
    let app = TestApp::new().await;
    let browser = app
        .send(
            Request::get("/")
                .header(header::ACCEPT, BROWSER_ACCEPT)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(browser.status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.headers[header::LOCATION],
        "http://stac.test/api/browse"
    );
    assert_eq!(browser.headers[header::VARY], "accept");
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("application/json, text/html"),
    ] {
        let mut request = Request::get("/");
        if let Some(a) = accept {
            request = request.header(header::ACCEPT, a);
        }
        let reply = app.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept:?}");
        assert!(reply.body["conformsTo"].is_array(), "{accept:?}");
        assert!(
            reply
                .headers
                .get_all(header::VARY)
                .iter()
                .any(|v| v == "accept"),
            "{accept:?}"
        );
        let browse = reply.body["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["href"] == "http://stac.test/api/browse")
            .unwrap();
        assert_eq!(browse["type"], "text/html");
    }
    // `/browse/` and the page's address with its state keep the state.
    let slash = app.get("/browse/?view=search&collections=a").await;
    assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        slash.headers[header::LOCATION],
        "http://stac.test/api/browse?view=search&collections=a"
    );
}

#[tokio::test]
async fn the_page_reads_only_this_server() {
    let app = TestApp::new().await;
    let page = app.get("/browse?view=item&collection=a&item=b").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(
        !csp.contains("http"),
        "no other host without a basemap: {csp}"
    );
    let config = page_config(&page.text);
    // This server's URLs without scheme and host: the page works on
    // whichever address it was opened.
    assert_eq!(config["api"], "/api/");
    assert!(config["basemap"].is_null());
    // Every script, style sheet and the world map are this server's.
    let urls = static_urls(&page.text);
    assert!(
        urls.iter().any(|u| u.ends_with("/ol.js")) && urls.iter().any(|u| u.ends_with("/app.js")),
        "{urls:?}"
    );
    for url in &urls {
        assert!(url.starts_with("/api/browse/static/"), "{url}");
    }
    assert!(page.text.contains(r#"src="/api/browse/static/"#));
    assert!(
        !page.text.contains("https://"),
        "the page names no outside host"
    );

    // An operator's basemap is the one other host the page may read.
    let with_basemap = TestApp::with_settings(api::ServeConfig {
        public_url: Some("http://stac.test/".parse().unwrap()),
        basemap: Some(
            api::routes::browse::Basemap::new(
                "https://tiles.example.org/{z}/{x}/{y}.png",
                "© <b>Example</b>",
            )
            .unwrap(),
        ),
        title: "Lake </script><b>".into(),
        ..api::ServeConfig::default()
    })
    .await;
    let page = with_basemap.get("/browse").await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("img-src 'self' data: blob: https://tiles.example.org;"),
        "{csp}"
    );
    assert!(
        csp.contains("connect-src 'self' https://tiles.example.org;"),
        "{csp}"
    );
    let config = page_config(&page.text);
    assert_eq!(
        config["basemap"]["url"],
        "https://tiles.example.org/{z}/{x}/{y}.png"
    );
    assert_eq!(config["basemap"]["attribution"], "© <b>Example</b>");
    assert_eq!(config["title"], "Lake </script><b>");
    assert!(
        page.text
            .contains("<title>Lake &lt;/script&gt;&lt;b&gt; · browse</title>")
    );
}

#[tokio::test]
async fn static_files_are_versioned_cached_and_compressed() {
    let app = TestApp::new().await;
    let page = app.get("/browse").await;
    let urls = static_urls(&page.text);
    let script = urls.iter().find(|u| u.ends_with("/ol.js")).unwrap();
    let path = script.strip_prefix("/api").unwrap();

    let plain = app.get(path).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(
        plain.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        plain.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    let vendored = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api/browse/vendor/ol.js"),
    )
    .unwrap();
    assert_eq!(
        plain.text, vendored,
        "the vendored OpenLayers build, as committed"
    );
    let etag = plain.headers[header::ETAG].clone();

    let gzipped = app
        .send(
            Request::get(path)
                .header(header::ACCEPT_ENCODING, "gzip, br")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(gzipped.headers[header::CONTENT_ENCODING], "gzip");
    // Each encoding is its own representation, with its own tag.
    let gz_etag = gzipped.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        gz_etag,
        etag.to_str().unwrap().replace("ol.js\"", "ol.js-gz\"")
    );
    assert_ne!(gz_etag, etag.to_str().unwrap());
    // Nor does another encoding share the plain file's tag.
    let brotli_only = app
        .send(
            Request::get(path)
                .header(header::ACCEPT_ENCODING, "br")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(brotli_only.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(brotli_only.headers[header::ETAG], etag);
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let response = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut inflated = String::new();
    flate2::read::GzDecoder::new(&response[..])
        .read_to_string(&mut inflated)
        .unwrap();
    assert_eq!(inflated, vendored);
    assert!(
        response.len() < vendored.len() / 3,
        "compressed: {} of {}",
        response.len(),
        vendored.len()
    );

    let again = app
        .send(
            Request::get(path)
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    // A page of an older binary still gets the files, but not for keeps.
    let old = app.get("/browse/static/0000000000000000/app.js").await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.headers[header::CACHE_CONTROL], "no-cache");
    // The world map and the licences are served too; nothing else is.
    let version = path.split('/').nth(3).unwrap();
    let world = app
        .get(&format!("/browse/static/{version}/countries-110m.json"))
        .await;
    assert_eq!(world.body["type"], "Topology");
    assert!(world.body["objects"]["countries"].is_object());
    for licence in ["LICENSE-ol.md", "LICENSE-world-atlas.txt"] {
        assert_eq!(
            app.get(&format!("/browse/static/{version}/{licence}"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let missing = app
        .get(&format!("/browse/static/{version}/secret.txt"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body["description"]
            .as_str()
            .unwrap()
            .contains("secret.txt")
    );
    let escape = app
        .get(&format!("/browse/static/{version}/..%2F..%2FCargo.toml"))
        .await;
    assert_eq!(escape.status, StatusCode::NOT_FOUND);
}
