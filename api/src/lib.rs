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
pub mod auth;
pub mod error;
pub mod extract;
mod item_page;
pub mod openapi;
pub mod ranges;
mod response;
pub mod routes;
pub mod state;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use tower_http::compression::CompressionLayer;
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
    let state = AppState {
        store,
        settings: Arc::new(settings),
        openapi: Arc::new(document),
    };
    let request_id = HeaderName::from_static("x-request-id");
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::IF_NONE_MATCH, header::ACCEPT])
        .expose_headers([header::ETAG, header::LOCATION, request_id.clone()]);
    // Listed inside out: the last layer is the outermost.
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(axum::middleware::from_fn_with_state(admission, admission::admit))
        .layer(axum::middleware::from_fn(error::log_errors))
        .layer(CompressionLayer::new())
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
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let shown = settings.public_url.as_ref().map_or_else(
        || format!("http://{}/", listener.local_addr().map_or(listen, |a| a)),
        Url::to_string,
    );
    info!(url = %shown, "serving the STAC API");
    axum::serve(listener, app(store, settings))
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
