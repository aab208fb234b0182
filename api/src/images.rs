//! Images of assets over HTTP, after Mux's image API: thumbnails
//! (`GET /thumbnails/{playback_id}.{jpg|png|webp}`), storyboards for seek previews
//! (`GET /storyboards/{playback_id}.vtt` and the sprite `.{jpg|png|webp}`) and animated
//! previews (`GET /animated/{playback_id}.{gif|webp}`).
//!
//! Only assets have images: a live stream's playback id is answered 404 saying so, and an
//! asset that is not ready yet 409. A `signed` playback id needs `?token=` with a playback
//! token whose `aud` is `thumbnail` (`t`), `storyboard` (`s`) or `animated` (`g`).
//!
//! Where a picture comes from, first found first:
//! 1. what the asset worker wrote: `assets/{id}/images/poster.jpg` (a thumbnail asked with no
//!    parameters), `images/storyboard.jpg` and `images/storyboard.vtt`;
//! 2. an earlier request's result, cached in the object store under
//!    `assets/{id}/cache/{canonical parameters}.{ext}`;
//! 3. a render from the asset's source, then cached as in 2.
//!
//! Rendering is the [`ImageRenderer`]'s (the binary implements it with the transcoder; this
//! crate knows no media code). It reads a local copy of the source, which [`Images`] fetches
//! from the object store into its cache directory once per asset and reuses; copies are
//! dropped least recently used first when they pass the directory's size bound, and the
//! directory is emptied when the server starts. Renders run on blocking threads, at most
//! [`MAX_CONCURRENT_RENDERS`] at once; other requests wait their turn.
//!
//! Times past the end of the asset are clamped to its last picture (a thumbnail's `time`, an
//! animation's span), as players clamp a seek. Responses carry `Content-Type`, a strong
//! `ETag` (a digest of the bytes, answered 304 on `If-None-Match`) and `Cache-Control`:
//! `public` for public playback ids, `private` for signed ones.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use sluice_storage::layout;
use sluice_storage::{Asset, AssetStatus, ObjectKey, ObjectStore, PlaybackPolicy};
use tokio::sync::Semaphore;

mod limits;
use limits::{CachedRenders, RenderBudgets};
use sluice_ingest::peers::client_of;

use crate::error::ApiError;
use crate::hls::missing_token;
use crate::playback_token::{self, PlaybackAudience};
use crate::AppState;

/// Renders running at once; further requests wait. Each render is one blocking thread busy
/// decoding and encoding.
pub const MAX_CONCURRENT_RENDERS: usize = 2;
/// Default bound of the local source copies, in bytes (10 GiB).
pub const DEFAULT_SOURCE_CACHE_BYTES: u64 = 10 << 30;

/// Smallest width or height a thumbnail may be asked for.
pub const MIN_IMAGE_DIMENSION: u32 = 16;
/// Largest width or height a thumbnail may be asked for.
pub const MAX_THUMBNAIL_DIMENSION: u32 = 4096;
/// Largest width or height an animated preview may be asked for.
pub const MAX_ANIMATED_DIMENSION: u32 = 640;
/// Longest span of an animated preview.
pub const MAX_ANIMATED_SPAN: Duration = Duration::from_secs(10);
/// Span of an animated preview asked without `end`.
pub const DEFAULT_ANIMATED_SPAN: Duration = Duration::from_secs(5);
/// Highest frame rate of an animated preview.
pub const MAX_ANIMATED_FPS: u32 = 30;
/// Frame rate of an animated preview asked without `fps`.
pub const DEFAULT_ANIMATED_FPS: u32 = 15;
/// Latest time a request may name, in seconds (about 115 days): beyond any real video, and
/// small enough to stay exact in milliseconds.
const MAX_TIME_SECONDS: f64 = 1e7;
/// Times are taken down to this step (a tenth of a second, under three frames at 25 fps), so
/// a client cannot make a new image out of every millisecond.
const TIME_STEP: Duration = Duration::from_millis(100);
/// Requests that may wait for a render slot; more are answered 503 with `Retry-After`.
pub const MAX_WAITING_RENDERS: usize = 16;

const PUBLIC_CACHE: &str = "public, max-age=86400";
/// Signed responses must not sit in shared caches, where anyone could fetch them tokenless.
const SIGNED_CACHE: &str = "private, max-age=86400";
const VTT_CONTENT_TYPE: &str = "text/vtt; charset=utf-8";
/// The sprite name in stored WebVTT cues, replaced by the sprite's URL when served.
const SPRITE_NAME: &str = "storyboard.jpg";

/// A still image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StillFormat {
    Jpeg,
    Png,
    Webp,
}

impl StillFormat {
    fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

/// How a thumbnail fits a requested width and height (both given; otherwise the aspect
/// ratio decides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FitMode {
    /// Inside the box, aspect kept: the image may be smaller than the box.
    #[default]
    Preserve,
    /// Fills the box, aspect kept, the overflow cut off around the centre.
    Crop,
    /// The box exactly, the picture inside it with black bars.
    Pad,
    /// The box exactly, the picture distorted.
    Stretch,
}

impl FitMode {
    const ALL: [FitMode; 4] = [Self::Preserve, Self::Crop, Self::Pad, Self::Stretch];

