//! Shared state of the router.

use std::sync::Arc;

use catalog::Store;

use crate::ServeConfig;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The catalog store.
    pub store: Store,
    /// The resolved service settings.
    pub settings: Arc<ServeConfig>,
    /// The OpenAPI document, serialised once.
    pub openapi: Arc<String>,
    /// Request and pool metrics of this process (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}
