//! `/metrics` in the Prometheus (`OpenMetrics`) text format: requests per
//! route, method and status, their latency, requests in flight and the
//! database pool.
//!
//! Routes are labelled by their template (`/collections/{collection_id}/items`),
//! never by the path asked for, so the number of series stays bounded; a
//! path no route matches is labelled `unmatched`. The figures are this
//! process's: behind a load balancer, Prometheus scrapes each process and
//! sums them.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// The media type of the `OpenMetrics` text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of a request's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP method.
    pub method: String,
    /// The route's template, or `unmatched`.
    pub route: String,
    /// The response status code.
    pub status: u16,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Latency buckets: 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The metrics of one server process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    in_flight: Gauge<i64, AtomicI64>,
    pool_open: Gauge<i64, AtomicI64>,
    pool_idle: Gauge<i64, AtomicI64>,
    pool_max: Gauge<i64, AtomicI64>,
    reads: Family<ReadLabels, Counter>,
}

/// Where a catalog read went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// `replica` or `primary`.
    pub target: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("arcolake");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let pool_open = Gauge::<i64, AtomicI64>::default();
        let pool_idle = Gauge::<i64, AtomicI64>::default();
        let pool_max = Gauge::<i64, AtomicI64>::default();
        let reads = Family::<ReadLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to its response head, by method, route template and status",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled or waiting for admission",
            in_flight.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database connections open (idle or in use)",
            pool_open.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Database connections open and idle",
            pool_idle.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Most database connections the pool opens",
            pool_max.clone(),
        );
        registry.register(
            "db_reads",
            "Catalog reads with a read replica configured, by the server that answered (replica, or primary when the replica was behind or down)",
            reads.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            in_flight,
            pool_open,
            pool_idle,
            pool_max,
            reads,
        }
    }
}

impl Metrics {
    /// The text of every metric, with the pool as it is now.
    pub fn render(&self, store: &catalog::Store) -> String {
        let pool = store.pool();
        if store.has_replica() {
            let counts = store.read_counts();
            for (target, now) in [("replica", counts.replica), ("primary", counts.primary)] {
                let counter = self.reads.get_or_create(&ReadLabels { target });
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
        self.pool_open.set(i64::from(pool.size()));
        self.pool_idle
            .set(i64::try_from(pool.num_idle()).unwrap_or(i64::MAX));
        self.pool_max
            .set(i64::from(pool.options().get_max_connections()));
        let mut text = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One request in flight; leaving the count when dropped, also when the
/// client goes away before the answer.
struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: the standard ones by name, any other as `other`
/// (a client must not be able to make new series at will).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request (a layer around the routes).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let in_flight = InFlight::new(&metrics.in_flight);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state.store);
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
