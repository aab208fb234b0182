//! `/v1/live-streams`: the live-stream lifecycle. Create, get, list (with a status filter),
//! update, delete, reset the stream key, disable/enable, and complete the current session.
//!
//! Every change is published on the event bus; the media plane reacts to those events (kicking
//! the publisher on disable, key reset and delete, ending the session on complete), so the API
//! never reaches into ingest.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_media::Ladder;
use sluice_storage::layout;
use sluice_storage::LiveStreamId;
use sluice_storage::{
    Captions, Db, Dvr, DvrMode, EventType, GeneratedSubtitles, HealthSample, HealthWarning,
    LatencyMode, LiveStream, LiveStreamChanges, LiveStreamFilter, LiveStreamSettings,
    LiveStreamStatus, NewEvent, Permission, MAX_DVR_WINDOW_S, MAX_RECONNECT_WINDOW_S,
    MIN_DVR_WINDOW_S,
};
use tracing::error;
use utoipa::{IntoParams, ToSchema};

use crate::assets::{check_speech_track, validate_generated_subtitles, GeneratedSubtitlesRequest};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::json::{page_limit, ApiJson, ApiPath, Envelope, PageEnvelope};
use crate::playback_ids::{views, PlaybackIdView};
use crate::sessions::SessionView;
use crate::viewers::Watched;
use crate::AppState;

/// Longest accepted live stream name, in characters.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLiveStream {
    #[schema(example = "My show")]
    name: String,
    /// Rendition ladder; absent or null means the server's default.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!([{"name": "720p", "height": 720}]))]
    ladder: Option<Value>,
    /// `standard` (default, 2 s segments), `reduced` (1 s segments) or `low` (low-latency
    /// HLS; packaged as `reduced` until partial segments are served).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "standard")]
    latency_mode: Option<LatencyMode>,
    /// Seconds (0 to 1800; default 60 for `standard`, 0 for `reduced` and `low`) an encoder
    /// may be gone and reconnect into the same session.
    #[serde(default)]
    #[schema(example = 60)]
    reconnect_window_s: Option<u32>,
    /// Keep each session as a recording (default false).
    #[serde(default)]
    #[schema(example = false)]
    record: Option<bool>,
    /// What the live playlists keep (default: the server's short sliding window).
    #[serde(default)]
    dvr: Option<DvrRequest>,
    /// Subtitles generated for each recording (with `record`), as an asset's
    /// `generated_subtitles`: `[{"language_code": "en"}]`.
    #[serde(default)]
    #[schema(example = json!([{"language_code": "en", "name": "English (generated)"}]))]
    generated_subtitles: Option<Vec<GeneratedSubtitlesRequest>>,
    /// Live captions recognised from the speech as it is published: `{"language": "en"}`.
    #[serde(default)]
    captions: Option<CaptionsRequest>,
}

/// Live captions asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptionsRequest {
    /// The language spoken: `en`.
    #[schema(example = "en")]
    language: String,
    /// The rendition's name in players' menus (at most 64 characters; default
    /// `English (live)`).
    #[serde(default)]
    #[schema(example = "English (live)")]
    name: Option<String>,
}

/// The name of a live captions rendition when the request gives none.
pub(crate) const DEFAULT_CAPTIONS_NAME: &str = "English (live)";

/// Checks a live captions request as a generated subtitles track is checked.
fn validate_captions(
    request: CaptionsRequest,
    speech_unavailable: Option<&str>,
) -> Result<Captions, ApiError> {
    let (language, name) = check_speech_track(
        "captions",
        "language",
        request.language,
        request.name,
        DEFAULT_CAPTIONS_NAME,
        speech_unavailable,
    )?;
    Ok(Captions { language, name })
}

