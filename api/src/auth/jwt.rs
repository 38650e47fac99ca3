//! JSON Web Tokens from the platform's identity provider.
//!
//! [`JwtVerifier`] checks a token against a JWK set (a file and/or the
//! provider's JWKS URL, refetched when an unknown key id shows up) or an HS256
//! shared secret, then reads the collections it grants from one claim
//! ([`JwtConfig::claim`]), optionally mapping role names through
//! [`JwtConfig::roles`]. [`looks_like_jwt`] tells a JWT from the service's own
//! API keys. [`JwtError`] messages are safe for 401 bodies: they never contain
//! the token or the secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
/// The HTTP client a JWKS URL is fetched with.
pub use reqwest::Client as HttpClient;
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

/// The algorithms a token may be signed with; HS256 only with the shared secret.
const ACCEPTED: [Algorithm; 7] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
];

/// The shortest time between two fetches of the JWKS URL.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// How long one fetch of the JWKS URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys come from and how a token's claims become a [`Grant`].
#[derive(Clone)]
pub struct JwtConfig {
    /// A JWK set on disk.
    pub jwks_file: Option<PathBuf>,
    /// The identity provider's JWKS endpoint, fetched at start and on unknown key ids.
    pub jwks_url: Option<Url>,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set.
    pub audience: Option<String>,
    /// Dotted path of the claim that lists collections or roles, e.g. `realm_access.roles`.
    pub claim: String,
    /// Role name to collection ids; when empty, the claim lists collection ids.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl JwtConfig {
    /// Whether any key source is configured.
    pub fn enabled(&self) -> bool {
        self.jwks_file.is_some() || self.jwks_url.is_some() || self.hs256_secret.is_some()
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            hs256_secret: None,
            issuer: None,
            audience: None,
            claim: "collections".into(),
            roles: BTreeMap::new(),
            leeway_secs: 30,
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("claim", &self.claim)
            .field("roles", &self.roles)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// What a verified token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's `sub`.
    pub subject: Option<String>,
    /// Collection ids the token grants.
    pub collections: BTreeSet<String>,
    /// The token's `exp`.
    pub expires: Option<DateTime<Utc>>,
}

/// Why a JWT was refused, or why the key set could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum JwtError {
    /// The JWKS file is unreadable or not a JWK set.
    JwksFile {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The JWKS URL could not be fetched or is not a JWK set.
    JwksFetch {
        url: Url,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Not three base64url segments with a JSON header.
    Malformed,
    /// `alg: none`.
    Unsigned,
    /// An algorithm outside [`ACCEPTED`].
    UnsupportedAlgorithm { alg: String },
    /// An accepted algorithm without a configured key source for it.
    AlgorithmNotAccepted { alg: Algorithm },
    /// No key in the set has the token's `kid`, even after a refetch.
    UnknownKey { kid: String },
    /// The token has no `kid` and the set has no single key that fits.
    NoKeyId { alg: Algorithm, candidates: usize },
    /// The key with the token's `kid` is of another type or algorithm.
    KeyMismatch { kid: String, alg: Algorithm },
    /// The matching key cannot be used (bad key material in the set).
    InvalidKey { kid: Option<String> },
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// A required claim is absent.
    MissingClaim { claim: String },
    /// A claim has the wrong type.
    InvalidClaim { claim: String },
    /// `iss` is not the configured issuer.
    WrongIssuer { found: String, expected: String },
    /// `aud` does not include the configured audience.
    WrongAudience {
        found: Vec<String>,
        expected: String,
    },
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JwksFile { path, .. } => {
                write!(f, "cannot load the JWK set from {}", path.display())
            }
            Self::JwksFetch { url, .. } => write!(f, "cannot fetch the JWK set from {url}"),
            Self::Malformed => f.write_str("token is not a well-formed JWT"),
            Self::Unsigned => f.write_str("unsigned tokens (alg none) are refused"),
            Self::UnsupportedAlgorithm { alg } => {
                write!(f, "token algorithm {alg} is not supported")
            }
            Self::AlgorithmNotAccepted { alg } => {
                write!(
                    f,
                    "{alg:?} tokens are not accepted: no key is configured for them"
                )
            }
            Self::UnknownKey { kid } => write!(f, "token signed by an unknown key (kid {kid})"),
            Self::NoKeyId { alg, candidates } => write!(
                f,
                "token has no key id (kid) and the key set has {candidates} {alg:?} keys, \
                 not exactly one"
            ),
            Self::KeyMismatch { kid, alg } => {
                write!(f, "token algorithm {alg:?} does not match key {kid}")
            }
            Self::InvalidKey { kid: Some(kid) } => {
                write!(f, "key {kid} in the key set is unusable")
            }
            Self::InvalidKey { kid: None } => f.write_str("the key in the key set is unusable"),
            Self::BadSignature => f.write_str("token signature does not verify"),
            Self::Expired => f.write_str("token expired"),
            Self::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            Self::MissingClaim { claim } => write!(f, "token has no {claim} claim"),
            Self::InvalidClaim { claim } => write!(f, "token claim {claim} is malformed"),
            Self::WrongIssuer { found, expected } => {
                write!(f, "token issuer {found} is not {expected}")
            }
            Self::WrongAudience { found, expected } => {
                write!(f, "token audience {} is not {expected}", found.join(", "))
            }
        }
    }
}

