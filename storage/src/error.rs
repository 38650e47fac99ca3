//! One error type for every backend, sorted by what a caller can do about it.

use std::fmt;

/// What kind of failure a storage operation met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The storage refused our credentials (401/403, access denied).
    Permission,
    /// The storage could not be reached or failed (connection, 5xx).
    Unavailable,
    /// The storage did not answer in time.
    Timeout,
    /// The range asked for lies outside the object.
    InvalidRange,
    /// A path or href that no source may serve (`..`, an absolute path, a
    /// symbolic link out of the root).
    InvalidPath,
    /// The source could not be set up (bad URL, missing settings).
    Config,
}

/// A storage error: its kind, the path or URL it concerns (never with
/// credentials) and what went wrong.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    path: String,
    message: String,
}

impl Error {
    /// An error of `kind` about `path`.
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            kind,
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// `path` does not exist.
    pub fn not_found(path: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, path, "not found")
    }

    /// A request about `path` failed for a reason the storage did not classify.
    pub fn request(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unavailable, path, message)
    }

    /// A source could not be set up.
    pub fn config(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Config, String::new(), message)
    }

    /// The error an HTTP status of the storage means.
    pub fn from_status(path: impl Into<String>, status: u16) -> Self {
        let kind = match status {
            404 | 410 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::Permission,
            408 | 504 => ErrorKind::Timeout,
            416 => ErrorKind::InvalidRange,
            _ => ErrorKind::Unavailable,
        };
        Self::new(kind, path, format_args!("HTTP {status}"))
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The path or URL concerned.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// The kind an `object_store` error has here.
pub(crate) fn object_store_kind(e: &object_store::Error) -> ErrorKind {
    match e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::Permission,
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidPath,
        other => {
            let text = other.to_string().to_ascii_lowercase();
            let range = text.contains("range")
                && ["out of bounds", "invalid", "not satisfiable"]
                    .iter()
                    .any(|m| text.contains(m));
            if range {
                ErrorKind::InvalidRange
            } else {
                ErrorKind::Unavailable
            }
        }
    }
}
