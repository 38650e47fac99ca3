//! Who is calling, and which collections they may see.
//!
//! A caller presents a credential as `Authorization: Bearer …` or, for
//! clients that cannot set headers, as the query parameter `api_key`:
//!
//! - the operator's admin token sees everything (and may write);
//! - an API key of this server (`alk_…`, made by `arcolake keys create`)
//!   sees the public collections and those it grants; it is looked up on
//!   every request, so a revoked key stops working at once;
//! - a JWT of the platform's identity provider ([`jwt`]) sees the public
//!   collections and those its claim grants.
//!
//! No credential sees the public collections. A credential that is
//! presented but not valid is a 401 with the reason: a caller who meant to
//! use a key learns that it failed, rather than silently seeing less.
//! Prefix tokens of the streaming route (`col=…&sig=…`) are not callers'
//! credentials; the route checks them itself.

pub mod jwt;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use catalog::access::{Visibility, split_key};

use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a request and what they may see.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The collections visible to the caller.
    pub visibility: Visibility,
    /// Who it is, for the audit log and rate limits: `admin`, `key:<id>`,
    /// `jwt:<subject>` or `anonymous`.
    pub who: String,
}

impl Caller {
    /// A caller without credentials.
    pub fn anonymous() -> Self {
        Self {
            visibility: Visibility::public(),
            who: "anonymous".into(),
        }
    }
}

/// The credential a request presents, if any: the bearer token, else the
/// `api_key` query parameter.
pub fn presented(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned());
    bearer.or_else(|| {
        url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
            .find(|(k, _)| k == "api_key")
            .map(|(_, v)| v.into_owned())
    })
}

/// Whether a credential is a prefix token of the streaming route: a query
/// string of `col`, `exp`, `kid` and `sig` and nothing else.
pub fn is_stream_token(credential: &str) -> bool {
    let mut keys: Vec<String> = url::form_urlencoded::parse(credential.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    keys.sort();
    keys == ["col", "exp", "kid", "sig"]
}

fn unauthorized(description: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", description)
}

/// Constant-time equality of two byte strings.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller a credential names.
pub async fn identify(state: &AppState, credential: Option<&str>) -> Result<Caller, ApiError> {
    let Some(credential) = credential.filter(|c| !c.is_empty() && !is_stream_token(c)) else {
        return Ok(Caller::anonymous());
    };
    if let Some(admin) = &state.settings.admin_token
        && same_secret(credential.as_bytes(), admin.as_bytes())
    {
        return Ok(Caller {
            visibility: Visibility::all(),
            who: "admin".into(),
        });
    }
    if let Some((id, _)) = split_key(credential) {
        return match state.store.api_key_grants(credential).await? {
            Some(collections) => Ok(Caller {
                visibility: Visibility::granted(collections),
                who: format!("key:{id}"),
            }),
            None => Err(unauthorized(
                "the API key is not valid: unknown, revoked or expired",
            )),
        };
    }
    if jwt::looks_like_jwt(credential) {
        let Some(verifier) = &state.settings.jwt else {
            return Err(unauthorized(
                "this server accepts no JWTs: its operator has configured no JWKS or secret",
            ));
        };
        return match verifier.verify(credential).await {
            Ok(grant) => Ok(Caller {
                visibility: Visibility::granted(grant.collections),
                who: format!("jwt:{}", grant.subject.as_deref().unwrap_or("?")),
            }),
            Err(e) => Err(unauthorized(format!("the token is not accepted: {e}"))),
        };
    }
    Err(unauthorized(
        "the credential is neither an API key of this server, nor a JWT, nor the admin token",
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        identify(state, presented(parts).as_deref()).await
    }
}
