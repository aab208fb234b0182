//! HLS delivery: `GET /hls/{playback_id}/{*path}` serves the playlists and CMAF segments the
//! packager stored under `live/{live_stream_id}/…` (a live stream's playback id) or
//! `assets/{asset_id}/hls/…` (an asset's), with the media types and caching of
//! RFC 8216 §4 and the HLS authoring spec (playlists fresh, segments immutable).
//!
//! The request path never reaches the store as given: it must be at most two plain segments
//! (`[A-Za-z0-9._-]`, no `.`/`..`) with a known extension, and the object key is rebuilt from the
//! server-made live stream or asset id found by playback id.
//!
//! A `signed` playback id needs `?token=` with a playback token (module `playback_token`) on
//! every request; its playlists are rewritten so each child URI carries the token on, and its
//! responses are cacheable only privately.
//!
//! A live stream in `low` latency mode whose session this process packages is also LL-HLS
//! (RFC 8216bis): its media playlists come from the packaging node's memory
//! ([`LowLatencyHls`]) with parts, preload hints and rendition reports, held for blocking
//! reload (`_HLS_msn`, `_HLS_part`) and skipped for delta updates (`_HLS_skip`); its parts,
//! init segments and newest segments come from memory too, a preload-hinted part held until
//! it exists. Elsewhere (another node, a session that ended) the store serves.
//!
//! Segments reach viewers as the object store's playback mode says ([`sluice_storage::Playback`]):
//! through this handler (proxy, the default); as a `302` to a presigned URL of the object
//! (redirect: playlists are still served here); or straight from a public base URL, a CDN in
//! front of the bucket, which public playback ids' media playlists name as absolute URIs (public;
//! signed playback ids keep being proxied, their token checked on every segment).

use async_trait::async_trait;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use m3u8_rs::Playlist;
use serde::Deserialize;
use sluice_storage::layout;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_storage::{Db, LiveStreamId, ObjectKey, PlaybackId, PlaybackPolicy};

use crate::error::ApiError;
use crate::playback_token::{self, PlaybackAudience};
use crate::viewers::{self, UserAgent, ViewerKey, Watched};
use crate::AppState;

/// The multivariant playlist's name, as the packager writes it.
const MASTER_PLAYLIST: &str = "master.m3u8";

/// Deepest path under a playback id: `{rendition}/{segment}`, or `subs/{language}/{segment}`
/// for a subtitles rendition.
const MAX_PATH_SEGMENTS: usize = 3;

const PLAYLIST_CACHE: &str = "no-cache, max-age=1";
const MEDIA_CACHE: &str = "public, max-age=31536000, immutable";
/// Signed responses must not sit in shared caches, where anyone could fetch them tokenless.
const SIGNED_PLAYLIST_CACHE: &str = "private, no-cache, max-age=1";
const SIGNED_MEDIA_CACHE: &str = "private, max-age=31536000, immutable";

/// A blocking playlist response: any playlist holding the part asked for answers that URL,
/// so shared caches may keep it for a few seconds (the cache key includes the query).
const BLOCKING_PLAYLIST_CACHE: &str = "public, max-age=6";
const SIGNED_BLOCKING_PLAYLIST_CACHE: &str = "private, max-age=6";

const NOT_FOUND: ApiError = ApiError::NotFound("not found");

/// How long an HLS request trusts a playback id it looked up.
pub const PLAYBACK_ID_TTL: Duration = Duration::from_secs(1);
/// Playback ids remembered at most; when full, the memory starts over.
const PLAYBACK_IDS_REMEMBERED: usize = 10_000;

/// A master playlist: every one is rewritten for its viewer (a session in its URIs), so no
/// cache may share it.
const MASTER_PLAYLIST_CACHE: &str = "private, no-cache";

