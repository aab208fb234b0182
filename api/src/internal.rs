//! HTTP between the nodes of one deployment. An api node forwards a low-latency stream's
//! playlist and part requests to the node packaging its session, which answers them from
//! memory here (docs/DEPLOYMENT.md, "Low-latency HLS"). Viewers never call this route: the api
//! node has checked their playback id and token, and proves itself with the node token every
//! node derives from the shared master key.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_storage::LiveStreamId;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::hls::LowLatencyRequest;
use crate::AppState;

/// Where a node serves the low-latency sessions it packages.
pub const LOW_LATENCY_PATH: &str = "/internal/low-latency";

const NOT_FOUND: ApiError = ApiError::NotFound("no low-latency session of that stream here");

/// A forwarded playlist request: the viewer's LL-HLS directives, already checked by the api
/// node, and the query its URIs carry.
#[derive(Debug, Deserialize)]
pub struct ForwardedQuery {
    msn: Option<u64>,
    part: Option<u64>,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    uri_query: String,
}

impl ForwardedQuery {
    /// The query string forwarding `request` with `uri_query` (the inverse of the parsing).
    pub fn encode(request: LowLatencyRequest, uri_query: &str) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(msn) = request.msn {
            pairs.push(("msn", msn.to_string()));
        }
        if let Some(part) = request.part {
            pairs.push(("part", part.to_string()));
        }
        if request.skip {
            pairs.push(("skip", "true".to_owned()));
        }
        if !uri_query.is_empty() {
            pairs.push(("uri_query", uri_query.to_owned()));
        }
        pairs
    }
}

/// A low-latency playlist or media object packaged on this node.
#[utoipa::path(get, path = "/internal/low-latency/{live_stream_id}/{rendition}/{name}",
    tag = "internal",
    params(
        ("live_stream_id" = String, Path, description = "Live stream id"),
        ("rendition" = String, Path, description = "Rendition directory, e.g. `v0`"),
        ("name" = String, Path, description = "`index.m3u8`, a part, an init segment or a recent segment"),
        ("msn" = Option<u64>, Query, description = "The viewer's `_HLS_msn`"),
        ("part" = Option<u64>, Query, description = "The viewer's `_HLS_part`"),
        ("skip" = Option<bool>, Query, description = "The viewer asked for a delta update"),
        ("uri_query" = Option<String>, Query, description = "Query to put after every URI (`?token=…`)"),
    ),
    responses(
        (status = 200, description = "The playlist or object", body = Vec<u8>),
        (status = 400, description = "`msn` or `part` too far ahead (RFC 8216bis §6.2.5.2)", body = crate::error::ErrorBody),
        (status = 401, description = "No valid node token", body = crate::error::ErrorBody),
        (status = 404, description = "No low-latency session of the stream here", body = crate::error::ErrorBody),
        (status = 503, description = "What a held request asked for did not come in time", body = crate::error::ErrorBody),
    ),
    security(("node_token" = [])))]
pub async fn low_latency(
    State(state): State<AppState>,
    Path((live_stream_id, rendition, name)): Path<(String, String, String)>,
    Query(query): Query<ForwardedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = state.node_token.as_deref().unwrap_or_default();
    if expected.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::Unauthorized("this route takes the node token"));
    }
    let live_stream_id = LiveStreamId::parse(&live_stream_id).map_err(|_| NOT_FOUND)?;
    let packaged = state.packaged_here.as_ref().ok_or(NOT_FOUND)?;
    if name != "index.m3u8" {
        let body = packaged
            .media(&live_stream_id, &rendition, &name)
            .await
            .ok_or(NOT_FOUND)?;
        return Ok(body.into_response());
    }
    let request = LowLatencyRequest {
        msn: query.msn,
        part: query.part,
        skip: query.skip,
    };
    let body = packaged
        .playlist(&live_stream_id, &rendition, request, &query.uri_query)
        .await
        .ok_or(NOT_FOUND)?
        .into_playlist()?;
    Ok((StatusCode::OK, body).into_response())
}
