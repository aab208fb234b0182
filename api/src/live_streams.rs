//! `/v1/live-streams`: create, get and list live streams. Responses use a Mux-like envelope:
//! `{"data": …}` for one object, `{"data": […], "next_cursor": …}` for a page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_storage::{LiveStream, LiveStreamStatus, Session};

use crate::error::ApiError;
use crate::AppState;

/// Longest accepted live stream name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Page size when the request names none.
const DEFAULT_PAGE_SIZE: u64 = 25;

/// `axum::Json`, with its rejections turned into [`ApiError`]s so they render as JSON.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLiveStream {
    name: String,
    /// Rendition ladder; absent or null means the server's default.
    #[serde(default)]
    ladder: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    data: T,
}

#[derive(Debug, Serialize)]
pub struct PageEnvelope<T> {
    data: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LiveStreamView {
    id: String,
    name: String,
    stream_key: String,
    rtmp_url: String,
    playback_id: String,
    playback_url: String,
    status: LiveStreamStatus,
    ladder: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    current_session: Option<SessionView>,
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    id: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    client_addr: String,
    encoder: Option<String>,
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
    let playback_url = format!(
        "{}/hls/{}/master.m3u8",
        state.public_url.trim_end_matches('/'),
        stream.playback_id
    );
    Ok(LiveStreamView {
        id: stream.id,
        name: stream.name,
        stream_key: stream.stream_key,
        rtmp_url: state.rtmp_url.clone(),
        playback_id: stream.playback_id,
        playback_url,
        status: stream.status,
        ladder: stream.ladder,
        created_at: stream.created_at,
        updated_at: stream.updated_at,
        current_session,
    })
}

fn validate_name(name: &str) -> Result<(), ApiError> {
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

pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateLiveStream>,
) -> Result<(StatusCode, Json<Envelope<LiveStreamView>>), ApiError> {
    validate_name(&request.name)?;
    let ladder = (state.ladder_validator)(&request.ladder.unwrap_or(Value::Null))
        .map_err(|message| ApiError::InvalidRequest(format!("ladder: {message}")))?;
    let stream = state.db.create_live_stream(&request.name, &ladder).await?;
    let data = view(&state, stream).await?;
    Ok((StatusCode::CREATED, Json(Envelope { data })))
}

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

pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<LiveStreamView>>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=sluice_storage::MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit: must be between 1 and {}",
            sluice_storage::MAX_PAGE_SIZE
        )));
    }
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