/// Playback ids as HLS requests find them, remembered for [`PLAYBACK_ID_TTL`]: low-latency
/// viewers reload playlists and fetch parts several times a second, and looking each one up in
/// the database cost more than serving it. Only ids that exist are remembered, so made-up ids
/// cannot fill it; a deleted id stops playing at once on the process that deleted it and
/// within the TTL elsewhere.
#[derive(Clone, Default)]
pub struct PlaybackIds(Arc<Mutex<HashMap<String, (Instant, PlaybackId)>>>);

impl PlaybackIds {
    /// Playback id `id`, from memory while fresh, else from `db`.
    async fn get(&self, db: &Db, id: &str) -> Result<Option<PlaybackId>, ApiError> {
        if let Some((_, found)) = self
            .lock()
            .get(id)
            .filter(|(at, _)| at.elapsed() < PLAYBACK_ID_TTL)
        {
            return Ok(Some(found.clone()));
        }
        let found = db.get_playback_id(id).await?;
        if let Some(found) = &found {
            let mut remembered = self.lock();
            if remembered.len() >= PLAYBACK_IDS_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(id.to_owned(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    /// Forgets `id` (it was deleted).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, PlaybackId)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a low-latency playlist request asks for (RFC 8216bis §6.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowLatencyRequest {
    /// `_HLS_msn`: hold the response until this segment (or its part) exists.
    pub msn: Option<u64>,
    /// `_HLS_part`: the part of segment `msn` to hold for.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` or `v2`: a delta update.
    pub skip: bool,
}

/// How a low-latency playlist request is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum LowLatencyAnswer {
    Playlist(Bytes),
    /// `_HLS_msn` more than two segments past the last one, or `_HLS_part` past the Advance
    /// Part Limit: 400.
    TooFarAhead,
    /// What was asked for did not come in time: 503.
    TimedOut,
}

impl LowLatencyAnswer {
    /// The playlist, or the error the answer means over HTTP.
    pub(crate) fn into_playlist(self) -> Result<Bytes, ApiError> {
        match self {
            LowLatencyAnswer::Playlist(body) => Ok(body),
            LowLatencyAnswer::TooFarAhead => Err(ApiError::InvalidRequest(
                "_HLS_msn or _HLS_part is too far ahead of the playlist".to_owned(),
            )),
            LowLatencyAnswer::TimedOut => Err(ApiError::Busy {
                message: "the part asked for did not arrive in time",
                retry_after_s: 1,
            }),
        }
    }
}

/// The live core's LL-HLS, as HTTP serves it (a port the binary fills).
#[async_trait]
pub trait LowLatencyHls: Send + Sync {
    /// Rendition `rendition`'s low-latency playlist, `uri_query` (`?token=…`, or empty) after
    /// every URI in it; `None` when this process packages no low-latency session of the stream
    /// with that rendition.
    async fn playlist(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        request: LowLatencyRequest,
        uri_query: &str,
    ) -> Option<LowLatencyAnswer>;

    /// Media object `name` of `rendition` from memory (a part, an init segment or one of the
    /// newest segments); the part the preload hint names is waited for.
    async fn media(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
    ) -> Option<Bytes>;
}

/// What kind of HLS object a file name denotes, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HlsObject {
    Playlist,
    InitSegment,
    VideoSegment,
    AudioSegment,
    /// A WebVTT segment of a subtitles rendition.
    Subtitles,
}

impl HlsObject {
    fn from_name(name: &str) -> Option<Self> {
        match name.rsplit_once('.')?.1 {
            "m3u8" => Some(Self::Playlist),
            "mp4" => Some(Self::InitSegment),
            "m4s" => Some(Self::VideoSegment),
            "m4a" => Some(Self::AudioSegment),
            "vtt" => Some(Self::Subtitles),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::InitSegment => "video/mp4",
            Self::VideoSegment => "video/iso.segment",
            Self::AudioSegment => "audio/mp4",
            Self::Subtitles => "text/vtt; charset=utf-8",
        }
    }

    fn cache_control(self, signed: bool) -> &'static str {
        match (self, signed) {
            (Self::Playlist, false) => PLAYLIST_CACHE,
            (Self::Playlist, true) => SIGNED_PLAYLIST_CACHE,
            (_, false) => MEDIA_CACHE,
            (_, true) => SIGNED_MEDIA_CACHE,
        }
    }
}

/// Query parameters of HLS requests; others (a player's cache busters) are ignored.
#[derive(Debug, Deserialize)]
pub struct PlaybackQuery {
    /// Playback token, required for a `signed` playback id.
    token: Option<String>,
    /// LL-HLS blocking reload: the media sequence number to wait for.
    #[serde(rename = "_HLS_msn")]
    hls_msn: Option<u64>,
    /// LL-HLS blocking reload: the part of `_HLS_msn` to wait for.
    #[serde(rename = "_HLS_part")]
    hls_part: Option<u64>,
    /// LL-HLS delta update: `YES` or `v2`.
    #[serde(rename = "_HLS_skip")]
    hls_skip: Option<String>,
    /// The viewer's playback session, handed out by the master playlist (module `viewers`).
    vs: Option<String>,
}

impl PlaybackQuery {
    /// The LL-HLS directives (RFC 8216bis §6.2.5), checked.
    fn low_latency(&self) -> Result<LowLatencyRequest, ApiError> {
        if self.hls_part.is_some() && self.hls_msn.is_none() {
            return Err(ApiError::InvalidRequest(
                "_HLS_part needs _HLS_msn".to_owned(),
            ));
        }
        let skip = match self.hls_skip.as_deref() {
            None => false,
            Some("YES" | "v2") => true,
            Some(_) => {
                return Err(ApiError::InvalidRequest(
                    "_HLS_skip must be YES or v2".to_owned(),
                ))
            }
        };
        Ok(LowLatencyRequest {
            msn: self.hls_msn,
            part: self.hls_part,
            skip,
        })
    }
}

/// The 401 for a signed playback id asked without a token. It challenges with `Bearer` (RFC
/// 6750), not the API's `Basic`, so a browser playing the stream never pops up a login dialog.
pub(crate) fn missing_token() -> Response {
    let mut response =
        ApiError::Unauthorized("this playback id is signed: add ?token= with a playback token")
            .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sluice playback\""),
    );
    response
}

