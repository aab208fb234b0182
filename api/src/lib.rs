//! sluice-api: the HTTP face of Sluice, on hyper through axum.
//!
//! - `/v1/*`: the REST API (live streams, sessions, playback ids, assets and uploads, API and
//!   signing keys, events and their Server-Sent Events stream, webhooks, real-time rooms and
//!   their access tokens, module `rooms`, and their composites, module `composites`), behind
//!   API key authentication and per-route permissions (module `auth`), JSON in and out, errors
//!   as `{"error": {"code", "message"}}` (module `error`).
//! - `/uploads/{id}/{token}`: where a direct upload's file is sent, whole (`PUT`) or with the
//!   tus 1.0.0 resumable protocol; the token in the URL is the credential (module `uploads`).
//! - `/hls/*`: HLS delivery from the object store, CORS open, playlists gzip-able; `signed`
//!   playback ids need a playback token (module `playback_token`).
//! - `/thumbnails/*`, `/storyboards/*`, `/animated/*`: images of assets, rendered on demand
//!   and cached (module `images`), CORS open like HLS.
//! - `/rtc`, `/rtc/validate`: the signal WebSocket LiveKit's client SDKs join rooms over, the
//!   access token in the query (module `rtc`); `/rooms/{id}/join`: the room join page.
//! - `/whip/*`: WebRTC ingest over WHIP (RFC 9725), the stream key as Bearer token, CORS
//!   open; `/live/{id}/publish`: the "Go live from this browser" page (module `whip`).
//! - `/`: the web console, `/console/*` its files, `/play/{playback_id}`: the player page
//!   (module `console`), static files embedded in the binary.
//! - `/healthz`: liveness; `/readyz`: readiness (database and object store work, module
//!   `readiness`); `/metrics`: Prometheus metrics (module `metrics`). [`operations_router`]
//!   serves only these three, for processes that run no API (roles `ingest` and `worker`).
//! - `/internal/low-latency/*`: a node's low-latency sessions for the api nodes forwarding
//!   LL-HLS requests to it, behind the node token (module `internal`); on every process.
//!
//! This crate knows only `sluice-storage` (and of `sluice-rooms`, the token format and the
//! [`sluice_rooms::RoomControl`] seam); the ladder validation it needs is passed in.

mod api_keys;
pub mod assets;
mod auth;
mod composites;
mod console;
mod error;
mod events;
mod hls;
mod images;
mod internal;
mod json;
mod live_streams;
mod metrics;
mod openapi;
mod playback_ids;
mod playback_token;
mod readiness;
mod room_transcription;
mod rooms;
mod rtc;
mod sessions;
mod signing_keys;
mod simulcast_targets;
mod transcripts;
pub mod tus;
mod uploads;
mod viewers;
mod webhooks;
mod whip;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::{middleware, Extension, Json, Router};
use sluice_storage::{Db, EventBus, ObjectStore};
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_MAX_LIFETIME_S};

/// The parsers a request reaches before it is authenticated, public for the fuzz targets:
/// the front ends of API JWT and playback token checking, and the image routes' query.
pub mod front_ends {
    pub use crate::auth::claimed_api_key;
    pub use crate::images::{animated_spec, parse_query, thumbnail_spec};
    pub use crate::playback_token::claimed_signing_key;
}
pub use error::{ApiError, MAX_BODY_BYTES};
pub use hls::{LowLatencyAnswer, LowLatencyHls, LowLatencyRequest, PlaybackIds};
pub use images::{
    AnimatedFormat, AnimatedSpec, FitMode, ImageRenderer, Images, RenderError, RenderedStoryboard,
    StillFormat, ThumbnailSpec, DEFAULT_SOURCE_CACHE_BYTES, MAX_ANIMATED_DIMENSION,
    MAX_ANIMATED_FPS, MAX_ANIMATED_SPAN, MAX_THUMBNAIL_DIMENSION, MIN_IMAGE_DIMENSION,
};
pub use internal::{ForwardedQuery, LOW_LATENCY_PATH};
pub use live_streams::live_stream_event_data;
pub use rooms::{room_event_data, MAX_ROOM_PARTICIPANTS};
pub use sessions::session_event_data;
pub use simulcast_targets::{simulcast_target_event_data, MAX_SIMULCAST_TARGETS};
pub use sluice_storage::Metrics;
pub use uploads::{
    spawn_upload_sweeper, UploadSettings, Uploads, DEFAULT_UPLOAD_TIMEOUT_S, MAX_UPLOAD_TIMEOUT_S,
};
pub use viewers::Viewers;
pub use whip::{whip_url, MAX_OFFER_BYTES};

