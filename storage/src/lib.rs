//! arcolake storage: the one place that talks to storage, for crawling and
//! for serving.
//!
//! - [`source`]: the [`Source`] trait (listing, range reads, streaming,
//!   presigning) and [`source::open`], which picks a backend for a URL;
//! - [`object`]: S3-compatible stores and local mounts through `object_store`;
//! - [`http`]: WebDAV, dCache doors and EOS XrdHttp;
//! - [`sources`]: the sources file the crawler and the server share;
//! - [`registry`]: which configured source an asset href belongs to;
//! - [`signing`]: HMAC-signed URLs to the server's streaming route;
//! - [`error`]: one error type, by kind.

#![allow(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "names are lower-cased before extension checks, or matched as written on purpose"
)]

pub mod error;
pub mod http;
pub mod object;
pub mod redact;
pub mod registry;
pub mod signing;
pub mod source;
pub mod sources;

pub use error::{Error, ErrorKind};
pub use registry::{PathFilter, Registered, Registry};
pub use source::{Entry, EntryKind, Level, Source, SourceSettings};

/// Install the TLS crypto provider once (rustls with ring).
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
