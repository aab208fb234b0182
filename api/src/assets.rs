//! `/v1/assets`: video-on-demand assets. Import one from a URL (the worker fetches it), list,
//! get and delete them, and manage their playback ids. An asset made from a direct upload is
//! created by `uploads` once its file is whole.
//!
//! [`AssetView`] / [`asset_json`] is the one JSON form of an asset that API responses, events
//! and webhooks share; [`TrackView`] / [`track_json`] that of a generated text track, listed in
//! the asset's `tracks` and carried by `asset.track.*` events.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use sluice_storage::layout;
use sluice_storage::AssetId;
use sluice_storage::{
    Asset, AssetInput, AssetSettings, AssetStatus, Db, EventType, GeneratedSubtitles, LadderCodec,
    NewAsset, NewEvent, PlaybackId, PlaybackPolicy, Transcript, TranscriptStatus,
};
use tracing::error;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::json::{page_limit, ApiJson, ApiPath, Envelope, PageEnvelope};
use crate::live_streams::validate_ladder;
use crate::playback_ids::{hls_url, views, CreatePlaybackId, PlaybackIdView};
use crate::viewers::Watched;
use crate::AppState;

/// Longest accepted `passthrough`, in characters.
const MAX_PASSTHROUGH_CHARS: usize = 255;
/// Longest accepted import URL, in bytes.
const MAX_INPUT_URL_BYTES: usize = 2048;
/// Most playback policies one request may list.
const MAX_PLAYBACK_POLICIES: usize = 10;

/// Longest accepted name of a generated subtitles track, in characters.
const MAX_TRACK_NAME_CHARS: usize = 64;
/// The languages speech is recognised in.
const SPEECH_LANGUAGES: [&str; 1] = ["en"];
/// A generated track's name when the request gives none.
const DEFAULT_TRACK_NAME: &str = "English (generated)";

const NOT_FOUND_MESSAGE: &str = "asset not found";
const NOT_FOUND: ApiError = ApiError::NotFound(NOT_FOUND_MESSAGE);

/// The settings of an asset to be made: `new_asset_settings` of an upload, and the fields of
/// a URL import beside its `input`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetSettingsRequest {
    /// A playback id is made for each (default `["public"]`; `[]` makes none).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["public"]))]
    playback_policy: Option<Vec<PlaybackPolicy>>,
    /// Rendition ladder, in the live streams' format; absent or null means the server's
    /// default.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!(["360p", "720p"]))]
    ladder: Option<Value>,
    /// `["h264"]` (default) or `["h264", "av1"]`: H.264 always, AV1 renditions besides.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["h264"]))]
    codecs: Option<Vec<LadderCodec>>,
    /// Any text of the caller's (at most 255 characters), kept with the asset.
    #[serde(default)]
    #[schema(example = "order-1234")]
    passthrough: Option<String>,
    /// Subtitles made from the asset's speech once it is ready (Mux's shape): at most one
    /// entry per language; `en` is the only language recognised.
    #[serde(default)]
    #[schema(example = json!([{"language_code": "en", "name": "English (generated)"}]))]
    generated_subtitles: Option<Vec<GeneratedSubtitlesRequest>>,
}

/// One generated subtitles track asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSubtitlesRequest {
    /// The language spoken: `en`.
    #[schema(example = "en")]
    language_code: String,
    /// The track's name in players' menus (at most 64 characters; default
    /// `English (generated)`).
    #[serde(default)]
    #[schema(example = "English (generated)")]
    name: Option<String>,
}

