//! Direct uploads: `/v1/uploads` (create, list, get, cancel; API key auth) and the upload URL
//! `/uploads/{id}/{token}` a client sends the file to, authenticated by the token in it alone.
//!
//! The upload URL takes the whole file in one `PUT`, or resumably with tus 1.0.0 (`OPTIONS`,
//! creation `POST`, `HEAD`, `PATCH`, checksums, expiration, termination `DELETE`; headers read
//! by `tus`). Bytes stream to a spool file (`{spool_dir}/{id}.part`) as they arrive, never held
//! whole in memory; the stored offset advances only over bytes synced to disk, so a connection
//! cut mid-body keeps what arrived and the client resumes from `HEAD`'s offset. One request
//! writes an upload at a time. Once the offset reaches the length the spool file is moved to
//! the object store (`uploads/{id}/source`) and `Db::complete_upload` creates the asset and its
//! processing job. Uploads left incomplete past their expiry are timed out by a sweeper task
//! ([`spawn_upload_sweeper`]), which also drops their spool files.

use std::collections::HashSet;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::Request;
use axum::extract::{Query, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sluice_storage::layout;
use sluice_storage::UploadId;
use sluice_storage::{
    AssetSettings, EventType, NewEvent, NewUpload, Permission, Upload, UploadStatus,
};
use subtle::ConstantTimeEq;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use utoipa::ToSchema;

use crate::assets::{self, AssetSettingsRequest, ErrorMessage};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::tus::{self, Checksum, ChecksumHasher};
use crate::AppState;

/// How long an upload URL accepts bytes when the request names no `timeout`, in seconds.
pub const DEFAULT_UPLOAD_TIMEOUT_S: u64 = 3600;
/// Longest `timeout` a request may ask for: a week, in seconds.
pub const MAX_UPLOAD_TIMEOUT_S: u64 = 7 * 24 * 3600;
/// Bytes written between two syncs of the spool file (each one advancing the stored offset)
/// while a body without a checksum arrives.
const SYNC_EVERY_BYTES: i64 = 8 * 1024 * 1024;
/// A body that sends nothing for this long is treated as a cut connection, so a stalled
/// client does not hold its upload's writer slot forever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const NOT_FOUND: ApiError = ApiError::NotFound("upload not found");

/// How uploads are received, from the server's `[uploads]` configuration.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Where incomplete uploads are spooled, one `{id}.part` file each.
    pub spool_dir: PathBuf,
    /// Largest upload accepted, in bytes: the default and the upper bound of `max_size`.
    pub max_size: i64,
    /// Seconds an upload URL stays open when the request names no `timeout`.
    pub default_timeout_s: u64,
    /// How often the sweeper looks for expired uploads.
    pub sweep_interval: Duration,
}

/// The upload settings with the set of uploads a request is writing right now.
#[derive(Debug, Clone)]
pub struct Uploads {
    settings: Arc<UploadSettings>,
    writing: Arc<Mutex<HashSet<String>>>,
}

impl Uploads {
    pub fn new(settings: UploadSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            writing: Arc::default(),
        }
    }

    pub fn settings(&self) -> &UploadSettings {
        &self.settings
    }

    /// The spool file of upload `id` (a server-made id, so a plain file name).
    fn spool_path(&self, id: &str) -> PathBuf {
        self.settings.spool_dir.join(format!("{id}.part"))
    }

    /// The right to write upload `id`, held until the guard drops; `None` while another
    /// request holds it.
    fn start_writing(&self, id: &str) -> Option<WritingGuard> {
        let mut writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        writing.insert(id.to_owned()).then(|| WritingGuard {
            writing: self.writing.clone(),
            id: id.to_owned(),
        })
    }
}

