//! Sluice's packager: compressed packets in, CMAF fMP4 segments and HLS playlists out.
//!
//! * [`fmp4`] writes one init segment per track ([`init_segment`]) and `moof`+`mdat` chunks
//!   ([`write_fragment`]) following ISO/IEC 14496-12 and CMAF (ISO/IEC 23000-19).
//! * [`segmenter`] turns one track's [`sluice_media::Packet`]s into [`CompletedSegment`]s: sample
//!   durations from the next decode time, cuts at keyframes once the target duration is reached
//!   (or where the caller asks, so audio follows video boundaries), repaired timestamps, and
//!   LL-HLS parts ([`CompletedPart`]) when asked for.
//! * [`playlist`] keeps the HLS media playlist's live window ([`LivePlaylist`]), writes
//!   on-demand playlists ([`VodPlaylist`]) and builds the multivariant playlist ([`MasterPlaylist`]) as `m3u8-rs` data, rendered with its writer.
//! * [`tree`] is the layout of a packaged HLS tree that live and VOD packaging share, and the
//!   API's description of its renditions ([`PackagedRendition`]).
//! * [`subtitles`] renders transcripts ([`Cue`]s) as WebVTT, SRT and text, cuts them into an
//!   HLS WebVTT rendition on the video's segment boundaries with its media playlist, and adds
//!   that rendition to a multivariant playlist ([`add_subtitle_rendition`]).
//! * `ll_hls_conformance` (feature `conformance`; tests only, the server never runs it) is an
//!   independent reading of RFC 8216bis's LL-HLS rules that judges rendered playlists.
//!
//! Nothing here does I/O or reads the clock: callers pass packets, times and program date
//! times in, and get bytes out to hand to storage.

pub mod fmp4;
#[cfg(any(test, feature = "conformance"))]
pub mod ll_hls_conformance;
pub mod playlist;
pub mod segmenter;
pub mod subtitles;
#[cfg(test)]
mod test_reader;
pub mod tree;

pub use fmp4::{init_segment, write_fragment, Sample};
pub use playlist::{
    AudioRendition, BitrateMeter, IFrameVariant, LivePlaylist, LowLatencyView, MasterPlaylist,
    PartEntry, RenditionReport, VideoVariant, VodPlaylist,
};
pub use segmenter::{
    segments_of, BoundaryPolicy, CompletedPart, CompletedSegment, SegmentEvent, TrackSegmenter,
};
pub use subtitles::{
    add_subtitle_rendition, is_language_tag, subtitle_playlist, to_srt, to_text, to_webvtt,
    webvtt_segments, Cue, SubtitleRendition, SubtitlesError,
};
pub use tree::{
    audio_rendition, media_playlist_uri, segment_end, video_variant, Bitrates, PackagedRendition,
    MASTER_PLAYLIST, MEDIA_PLAYLIST, TRACK_ID,
};

/// Errors raised while packaging.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackagerError {
    /// The track's codec has no CMAF sample entry in Sluice (only H.264, AV1 and AAC do).
    #[error("codec {codec} cannot be packaged as CMAF")]
    UnsupportedCodec { codec: String },
    /// A value does not fit the 32-bit field ISOBMFF gives it.
    #[error("{what} of {value} does not fit in its MP4 field")]
    TooLarge { what: &'static str, value: u64 },
    /// A fragment was asked for with no samples in it.
    #[error("a fragment needs at least one sample")]
    EmptyFragment,
}