/// Checks one track of recognised speech asked for in `field` (`generated_subtitles`,
/// `captions`): this server recognises speech, `language` (named `language_field` in the
/// request) is one it recognises, and `name` (`default_name` when absent) fits in a playlist.
/// Returns the language and the name.
pub(crate) fn check_speech_track(
    field: &str,
    language_field: &str,
    language: String,
    name: Option<String>,
    default_name: &str,
    speech_unavailable: Option<&str>,
) -> Result<(String, String), ApiError> {
    if let Some(reason) = speech_unavailable {
        return Err(ApiError::TranscriptionUnavailable(format!(
            "{field}: this server cannot recognise speech: {reason}"
        )));
    }
    if !SPEECH_LANGUAGES.contains(&language.as_str()) {
        return Err(ApiError::InvalidRequest(format!(
            "{field}: {language_field} {language:?} is not recognised; speech is recognised in {}",
            SPEECH_LANGUAGES.join(", ")
        )));
    }
    let name = name.unwrap_or_else(|| default_name.to_owned());
    let name_chars = name.chars().count();
    if name_chars == 0
        || name_chars > MAX_TRACK_NAME_CHARS
        || name.chars().any(|c| c.is_control() || c == '"')
    {
        return Err(ApiError::InvalidRequest(format!(
            "{field}: name must be 1 to {MAX_TRACK_NAME_CHARS} characters, without double quotes or control characters"
        )));
    }
    Ok((language, name))
}

/// Checks a `generated_subtitles` list: each track as [`check_speech_track`] does, each
/// language once.
pub(crate) fn validate_generated_subtitles(
    requested: Vec<GeneratedSubtitlesRequest>,
    speech_unavailable: Option<&str>,
) -> Result<Vec<GeneratedSubtitles>, ApiError> {
    let mut checked: Vec<GeneratedSubtitles> = Vec::new();
    for entry in requested {
        let (language_code, name) = check_speech_track(
            "generated_subtitles",
            "language_code",
            entry.language_code,
            entry.name,
            DEFAULT_TRACK_NAME,
            speech_unavailable,
        )?;
        if checked
            .iter()
            .any(|track| track.language_code == language_code)
        {
            return Err(ApiError::InvalidRequest(format!(
                "generated_subtitles: language_code {language_code:?} is listed twice"
            )));
        }
        checked.push(GeneratedSubtitles {
            language_code,
            name,
        });
    }
    Ok(checked)
}

impl AssetSettingsRequest {
    /// Checks every field and fills defaults; `speech_unavailable` is why this server cannot
    /// generate subtitles, if it cannot.
    pub(crate) fn validate(
        self,
        speech_unavailable: Option<&str>,
    ) -> Result<AssetSettings, ApiError> {
        let playback_policies = self.playback_policy.unwrap_or(vec![PlaybackPolicy::Public]);
        if playback_policies.len() > MAX_PLAYBACK_POLICIES {
            return Err(ApiError::InvalidRequest(format!(
                "playback_policy: at most {MAX_PLAYBACK_POLICIES} policies"
            )));
        }
        let ladder = validate_ladder(&self.ladder.unwrap_or(Value::Null))?;
        let codecs = validate_codecs(self.codecs.unwrap_or(vec![LadderCodec::H264]))?;
        if let Some(passthrough) = &self.passthrough {
            if passthrough.chars().count() > MAX_PASSTHROUGH_CHARS {
                return Err(ApiError::InvalidRequest(format!(
                    "passthrough: must be at most {MAX_PASSTHROUGH_CHARS} characters"
                )));
            }
        }
        let generated_subtitles = validate_generated_subtitles(
            self.generated_subtitles.unwrap_or_default(),
            speech_unavailable,
        )?;
        Ok(AssetSettings {
            playback_policy: playback_policies,
            ladder,
            codecs,
            passthrough: self.passthrough,
            generated_subtitles,
        })
    }
}

/// H.264 is always encoded (every player plays it); AV1 may be added. Returned in a fixed
/// order, H.264 first.
fn validate_codecs(codecs: Vec<LadderCodec>) -> Result<Vec<LadderCodec>, ApiError> {
    let invalid = || {
        ApiError::InvalidRequest(
            "codecs: must be [\"h264\"] or [\"h264\", \"av1\"] (H.264 is always encoded)"
                .to_owned(),
        )
    };
    let av1 = codecs.contains(&LadderCodec::Av1);
    let expected = if av1 { 2 } else { 1 };
    if !codecs.contains(&LadderCodec::H264) || codecs.len() != expected {
        return Err(invalid());
    }
    Ok(if av1 {
        vec![LadderCodec::H264, LadderCodec::Av1]
    } else {
        vec![LadderCodec::H264]
    })
}

