//! The shared vocabulary of Sluice's media plane.
//!
//! Every other media crate (ingest, transcoder, packager) speaks in these types and nothing
//! else: a [`Packet`] is one compressed access unit with its timestamps in a [`Timebase`];
//! a [`TrackInfo`] describes one elementary stream and carries its decoder configuration
//! ([`AvcConfig`] for H.264, [`AudioSpecificConfig`] for AAC) from which the RFC 6381 codec
//! strings used in HLS `CODECS` attributes are derived.
//!
//! This crate imports nothing else of Sluice's.

pub mod codec;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod packet;
pub mod time;

pub use codec::{
    AudioCodec, AudioSpecificConfig, AvcConfig, CodecError, Mp3FrameHeader, VideoCodec,
};
pub use packet::{Packet, TrackInfo, TrackKind};
pub use time::{MediaTime, Timebase};