/// One request's exclusive right to write an upload; see [`Uploads::start_writing`].
struct WritingGuard {
    writing: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for WritingGuard {
    fn drop(&mut self) {
        let mut writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        writing.remove(&self.id);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Settings of the asset the upload becomes.
    #[serde(default)]
    new_asset_settings: Option<AssetSettingsRequest>,
    /// Largest file accepted, in bytes (default and upper bound: the server's
    /// `[uploads] max_size_bytes`).
    #[schema(example = 1_073_741_824)]
    max_size: Option<i64>,
    /// Seconds the upload URL accepts bytes (1 to 604800, default 3600).
    #[schema(example = 3600)]
    timeout: Option<u64>,
}

/// An upload: send the file to `url` with one `PUT`, or with tus 1.0.0 (creation `POST` to
/// `url`, then `PATCH`es).
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    #[schema(example = "upload_Ab3dE5fG7hJ9kL1mN3pQ")]
    id: String,
    /// `waiting`, `asset_created`, `errored`, `cancelled` or `timed_out`.
    #[schema(value_type = String, example = "waiting")]
    status: UploadStatus,
    /// Where to send the file; the token in it is the only credential needed, so it is shown
    /// only when the upload is created, or fetched alone by a key with `assets:write`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "http://localhost:8080/uploads/upload_Ab3dE5fG7hJ9kL1mN3pQ/q8Wm2LxR0vT5nB7cY1zK"
    )]
    url: Option<String>,
    #[schema(example = 1_073_741_824)]
    max_size: i64,
    #[schema(value_type = Object)]
    new_asset_settings: AssetSettings,
    /// The asset made from the upload, once it is complete.
    asset_id: Option<String>,
    error: Option<ErrorMessage>,
    #[schema(example = "2026-06-01T11:00:00.123456Z")]
    expires_at: DateTime<Utc>,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
}

impl UploadView {
    /// The upload with its URL.
    fn with_url(state: &AppState, upload: Upload) -> Self {
        let url = upload_url(state, &upload);
        Self {
            url: Some(url),
            ..Self::from(upload)
        }
    }
}

impl From<Upload> for UploadView {
    /// The upload without its URL (lists, events).
    fn from(upload: Upload) -> Self {
        Self {
            id: upload.id.into(),
            status: upload.status,
            url: None,
            max_size: upload.max_size,
            new_asset_settings: upload.settings,
            asset_id: upload.asset_id.map(String::from),
            error: upload.error.map(|message| ErrorMessage { message }),
            expires_at: upload.expires_at,
            created_at: upload.created_at,
        }
    }
}

fn upload_url(state: &AppState, upload: &Upload) -> String {
    format!(
        "{}/uploads/{}/{}",
        state.public_url.trim_end_matches('/'),
        upload.id,
        upload.token
    )
}

/// Publishes `event_type` about `upload`, without its URL. The upload has changed for good
/// when this runs, so a failure to record the event is logged rather than failing the request.
async fn publish(state: &AppState, event_type: EventType, upload: &Upload) {
    let data = match serde_json::to_value(UploadView::from(upload.clone())) {
        Ok(data) => data,
        Err(e) => {
            error!(upload_id = %upload.id, error = %e, "Could not serialise an upload event.");
            return;
        }
    };
    if let Err(e) = state
        .events
        .publish(NewEvent::new(event_type, &upload.id, data))
        .await
    {
        error!(upload_id = %upload.id, event = event_type.as_str(), error = %e,
            "Could not record an upload event.");
    }
}

/// Removes an upload's spool file; a missing one is fine.
async fn remove_spool(state: &AppState, id: &str) {
    let path = state.uploads.spool_path(id);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "Could not remove a spool file."),
    }
}

/// Creates an upload: a URL to send one file to, which becomes an asset once complete.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    request_body = CreateUpload,
    responses(
        (status = 201, description = "Created", body = Envelope<UploadView>),
        (status = 400, description = "Invalid request", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateUpload>,
) -> Result<(StatusCode, Json<Envelope<UploadView>>), ApiError> {
    let settings = state.uploads.settings();
    let asset_settings = request
        .new_asset_settings
        .unwrap_or_default()
        .validate(state.speech_unavailable.as_deref())?;
    let max_size = request.max_size.unwrap_or(settings.max_size);
    if !(1..=settings.max_size).contains(&max_size) {
        return Err(ApiError::InvalidRequest(format!(
            "max_size: must be between 1 and {} bytes",
            settings.max_size
        )));
    }
    let timeout = request.timeout.unwrap_or(settings.default_timeout_s);
    if !(1..=MAX_UPLOAD_TIMEOUT_S).contains(&timeout) {
        return Err(ApiError::InvalidRequest(format!(
            "timeout: must be between 1 and {MAX_UPLOAD_TIMEOUT_S} seconds"
        )));
    }
    let timeout = chrono::Duration::seconds(i64::try_from(timeout).map_err(ApiError::internal)?);
    let upload = state
        .db
        .create_upload(&NewUpload {
            settings: asset_settings,
            max_size,
            expires_at: Utc::now() + timeout,
        })
        .await?;
    publish(&state, EventType::UploadCreated, &upload).await;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: UploadView::with_url(&state, upload),
        }),
    ))
}

