//! Reading one's own writes with a read replica (`serve
//! --read-database-url`): a request's `Arcolake-Read-After` header names
//! the WAL position its reads must see, and every response to a request
//! that wrote carries the primary's position after the write. See
//! `catalog::store::replica` for how reads are routed.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use catalog::store::replica::READ_AFTER_HEADER;

use crate::error::ApiError;

/// Run the request with its read-after position; answer with the position
/// of its write, if it wrote. Without a replica, a pass-through.
pub async fn scope(State(store): State<catalog::Store>, request: Request, next: Next) -> Response {
    if !store.has_replica() {
        return next.run(request).await;
    }
    let read_after = match request.headers().get(READ_AFTER_HEADER).map(|v| {
        v.to_str()
            .map_err(|_| format!("{READ_AFTER_HEADER} is not text"))
            .and_then(|t| catalog::Store::parse_read_after(t).map_err(|e| e.to_string()))
    }) {
        None => 0,
        Some(Ok(lsn)) => lsn,
        Some(Err(reason)) => return ApiError::bad_request(reason).into_response(),
    };
    let (mut response, written) = store.request_scope(read_after, next.run(request)).await;
    if let Some(lsn) = written {
        response
            .headers_mut()
            .insert(READ_AFTER_HEADER, HeaderValue::from(lsn));
    }
    response
}
