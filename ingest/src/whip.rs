//! WHIP signalling (WebRTC-HTTP Ingestion Protocol, RFC 9725) as the HTTP side and the media
//! plane exchange it: an offer to publish ([`WhipOffer`], checked first by [`sdp::check_offer`]),
//! the answer ([`WhipAnswer`]), the refusals ([`WhipError`]), and the [`WhipIngest`] trait the
//! media plane implements. No I/O here: the HTTP routes are the API's, the WebRTC transport is
//! the live crate's.

pub mod sdp;

use async_trait::async_trait;

/// An SDP offer to publish to a live stream.
#[derive(Debug, Clone)]
pub struct WhipOffer {
    pub live_stream_id: String,
    /// The stream key presented as the Bearer token.
    pub stream_key: String,
    pub sdp: String,
    /// What [`sdp::check_offer`] found in it.
    pub offered: sdp::OfferedMedia,
    /// The HTTP client's `User-Agent`, recorded as the session's encoder.
    pub user_agent: Option<String>,
}

/// An accepted offer.
#[derive(Debug, Clone)]
pub struct WhipAnswer {
    /// The WHIP session's id (the last segment of its `Location`).
    pub session_id: String,
    pub sdp: String,
}

/// Why an offer or a session request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhipError {
    #[error("live stream not found")]
    StreamNotFound,
    #[error("WHIP session not found")]
    SessionNotFound,
    #[error("wrong stream key")]
    WrongKey,
    /// The stream may not publish (disabled).
    #[error("{0}")]
    Refused(String),
    #[error("live stream already has a publisher")]
    Busy,
    /// The offer is SDP the WebRTC stack cannot answer.
    #[error("{0}")]
    BadOffer(String),
    /// The server is shutting down and takes no new sessions.
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
}

/// The WebRTC media plane, as the HTTP side drives it.
#[async_trait]
pub trait WhipIngest: Send + Sync {
    /// Checks the offer and the key, starts the session and returns the SDP answer.
    async fn offer(&self, offer: WhipOffer) -> Result<WhipAnswer, WhipError>;
    /// Ends a session of `live_stream_id` whose publisher presents `stream_key`.
    async fn end(
        &self,
        live_stream_id: &str,
        session_id: &str,
        stream_key: &str,
    ) -> Result<(), WhipError>;
}
