//! `/v1/rooms`: real-time rooms that LiveKit's client SDKs join. Rooms are created, listed and
//! deleted here; their runs (sessions) and who took part are read back; access tokens are
//! minted for participants; and the rooms running in this process are driven live (who is in
//! them, removing a participant, muting a track, sending data) through
//! [`sluice_rooms::RoomControl`], so this crate knows nothing of WebRTC.
//!
//! A token is LiveKit's HS256 JWT signed with the secret of the API key that asked for it (its
//! `iss`), granting a join of the room by name. A process that runs no room engine answers the
//! live operations `503 rooms_unavailable`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_rooms::token::{self, Claims, VideoGrant};
use sluice_rooms::{ControlError, DataMessage, ParticipantView, RoomControl, TrackView};
use sluice_storage::{
    EventType, NewEvent, NewRoom, Room, RoomId, RoomSession, RoomSessionParticipant,
};
use tracing::error;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::composites;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::room_transcription::{check_transcription, RoomTranscriptionView, TranscriptionRequest};
use crate::AppState;

const NOT_FOUND: ApiError = ApiError::NotFound("room not found");
/// Why a second composite of a room is refused.
pub(crate) const COMPOSITE_RUNNING: &str = "the room already has a composite running";
/// Why an operation on a room's running composite finds none.
pub(crate) const NO_COMPOSITE: &str = "no composite is running in the room";
/// Longest room name, in characters (and at most [`token::MAX_NAME_BYTES`] bytes, the longest
/// room a token may name).
pub const MAX_ROOM_NAME_CHARS: usize = 128;
/// Highest participant cap a room may have.
pub const MAX_ROOM_PARTICIPANTS: u32 = 1000;
/// Longest a room may stay open once empty, in seconds (a day).
pub const MAX_EMPTY_TIMEOUT_S: u32 = 86_400;
/// Longest room metadata, in bytes.
pub const MAX_ROOM_METADATA_BYTES: usize = 16 * 1024;
/// Lifetime of a token asked for without one, in seconds (six hours).
pub const DEFAULT_TOKEN_TTL_S: u64 = 6 * 60 * 60;
/// Longest lifetime a token may ask for, in seconds (a day).
pub const MAX_TOKEN_TTL_S: u64 = 24 * 60 * 60;
/// Largest data message, in bytes: LiveKit's limit for reliable packets.
pub const MAX_DATA_BYTES: usize = 15 * 1024;
/// Longest data topic, in bytes.
const MAX_TOPIC_BYTES: usize = 256;
/// Longest track sid, in bytes.
const MAX_TRACK_SID_BYTES: usize = 256;
/// The sources a token may restrict publishing to, in LiveKit's names.
const PUBLISH_SOURCES: [&str; 4] = ["camera", "microphone", "screen_share", "screen_share_audio"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// What clients join by (a token's `video.room`): 1 to 128 characters (at most 256
    /// bytes) without control characters; unique.
    #[schema(example = "standup")]
    name: String,
    /// Most participants at once, 0 to 1000 (0: no cap; default 100).
    #[serde(default)]
    #[schema(example = 100)]
    max_participants: Option<u32>,
    /// Seconds the room stays open once its last participant left, 0 to 86400 (default 300).
    #[serde(default)]
    #[schema(example = 300)]
    empty_timeout_s: Option<u32>,
    /// Free-form text given to the room's participants, at most 16 KiB (default empty).
    #[serde(default)]
    #[schema(example = "{\"topic\": \"daily\"}")]
    metadata: Option<String>,
    /// Transcribe every participant's microphone live (default off); see
    /// `POST /v1/rooms/{id}/transcription/start`.
    #[serde(default)]
    transcription: Option<TranscriptionRequest>,
}

