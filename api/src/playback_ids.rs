//! `/v1/live-streams/{id}/playback-ids`: the ids under which viewers play a live stream, each
//! `public` (anyone with the URL) or `signed` (a playback token is needed, see
//! `playback_token`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_storage::LiveStreamId;
use sluice_storage::{PlaybackId, PlaybackPolicy};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope};
use crate::AppState;

const STREAM_NOT_FOUND_MESSAGE: &str = "live stream not found";
const STREAM_NOT_FOUND: ApiError = ApiError::NotFound(STREAM_NOT_FOUND_MESSAGE);
const NOT_FOUND_MESSAGE: &str = "playback id not found";
const NOT_FOUND: ApiError = ApiError::NotFound(NOT_FOUND_MESSAGE);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaybackId {
    /// `public` or `signed`.
    #[schema(value_type = String, example = "signed")]
    pub(crate) policy: PlaybackPolicy,
}

/// A playback id: play it at `/hls/{id}/master.m3u8` (with `?token=` when `signed`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaybackIdView {
    #[schema(example = "Xk3v9QpL2mZr8TnB4wYc7DsA")]
    id: String,
    /// `public` or `signed`.
    #[schema(value_type = String, example = "public")]
    policy: PlaybackPolicy,
}

impl From<PlaybackId> for PlaybackIdView {
    fn from(playback_id: PlaybackId) -> Self {
        Self {
            id: playback_id.id,
            policy: playback_id.policy,
        }
    }
}

/// Adds a playback id to a live stream.
#[utoipa::path(post, path = "/v1/live-streams/{id}/playback-ids", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    request_body = CreatePlaybackId,
    responses(
        (status = 201, description = "Created", body = Envelope<PlaybackIdView>),
        (status = 400, description = "Invalid policy", body = ErrorBody),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
    ApiJson(request): ApiJson<CreatePlaybackId>,
) -> Result<(StatusCode, Json<Envelope<PlaybackIdView>>), ApiError> {
    let live_stream_id = LiveStreamId::parse(&live_stream_id).map_err(|_| STREAM_NOT_FOUND)?;
    let playback_id = state
        .db
        .create_playback_id(&live_stream_id, request.policy)
        .await
        .map_err(ApiError::not_found_as(STREAM_NOT_FOUND_MESSAGE))?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: playback_id.into(),
        }),
    ))
}

/// A live stream's playback ids, oldest first.
#[utoipa::path(get, path = "/v1/live-streams/{id}/playback-ids", tag = "live streams",
    params(("id" = String, Path, description = "Live stream id (`ls_…`)")),
    responses(
        (status = 200, description = "The playback ids", body = Envelope<Vec<PlaybackIdView>>),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
) -> Result<Json<Envelope<Vec<PlaybackIdView>>>, ApiError> {
    let live_stream_id = LiveStreamId::parse(&live_stream_id).map_err(|_| STREAM_NOT_FOUND)?;
    if state.db.get_live_stream(&live_stream_id).await?.is_none() {
        return Err(STREAM_NOT_FOUND);
    }
    Ok(Json(Envelope {
        data: views(state.db.list_playback_ids(&live_stream_id).await?),
    }))
}

/// One playback id of a live stream.
#[utoipa::path(get, path = "/v1/live-streams/{id}/playback-ids/{playback_id}", tag = "live streams",
    params(
        ("id" = String, Path, description = "Live stream id (`ls_…`)"),
        ("playback_id" = String, Path, description = "Playback id"),
    ),
    responses(
        (status = 200, description = "The playback id", body = Envelope<PlaybackIdView>),
        (status = 404, description = "No such live stream or playback id", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath((live_stream_id, playback_id)): ApiPath<(String, String)>,
) -> Result<Json<Envelope<PlaybackIdView>>, ApiError> {
    let live_stream_id = LiveStreamId::parse(&live_stream_id).map_err(|_| NOT_FOUND)?;
    let playback_id = state
        .db
        .get_playback_id(&playback_id)
        .await?
        .filter(|found| found.live_stream_id.as_ref() == Some(&live_stream_id))
        .ok_or(NOT_FOUND)?;
    Ok(Json(Envelope {
        data: playback_id.into(),
    }))
}

/// Deletes a playback id: the stream no longer plays under it. A stream may be left with none.
#[utoipa::path(delete, path = "/v1/live-streams/{id}/playback-ids/{playback_id}", tag = "live streams",
    params(
        ("id" = String, Path, description = "Live stream id (`ls_…`)"),
        ("playback_id" = String, Path, description = "Playback id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such live stream or playback id", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((live_stream_id, playback_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let live_stream_id = LiveStreamId::parse(&live_stream_id).map_err(|_| NOT_FOUND)?;
    state
        .db
        .delete_playback_id(&live_stream_id, &playback_id)
        .await
        .map_err(ApiError::not_found_as(NOT_FOUND_MESSAGE))?;
    state.playback_ids.forget(&playback_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Where the first `public` of `playback_ids` plays, on a server reached at `public_url`:
/// `{public_url}/hls/{id}/master.m3u8`; `None` without a public one.
pub(crate) fn hls_url(public_url: &str, playback_ids: &[PlaybackId]) -> Option<String> {
    playback_ids
        .iter()
        .find(|playback_id| playback_id.policy == PlaybackPolicy::Public)
        .map(|playback_id| {
            format!(
                "{}/hls/{}/master.m3u8",
                public_url.trim_end_matches('/'),
                playback_id.id
            )
        })
}

/// The views of a stream's playback ids, as the live stream view lists them too.
pub(crate) fn views(playback_ids: Vec<PlaybackId>) -> Vec<PlaybackIdView> {
    playback_ids.into_iter().map(PlaybackIdView::from).collect()
}
