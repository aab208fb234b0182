//! The shape of an HLS tree, shared by live and VOD packaging: where its playlists are, the
//! track id inside every init segment, and how each rendition is described to the API once
//! packaged. Both packagers lay their trees out the same way (`master.m3u8`, then one
//! directory per rendition: `v0`, `v1`, … for video in ladder order and `a0` for audio, each
//! with its `index.m3u8`), so a recorded live session's tree is a valid asset tree as it is.
//! Both describe their renditions in the multivariant playlist ([`video_variant`],
//! [`audio_rendition`]) and to the API ([`PackagedRendition`]) through the builders here.

use serde::Serialize;
use sluice_media::{AudioSpecificConfig, MediaTime, VideoConfig};

use crate::playlist::{AudioRendition, VideoVariant};
use crate::segmenter::CompletedSegment;

/// Track id inside every init segment (CMAF: one track per file).
pub const TRACK_ID: u32 = 1;

/// The multivariant playlist at the root of a tree.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// A rendition's media playlist, in its directory.
pub const MEDIA_PLAYLIST: &str = "index.m3u8";

/// The media playlist of the rendition in directory `dir`, relative to the master playlist.
pub fn media_playlist_uri(dir: &str) -> String {
    format!("{dir}/{MEDIA_PLAYLIST}")
}

/// The NAME of the audio rendition in the multivariant playlist.
const AUDIO_NAME: &str = "Audio";
/// The API name of the audio rendition.
const AUDIO_RENDITION: &str = "audio";

/// Peak and average bit rate of a rendition, bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitrates {
    pub peak_bps: u64,
    pub average_bps: u64,
}

/// Where a closed segment ends, on its track's clock.
pub fn segment_end(segment: &CompletedSegment) -> MediaTime {
    MediaTime::new(
        segment.start.ticks + segment.duration.ticks,
        segment.start.timebase,
    )
}

/// The multivariant playlist's entry of the video rendition in `dir`.
pub fn video_variant(
    dir: &str,
    config: &VideoConfig,
    frame_rate: f64,
    bitrates: Bitrates,
) -> VideoVariant {
    VideoVariant {
        uri: media_playlist_uri(dir),
        codec: config.codec_string(),
        width: config.width(),
        height: config.height(),
        frame_rate,
        peak_bps: bitrates.peak_bps,
        average_bps: bitrates.average_bps,
    }
}

/// The multivariant playlist's entry of the audio rendition in `dir` (every video variant
/// plays with it).
pub fn audio_rendition(
    dir: &str,
    config: &AudioSpecificConfig,
    bitrates: Bitrates,
) -> AudioRendition {
    AudioRendition {
        uri: media_playlist_uri(dir),
        name: AUDIO_NAME.to_owned(),
        language: None,
        channels: config.channels.max(1),
        codec: config.codec_string(),
        peak_bps: bitrates.peak_bps,
        average_bps: bitrates.average_bps,
    }
}

/// One rendition of a packaged tree, in the API's form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PackagedRendition {
    /// The ladder rung's name (`source`, `720p`, …), or `audio`.
    pub name: String,
    /// `h264`, `av1` or `aac`.
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// Measured peak segment bit rate (BANDWIDTH, the rendition alone), bits per second.
    pub bandwidth: u64,
    /// Measured average bit rate, bits per second.
    pub average_bandwidth: u64,
    /// Its media playlist, relative to the master playlist.
    pub uri: String,
}

impl PackagedRendition {
    /// The video rendition `name` in `dir`, as `config` describes it (one whose configuration
    /// never arrived is described as H.264 without a size).
    pub fn video(
        name: &str,
        dir: &str,
        config: Option<&VideoConfig>,
        frame_rate: f64,
        bitrates: Bitrates,
    ) -> Self {
        PackagedRendition {
            name: name.to_owned(),
            codec: config.map_or_else(|| "h264".to_owned(), |c| c.codec().name()),
            width: config.map(VideoConfig::width),
            height: config.map(VideoConfig::height),
            frame_rate: Some(frame_rate),
            bandwidth: bitrates.peak_bps,
            average_bandwidth: bitrates.average_bps,
            uri: media_playlist_uri(dir),
        }
    }

    /// The AAC audio rendition in `dir`.
    pub fn audio(dir: &str, bitrates: Bitrates) -> Self {
        PackagedRendition {
            name: AUDIO_RENDITION.to_owned(),
            codec: "aac".to_owned(),
            width: None,
            height: None,
            frame_rate: None,
            bandwidth: bitrates.peak_bps,
            average_bandwidth: bitrates.average_bps,
            uri: media_playlist_uri(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendition_is_described_with_the_api_field_names() {
        let rendition = PackagedRendition::audio(
            "a0",
            Bitrates {
                peak_bps: 130_000,
                average_bps: 128_000,
            },
        );
        assert_eq!(
            serde_json::to_string(&rendition).unwrap(),
            r#"{"name":"audio","codec":"aac","width":null,"height":null,"frame_rate":null,"bandwidth":130000,"average_bandwidth":128000,"uri":"a0/index.m3u8"}"#
        );
    }
}
