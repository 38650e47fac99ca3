//! Per-caller rate limits on signing and streaming, and the bound on
//! streams in flight.
//!
//! Each caller (`key:<id>`, `jwt:<subject>`, or an anonymous caller's
//! address) has a token bucket per kind of request: `rate` requests a
//! second, bursts up to `burst`. Past it the answer is 429 with
//! `Retry-After`. Buckets live in the process: behind a load balancer each
//! process limits on its own, so the effective limit is the per-process
//! limit times the number of processes a caller's requests reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A rate: requests per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: f64,
}

/// What a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/sign`, `/token`, `?sign=true`.
    Sign,
    /// `/assets/…`.
    Stream,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limits of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Signing requests per caller.
    pub sign: Rate,
    /// Streaming requests per caller (a GDAL read of a COG is a handful of
    /// range requests; a Zarr read one per chunk).
    pub stream: Rate,
    buckets: Arc<Mutex<HashMap<(Kind, String), Bucket>>>,
    streams: Arc<Semaphore>,
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Self::new(
            Rate {
                per_second: 20.0,
                burst: 100.0,
            },
            Rate {
                per_second: 500.0,
                burst: 2_000.0,
            },
            256,
        )
    }
}

impl Limits {
    /// Limits with these rates and at most `max_streams` streams in flight.
    pub fn new(sign: Rate, stream: Rate, max_streams: usize) -> Self {
        Self {
            sign,
            stream,
            buckets: Arc::default(),
            streams: Arc::new(Semaphore::new(max_streams.max(1))),
        }
    }

    fn rate(&self, kind: Kind) -> Rate {
        match kind {
            Kind::Sign => self.sign,
            Kind::Stream => self.stream,
        }
    }

    /// Spend `cost` requests of `kind` for `who`, or a 429.
    pub fn spend(&self, kind: Kind, who: &str, cost: usize) -> Result<(), ApiError> {
        #[expect(clippy::cast_precision_loss, reason = "costs are small counts")]
        let cost = cost.max(1) as f64;
        let rate = self.rate(kind);
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_BUCKETS {
            // Full buckets are the idle callers': forgetting them changes nothing.
            buckets.retain(|(k, _), b| {
                let rate = self.rate(*k);
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < rate.burst
            });
            // Still full (a flood of callers): start afresh rather than scan
            // the map on every request.
            if buckets.len() >= MAX_BUCKETS / 2 {
                buckets.clear();
            }
        }
        let bucket = buckets.entry((kind, who.to_owned())).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refill).min(rate.burst);
        bucket.at = now;
        if bucket.tokens < cost {
            let what = match kind {
                Kind::Sign => "signing",
                Kind::Stream => "streaming",
            };
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "too many {what} requests from this caller (at most {} a second, bursts of {}); \
                     retry after the time in Retry-After",
                    rate.per_second, rate.burst
                ),
            ));
        }
        bucket.tokens -= cost;
        Ok(())
    }

    /// A slot for one stream, held until its body is sent; 503 when every
    /// slot is taken.
    pub fn stream_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server is streaming as many objects as it allows; try again shortly",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_past_its_burst_is_refused_and_others_are_not() {
        let limits = Limits::new(
            Rate {
                per_second: 0.001,
                burst: 3.0,
            },
            Rate {
                per_second: 1.0,
                burst: 1.0,
            },
            1,
        );
        for _ in 0..3 {
            limits.spend(Kind::Sign, "a", 1).unwrap();
        }
        let refused = limits.spend(Kind::Sign, "a", 1).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        limits.spend(Kind::Sign, "b", 1).unwrap();
        limits.spend(Kind::Stream, "a", 1).unwrap();
        let held = limits.stream_slot().unwrap();
        assert_eq!(
            limits.stream_slot().unwrap_err().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(held);
        assert!(limits.stream_slot().is_ok());
    }
}
