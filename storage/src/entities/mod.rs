//! sea-orm entities: one module per table created by the migration in `migration/`.

pub mod api_key;
pub mod asset;
pub mod event;
pub mod job;
pub mod live_stream;
pub mod playback_id;
pub mod room;
pub mod room_composite;
pub mod room_participant;
pub mod room_session;
pub mod room_transcript_line;
pub mod session;
pub mod signing_key;
pub mod simulcast_target;
pub mod transcript;
pub mod transcript_line;
pub mod upload;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
