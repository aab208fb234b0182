//! sluice-rooms: real-time rooms that LiveKit's client SDKs join.
//!
//! - [`token`]: room access tokens in LiveKit's format (HS256 JWT with a `video` grant).
//! - [`control`]: what the REST API asks of running rooms ([`RoomControl`]).

pub mod control;
pub mod engine;
pub mod service;
pub mod signal;
pub mod simulcast;
pub mod speakers;
pub mod token;

pub use control::{ControlError, DataMessage, ParticipantView, RoomControl, TrackView};
pub use service::{Admission, JoinOptions, Refusal, Rooms, RoomsSettings};

#[cfg(test)]
mod engine_tests;