/// `{"message": …}`: why an asset or upload failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorMessage {
    /// For a person: what was wrong with the input or its processing.
    #[schema(example = "the file is not a video or audio file ffmpeg can read")]
    pub message: String,
}

/// A URL import: the worker fetches `input` and makes an asset of it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAsset {
    /// Absolute `http` or `https` URL of the video file.
    #[schema(example = "https://example.com/video.mp4")]
    input: String,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["public"]))]
    playback_policy: Option<Vec<PlaybackPolicy>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    ladder: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    codecs: Option<Vec<LadderCodec>>,
    #[serde(default)]
    passthrough: Option<String>,
    #[serde(default)]
    generated_subtitles: Option<Vec<GeneratedSubtitlesRequest>>,
}

/// `?status=&live_stream_id=&limit=&cursor=` of the asset list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAssets {
    /// Only assets in this state: `preparing`, `ready` or `errored`.
    #[param(value_type = Option<String>, example = "ready")]
    status: Option<StatusFilter>,
    /// Only the recordings of this live stream.
    #[param(example = "ls_Ab3dE5fG7hJ9kL1mN3pQ")]
    live_stream_id: Option<String>,
    /// Items per page, 1 to 100 (default 25).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    Preparing,
    Ready,
    Errored,
}

impl From<StatusFilter> for AssetStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Preparing => Self::Preparing,
            StatusFilter::Ready => Self::Ready,
            StatusFilter::Errored => Self::Errored,
        }
    }
}

/// An asset: its status, what its source holds, and what was made from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    #[schema(example = "asset_9fK2mP4qR6sT8uV0wX2y")]
    id: String,
    /// `preparing`, `ready` or `errored`.
    #[schema(value_type = String, example = "ready")]
    status: AssetStatus,
    /// Set when `status` is `errored`.
    #[schema(example = json!(null))]
    error: Option<ErrorMessage>,
    /// Percent done while preparing; 100 once ready.
    #[schema(example = 100)]
    progress: u8,
    /// Whether the master playlist plays already (it grows while the asset is preparing).
    #[schema(example = true)]
    playable: bool,
    /// Seconds, once probed.
    #[schema(example = 12.48)]
    duration: Option<f64>,
    /// The source's tracks: `type` (`video`/`audio`), `codec`, and `width`, `height`,
    /// `frame_rate`, `rotation` or `channels`, `sample_rate`; then the generated text tracks
    /// (`type: "text"`, as [`TrackView`]).
    #[schema(value_type = Vec<Object>)]
    tracks: Value,
    /// The source's container and tags.
    #[schema(value_type = Object)]
    source_metadata: Value,
    /// What was made: one entry per rendition (`name`, `codec`, `width`, `height`,
    /// `bandwidth`, …), once ready.
    #[schema(value_type = Vec<Object>)]
    renditions: Value,
    /// Play at `/hls/{id}/master.m3u8` (with `?token=` when `signed`).
    playback_ids: Vec<PlaybackIdView>,
    /// The master playlist under the first `public` playback id; `null` without one.
    #[schema(example = "http://localhost:8080/hls/Xk3v9QpL2mZr8TnB4wYc7DsA/master.m3u8")]
    playback_url: Option<String>,
    /// Where the file came from: `{"type": "upload", "upload_id"}`, `{"type": "url", "url"}`
    /// or, for a recorded live session, `{"type": "live_stream", "live_stream_id",
    /// "session_id"}`.
    #[schema(value_type = Object, example = json!({"type": "url", "url": "https://example.com/talk.mp4"}))]
    input: AssetInput,
    /// The settings the asset was created with; `{}` for a recorded live session.
    #[serde(serialize_with = "settings_or_empty")]
    #[schema(value_type = Object, example = json!({"playback_policy": ["public"], "ladder": ["720p"], "codecs": ["h264"], "passthrough": null}))]
    new_asset_settings: Option<AssetSettings>,
    /// The live stream a recorded asset came from; `null` for uploads and imports.
    #[schema(example = json!(null))]
    live_stream_id: Option<String>,
    /// The session a recorded asset came from; `null` for uploads and imports.
    #[schema(example = json!(null))]
    session_id: Option<String>,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
    #[schema(example = "2026-06-01T10:05:00.000321Z")]
    updated_at: DateTime<Utc>,
    /// Playback sessions that fetched within the last 30 s, as the answering process counts
    /// them; only when getting or listing assets (not in events).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    viewers: Option<u64>,
}

