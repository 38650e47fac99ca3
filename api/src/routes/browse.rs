//! The browse page: the catalog's data explorer, served from the binary.
//!
//! One HTML page (`/browse`) and its static files (`/browse/static/…`), all
//! embedded at compile time: the page's own script and style sheet (plain
//! JavaScript modules, no build step), `OpenLayers` and a Natural Earth
//! world map (both vendored from their npm packages by
//! `api/browse/vendor.mjs`, whose `--check` fails when the copy drifts).
//! The page talks only to this server's API; a Content Security Policy
//! holds it to that (plus the operator's basemap host, when one is set).
//!
//! Static files are named with a version (a hash of every embedded file),
//! so they are cached for a year and a new binary is fetched at once; they
//! are gzip-compressed once, at first use.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::extract::Base;
use crate::routes::tiles::not_modified;
use crate::state::AppState;
use crate::tile_cache::{accepts_gzip, gzip};

/// A basemap from outside, for operators whose users reach the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basemap {
    /// XYZ template of raster tiles (`{z}`, `{x}`, `{y}`).
    pub url: String,
    /// Attribution shown on the map, as text (the page escapes it).
    pub attribution: String,
}

impl Basemap {
    /// A basemap from its template, refused unless it is an `http(s)` URL
    /// with `{z}`, `{x}` and `{y}`.
    pub fn new(url: &str, attribution: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(&url.replace(['{', '}'], ""))
            .map_err(|e| format!("basemap URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "basemap URL {url:?}: only http and https are served"
            ));
        }
        for part in ["{z}", "{x}", "{y}"] {
            if !(url.contains(part) || part == "{y}" && url.contains("{-y}")) {
                return Err(format!(
                    "basemap URL {url:?} has no {part}: an XYZ template is needed"
                ));
            }
        }
        // Host lists (`{a-c}`, `{s}`) would need every host in the page's
        // policy: one host only.
        let rest = ["{z}", "{x}", "{-y}", "{y}"]
            .iter()
            .fold(url.to_owned(), |rest, part| rest.replace(part, ""));
        if rest.contains(['{', '}']) {
            return Err(format!(
                "basemap URL {url:?}: only {{z}}, {{x}}, {{y}} and {{-y}} are understood (name one host, not a list)"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            attribution: attribution.to_owned(),
        })
    }

    /// The scheme, host and port tiles come from (for the page's policy).
    fn origin(&self) -> String {
        url::Url::parse(&self.url.replace(['{', '}'], ""))
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

/// One embedded file.
struct Embedded {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Embedded] = &[
    Embedded {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../browse/app.js"),
    },
    Embedded {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../browse/app.css"),
    },
    Embedded {
        name: "ol.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../browse/vendor/ol.js"),
    },
    Embedded {
        name: "ol.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../browse/vendor/ol.css"),
    },
    Embedded {
        name: "countries-110m.json",
        media_type: "application/json",
        bytes: include_bytes!("../../browse/vendor/countries-110m.json"),
    },
    Embedded {
        name: "LICENSE-ol.md",
        media_type: "text/markdown; charset=utf-8",
        bytes: include_bytes!("../../browse/vendor/LICENSE-ol.md"),
    },
    Embedded {
        name: "LICENSE-world-atlas.txt",
        media_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../browse/vendor/LICENSE-world-atlas.txt"),
    },
];

const INDEX: &str = include_str!("../../browse/index.html");

/// The embedded files, their gzip forms, and the version naming them.
struct Files {
    version: String,
    gzipped: Vec<Bytes>,
}

fn files() -> &'static Files {
    static FILES_ONCE: OnceLock<Files> = OnceLock::new();
    FILES_ONCE.get_or_init(|| {
        let mut hash = Sha256::new();
        hash.update(INDEX.as_bytes());
        for f in FILES {
            hash.update(f.name.as_bytes());
            hash.update(f.bytes);
        }
        let digest = hash.finalize();
        let version = crate::response::hex(&digest[..8]);
        let gzipped = FILES.iter().map(|f| gzip(f.bytes)).collect();
        Files { version, gzipped }
    })
}

/// The Content Security Policy of the page: this server only, and the
/// operator's basemap host when one is configured.
fn content_security_policy(basemap: Option<&Basemap>) -> String {
    let tiles = basemap
        .map(Basemap::origin)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob:{tiles}; connect-src 'self'{tiles}; worker-src 'self' blob:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    )
}

/// JSON safe inside a `<script>` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// HTML-escaped text.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The path of a URL of ours: the page names this server's URLs without
/// scheme and host, so it works on whichever address it was opened.
fn path_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned())
}

