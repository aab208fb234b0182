//! HLS delivery: `GET /hls/{playback_id}/{*path}` serves the playlists and CMAF segments the
//! packager stored under `live/{live_stream_id}/…`, with the media types and caching of
//! RFC 8216 §4 and the HLS authoring spec (playlists fresh, segments immutable).
//!
//! The request path never reaches the store as given: it must be at most two plain segments
//! (`[A-Za-z0-9._-]`, no `.`/`..`) with a known extension, and the object key is rebuilt from the
//! server-made live stream id found by playback id.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sluice_storage::ObjectKey;

use crate::error::ApiError;
use crate::AppState;

/// Deepest path under a playback id: `{rendition}/{segment}`.
const MAX_PATH_SEGMENTS: usize = 2;

const PLAYLIST_CACHE: &str = "no-cache, max-age=1";
const MEDIA_CACHE: &str = "public, max-age=31536000, immutable";

const NOT_FOUND: ApiError = ApiError::NotFound("not found");

/// What kind of HLS object a file name denotes, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HlsObject {
    Playlist,
    InitSegment,
    VideoSegment,
    AudioSegment,
}

impl HlsObject {
    fn from_name(name: &str) -> Option<Self> {
        match name.rsplit_once('.')?.1 {
            "m3u8" => Some(Self::Playlist),
            "mp4" => Some(Self::InitSegment),
            "m4s" => Some(Self::VideoSegment),
            "m4a" => Some(Self::AudioSegment),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::InitSegment => "video/mp4",
            Self::VideoSegment => "video/iso.segment",
            Self::AudioSegment => "audio/mp4",
        }
    }

    fn cache_control(self) -> &'static str {
        match self {
            Self::Playlist => PLAYLIST_CACHE,
            Self::InitSegment | Self::VideoSegment | Self::AudioSegment => MEDIA_CACHE,
        }
    }
}

/// A playlist, init segment or media segment of a playback id.
#[utoipa::path(get, path = "/hls/{playback_id}/{*path}", tag = "playback",
    params(
        ("playback_id" = String, Path, description = "Playback id"),
        ("path" = String, Path, description = "`master.m3u8`, or `{rendition}/{file}` such as `v0/index.m3u8`"),
    ),
    responses(
        (status = 200, description = "The object: playlists as `application/vnd.apple.mpegurl`, \
            segments as `video/mp4`, `video/iso.segment` or `audio/mp4`", body = Vec<u8>),
        (status = 404, description = "No such object", body = crate::error::ErrorBody),
    ))]
pub async fn serve(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((playback_id, path)) = path.map_err(|_| NOT_FOUND)?;
    // One more piece than allowed is enough to refuse: a path of many `/` allocates nothing more.
    let segments: Vec<&str> = path.splitn(MAX_PATH_SEGMENTS + 1, '/').collect();
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(NOT_FOUND);
    }
    let kind = segments
        .last()
        .and_then(|name| HlsObject::from_name(name))
        .ok_or(NOT_FOUND)?;
    // Validate the playback id and path as key segments before touching the database.
    ObjectKey::new(std::iter::once(playback_id.as_str()).chain(segments.iter().copied()))
        .map_err(|_| NOT_FOUND)?;
    let stream = state
        .db
        .find_by_playback_id(&playback_id)
        .await?
        .ok_or(NOT_FOUND)?;
    let key = ObjectKey::new(["live", stream.id.as_str()].into_iter().chain(segments))
        .map_err(|_| NOT_FOUND)?;
    let body = state.store.get(&key).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(kind.content_type()),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(kind.cache_control()),
            ),
        ],
        body,
    )
        .into_response())
}