/// A room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    #[schema(example = "room_2Yb8kQ4mXr7TnC1vPq9L")]
    id: String,
    #[schema(example = "standup")]
    name: String,
    /// Most participants at once; 0: no cap.
    max_participants: u32,
    /// Seconds the room stays open once its last participant left.
    empty_timeout_s: u32,
    metadata: String,
    created_at: DateTime<Utc>,
    /// The WebSocket URL LiveKit client SDKs connect to (`room.connect(ws_url, token)`).
    #[schema(example = "wss://video.example.com")]
    ws_url: String,
    /// The page that joins the room in a browser; add `?token=`.
    #[schema(example = "https://video.example.com/rooms/room_2Yb8kQ4mXr7TnC1vPq9L/join")]
    join_url: String,
    /// The room's current run, while it runs.
    active_session: Option<ActiveSessionView>,
    /// How its microphones are transcribed; `null`: they are not.
    transcription: Option<RoomTranscriptionView>,
}

/// The current run of a room.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveSessionView {
    #[schema(example = "rsess_3kP9sQ2mT7vX1bN4cR8y")]
    id: String,
    started_at: DateTime<Utc>,
    /// Participants in the room now.
    num_participants: u32,
}

/// One run of a room, from its start to its close.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomSessionView {
    #[schema(example = "rsess_3kP9sQ2mT7vX1bN4cR8y")]
    id: String,
    started_at: DateTime<Utc>,
    /// `null` while it runs.
    ended_at: Option<DateTime<Utc>>,
    /// Everyone who joined, in the order they joined.
    participants: Vec<RoomSessionParticipantView>,
}

/// A participant of a room session.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomSessionParticipantView {
    #[schema(example = "PA_Xk3pQ9mZ2vT8")]
    sid: String,
    #[schema(example = "alice")]
    identity: String,
    name: String,
    joined_at: DateTime<Utc>,
    /// `null` while in the room.
    left_at: Option<DateTime<Utc>>,
}

impl From<RoomSessionParticipant> for RoomSessionParticipantView {
    fn from(participant: RoomSessionParticipant) -> Self {
        Self {
            sid: participant.sid,
            identity: participant.identity,
            name: participant.name,
            joined_at: participant.joined_at,
            left_at: participant.left_at,
        }
    }
}

impl From<RoomSession> for RoomSessionView {
    fn from(session: RoomSession) -> Self {
        Self {
            id: session.id.into(),
            started_at: session.started_at,
            ended_at: session.ended_at,
            participants: session.participants.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a token lets its holder do in the room.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The participant's identity, unique in the room: 1 to 256 bytes without control
    /// characters (the token's `sub`).
    #[schema(example = "alice")]
    identity: String,
    /// The name other participants see, at most 256 bytes.
    #[serde(default)]
    #[schema(example = "Alice")]
    name: Option<String>,
    /// The participant's metadata, at most 16 KiB.
    #[serde(default)]
    metadata: Option<String>,
    /// Seconds the token can be used to join, 1 to 86400 (default 21600, six hours).
    #[serde(default)]
    #[schema(example = 21600)]
    ttl_s: Option<u64>,
    /// May publish tracks (default true).
    #[serde(default)]
    can_publish: Option<bool>,
    /// May subscribe to others' tracks (default true).
    #[serde(default)]
    can_subscribe: Option<bool>,
    /// May send data messages (default true).
    #[serde(default)]
    can_publish_data: Option<bool>,
    /// The only sources it may publish: `camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`; empty (the default) allows all.
    #[serde(default)]
    #[schema(example = json!(["camera", "microphone"]))]
    can_publish_sources: Option<Vec<String>>,
    /// Hidden from the other participants (default false).
    #[serde(default)]
    hidden: Option<bool>,
}

/// A room access token and where to use it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// LiveKit's access token: an HS256 JWT signed with the calling API key's secret.
    token: String,
    /// When the token stops being accepted for joining.
    expires_at: DateTime<Utc>,
    /// The WebSocket URL to connect to with the token.
    #[schema(example = "wss://video.example.com")]
    ws_url: String,
    /// The browser join page with the token.
    #[schema(
        example = "https://video.example.com/rooms/room_2Yb8kQ4mXr7TnC1vPq9L/join?token=eyJ…"
    )]
    join_url: String,
}