/// Checks the URL of a simulcast target (scheme, host, and that its addresses may be reached)
/// and says what is wrong with it. The binary wires in the restreamer's check, which resolves
/// the host under the `[restream] allow_hosts` policy.
pub type SimulcastUrlValidator = Arc<
    dyn Fn(String) -> futures_util::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub store: Arc<dyn ObjectStore>,
    /// Where handlers publish domain events.
    pub events: EventBus,
    /// Base URL viewers reach this server at, e.g. `http://localhost:8080`.
    pub public_url: String,
    /// RTMP ingest URL shown to publishers, e.g. `rtmp://localhost:1935/live`.
    pub rtmp_url: String,
    pub simulcast_url_validator: SimulcastUrlValidator,
    /// Where every part of the server records its metrics, served at `/metrics`.
    pub metrics: Metrics,
    /// The `aud` an API JWT must include when it has one (config `[auth] jwt_audience`).
    pub jwt_audience: String,
    /// Seconds ahead an API JWT's `exp` may lie (config `[auth] jwt_max_lifetime_s`).
    pub jwt_max_lifetime_s: u64,
    /// Direct upload settings (config `[uploads]`) and the uploads being written.
    pub uploads: Uploads,
    /// What makes images of assets; `None` answers the image routes 404.
    pub images: Option<Images>,
    /// The WebRTC media plane WHIP offers go to; `None` answers them 503.
    pub whip: Option<Arc<dyn sluice_ingest::whip::WhipIngest>>,
    /// Where HLS requests of low-latency streams are answered from memory: the sessions this
    /// process packages, or the node packaging them; `None` serves every stream from the store.
    pub low_latency: Option<Arc<dyn LowLatencyHls>>,
    /// The low-latency sessions this process itself packages, which other nodes ask for at
    /// `/internal/low-latency`; `None` where it ingests nothing.
    pub packaged_here: Option<Arc<dyn LowLatencyHls>>,
    /// The token nodes of this deployment present to each other; `None` refuses them all.
    pub node_token: Option<Arc<str>>,
    /// Playback ids HLS requests looked up lately.
    pub playback_ids: hls::PlaybackIds,
    /// Who is watching what, from HLS requests.
    pub viewers: Viewers,
    /// Why this server cannot recognise speech (not installed, turned off); `None` when it
    /// can. Requests for generated subtitles are refused with it.
    pub speech_unavailable: Option<Arc<str>>,
    /// The rooms running in this process, driven by the live room routes; `None` where this
    /// process runs no room engine (those routes answer 503 `rooms_unavailable`).
    pub rooms: Option<Arc<dyn sluice_rooms::RoomControl>>,
    /// The WebSocket base URL LiveKit clients connect to for rooms, e.g.
    /// `ws://localhost:8080`; shown with rooms and tokens.
    pub rooms_ws_url: String,
}

/// Liveness: answers while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server is up", body = String, example = "ok")))]
async fn healthz() -> &'static str {
    "ok"
}

/// The whole HTTP surface. Every route is registered through [`OpenApiRouter`] from its
/// `#[utoipa::path]` annotation, so `/openapi.json` describes exactly what is served.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = documented_routes(&state);
    routes
        .layer(Extension(Arc::new(spec)))
        .fallback(error::not_found)
        // `Router::layer` wraps each route after routing, so the route template is known.
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record_http,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Only the operations routes (`/healthz`, `/readyz`, `/metrics`): the HTTP surface of a
/// process that serves no API (roles `ingest` and `worker`), for health checks and scraping.
pub fn operations_router(state: AppState) -> Router {
    let (routes, _) = operations().split_for_parts();
    routes
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Liveness, readiness and metrics, wherever they are served.
fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readiness::readyz))
        .routes(routes!(metrics::serve))
        .routes(routes!(internal::low_latency))
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_json(
    Extension(spec): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(spec)
}

