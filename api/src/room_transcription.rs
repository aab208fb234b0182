//! Live transcription of rooms: `POST /v1/rooms/{id}/transcription/start|stop` turns a room's
//! transcription setting on and off (its running session at once, and every later one),
//! `GET /v1/rooms/{id}/sessions/{session_id}/transcript.{vtt,srt,txt,json}` reads what was
//! said in one session, line by line, with who said it, and `GET /v1/rooms/search?q=…` finds
//! spoken words in every room session's transcript (the same full-text search as
//! `/v1/search`'s, which covers assets).
//!
//! The room engine recognises each participant's microphone while the session runs, sends
//! each line to the room's clients (LiveKit's `TranscriptionReceived`) and stores it
//! (`sluice_rooms::transcription`); this module is the setting and the reading. Renderings are
//! the packager's ([`sluice_packager::subtitles`]), each cue's text led by the speaker's name.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_packager::subtitles::{to_srt, to_text, to_webvtt, Cue};
use sluice_rooms::ControlError;
use sluice_storage::{Room, RoomSessionId, RoomTranscriptLine, RoomTranscription};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope};
use crate::rooms::{control_error, engine, find, view, RoomView};
use crate::transcripts::{seconds, SearchQuery, TranscriptFormat};
use crate::AppState;

/// The language a room is transcribed in when none is given.
const DEFAULT_LANGUAGE: &str = "en";

/// How a room's microphones are transcribed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionRequest {
    /// The language spoken (default `en`, the one language recognised).
    #[schema(example = "en")]
    language: Option<String>,
}

/// A room's transcription setting, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTranscriptionView {
    #[schema(example = "en")]
    language: String,
}

impl From<RoomTranscription> for RoomTranscriptionView {
    fn from(transcription: RoomTranscription) -> Self {
        Self {
            language: transcription.language,
        }
    }
}

/// Checks a transcription request against what this server recognises.
pub(crate) fn check_transcription(
    state: &AppState,
    request: TranscriptionRequest,
) -> Result<RoomTranscription, ApiError> {
    let language = request
        .language
        .unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned());
    let (language, _) = crate::assets::check_speech_track(
        "transcription",
        "language",
        language,
        None,
        "transcript",
        state.speech_unavailable.as_deref(),
    )?;
    Ok(RoomTranscription { language })
}

/// Turns a room's transcription on: its running session is transcribed from now on (when it
/// runs on this server), and so is every later session, until stopped. Each participant's
/// microphone is recognised; clients receive the lines as LiveKit transcription packets.
#[utoipa::path(post, path = "/v1/rooms/{id}/transcription/start", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body(content = Option<TranscriptionRequest>, description = "The language spoken (default `en`)"),
    responses(
        (status = 200, description = "Transcribed; the room with its setting", body = Envelope<RoomView>),
        (status = 400, description = "A language not recognised", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "This server recognises no speech", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn start(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Option<ApiJson<TranscriptionRequest>>,
) -> Result<Json<Envelope<RoomView>>, ApiError> {
    let request = request.map(|ApiJson(request)| request).unwrap_or_default();
    let transcription = check_transcription(&state, request)?;
    let room = find(&state, &id).await?;
    // A server without rooms only stores the setting: the node hosting the room reads it.
    if let Ok(rooms) = engine(&state) {
        rooms
            .start_transcription(&room.id, &room.name, &transcription.language)
            .await
            .map_err(control_error)?;
    }
    set(&state, &room, Some(&transcription)).await
}

/// Turns a room's transcription off: its running session's transcription stops when the
/// session runs on this server (its last lines are still sent and stored; on another node it
/// goes on until the session ends), and later sessions are not transcribed.
#[utoipa::path(post, path = "/v1/rooms/{id}/transcription/stop", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 200, description = "Not transcribed; the room", body = Envelope<RoomView>),
        (status = 404, description = "No such room", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<RoomView>>, ApiError> {
    let room = find(&state, &id).await?;
    if let Ok(rooms) = engine(&state) {
        match rooms.stop_transcription(&room.name).await {
            // Not transcribed now (or not running here): nothing to stop.
            Ok(()) | Err(ControlError::NoTranscription) => {}
            Err(e) => return Err(control_error(e)),
        }
    }
    set(&state, &room, None).await
}

/// Stores a room's transcription setting and answers with the room.
async fn set(
    state: &AppState,
    room: &Room,
    transcription: Option<&RoomTranscription>,
) -> Result<Json<Envelope<RoomView>>, ApiError> {
    let room = state
        .db
        .set_room_transcription(&room.id, transcription)
        .await?
        .ok_or(ApiError::NotFound("room not found"))?;
    Ok(Json(Envelope {
        data: view(state, room).await?,
    }))
}

/// One line of a room session's transcript, in seconds from the session's start.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomLineView {
    #[schema(example = 12.48)]
    start: f64,
    #[schema(example = 15.02)]
    end: f64,
    #[schema(example = "Let's start with the budget.")]
    text: String,
    /// Who said it.
    participant: SpeakerView,
    /// The microphone track it was recognised from (`TR_…`).
    #[schema(example = "TR_AMkq2Lb8Tz3x")]
    track_sid: String,
}

/// The participant a line was recognised from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpeakerView {
    #[schema(example = "PA_7hJ2kL9mQ4xR")]
    sid: String,
    #[schema(example = "ana")]
    identity: String,
    #[schema(example = "Ana")]
    name: String,
}

impl From<RoomTranscriptLine> for RoomLineView {
    fn from(line: RoomTranscriptLine) -> Self {
        Self {
            start: seconds(line.start_ms),
            end: seconds(line.end_ms),
            text: line.text,
            participant: SpeakerView {
                sid: line.participant_sid,
                identity: line.participant_identity,
                name: line.participant_name,
            },
            track_sid: line.track_sid,
        }
    }
}

/// A room session's transcript as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTranscriptView {
    #[schema(example = "rsess_3kP9sQ2mT7vX1bN4cR8y")]
    session_id: String,
    /// `null` while the session runs (lines are still being added).
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
    lines: Vec<RoomLineView>,
}

