//! Transcripts of generated subtitles: `GET /v1/assets/{id}/transcript.{vtt,srt,txt,json}`
//! reads an asset's recognised lines in the form asked for, and `GET /v1/search?q=…` finds
//! spoken words in every ready transcript (the database's full-text search: SQLite FTS5 or
//! Postgres), with the time they were said and a thumbnail of that moment.
//!
//! The lines are the database's (the worker stores them when a track becomes ready); the
//! renderings are the packager's ([`sluice_packager::subtitles`]), the same code that writes
//! the HLS subtitles rendition.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_packager::subtitles::{to_srt, to_text, to_webvtt, Cue};
use sluice_storage::{AssetId, PlaybackPolicy, Transcript, TranscriptLine, TranscriptStatus};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

use crate::assets::{find, TrackView};
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiPath, Envelope};
use crate::AppState;

/// Most hits one search returns.
const MAX_SEARCH_LIMIT: u64 = 100;
/// Hits a search returns when it names no limit.
const DEFAULT_SEARCH_LIMIT: u64 = 20;
/// Longest accepted search query, in bytes.
const MAX_QUERY_BYTES: usize = 512;

/// The forms a transcript is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TranscriptFormat {
    WebVtt,
    Srt,
    Text,
    Json,
}

impl TranscriptFormat {
    /// The format of `transcript.{ext}`.
    pub(crate) fn from_file_name(file: &str) -> Option<Self> {
        match file.strip_prefix("transcript.")? {
            "vtt" => Some(Self::WebVtt),
            "srt" => Some(Self::Srt),
            "txt" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::WebVtt => "text/vtt; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// Which transcript of an asset.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    /// The track's language (default: the asset's first text track).
    language_code: Option<String>,
}

/// One recognised line, in seconds from the start of the asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineView {
    #[schema(example = 12.48)]
    start: f64,
    #[schema(example = 15.02)]
    end: f64,
    #[schema(example = "Welcome to the quarterly review.")]
    text: String,
}

impl From<TranscriptLine> for LineView {
    fn from(line: TranscriptLine) -> Self {
        Self {
            start: seconds(line.start_ms),
            end: seconds(line.end_ms),
            text: line.text,
        }
    }
}

/// A transcript as JSON: its track and its lines in time order.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptView {
    track: TrackView,
    lines: Vec<LineView>,
}