    fn as_str(self) -> &'static str {
        match self {
            Self::Preserve => "preserve",
            Self::Crop => "crop",
            Self::Pad => "pad",
            Self::Stretch => "stretch",
        }
    }
}

/// A thumbnail to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailSpec {
    /// `None`: the poster frame.
    pub time: Option<Duration>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit_mode: FitMode,
    pub format: StillFormat,
}

/// An animated format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnimatedFormat {
    Gif,
    Webp,
}

impl AnimatedFormat {
    fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "gif" => Some(Self::Gif),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }
}

/// An animated preview to render: frames every `1 / fps` from `start` until `end`, fitting
/// inside `width` × `height` (a missing side unbounded up to [`MAX_ANIMATED_DIMENSION`];
/// neither given: 320 wide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnimatedSpec {
    pub start: Duration,
    pub end: Duration,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: u32,
    pub format: AnimatedFormat,
}

/// A storyboard: its sprite and the WebVTT whose cues point into it as `{sprite_uri}#xywh=`.
#[derive(Clone, Debug)]
pub struct RenderedStoryboard {
    pub sprite: Vec<u8>,
    pub vtt: String,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The request cannot be met (a format this server cannot encode, …); answered 400.
    #[error("{0}")]
    Invalid(String),
    /// The source cannot be read or the image made; answered 500.
    #[error("{0}")]
    Failed(String),
}

impl From<RenderError> for ApiError {
    fn from(error: RenderError) -> Self {
        match error {
            RenderError::Invalid(message) => ApiError::InvalidRequest(message),
            RenderError::Failed(message) => ApiError::Internal(message),
        }
    }
}

/// Makes images of a local video file. Every method blocks (decoding and encoding) and is
/// called on a blocking thread.
pub trait ImageRenderer: Send + Sync {
    /// The encoded thumbnail.
    fn thumbnail(&self, source: &Path, spec: &ThumbnailSpec) -> Result<Vec<u8>, RenderError>;
    /// The storyboard, its sprite in `format`, its cues pointing at `sprite_uri`.
    fn storyboard(
        &self,
        source: &Path,
        format: StillFormat,
        sprite_uri: &str,
    ) -> Result<RenderedStoryboard, RenderError>;
    /// The encoded animation.
    fn animated(&self, source: &Path, spec: &AnimatedSpec) -> Result<Vec<u8>, RenderError>;
}

/// What the image routes share: the renderer, the local copies of sources and the bound on
/// concurrent renders.
#[derive(Clone)]
pub struct Images {
    renderer: Arc<dyn ImageRenderer>,
    sources: Arc<SourceCache>,
    renders: Arc<Semaphore>,
    /// Requests waiting for a render slot now.
    waiting: Arc<AtomicUsize>,
    budgets: Arc<Mutex<RenderBudgets>>,
    cached: Arc<Mutex<CachedRenders>>,
}

impl Images {
    /// Images made by `renderer` from source copies kept in `cache_dir` (emptied now: it is
    /// only a cache) up to about `max_cache_bytes` (at least the copy in use is kept).
    pub fn new(renderer: Arc<dyn ImageRenderer>, cache_dir: PathBuf, max_cache_bytes: u64) -> Self {
        // Best effort: a directory that cannot be emptied still works as a cache.
        let _ = std::fs::remove_dir_all(&cache_dir);
        Images {
            renderer,
            sources: Arc::new(SourceCache {
                dir: cache_dir,
                max_bytes: max_cache_bytes,
                entries: Mutex::new(CacheEntries::default()),
                download: tokio::sync::Mutex::new(()),
            }),
            renders: Arc::new(Semaphore::new(MAX_CONCURRENT_RENDERS)),
            waiting: Arc::default(),
            budgets: Arc::default(),
            cached: Arc::default(),
        }
    }

    /// Runs `job` with the renderer and a local copy of `asset`'s source on a blocking
    /// thread, once a render slot is free.
    /// A client is refused once its render budget is spent (429), and anyone once
    /// [`MAX_WAITING_RENDERS`] requests already wait for a slot (503); both say when to retry.
    async fn render<T: Send + 'static>(
        &self,
        store: &dyn ObjectStore,
        target: &Target,
        job: impl FnOnce(&dyn ImageRenderer, &Path) -> Result<T, RenderError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let queued = WaitingRender::join(&self.waiting).ok_or(ApiError::Busy {
            message: "too many image renders are waiting; try again shortly",
            retry_after_s: 1,
        })?;
        if let Some(client) = target.client {
            let spent = lock(&self.budgets).spend(client_of(client), std::time::Instant::now());
            spent.map_err(|wait| ApiError::RateLimited {
                message: "too many image renders from this client; cached images are still served",
                retry_after_s: wait.as_secs().max(1),
            })?;
        }
        // The slot first: requests waiting for one hold no source copy, so waiting requests
        // for many assets cannot push the copies past their size bound.
        let _slot = self.renders.acquire().await.map_err(ApiError::internal)?;
        drop(queued);
        let asset = &target.asset;
        let lease = self.sources.lease(store, asset).await?;
        let renderer = self.renderer.clone();
        let path = lease.path.clone();
        let rendered = tokio::task::spawn_blocking(move || job(&*renderer, &path))
            .await
            .map_err(ApiError::internal)?;
        drop(lease);
        Ok(rendered?)
    }
}

/// A request counted among those waiting for a render slot until dropped.
struct WaitingRender<'a>(&'a AtomicUsize);

