//! Admission control: how many requests run at once, and how much memory
//! their request bodies may hold together.
//!
//! A request waits (up to a bound) for a slot, and a request with a body
//! also for its share of the body-memory budget: its `Content-Length` in
//! MiB, or the whole body limit when the length is not announced. Past the
//! wait it is answered 503 with `Retry-After`, so a burst of large bodies
//! queues or is refused instead of exhausting memory.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

const MIB: u64 = 1 << 20;

/// The shared limits of one server.
#[derive(Debug, Clone)]
pub struct Admission {
    requests: Arc<Semaphore>,
    body_mib: Arc<Semaphore>,
    /// The body limit in MiB (a body of unknown length is charged this much).
    body_limit_mib: u32,
    /// Longest a request waits for admission before a 503.
    wait: Duration,
}

impl Admission {
    /// Limits for `max_in_flight` requests and `body_memory` bytes of bodies.
    pub fn new(
        max_in_flight: usize,
        body_memory: usize,
        body_limit: usize,
        wait: Duration,
    ) -> Self {
        let to_mib =
            |bytes: usize| u32::try_from((bytes as u64).div_ceil(MIB).max(1)).unwrap_or(u32::MAX);
        let body_limit_mib = to_mib(body_limit);
        // The budget holds at least one body of the largest size.
        let budget = to_mib(body_memory).max(body_limit_mib);
        Self {
            requests: Arc::new(Semaphore::new(max_in_flight.max(1))),
            body_mib: Arc::new(Semaphore::new(budget as usize)),
            body_limit_mib,
            wait,
        }
    }

    /// The MiB of the body budget a request is charged.
    fn charge(&self, request: &Request) -> u32 {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match length {
            Some(0) => 0,
            Some(n) => u32::try_from(n.div_ceil(MIB))
                .unwrap_or(u32::MAX)
                .min(self.body_limit_mib),
            None if matches!(
                *request.method(),
                Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
            ) && !request.headers().contains_key(header::TRANSFER_ENCODING) =>
            {
                0
            }
            None => self.body_limit_mib,
        }
    }
}

fn busy(what: &str) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        format!("the server is busy ({what}); try again shortly"),
    )
    .into_response()
}

/// The middleware: admit, run, release.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let Ok(Ok(_slot)) = tokio::time::timeout(
        admission.wait,
        Arc::clone(&admission.requests).acquire_owned(),
    )
    .await
    else {
        return busy("too many requests in flight");
    };
    let charge = admission.charge(&request);
    let _body = if charge == 0 {
        None
    } else {
        match tokio::time::timeout(
            admission.wait,
            Arc::clone(&admission.body_mib).acquire_many_owned(charge),
        )
        .await
        {
            Ok(Ok(permit)) => Some(permit),
            _ => return busy("too many large request bodies in flight"),
        }
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, length: Option<u64>) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri("/search");
        if let Some(n) = length {
            b = b.header(header::CONTENT_LENGTH, n.to_string());
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn bodies_are_charged_by_their_announced_size() {
        let a = Admission::new(8, 256 << 20, 64 << 20, Duration::from_secs(1));
        assert_eq!(a.charge(&request(Method::GET, None)), 0);
        assert_eq!(a.charge(&request(Method::POST, Some(10))), 1);
        assert_eq!(a.charge(&request(Method::POST, Some(3 << 20))), 3);
        assert_eq!(
            a.charge(&request(Method::POST, Some(1 << 40))),
            64,
            "capped at the body limit"
        );
        assert_eq!(
            a.charge(&request(Method::POST, None)),
            64,
            "unknown length: the whole limit"
        );
    }

    #[tokio::test]
    async fn a_full_body_budget_answers_503_after_the_wait() {
        let a = Admission::new(8, 64 << 20, 64 << 20, Duration::from_millis(50));
        let held = Arc::clone(&a.body_mib)
            .acquire_many_owned(64)
            .await
            .unwrap();
        let app = axum::Router::new()
            .route("/search", axum::routing::post(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(a.clone(), admit));
        let response =
            tower::ServiceExt::oneshot(app.clone(), request(Method::POST, Some(5 << 20)))
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        let response = tower::ServiceExt::oneshot(app, request(Method::POST, Some(5 << 20)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