/// An asset's transcript, as WebVTT, SRT, plain text (one line per cue) or JSON.
#[utoipa::path(get, path = "/v1/assets/{id}/{file}", tag = "assets",
    params(
        ("id" = String, Path, description = "Asset id (`asset_…`)"),
        ("file" = String, Path, description = "`transcript.vtt`, `transcript.srt`, `transcript.txt` or `transcript.json`"),
        TranscriptQuery,
    ),
    responses(
        (status = 200, description = "The transcript (JSON shown; the other forms are text)", body = Envelope<TranscriptView>),
        (status = 404, description = "No such asset, file or text track", body = ErrorBody),
        (status = 409, description = "The track is still being made, or errored", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn transcript(
    State(state): State<AppState>,
    ApiPath((id, file)): ApiPath<(String, String)>,
    query: Result<Query<TranscriptQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let format = TranscriptFormat::from_file_name(&file).ok_or(ApiError::NotFound(
        "not found: an asset's transcript is transcript.vtt, .srt, .txt or .json",
    ))?;
    let asset = find(&state, &id).await?;
    let tracks = state.db.transcripts_of(&asset.id).await?;
    let track = choose_track(tracks, query.language_code.as_deref())?;
    let lines = state.db.transcript_lines(&track.id).await?;
    let body = match format {
        TranscriptFormat::Json => {
            let view = TranscriptView {
                track: TrackView::from(&track),
                lines: lines.into_iter().map(LineView::from).collect(),
            };
            return Ok(Json(Envelope { data: view }).into_response());
        }
        TranscriptFormat::WebVtt => to_webvtt(&cues(&lines)),
        TranscriptFormat::Srt => to_srt(&cues(&lines)),
        TranscriptFormat::Text => to_text(&cues(&lines)),
    };
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// The ready track of `language_code`, or the first track.
fn choose_track(
    tracks: Vec<Transcript>,
    language_code: Option<&str>,
) -> Result<Transcript, ApiError> {
    let track = match language_code {
        Some(language) => tracks
            .into_iter()
            .find(|track| track.language_code.eq_ignore_ascii_case(language)),
        None => tracks.into_iter().next(),
    }
    .ok_or(ApiError::NotFound(
        "the asset has no text track of that language (ask for generated_subtitles when creating it)",
    ))?;
    match track.status {
        TranscriptStatus::Ready => Ok(track),
        TranscriptStatus::Preparing => Err(ApiError::Conflict(
            "the transcript is still being made; asset.track.ready announces it",
        )),
        TranscriptStatus::Errored => Err(ApiError::Conflict(
            "the subtitles could not be generated; the track's error says why",
        )),
    }
}

fn cues(lines: &[TranscriptLine]) -> Vec<Cue> {
    lines
        .iter()
        .map(|line| Cue::from_millis(line.start_ms, line.end_ms, line.text.clone()))
        .collect()
}

/// What to look for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words that were said; every word must be in the line (case and endings aside).
    q: String,
    /// How many hits (1 to 100, default 20), best first.
    limit: Option<u64>,
}

impl SearchQuery {
    /// The words looked for, checked; returns how many hits to give.
    pub(crate) fn checked_limit(&self) -> Result<u64, ApiError> {
        if self.q.trim().is_empty() {
            return Err(ApiError::InvalidRequest(
                "q: give the words to look for".to_owned(),
            ));
        }
        if self.q.len() > MAX_QUERY_BYTES {
            return Err(ApiError::InvalidRequest(format!(
                "q: at most {MAX_QUERY_BYTES} bytes"
            )));
        }
        let limit = self.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
        if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
            return Err(ApiError::InvalidRequest(format!(
                "limit: must be between 1 and {MAX_SEARCH_LIMIT}"
            )));
        }
        Ok(limit)
    }

    /// The words looked for.
    pub(crate) fn words(&self) -> &str {
        &self.q
    }
}

/// A line of a transcript that holds the words looked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHitView {
    #[schema(example = "asset_9fK2mP4qR6sT8uV0wX2y")]
    asset_id: String,
    #[schema(example = "track_4hT8kLm2Qp9Rs6Vw1Xy3Za5B")]
    track_id: String,
    #[schema(example = "en")]
    language_code: String,
    /// When the line starts, in seconds from the start of the asset.
    #[schema(example = 12.48)]
    start: f64,
    #[schema(example = 15.02)]
    end: f64,
    /// The whole line the words are in.
    #[schema(example = "Welcome to the quarterly review.")]
    text: String,
    /// A picture of that moment, under the asset's first public playback id; `null` without
    /// one (a signed playback id's thumbnail needs a token).
    #[schema(example = "http://localhost:8080/thumbnails/Xk3v9QpL2mZr8TnB4wYc7DsA.jpg?time=12.48")]
    thumbnail_url: Option<String>,
}

/// Finds spoken words in every ready transcript.
#[utoipa::path(get, path = "/v1/search", tag = "assets",
    params(SearchQuery),
    responses(
        (status = 200, description = "The lines found, best match first", body = Envelope<Vec<SearchHitView>>),
        (status = 400, description = "No query, or a bad limit", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn search(
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Envelope<Vec<SearchHitView>>>, ApiError> {
    let Query(query) = query?;
    let limit = query.checked_limit()?;
    let hits = state.db.search_transcripts(&query.q, limit).await?;
    let base = state.public_url.trim_end_matches('/');
    let mut data = Vec::with_capacity(hits.len());
    // Hits of one asset share its playback id: each asset is looked up once.
    let mut public_ids: HashMap<AssetId, Option<String>> = HashMap::new();
    for hit in hits {
        let public = match public_ids.get(&hit.asset_id) {
            Some(public) => public.clone(),
            None => {
                let public = state
                    .db
                    .asset_playback_ids(&hit.asset_id)
                    .await?
                    .into_iter()
                    .find(|playback_id| playback_id.policy == PlaybackPolicy::Public)
                    .map(|playback_id| playback_id.id.to_string());
                public_ids.insert(hit.asset_id.clone(), public.clone());
                public
            }
        };
        let start = seconds(hit.start_ms);
        data.push(SearchHitView {
            thumbnail_url: public
                .map(|playback_id| format!("{base}/thumbnails/{playback_id}.jpg?time={start}")),
            asset_id: hit.asset_id.to_string(),
            track_id: hit.track_id.to_string(),
            language_code: hit.language_code,
            start,
            end: seconds(hit.end_ms),
            text: hit.text,
        });
    }
    Ok(Json(Envelope { data }))
}

/// Milliseconds as seconds.
pub(crate) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_files_are_vtt_srt_txt_or_json() {
        use TranscriptFormat::*;
        for (file, format) in [
            ("transcript.vtt", Some(WebVtt)),
            ("transcript.srt", Some(Srt)),
            ("transcript.txt", Some(Text)),
            ("transcript.json", Some(Json)),
            ("transcript.pdf", None),
            ("transcript", None),
            ("playback-ids", None),
            ("subtitles.vtt", None),
        ] {
            assert_eq!(TranscriptFormat::from_file_name(file), format, "{file}");
        }
    }
}