/// The browse page.
pub async fn page(State(state): State<AppState>, Base(links): Base) -> Response {
    let settings = &state.settings;
    let version = &files().version;
    let assets = path_of(&links.url(&format!("/browse/static/{version}")));
    let config = json!({
        "api": path_of(&links.root()),
        "title": settings.title,
        "static": format!("{assets}/"),
        "basemap": settings.basemap.as_ref().map(|b| json!({"url": b.url, "attribution": b.attribution})),
        "tileProperties": &*settings.tile_properties,
    });
    let body = INDEX
        .replace("{{title}}", &html_text(&settings.title))
        .replace("{{static}}", &html_text(&assets))
        .replace("{{config}}", &script_json(&config));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(settings.basemap.as_ref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// `/browse/` and other spellings of the page's address: to `/browse`,
/// query kept.
pub async fn to_page(Base(links): Base, uri: axum::http::Uri) -> Response {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    axum::response::Redirect::permanent(&links.url(&format!("/browse{query}"))).into_response()
}

/// One static file of the page, named with the version.
pub async fn static_file(
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let files_now = files();
    let index = FILES
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| ApiError::not_found(format!("the browse page has no file {name:?}")))?;
    let file = &FILES[index];
    // The gzip form is its own representation, with its own tag.
    let gzipped = accepts_gzip(&headers);
    let encoding = if gzipped { "-gz" } else { "" };
    let etag = format!("\"{}-{}{encoding}\"", files_now.version, file.name);
    // Another version's name (a page from an older binary): served, but
    // not kept, so the next page load fetches this binary's files.
    let cache = if version == files_now.version {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if not_modified(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = if gzipped {
            files_now.gzipped[index].clone()
        } else {
            Bytes::from_static(file.bytes)
        };
        let mut response = body.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.media_type),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if gzipped {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        } else {
            // Sent as it is: the server's compression layer leaves answers
            // that say `Accept-Ranges` alone, so no other encoding shares
            // this tag.
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
        }
        response
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

/// Whether a request's `Accept` prefers an HTML page to JSON: `text/html`
/// named with a higher quality than any JSON type (or a wildcard that would
/// match one). `*/*` alone, and no `Accept`, mean JSON. Each side takes
/// its best quality (not the most specific range's): a client that names
/// `text/html` above every JSON range it names wants the page.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html = 0.0_f32;
    let mut json_q = 0.0_f32;
    for range in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                let (name, value) = p.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("q") {
                    value.trim().parse::<f32>().ok()
                } else {
                    None
                }
            })
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "application/geo+json" | "application/*" | "*/*" => {
                json_q = json_q.max(q);
            }
            _ => {}
        }
    }
    html > 0.0 && html > json_q
}

/// Register the page's routes (HTML, outside the OpenAPI document).
pub fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    router
        .route("/browse", axum::routing::get(page))
        .route("/browse/", axum::routing::get(to_page))
        .route(
            "/browse/static/{version}/{name}",
            axum::routing::get(static_file),
        )
}

/// The total size of the page's scripts as sent gzip-compressed, in bytes
/// (the budget the page is held to).
pub fn script_bytes_gzipped() -> usize {
    let files_now = files();
    FILES
        .iter()
        .zip(&files_now.gzipped)
        .filter(|(f, _)| f.media_type.starts_with("text/javascript"))
        .map(|(_, g)| g.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn browsers_get_the_page_and_clients_json() {
        // Chromium's and Firefox's navigation Accept.
        assert!(prefers_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
        )));
        assert!(prefers_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!prefers_html(&HeaderMap::new()));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&accept("application/json")));
        assert!(!prefers_html(&accept("application/json, text/html")));
        assert!(!prefers_html(&accept(
            "text/html;q=0.5, application/geo+json"
        )));
        assert!(!prefers_html(&accept("text/html;q=0")));
        assert!(!prefers_html(&accept("text/html;Q=0.2, application/json")));
    }

    #[test]
    fn basemaps_are_xyz_templates_over_http() {
        let b = Basemap::new("https://tile.example.org/{z}/{x}/{y}.png", "© OSM").unwrap();
        assert_eq!(b.origin(), "https://tile.example.org");
        assert!(Basemap::new("https://tile.example.org/tiles.png", "").is_err());
        assert!(Basemap::new("file:///tiles/{z}/{x}/{y}.png", "").is_err());
        assert!(Basemap::new("https://{a-c}.tile.example.org/{z}/{x}/{y}.png", "").is_err());
        assert!(Basemap::new("https://{s}.tile.example.org/{z}/{x}/{y}.png", "").is_err());
        assert!(Basemap::new("https://tile.example.org/{z}/{x}/{-y}.png", "").is_ok());
        assert!(
            content_security_policy(Some(&b))
                .contains("img-src 'self' data: blob: https://tile.example.org;")
        );
        assert!(!content_security_policy(None).contains("http"));
    }

    #[test]
    fn the_config_cannot_close_its_script_element() {
        let text = script_json(&json!({"title": "</script><script>alert(1)</script>"}));
        assert!(!text.contains('<'));
    }

    #[test]
    fn scripts_stay_within_budget() {
        // The budget: 1.5 MB of JavaScript, compressed.
        assert!(
            script_bytes_gzipped() < 1_500_000,
            "{}",
            script_bytes_gzipped()
        );
    }
}
