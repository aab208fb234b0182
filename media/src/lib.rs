//! The shared vocabulary of Sluice's media plane.
//!
//! Every other media crate (ingest, transcoder, packager) speaks in these types and nothing
//! else: a [`Packet`] is one access unit (compressed, or an uncompressed picture of a raw
//! video track, [`raw_video`]) with its timestamps in a [`Timebase`];
//! a [`TrackInfo`] describes one elementary stream and carries its decoder configuration
//! ([`AvcConfig`] for H.264, [`Av1Config`] for AV1, [`AudioSpecificConfig`] for AAC) from
//! which the RFC 6381 codec strings used in HLS `CODECS` attributes are derived; a
//! [`VideoConfig`] is an encoded rendition's configuration, whichever its codec; a [`Ladder`]
//! is the list of renditions a live stream or an asset asks for.
//!
//! This crate imports nothing else of Sluice's.

pub mod annex_b;
pub mod av1;
pub mod codec;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ladder;
pub mod packet;
pub mod raw_video;
pub mod time;
pub mod vp8;

pub use av1::Av1Config;
pub use codec::{
    AudioCodec, AudioSpecificConfig, AvcConfig, CodecError, Mp3FrameHeader, VideoCodec,
};
pub use ladder::Ladder;
pub use packet::{Packet, TrackInfo, TrackKind, VideoConfig};
pub use raw_video::raw_picture_bytes;
pub use time::{MediaTime, Timebase};
pub use vp8::Vp8FrameHeader;
