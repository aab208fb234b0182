//! sluice-api: the HTTP face of Sluice, on hyper through axum.
//!
//! - `/v1/*`: the REST API, behind API key authentication (module `auth`), JSON in and out,
//!   errors as `{"error": {"code", "message"}}` (module `error`).
//! - `/hls/*`: public HLS delivery from the object store, CORS open, playlists gzip-able.
//! - `/healthz`: liveness.
//!
//! This crate knows only `sluice-storage`; the ladder validation it needs is passed in.

mod auth;
mod error;
mod hls;
mod live_streams;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::get;
use axum::{middleware, Router};
use sluice_storage::{Db, ObjectStore};
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, MAX_BODY_BYTES};

/// Checks a requested rendition ladder (`null` when the request gave none) and returns the
/// normalised ladder to store, or a message saying what is wrong. The binary wires in the
/// transcoder's ladder parser.
pub type LadderValidator =
    Arc<dyn Fn(&serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub store: Arc<dyn ObjectStore>,
    /// Base URL viewers reach this server at, e.g. `http://localhost:8080`.
    pub public_url: String,
    /// RTMP ingest URL shown to publishers, e.g. `rtmp://localhost:1935/live`.
    pub rtmp_url: String,
    pub ladder_validator: LadderValidator,
}

async fn healthz() -> &'static str {
    "ok"
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/live-streams",
            get(live_streams::list).post(live_streams::create),
        )
        .route("/v1/live-streams/{id}", get(live_streams::get))
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    // Segments are already compressed media: only playlists (and error bodies) are gzipped.
    let compress_text = DefaultPredicate::new()
        .and(NotForContentType::const_new("video/"))
        .and(NotForContentType::const_new("audio/"));
    let hls = Router::new()
        .route("/hls/{playback_id}/{*path}", get(hls::serve))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(compress_text),
        )
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
                .allow_headers(Any),
        );

    // Each part sets its 405 fallback before its layers, so the layers (auth, CORS preflight)
    // also wrap requests with an unrouted method.
    Router::new()
        .route("/healthz", get(healthz))
        .method_not_allowed_fallback(error::method_not_allowed)
        .merge(v1)
        .merge(hls)
        .fallback(error::not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