impl<'a> WaitingRender<'a> {
    /// Joins the queue, or `None` when [`MAX_WAITING_RENDERS`] already wait.
    fn join(waiting: &'a AtomicUsize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < MAX_WAITING_RENDERS).then_some(count + 1)
            })
            .ok()
            .map(|_| WaitingRender(waiting))
    }
}

impl Drop for WaitingRender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks bookkeeping that stays whole even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Local copies of asset sources, `{dir}/{asset_id}`, least recently used dropped first.
struct SourceCache {
    dir: PathBuf,
    max_bytes: u64,
    entries: Mutex<CacheEntries>,
    /// One download at a time, so two requests for one asset fetch it once.
    download: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CacheEntries {
    by_asset: HashMap<String, CachedSource>,
    /// Ticks at each use; an entry's `last_used` orders it for eviction.
    clock: u64,
}

struct CachedSource {
    bytes: u64,
    last_used: u64,
    /// Renders reading the copy now; a leased copy is never removed.
    leases: usize,
}

/// A copy in use; dropping it releases the copy to eviction.
struct SourceLease {
    cache: Arc<SourceCache>,
    asset_id: String,
    path: PathBuf,
}

impl Drop for SourceLease {
    fn drop(&mut self) {
        let mut entries = self.cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.by_asset.get_mut(&self.asset_id) {
            entry.leases = entry.leases.saturating_sub(1);
        }
    }
}

impl SourceCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leases the copy of `asset_id` when there is one.
    fn try_lease(self: &Arc<Self>, asset_id: &str) -> Option<SourceLease> {
        let mut entries = self.lock();
        entries.clock += 1;
        let clock = entries.clock;
        let entry = entries.by_asset.get_mut(asset_id)?;
        entry.last_used = clock;
        entry.leases += 1;
        Some(SourceLease {
            cache: self.clone(),
            asset_id: asset_id.to_owned(),
            path: self.dir.join(asset_id),
        })
    }

    /// A local copy of `asset`'s source, fetched from the store unless one is cached.
    async fn lease(
        self: &Arc<Self>,
        store: &dyn ObjectStore,
        asset: &Asset,
    ) -> Result<SourceLease, ApiError> {
        if let Some(lease) = self.try_lease(&asset.id) {
            return Ok(lease);
        }
        let _download = self.download.lock().await;
        if let Some(lease) = self.try_lease(&asset.id) {
            return Ok(lease);
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(ApiError::internal)?;
        // Asset ids are server-made (`asset_` and letters and digits): a plain file name.
        let path = self.dir.join(asset.id.as_str());
        let partial = self.dir.join(format!(".{}.part", asset.id));
        let source = asset.source_key().map_err(ApiError::internal)?;
        let fetched = store.get_to_file(&source, &partial).await;
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(error.into());
            }
        };
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(ApiError::internal)?;
        {
            let mut entries = self.lock();
            entries.by_asset.insert(
                asset.id.to_string(),
                CachedSource {
                    bytes,
                    last_used: 0,
                    leases: 0,
                },
            );
        }
        let lease = self.try_lease(&asset.id).ok_or_else(|| {
            ApiError::internal("a source copy vanished from the cache as it was added")
        })?;
        self.evict();
        Ok(lease)
    }

    /// Removes the least recently used copies nobody reads until the rest fit the bound.
    fn evict(&self) {
        let mut entries = self.lock();
        let mut total: u64 = entries.by_asset.values().map(|entry| entry.bytes).sum();
        while total > self.max_bytes {
            let Some((asset_id, bytes)) = entries
                .by_asset
                .iter()
                .filter(|(_, entry)| entry.leases == 0)
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, entry)| (id.clone(), entry.bytes))
            else {
                break;
            };
            entries.by_asset.remove(&asset_id);
            // Best effort: a file that cannot be removed only takes space.
            let _ = std::fs::remove_file(self.dir.join(&asset_id));
            total -= bytes;
        }
    }
}

/// The asset behind a playback id, once the request may see its images.
struct Target {
    playback_id: String,
    asset: Asset,
    /// The verified playback token of a signed playback id.
    token: Option<String>,
    /// Who asked, for the per-client render budget (unknown without a peer address).
    client: Option<IpAddr>,
}

impl Target {
    fn signed(&self) -> bool {
        self.token.is_some()
    }

    /// A picture the asset worker made (`images/{name}`).
    fn made(&self, name: &str) -> Result<ObjectKey, ApiError> {
        layout::asset_images(&self.asset.id, &[name]).map_err(ApiError::internal)
    }

    /// A render cached on request (`cache/{name}`).
    fn cached(&self, name: &str) -> Result<ObjectKey, ApiError> {
        layout::asset_cache(&self.asset.id, name).map_err(ApiError::internal)
    }
}

/// `{playback_id}.{extension}` of a request path.
fn split_file(file: &str) -> Result<(&str, &str), ApiError> {
    file.rsplit_once('.')
        .filter(|(id, _)| !id.is_empty())
        .ok_or(ApiError::NotFound(
            "not found: image URLs end in {playback_id}.{format}",
        ))
}

