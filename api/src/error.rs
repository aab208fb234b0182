//! The API's error type and its JSON rendering:
//! `{"error": {"code": "not_found", "message": "..."}}` with the matching HTTP status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sluice_storage::{StorageError, StoreError};
use tracing::error;
use utoipa::ToSchema;

/// Largest request body accepted, enforced by `DefaultBodyLimit`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The status tus 1.0.0's checksum extension gives a body that fails its checksum.
const CHECKSUM_MISMATCH: StatusCode = match StatusCode::from_u16(460) {
    Ok(status) => status,
    Err(_) => panic!("460 is a valid status code"),
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a field with a wrong type or value, a bad query parameter.
    #[error("{0}")]
    InvalidRequest(String),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Valid credentials that do not allow the request (a missing permission, a playback
    /// token for something else).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// The request is valid but the resource is not in a state that allows it.
    #[error("{0}")]
    Conflict(&'static str),
    /// Nothing in the request is in a form the server can serve (a WHIP offer with no codec
    /// Sluice takes).
    #[error("{0}")]
    NotAcceptable(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// A body of the wrong content type on a route that takes something other than JSON; the
    /// message names the expected type.
    #[error("{0}")]
    WrongContentType(&'static str),
    /// A body (or a declared size) past the limit the message names.
    #[error("{0}")]
    TooLarge(String),
    /// A request whose body size must be declared in `Content-Length`.
    #[error("Content-Length is required")]
    LengthRequired,
    /// A protocol precondition the request does not meet (tus: a missing `Tus-Resumable`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The resource existed but is gone for good (an expired or cancelled upload).
    #[error("{0}")]
    Gone(&'static str),
    /// Another request is working on the resource; retry later.
    #[error("{0}")]
    Locked(&'static str),
    /// The body does not have the digest its `Upload-Checksum` named (tus status 460).
    #[error("the body does not match its Upload-Checksum; it was discarded")]
    ChecksumMismatch,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dependency the server needs (database, object store) does not work; the message
    /// says which, without details.
    #[error("not ready: {0}")]
    NotReady(String),
    /// Too many image renders are waiting: come back after `retry_after_s` seconds.
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after_s: u64,
    },
    /// This client asked for more than its share: come back after `retry_after_s` seconds.
    #[error("{message}")]
    RateLimited {
        message: &'static str,
        retry_after_s: u64,
    },
    /// Speech recognition is not installed or is turned off on this server; the message says
    /// why and how to install it.
    #[error("{0}")]
    TranscriptionUnavailable(String),
    /// This process runs no room engine (or it stopped), so live room operations cannot be
    /// served here.
    #[error("this server runs no rooms: live room operations are unavailable")]
    RoomsUnavailable,
    /// A live operation on a room that is not running (no one has joined it).
    #[error("the room is not running")]
    RoomNotRunning,
    /// This process's room engine cannot run a room composite; the message says why.
    #[error("room composites are not available on this server: {0}")]
    CompositeUnavailable(String),
    /// A failure of the server's own making (a value that would not serialise, …).
    #[error("{0}")]
    Internal(String),
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Machine-readable: `invalid_request`, `unauthorized`, `forbidden`, `not_found`, …
    #[schema(example = "not_found")]
    code: &'static str,
    /// What went wrong, for a person.
    message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::WrongContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Self::Gone(_) => (StatusCode::GONE, "gone"),
            Self::Locked(_) => (StatusCode::LOCKED, "locked"),
            Self::ChecksumMismatch => (CHECKSUM_MISMATCH, "checksum_mismatch"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TranscriptionUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "transcription_unavailable")
            }
            Self::RoomsUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "rooms_unavailable"),
            Self::RoomNotRunning => (StatusCode::CONFLICT, "room_not_running"),
            Self::CompositeUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "composite_unavailable")
            }
            Self::Storage(e) if e.is_not_found() => (StatusCode::NOT_FOUND, "not_found"),
            Self::Storage(e) if e.is_conflict() => (StatusCode::CONFLICT, "conflict"),
            Self::Storage(StorageError::InvalidCursor(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::Store(e) if e.is_not_found() => (StatusCode::NOT_FOUND, "not_found"),
            Self::Storage(_) | Self::Store(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Storage(StorageError::InvalidCursor(_)) => "invalid cursor".to_owned(),
            Self::NotFound(message) => (*message).to_owned(),
            // A storage "not found" would name the record id or object key: say no more.
            _ if status == StatusCode::NOT_FOUND => "not found".to_owned(),
            Self::NotReady(_)
            | Self::Busy { .. }
            | Self::TranscriptionUnavailable(_)
            | Self::RoomsUnavailable
            | Self::CompositeUnavailable(_) => self.to_string(),
            _ if status.is_server_error() => {
                error!(error = %self, "Request failed.");
                "internal server error".to_owned()
            }
            _ => self.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail { code, message },
            }),
        )
            .into_response();
        if let Self::Busy { retry_after_s, .. } | Self::RateLimited { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sluice\""),
            );
        }
        response
    }
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// Wraps an unexpected failure; the client sees only "internal server error".
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// For `map_err`: a storage "not found" becomes [`ApiError::NotFound`] with `message`
    /// (which record was missing), any other storage error stays as it is.
    pub fn not_found_as(message: &'static str) -> impl FnOnce(StorageError) -> Self {
        move |error| {
            if error.is_not_found() {
                Self::NotFound(message)
            } else {
                Self::Storage(error)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::InvalidRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidRequest(rejection.body_text())
    }
}

/// Router fallback: unknown paths answer the JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("not found")
}

/// Router fallback for a known path asked with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