/// An asset's input as shown in views, events and webhooks: an import URL without its
/// credentials (`user:pass@`) and with every query value replaced by `redacted` (signed URLs
/// carry their signature there). The worker keeps fetching the whole URL.
fn shown_input(input: &AssetInput) -> AssetInput {
    let AssetInput::Url { url } = input else {
        return input.clone();
    };
    let Ok(mut shown) = url::Url::parse(url) else {
        return AssetInput::Url {
            url: "redacted".to_owned(),
        };
    };
    // Both only fail for URLs that cannot have credentials, which then have none to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if shown.query().is_some() {
        let pairs: Vec<(String, bool)> = shown
            .query_pairs()
            .map(|(name, value)| (name.into_owned(), value.is_empty()))
            .collect();
        // A bare `?SECRET` would show its secret as a name: then the whole query goes.
        if pairs.iter().any(|(_, bare)| *bare) {
            shown.set_query(Some("redacted"));
        } else {
            shown
                .query_pairs_mut()
                .clear()
                .extend_pairs(pairs.iter().map(|(name, _)| (name, "redacted")));
        }
    }
    shown.set_fragment(None);
    AssetInput::Url { url: shown.into() }
}

/// Shows an asset made with no settings (a recorded live session) as `{}`.
fn settings_or_empty<S: Serializer>(
    settings: &Option<AssetSettings>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match settings {
        Some(settings) => settings.serialize(serializer),
        None => serde_json::Map::new().serialize(serializer),
    }
}

/// A generated text track of an asset (Mux's text track): its subtitles rendition is listed in
/// the master playlist and its transcript served once `ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackView {
    #[schema(example = "track_4hT8kLm2Qp9Rs6Vw1Xy3Za5B")]
    id: String,
    /// Always `text`.
    #[schema(example = "text")]
    r#type: &'static str,
    /// Always `subtitles`.
    #[schema(example = "subtitles")]
    text_type: &'static str,
    /// Always `generated_vod`: recognised from the asset's speech.
    #[schema(example = "generated_vod")]
    text_source: &'static str,
    #[schema(example = "en")]
    language_code: String,
    #[schema(example = "English (generated)")]
    name: String,
    /// `preparing`, `ready` or `errored`.
    #[schema(value_type = String, example = "ready")]
    status: TranscriptStatus,
    /// Set when `status` is `errored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorMessage>,
    /// Percent of the speech recognised; 100 once ready.
    #[schema(example = 100)]
    progress: u8,
    /// The asset the track belongs to; in `asset.track.*` events only.
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_id: Option<String>,
}

impl From<&Transcript> for TrackView {
    fn from(track: &Transcript) -> Self {
        Self {
            id: track.id.to_string(),
            r#type: "text",
            text_type: "subtitles",
            text_source: "generated_vod",
            language_code: track.language_code.clone(),
            name: track.name.clone(),
            status: track.status,
            error: track.error.clone().map(|message| ErrorMessage { message }),
            progress: track.progress,
            asset_id: None,
        }
    }
}