/// A `PATCH`: only the fields present change. A new ladder applies from the next session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLiveStream {
    #[schema(example = "Late show")]
    name: Option<String>,
    #[schema(value_type = Option<Object>, example = json!(["source", "360p"]))]
    ladder: Option<Value>,
    #[schema(value_type = Option<String>, example = "low")]
    latency_mode: Option<LatencyMode>,
    #[schema(example = 120)]
    reconnect_window_s: Option<u32>,
    #[schema(example = true)]
    record: Option<bool>,
    dvr: Option<DvrRequest>,
    /// `[]` stops generating subtitles for the recordings to come.
    generated_subtitles: Option<Vec<GeneratedSubtitlesRequest>>,
    /// `null` turns live captions off; changes apply from the next session.
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<CaptionsRequest>)]
    captions: Option<Option<CaptionsRequest>>,
}

/// The DVR setting: `{"mode": "window", "window_s": 1800}` keeps a sliding window of that
/// many seconds (`window_s` absent or null: the server's default window); `{"mode": "event"}`
/// keeps the whole session in an EVENT playlist. Applies from the next session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mode": "window", "window_s": 1800}))]
pub struct DvrRequest {
    /// `window` or `event`.
    #[schema(value_type = String, example = "window")]
    mode: DvrMode,
    /// Seconds of the sliding window, 10 to 43200; only with `window`.
    #[serde(default)]
    #[schema(example = 1800)]
    window_s: Option<u32>,
}

/// The DVR setting as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct DvrView {
    /// `window` or `event`.
    #[schema(value_type = String, example = "window")]
    mode: DvrMode,
    /// Seconds of the sliding window; `null` for the server's default window, or in `event`
    /// mode.
    #[schema(example = 1800)]
    window_s: Option<u32>,
}

impl From<Dvr> for DvrView {
    fn from(dvr: Dvr) -> Self {
        DvrView {
            mode: dvr.mode,
            window_s: dvr.window_s,
        }
    }
}

fn validate_dvr(request: DvrRequest) -> Result<Dvr, ApiError> {
    match (request.mode, request.window_s) {
        (DvrMode::Event, Some(_)) => Err(ApiError::InvalidRequest(
            "dvr.window_s: only a `window` DVR has a length".to_owned(),
        )),
        (DvrMode::Window, Some(seconds))
            if !(MIN_DVR_WINDOW_S..=MAX_DVR_WINDOW_S).contains(&seconds) =>
        {
            Err(ApiError::InvalidRequest(format!(
                "dvr.window_s: must be between {MIN_DVR_WINDOW_S} and {MAX_DVR_WINDOW_S}"
            )))
        }
        (mode, window_s) => Ok(Dvr { mode, window_s }),
    }
}

/// `?status=&limit=&cursor=` of the live stream list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListLiveStreams {
    /// Only streams in this state.
    #[param(value_type = Option<String>, example = "active")]
    status: Option<StatusFilter>,
    /// Items per page, 1 to 100 (default 25).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    Idle,
    Active,
    Disabled,
}