/// The query parameters among `allowed`, each at most once; anything else is refused.
pub fn parse_query(
    raw: Option<&str>,
    allowed: &[&'static str],
) -> Result<BTreeMap<&'static str, String>, ApiError> {
    let mut values = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let Some(&known) = allowed.iter().find(|&&known| known == name) else {
            return Err(ApiError::InvalidRequest(format!(
                "unknown parameter {name:?}: this image takes {}",
                allowed.join(", ")
            )));
        };
        if values.insert(known, value.into_owned()).is_some() {
            return Err(ApiError::InvalidRequest(format!(
                "parameter {known:?} is given more than once"
            )));
        }
    }
    Ok(values)
}

/// A time in seconds (fractions allowed), 0 or more.
fn parse_time(name: &str, value: &str) -> Result<Duration, ApiError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|seconds| (0.0..=MAX_TIME_SECONDS).contains(seconds))
        // Whole steps down (a picture at or before the time asked): what cache keys hold and
        // renders use, so nearby times are one image.
        .map(|seconds| {
            let step = TIME_STEP.as_secs_f64();
            TIME_STEP * (seconds / step + 1e-9).floor() as u32
        })
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "{name} must be a number of seconds from 0, not {value:?}"
            ))
        })
}

/// A whole number within `bounds`.
fn parse_bounded(
    name: &str,
    value: &str,
    bounds: std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|number| bounds.contains(number))
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "{name} must be a whole number of {unit} from {} to {}, not {value:?}",
                bounds.start(),
                bounds.end()
            ))
        })
}

fn parse_fit_mode(value: &str) -> Result<FitMode, ApiError> {
    FitMode::ALL
        .into_iter()
        .find(|mode| mode.as_str() == value)
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "fit_mode must be preserve, crop, pad or stretch, not {value:?}"
            ))
        })
}

/// Finds the asset of `playback_id` and checks the request may see its images.
async fn resolve(
    state: &AppState,
    playback_id: &str,
    token: Option<String>,
    audience: PlaybackAudience,
    client: Option<IpAddr>,
) -> Result<Target, Response> {
    const NO_SUCH_ID: ApiError = ApiError::NotFound("no such playback id");
    ObjectKey::new([playback_id]).map_err(|_| NO_SUCH_ID.into_response())?;
    let playback = state
        .db
        .get_playback_id(playback_id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| NO_SUCH_ID.into_response())?;
    let Some(asset_id) = playback.asset_id else {
        return Err(ApiError::NotFound(
            "this playback id plays a live stream: images are made only of assets",
        )
        .into_response());
    };
    let token = match playback.policy {
        PlaybackPolicy::Public => None,
        PlaybackPolicy::Signed => {
            let Some(token) = token else {
                return Err(missing_token());
            };
            playback_token::verify(&state.db, &token, &playback.id, audience)
                .await
                .map_err(IntoResponse::into_response)?;
            Some(token)
        }
    };
    let asset = state
        .db
        .get_asset(&asset_id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| NO_SUCH_ID.into_response())?;
    match asset.status {
        AssetStatus::Ready => Ok(Target {
            playback_id: playback.id,
            asset,
            token,
            client,
        }),
        AssetStatus::Preparing => Err(ApiError::Conflict(
            "the asset is still being prepared: its images are made once it is ready",
        )
        .into_response()),
        AssetStatus::Errored => Err(ApiError::Conflict(
            "the asset could not be processed, so it has no images",
        )
        .into_response()),
    }
}

fn images_of(state: &AppState) -> Result<&Images, ApiError> {
    state
        .images
        .as_ref()
        .ok_or(ApiError::NotFound("this server makes no images"))
}