/// `uri` with `name=value` appended to its query.
fn with_param(uri: &str, name: &str, value: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{name}={value}")
}

/// What a playlist's relative URIs carry on: the playback token (verified, so URL-safe) and
/// the viewer's playback session (hex).
#[derive(Clone, Copy, Default)]
struct CarriedQuery<'a> {
    token: Option<&'a str>,
    session: Option<&'a str>,
}

impl CarriedQuery<'_> {
    fn is_empty(&self) -> bool {
        self.token.is_none() && self.session.is_none()
    }

    /// `uri` with the token and session appended; absolute URIs (another origin's) are left.
    fn apply(&self, uri: &str) -> String {
        if uri.contains("://") {
            return uri.to_owned();
        }
        let mut uri = uri.to_owned();
        if let Some(token) = self.token {
            uri = with_param(&uri, "token", token);
        }
        if let Some(session) = self.session {
            uri = with_param(&uri, "vs", session);
        }
        uri
    }
}

/// Rewrites a playlist's URIs: `playlist_uri` maps those naming playlists (variants and
/// renditions of a master playlist), `media_uri` those naming init and media segments.
fn rewrite_playlist(
    body: &[u8],
    playlist_uri: impl Fn(&str) -> String,
    media_uri: impl Fn(&str) -> String,
) -> Result<Vec<u8>, ApiError> {
    let mut playlist = m3u8_rs::parse_playlist_res(body)
        .map_err(|_| ApiError::internal("a stored playlist does not parse"))?;
    match &mut playlist {
        Playlist::MasterPlaylist(master) => {
            for variant in &mut master.variants {
                variant.uri = playlist_uri(&variant.uri);
            }
            for media in &mut master.alternatives {
                if let Some(uri) = &mut media.uri {
                    *uri = playlist_uri(uri);
                }
            }
        }
        Playlist::MediaPlaylist(media) => {
            for segment in &mut media.segments {
                segment.uri = media_uri(&segment.uri);
                if let Some(map) = &mut segment.map {
                    map.uri = media_uri(&map.uri);
                }
            }
        }
    }
    let mut rewritten = Vec::with_capacity(body.len() * 2);
    playlist
        .write_to(&mut rewritten)
        .map_err(ApiError::internal)?;
    Ok(rewritten)
}