impl From<StatusFilter> for LiveStreamFilter {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Idle => Self::Idle,
            StatusFilter::Active => Self::Active,
            StatusFilter::Disabled => Self::Disabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveStreamView {
    #[schema(example = "ls_Ab3dE5fG7hJ9kL1mN3pQ")]
    id: String,
    #[schema(example = "My show")]
    name: String,
    /// The secret an encoder presents to publish. Shown only to callers holding `live:write`
    /// (a `live:read` caller could otherwise publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "q8Wm2LxR0vT5nB7cY1zK4pD9sF3gH6jA0eU2iO5r")]
    stream_key: Option<String>,
    #[schema(example = "rtmp://localhost:1935/live")]
    rtmp_url: String,
    /// Where a WebRTC publisher (a browser, OBS ≥ 30) sends its WHIP offer, with the stream key
    /// as `Authorization: Bearer`.
    #[schema(example = "http://localhost:8080/whip/ls_Ab3dE5fG7hJ9kL1mN3pQ")]
    whip_url: String,
    /// Ids to play the stream under: `/hls/{id}/master.m3u8`.
    playback_ids: Vec<PlaybackIdView>,
    /// `idle`, `active` (a publisher is sending) or `disabled` (publishes are refused).
    #[schema(example = "idle")]
    status: &'static str,
    #[schema(value_type = Object, example = json!(["source", {"name": "360p", "height": 360, "bitrate_kbps": 800, "max_fps": 30}]))]
    ladder: Ladder,
    #[schema(value_type = String, example = "standard")]
    latency_mode: LatencyMode,
    #[schema(example = 60)]
    reconnect_window_s: u32,
    #[schema(example = false)]
    record: bool,
    dvr: DvrView,
    /// The subtitles each recording gets (`[]`: none).
    #[schema(value_type = Vec<Object>, example = json!([{"language_code": "en", "name": "English (generated)"}]))]
    generated_subtitles: Vec<GeneratedSubtitles>,
    /// Live captions: `{"language", "name"}`, or `null` without.
    #[schema(value_type = Option<Object>, example = json!({"language": "en", "name": "English (live)"}))]
    captions: Option<Captions>,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
    #[schema(example = "2026-06-01T10:05:00.000321Z")]
    updated_at: DateTime<Utc>,
    /// The publisher's session while `active`, else the last one (`null` before any).
    current_session: Option<SessionView>,
    /// Playback sessions that fetched within the last 30 s, as the answering process counts
    /// them; only in API responses (not in events).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 12)]
    viewers: Option<u64>,
}

pub(crate) async fn view(state: &AppState, stream: LiveStream) -> Result<LiveStreamView, ApiError> {
    let watched = Watched::LiveStream(stream.id.clone());
    let mut view = view_with(&state.db, &state.rtmp_url, &state.public_url, stream).await?;
    view.viewers = Some(state.viewers.of(&watched));
    Ok(view)
}

async fn view_with(
    db: &Db,
    rtmp_url: &str,
    public_url: &str,
    stream: LiveStream,
) -> Result<LiveStreamView, ApiError> {
    let current_session = match &stream.active_session_id {
        Some(session_id) => db.get_session(session_id).await?.map(SessionView::from),
        None => None,
    };
    let playback_ids = views(db.list_playback_ids(&stream.id).await?);
    let status = status_name(&stream);
    let whip_url = crate::whip::whip_url(public_url, &stream.id);
    Ok(LiveStreamView {
        id: stream.id.into(),
        name: stream.name,
        stream_key: Some(stream.stream_key),
        rtmp_url: rtmp_url.to_owned(),
        whip_url,
        playback_ids,
        status,
        ladder: stream.ladder,
        latency_mode: stream.latency_mode,
        reconnect_window_s: stream.reconnect_window_s,
        record: stream.record,
        dvr: stream.dvr.into(),
        generated_subtitles: stream.generated_subtitles,
        captions: stream.captions,
        created_at: stream.created_at,
        updated_at: stream.updated_at,
        current_session,
        viewers: None,
    })
}

/// The status shown to API users: a disabled stream reads `disabled` whatever its publisher.
fn status_name(stream: &LiveStream) -> &'static str {
    match (stream.disabled, stream.status) {
        (true, _) => "disabled",
        (false, LiveStreamStatus::Idle) => "idle",
        (false, LiveStreamStatus::Active) => "active",
    }
}

fn validate_reconnect_window(seconds: u32) -> Result<u32, ApiError> {
    if seconds <= MAX_RECONNECT_WINDOW_S {
        Ok(seconds)
    } else {
        Err(ApiError::InvalidRequest(format!(
            "reconnect_window_s: must be between 0 and {MAX_RECONNECT_WINDOW_S}"
        )))
    }
}

/// Checks a requested ladder (`null` when the request gave none: the default ladder).
pub(crate) fn validate_ladder(ladder: &Value) -> Result<Ladder, ApiError> {
    Ladder::from_request(ladder)
        .map_err(|message| ApiError::InvalidRequest(format!("ladder: {message}")))
}

/// The `data` of a live stream event: the stream in its API form, without its stream key
/// (events reach every holder of `events:read` and every webhook receiver).
fn event_data(view: &LiveStreamView) -> Result<Value, ApiError> {
    let mut data = serde_json::to_value(view).map_err(ApiError::internal)?;
    if let Some(object) = data.as_object_mut() {
        object.remove("stream_key");
        object.remove("viewers");
    }
    Ok(data)
}