/// The object at `key`, or `None` when there is none.
async fn stored(store: &dyn ObjectStore, key: &ObjectKey) -> Result<Option<Bytes>, ApiError> {
    match store.get(key).await {
        Ok(body) => Ok(Some(body)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The first of `keys` that exists, else what `render` makes, cached at `cache_key`. Cached
/// renders are counted per asset; those past its bounds are deleted, least recently used
/// first.
async fn stored_or_rendered<F>(
    state: &AppState,
    target: &Target,
    keys: &[ObjectKey],
    cache_key: &ObjectKey,
    render: F,
) -> Result<Bytes, ApiError>
where
    F: std::future::Future<Output = Result<Vec<u8>, ApiError>>,
{
    for key in keys {
        if let Some(body) = stored(&*state.store, key).await? {
            return Ok(body);
        }
    }
    let body = match stored(&*state.store, cache_key).await? {
        Some(body) => body,
        None => {
            let body = Bytes::from(render.await?);
            state.store.put(cache_key, body.clone()).await?;
            body
        }
    };
    if let Some(images) = &state.images {
        let evicted =
            lock(&images.cached).touch(&target.asset.id, cache_key.as_str(), body.len() as u64);
        for key in evicted {
            // Best effort: a render left behind is only a cache entry.
            if let Ok(key) = ObjectKey::parse(&key) {
                let _ = state.store.delete(&key).await;
            }
        }
    }
    Ok(body)
}

/// A `200` with the image, or `304` when the client's `If-None-Match` already holds it.
fn respond(request: &HeaderMap, body: Bytes, content_type: &'static str, signed: bool) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..18]));
    let cache = if signed { SIGNED_CACHE } else { PUBLIC_CACHE };
    let headers = [
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("an ETag of base64 characters is a header value"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `time` clamped to the asset's duration, as the render clamps it.
fn clamp_to_duration(asset: &Asset, time: Duration) -> Duration {
    asset
        .duration_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(time, |ms| time.min(Duration::from_millis(ms)))
}

fn dimension_key(value: Option<u32>) -> String {
    value.map_or_else(|| "auto".to_owned(), |pixels| pixels.to_string())
}

/// A thumbnail: the poster frame, or the picture at `time`, shaped as asked.
#[utoipa::path(get, path = "/thumbnails/{file}", tag = "images",
    params(
        ("file" = String, Path, description = "`{playback_id}.jpg`, `.png` or `.webp`"),
        ("time" = Option<f64>, Query, description = "Seconds from the start (fractions \
            allowed); past the end gives the last picture. Default: the poster frame (10 % \
            of the duration, at most 5 s)"),
        ("width" = Option<u32>, Query, description = "Width in pixels, 16 to 4096; alone, the \
            height follows the aspect ratio"),
        ("height" = Option<u32>, Query, description = "Height in pixels, 16 to 4096"),
        ("fit_mode" = Option<String>, Query, description = "With width and height: `preserve` \
            (default: inside the box), `crop` (fill it, centre kept), `pad` (black bars) or \
            `stretch`"),
        ("token" = Option<String>, Query, description = "Playback token (aud `thumbnail`), \
            required for a signed playback id"),
    ),
    responses(
        (status = 200, description = "The image", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "A parameter out of bounds, named", body = crate::error::ErrorBody),
        (status = 401, description = "A signed playback id asked without `?token=`", body = crate::error::ErrorBody),
        (status = 403, description = "A playback token that is invalid or for something else", body = crate::error::ErrorBody),
        (status = 404, description = "No such playback id, or a live stream's", body = crate::error::ErrorBody),
        (status = 409, description = "The asset is not ready", body = crate::error::ErrorBody),
    ))]
pub async fn thumbnail(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (playback_id, extension) = split_file(&file).map_err(IntoResponse::into_response)?;
    let format = StillFormat::from_extension(extension).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "thumbnails are jpg, png or webp, not {extension:?}"
        ))
        .into_response()
    })?;
    let mut params = parse_query(
        query.as_deref(),
        &["time", "width", "height", "fit_mode", "token"],
    )
    .map_err(IntoResponse::into_response)?;
    let token = params.remove("token");
    let spec = thumbnail_spec(&params, format).map_err(IntoResponse::into_response)?;
    let client = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let target = resolve(
        &state,
        playback_id,
        token,
        PlaybackAudience::Thumbnail,
        client,
    )
    .await?;
    let body = thumbnail_body(&state, &target, spec, params.is_empty())
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(respond(
        &headers,
        body,
        format.content_type(),
        target.signed(),
    ))
}

pub fn thumbnail_spec(
    params: &BTreeMap<&'static str, String>,
    format: StillFormat,
) -> Result<ThumbnailSpec, ApiError> {
    let dimensions = MIN_IMAGE_DIMENSION..=MAX_THUMBNAIL_DIMENSION;
    Ok(ThumbnailSpec {
        time: (params.get("time"))
            .map(|v| parse_time("time", v))
            .transpose()?,
        width: (params.get("width"))
            .map(|v| parse_bounded("width", v, dimensions.clone(), "pixels"))
            .transpose()?,
        height: (params.get("height"))
            .map(|v| parse_bounded("height", v, dimensions.clone(), "pixels"))
            .transpose()?,
        fit_mode: (params.get("fit_mode"))
            .map(|v| parse_fit_mode(v))
            .transpose()?
            .unwrap_or_default(),
        format,
    })
}

async fn thumbnail_body(
    state: &AppState,
    target: &Target,
    mut spec: ThumbnailSpec,
    defaults_only: bool,
) -> Result<Bytes, ApiError> {
    spec.time = spec.time.map(|time| clamp_to_duration(&target.asset, time));
    // The fit mode matters only when both sides are given.
    if spec.width.is_none() || spec.height.is_none() {
        spec.fit_mode = FitMode::Preserve;
    }
    let poster = if defaults_only && spec.format == StillFormat::Jpeg {
        vec![target.made("poster.jpg")?]
    } else {
        Vec::new()
    };
    let name = format!(
        "thumbnail_t{}_w{}_h{}_{}.{}",
        spec.time
            .map_or_else(|| "poster".to_owned(), |t| t.as_millis().to_string()),
        dimension_key(spec.width),
        dimension_key(spec.height),
        spec.fit_mode.as_str(),
        spec.format.extension(),
    );
    let cache_key = target.cached(&name)?;
    let render = async move {
        let job =
            move |renderer: &dyn ImageRenderer, source: &Path| renderer.thumbnail(source, &spec);
        images_of(state)?.render(&*state.store, target, job).await
    };
    stored_or_rendered(state, target, &poster, &cache_key, render).await
}

