//! `/v1/live-streams/{id}/simulcast-targets`: the RTMP(S) servers (YouTube, Twitch, Facebook,
//! …) a live stream is restreamed to while it is live. Targets may be added and removed at any
//! time; the media plane follows the `simulcast_target.created`/`deleted` events, so a target
//! added while the stream is live starts at once and a removed one stops.
//!
//! The URL is checked here like any user URL (scheme `rtmp` or `rtmps`, a host that resolves to
//! an address the server may reach: see [`SimulcastUrlValidator`]); the stream key is stored
//! sealed and only its last characters are ever shown back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_media::ladder::RungSpec;
use sluice_storage::{
    EventType, NewEvent, NewSimulcastTarget, SimulcastTarget, SimulcastTargetStatus,
    SOURCE_RENDITION,
};
use sluice_storage::{LiveStream, LiveStreamId, SimulcastTargetId};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope};
use crate::AppState;

const STREAM_NOT_FOUND_MESSAGE: &str = "live stream not found";
const NOT_FOUND: ApiError = ApiError::NotFound("simulcast target not found");
/// Most targets one live stream may have.
pub const MAX_SIMULCAST_TARGETS: u64 = 32;
const MAX_URL_CHARS: usize = 2048;
const MAX_STREAM_KEY_CHARS: usize = 512;
/// How many trailing characters of a stream key are shown back.
const SHOWN_KEY_CHARS: usize = 4;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSimulcastTarget {
    /// `rtmp://host[:port]/app` or `rtmps://host[:port]/app`, without the stream key.
    #[schema(example = "rtmp://a.rtmp.youtube.com/live2")]
    url: String,
    /// The stream key the target gave you.
    #[schema(example = "abcd-efgh-ijkl-mnop")]
    stream_key: String,
    /// `source` (the publisher's own media, the default) or the name of a rung of the
    /// stream's ladder (`720p`).
    #[serde(default)]
    #[schema(example = "source")]
    rendition: Option<String>,
    /// Forward the rendition's packets as they are (the default and only mode).
    #[serde(default)]
    #[schema(example = true)]
    passthrough: Option<bool>,
}

/// A simulcast target and where its connection stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulcastTargetView {
    #[schema(example = "st_2Yb8kQ4mXr7TnC1v")]
    id: String,
    live_stream_id: String,
    url: String,
    /// The stream key with all but its last characters hidden.
    #[schema(example = "…mnop")]
    stream_key: String,
    rendition: String,
    passthrough: bool,
    /// `idle` (the stream is not live), `connecting`, `live` or `errored` (retried while the
    /// stream is live).
    #[schema(value_type = String, example = "live")]
    status: SimulcastTargetStatus,
    /// Why the last connection failed, if it did.
    last_error: Option<String>,
    /// Bytes written to the target so far.
    bytes_sent: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SimulcastTarget> for SimulcastTargetView {
    fn from(target: SimulcastTarget) -> Self {
        Self {
            stream_key: masked_key(&target.stream_key),
            id: target.id.into(),
            live_stream_id: target.live_stream_id.into(),
            url: target.url,
            rendition: target.rendition,
            passthrough: target.passthrough,
            status: target.status,
            last_error: target.last_error,
            bytes_sent: target.bytes_sent,
            created_at: target.created_at,
            updated_at: target.updated_at,
        }
    }
}

/// `…` and the last characters of `key` (none of a key too short to hide anything).
fn masked_key(key: &str) -> String {
    let count = key.chars().count();
    if count <= 2 * SHOWN_KEY_CHARS {
        return "…".to_owned();
    }
    let tail: String = key.chars().skip(count - SHOWN_KEY_CHARS).collect();
    format!("…{tail}")
}

/// The `data` of an event about `target`: its view, the stream key masked.
pub fn simulcast_target_event_data(target: SimulcastTarget) -> Value {
    serde_json::to_value(SimulcastTargetView::from(target)).unwrap_or(Value::Null)
}

/// Adds a simulcast target to a live stream; when the stream is live it connects at once.
#[utoipa::path(post, path = "/v1/live-streams/{id}/simulcast-targets", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    request_body = CreateSimulcastTarget,
    responses(
        (status = 201, description = "Created", body = Envelope<SimulcastTargetView>),
        (status = 400, description = "Invalid URL, address, stream key or rendition", body = ErrorBody),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
    ApiJson(request): ApiJson<CreateSimulcastTarget>,
) -> Result<(StatusCode, Json<Envelope<SimulcastTargetView>>), ApiError> {
    let stream = find_stream(&state, &live_stream_id).await?;
    let rendition = request
        .rendition
        .unwrap_or_else(|| SOURCE_RENDITION.to_owned());
    let rungs: Vec<&str> = stream.ladder.rungs.iter().map(RungSpec::name).collect();
    if rendition != SOURCE_RENDITION && !rungs.contains(&rendition.as_str()) {
        return Err(ApiError::InvalidRequest(format!(
            "rendition: {rendition:?} is neither \"source\" nor a rung of this stream's ladder ({})",
            rungs.join(", ")
        )));
    }
    if request.passthrough == Some(false) {
        return Err(ApiError::InvalidRequest(
            "passthrough: only true is supported: a target gets its rendition's packets as they are"
                .to_owned(),
        ));
    }
    validate_target(&state, "", &request.url, &request.stream_key).await?;
    if state.db.count_simulcast_targets(&stream.id).await? >= MAX_SIMULCAST_TARGETS {
        return Err(too_many_targets());
    }
    let target = add(
        &state,
        &stream.id,
        NewSimulcastTarget {
            url: request.url,
            stream_key: request.stream_key,
            rendition,
            passthrough: true,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: target.into(),
        }),
    ))
}