/// One upload, with its URL when the caller may write assets.
#[utoipa::path(get, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "Upload id (`upload_…`)")),
    responses(
        (status = 200, description = "The upload", body = Envelope<UploadView>),
        (status = 404, description = "No such upload", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<UploadView>>, ApiError> {
    let upload = find(&state, &id).await?;
    // The URL's token lets its holder send the file or cancel the upload: a write.
    let data = if Permission::AssetsWrite.is_granted_by(&principal.permissions) {
        UploadView::with_url(&state, upload)
    } else {
        UploadView::from(upload)
    };
    Ok(Json(Envelope { data }))
}

/// Uploads, newest first, a page at a time; without their URLs.
#[utoipa::path(get, path = "/v1/uploads", tag = "uploads",
    params(PageParams),
    responses(
        (status = 200, description = "A page of uploads", body = PageEnvelope<UploadView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<UploadView>>, ApiError> {
    let Query(params) = params?;
    let page = state
        .db
        .list_uploads(params.limit()?, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(UploadView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancels a waiting upload: its URL stops accepting bytes and what arrived is dropped.
#[utoipa::path(put, path = "/v1/uploads/{id}/cancel", tag = "uploads",
    params(("id" = String, Path, description = "Upload id (`upload_…`)")),
    responses(
        (status = 200, description = "The cancelled upload", body = Envelope<UploadView>),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "The upload is no longer waiting", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<UploadView>>, ApiError> {
    let upload = find(&state, &id).await?;
    let upload = terminate(&state, upload).await?;
    Ok(Json(Envelope {
        data: UploadView::with_url(&state, upload),
    }))
}

/// Cancels `upload` if it is still waiting: drops its spool file and publishes
/// `upload.cancelled`. A request writing it notices when it next records its offset.
async fn terminate(state: &AppState, upload: Upload) -> Result<Upload, ApiError> {
    if !state
        .db
        .set_upload_status(&upload.id, UploadStatus::Cancelled, None)
        .await?
    {
        return Err(ApiError::Conflict(
            "only a waiting upload can be cancelled; this one is finished",
        ));
    }
    remove_spool(state, &upload.id).await;
    let upload = state.db.get_upload(&upload.id).await?.ok_or(NOT_FOUND)?;
    publish(state, EventType::UploadCancelled, &upload).await;
    Ok(upload)
}

/// Times out `upload`, past its expiry while waiting: drops its spool file and publishes
/// `upload.errored`. False when it had left `waiting` meanwhile.
async fn expire(state: &AppState, upload: &Upload) -> Result<bool, ApiError> {
    if !state
        .db
        .set_upload_status(
            &upload.id,
            UploadStatus::TimedOut,
            Some("the upload expired before the whole file arrived"),
        )
        .await?
    {
        return Ok(false);
    }
    remove_spool(state, &upload.id).await;
    if let Some(upload) = state.db.get_upload(&upload.id).await? {
        publish(state, EventType::UploadErrored, &upload).await;
    }
    info!(upload_id = %upload.id, "Upload timed out.");
    Ok(true)
}

/// Starts the task that times out expired uploads every `sweep_interval` until `stopping`
/// turns true.
pub fn spawn_upload_sweeper(
    state: AppState,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(state.uploads.settings().sweep_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = sweep_expired(&state).await {
                error!(error = %e, "Could not time out expired uploads.");
            }
        }
    })
}

/// Times out every waiting upload past its expiry, except one a request is writing right now
/// (its request finishes first; the next sweep or request catches it).
async fn sweep_expired(state: &AppState) -> Result<(), ApiError> {
    for upload in state.db.expired_uploads(Utc::now()).await? {
        let Some(_writing) = state.uploads.start_writing(&upload.id) else {
            continue;
        };
        expire(state, &upload).await?;
    }
    Ok(())
}

/// The upload a path names (an id of another kind names none).
async fn find(state: &AppState, id: &str) -> Result<Upload, ApiError> {
    let id = UploadId::parse(id).map_err(|_| NOT_FOUND)?;
    state.db.get_upload(&id).await?.ok_or(NOT_FOUND)
}

/// The upload the URL `/uploads/{id}/{token}` names; 404 alike for an unknown id and a wrong
/// token, the token compared in constant time.
async fn by_token(state: &AppState, id: &str, token: &str) -> Result<Upload, ApiError> {
    let upload = find(state, id).await?;
    if bool::from(upload.token.as_bytes().ct_eq(token.as_bytes())) {
        Ok(upload)
    } else {
        Err(NOT_FOUND)
    }
}

/// Refuses bytes for an upload that no longer takes them; times out one found past its
/// expiry.
async fn ensure_accepting(state: &AppState, upload: &Upload) -> Result<(), ApiError> {
    match upload.status {
        UploadStatus::Waiting if upload.expires_at <= Utc::now() => {
            expire(state, upload).await?;
            Err(ApiError::Gone("the upload expired"))
        }
        UploadStatus::Waiting => Ok(()),
        UploadStatus::AssetCreated => Err(ApiError::Conflict("the upload is already complete")),
        UploadStatus::Cancelled => Err(ApiError::Gone("the upload was cancelled")),
        UploadStatus::TimedOut => Err(ApiError::Gone("the upload expired")),
        UploadStatus::Errored => Err(ApiError::Gone(
            "the upload failed; its error is shown by the API",
        )),
    }
}

/// Takes the writer slot of the upload the URL names and reads it afresh (an earlier writer
/// may just have moved its offset), checking it still accepts bytes.
async fn start_writing(
    state: &AppState,
    id: &str,
    token: &str,
) -> Result<(Upload, WritingGuard), ApiError> {
    let upload = by_token(state, id, token).await?;
    let guard = state
        .uploads
        .start_writing(&upload.id)
        .ok_or(ApiError::Locked(
            "another request is sending this upload's bytes; retry once it has ended",
        ))?;
    let upload = state.db.get_upload(&upload.id).await?.ok_or(NOT_FOUND)?;
    ensure_accepting(state, &upload).await?;
    Ok((upload, guard))
}

fn header(name: &'static str, value: impl ToString) -> (HeaderName, HeaderValue) {
    let value =
        HeaderValue::from_str(&value.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
    (HeaderName::from_static(name), value)
}

fn expires_header(upload: &Upload) -> (HeaderName, HeaderValue) {
    header(tus::UPLOAD_EXPIRES, tus::http_date(upload.expires_at))
}

/// Sends the whole file in one request, `Content-Length` bytes. A cut connection keeps what
/// arrived, which tus can then resume.
#[utoipa::path(put, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token, from its `url`"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The file arrived; the upload's asset is created", body = Envelope<UploadView>),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "Bytes already arrived, or the upload is complete", body = ErrorBody),
        (status = 410, description = "The upload expired or was cancelled", body = ErrorBody),
        (status = 411, description = "No Content-Length", body = ErrorBody),
        (status = 413, description = "Larger than the upload's max_size", body = ErrorBody),
        (status = 423, description = "Another request is sending this upload", body = ErrorBody),
    ))]
pub async fn put_file(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Envelope<UploadView>>, ApiError> {
    let (upload, guard) = start_writing(&state, &id, &token).await?;
    let length =
        tus::byte_count(&headers, CONTENT_LENGTH.as_str())?.ok_or(ApiError::LengthRequired)?;
    check_length(&upload, length)?;
    if upload.offset > 0 {
        return Err(ApiError::Conflict(
            "bytes of this upload already arrived; resume it with tus (HEAD, then PATCH)",
        ));
    }
    let upload = declare_length(&state, upload, length, None).await?;
    let upload = receive(state.clone(), upload, guard, body, Some(length), None).await?;
    Ok(Json(Envelope {
        data: UploadView::with_url(&state, upload),
    }))
}

/// A declared file size must be positive and within the upload's `max_size`.
fn check_length(upload: &Upload, length: i64) -> Result<(), ApiError> {
    if length == 0 {
        return Err(ApiError::InvalidRequest(
            "the file is empty; an upload needs the bytes of a video".to_owned(),
        ));
    }
    if length > upload.max_size {
        return Err(ApiError::TooLarge(format!(
            "the file is {length} bytes, more than this upload's max_size of {} bytes",
            upload.max_size
        )));
    }
    Ok(())
}

/// Records the file's total size; declaring the size already declared again is fine,
/// another one is a conflict.
async fn declare_length(
    state: &AppState,
    upload: Upload,
    length: i64,
    metadata: Option<&str>,
) -> Result<Upload, ApiError> {
    if upload.length.is_none() {
        state
            .db
            .set_upload_length(&upload.id, length, metadata)
            .await?;
    }
    let upload = state.db.get_upload(&upload.id).await?.ok_or(NOT_FOUND)?;
    if upload.length == Some(length) {
        Ok(upload)
    } else {
        Err(ApiError::Conflict(
            "the upload's length was already declared as another size",
        ))
    }
}

/// tus: what the server supports (`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`: this
/// upload's `max_size`, `Tus-Checksum-Algorithm`).
#[utoipa::path(options, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token"),
    ),
    responses(
        (status = 204, description = "The tus capabilities, in headers"),
        (status = 404, description = "No such upload", body = ErrorBody),
    ))]
pub async fn tus_options(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let upload = by_token(&state, &id, &token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            header(tus::TUS_VERSION_HEADER, tus::TUS_VERSION),
            header(tus::TUS_EXTENSION, tus::TUS_EXTENSIONS),
            header(tus::TUS_MAX_SIZE, upload.max_size),
            header(tus::TUS_CHECKSUM_ALGORITHM, tus::CHECKSUM_ALGORITHMS),
        ],
    )
        .into_response())
}