/// A participant in a running room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomParticipantView {
    #[schema(example = "PA_Xk3pQ9mZ2vT8")]
    sid: String,
    #[schema(example = "alice")]
    identity: String,
    name: String,
    metadata: String,
    joined_at: DateTime<Utc>,
    /// `joining` (signalled, media not yet connected) or `active`.
    #[schema(example = "active")]
    state: String,
    hidden: bool,
    tracks: Vec<RoomTrackView>,
}

/// A track a participant publishes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTrackView {
    #[schema(example = "TR_Vb7kQ2mXr9Tn")]
    sid: String,
    /// `audio` or `video`.
    #[schema(example = "video")]
    kind: String,
    /// `camera`, `microphone`, `screen_share`, `screen_share_audio` or `unknown`.
    #[schema(example = "camera")]
    source: String,
    name: String,
    muted: bool,
    /// The codec's MIME type once media flows.
    #[schema(example = "video/VP8")]
    mime_type: String,
    width: u32,
    height: u32,
    /// Whether the publisher sends simulcast layers.
    simulcast: bool,
}

impl From<TrackView> for RoomTrackView {
    fn from(track: TrackView) -> Self {
        Self {
            sid: track.sid,
            kind: track.kind.to_owned(),
            source: track.source.to_owned(),
            name: track.name,
            muted: track.muted,
            mime_type: track.mime_type,
            width: track.width,
            height: track.height,
            simulcast: track.simulcast,
        }
    }
}

impl From<ParticipantView> for RoomParticipantView {
    fn from(participant: ParticipantView) -> Self {
        Self {
            sid: participant.sid,
            identity: participant.identity,
            name: participant.name,
            metadata: participant.metadata,
            joined_at: participant.joined_at,
            state: participant.state.to_owned(),
            hidden: participant.hidden,
            tracks: participant.tracks.into_iter().map(Into::into).collect(),
        }
    }
}

/// Mutes or unmutes one of a participant's tracks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteTrack {
    /// The track's sid (`TR_…`).
    #[schema(example = "TR_Vb7kQ2mXr9Tn")]
    track_sid: String,
    muted: bool,
}

/// The track's state after a mute request.
#[derive(Debug, Serialize, ToSchema)]
pub struct MutedTrackView {
    track_sid: String,
    muted: bool,
}

/// A data message for a room's participants: `payload` (text, sent as its UTF-8 bytes) or
/// `payload_base64` (bytes), exactly one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendData {
    /// Text to send as its UTF-8 bytes.
    #[serde(default)]
    #[schema(example = "{\"type\": \"hand_raised\"}")]
    payload: Option<String>,
    /// Bytes to send, in standard base64.
    #[serde(default)]
    payload_base64: Option<String>,
    /// The topic receivers see, at most 256 bytes.
    #[serde(default)]
    #[schema(example = "chat")]
    topic: Option<String>,
    /// Identities to send to; absent or empty sends to everyone.
    #[serde(default)]
    #[schema(example = json!(["alice"]))]
    destination_identities: Option<Vec<String>>,
    /// Reliable (ordered, retransmitted; the default) or lossy delivery.
    #[serde(default)]
    reliable: Option<bool>,
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(message.into())
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn validate_room_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_ROOM_NAME_CHARS
        || name.len() > token::MAX_NAME_BYTES
        || has_control(name)
    {
        return Err(invalid(format!(
            "name: must be 1 to {MAX_ROOM_NAME_CHARS} characters (at most {} bytes) without \
             control characters",
            token::MAX_NAME_BYTES
        )));
    }
    Ok(())
}