/// `view` as `principal` may see it: without the stream key unless it holds `live:write`.
fn visible_to(principal: &Principal, mut view: LiveStreamView) -> LiveStreamView {
    if !Permission::LiveWrite.is_granted_by(&principal.permissions) {
        view.stream_key = None;
    }
    view
}

/// The `data` of an event about `stream` published outside the API (by the media plane).
pub async fn live_stream_event_data(
    db: &Db,
    rtmp_url: &str,
    public_url: &str,
    stream: LiveStream,
) -> Result<Value, ApiError> {
    event_data(&view_with(db, rtmp_url, public_url, stream).await?)
}

/// Publishes `event_type` about `view`'s stream.
pub(crate) async fn publish(
    state: &AppState,
    event_type: EventType,
    view: &LiveStreamView,
) -> Result<(), ApiError> {
    state
        .events
        .publish(NewEvent::new(event_type, &view.id, event_data(view)?))
        .await?;
    Ok(())
}

async fn find(state: &AppState, id: &str) -> Result<LiveStream, ApiError> {
    let not_found = || ApiError::NotFound("live stream not found");
    let id = LiveStreamId::parse(id).map_err(|_| not_found())?;
    state.db.get_live_stream(&id).await?.ok_or_else(not_found)
}

pub(crate) fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "name: must not be empty".to_owned(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "name: must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// Creates an idle live stream with a fresh stream key and one public playback id.
#[utoipa::path(post, path = "/v1/live-streams", tag = "live streams",
    request_body = CreateLiveStream,
    responses(
        (status = 201, description = "Created", body = Envelope<LiveStreamView>),
        (status = 400, description = "Invalid request", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateLiveStream>,
) -> Result<(StatusCode, Json<Envelope<LiveStreamView>>), ApiError> {
    validate_name(&request.name)?;
    let ladder = validate_ladder(&request.ladder.unwrap_or(Value::Null))?;
    let defaults = LiveStreamSettings::default();
    let latency_mode = request.latency_mode.unwrap_or(defaults.latency_mode);
    let settings = LiveStreamSettings {
        latency_mode,
        reconnect_window_s: validate_reconnect_window(
            request
                .reconnect_window_s
                .unwrap_or(latency_mode.default_reconnect_window_s()),
        )?,
        record: request.record.unwrap_or(defaults.record),
        dvr: request
            .dvr
            .map(validate_dvr)
            .transpose()?
            .unwrap_or(defaults.dvr),
        generated_subtitles: validate_generated_subtitles(
            request.generated_subtitles.unwrap_or_default(),
            state.speech_unavailable.as_deref(),
        )?,
        captions: request
            .captions
            .map(|captions| validate_captions(captions, state.speech_unavailable.as_deref()))
            .transpose()?,
    };
    let stream = state
        .db
        .create_live_stream(&request.name, &ladder, &settings)
        .await?;
    let data = view(&state, stream).await?;
    publish(&state, EventType::LiveStreamCreated, &data).await?;
    Ok((StatusCode::CREATED, Json(Envelope { data })))
}

/// One live stream, with its current session while a publisher is connected.
#[utoipa::path(get, path = "/v1/live-streams/{id}", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The live stream", body = Envelope<LiveStreamView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    let stream = find(&state, &id).await?;
    Ok(Json(Envelope {
        data: visible_to(&principal, view(&state, stream).await?),
    }))
}

/// Live streams in creation order, a page at a time, optionally only those in one status.
#[utoipa::path(get, path = "/v1/live-streams", tag = "live streams",
    params(ListLiveStreams),
    responses(
        (status = 200, description = "A page of live streams", body = PageEnvelope<LiveStreamView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListLiveStreams>, QueryRejection>,
) -> Result<Json<PageEnvelope<LiveStreamView>>, ApiError> {
    let Query(params) = params?;
    let limit = page_limit(params.limit)?;
    let page = state
        .db
        .list_live_streams(
            limit,
            params.cursor.as_deref(),
            params.status.map(LiveStreamFilter::from),
        )
        .await?;
    let mut data = Vec::with_capacity(page.items.len());
    for stream in page.items {
        data.push(visible_to(&principal, view(&state, stream).await?));
    }
    Ok(Json(PageEnvelope {
        data,
        next_cursor: page.next_cursor,
    }))
}

/// Changes a live stream's settings. A new ladder or latency mode applies from the next
/// session; the current publisher is not disturbed.
#[utoipa::path(patch, path = "/v1/live-streams/{id}", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    request_body = UpdateLiveStream,
    responses(
        (status = 200, description = "The updated live stream", body = Envelope<LiveStreamView>),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateLiveStream>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    if let Some(name) = &request.name {
        validate_name(name)?;
    }
    let changes = LiveStreamChanges {
        name: request.name,
        ladder: request
            .ladder
            .map(|ladder| validate_ladder(&ladder))
            .transpose()?,
        latency_mode: request.latency_mode,
        reconnect_window_s: request
            .reconnect_window_s
            .map(validate_reconnect_window)
            .transpose()?,
        record: request.record,
        dvr: request.dvr.map(validate_dvr).transpose()?,
        generated_subtitles: request
            .generated_subtitles
            .map(|requested| {
                validate_generated_subtitles(requested, state.speech_unavailable.as_deref())
            })
            .transpose()?,
        captions: request
            .captions
            .map(|captions| {
                captions
                    .map(|captions| {
                        validate_captions(captions, state.speech_unavailable.as_deref())
                    })
                    .transpose()
            })
            .transpose()?,
    };
    let id = LiveStreamId::parse(&id).map_err(|_| ApiError::NotFound("not found"))?;
    let stream = state.db.update_live_stream(&id, &changes).await?;
    let data = view(&state, stream).await?;
    publish(&state, EventType::LiveStreamUpdated, &data).await?;
    Ok(Json(Envelope { data }))
}

/// Deletes a live stream: its publisher is disconnected, its sessions and objects removed.
#[utoipa::path(delete, path = "/v1/live-streams/{id}", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let stream = find(&state, &id).await?;
    remove(&state, stream).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes `stream`, publishes `live_stream.deleted` (the media plane ends a running session)
/// and removes its objects.
pub(crate) async fn remove(state: &AppState, stream: LiveStream) -> Result<(), ApiError> {
    let id = stream.id.clone();
    let data = view(state, stream).await?;
    state.db.delete_live_stream(&id).await?;
    // The media plane ends a running session on this event and removes what it wrote last.
    // The stream is gone whatever happens next: its objects are removed even if the event
    // could not be recorded.
    if let Err(e) = publish(state, EventType::LiveStreamDeleted, &data).await {
        error!(live_stream_id = %id, error = %e, "Could not record the deletion event.");
    }
    let prefix = layout::live_stream(&id).map_err(ApiError::internal)?;
    state.store.delete_prefix(&prefix).await?;
    Ok(())
}

/// Gives the stream a new stream key; a publisher using the old one is disconnected.
#[utoipa::path(post, path = "/v1/live-streams/{id}/reset-stream-key", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The live stream with its new key", body = Envelope<LiveStreamView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn reset_stream_key(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    let id = LiveStreamId::parse(&id).map_err(|_| ApiError::NotFound("not found"))?;
    let stream = state.db.reset_stream_key(&id).await?;
    let data = view(&state, stream).await?;
    publish(&state, EventType::LiveStreamStreamKeyReset, &data).await?;
    Ok(Json(Envelope { data }))
}

/// Refuses publishes to the stream from now on and disconnects the current publisher.
#[utoipa::path(post, path = "/v1/live-streams/{id}/disable", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The disabled live stream", body = Envelope<LiveStreamView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    set_disabled(state, id, true).await
}