/// Rewrites a playlist so the URIs in it carry `playlists` (variants and renditions) and
/// `media` (init segments and segments) on.
fn playlist_carrying(
    body: &[u8],
    playlists: CarriedQuery,
    media: CarriedQuery,
) -> Result<Vec<u8>, ApiError> {
    rewrite_playlist(body, |uri| playlists.apply(uri), |uri| media.apply(uri))
}

/// Rewrites the playlist stored at `playlist_key` so its init and media segment URIs are the
/// absolute URLs `public_url` gives for their objects. A URI that names no object beside the
/// playlist (absolute, or climbing with `..`) stays as it is.
fn playlist_with_public_urls(
    body: &[u8],
    playlist_key: &ObjectKey,
    public_url: impl Fn(&ObjectKey) -> Option<String>,
) -> Result<Vec<u8>, ApiError> {
    let directory: Vec<&str> = playlist_key.segments().collect();
    let directory = &directory[..directory.len() - 1];
    let media_uri = |uri: &str| {
        ObjectKey::new(directory.iter().copied().chain(uri.split('/')))
            .ok()
            .and_then(|key| public_url(&key))
            .unwrap_or_else(|| uri.to_owned())
    };
    rewrite_playlist(body, str::to_owned, media_uri)
}

/// A playlist, init segment or media segment of a playback id.
#[utoipa::path(get, path = "/hls/{playback_id}/{*path}", tag = "playback",
    params(
        ("playback_id" = String, Path, description = "Playback id"),
        ("path" = String, Path, description = "`master.m3u8`, or `{rendition}/{file}` such as `v0/index.m3u8`"),
        ("token" = Option<String>, Query, description = "Playback token, required for a `signed` playback id"),
        ("_HLS_msn" = Option<u64>, Query, description = "LL-HLS (a `low` latency stream's media \
            playlist): hold the response until this media sequence number exists"),
        ("_HLS_part" = Option<u64>, Query, description = "LL-HLS: with `_HLS_msn`, hold it until \
            this part of that segment exists"),
        ("_HLS_skip" = Option<String>, Query, description = "LL-HLS: `YES` or `v2` for a delta update"),
        ("vs" = Option<String>, Query, description = "The viewer's playback session, which the \
            master playlist puts on the URIs it lists (viewer counts); a master playlist asked \
            without one starts a new session"),
    ),
    responses(
        (status = 200, description = "The object: playlists as `application/vnd.apple.mpegurl`, \
            segments as `video/mp4`, `video/iso.segment`, `audio/mp4` or `text/vtt`; a master playlist \
            is written for its viewer (`Cache-Control: private, no-cache`)", body = Vec<u8>),
        (status = 302, description = "Redirect playback: the segment is at the presigned URL \
            in `Location`"),
        (status = 400, description = "LL-HLS: `_HLS_msn` more than two segments ahead, \
            `_HLS_part` three seconds of parts or more past the last one, `_HLS_part` without \
            `_HLS_msn`, or another `_HLS_skip`", body = crate::error::ErrorBody),
        (status = 401, description = "A signed playback id asked without `?token=`", body = crate::error::ErrorBody),
        (status = 403, description = "A playback token that is invalid, expired, or for \
            something else", body = crate::error::ErrorBody),
        (status = 404, description = "No such object", body = crate::error::ErrorBody),
        (status = 503, description = "LL-HLS: what a held request asked for did not come \
            within 3 s; `Retry-After` says when to ask again", body = crate::error::ErrorBody),
    ))]
