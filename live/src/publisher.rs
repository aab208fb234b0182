//! What the live core needs from a publisher, whatever protocol it came in on. A protocol
//! adapter (RTMP in [`crate::rtmp`], WHIP in [`crate::whip`], a room's composite, later SRT)
//! turns its connection into a [`PublishRequest`] and a [`Publisher`] that yields
//! [`PublisherEvent`]s in the `media` vocabulary, and hands both to
//! [`LiveService::publish`](crate::LiveService::publish). From there every kind of publisher
//! shares one authorisation, session record, event and pipeline path.
//!
//! The adapter owns what is particular to its protocol: RTMP checks its application name
//! before asking, WHIP signals its answer when the publish is accepted; neither is known here.

use std::fmt::Display;
use std::future::Future;

use sluice_media::{Packet, TrackInfo};
use sluice_storage::SessionOrigin;
use sluice_transcribe::Line;

/// A publisher asking to publish.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    /// The secret naming the live stream.
    pub stream_key: String,
    /// Who publishes and how (protocol, client address, encoder), as the session records it.
    pub origin: SessionOrigin,
}

/// What a publisher's connection tells its session, once its publish was accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum PublisherEvent {
    /// The stream's description from the publisher (RTMP `onMetaData`): its frame rate, when
    /// it declares one, helps plan the ladder; its video bitrate (kb/s) is what the health
    /// check holds the measured bitrate against.
    Metadata {
        frame_rate: Option<f64>,
        video_kbps: Option<f64>,
    },
    /// A new or changed track configuration.
    Track(TrackInfo),
    /// One compressed frame, or one picture of a raw video track.
    Media(Packet),
    /// Lines of speech the publisher recognised itself (a room's composite, whose room is
    /// transcribed), timed in seconds on its media clock (its packets' presentation times).
    /// A stream with live captions shows them, instead of recognising its audio, when its
    /// publisher [sends captions](Publisher::sends_captions); otherwise they are ignored.
    Captions(Vec<Line>),
    /// The publisher ended its publish on purpose ("stop streaming"): the session ends at once.
    Unpublished,
    /// The connection went away without unpublishing: the session waits for the publisher in
    /// its reconnect window.
    Dropped,
}

/// A publisher's connection as the live session sees it.
pub trait Publisher: Send {
    /// Why the connection failed.
    type Error: Display + Send;

    /// The next event from the publisher.
    fn next_event(&mut self) -> impl Future<Output = Result<PublisherEvent, Self::Error>> + Send;

    /// Tells the publisher its publish was accepted.
    fn accept_publish(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Tells the publisher its publish was refused, and why.
    fn reject_publish(
        &mut self,
        reason: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Bytes received from the publisher so far.
    fn bytes_received(&self) -> u64;

    /// Whether the publisher sends the lines of its stream's live captions
    /// ([`PublisherEvent::Captions`]); otherwise a stream with captions recognises its audio.
    fn sends_captions(&self) -> bool {
        false
    }
}