/// Accepts publishes to the stream again.
#[utoipa::path(post, path = "/v1/live-streams/{id}/enable", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The enabled live stream", body = Envelope<LiveStreamView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    set_disabled(state, id, false).await
}

async fn set_disabled(
    state: AppState,
    id: String,
    disabled: bool,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    let id = LiveStreamId::parse(&id).map_err(|_| ApiError::NotFound("not found"))?;
    let stream = state.db.set_live_stream_disabled(&id, disabled).await?;
    let data = view(&state, stream).await?;
    let event_type = if disabled {
        EventType::LiveStreamDisabled
    } else {
        EventType::LiveStreamEnabled
    };
    publish(&state, event_type, &data).await?;
    Ok(Json(Envelope { data }))
}

/// Ends the current session now: its playlists are finished and the publisher disconnected.
/// The stream stays enabled, so the encoder may start a new session.
#[utoipa::path(post, path = "/v1/live-streams/{id}/complete", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 202, description = "The session is being ended", body = Envelope<LiveStreamView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
        (status = 409, description = "The stream has no publisher", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Envelope<LiveStreamView>>), ApiError> {
    let stream = find(&state, &id).await?;
    if stream.status != LiveStreamStatus::Active {
        return Err(ApiError::Conflict(
            "live stream has no publisher to complete",
        ));
    }
    let data = view(&state, stream).await?;
    publish(&state, EventType::LiveStreamCompleted, &data).await?;
    Ok((StatusCode::ACCEPTED, Json(Envelope { data })))
}

