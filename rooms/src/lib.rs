//! sluice-rooms: real-time rooms that LiveKit's client SDKs join.
//!
//! - [`token`]: room access tokens in LiveKit's format (HS256 JWT with a `video` grant).
//! - [`control`]: what the REST API asks of running rooms ([`RoomControl`]).

pub mod control;
pub mod token;

pub use control::{ControlError, DataMessage, ParticipantView, RoomControl, TrackView};
