//! Sessions: every publish of a live stream, from connect to disconnect, with who published
//! (encoder identity, client address, protocol), what (codecs, resolution, frame rate, measured
//! bitrate) and how it went (bytes received, frames dropped).
//!
//! `GET /v1/live-streams/{id}/sessions` (newest first) and `GET /v1/sessions/{id}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sluice_storage::Session;
use sluice_storage::{LiveStreamId, SessionId};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiPath, Envelope, PageEnvelope, PageParams};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[schema(example = "ses_4fQm2kP0aZ8xYt1Lc9Rb")]
    id: String,
    #[schema(example = "ls_Ab3dE5fG7hJ9kL1mN3pQ")]
    live_stream_id: String,
    /// How the publisher connected: `rtmp` or `webrtc` (WHIP).
    #[schema(example = "rtmp")]
    protocol: String,
    /// `ip:port` of the publisher.
    #[schema(example = "203.0.113.7:53122")]
    client_addr: String,
    /// What the encoder said about itself (RTMP `flashVer`).
    #[schema(example = "FMLE/3.0 (compatible; FMSc/1.0)")]
    encoder: Option<String>,
    /// The RTMP application it connected to.
    #[schema(example = "live")]
    app: Option<String>,
    #[schema(example = "2026-06-01T10:05:00.000118Z")]
    started_at: DateTime<Utc>,
    /// `null` while the session is live.
    #[schema(example = json!(null))]
    ended_at: Option<DateTime<Utc>>,
    /// The incoming media once known: `video_codec`, `audio_codec`, `codecs`, `width`,
    /// `height`, `frame_rate`, `audio_sample_rate`, `audio_channels`, `bitrate_kbps`.
    #[schema(value_type = Option<Object>, example = json!({
        "video_codec": "h264", "audio_codec": "aac", "codecs": "avc1.64001f,mp4a.40.2",
        "width": 1280, "height": 720, "frame_rate": 30.0,
        "audio_sample_rate": 48000, "audio_channels": 2, "bitrate_kbps": 2950
    }))]
    input: Option<Value>,
    #[schema(example = 22151760)]
    bytes_received: u64,
    /// Frames dropped before the encoders because the ladder fell behind real time.
    #[schema(example = 0)]
    frames_dropped: u64,
    /// The asset this session is recorded into (`record: true` streams); `null` otherwise.
    #[schema(example = "asset_9fK2mP4qR6sT8uV0wX2y")]
    asset_id: Option<String>,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        Self {
            id: session.id.into(),
            live_stream_id: session.live_stream_id.into(),
            protocol: session.protocol,
            client_addr: session.client_addr,
            encoder: session.encoder,
            app: session.app,
            started_at: session.started_at,
            ended_at: session.ended_at,
            input: session.input,
            bytes_received: session.bytes_received,
            frames_dropped: session.frames_dropped,
            asset_id: session.asset_id.map(String::from),
        }
    }
}

/// The `data` of a `session.*` event: the session in its API form.
pub fn session_event_data(session: Session) -> Result<Value, ApiError> {
    serde_json::to_value(SessionView::from(session)).map_err(ApiError::internal)
}

/// The sessions of a live stream, newest first.
#[utoipa::path(get, path = "/v1/live-streams/{id}/sessions", tag = "sessions",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)"), PageParams),
    responses(
        (status = 200, description = "A page of sessions", body = PageEnvelope<SessionView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<SessionView>>, ApiError> {
    let Query(params) = params?;
    let id = LiveStreamId::parse(&id).map_err(|_| ApiError::NotFound("not found"))?;
    let page = state
        .db
        .list_sessions(&id, params.limit()?, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(SessionView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One session.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id (`ses_…`)")),
    responses(
        (status = 200, description = "The session", body = Envelope<SessionView>),
        (status = 404, description = "No such session", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<SessionView>>, ApiError> {
    let not_found = || ApiError::NotFound("session not found");
    let id = SessionId::parse(&id).map_err(|_| not_found())?;
    let session = state.db.get_session(&id).await?.ok_or_else(not_found)?;
    Ok(Json(Envelope {
        data: session.into(),
    }))
}