/// The room a path names.
pub(crate) async fn find(state: &AppState, id: &str) -> Result<Room, ApiError> {
    let id = RoomId::parse(id).map_err(|_| NOT_FOUND)?;
    state.db.get_room(&id).await?.ok_or(NOT_FOUND)
}

fn base_url(public_url: &str) -> &str {
    public_url.trim_end_matches('/')
}

fn join_url(public_url: &str, room_id: &str) -> String {
    format!("{}/rooms/{room_id}/join", base_url(public_url))
}

/// `room` in its API form, with its running session if any.
fn view_with(room: Room, active: Option<&RoomSession>, public_url: &str, ws_url: &str) -> RoomView {
    RoomView {
        join_url: join_url(public_url, &room.id),
        ws_url: ws_url.to_owned(),
        active_session: active.map(|session| ActiveSessionView {
            id: session.id.to_string(),
            started_at: session.started_at,
            num_participants: u32::try_from(session.participants_present()).unwrap_or(u32::MAX),
        }),
        id: room.id.into(),
        name: room.name,
        max_participants: room.max_participants,
        empty_timeout_s: room.empty_timeout_s,
        metadata: room.metadata,
        created_at: room.created_at,
        transcription: room.transcription.map(Into::into),
    }
}

/// The `data` of an event about `room` published outside the API (by the room engine): the
/// room in its API form, with its running session (`active`) if any. `public_url` is the
/// server's base URL, `ws_url` where clients connect.
pub fn room_event_data(
    room: Room,
    active: Option<&RoomSession>,
    public_url: &str,
    ws_url: &str,
) -> Value {
    serde_json::to_value(view_with(room, active, public_url, ws_url)).unwrap_or(Value::Null)
}

/// `room` in its API form, with its running session if any.
pub(crate) async fn view(state: &AppState, room: Room) -> Result<RoomView, ApiError> {
    let active = state.db.active_room_session(&room.id).await?;
    Ok(view_with(
        room,
        active.as_ref(),
        &state.public_url,
        &state.rooms_ws_url,
    ))
}

/// Publishes `event_type` about `room`. The room has changed for good when this runs, so a
/// failure is logged rather than failing the request.
async fn publish(state: &AppState, event_type: EventType, room_id: &RoomId, room: &RoomView) {
    let recorded = match serde_json::to_value(room) {
        Ok(data) => state
            .events
            .publish(NewEvent::about_room(event_type, room_id, data))
            .await
            .map(drop)
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(e)),
    };
    if let Err(e) = recorded {
        error!(room_id = %room_id, event = event_type.as_str(), error = %e,
            "Could not record a room event.");
    }
}