/// A text track as `asset.track.*` events carry it: with its `asset_id`.
pub fn track_json(track: &Transcript) -> Value {
    let mut view = TrackView::from(track);
    view.asset_id = Some(track.asset_id.to_string());
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// The source's tracks followed by the text tracks.
fn all_tracks(source_tracks: &Value, text_tracks: &[Transcript]) -> Value {
    let mut tracks = match source_tracks {
        Value::Array(tracks) => tracks.clone(),
        _ => Vec::new(),
    };
    tracks.extend(
        text_tracks
            .iter()
            .filter_map(|track| serde_json::to_value(TrackView::from(track)).ok()),
    );
    Value::Array(tracks)
}

impl AssetView {
    /// The API form of `asset` with its playback ids and text tracks, on a server reached at
    /// `public_url`.
    pub fn new(
        asset: &Asset,
        playback_ids: &[PlaybackId],
        text_tracks: &[Transcript],
        public_url: &str,
    ) -> Self {
        let playback_url = hls_url(public_url, playback_ids);
        Self {
            id: asset.id.to_string(),
            status: asset.status,
            error: asset.error.clone().map(|message| ErrorMessage { message }),
            progress: asset.progress,
            playable: asset.playable,
            duration: asset.duration_ms.map(|ms| ms as f64 / 1000.0),
            tracks: all_tracks(&asset.tracks, text_tracks),
            source_metadata: asset.source_metadata.clone(),
            renditions: asset.renditions.clone(),
            playback_ids: playback_ids.iter().cloned().map(Into::into).collect(),
            playback_url,
            input: shown_input(&asset.input),
            new_asset_settings: asset.settings.clone(),
            live_stream_id: asset.live_stream_id.as_ref().map(ToString::to_string),
            session_id: asset.session_id.as_ref().map(ToString::to_string),
            created_at: asset.created_at,
            updated_at: asset.updated_at,
            viewers: None,
        }
    }
}

/// The asset in its API form, as responses, events and webhooks carry it (the worker's
/// `asset.ready` and `asset.errored` included); `public_url` is the server's base URL.
pub fn asset_json(
    asset: &Asset,
    playback_ids: &[PlaybackId],
    text_tracks: &[Transcript],
    public_url: &str,
) -> Value {
    serde_json::to_value(AssetView::new(asset, playback_ids, text_tracks, public_url))
        .unwrap_or(Value::Null)
}

/// The asset as an API response shows it: with its viewers.
async fn watched_view(state: &AppState, asset: &Asset) -> Result<AssetView, ApiError> {
    let mut view = view_of(&state.db, &state.public_url, asset).await?;
    view.viewers = Some(state.viewers.of(&Watched::Asset(asset.id.clone())));
    Ok(view)
}

async fn view_of(db: &Db, public_url: &str, asset: &Asset) -> Result<AssetView, ApiError> {
    let playback_ids = db.asset_playback_ids(&asset.id).await?;
    let text_tracks = db.transcripts_of(&asset.id).await?;
    Ok(AssetView::new(
        asset,
        &playback_ids,
        &text_tracks,
        public_url,
    ))
}

/// Publishes `event_type` about `asset`. The asset has changed for good when this runs, so a
/// failure is logged rather than failing the request.
async fn publish(state: &AppState, event_type: EventType, asset: &AssetView) {
    let recorded = match serde_json::to_value(asset) {
        Ok(data) => state
            .events
            .publish(NewEvent::new(event_type, &asset.id, data))
            .await
            .map(drop)
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(e)),
    };
    if let Err(e) = recorded {
        error!(asset_id = %asset.id, event = event_type.as_str(), error = %e,
            "Could not record an asset event.");
    }
}

/// Publishes `asset.created` about a new asset.
pub(crate) async fn publish_created(state: &AppState, asset: &Asset) {
    match view_of(&state.db, &state.public_url, asset).await {
        Ok(view) => publish(state, EventType::AssetCreated, &view).await,
        Err(e) => error!(asset_id = %asset.id, error = %e, "Could not read a new asset back."),
    }
}

/// An import URL: absolute, `http` or `https`, with a host. Whether it may be fetched (no
/// private addresses) is the worker's to check when it resolves the host.
fn validate_input_url(input: &str) -> Result<url::Url, ApiError> {
    let invalid = |why: &str| ApiError::InvalidRequest(format!("input: {why}"));
    if input.len() > MAX_INPUT_URL_BYTES {
        return Err(invalid(&format!(
            "must be at most {MAX_INPUT_URL_BYTES} bytes"
        )));
    }
    let url = url::Url::parse(input).map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    Ok(url)
}

pub(crate) async fn find(state: &AppState, id: &str) -> Result<Asset, ApiError> {
    let id = AssetId::parse(id).map_err(|_| NOT_FOUND)?;
    state.db.get_asset(&id).await?.ok_or(NOT_FOUND)
}