/// The answer to a stream asking for more than [`MAX_SIMULCAST_TARGETS`].
pub(crate) fn too_many_targets() -> ApiError {
    ApiError::InvalidRequest(format!(
        "a live stream has at most {MAX_SIMULCAST_TARGETS} simulcast targets"
    ))
}

/// Checks a target's URL (its length, then the server's address policy) and stream key. Errors
/// name the fields after `field_prefix` (`""`, or where the target sits in a larger body).
pub(crate) async fn validate_target(
    state: &AppState,
    field_prefix: &str,
    url: &str,
    stream_key: &str,
) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::InvalidRequest(message);
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid(format!(
            "{field_prefix}url: must be at most {MAX_URL_CHARS} characters"
        )));
    }
    if stream_key.is_empty()
        || stream_key.chars().count() > MAX_STREAM_KEY_CHARS
        || stream_key
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!(
            "{field_prefix}stream_key: must be 1 to {MAX_STREAM_KEY_CHARS} characters without spaces or control characters"
        )));
    }
    (state.simulcast_url_validator)(url.to_owned())
        .await
        .map_err(|message| invalid(format!("{field_prefix}url: {message}")))
}

/// Adds an already validated target to a live stream and publishes `simulcast_target.created`
/// (the restreamer connects it at once when the stream is live).
pub(crate) async fn add(
    state: &AppState,
    live_stream_id: &LiveStreamId,
    target: NewSimulcastTarget,
) -> Result<SimulcastTarget, ApiError> {
    let target = state
        .db
        .create_simulcast_target(live_stream_id, &target)
        .await
        .map_err(ApiError::not_found_as(STREAM_NOT_FOUND_MESSAGE))?;
    state
        .events
        .publish(NewEvent::new(
            EventType::SimulcastTargetCreated,
            &target.id,
            simulcast_target_event_data(target.clone()),
        ))
        .await?;
    Ok(target)
}

/// Removes a target and publishes `simulcast_target.deleted` (the restreamer disconnects it).
pub(crate) async fn remove(state: &AppState, id: &SimulcastTargetId) -> Result<(), ApiError> {
    let target = state
        .db
        .delete_simulcast_target(id)
        .await
        .map_err(|error| {
            if error.is_not_found() {
                NOT_FOUND
            } else {
                error.into()
            }
        })?;
    state
        .events
        .publish(NewEvent::new(
            EventType::SimulcastTargetDeleted,
            &target.id.clone(),
            simulcast_target_event_data(target),
        ))
        .await?;
    Ok(())
}

/// A live stream's simulcast targets, oldest first.
#[utoipa::path(get, path = "/v1/live-streams/{id}/simulcast-targets", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The targets", body = Envelope<Vec<SimulcastTargetView>>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
) -> Result<Json<Envelope<Vec<SimulcastTargetView>>>, ApiError> {
    let stream = find_stream(&state, &live_stream_id).await?;
    let targets = state.db.list_simulcast_targets(&stream.id).await?;
    Ok(Json(Envelope {
        data: targets.into_iter().map(SimulcastTargetView::from).collect(),
    }))
}

/// The live stream a path names.
async fn find_stream(state: &AppState, live_stream_id: &str) -> Result<LiveStream, ApiError> {
    let not_found = || ApiError::NotFound(STREAM_NOT_FOUND_MESSAGE);
    let id = LiveStreamId::parse(live_stream_id).map_err(|_| not_found())?;
    state.db.get_live_stream(&id).await?.ok_or_else(not_found)
}

async fn find(
    state: &AppState,
    live_stream_id: &str,
    target_id: &str,
) -> Result<SimulcastTarget, ApiError> {
    let target_id = SimulcastTargetId::parse(target_id).map_err(|_| NOT_FOUND)?;
    state
        .db
        .get_simulcast_target(&target_id)
        .await?
        .filter(|target| target.live_stream_id == live_stream_id)
        .ok_or(NOT_FOUND)
}

/// One simulcast target of a live stream.
#[utoipa::path(get, path = "/v1/live-streams/{id}/simulcast-targets/{target_id}", tag = "live streams",
    params(
        ("id" = String, Path, description = "Live stream id (`ls_…`)"),
        ("target_id" = String, Path, description = "Simulcast target id (`st_…`)"),
    ),
    responses(
        (status = 200, description = "The target", body = Envelope<SimulcastTargetView>),
        (status = 404, description = "No such live stream or target", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath((live_stream_id, target_id)): ApiPath<(String, String)>,
) -> Result<Json<Envelope<SimulcastTargetView>>, ApiError> {
    let target = find(&state, &live_stream_id, &target_id).await?;
    Ok(Json(Envelope {
        data: target.into(),
    }))
}

/// Removes a simulcast target; when the stream is live its connection is closed.
#[utoipa::path(delete, path = "/v1/live-streams/{id}/simulcast-targets/{target_id}", tag = "live streams",
    params(
        ("id" = String, Path, description = "Live stream id (`ls_…`)"),
        ("target_id" = String, Path, description = "Simulcast target id (`st_…`)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such live stream or target", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((live_stream_id, target_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let target = find(&state, &live_stream_id, &target_id).await?;
    remove(&state, &target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_are_masked_to_their_last_characters() {
        assert_eq!(masked_key("abcd-efgh-ijkl-mnop"), "…mnop");
        assert_eq!(masked_key("short"), "…");
        assert_eq!(masked_key(""), "…");
    }
}