pub async fn serve(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PlaybackQuery>, QueryRejection>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    UserAgent(user_agent): UserAgent,
) -> Result<Response, ApiError> {
    let Path((playback_id, path)) = path.map_err(|_| NOT_FOUND)?;
    let Query(query) = query?;
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
    let playback = state
        .playback_ids
        .get(&state.db, &playback_id)
        .await?
        .ok_or(NOT_FOUND)?;
    let token = match playback.policy {
        PlaybackPolicy::Public => None,
        PlaybackPolicy::Signed => {
            let Some(token) = query.token.clone() else {
                return Ok(missing_token());
            };
            playback_token::verify(&state.db, &token, &playback.id, PlaybackAudience::Video)
                .await?;
            Some(token)
        }
    };
    let watched = match (&playback.live_stream_id, &playback.asset_id) {
        (Some(live_stream_id), _) => Watched::LiveStream(live_stream_id.clone()),
        (None, Some(asset_id)) => Watched::Asset(asset_id.clone()),
        (None, None) => return Err(NOT_FOUND),
    };
    // A master playlist starts a playback session (unless the player brings its own back).
    let master = segments.as_slice() == [MASTER_PLAYLIST];
    let session = match query
        .vs
        .as_deref()
        .filter(|vs| ViewerKey::from_session(vs).is_some())
    {
        Some(vs) => Some(vs.to_owned()),
        None => master.then(viewers::new_session),
    };
    // Segments count only with a session: a live player without one is seen reloading its
    // playlists, and its segment requests would count it twice.
    let viewer = match &session {
        Some(vs) => ViewerKey::from_session(vs),
        None => (kind == HlsObject::Playlist).then(|| {
            ViewerKey::from_client(
                peer.map(|Extension(ConnectInfo(address))| address.ip()),
                user_agent.as_ref().map(HeaderValue::as_bytes),
            )
        }),
    };
    let answered = async {
        if let (Some(live_stream_id), Some(low_latency), [rendition, name]) = (
            &playback.live_stream_id,
            &state.low_latency,
            segments.as_slice(),
        ) {
            let served = serve_low_latency(
                &**low_latency,
                live_stream_id,
                rendition,
                name,
                kind,
                &query,
                token.as_deref(),
            )
            .await?;
            if let Some(response) = served {
                return Ok(response);
            }
        }
        let key = match &watched {
            Watched::LiveStream(live_stream_id) => layout::live_object(live_stream_id, &segments),
            Watched::Asset(asset_id) => layout::asset_hls(asset_id, &segments),
        }
        .map_err(|_| NOT_FOUND)?;
        if kind != HlsObject::Playlist {
            if let Some(location) = state.store.redirect_url(&key).await? {
                let location = HeaderValue::try_from(location).map_err(ApiError::internal)?;
                return Ok((
                    StatusCode::FOUND,
                    [
                        (header::LOCATION, location),
                        // The presigned URL expires: a cache must not keep the redirect.
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    ],
                )
                    .into_response());
            }
        }
        let body = state.store.get(&key).await?;
        let body = if kind == HlsObject::Playlist {
            let playlists = CarriedQuery {
                token: token.as_deref(),
                session: session.as_deref(),
            };
            // Live players are seen reloading their playlists; an asset's player fetches its
            // playlists once, so its segments carry the session too.
            let media = CarriedQuery {
                session: session
                    .as_deref()
                    .filter(|_| matches!(watched, Watched::Asset(_))),
                ..playlists
            };
            match state.store.public_url(&key) {
                // The store plays back from a public base URL (it has one for this key too).
                Some(_) if token.is_none() && !master => {
                    Bytes::from(playlist_with_public_urls(&body, &key, |k| {
                        state.store.public_url(k)
                    })?)
                }
                _ if master || !media.is_empty() => {
                    Bytes::from(playlist_carrying(&body, playlists, media)?)
                }
                _ => body,
            }
        } else {
            body
        };
        let cache = if master {
            MASTER_PLAYLIST_CACHE
        } else {
            kind.cache_control(token.is_some())
        };
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(kind.content_type()),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            body,
        )
            .into_response())
    }
    .await;
    // Only what was served (or redirected to the store) counts: a player retrying a playlist
    // that is not there yet is not watching anything.
    if let (Some(viewer), Ok(response)) = (viewer, &answered) {
        if response.status().is_success() || response.status().is_redirection() {
            state.viewers.seen(watched, viewer, Instant::now());
        }
    }
    answered
}