impl std::error::Error for JwtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::JwksFile { source, .. } | Self::JwksFetch { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Verifies JWTs and turns them into [`Grant`]s; cheap to clone.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: JwtConfig,
    file_keys: Vec<Jwk>,
    /// `file_keys` followed by the keys last fetched from the URL.
    keys: RwLock<Arc<Vec<Jwk>>>,
    remote: Option<Remote>,
}

#[derive(Debug)]
struct Remote {
    url: Url,
    http: reqwest::Client,
    last_fetch: tokio::sync::Mutex<Instant>,
}

impl JwtVerifier {
    /// Load the JWKS file and fetch the JWKS URL, whichever are configured.
    pub async fn new(config: JwtConfig, http: reqwest::Client) -> Result<Self, JwtError> {
        let remote = config.jwks_url.clone().map(|url| Remote {
            url,
            http,
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
        });
        Self::load(config, remote).await
    }

    /// [`Self::new`] with the URL already paired with its client, so that tests without a JWKS
    /// URL need no `reqwest::Client` (which needs the rustls provider the binary installs).
    async fn load(config: JwtConfig, remote: Option<Remote>) -> Result<Self, JwtError> {
        let file_keys = match &config.jwks_file {
            Some(path) => read_jwks(path).await?.keys,
            None => Vec::new(),
        };
        let mut keys = file_keys.clone();
        if let Some(remote) = &remote {
            keys.extend(fetch_jwks(&remote.http, &remote.url).await?.keys);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                file_keys,
                keys: RwLock::new(Arc::new(keys)),
                remote,
            }),
        })
    }

    /// Check the token's signature and claims and read the collections it grants.
    pub async fn verify(&self, token: &str) -> Result<Grant, JwtError> {
        let config = &self.inner.config;
        let header = TokenHeader::parse(token).ok_or(JwtError::Malformed)?;
        let alg = accepted_algorithm(&header.alg)?;
        let key = if alg == Algorithm::HS256 {
            let secret = config
                .hs256_secret
                .as_ref()
                .ok_or(JwtError::AlgorithmNotAccepted { alg })?;
            DecodingKey::from_secret(secret.as_bytes())
        } else {
            self.public_key(header.kid.as_deref(), alg).await?
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway_secs;
        validation.validate_nbf = true;
        // Checked below, with messages that name the values.
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| refused(e, header.kid))?
            .claims;
        check_issuer(&claims, config.issuer.as_deref())?;
        check_audience(&claims, config.audience.as_deref())?;
        Ok(grant(&claims, config))
    }

    /// The key for an asymmetric token, refetching the JWKS URL once for an unknown kid.
    async fn public_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, JwtError> {
        if self.inner.config.jwks_file.is_none() && self.inner.remote.is_none() {
            return Err(JwtError::AlgorithmNotAccepted { alg });
        }
        let found = pick_key(&self.keys(), kid, alg);
        match (&found, &self.inner.remote) {
            (Err(JwtError::UnknownKey { .. }), Some(remote)) => {
                self.refetch(remote).await;
                pick_key(&self.keys(), kid, alg)
            }
            _ => found,
        }
    }

    fn keys(&self) -> Arc<Vec<Jwk>> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replace the URL's keys, unless they were fetched less than [`REFETCH_INTERVAL`] ago.
    /// A failed fetch keeps the previous keys.
    async fn refetch(&self, remote: &Remote) {
        let mut last_fetch = remote.last_fetch.lock().await;
        if last_fetch.elapsed() < REFETCH_INTERVAL {
            return;
        }
        *last_fetch = Instant::now();
        match fetch_jwks(&remote.http, &remote.url).await {
            Ok(set) => {
                let mut keys = self.inner.file_keys.clone();
                keys.extend(set.keys);
                info!(url = %remote.url, keys = keys.len(), "JWK set refetched");
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            }
            Err(e) => warn!(
                error = &e as &dyn std::error::Error,
                "JWK set refetch failed; keeping the previous keys"
            ),
        }
    }
}