/// A storyboard: the WebVTT (`.vtt`) whose cues point at tiles of the sprite
/// (`/storyboards/{playback_id}.jpg#xywh=x,y,w,h`), or the sprite itself.
#[utoipa::path(get, path = "/storyboards/{file}", tag = "images",
    params(
        ("file" = String, Path, description = "`{playback_id}.vtt`, or the sprite: \
            `{playback_id}.jpg`, `.png` or `.webp`"),
        ("token" = Option<String>, Query, description = "Playback token (aud `storyboard`), \
            required for a signed playback id; the WebVTT's sprite URLs carry it on"),
    ),
    responses(
        (status = 200, description = "WebVTT (`text/vtt`) or the sprite image", body = Vec<u8>),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "An unknown format or parameter", body = crate::error::ErrorBody),
        (status = 401, description = "A signed playback id asked without `?token=`", body = crate::error::ErrorBody),
        (status = 403, description = "A playback token that is invalid or for something else", body = crate::error::ErrorBody),
        (status = 404, description = "No such playback id, or a live stream's", body = crate::error::ErrorBody),
        (status = 409, description = "The asset is not ready", body = crate::error::ErrorBody),
    ))]
pub async fn storyboard(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (playback_id, extension) = split_file(&file).map_err(IntoResponse::into_response)?;
    let part = match extension {
        "vtt" => StoryboardPart::Vtt,
        other => StoryboardPart::Sprite(StillFormat::from_extension(other).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "storyboards are vtt, or jpg, png or webp sprites, not {other:?}"
            ))
            .into_response()
        })?),
    };
    let mut params =
        parse_query(query.as_deref(), &["token"]).map_err(IntoResponse::into_response)?;
    let token = params.remove("token");
    let client = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let target = resolve(
        &state,
        playback_id,
        token,
        PlaybackAudience::Storyboard,
        client,
    )
    .await?;
    let body = storyboard_part(&state, &target, part)
        .await
        .map_err(IntoResponse::into_response)?;
    let (body, content_type) = match part {
        StoryboardPart::Vtt => (
            Bytes::from(vtt_pointing_at_sprite(&state, &target, &body)),
            VTT_CONTENT_TYPE,
        ),
        StoryboardPart::Sprite(format) => (body, format.content_type()),
    };
    Ok(respond(&headers, body, content_type, target.signed()))
}

/// One of the two files of a storyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoryboardPart {
    /// The WebVTT, as stored: its cues name the sprite [`SPRITE_NAME`].
    Vtt,
    Sprite(StillFormat),
}

impl StoryboardPart {
    fn name(self) -> String {
        match self {
            Self::Vtt => "storyboard.vtt".to_owned(),
            Self::Sprite(format) => format!("storyboard.{}", format.extension()),
        }
    }
}

/// A storyboard part: the worker's (the WebVTT and the JPEG sprite), a cached one, or a
/// render. Sprites of other formats are rendered with the worker's layout, so the one WebVTT
/// fits every sprite; a render caches both parts, whichever was asked.
async fn storyboard_part(
    state: &AppState,
    target: &Target,
    part: StoryboardPart,
) -> Result<Bytes, ApiError> {
    let worker = match part {
        StoryboardPart::Vtt | StoryboardPart::Sprite(StillFormat::Jpeg) => {
            vec![target.made(&part.name())?]
        }
        StoryboardPart::Sprite(_) => Vec::new(),
    };
    let cache_key = target.cached(&part.name())?;
    let sprite_format = match part {
        StoryboardPart::Sprite(format) => format,
        StoryboardPart::Vtt => StillFormat::Jpeg,
    };
    let render = async move {
        let job = move |renderer: &dyn ImageRenderer, source: &Path| {
            renderer.storyboard(source, sprite_format, SPRITE_NAME)
        };
        let board = images_of(state)?.render(&*state.store, target, job).await?;
        let (asked, other, other_part) = match part {
            StoryboardPart::Vtt => (
                board.vtt.into_bytes(),
                board.sprite,
                StoryboardPart::Sprite(sprite_format),
            ),
            StoryboardPart::Sprite(_) => {
                (board.sprite, board.vtt.into_bytes(), StoryboardPart::Vtt)
            }
        };
        let other_key = target.cached(&other_part.name())?;
        state.store.put(&other_key, Bytes::from(other)).await?;
        Ok(asked)
    };
    stored_or_rendered(state, target, &worker, &cache_key, render).await
}