/// A low-latency session's media playlist or part from this process's memory; `None` when
/// the stream has none here (the store serves it).
async fn serve_low_latency(
    low_latency: &dyn LowLatencyHls,
    live_stream_id: &LiveStreamId,
    rendition: &str,
    name: &str,
    kind: HlsObject,
    query: &PlaybackQuery,
    token: Option<&str>,
) -> Result<Option<Response>, ApiError> {
    let signed = token.is_some();
    if kind != HlsObject::Playlist {
        let Some(body) = low_latency.media(live_stream_id, rendition, name).await else {
            return Ok(None);
        };
        return Ok(Some(
            (
                [
                    (header::CONTENT_TYPE, kind.content_type()),
                    (header::CACHE_CONTROL, kind.cache_control(signed)),
                ],
                body,
            )
                .into_response(),
        ));
    }
    // A live rendition's one playlist (the packager's `MEDIA_PLAYLIST`).
    if name != "index.m3u8" {
        return Ok(None);
    }
    let request = query.low_latency()?;
    // Part, segment and playlist names carry no query of their own.
    let uri_query = token.map_or(String::new(), |token| format!("?token={token}"));
    let Some(answer) = low_latency
        .playlist(live_stream_id, rendition, request, &uri_query)
        .await
    else {
        return Ok(None);
    };
    let body = answer.into_playlist()?;
    let cache = match (request.msn.is_some(), signed) {
        (true, false) => BLOCKING_PLAYLIST_CACHE,
        (true, true) => SIGNED_BLOCKING_PLAYLIST_CACHE,
        (false, _) => kind.cache_control(signed),
    };
    Ok(Some(
        (
            [
                (header::CONTENT_TYPE, kind.content_type()),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwIn0.c2ln";

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn parsed(text: &str) -> Option<PlaybackQuery> {
        let uri: axum::http::Uri = format!("/hls/p/v0/index.m3u8?{text}").parse().unwrap();
        Query::try_from_uri(&uri).ok().map(|Query(query)| query)
    }

    fn query(text: &str) -> PlaybackQuery {
        parsed(text).unwrap()
    }

    #[test]
    fn ll_hls_directives_are_read_and_checked() {
        assert_eq!(
            query("_HLS_msn=7&_HLS_part=2&_HLS_skip=v2&t=1")
                .low_latency()
                .unwrap(),
            LowLatencyRequest {
                msn: Some(7),
                part: Some(2),
                skip: true,
            }
        );
        assert_eq!(
            query("_HLS_skip=YES").low_latency().unwrap(),
            LowLatencyRequest {
                msn: None,
                part: None,
                skip: true,
            }
        );
        assert!(
            query("_HLS_part=2").low_latency().is_err(),
            "a part needs its segment"
        );
        assert!(
            query("_HLS_skip=yes").low_latency().is_err(),
            "YES and v2 only"
        );
        assert!(parsed("_HLS_msn=-1").is_none());
    }

    fn carried(
        token: Option<&'static str>,
        session: Option<&'static str>,
    ) -> CarriedQuery<'static> {
        CarriedQuery { token, session }
    }

    #[test]
    fn master_playlist_uris_carry_the_token_and_the_viewers_session() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,URI=\"a0/index.m3u8\",GROUP-ID=\"audio\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES\n\
            #EXT-X-STREAM-INF:BANDWIDTH=530000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"audio\"\n\
            v0/index.m3u8\n";
        let both = carried(Some(TOKEN), Some("00000000000000ff"));
        let rewritten = text(playlist_carrying(master.as_bytes(), both, both).unwrap());
        assert!(rewritten.contains(&format!(
            "URI=\"a0/index.m3u8?token={TOKEN}&vs=00000000000000ff\""
        )));
        assert!(rewritten.contains(&format!(
            "\nv0/index.m3u8?token={TOKEN}&vs=00000000000000ff\n"
        )));
        assert!(rewritten.contains("#EXT-X-INDEPENDENT-SEGMENTS"));
        assert!(rewritten.contains("RESOLUTION=640x360"));
    }

    #[test]
    fn media_playlist_uris_carry_the_token_and_other_tags_stay() {
        let media = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-MAP:URI=\"s-init.mp4\"\n\
            #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:2,\ns-2.m4s\n\
            #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n#EXTINF:2,\ns-3.m4s\n#EXT-X-ENDLIST\n";
        let token = carried(Some(TOKEN), None);
        let rewritten = text(playlist_carrying(media.as_bytes(), token, token).unwrap());
        assert!(rewritten.contains(&format!("#EXT-X-MAP:URI=\"s-init.mp4?token={TOKEN}\"")));
        assert!(rewritten.contains(&format!("\ns-2.m4s?token={TOKEN}\n")));
        assert!(rewritten.contains(&format!("\ns-3.m4s?token={TOKEN}\n")));
        assert!(rewritten.contains("#EXT-X-MEDIA-SEQUENCE:2"));
        assert!(rewritten.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26"));
        assert!(rewritten.contains("#EXT-X-ENDLIST"));
        assert_eq!(with_param("x.m4s?a=1", "token", "t"), "x.m4s?a=1&token=t");
        assert_eq!(
            carried(None, Some("ab")).apply("https://cdn.example/x.m4s"),
            "https://cdn.example/x.m4s",
            "another origin's URI is left as it is"
        );
    }

    #[test]
    fn public_playback_points_segments_at_the_base_url_and_leaves_playlists() {
        let cdn = |key: &ObjectKey| Some(format!("https://cdn.example/media/{key}"));
        let media = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nseg0.m4s\n\
            #EXTINF:2,\n../escape.m4s\n#EXT-X-ENDLIST\n";
        let key = ObjectKey::parse("live/ls_1/v0/index.m3u8").unwrap();
        let rewritten = text(playlist_with_public_urls(media.as_bytes(), &key, cdn).unwrap());
        assert!(rewritten
            .contains("#EXT-X-MAP:URI=\"https://cdn.example/media/live/ls_1/v0/init.mp4\""));
        assert!(rewritten.contains("\nhttps://cdn.example/media/live/ls_1/v0/seg0.m4s\n"));
        assert!(rewritten.contains("\n../escape.m4s\n"), "{rewritten}");
        assert!(rewritten.contains("#EXT-X-ENDLIST"));

        let master = "#EXTM3U\n#EXT-X-VERSION:7\n\
            #EXT-X-STREAM-INF:BANDWIDTH=530000,CODECS=\"avc1.64001f\",RESOLUTION=640x360\n\
            v0/index.m3u8\n";
        let key = ObjectKey::parse("live/ls_1/master.m3u8").unwrap();
        let rewritten = text(playlist_with_public_urls(master.as_bytes(), &key, cdn).unwrap());
        assert!(rewritten.contains("\nv0/index.m3u8\n"), "{rewritten}");
    }
}
