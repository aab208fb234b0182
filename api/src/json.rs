//! JSON shapes every resource shares: the request body extractor, the `{"data": …}` envelope,
//! the `{"data": […], "next_cursor": …}` page and its `limit`/`cursor` query parameters.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Page size when the request names none.
const DEFAULT_PAGE_SIZE: u64 = 25;

/// `axum::extract::Path`, with its rejections (a segment that is not valid UTF-8 once
/// percent-decoded, a value of the wrong type) turned into JSON [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::Json`, with its rejections turned into [`ApiError`]s so they render as JSON (an
/// unknown field names itself in the message).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Option<ApiJson<T>>`: a body that may be left out. No body and no Content-Type is `None`;
/// a body needs `Content-Type: application/json` as always (one without is refused rather than
/// ignored).
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if request.headers().contains_key(CONTENT_TYPE) {
            let ApiJson(value) =
                <ApiJson<T> as FromRequest<S>>::from_request(request, state).await?;
            return Ok(Some(ApiJson(value)));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(JsonRejection::from)?;
        if body.is_empty() {
            Ok(None)
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }
}

/// One object: `{"data": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub data: T,
}

/// One page of a list: `{"data": […], "next_cursor": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageEnvelope<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 25).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The page size asked for, checked against the bounds the database serves.
    pub fn limit(&self) -> Result<u64, ApiError> {
        page_limit(self.limit)
    }
}

/// A list's `?limit=` (default 25), checked against the bounds the database serves; for lists
/// whose query parameters add filters to `limit` and `cursor`.
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if (1..=sluice_storage::MAX_PAGE_SIZE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::InvalidRequest(format!(
            "limit: must be between 1 and {}",
            sluice_storage::MAX_PAGE_SIZE
        )))
    }
}

/// `Some(value)` for a field that is present, even as `null`; with `#[serde(default)]` an
/// absent field stays `None`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}