/// A stored WebVTT with each cue's sprite name replaced by the sprite's absolute URL, which
/// carries the token of a signed playback id.
fn vtt_pointing_at_sprite(state: &AppState, target: &Target, vtt: &[u8]) -> Vec<u8> {
    let mut url = format!(
        "{}/storyboards/{}.jpg",
        state.public_url.trim_end_matches('/'),
        target.playback_id
    );
    if let Some(token) = &target.token {
        // A verified JWT holds only URL-safe characters.
        url = format!("{url}?token={token}");
    }
    let text = String::from_utf8_lossy(vtt);
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        match line.split_once("#xywh=") {
            Some((_, fragment)) => {
                out.push_str(&url);
                out.push_str("#xywh=");
                out.push_str(fragment);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// An animated preview of a span of the asset.
#[utoipa::path(get, path = "/animated/{file}", tag = "images",
    params(
        ("file" = String, Path, description = "`{playback_id}.gif` or `{playback_id}.webp`"),
        ("start" = Option<f64>, Query, description = "Seconds from the start of the asset. \
            Default 0"),
        ("end" = Option<f64>, Query, description = "End of the span, at most 10 s after \
            `start`; clamped to the end of the asset. Default: `start` + 5 s"),
        ("width" = Option<u32>, Query, description = "Width in pixels, 16 to 640. Default 320 \
            (when no height is given)"),
        ("height" = Option<u32>, Query, description = "Height in pixels, 16 to 640"),
        ("fps" = Option<u32>, Query, description = "Frames per second, 1 to 30. Default 15"),
        ("token" = Option<String>, Query, description = "Playback token (aud `animated`), \
            required for a signed playback id"),
    ),
    responses(
        (status = 200, description = "The animation", body = Vec<u8>, content_type = "image/gif"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, description = "A parameter out of bounds, named", body = crate::error::ErrorBody),
        (status = 401, description = "A signed playback id asked without `?token=`", body = crate::error::ErrorBody),
        (status = 403, description = "A playback token that is invalid or for something else", body = crate::error::ErrorBody),
        (status = 404, description = "No such playback id, or a live stream's", body = crate::error::ErrorBody),
        (status = 409, description = "The asset is not ready", body = crate::error::ErrorBody),
    ))]
pub async fn animated(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (playback_id, extension) = split_file(&file).map_err(IntoResponse::into_response)?;
    let format = AnimatedFormat::from_extension(extension).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "animated previews are gif or webp, not {extension:?}"
        ))
        .into_response()
    })?;
    let mut params = parse_query(
        query.as_deref(),
        &["start", "end", "width", "height", "fps", "token"],
    )
    .map_err(IntoResponse::into_response)?;
    let token = params.remove("token");
    let spec = animated_spec(&params, format).map_err(IntoResponse::into_response)?;
    let client = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let target = resolve(
        &state,
        playback_id,
        token,
        PlaybackAudience::Animated,
        client,
    )
    .await?;
    let body = animated_body(&state, &target, spec)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(respond(
        &headers,
        body,
        format.content_type(),
        target.signed(),
    ))
}

pub fn animated_spec(
    params: &BTreeMap<&'static str, String>,
    format: AnimatedFormat,
) -> Result<AnimatedSpec, ApiError> {
    let start = (params.get("start"))
        .map(|v| parse_time("start", v))
        .transpose()?
        .unwrap_or_default();
    let end = (params.get("end"))
        .map(|v| parse_time("end", v))
        .transpose()?
        .unwrap_or(start + DEFAULT_ANIMATED_SPAN);
    if end <= start {
        return Err(ApiError::InvalidRequest(
            "end must come after start".to_owned(),
        ));
    }
    if end - start > MAX_ANIMATED_SPAN {
        return Err(ApiError::InvalidRequest(format!(
            "end must be at most {} s after start",
            MAX_ANIMATED_SPAN.as_secs()
        )));
    }
    let dimensions = MIN_IMAGE_DIMENSION..=MAX_ANIMATED_DIMENSION;
    Ok(AnimatedSpec {
        start,
        end,
        width: (params.get("width"))
            .map(|v| parse_bounded("width", v, dimensions.clone(), "pixels"))
            .transpose()?,
        height: (params.get("height"))
            .map(|v| parse_bounded("height", v, dimensions.clone(), "pixels"))
            .transpose()?,
        fps: (params.get("fps"))
            .map(|v| parse_bounded("fps", v, 1..=MAX_ANIMATED_FPS, "frames per second"))
            .transpose()?
            .unwrap_or(DEFAULT_ANIMATED_FPS),
        format,
    })
}