/// What was said in a room session, as WebVTT, SRT, plain text (each cue led by the speaker's
/// name) or JSON. Lines are stored as they are recognised, so a running session's transcript
/// grows; `room.transcription.stopped` says a session's is complete.
#[utoipa::path(get, path = "/v1/rooms/{id}/sessions/{session_id}/{file}", tag = "rooms",
    params(
        ("id" = String, Path, description = "Room id (`room_…`)"),
        ("session_id" = String, Path, description = "Room session id (`rsess_…`)"),
        ("file" = String, Path, description = "`transcript.vtt`, `transcript.srt`, `transcript.txt` or `transcript.json`"),
    ),
    responses(
        (status = 200, description = "The transcript (JSON shown; the other forms are text); empty when nothing was transcribed", body = Envelope<RoomTranscriptView>),
        (status = 404, description = "No such room, session or file", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn transcript(
    State(state): State<AppState>,
    ApiPath((id, session_id, file)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let format = TranscriptFormat::from_file_name(&file).ok_or(ApiError::NotFound(
        "not found: a session's transcript is transcript.vtt, .srt, .txt or .json",
    ))?;
    let room = find(&state, &id).await?;
    let session = match RoomSessionId::parse(&session_id) {
        Ok(session_id) => state.db.get_room_session(&session_id).await?,
        Err(_) => None,
    }
    .filter(|session| session.room_id == room.id)
    .ok_or(ApiError::NotFound("room session not found"))?;
    let lines = state.db.room_transcript_lines(&session.id).await?;
    let body = match format {
        TranscriptFormat::Json => {
            let view = RoomTranscriptView {
                session_id: session.id.to_string(),
                ended_at: session.ended_at,
                lines: lines.into_iter().map(RoomLineView::from).collect(),
            };
            return Ok(Json(Envelope { data: view }).into_response());
        }
        TranscriptFormat::WebVtt => to_webvtt(&cues(&lines)),
        TranscriptFormat::Srt => to_srt(&cues(&lines)),
        TranscriptFormat::Text => to_text(&cues(&lines)),
    };
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// Each line as a cue led by its speaker's name (their identity when they gave none).
fn cues(lines: &[RoomTranscriptLine]) -> Vec<Cue> {
    lines
        .iter()
        .map(|line| {
            let speaker = if line.participant_name.is_empty() {
                &line.participant_identity
            } else {
                &line.participant_name
            };
            Cue::from_millis(
                line.start_ms,
                line.end_ms,
                format!("{speaker}: {}", line.text),
            )
        })
        .collect()
}

/// A line of a room session's transcript that holds the words looked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomSearchHitView {
    #[schema(example = "room_2Yb8kQ4mXr7TnC1vPq9L")]
    room_id: String,
    #[schema(example = "rsess_3kP9sQ2mT7vX1bN4cR8y")]
    session_id: String,
    /// When the line starts, in seconds from the session's start.
    #[schema(example = 12.48)]
    start: f64,
    #[schema(example = 15.02)]
    end: f64,
    /// The whole line the words are in.
    #[schema(example = "Let's start with the budget.")]
    text: String,
    /// Who said it.
    participant: HitSpeakerView,
    /// The session's whole transcript.
    #[schema(
        example = "http://localhost:8080/v1/rooms/room_2Yb8kQ4mXr7TnC1vPq9L/sessions/rsess_3kP9sQ2mT7vX1bN4cR8y/transcript.json"
    )]
    transcript_url: String,
}

/// The participant who said a line found.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitSpeakerView {
    #[schema(example = "ana")]
    identity: String,
    #[schema(example = "Ana")]
    name: String,
}

/// Finds spoken words in every room session's transcript, best match first.
#[utoipa::path(get, path = "/v1/rooms/search", tag = "rooms",
    params(SearchQuery),
    responses(
        (status = 200, description = "The lines found, best match first", body = Envelope<Vec<RoomSearchHitView>>),
        (status = 400, description = "No query, or a bad limit", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn search(
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Envelope<Vec<RoomSearchHitView>>>, ApiError> {
    let Query(query) = query?;
    let limit = query.checked_limit()?;
    let hits = state
        .db
        .search_room_transcripts(query.words(), limit)
        .await?;
    let base = state.public_url.trim_end_matches('/');
    let data = hits
        .into_iter()
        .map(|hit| RoomSearchHitView {
            transcript_url: format!(
                "{base}/v1/rooms/{}/sessions/{}/transcript.json",
                hit.room_id, hit.session_id
            ),
            room_id: hit.room_id.to_string(),
            session_id: hit.session_id.to_string(),
            start: seconds(hit.start_ms),
            end: seconds(hit.end_ms),
            text: hit.text,
            participant: HitSpeakerView {
                identity: hit.participant_identity,
                name: hit.participant_name,
            },
        })
        .collect();
    Ok(Json(Envelope { data }))
}
