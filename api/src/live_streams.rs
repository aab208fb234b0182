//! `/v1/live-streams`: create, get and list live streams. Responses use a Mux-like envelope:
//! `{"data": …}` for one object, `{"data": […], "next_cursor": …}` for a page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_storage::{EventType, LiveStream, LiveStreamStatus, NewEvent, Session};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, Envelope, PageEnvelope, PageParams};
use crate::playback_ids::{views, PlaybackIdView};
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveStreamView {
    id: String,
    name: String,
    stream_key: String,
    rtmp_url: String,
    /// Ids to play the stream under: `/hls/{id}/master.m3u8`.
    playback_ids: Vec<PlaybackIdView>,
    /// `idle` or `active`.
    #[schema(value_type = String, example = "idle")]
    status: LiveStreamStatus,
    #[schema(value_type = Object)]
    ladder: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    current_session: Option<SessionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    client_addr: String,
    encoder: Option<String>,
    #[schema(value_type = Option<Object>)]
    input: Option<Value>,
    bytes_received: u64,
    frames_dropped: u64,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        Self {
            id: session.id,
            started_at: session.started_at,
            ended_at: session.ended_at,
            client_addr: session.client_addr,
            encoder: session.encoder,
            input: session.input,
            bytes_received: session.bytes_received,
            frames_dropped: session.frames_dropped,
        }
    }
}

async fn view(state: &AppState, stream: LiveStream) -> Result<LiveStreamView, ApiError> {
    let current_session = match &stream.active_session_id {
        Some(session_id) => state
            .db
            .get_session(session_id)
            .await?
            .map(SessionView::from),
        None => None,
    };
    let playback_ids = views(state.db.list_playback_ids(&stream.id).await?);
    Ok(LiveStreamView {
        id: stream.id,
        name: stream.name,
        stream_key: stream.stream_key,
        rtmp_url: state.rtmp_url.clone(),
        playback_ids,
        status: stream.status,
        ladder: stream.ladder,
        created_at: stream.created_at,
        updated_at: stream.updated_at,
        current_session,
    })
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
    let ladder = (state.ladder_validator)(&request.ladder.unwrap_or(Value::Null))
        .map_err(|message| ApiError::InvalidRequest(format!("ladder: {message}")))?;
    let stream = state.db.create_live_stream(&request.name, &ladder).await?;
    let data = view(&state, stream).await?;
    state
        .events
        .publish(NewEvent::new(
            EventType::LiveStreamCreated,
            &data.id,
            serde_json::to_value(&data).map_err(ApiError::internal)?,
        ))
        .await?;
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
    Path(id): Path<String>,
) -> Result<Json<Envelope<LiveStreamView>>, ApiError> {
    let stream = state
        .db
        .get_live_stream(&id)
        .await?
        .ok_or(ApiError::NotFound("live stream not found"))?;
    Ok(Json(Envelope {
        data: view(&state, stream).await?,
    }))
}

/// Live streams in creation order, a page at a time.
#[utoipa::path(get, path = "/v1/live-streams", tag = "live streams",
    params(PageParams),
    responses(
        (status = 200, description = "A page of live streams", body = PageEnvelope<LiveStreamView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<LiveStreamView>>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit()?;
    let page = state
        .db
        .list_live_streams(limit, params.cursor.as_deref())
        .await?;
    let mut data = Vec::with_capacity(page.items.len());
    for stream in page.items {
        data.push(view(&state, stream).await?);
    }
    Ok(Json(PageEnvelope {
        data,
        next_cursor: page.next_cursor,
    }))
}