async fn animated_body(
    state: &AppState,
    target: &Target,
    mut spec: AnimatedSpec,
) -> Result<Bytes, ApiError> {
    // A start past the end of the asset is its last picture (as a player clamps a seek), and
    // the render stops at the end: spans that differ only past it are one image.
    let span = spec.end - spec.start;
    spec.start = clamp_to_duration(&target.asset, spec.start);
    let end = match clamp_to_duration(&target.asset, spec.end) {
        clamped if clamped > spec.start => clamped,
        _ => spec.start + span,
    };
    spec.end = end;
    let name = format!(
        "animated_s{}_e{}_w{}_h{}_f{}.{}",
        spec.start.as_millis(),
        end.as_millis(),
        dimension_key(spec.width),
        dimension_key(spec.height),
        spec.fps,
        spec.format.extension(),
    );
    let cache_key = target.cached(&name)?;
    let render = async move {
        let job =
            move |renderer: &dyn ImageRenderer, source: &Path| renderer.animated(source, &spec);
        images_of(state)?.render(&*state.store, target, job).await
    };
    stored_or_rendered(state, target, &[], &cache_key, render).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::AssetId;
    use sluice_storage::AssetInput;

    #[test]
    fn query_parameters_are_known_single_and_named_when_wrong() {
        let allowed = ["time", "width", "token"];
        let params = parse_query(Some("time=1.5&width=320"), &allowed).unwrap();
        assert_eq!(params.get("time").map(String::as_str), Some("1.5"));
        let unknown = parse_query(Some("widht=3"), &allowed).unwrap_err();
        assert!(unknown.to_string().contains("unknown parameter \"widht\""));
        let twice = parse_query(Some("time=1&time=2"), &allowed).unwrap_err();
        assert!(twice
            .to_string()
            .contains("\"time\" is given more than once"));
        assert!(parse_query(None, &allowed).unwrap().is_empty());
    }

    #[test]
    fn only_so_many_requests_wait_for_a_render_slot() {
        let waiting = AtomicUsize::new(0);
        let queued: Vec<_> = (0..MAX_WAITING_RENDERS)
            .map(|_| WaitingRender::join(&waiting).expect("room in the queue"))
            .collect();
        assert!(WaitingRender::join(&waiting).is_none(), "the queue is full");
        drop(queued);
        assert_eq!(waiting.load(Ordering::Acquire), 0);
        assert!(WaitingRender::join(&waiting).is_some());
    }

    #[test]
    fn values_are_bounded_and_errors_name_the_parameter() {
        // Times are taken down to a tenth of a second: nearby times are one cached image.
        assert_eq!(
            parse_time("time", "1.2345").unwrap(),
            Duration::from_millis(1200)
        );
        assert_eq!(
            parse_time("time", "1.29").unwrap(),
            Duration::from_millis(1200)
        );
        assert_eq!(
            parse_time("time", "0.3").unwrap(),
            Duration::from_millis(300)
        );
        for bad in ["-1", "abc", "NaN", "inf", "1e9"] {
            let error = parse_time("time", bad).unwrap_err().to_string();
            assert!(error.starts_with("time must be"), "{error}");
        }
        assert_eq!(
            parse_bounded("width", "16", 16..=640, "pixels").unwrap(),
            16
        );
        for bad in ["15", "641", "1.5", "-3", ""] {
            let error = parse_bounded("width", bad, 16..=640, "pixels")
                .unwrap_err()
                .to_string();
            assert!(error.contains("width must be a whole number of pixels from 16 to 640"));
        }
        assert!(parse_fit_mode("smartcrop")
            .unwrap_err()
            .to_string()
            .contains("fit_mode must be preserve, crop, pad or stretch"));
    }

    #[test]
    fn animated_spans_default_and_are_bounded() {
        let params = |pairs: &[(&'static str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let spec = animated_spec(&params(&[]), AnimatedFormat::Gif).unwrap();
        assert_eq!(
            (spec.start, spec.end, spec.fps, spec.width),
            (Duration::ZERO, Duration::from_secs(5), 15, None)
        );
        let later = animated_spec(&params(&[("start", "8")]), AnimatedFormat::Gif).unwrap();
        assert_eq!(later.end, Duration::from_secs(13));
        for (pairs, words) in [
            (
                vec![("start", "3"), ("end", "2")],
                "end must come after start",
            ),
            (vec![("end", "10.5")], "at most 10 s after start"),
            (vec![("fps", "31")], "fps must be a whole number"),
            (vec![("width", "641")], "width must be"),
        ] {
            let error = animated_spec(&params(&pairs), AnimatedFormat::Gif)
                .unwrap_err()
                .to_string();
            assert!(error.contains(words), "{error}");
        }
    }

    fn asset_from_url(id: &str) -> Asset {
        Asset {
            id: AssetId::parse(id).unwrap(),
            status: AssetStatus::Ready,
            error: None,
            progress: 100,
            input: AssetInput::Url {
                url: "https://example.com/a.mp4".to_owned(),
            },
            settings: None,
            duration_ms: Some(1000),
            tracks: serde_json::json!([]),
            source_metadata: serde_json::json!({}),
            renditions: serde_json::json!([]),
            playable: true,
            live_stream_id: None,
            session_id: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn source_copies_are_reused_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = sluice_storage::LocalStore::new(dir.path().join("objects"));
        let assets: Vec<Asset> = ["asset_a", "asset_b", "asset_c"]
            .into_iter()
            .map(asset_from_url)
            .collect();
        for asset in &assets {
            let key = asset.source_key().unwrap();
            store.put(&key, Bytes::from(vec![7; 10])).await.unwrap();
        }
        // Room for two 10-byte copies.
        let cache = Arc::new(SourceCache {
            dir: dir.path().join("sources"),
            max_bytes: 25,
            entries: Mutex::new(CacheEntries::default()),
            download: tokio::sync::Mutex::new(()),
        });
        let copy = |name: &str| cache.dir.join(name);

        let a = cache.lease(&store, &assets[0]).await.unwrap();
        assert_eq!(std::fs::read(&a.path).unwrap(), vec![7; 10]);
        drop(a);
        drop(cache.lease(&store, &assets[1]).await.unwrap());
        // A used again: B is now the least recently used.
        let _a = cache.lease(&store, &assets[0]).await.unwrap();
        drop(cache.lease(&store, &assets[2]).await.unwrap());
        assert!(copy("asset_a").exists() && copy("asset_c").exists());
        assert!(
            !copy("asset_b").exists(),
            "the least recently used copy went"
        );

        // A is leased: it stays even when it is the oldest.
        drop(cache.lease(&store, &assets[1]).await.unwrap());
        assert!(copy("asset_a").exists(), "a copy in use is never removed");
        assert!(!copy("asset_c").exists());
        // A source that is not in the store is not found, and leaves nothing behind.
        let missing = cache.lease(&store, &asset_from_url("asset_d")).await;
        assert!(matches!(missing, Err(ApiError::Store(e)) if e.is_not_found()));
        assert!(!copy("asset_d").exists() && !copy(".asset_d.part").exists());
    }

    #[test]
    fn file_names_split_into_id_and_format() {
        assert_eq!(split_file("abc.jpg").unwrap(), ("abc", "jpg"));
        assert_eq!(split_file("a.b.png").unwrap(), ("a.b", "png"));
        assert!(split_file("abc").is_err());
        assert!(split_file(".jpg").is_err());
    }
}