/// tus creation: declares the file's size (`Upload-Length`) and metadata; the upload's
/// location (`Location`) is this same URL.
#[utoipa::path(post, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
        ("Upload-Length" = i64, Header, description = "The file's size in bytes"),
        ("Upload-Metadata" = Option<String>, Header, description = "tus metadata, kept as sent"),
    ),
    responses(
        (status = 201, description = "Ready for PATCH requests at Location"),
        (status = 400, description = "A missing or malformed header", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "Another length was declared already", body = ErrorBody),
        (status = 410, description = "The upload expired or was cancelled", body = ErrorBody),
        (status = 412, description = "No Tus-Resumable: 1.0.0", body = ErrorBody),
        (status = 413, description = "Upload-Length over the upload's max_size", body = ErrorBody),
    ))]
pub async fn tus_create(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tus::require_resumable(&headers)?;
    if headers.contains_key(tus::UPLOAD_DEFER_LENGTH) {
        return Err(ApiError::InvalidRequest(
            "Upload-Defer-Length is not supported; send Upload-Length".to_owned(),
        ));
    }
    let length = tus::byte_count(&headers, tus::UPLOAD_LENGTH)?.ok_or_else(|| {
        ApiError::InvalidRequest("the Upload-Length header is required".to_owned())
    })?;
    let metadata = tus::metadata(&headers)?;
    let upload = by_token(&state, &id, &token).await?;
    check_length(&upload, length)?;
    ensure_accepting(&state, &upload).await?;
    let upload = declare_length(&state, upload, length, metadata.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        [
            header("location", upload_url(&state, &upload)),
            expires_header(&upload),
        ],
    )
        .into_response())
}

