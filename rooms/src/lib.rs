//! sluice-rooms: real-time rooms that LiveKit's client SDKs join.
//!
//! - [`token`]: room access tokens in LiveKit's format (HS256 JWT with a `video` grant).
//! - [`control`]: what the REST API asks of running rooms ([`RoomControl`]).
//! - `composite`: a room's participants composed into one live stream (`sluice-compositor`),
//!   fed by a [`tap`] on the room.
//! - [`transcription`]: a room's microphones recognised as they speak (`sluice-transcribe`), to
//!   its clients as LiveKit transcription packets and into its session's transcript.

mod composite;
pub mod control;
pub mod engine;
pub mod service;
pub mod signal;
pub mod simulcast;
pub mod speakers;
pub mod tap;
pub mod token;
pub mod transcription;

pub use control::{
    CompositeLayout, CompositeResolution, CompositeSpec, ControlError, DataMessage,
    ParticipantView, RoomControl, TrackView,
};
pub use service::{Admission, JoinOptions, Refusal, Rooms, RoomsSettings};

#[cfg(test)]
mod engine_tests;