/// Whether `token` has the shape of a JWT: three base64url segments, the first a JSON header
/// with an `alg`.
pub fn looks_like_jwt(token: &str) -> bool {
    TokenHeader::parse(token).is_some()
}

/// The part of the JOSE header read before verification.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

impl TokenHeader {
    fn parse(token: &str) -> Option<Self> {
        let segments: Vec<&str> = token.split('.').collect();
        let [header, payload, _signature] = segments[..] else {
            return None;
        };
        let base64url = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if header.is_empty() || payload.is_empty() || !segments.iter().all(|s| base64url(s)) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()
    }
}

fn accepted_algorithm(name: &str) -> Result<Algorithm, JwtError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(JwtError::Unsigned);
    }
    name.parse()
        .ok()
        .filter(|alg| ACCEPTED.contains(alg))
        .ok_or_else(|| JwtError::UnsupportedAlgorithm {
            alg: shortened(name),
        })
}

/// The key with the token's kid; without a kid, the one key in the set that fits `alg`.
fn pick_key(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, JwtError> {
    let jwk = match kid {
        Some(kid) => {
            let jwk = keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .ok_or_else(|| JwtError::UnknownKey {
                    kid: shortened(kid),
                })?;
            if !fits(jwk, alg) {
                return Err(JwtError::KeyMismatch {
                    kid: shortened(kid),
                    alg,
                });
            }
            jwk
        }
        None => {
            let candidates: Vec<&Jwk> = keys.iter().filter(|k| fits(k, alg)).collect();
            match candidates[..] {
                [jwk] => jwk,
                _ => {
                    return Err(JwtError::NoKeyId {
                        alg,
                        candidates: candidates.len(),
                    });
                }
            }
        }
    };
    DecodingKey::from_jwk(jwk).map_err(|_| JwtError::InvalidKey {
        kid: jwk.common.key_id.clone(),
    })
}

/// Whether a JWK may verify an `alg` signature: key type and curve fit, it is not an encryption
/// key, and its own `alg`, if any, is `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let key_type_fits = match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        _ => false,
    };
    key_type_fits
        && jwk.common.public_key_use != Some(PublicKeyUse::Encryption)
        && jwk
            .common
            .key_algorithm
            .is_none_or(|key_alg| key_alg.to_string().parse::<Algorithm>().ok() == Some(alg))
}

