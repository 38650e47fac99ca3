//! The arcolake HTTP API: STAC API core, collections, OGC API Features,
//! item search and transactions, health, and the OpenAPI document.
//!
//! It owns routing, HTTP error mapping ([`error`]), extractors and response
//! shaping. It does not own STAC semantics (validation, search, links,
//! documents): those live in `catalog`, and handlers stay thin.
//!
//! Entry points: [`app`] builds the router for a [`catalog::Store`] and a
//! [`ServeConfig`]; [`serve`] runs it until SIGINT/SIGTERM; [`openapi_json`]
//! prints the document.

pub mod admission;
pub mod assets;
pub mod auth;
mod consistency;
pub mod error;
pub mod extract;
mod item_page;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pmtiles;
pub mod ranges;
mod response;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tile_cache;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, StatusCode, header};
use tower_http::compression::CompressionLayer;
use tower_http::compression::Predicate as _;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::info;
use url::Url;

use crate::error::ApiError;
use crate::state::AppState;

/// Settings of the HTTP service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Public root URL used in links; `None`: the request's `Host`.
    pub public_url: Option<Url>,
    /// Honour `Forwarded` / `X-Forwarded-*` headers.
    pub trust_proxy: bool,
    /// Bearer token for writes; `None` disables writes.
    pub admin_token: Option<String>,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Most requests handled at once; more wait up to `admission_wait`, then
    /// get 503.
    pub max_in_flight: usize,
    /// Bytes of request bodies all requests in flight may hold together.
    pub body_memory: usize,
    /// Longest a request waits for admission.
    pub admission_wait: Duration,
    /// Verifier of the platform's JWTs; `None`: JWTs are refused.
    pub jwt: Option<auth::jwt::JwtVerifier>,
    /// The sources assets are signed and streamed from.
    pub registry: Arc<storage::Registry>,
    /// Keys of signed URLs to the streaming route.
    pub signer: Arc<storage::signing::UrlSigner>,
    /// Validity of a signature when the caller asks for none.
    pub sign_expiry: Duration,
    /// Longest validity a caller may ask for.
    pub sign_expiry_max: Duration,
    /// Per-caller limits on signing and streaming requests.
    pub limits: limits::Limits,
    /// Object metadata the streaming route read a moment ago.
    pub heads: Arc<assets::HeadCache>,
    /// Tiles made a moment ago, keyed by their ETag (stamp, search, tile).
    pub tiles: Arc<tile_cache::TileCache>,
    /// `PMTiles` archives opened a moment ago.
    pub archives: Arc<pmtiles::Archives>,
    /// Item properties each footprint feature carries besides `id`,
    /// `collection` and `datetime`.
    pub tile_properties: Arc<[String]>,
    /// Seconds a tile asked for without the current change stamp may be
    /// cached.
    pub tile_max_age: u32,
    /// An external basemap for the browse page; `None`: the embedded world
    /// map only.
    pub basemap: Option<routes::browse::Basemap>,
    /// Landing page id, title and description.
    pub catalog_id: String,
    /// Landing page title.
    pub title: String,
    /// Landing page description.
    pub description: String,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            trust_proxy: false,
            admin_token: None,
            request_timeout: Duration::from_secs(30),
            body_limit: 64 << 20,
            max_in_flight: 512,
            body_memory: 1 << 30,
            admission_wait: Duration::from_secs(10),
            jwt: None,
            registry: Arc::default(),
            signer: Arc::new(storage::signing::UrlSigner::ephemeral()),
            sign_expiry: Duration::from_secs(3600),
            sign_expiry_max: Duration::from_secs(12 * 3600),
            limits: limits::Limits::default(),
            heads: Arc::default(),
            tiles: Arc::default(),
            archives: Arc::default(),
            tile_properties: catalog::store::tiles::FEATURE_PROPERTIES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            tile_max_age: 5,
            basemap: None,
            catalog_id: "arcolake".into(),
            title: "arcolake".into(),
            description: "STAC catalog of the platform's analysis-ready, cloud-optimised data"
                .into(),
        }
    }
}

/// The OpenAPI document as pretty JSON (what `arcolake openapi` prints).
pub fn openapi_json() -> String {
    let (_, api) = routes::router();
    let mut text = serde_json::to_string_pretty(&openapi::finish(&api)).unwrap_or_default();
    text.push('\n');
    text
}

async fn not_found() -> ApiError {
    ApiError::not_found("no resource at this path; see the landing page for what this API offers")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this method is not allowed on this path",
    )
}

/// The whole application: routes, fallbacks and layers.
pub fn app(store: catalog::Store, settings: ServeConfig) -> Router {
    let (router, api) = routes::router();
    let document = serde_json::to_string(&openapi::finish(&api)).unwrap_or_default();
    let timeout = settings.request_timeout;
    let body_limit = settings.body_limit;
    let admission = admission::Admission::new(
        settings.max_in_flight,
        settings.body_memory,
        settings.body_limit,
        settings.admission_wait,
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let consistency_store = store.clone();
    let state = AppState {
        store,
        settings: Arc::new(settings),
        openapi: Arc::new(document),
        metrics: Arc::clone(&metrics),
    };
    let request_id = HeaderName::from_static("x-request-id");
    // Browsers read across origins with a key or token (STAC Browser's
    // `authConfig`, the browse page) and read byte ranges of assets. No
    // cookies are used, so no credentialed mode: a page of another origin
    // can only send what it holds, and writes still need the admin token.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
            header::AUTHORIZATION,
            HeaderName::from_static(catalog::store::replica::READ_AFTER_HEADER),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::CONTENT_LENGTH,
            header::LAST_MODIFIED,
            header::RETRY_AFTER,
            HeaderName::from_static(catalog::store::replica::READ_AFTER_HEADER),
            request_id.clone(),
        ]);
    // Asset bytes go out as stored: compressing them would break ranges
    // and their lengths (and most are compressed already).
    let compress = CompressionLayer::new().compress_when(
        tower_http::compression::predicate::DefaultPredicate::new().and(
            |_: StatusCode,
             _: axum::http::Version,
             headers: &axum::http::HeaderMap,
             _: &axum::http::Extensions| {
                !headers.contains_key(header::ACCEPT_RANGES)
            },
        ),
    );
    // Listed inside out: the last layer is the outermost.
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(consistency_store, consistency::scope))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(axum::middleware::from_fn_with_state(admission, admission::admit))
        // Outside admission: requests refused or timed out are counted too.
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        .layer(axum::middleware::from_fn(error::log_errors))
        .layer(compress)
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let matched = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %matched, request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serve until SIGINT or SIGTERM, then finish in-flight requests.
pub async fn serve(store: catalog::Store, settings: ServeConfig) -> std::io::Result<()> {
    let listen = settings.listen;
    // Without TCP_NODELAY a streamed body's first chunk waits for the
    // client's delayed ACK of the headers: 40 ms per range request.
    let listener = axum::serve::ListenerExt::tap_io(
        tokio::net::TcpListener::bind(listen).await?,
        |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        },
    );
    let shown = settings.public_url.as_ref().map_or_else(
        || {
            format!(
                "http://{}/",
                axum::serve::Listener::local_addr(&listener).map_or(listen, |a| a)
            )
        },
        Url::to_string,
    );
    info!(url = %shown, "serving the STAC API");
    axum::serve(
        listener,
        app(store, settings).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down");
}
