//! `/metrics`: requests counted and timed by route template, method and
//! status; requests in flight; the database pool. The text is also read by
//! the Prometheus Python client's `OpenMetrics` parser in `scripts/test`.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use support::TestApp;

/// The value of the sample `name{labels}` in the text, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
}

/// The value of the unlabelled sample `name`.
fn gauge(text: &str, name: &str) -> f64 {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    value.parse().unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = TestApp::new().await;
    app.collection("counted").await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/collections/counted/items").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.get("/collections/missing/items").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/no/such/path").await.status, StatusCode::NOT_FOUND);
    let odd = app
        .send(
            Request::builder()
                .method(Method::from_bytes(b"BREW").unwrap())
                .uri("/collections")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(odd.status, StatusCode::METHOD_NOT_ALLOWED);

    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = &reply.text;
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let items = r#"method="GET",route="/collections/{collectionId}/items""#;
    // The template, not the paths asked for: one series per status.
    assert_eq!(
        sample(
            text,
            "arcolake_http_requests_total",
            &format!(r#"{items},status="200""#)
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            text,
            "arcolake_http_requests_total",
            &format!(r#"{items},status="404""#)
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("/collections/counted"),
        "paths never become labels"
    );
    assert_eq!(
        sample(
            text,
            "arcolake_http_requests_total",
            r#"method="GET",route="unmatched",status="404""#
        ),
        Some(1.0)
    );
    // An unknown method is `other`, not a new label value.
    assert!(!text.contains("BREW"));
    assert!(text.contains(r#"method="other""#), "{text}");
    // Latency: a histogram per series, every request in the +Inf bucket.
    assert_eq!(
        sample(
            text,
            "arcolake_http_request_duration_seconds_count",
            &format!(r#"{items},status="200""#)
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            text,
            "arcolake_http_request_duration_seconds_bucket",
            &format!(r#"le="+Inf",{items},status="200""#)
        ),
        Some(3.0)
    );
    // This request is in flight while the text is written; the pool is open.
    assert!((gauge(text, "arcolake_http_requests_in_flight") - 1.0).abs() < f64::EPSILON);
    let open = gauge(text, "arcolake_db_pool_connections");
    let max = gauge(text, "arcolake_db_pool_max_connections");
    assert!(open >= 1.0 && open <= max, "{open} of {max}");

    // The scrape itself is counted by the next one.
    let again = app.get("/metrics").await;
    assert_eq!(
        sample(
            &again.text,
            "arcolake_http_requests_total",
            r#"method="GET",route="/metrics",status="200""#
        ),
        Some(1.0)
    );
}