/// Imports a video from a URL: the asset is created `preparing` and the worker fetches and
/// processes the file.
#[utoipa::path(post, path = "/v1/assets", tag = "assets",
    request_body = CreateAsset,
    responses(
        (status = 201, description = "Created", body = Envelope<AssetView>),
        (status = 400, description = "Invalid request", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateAsset>,
) -> Result<(StatusCode, Json<Envelope<AssetView>>), ApiError> {
    let url = validate_input_url(&request.input)?;
    let checked = AssetSettingsRequest {
        playback_policy: request.playback_policy,
        ladder: request.ladder,
        codecs: request.codecs,
        passthrough: request.passthrough,
        generated_subtitles: request.generated_subtitles,
    }
    .validate(state.speech_unavailable.as_deref())?;
    let asset = state
        .db
        .create_asset(&NewAsset {
            input: AssetInput::Url { url: url.into() },
            playback_policies: checked.playback_policy.clone(),
            settings: Some(checked),
        })
        .await?;
    let data = view_of(&state.db, &state.public_url, &asset).await?;
    publish(&state, EventType::AssetCreated, &data).await;
    Ok((StatusCode::CREATED, Json(Envelope { data })))
}

/// One asset.
#[utoipa::path(get, path = "/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id (`asset_…`)")),
    responses(
        (status = 200, description = "The asset", body = Envelope<AssetView>),
        (status = 404, description = "No such asset", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<AssetView>>, ApiError> {
    let asset = find(&state, &id).await?;
    Ok(Json(Envelope {
        data: watched_view(&state, &asset).await?,
    }))
}

/// Assets, newest first, a page at a time, optionally only those in one status.
#[utoipa::path(get, path = "/v1/assets", tag = "assets",
    params(ListAssets),
    responses(
        (status = 200, description = "A page of assets", body = PageEnvelope<AssetView>),
        (status = 400, description = "Invalid status, limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListAssets>, QueryRejection>,
) -> Result<Json<PageEnvelope<AssetView>>, ApiError> {
    let Query(params) = params?;
    let limit = page_limit(params.limit)?;
    let page = state
        .db
        .list_assets(
            limit,
            params.cursor.as_deref(),
            params.status.map(AssetStatus::from),
            params.live_stream_id.as_deref(),
        )
        .await?;
    let mut data = Vec::with_capacity(page.items.len());
    for asset in page.items {
        data.push(watched_view(&state, &asset).await?);
    }
    Ok(Json(PageEnvelope {
        data,
        next_cursor: page.next_cursor,
    }))
}

/// Deletes an asset: its processing stops, its playback ids and every object it had (the
/// uploaded source included) are removed.
#[utoipa::path(delete, path = "/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id (`asset_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such asset", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let asset = find(&state, &id).await?;
    let mut prefixes = vec![asset.objects_prefix().map_err(ApiError::internal)?];
    if let Some(upload_id) = asset.upload_id() {
        prefixes.push(layout::upload(upload_id).map_err(ApiError::internal)?);
    }
    let data = view_of(&state.db, &state.public_url, &asset).await?;
    if !state.db.delete_asset(&asset.id).await? {
        return Err(NOT_FOUND);
    }
    publish(&state, EventType::AssetDeleted, &data).await;
    for prefix in prefixes {
        state.store.delete_prefix(&prefix).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An asset's playback ids, oldest first.
#[utoipa::path(get, path = "/v1/assets/{id}/playback-ids", tag = "assets",
    params(("id" = String, Path, description = "Asset id (`asset_…`)")),
    responses(
        (status = 200, description = "The playback ids", body = Envelope<Vec<PlaybackIdView>>),
        (status = 404, description = "No such asset", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list_playback_ids(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<Vec<PlaybackIdView>>>, ApiError> {
    let asset = find(&state, &id).await?;
    Ok(Json(Envelope {
        data: views(state.db.asset_playback_ids(&asset.id).await?),
    }))
}

/// Adds a playback id to an asset.
#[utoipa::path(post, path = "/v1/assets/{id}/playback-ids", tag = "assets",
    params(("id" = String, Path, description = "Asset id (`asset_…`)")),
    request_body = CreatePlaybackId,
    responses(
        (status = 201, description = "Created", body = Envelope<PlaybackIdView>),
        (status = 400, description = "Invalid policy", body = ErrorBody),
        (status = 404, description = "No such asset", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create_playback_id(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<CreatePlaybackId>,
) -> Result<(StatusCode, Json<Envelope<PlaybackIdView>>), ApiError> {
    let id = AssetId::parse(&id).map_err(|_| NOT_FOUND)?;
    let playback_id = state
        .db
        .create_asset_playback_id(&id, request.policy)
        .await
        .map_err(ApiError::not_found_as(NOT_FOUND_MESSAGE))?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: playback_id.into(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subtitles(language_code: &str, name: Option<&str>) -> GeneratedSubtitlesRequest {
        GeneratedSubtitlesRequest {
            language_code: language_code.to_owned(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn generated_subtitles_are_english_once_with_a_default_name() {
        let checked = validate_generated_subtitles(vec![subtitles("en", None)], None).unwrap();
        assert_eq!(
            checked,
            [GeneratedSubtitles {
                language_code: "en".into(),
                name: "English (generated)".into()
            }]
        );
        assert_eq!(
            validate_generated_subtitles(vec![], Some("off")).unwrap(),
            []
        );
        for (bad, why) in [
            (vec![subtitles("fr", None)], "is not recognised"),
            (
                vec![subtitles("en", None), subtitles("en", Some("x"))],
                "listed twice",
            ),
            (vec![subtitles("en", Some(""))], "1 to 64 characters"),
            (vec![subtitles("en", Some("a\"b"))], "double quotes"),
            (
                vec![subtitles("en", Some(&"n".repeat(65)))],
                "1 to 64 characters",
            ),
        ] {
            let error = validate_generated_subtitles(bad, None)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn generated_subtitles_on_a_server_without_speech_recognition_say_why() {
        let error = validate_generated_subtitles(
            vec![subtitles("en", None)],
            Some("speech recognition is not installed"),
        )
        .unwrap_err();
        assert!(matches!(error, ApiError::TranscriptionUnavailable(_)));
        assert!(error.to_string().contains("is not installed"), "{error}");
    }

    #[test]
    fn h264_is_always_encoded_and_av1_may_be_added() {
        use LadderCodec::*;
        assert_eq!(validate_codecs(vec![H264]).unwrap(), [H264]);
        assert_eq!(validate_codecs(vec![Av1, H264]).unwrap(), [H264, Av1]);
        for bad in [vec![], vec![Av1], vec![H264, H264], vec![H264, Av1, Av1]] {
            assert!(validate_codecs(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_import_url_is_shown_without_credentials_or_query_values() {
        let shown = |url: &str| match shown_input(&AssetInput::Url {
            url: url.to_owned(),
        }) {
            AssetInput::Url { url } => url,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            shown(
                "https://user:pa55@cdn.example.com/a.mp4?X-Amz-Signature=abc&X-Amz-Expires=60#t=1"
            ),
            "https://cdn.example.com/a.mp4?X-Amz-Signature=redacted&X-Amz-Expires=redacted"
        );
        assert_eq!(
            shown("https://example.com/a.mp4"),
            "https://example.com/a.mp4"
        );
        assert_eq!(
            shown("https://example.com/a.mp4?s3cr3t"),
            "https://example.com/a.mp4?redacted"
        );
    }

    #[test]
    fn import_urls_are_absolute_http_or_https() {
        for good in [
            "https://example.com/video.mp4",
            "http://203.0.113.7:8080/a/b.mov?x=1",
        ] {
            assert!(validate_input_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com/video.mp4",
            "/videos/a.mp4",
            "video.mp4",
            "file:///etc/passwd",
            "https://",
            "",
            "data:video/mp4;base64,AAAA",
        ] {
            let error = validate_input_url(bad).unwrap_err();
            assert!(error.to_string().starts_with("input: "), "{bad}: {error}");
        }
        assert!(validate_input_url(&format!("https://example.com/{}", "a".repeat(3000))).is_err());
    }
}