/// A jsonwebtoken rejection in our terms.
fn refused(e: jsonwebtoken::errors::Error, kid: Option<String>) -> JwtError {
    match e.into_kind() {
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => JwtError::MissingClaim { claim },
        ErrorKind::InvalidClaimFormat(claim) => JwtError::InvalidClaim { claim },
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            JwtError::InvalidKey { kid }
        }
        _ => JwtError::Malformed,
    }
}

fn check_issuer(claims: &Value, expected: Option<&str>) -> Result<(), JwtError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected => Ok(()),
        Some(iss) => Err(JwtError::WrongIssuer {
            found: iss.into(),
            expected: expected.into(),
        }),
        None => Err(JwtError::MissingClaim {
            claim: "iss".into(),
        }),
    }
}

fn check_audience(claims: &Value, expected: Option<&str>) -> Result<(), JwtError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let found: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if found.is_empty() {
        Err(JwtError::MissingClaim {
            claim: "aud".into(),
        })
    } else if found.contains(&expected) {
        Ok(())
    } else {
        Err(JwtError::WrongAudience {
            found: found.into_iter().map(String::from).collect(),
            expected: expected.into(),
        })
    }
}

fn grant(claims: &Value, config: &JwtConfig) -> Grant {
    let values = claim_values(claims, &config.claim);
    let collections = if config.roles.is_empty() {
        values.into_iter().map(String::from).collect()
    } else {
        values
            .into_iter()
            .filter_map(|role| config.roles.get(role))
            .flatten()
            .cloned()
            .collect()
    };
    Grant {
        subject: claims.get("sub").and_then(Value::as_str).map(String::from),
        collections,
        expires: claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| DateTime::from_timestamp(exp, 0)),
    }
}

/// The strings at a dotted path: a JSON array of strings, or one space- or comma-separated
/// string (as OAuth `scope`).
fn claim_values<'a>(claims: &'a Value, path: &str) -> Vec<&'a str> {
    match path
        .split('.')
        .try_fold(claims, |value, key| value.get(key))
    {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(list)) => list.split([' ', ',']).filter(|s| !s.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// A header value from an unverified token, cut short for error messages.
fn shortened(value: &str) -> String {
    value.chars().take(64).collect()
}

async fn read_jwks(path: &Path) -> Result<JwkSet, JwtError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| JwtError::JwksFile {
        path: path.to_path_buf(),
        source,
    };
    let bytes = tokio::fs::read(path).await.map_err(|e| fail(e.into()))?;
    serde_json::from_slice(&bytes).map_err(|e| fail(e.into()))
}

