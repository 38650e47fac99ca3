//! The one place where errors become HTTP responses.
//!
//! Every error answer is a STAC API exception object, `application/json`:
//! `{"code": "...", "description": "...", "request_id": "..."}`. A 5xx never
//! carries internal error text: the handler stores the error in the response
//! extensions and [`log_errors`] logs the whole chain inside the request span.

use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The STAC API exception body.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Exception {
    /// A short machine-readable code, e.g. `NotFound`, `BadRequest`.
    pub code: String,
    /// What went wrong, for people.
    pub description: String,
    /// The id of the request, as in the `x-request-id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error a handler returns.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// The internal error kept in the response for the logging middleware.
#[derive(Clone)]
struct LoggedError(Arc<dyn std::error::Error + Send + Sync>);

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            source: None,
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    /// 404 `NotFound`.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", description)
    }

    /// 500 with a generic description; `source` is logged, never sent.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "InternalServerError",
            description: "the server could not complete the request; the error has been logged"
                .into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The same error, with an internal cause to log (never sent).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<catalog::Error> for ApiError {
    fn from(e: catalog::Error) -> Self {
        use catalog::Error as E;
        match &e {
            E::CollectionNotFound { .. } | E::ItemNotFound { .. } => Self::not_found(e.to_string()),
            E::InvalidSearch { .. } | E::InvalidDocument { .. } | E::InvalidInput { .. } => {
                Self::bad_request(e.to_string())
            }
            E::CollectionExists { .. } | E::ItemExists { .. } => {
                Self::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            E::Busy => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "ServiceUnavailable",
                description: "the catalog database is busy or unreachable; try again".into(),
                source: Some(Arc::new(e)),
            },
            E::Timeout => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "ServiceUnavailable",
                description: "the query took longer than the server allows and was cancelled; \
                              try again later, or narrow it (a smaller area or time range, \
                              fewer or indexed filter properties)"
                    .into(),
                source: Some(Arc::new(e)),
            },
            _ => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Exception {
            code: self.code.to_owned(),
            description: self.description,
            request_id: None,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"arcolake\""),
            );
        }
        if let Some(source) = self.source {
            response.extensions_mut().insert(LoggedError(source));
        }
        response
    }
}

/// Log the internal error of a failed request, inside its span; and make
/// sure every error response, whoever produced it (a layer, a fallback), is a
/// JSON exception carrying the request id.
pub async fn log_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if let Some(LoggedError(source)) = response.extensions().get::<LoggedError>() {
        let mut chain = source.to_string();
        let mut cause = source.source();
        while let Some(c) = cause {
            chain.push_str(": ");
            chain.push_str(&c.to_string());
            cause = c.source();
        }
        tracing::error!(status = status.as_u16(), error = %chain, "request failed");
    }
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let (mut parts, body) = response.into_parts();
    let exception = if is_json {
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return generic(status, request_id.as_deref());
        };
        match serde_json::from_slice::<Exception>(&bytes) {
            Ok(e) => e,
            Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
        }
    } else {
        Exception {
            code: code_for(status).into(),
            description: description_for(status).into(),
            request_id: None,
        }
    };
    let exception = Exception {
        request_id,
        ..exception
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let retry_after = match status {
        StatusCode::SERVICE_UNAVAILABLE => Some("5"),
        StatusCode::TOO_MANY_REQUESTS => Some("1"),
        _ => None,
    };
    if let Some(seconds) = retry_after
        && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    let body = serde_json::to_vec(&exception).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn generic(status: StatusCode, request_id: Option<&str>) -> Response {
    let body = Exception {
        code: code_for(status).into(),
        description: description_for(status).into(),
        request_id: request_id.map(str::to_owned),
    };
    (status, Json(body)).into_response()
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::NOT_ACCEPTABLE => "NotAcceptable",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::PRECONDITION_FAILED => "PreconditionFailed",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::UNPROCESSABLE_ENTITY => "BadRequest",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
        StatusCode::BAD_GATEWAY => "BadGateway",
        StatusCode::RANGE_NOT_SATISFIABLE => "RangeNotSatisfiable",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        s if s.is_server_error() => "InternalServerError",
        _ => "BadRequest",
    }
}

fn description_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "no resource at this path",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this path",
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was cancelled",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this server accepts",
        StatusCode::RANGE_NOT_SATISFIABLE => {
            "no range asked for lies inside the object; Content-Range gives its size"
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the request body must be JSON (Content-Type: application/json)"
        }
        s if s.is_server_error() => {
            "the server could not complete the request; the error has been logged"
        }
        _ => "the request could not be processed",
    }
}
