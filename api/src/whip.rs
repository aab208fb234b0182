//! WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725): the HTTP side of WebRTC ingest, and the
//! "Go live from this browser" page.
//!
//! - `POST /whip/{live_stream_id}` with `Authorization: Bearer <stream key>` and an SDP offer
//!   (`Content-Type: application/sdp`) answers `201 Created` with the SDP answer and a
//!   `Location` naming the session resource.
//! - `DELETE /whip/{live_stream_id}/sessions/{session_id}` (same Bearer key) ends the session.
//! - Trickle ICE (`PATCH`) is not offered: the server is ICE-lite and lists its candidates in
//!   the answer, and the client's are learnt from its connectivity checks, so `PATCH` is 405
//!   as RFC 9725 §4.3.1 allows.
//! - CORS is open (a browser page on any origin may publish), exposing `Location`, `Link` and
//!   `ETag`; `OPTIONS` on any WHIP path is answered by the CORS layer.
//! - `GET /live/{live_stream_id}/publish` serves a static page that captures camera and
//!   microphone and publishes them through the endpoint above with the key the user types.
//!
//! The WebRTC media plane itself lives in the live crate; it is reached through the
//! [`WhipIngest`] trait object in the application state (the trait, the offer and answer and
//! the SDP check are `sluice_ingest::whip`'s, protocol code without I/O).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use sluice_ingest::whip::{sdp, WhipError, WhipIngest, WhipOffer};

use crate::error::ErrorBody;
use crate::json::ApiPath;
use crate::{ApiError, AppState};
use sluice_storage::LiveStreamId;

/// The largest SDP offer taken: browsers send a few kilobytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// The media type of offers and answers.
const SDP: &str = "application/sdp";
/// The publish page, static: it holds no secret (the user types the stream key).
const PUBLISH_PAGE: &str = include_str!("whip_publish.html");

/// The WHIP endpoint of a live stream on a server reached at `public_url`.
pub fn whip_url(public_url: &str, live_stream_id: &str) -> String {
    format!("{}/whip/{live_stream_id}", public_url.trim_end_matches('/'))
}

impl From<WhipError> for ApiError {
    fn from(error: WhipError) -> Self {
        match error {
            WhipError::StreamNotFound => ApiError::NotFound("live stream not found"),
            WhipError::SessionNotFound => ApiError::NotFound("WHIP session not found"),
            WhipError::WrongKey => ApiError::Unauthorized("wrong stream key"),
            WhipError::Refused(reason) => ApiError::Forbidden(reason),
            WhipError::Busy => ApiError::Conflict("live stream already has a publisher"),
            WhipError::BadOffer(reason) => ApiError::InvalidRequest(reason),
            WhipError::ShuttingDown => ApiError::NotReady("the server is shutting down".into()),
            WhipError::Internal(reason) => ApiError::Internal(reason),
        }
    }
}

/// The WHIP routes and the publish page.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(offer))
        .routes(routes!(end))
        .routes(routes!(publish_page))
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
}

/// CORS of the WHIP routes: any origin may publish (the stream key is the credential), and a
/// page reads the session's `Location`.
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::LOCATION, header::LINK, header::ETAG])
}

/// The ingest plane, or 503 when this server runs none.
fn ingest(state: &AppState) -> Result<Arc<dyn WhipIngest>, ApiError> {
    state
        .whip
        .clone()
        .ok_or_else(|| ApiError::NotReady("WebRTC ingest is not enabled on this server".into()))
}

/// The stream key from `Authorization: Bearer <key>`.
fn bearer_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = ApiError::Unauthorized("send the stream key as Authorization: Bearer <key>");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(missing)?;
    match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(key.trim().to_owned())
        }
        _ => Err(ApiError::Unauthorized(
            "send the stream key as Authorization: Bearer <key>",
        )),
    }
}

