//! What a live session needs from its publisher, whatever protocol it came in on: the RTMP
//! connection and the WebRTC (WHIP) peer both hand the session [`SessionEvent`]s (tracks and
//! packets in the `media` vocabulary), are told whether their publish was accepted, and count
//! the bytes they received. `LiveService::publish` and `run_session` serve either through this
//! trait, so both share one authorisation, session record, event and pipeline path.

use std::fmt::Display;
use std::future::Future;

use sluice_ingest::{IngestError, RtmpConnection, SessionEvent};

/// A publisher's connection as the live session sees it.
pub trait Publisher: Send {
    /// Why the connection failed.
    type Error: Display + Send;

    /// The next event from the publisher; `None` once it has gone.
    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<SessionEvent>, Self::Error>> + Send;

    /// Tells the publisher its publish was accepted.
    fn accept_publish(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Tells the publisher its publish was refused, and why.
    fn reject_publish(
        &mut self,
        reason: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Bytes received from the publisher so far.
    fn bytes_received(&self) -> u64;
}

impl Publisher for RtmpConnection {
    type Error = IngestError;

    async fn next_event(&mut self) -> Result<Option<SessionEvent>, IngestError> {
        RtmpConnection::next_event(self).await
    }

    async fn accept_publish(&mut self) -> Result<(), IngestError> {
        RtmpConnection::accept_publish(self).await
    }

    async fn reject_publish(&mut self, reason: &str) -> Result<(), IngestError> {
        RtmpConnection::reject_publish(self, reason).await
    }

    fn bytes_received(&self) -> u64 {
        RtmpConnection::bytes_received(self)
    }
}