/// Creates a room. Clients join it by name with a token from `POST /v1/rooms/{id}/tokens`.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms",
    request_body = CreateRoom,
    responses(
        (status = 201, description = "Created", body = Envelope<RoomView>),
        (status = 400, description = "Invalid name or setting", body = ErrorBody),
        (status = 409, description = "A room of that name exists", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<Envelope<RoomView>>), ApiError> {
    validate_room_name(&request.name)?;
    if request
        .max_participants
        .is_some_and(|max| max > MAX_ROOM_PARTICIPANTS)
    {
        return Err(invalid(format!(
            "max_participants: must be between 0 (no cap) and {MAX_ROOM_PARTICIPANTS}"
        )));
    }
    if request
        .empty_timeout_s
        .is_some_and(|timeout| timeout > MAX_EMPTY_TIMEOUT_S)
    {
        return Err(invalid(format!(
            "empty_timeout_s: must be between 0 and {MAX_EMPTY_TIMEOUT_S}"
        )));
    }
    if request
        .metadata
        .as_ref()
        .is_some_and(|metadata| metadata.len() > MAX_ROOM_METADATA_BYTES)
    {
        return Err(invalid(format!(
            "metadata: must be at most {MAX_ROOM_METADATA_BYTES} bytes"
        )));
    }
    let transcription = request
        .transcription
        .map(|transcription| check_transcription(&state, transcription))
        .transpose()?;
    let room = state
        .db
        .create_room(&NewRoom {
            name: request.name,
            max_participants: request.max_participants,
            empty_timeout_s: request.empty_timeout_s,
            metadata: request.metadata,
            transcription,
        })
        .await?;
    let id = room.id.clone();
    let data = view_with(room, None, &state.public_url, &state.rooms_ws_url);
    publish(&state, EventType::RoomCreated, &id, &data).await;
    Ok((StatusCode::CREATED, Json(Envelope { data })))
}

/// Rooms in creation order, a page at a time.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms",
    params(PageParams),
    responses(
        (status = 200, description = "A page of rooms", body = PageEnvelope<RoomView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<RoomView>>, ApiError> {
    let Query(params) = params?;
    let page = state
        .db
        .list_rooms(params.limit()?, params.cursor.as_deref())
        .await?;
    let ids: Vec<RoomId> = page.items.iter().map(|room| room.id.clone()).collect();
    let active: HashMap<RoomId, RoomSession> = state
        .db
        .active_room_sessions(&ids)
        .await?
        .into_iter()
        .map(|session| (session.room_id.clone(), session))
        .collect();
    Ok(Json(PageEnvelope {
        data: page
            .items
            .into_iter()
            .map(|room| {
                let session = active.get(&room.id);
                view_with(room, session, &state.public_url, &state.rooms_ws_url)
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One room, with its current run while it runs.
#[utoipa::path(get, path = "/v1/rooms/{id}", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 200, description = "The room", body = Envelope<RoomView>),
        (status = 404, description = "No such room", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<RoomView>>, ApiError> {
    let room = find(&state, &id).await?;
    Ok(Json(Envelope {
        data: view(&state, room).await?,
    }))
}

/// Deletes a room with its sessions and composites. Its running composite is stopped first;
/// when the room runs in this process it is closed first: its participants are told and
/// disconnected.
#[utoipa::path(delete, path = "/v1/rooms/{id}", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "The room engine stopped", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let room = find(&state, &id).await?;
    if let Some(composite) = state.db.running_room_composite(&room.id).await? {
        composites::stop_before_room_deletion(&state, &room, composite).await?;
    }
    if let Some(rooms) = &state.rooms {
        match rooms.close_room(&room.name).await {
            Ok(()) | Err(ControlError::RoomNotRunning) => {}
            Err(e) => return Err(control_error(e)),
        }
    }
    let id = room.id.clone();
    let data = view(&state, room).await?;
    state
        .db
        .delete_room(&id)
        .await
        .map_err(ApiError::not_found_as("room not found"))?;
    publish(&state, EventType::RoomDeleted, &id, &data).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The runs of a room, newest first, each with everyone who joined it.
#[utoipa::path(get, path = "/v1/rooms/{id}/sessions", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)"), PageParams),
    responses(
        (status = 200, description = "A page of sessions", body = PageEnvelope<RoomSessionView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<RoomSessionView>>, ApiError> {
    let Query(params) = params?;
    let id = RoomId::parse(&id).map_err(|_| NOT_FOUND)?;
    let page = state
        .db
        .list_room_sessions(&id, params.limit()?, params.cursor.as_deref())
        .await
        .map_err(ApiError::not_found_as("room not found"))?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The publish sources a token names, checked and without repeats.
fn validate_sources(sources: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut checked: Vec<String> = Vec::new();
    for source in sources {
        if !PUBLISH_SOURCES.contains(&source.as_str()) {
            return Err(invalid(format!(
                "can_publish_sources: unknown source {source:?}; known: {}",
                PUBLISH_SOURCES.join(", ")
            )));
        }
        if !checked.contains(&source) {
            checked.push(source);
        }
    }
    Ok(checked)
}

/// Mints an access token that joins this room, signed with the calling API key's secret.
/// LiveKit client SDKs connect with it: `room.connect(ws_url, token)`.
#[utoipa::path(post, path = "/v1/rooms/{id}/tokens", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token", body = Envelope<TokenView>),
        (status = 400, description = "Invalid identity, name, metadata, lifetime or source", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<Envelope<TokenView>>), ApiError> {
    let room = find(&state, &id).await?;
    let max = token::MAX_NAME_BYTES;
    if request.identity.is_empty() || request.identity.len() > max || has_control(&request.identity)
    {
        return Err(invalid(format!(
            "identity: must be 1 to {max} bytes without control characters"
        )));
    }
    let name = request.name.unwrap_or_default();
    if name.len() > max || has_control(&name) {
        return Err(invalid(format!(
            "name: must be at most {max} bytes without control characters"
        )));
    }
    let metadata = request.metadata.unwrap_or_default();
    if metadata.len() > token::MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "metadata: must be at most {} bytes",
            token::MAX_METADATA_BYTES
        )));
    }
    let ttl_s = request.ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
    if !(1..=MAX_TOKEN_TTL_S).contains(&ttl_s) {
        return Err(invalid(format!(
            "ttl_s: must be between 1 and {MAX_TOKEN_TTL_S}"
        )));
    }
    let sources = validate_sources(request.can_publish_sources.unwrap_or_default())?;
    let (_, secret) = state
        .db
        .api_key_jwt_secret(&principal.api_key_id)
        .await?
        .ok_or(ApiError::Unauthorized("API key revoked"))?;
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let exp = now + ttl_s;
    let claims = Claims {
        iss: principal.api_key_id.clone(),
        sub: request.identity,
        exp,
        nbf: None,
        name,
        metadata,
        attributes: HashMap::new(),
        video: VideoGrant {
            room: room.name,
            room_join: true,
            can_publish: Some(request.can_publish.unwrap_or(true)),
            can_subscribe: Some(request.can_subscribe.unwrap_or(true)),
            can_publish_data: Some(request.can_publish_data.unwrap_or(true)),
            can_publish_sources: sources,
            hidden: request.hidden.unwrap_or(false),
        },
    };
    let token = token::sign(&claims, &secret);
    let expires_at = i64::try_from(exp)
        .ok()
        .and_then(|exp| DateTime::from_timestamp(exp, 0))
        .ok_or_else(|| ApiError::internal("token expiry out of range"))?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: TokenView {
                join_url: format!("{}?token={token}", join_url(&state.public_url, &room.id)),
                token,
                expires_at,
                ws_url: state.rooms_ws_url.clone(),
            },
        }),
    ))
}

/// The room engine of this process, or `503 rooms_unavailable`.
pub(crate) fn engine(state: &AppState) -> Result<&dyn RoomControl, ApiError> {
    state.rooms.as_deref().ok_or(ApiError::RoomsUnavailable)
}

/// The API's answer to a refused live operation.
pub(crate) fn control_error(error: ControlError) -> ApiError {
    match error {
        ControlError::RoomNotRunning => ApiError::RoomNotRunning,
        ControlError::NoParticipant(_) => ApiError::NotFound("participant not found"),
        ControlError::NoTrack(_) => ApiError::NotFound("track not found"),
        ControlError::Stopped => ApiError::RoomsUnavailable,
        ControlError::CompositeRunning => ApiError::Conflict(COMPOSITE_RUNNING),
        ControlError::NoComposite => ApiError::NotFound(NO_COMPOSITE),
        ControlError::CompositeUnavailable(why) => ApiError::CompositeUnavailable(why),
        ControlError::TranscriptionUnavailable(why) => ApiError::TranscriptionUnavailable(why),
        ControlError::NoTranscription => ApiError::NotFound("the room is not being transcribed"),
    }
}

/// Who is in the room now, with their tracks (hidden participants included); empty when the
/// room is not running.
#[utoipa::path(get, path = "/v1/rooms/{id}/participants", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 200, description = "The participants", body = Envelope<Vec<RoomParticipantView>>),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn participants(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<Vec<RoomParticipantView>>>, ApiError> {
    let rooms = engine(&state)?;
    let room = find(&state, &id).await?;
    let participants = match rooms.participants(&room.name).await {
        Ok(participants) => participants,
        Err(ControlError::RoomNotRunning) => Vec::new(),
        Err(e) => return Err(control_error(e)),
    };
    Ok(Json(Envelope {
        data: participants.into_iter().map(Into::into).collect(),
    }))
}

/// Disconnects a participant from the room (its SDK is told first). It may join again with a
/// valid token.
#[utoipa::path(delete, path = "/v1/rooms/{id}/participants/{identity}", tag = "rooms",
    params(
        ("id" = String, Path, description = "Room id (`room_…`)"),
        ("identity" = String, Path, description = "The participant's identity"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such room or participant", body = ErrorBody),
        (status = 409, description = "The room is not running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn remove_participant(
    State(state): State<AppState>,
    ApiPath((id, identity)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let rooms = engine(&state)?;
    let room = find(&state, &id).await?;
    rooms
        .remove_participant(&room.name, &identity)
        .await
        .map_err(control_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mutes or unmutes a track a participant publishes; the participant's SDK is told.
#[utoipa::path(post, path = "/v1/rooms/{id}/participants/{identity}/mute", tag = "rooms",
    params(
        ("id" = String, Path, description = "Room id (`room_…`)"),
        ("identity" = String, Path, description = "The participant's identity"),
    ),
    request_body = MuteTrack,
    responses(
        (status = 200, description = "The track's state", body = Envelope<MutedTrackView>),
        (status = 400, description = "Invalid track sid", body = ErrorBody),
        (status = 404, description = "No such room, participant or track", body = ErrorBody),
        (status = 409, description = "The room is not running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn mute_track(
    State(state): State<AppState>,
    ApiPath((id, identity)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<MuteTrack>,
) -> Result<Json<Envelope<MutedTrackView>>, ApiError> {
    if request.track_sid.is_empty() || request.track_sid.len() > MAX_TRACK_SID_BYTES {
        return Err(invalid(format!(
            "track_sid: must be 1 to {MAX_TRACK_SID_BYTES} bytes"
        )));
    }
    let rooms = engine(&state)?;
    let room = find(&state, &id).await?;
    rooms
        .mute_track(&room.name, &identity, &request.track_sid, request.muted)
        .await
        .map_err(control_error)?;
    Ok(Json(Envelope {
        data: MutedTrackView {
            track_sid: request.track_sid,
            muted: request.muted,
        },
    }))
}

/// Sends a data message to some or all of the room's participants.
#[utoipa::path(post, path = "/v1/rooms/{id}/data", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body = SendData,
    responses(
        (status = 202, description = "Sent to the participants"),
        (status = 400, description = "No payload, both payloads, a payload over 15 KiB, or an invalid topic or identity", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "The room is not running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn send_data(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<SendData>,
) -> Result<StatusCode, ApiError> {
    let message = data_message(request)?;
    let rooms = engine(&state)?;
    let room = find(&state, &id).await?;
    rooms
        .send_data(&room.name, message)
        .await
        .map_err(control_error)?;
    Ok(StatusCode::ACCEPTED)
}

/// Checks a data request and makes the message it asks for.
fn data_message(request: SendData) -> Result<DataMessage, ApiError> {
    let payload = match (request.payload, request.payload_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map_err(|e| invalid(format!("payload_base64: not standard base64: {e}")))?,
        _ => {
            return Err(invalid(
                "give exactly one of payload (text) and payload_base64 (bytes)",
            ))
        }
    };
    if payload.is_empty() || payload.len() > MAX_DATA_BYTES {
        return Err(invalid(format!(
            "payload: must be 1 to {MAX_DATA_BYTES} bytes"
        )));
    }
    if let Some(topic) = &request.topic {
        if topic.len() > MAX_TOPIC_BYTES || has_control(topic) {
            return Err(invalid(format!(
                "topic: must be at most {MAX_TOPIC_BYTES} bytes without control characters"
            )));
        }
    }
    let destinations = request.destination_identities.unwrap_or_default();
    if destinations.len() > MAX_ROOM_PARTICIPANTS as usize {
        return Err(invalid(format!(
            "destination_identities: at most {MAX_ROOM_PARTICIPANTS} identities"
        )));
    }
    if destinations
        .iter()
        .any(|identity| identity.is_empty() || identity.len() > token::MAX_NAME_BYTES)
    {
        return Err(invalid(format!(
            "destination_identities: each must be 1 to {} bytes",
            token::MAX_NAME_BYTES
        )));
    }
    Ok(DataMessage {
        payload,
        topic: request.topic.filter(|topic| !topic.is_empty()),
        destination_identities: destinations,
        reliable: request.reliable.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: Value) -> Result<DataMessage, ApiError> {
        data_message(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn room_names_are_one_to_128_characters_without_control_characters() {
        for good in [
            "a",
            "standup",
            "Town hall 2027",
            "réunion",
            &"x".repeat(128),
        ] {
            assert!(validate_room_name(good).is_ok(), "{good:?}");
        }
        // 128 characters of three bytes each are more than a token may name.
        for bad in [
            "",
            "   ",
            "a\nb",
            "tab\there",
            &"x".repeat(129),
            &"€".repeat(100),
        ] {
            assert!(validate_room_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_data_message_has_exactly_one_payload_within_the_limit() {
        let text = data(serde_json::json!({"payload": "hi", "topic": "chat"})).unwrap();
        assert_eq!(text.payload, b"hi");
        assert_eq!(text.topic.as_deref(), Some("chat"));
        assert!(text.reliable && text.destination_identities.is_empty());
        let bytes = data(serde_json::json!({
            "payload_base64": "AAEC", "reliable": false, "destination_identities": ["bob"]
        }))
        .unwrap();
        assert_eq!(bytes.payload, [0, 1, 2]);
        assert!(!bytes.reliable);
        assert_eq!(bytes.destination_identities, ["bob"]);
        assert!(data(serde_json::json!({"payload": "x".repeat(MAX_DATA_BYTES)})).is_ok());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"payload": "a", "payload_base64": "YQ=="}),
            serde_json::json!({"payload": ""}),
            serde_json::json!({"payload": "x".repeat(MAX_DATA_BYTES + 1)}),
            serde_json::json!({"payload_base64": "not base64!"}),
            serde_json::json!({"payload": "a", "destination_identities": [""]}),
            serde_json::json!({"payload": "a", "topic": "x".repeat(257)}),
        ] {
            assert!(data(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn publish_sources_are_livekits_names() {
        assert_eq!(
            validate_sources(vec!["camera".into(), "microphone".into(), "camera".into()]).unwrap(),
            ["camera", "microphone"]
        );
        assert!(validate_sources(vec!["webcam".into()]).is_err());
    }

    #[test]
    fn control_errors_answer_with_their_status() {
        for (error, status) in [
            (ControlError::RoomNotRunning, StatusCode::CONFLICT),
            (
                ControlError::NoParticipant("a".into()),
                StatusCode::NOT_FOUND,
            ),
            (ControlError::NoTrack("t".into()), StatusCode::NOT_FOUND),
            (ControlError::Stopped, StatusCode::SERVICE_UNAVAILABLE),
            (ControlError::CompositeRunning, StatusCode::CONFLICT),
            (ControlError::NoComposite, StatusCode::NOT_FOUND),
            (
                ControlError::CompositeUnavailable("no encoder".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ] {
            assert_eq!(control_error(error).status(), status);
        }
    }
}