/// Publishes to a live stream over WebRTC: takes an SDP offer, answers with the SDP answer.
#[utoipa::path(post, path = "/whip/{live_stream_id}", tag = "webrtc ingest",
    params(("live_stream_id" = String, Path, description = "The live stream to publish to")),
    request_body(content = String, content_type = "application/sdp",
        description = "The SDP offer: H.264 or VP8 video, Opus audio optional"),
    responses(
        (status = 201, description = "The SDP answer; `Location` names the session",
            body = String, content_type = "application/sdp"),
        (status = 400, description = "Malformed SDP or an offer with no media", body = ErrorBody),
        (status = 401, description = "Missing or wrong stream key", body = ErrorBody),
        (status = 403, description = "The live stream is disabled", body = ErrorBody),
        (status = 404, description = "No such live stream", body = ErrorBody),
        (status = 406, description = "No video codec Sluice takes (H.264, VP8)", body = ErrorBody),
        (status = 409, description = "The live stream already has a publisher", body = ErrorBody),
        (status = 413, description = "The offer is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/sdp`", body = ErrorBody),
        (status = 503, description = "WebRTC ingest is not enabled, or the server is shutting down",
            body = ErrorBody),
    ))]
pub async fn offer(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let whip = ingest(&state)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(SDP))
    {
        return Err(ApiError::WrongContentType(
            "expected an SDP offer with Content-Type: application/sdp",
        ));
    }
    let stream_key = bearer_key(&headers)?;
    let body = body.map_err(|_| {
        ApiError::TooLarge(format!("an SDP offer is at most {MAX_OFFER_BYTES} bytes"))
    })?;
    let sdp = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::InvalidRequest("the SDP offer is not UTF-8 text".into()))?;
    let offered = sdp::check_offer(&sdp).map_err(|e| match e {
        sdp::OfferError::NoAcceptedVideoCodec { .. } => ApiError::NotAcceptable(e.to_string()),
        _ => ApiError::InvalidRequest(e.to_string()),
    })?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let answer = whip
        .offer(WhipOffer {
            live_stream_id: live_stream_id.clone(),
            stream_key,
            sdp,
            offered,
            user_agent,
        })
        .await?;
    let location = format!("/whip/{live_stream_id}/sessions/{}", answer.session_id);
    let etag = format!("\"{}\"", answer.session_id);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, location),
            (header::ETAG, etag),
        ],
        answer.sdp,
    )
        .into_response())
}

/// Ends a WHIP session: the publisher stops, the session ends as an RTMP one would.
#[utoipa::path(delete, path = "/whip/{live_stream_id}/sessions/{session_id}", tag = "webrtc ingest",
    params(
        ("live_stream_id" = String, Path, description = "The live stream"),
        ("session_id" = String, Path, description = "The WHIP session, from `Location`"),
    ),
    responses(
        (status = 200, description = "The session is ending"),
        (status = 401, description = "Missing or wrong stream key", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 503, description = "WebRTC ingest is not enabled", body = ErrorBody),
    ))]
pub async fn end(
    State(state): State<AppState>,
    ApiPath((live_stream_id, session_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let whip = ingest(&state)?;
    let stream_key = bearer_key(&headers)?;
    whip.end(&live_stream_id, &session_id, &stream_key).await?;
    Ok(StatusCode::OK)
}

/// The "Go live from this browser" page of a live stream.
#[utoipa::path(get, path = "/live/{live_stream_id}/publish", tag = "webrtc ingest",
    params(("live_stream_id" = String, Path, description = "The live stream")),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 404, description = "No such live stream", body = ErrorBody),
    ))]
pub async fn publish_page(
    State(state): State<AppState>,
    ApiPath(live_stream_id): ApiPath<String>,
) -> Result<Html<&'static str>, ApiError> {
    let not_found = || ApiError::NotFound("live stream not found");
    let id = LiveStreamId::parse(&live_stream_id).map_err(|_| not_found())?;
    match state.db.get_live_stream(&id).await? {
        Some(_) => Ok(Html(PUBLISH_PAGE)),
        None => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_whip_url_joins_the_public_url_and_the_stream_id() {
        assert_eq!(
            whip_url("https://video.example/", "ls_1"),
            "https://video.example/whip/ls_1"
        );
    }

    #[test]
    fn only_a_bearer_key_is_taken() {
        let mut headers = HeaderMap::new();
        assert!(bearer_key(&headers).is_err());
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer_key(&headers).ok().as_deref(), expected, "{value}");
        }
    }
}