async fn fetch_jwks(http: &reqwest::Client, url: &Url) -> Result<JwkSet, JwtError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| JwtError::JwksFetch {
        url: url.clone(),
        source,
    };
    let response = http
        .get(url.clone())
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(e.into()))?;
    let bytes = response.bytes().await.map_err(|e| fail(e.into()))?;
    serde_json::from_slice(&bytes).map_err(|e| fail(e.into()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const SECRET: &str = "a-shared-secret-for-tests-only";

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/auth")
            .join(name)
    }

    fn read_fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixture(name)).unwrap()
    }

    /// Valid claims for alice, with `extra` fields added or replaced.
    fn claims(extra: &Value) -> Value {
        let mut claims = json!({
            "sub": "alice",
            "exp": get_current_timestamp() + 300,
            "collections": ["sentinel-2", "landsat"],
        });
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    fn sign_with(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(String::from);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let key = match alg {
            Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&read_fixture("ec-private.pem")).unwrap(),
            _ => EncodingKey::from_rsa_pem(&read_fixture("rsa-private.pem")).unwrap(),
        };
        sign_with(&key, alg, kid, claims)
    }

    fn jwks_file() -> JwtConfig {
        JwtConfig {
            jwks_file: Some(fixture("jwks.json")),
            ..JwtConfig::default()
        }
    }

    fn shared_secret() -> JwtConfig {
        JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..JwtConfig::default()
        }
    }

    async fn verify(config: JwtConfig, token: &str) -> Result<Grant, JwtError> {
        JwtVerifier::load(config, None)
            .await
            .unwrap()
            .verify(token)
            .await
    }

    async fn refusal(config: JwtConfig, token: &str) -> String {
        verify(config, token).await.unwrap_err().to_string()
    }

    fn collections(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_string()).collect()
    }

    #[tokio::test]
    async fn rs256_token_from_the_jwks_file_grants_its_collections() {
        let claims = claims(&json!({}));
        let token = sign(Algorithm::RS256, Some("test-rsa-1"), &claims);
        let grant = verify(jwks_file(), &token).await.unwrap();
        assert_eq!(grant.subject.as_deref(), Some("alice"));
        assert_eq!(grant.collections, collections(&["landsat", "sentinel-2"]));
        assert_eq!(grant.expires.map(|t| t.timestamp()), claims["exp"].as_i64());
    }

    #[tokio::test]
    async fn es256_token_from_the_jwks_file_is_accepted() {
        let token = sign(Algorithm::ES256, Some("test-ec-1"), &claims(&json!({})));
        assert!(verify(jwks_file(), &token).await.is_ok());
    }

    #[tokio::test]
    async fn token_without_kid_uses_the_one_key_of_its_type() {
        let token = sign(Algorithm::ES256, None, &claims(&json!({})));
        assert!(verify(jwks_file(), &token).await.is_ok());
    }

    #[tokio::test]
    async fn hs256_token_is_verified_with_the_shared_secret() {
        let token = sign(Algorithm::HS256, None, &claims(&json!({})));
        assert!(verify(shared_secret(), &token).await.is_ok());
        let other = EncodingKey::from_secret(b"another secret");
        let forged = sign_with(&other, Algorithm::HS256, None, &claims(&json!({})));
        assert_eq!(
            refusal(shared_secret(), &forged).await,
            "token signature does not verify"
        );
    }

    #[tokio::test]
    async fn expired_token_is_refused_beyond_the_leeway() {
        let now = get_current_timestamp();
        let within = sign(Algorithm::HS256, None, &claims(&json!({ "exp": now - 10 })));
        assert!(verify(shared_secret(), &within).await.is_ok());
        let expired = sign(
            Algorithm::HS256,
            None,
            &claims(&json!({ "exp": now - 120 })),
        );
        assert_eq!(refusal(shared_secret(), &expired).await, "token expired");
        let mut no_exp = claims(&json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        let no_exp = sign(Algorithm::HS256, None, &no_exp);
        assert_eq!(
            refusal(shared_secret(), &no_exp).await,
            "token has no exp claim"
        );
    }

    #[tokio::test]
    async fn token_before_its_nbf_is_refused() {
        let nbf = get_current_timestamp() + 120;
        let token = sign(Algorithm::HS256, None, &claims(&json!({ "nbf": nbf })));
        assert_eq!(
            refusal(shared_secret(), &token).await,
            "token is not valid yet (nbf)"
        );
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let config = JwtConfig {
            issuer: Some("https://idp.example/realms/eo".into()),
            audience: Some("arcolake".into()),
            ..shared_secret()
        };
        let good =
            json!({ "iss": "https://idp.example/realms/eo", "aud": ["account", "arcolake"] });
        let token = sign(Algorithm::HS256, None, &claims(&good));
        assert!(verify(config.clone(), &token).await.is_ok());

        let token = sign(
            Algorithm::HS256,
            None,
            &claims(&json!({ "iss": "https://evil.example", "aud": "arcolake" })),
        );
        assert_eq!(
            refusal(config.clone(), &token).await,
            "token issuer https://evil.example is not https://idp.example/realms/eo"
        );
        let token = sign(
            Algorithm::HS256,
            None,
            &claims(&json!({ "iss": "https://idp.example/realms/eo", "aud": ["account"] })),
        );
        assert_eq!(
            refusal(config.clone(), &token).await,
            "token audience account is not arcolake"
        );
        let token = sign(
            Algorithm::HS256,
            None,
            &claims(&json!({ "iss": "https://idp.example/realms/eo" })),
        );
        assert_eq!(refusal(config, &token).await, "token has no aud claim");
    }

    #[tokio::test]
    async fn unknown_kid_is_refused() {
        let token = sign(Algorithm::RS256, Some("retired-key"), &claims(&json!({})));
        assert_eq!(
            refusal(jwks_file(), &token).await,
            "token signed by an unknown key (kid retired-key)"
        );
    }

    #[tokio::test]
    async fn tampered_payload_is_refused() {
        let token = sign(Algorithm::RS256, Some("test-rsa-1"), &claims(&json!({})));
        let forged = URL_SAFE_NO_PAD.encode(
            claims(&json!({ "collections": ["everything"] }))
                .to_string()
                .as_bytes(),
        );
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = [parts[0], &forged, parts[2]].join(".");
        assert_eq!(
            refusal(jwks_file(), &tampered).await,
            "token signature does not verify"
        );
    }

    #[tokio::test]
    async fn unsigned_token_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(&json!({})).to_string().as_bytes());
        let token = format!("{header}.{payload}.");
        assert!(looks_like_jwt(&token));
        let config = JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..jwks_file()
        };
        assert_eq!(
            refusal(config, &token).await,
            "unsigned tokens (alg none) are refused"
        );
    }

    #[tokio::test]
    async fn hs256_token_signed_with_the_public_key_is_refused_when_only_a_jwks_is_configured() {
        let public_pem = EncodingKey::from_secret(&read_fixture("rsa-public.pem"));
        let token = sign_with(
            &public_pem,
            Algorithm::HS256,
            Some("test-rsa-1"),
            &claims(&json!({})),
        );
        assert_eq!(
            refusal(jwks_file(), &token).await,
            "HS256 tokens are not accepted: no key is configured for them"
        );
    }

    #[tokio::test]
    async fn token_alg_disagreeing_with_the_key_alg_is_refused() {
        let token = sign(Algorithm::RS384, Some("test-rsa-1"), &claims(&json!({})));
        assert_eq!(
            refusal(jwks_file(), &token).await,
            "token algorithm RS384 does not match key test-rsa-1"
        );
        let token = sign(Algorithm::ES256, Some("test-rsa-1"), &claims(&json!({})));
        assert_eq!(
            refusal(jwks_file(), &token).await,
            "token algorithm ES256 does not match key test-rsa-1"
        );
    }

    #[tokio::test]
    async fn claim_may_be_an_array_a_separated_string_or_a_nested_path() {
        let scope = claims(&json!({ "scope": "openid sentinel-2,landsat  modis" }));
        let config = JwtConfig {
            claim: "scope".into(),
            ..shared_secret()
        };
        let grant = verify(config, &sign(Algorithm::HS256, None, &scope))
            .await
            .unwrap();
        assert_eq!(
            grant.collections,
            collections(&["landsat", "modis", "openid", "sentinel-2"])
        );

        let nested = claims(&json!({
            "resource_access": { "arcolake": { "roles": ["sentinel-2"] } }
        }));
        let config = JwtConfig {
            claim: "resource_access.arcolake.roles".into(),
            ..shared_secret()
        };
        let grant = verify(config, &sign(Algorithm::HS256, None, &nested))
            .await
            .unwrap();
        assert_eq!(grant.collections, collections(&["sentinel-2"]));

        let config = JwtConfig {
            claim: "realm_access.roles".into(),
            ..shared_secret()
        };
        let grant = verify(config, &sign(Algorithm::HS256, None, &nested))
            .await
            .unwrap();
        assert!(grant.collections.is_empty());
    }

    #[tokio::test]
    async fn roles_are_mapped_to_collections() {
        let config = JwtConfig {
            claim: "realm_access.roles".into(),
            roles: BTreeMap::from([
                (
                    "eo-reader".into(),
                    vec!["sentinel-2".into(), "landsat".into()],
                ),
                ("climate".into(), vec!["era5".into()]),
            ]),
            ..shared_secret()
        };
        let token = sign(
            Algorithm::HS256,
            None,
            &claims(&json!({ "realm_access": { "roles": ["eo-reader", "offline_access"] } })),
        );
        let grant = verify(config, &token).await.unwrap();
        assert_eq!(grant.collections, collections(&["landsat", "sentinel-2"]));
    }

    #[tokio::test]
    async fn unusable_jwks_file_is_an_error_naming_the_path() {
        for name in ["missing.json", "rsa-public.pem"] {
            let config = JwtConfig {
                jwks_file: Some(fixture(name)),
                ..JwtConfig::default()
            };
            let e = JwtVerifier::load(config, None).await.unwrap_err();
            assert!(matches!(e, JwtError::JwksFile { .. }), "{e:?}");
            assert!(e.to_string().ends_with(&format!("auth/{name}")), "{e}");
        }
    }

    #[test]
    fn jwts_are_told_from_api_keys() {
        let token = sign(Algorithm::HS256, None, &claims(&json!({})));
        assert!(looks_like_jwt(&token));
        for not_jwt in ["ak_3f9c2e", "a.b", "a.b.c", "", "..", "e30.e30.sig"] {
            assert!(!looks_like_jwt(not_jwt), "{not_jwt}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", shared_secret()).contains(SECRET));
    }

    /// Serves `initial` on the first request and `rotated` on every later one; counts requests.
    async fn serve_jwks(initial: String, rotated: String, hits: Arc<AtomicUsize>) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let body = if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    &initial
                } else {
                    &rotated
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        url
    }

    #[tokio::test]
    async fn jwks_url_is_refetched_for_a_new_kid_at_most_once_a_minute() {
        storage::init_tls();
        let rotated = String::from_utf8(read_fixture("jwks.json")).unwrap();
        let mut initial: JwkSet = serde_json::from_str(&rotated).unwrap();
        initial
            .keys
            .retain(|k| k.common.key_id.as_deref() == Some("test-rsa-1"));
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve_jwks(
            serde_json::to_string(&initial).unwrap(),
            rotated,
            Arc::clone(&hits),
        )
        .await;
        let config = JwtConfig {
            jwks_url: Some(url),
            ..JwtConfig::default()
        };
        let verifier = JwtVerifier::new(config, reqwest::Client::new())
            .await
            .unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let old = sign(Algorithm::RS256, Some("test-rsa-1"), &claims(&json!({})));
        let new = sign(Algorithm::ES256, Some("test-ec-1"), &claims(&json!({})));
        assert!(verifier.verify(&old).await.is_ok());

        // Fetched less than a minute ago: no refetch.
        let e = verifier.verify(&new).await.unwrap_err();
        assert!(matches!(e, JwtError::UnknownKey { .. }), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let remote = verifier.inner.remote.as_ref().unwrap();
        *remote.last_fetch.lock().await = Instant::now().checked_sub(REFETCH_INTERVAL).unwrap();
        assert!(verifier.verify(&new).await.is_ok());
        assert!(verifier.verify(&old).await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let unknown = sign(Algorithm::ES256, Some("unknown"), &claims(&json!({})));
        assert!(verifier.verify(&unknown).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unreachable_jwks_url_at_start_is_an_error_naming_the_url() {
        storage::init_tls();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let config = JwtConfig {
            jwks_url: Some(url.clone()),
            ..JwtConfig::default()
        };
        let e = JwtVerifier::new(config, reqwest::Client::new())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot fetch the JWK set from {url}")
        );
    }
}