/// A live stream's health: what its encoder sends, judged while it is live.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `idle` (no publisher), `healthy` (live, no warning) or `warning`.
    #[schema(example = "warning")]
    status: &'static str,
    /// The session judged: the current one while active, else the last one; `null` before any.
    #[schema(example = "ses_Qw3eR5tY7uI9oP1aS3dF")]
    session_id: Option<String>,
    /// Playback sessions that fetched within the last 30 s, as the answering process counts them.
    #[schema(example = 12)]
    viewers: u64,
    /// The problems seen now, oldest first: `code`, `message` (what was seen and how to fix
    /// it), `since`. Empty while idle.
    #[schema(value_type = Vec<Object>, example = json!([{"code": "keyframe_interval_long",
        "message": "Key frames arrive every 10.0 s; set Keyframe Interval to 2 s in OBS → Settings → Output.",
        "since": "2026-06-01T10:00:04.120Z"}]))]
    warnings: Vec<HealthWarning>,
    /// The session's last minutes, one sample per 5 s, oldest first: `at`, `video_kbps`,
    /// `audio_kbps`, `frame_rate`, `keyframe_interval_s` (the longest ending in the sample,
    /// or `null`), `frames_dropped` (by the ladder, in the sample).
    #[schema(value_type = Vec<Object>, example = json!([{"at": "2026-06-01T10:00:05Z",
        "video_kbps": 2480.5, "audio_kbps": 128.0, "frame_rate": 30.0,
        "keyframe_interval_s": 2.0, "frames_dropped": 0}]))]
    samples: Vec<HealthSample>,
}

/// The health of a live stream's encoder: current warnings (key frame interval, B-frames on a
/// passthrough rendition, variable frame rate, bitrate against what the encoder declared or
/// swinging, audio format changes, timestamps that jump or stall, frames the ladder dropped),
/// each with the setting to change, and the last minutes of bitrate, frame rate, key frame
/// interval and drops. Updated every few seconds while the stream is live.
#[utoipa::path(get, path = "/v1/live-streams/{id}/health", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The stream's health", body = Envelope<HealthView>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn health(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<HealthView>>, ApiError> {
    let stream = find(&state, &id).await?;
    let live = stream.status == LiveStreamStatus::Active;
    let health = match &stream.active_session_id {
        Some(session_id) => state.db.session_health(session_id).await?,
        None => None,
    }
    .unwrap_or_default();
    let warnings = if live { health.warnings } else { Vec::new() };
    let status = match (live, warnings.is_empty()) {
        (false, _) => "idle",
        (true, true) => "healthy",
        (true, false) => "warning",
    };
    Ok(Json(Envelope {
        data: HealthView {
            status,
            session_id: stream.active_session_id.as_ref().map(ToString::to_string),
            viewers: state.viewers.of(&Watched::LiveStream(stream.id)),
            warnings,
            samples: health.samples,
        },
    }))
}