/// Each part sets its 405 fallback before its layers, so the layers (auth, CORS preflight)
/// also wrap requests with an unrouted method.
fn documented_routes(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (v1, v1_spec) = OpenApiRouter::new()
        .routes(routes!(live_streams::list, live_streams::create))
        .routes(routes!(
            live_streams::get,
            live_streams::update,
            live_streams::delete
        ))
        .routes(routes!(live_streams::reset_stream_key))
        .routes(routes!(live_streams::disable))
        .routes(routes!(live_streams::enable))
        .routes(routes!(live_streams::complete))
        .routes(routes!(live_streams::health))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::get))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::get_delivery))
        .routes(routes!(webhooks::replay_delivery))
        .routes(routes!(webhooks::replay_events))
        .routes(routes!(playback_ids::list, playback_ids::create))
        .routes(routes!(playback_ids::get, playback_ids::delete))
        .routes(routes!(simulcast_targets::list, simulcast_targets::create))
        .routes(routes!(simulcast_targets::get, simulcast_targets::delete))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::get, api_keys::revoke))
        .routes(routes!(signing_keys::list, signing_keys::create))
        .routes(routes!(signing_keys::get, signing_keys::delete))
        .routes(routes!(uploads::list, uploads::create))
        .routes(routes!(uploads::get))
        .routes(routes!(uploads::cancel))
        .routes(routes!(assets::list, assets::create))
        .routes(routes!(assets::get, assets::delete))
        .routes(routes!(transcripts::transcript))
        .routes(routes!(transcripts::search))
        .routes(routes!(rooms::list, rooms::create))
        .routes(routes!(rooms::get, rooms::delete))
        .routes(routes!(rooms::list_sessions))
        .routes(routes!(rooms::create_token))
        .routes(routes!(rooms::participants))
        .routes(routes!(rooms::remove_participant))
        .routes(routes!(rooms::mute_track))
        .routes(routes!(rooms::send_data))
        .routes(routes!(
            composites::get,
            composites::create,
            composites::update,
            composites::delete
        ))
        .routes(routes!(composites::list))
        .routes(routes!(room_transcription::start))
        .routes(routes!(room_transcription::stop))
        .routes(routes!(room_transcription::transcript))
        .routes(routes!(room_transcription::search))
        .routes(routes!(composites::hls_start))
        .routes(routes!(composites::hls_stop))
        .routes(routes!(composites::recordings_start))
        .routes(routes!(composites::recordings_stop))
        .routes(routes!(composites::livestreams_start))
        .routes(routes!(composites::livestreams_stop))
        .routes(routes!(
            assets::list_playback_ids,
            assets::create_playback_id
        ))
        .split_for_parts();
    let v1 = v1
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    let (hls, hls_spec) = OpenApiRouter::new()
        .routes(routes!(hls::serve))
        .split_for_parts();
    // Segments are already compressed media: only playlists (and error bodies) are gzipped.
    let compress_text = DefaultPredicate::new()
        .and(NotForContentType::const_new("video/"))
        .and(NotForContentType::const_new("audio/"));
    let hls = hls
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(compress_text),
        )
        .layer(playback_cors());

    let (images, images_spec) = OpenApiRouter::new()
        .routes(routes!(images::thumbnail))
        .routes(routes!(images::storyboard))
        .routes(routes!(images::animated))
        .split_for_parts();
    let images = images
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(playback_cors());

    // The upload URL: no API key (its token is the credential), no 1 MiB body limit (bodies
    // stream to disk, bounded by the upload's size).
    let (upload_url, upload_url_spec) = OpenApiRouter::new()
        .routes(routes!(
            uploads::put_file,
            uploads::tus_options,
            uploads::tus_create,
            uploads::tus_head,
            uploads::tus_patch,
            uploads::tus_terminate
        ))
        .split_for_parts();
    let upload_url = upload_url
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn(uploads::tus_headers));

    let (console, console_spec) = OpenApiRouter::new()
        .routes(routes!(console::index))
        .routes(routes!(console::file))
        .routes(routes!(console::player))
        .routes(routes!(console::room_join))
        .split_for_parts();
    // The console's script and hls.js are most of a first load; they compress well.
    let console = console
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(CompressionLayer::new().gzip(true));

    let (whip, whip_spec) = whip::routes().split_for_parts();
    let whip = whip
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(whip::cors());

    // LiveKit's signalling: the token in the query is the credential.
    let (rtc, rtc_spec) = OpenApiRouter::new()
        .routes(routes!(rtc::connect))
        .routes(routes!(rtc::validate))
        .split_for_parts();
    let rtc = rtc.method_not_allowed_fallback(error::method_not_allowed);

    let (operations, mut spec) = operations().routes(routes!(openapi_json)).split_for_parts();
    spec.merge(v1_spec);
    spec.merge(hls_spec);
    spec.merge(upload_url_spec);
    spec.merge(images_spec);
    spec.merge(whip_spec);
    spec.merge(rtc_spec);
    spec.merge(console_spec);
    // axum spells a catch-all `{*path}`; OpenAPI path templates know only `{path}`.
    spec.paths.paths = std::mem::take(&mut spec.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    let routes = operations
        .method_not_allowed_fallback(error::method_not_allowed)
        .merge(v1)
        .merge(hls)
        .merge(upload_url)
        .merge(images)
        .merge(whip)
        .merge(rtc)
        .merge(console);
    (routes, spec)
}

/// Playback (HLS, images) is fetched by players on any web page.
fn playback_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
}