/// tus: where to resume (`Upload-Offset`), the size (`Upload-Length`, once declared) and
/// metadata. Errors carry only their status, as a `HEAD` response has no body.
#[utoipa::path(head, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
    ),
    responses(
        (status = 200, description = "The upload's offset, length and metadata, in headers"),
        (status = 404, description = "No such upload"),
        (status = 410, description = "The upload expired or was cancelled"),
        (status = 412, description = "No Tus-Resumable: 1.0.0"),
    ))]
pub async fn tus_head(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match head_headers(&state, &id, &token, &headers).await {
        Ok(headers) => (StatusCode::OK, headers).into_response(),
        Err(error) => error.status().into_response(),
    }
}

async fn head_headers(
    state: &AppState,
    id: &str,
    token: &str,
    headers: &HeaderMap,
) -> Result<HeaderMap, ApiError> {
    tus::require_resumable(headers)?;
    let mut upload = by_token(state, id, token).await?;
    if upload.status != UploadStatus::AssetCreated {
        ensure_accepting(state, &upload).await?;
    }
    if upload.status == UploadStatus::Waiting && upload.length == Some(upload.offset) {
        // Every byte arrived but the request that wrote the last ones could not finish (the
        // store or the database failed): finish now, since a client seeing its offset at the
        // end will not send again. A request busy writing finishes it itself.
        if let Ok((waiting, _writing)) = start_writing(state, id, token).await {
            if waiting.length == Some(waiting.offset) {
                upload = complete(state, &waiting.id).await?;
            }
        }
    }
    let mut response = HeaderMap::new();
    let (name, value) = header(tus::UPLOAD_OFFSET, upload.offset);
    response.insert(name, value);
    if let Some(length) = upload.length {
        let (name, value) = header(tus::UPLOAD_LENGTH, length);
        response.insert(name, value);
    }
    if let Some(metadata) = &upload.metadata {
        let (name, value) = header(tus::UPLOAD_METADATA, metadata);
        response.insert(name, value);
    }
    if upload.status == UploadStatus::Waiting {
        let (name, value) = expires_header(&upload);
        response.insert(name, value);
    }
    response.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// tus: appends the body at `Upload-Offset`, which must be the upload's offset. With
/// `Upload-Checksum` the bytes are kept only if the whole body matches it.
#[utoipa::path(patch, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
        ("Upload-Offset" = i64, Header, description = "Where the body goes: the upload's offset"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 BASE64` or `sha256 BASE64` of the body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Appended; the new Upload-Offset in headers"),
        (status = 400, description = "A missing or malformed header", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "Upload-Offset is not the upload's offset, or no length was declared", body = ErrorBody),
        (status = 410, description = "The upload expired or was cancelled", body = ErrorBody),
        (status = 412, description = "No Tus-Resumable: 1.0.0", body = ErrorBody),
        (status = 413, description = "The body goes past Upload-Length", body = ErrorBody),
        (status = 415, description = "Not application/offset+octet-stream", body = ErrorBody),
        (status = 423, description = "Another request is sending this upload", body = ErrorBody),
        (status = 460, description = "The body does not match Upload-Checksum; discarded", body = ErrorBody),
    ))]
pub async fn tus_patch(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    tus::require_resumable(&headers)?;
    if headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        != Some(tus::PATCH_CONTENT_TYPE)
    {
        return Err(ApiError::WrongContentType(
            "a PATCH body must have Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = tus::byte_count(&headers, tus::UPLOAD_OFFSET)?.ok_or_else(|| {
        ApiError::InvalidRequest("the Upload-Offset header is required".to_owned())
    })?;
    let checksum = tus::checksum(&headers)?;
    let content_length = tus::byte_count(&headers, CONTENT_LENGTH.as_str())?;
    let (upload, guard) = start_writing(&state, &id, &token).await?;
    let Some(length) = upload.length else {
        return Err(ApiError::Conflict(
            "declare the file's Upload-Length with a tus creation POST first",
        ));
    };
    if offset != upload.offset {
        return Err(ApiError::Conflict(
            "Upload-Offset is not the upload's offset; HEAD the upload to learn where to resume",
        ));
    }
    if content_length.is_some_and(|size| !body_fits(offset, size, length)) {
        return Err(ApiError::TooLarge(
            "the body goes past the upload's Upload-Length".to_owned(),
        ));
    }
    let upload = receive(state, upload, guard, body, content_length, checksum).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            header(tus::UPLOAD_OFFSET, upload.offset),
            expires_header(&upload),
        ],
    )
        .into_response())
}

/// tus termination: cancels the upload, as `PUT /v1/uploads/{id}/cancel` does.
#[utoipa::path(delete, path = "/uploads/{id}/{token}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id (`upload_…`)"),
        ("token" = String, Path, description = "The upload's token"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
    ),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "The upload is already complete", body = ErrorBody),
        (status = 412, description = "No Tus-Resumable: 1.0.0", body = ErrorBody),
    ))]
pub async fn tus_terminate(
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    tus::require_resumable(&headers)?;
    let upload = by_token(&state, &id, &token).await?;
    terminate(&state, upload).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Methods a browser may use on the upload URL.
const CORS_METHODS: &str = "PUT, POST, HEAD, PATCH, OPTIONS, DELETE";
/// Response headers a browser's script may read.
const CORS_EXPOSED: &str = "Location, Upload-Offset, Upload-Length, Upload-Metadata, \
    Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, \
    Tus-Checksum-Algorithm";

/// Middleware of the upload URL: every response says which tus version it speaks (a `412`
/// also which versions are supported) and carries open CORS headers, so tus clients in
/// browsers (tus-js-client) can use it. CORS is written here rather than with tower-http's
/// `CorsLayer` because that layer answers every `OPTIONS` itself as a preflight, which would
/// hide tus's own `OPTIONS`; here a preflight reaches [`tus_options`] and gets both.
pub async fn tus_headers(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let requested_headers = request
        .headers()
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut response = next.run(request).await;
    let precondition_failed = response.status() == StatusCode::PRECONDITION_FAILED;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static(tus::TUS_RESUMABLE),
        HeaderValue::from_static(tus::TUS_VERSION),
    );
    if precondition_failed {
        headers.insert(
            HeaderName::from_static(tus::TUS_VERSION_HEADER),
            HeaderValue::from_static(tus::TUS_VERSION),
        );
    }
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSED),
    );
    if preflight {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        if let Some(requested) = requested_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested);
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

/// Streams `body` into the upload's spool file at its offset, in a task of its own so a client
/// that hangs up cannot cut the bookkeeping short; completes the upload when the last byte is
/// in. Returns the upload as it stands afterwards.
async fn receive(
    state: AppState,
    upload: Upload,
    guard: WritingGuard,
    body: Body,
    content_length: Option<i64>,
    checksum: Option<Checksum>,
) -> Result<Upload, ApiError> {
    tokio::spawn(async move {
        let _guard = guard;
        let received = write_spool(&state, &upload, body, content_length, checksum).await?;
        let length = upload.length.ok_or(ApiError::Internal(
            "an upload was written before its length was declared".to_owned(),
        ))?;
        if received == length {
            complete(&state, &upload.id).await
        } else {
            state.db.get_upload(&upload.id).await?.ok_or(NOT_FOUND)
        }
    })
    .await
    .map_err(ApiError::internal)?
}

/// What became of a body.
enum BodyEnd {
    /// It arrived whole.
    Complete,
    /// The connection broke or stalled, or it ended short of its `Content-Length`.
    Cut,
}

/// Writes `body` to the spool file from the upload's offset, syncing and recording the offset
/// as it goes (or once at the end, when the body has a checksum to pass first). Returns the
/// offset reached.
async fn write_spool(
    state: &AppState,
    upload: &Upload,
    body: Body,
    content_length: Option<i64>,
    checksum: Option<Checksum>,
) -> Result<i64, ApiError> {
    let length = upload.length.unwrap_or(upload.offset);
    let mut spool = Spool::open(state, upload).await?;
    let mut hasher = checksum
        .as_ref()
        .map(|checksum| ChecksumHasher::new(checksum.algorithm));
    let mut stream = body.into_data_stream();
    let end = loop {
        let chunk = match tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break BodyEnd::Complete,
            Ok(Some(Err(_))) | Err(_) => break BodyEnd::Cut,
        };
        let chunk_len = i64::try_from(chunk.len()).map_err(ApiError::internal)?;
        if spool.written + chunk_len > length {
            spool.discard_unsynced().await?;
            return Err(ApiError::TooLarge(
                "the body goes past the upload's Upload-Length; the bytes after the last \
                 recorded offset were discarded"
                    .to_owned(),
            ));
        }
        spool.write(&chunk).await?;
        match &mut hasher {
            Some(hasher) => hasher.update(&chunk),
            None if spool.written - spool.synced >= SYNC_EVERY_BYTES => {
                spool.sync(state).await?;
            }
            None => {}
        }
    };
    let short = content_length.is_some_and(|size| spool.written - upload.offset < size);
    let end = if short { BodyEnd::Cut } else { end };
    if let (Some(hasher), Some(checksum)) = (hasher, checksum) {
        // A checksummed body is kept only whole and matching: one cut short cannot be
        // verified, so none of it is kept either.
        let whole = matches!(end, BodyEnd::Complete);
        if !(whole && hasher.matches(&checksum)) {
            spool.discard_unsynced().await?;
            return if whole {
                Err(ApiError::ChecksumMismatch)
            } else {
                Ok(spool.synced)
            };
        }
    }
    spool.sync(state).await?;
    Ok(spool.synced)
}

/// An upload's spool file open for appending at its offset.
struct Spool {
    upload_id: UploadId,
    path: PathBuf,
    file: BufWriter<File>,
    /// Offset up to which bytes are synced to disk and recorded in the database.
    synced: i64,
    /// Offset up to which bytes are written (perhaps only buffered).
    written: i64,
}

impl Spool {
    /// Opens the spool file at the upload's offset, dropping bytes past it (written but never
    /// recorded, by a request that died). A file shorter than the offset means the bytes were
    /// lost: the upload errors.
    async fn open(state: &AppState, upload: &Upload) -> Result<Self, ApiError> {
        let path = state.uploads.spool_path(&upload.id);
        let spool_dir = &state.uploads.settings().spool_dir;
        tokio::fs::create_dir_all(spool_dir)
            .await
            .map_err(|e| io_failure(spool_dir, e))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(|e| io_failure(&path, e))?;
        let on_disk = file
            .metadata()
            .await
            .map_err(|e| io_failure(&path, e))?
            .len();
        let offset = u64::try_from(upload.offset).map_err(ApiError::internal)?;
        if on_disk < offset {
            let reason = "the bytes received so far were lost on the server; start a new upload";
            if state
                .db
                .set_upload_status(&upload.id, UploadStatus::Errored, Some(reason))
                .await?
            {
                remove_spool(state, &upload.id).await;
                if let Some(upload) = state.db.get_upload(&upload.id).await? {
                    publish(state, EventType::UploadErrored, &upload).await;
                }
            }
            return Err(ApiError::Gone(
                "the bytes received so far were lost on the server; start a new upload",
            ));
        }
        if on_disk > offset {
            file.set_len(offset)
                .await
                .map_err(|e| io_failure(&path, e))?;
        }
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| io_failure(&path, e))?;
        Ok(Self {
            upload_id: upload.id.clone(),
            path,
            file: BufWriter::with_capacity(1024 * 1024, file),
            synced: upload.offset,
            written: upload.offset,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| io_failure(&self.path, e))?;
        self.written += i64::try_from(chunk.len()).map_err(ApiError::internal)?;
        Ok(())
    }

    /// Makes what was written durable, then records it as the upload's offset. Fails when the
    /// upload left `waiting` meanwhile (cancelled, timed out).
    async fn sync(&mut self, state: &AppState) -> Result<(), ApiError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_failure(&self.path, e))?;
        self.file
            .get_ref()
            .sync_data()
            .await
            .map_err(|e| io_failure(&self.path, e))?;
        if self.written == self.synced {
            return Ok(());
        }
        if !state
            .db
            .advance_upload(&self.upload_id, self.synced, self.written)
            .await?
        {
            return Err(ApiError::Gone(
                "the upload stopped accepting bytes while this request was sending them",
            ));
        }
        self.synced = self.written;
        Ok(())
    }

    /// Drops the bytes written since the last sync.
    async fn discard_unsynced(&mut self) -> Result<(), ApiError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_failure(&self.path, e))?;
        let synced = u64::try_from(self.synced).map_err(ApiError::internal)?;
        self.file
            .get_ref()
            .set_len(synced)
            .await
            .map_err(|e| io_failure(&self.path, e))?;
        self.written = self.synced;
        Ok(())
    }
}

/// Whether `size` bytes written at `offset` stay within an upload of `length` bytes (a sum
/// past `i64::MAX` does not).
fn body_fits(offset: i64, size: i64, length: i64) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= length)
}

fn io_failure(path: &Path, error: std::io::Error) -> ApiError {
    ApiError::Internal(format!("upload spool {}: {error}", path.display()))
}

/// Moves a whole upload's file to the object store and makes it an asset, with its processing
/// job; publishes `upload.asset_created` and `asset.created`.
async fn complete(state: &AppState, upload_id: &UploadId) -> Result<Upload, ApiError> {
    let spool = state.uploads.spool_path(upload_id);
    let key = layout::upload_source(upload_id).map_err(ApiError::internal)?;
    state.store.put_file(&key, &spool).await?;
    let Some((upload, asset)) = state.db.complete_upload(upload_id).await? else {
        // Cancelled or timed out in between: the file goes with it.
        let prefix = layout::upload(upload_id).map_err(ApiError::internal)?;
        state.store.delete_prefix(&prefix).await?;
        remove_spool(state, upload_id).await;
        return Err(ApiError::Gone(
            "the upload stopped accepting bytes while this request was sending them",
        ));
    };
    remove_spool(state, upload_id).await;
    info!(upload_id = %upload_id, asset_id = %asset.id, "Upload complete; asset created.");
    publish(state, EventType::UploadAssetCreated, &upload).await;
    assets::publish_created(state, &asset).await;
    Ok(upload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_fits_only_within_the_upload_length_even_near_the_integer_limit() {
        assert!(body_fits(0, 10, 10));
        assert!(!body_fits(5, 6, 10));
        assert!(!body_fits(1, i64::MAX, 10));
        assert!(!body_fits(i64::MAX, 1, i64::MAX));
    }
}
