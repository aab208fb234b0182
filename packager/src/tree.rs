//! The shape of an HLS tree, shared by live and VOD packaging: where its playlists are, the
//! track id inside every init segment, and how each rendition is described to the API once
//! packaged. Both packagers lay their trees out the same way (`master.m3u8`, then one
//! directory per rendition: `v0`, `v1`, … for video in ladder order and `a0` for audio, each
//! with its `index.m3u8`), so a recorded live session's tree is a valid asset tree as it is.

use serde::Serialize;

/// Track id inside every init segment (CMAF: one track per file).
pub const TRACK_ID: u32 = 1;

/// The multivariant playlist at the root of a tree.
pub const MASTER_PLAYLIST: &str = "master.m3u8";

/// The media playlist of the rendition in directory `dir`, relative to the master playlist.
pub fn media_playlist_uri(dir: &str) -> String {
    format!("{dir}/index.m3u8")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendition_is_described_with_the_api_field_names() {
        let rendition = PackagedRendition {
            name: "audio".to_owned(),
            codec: "aac".to_owned(),
            width: None,
            height: None,
            frame_rate: None,
            bandwidth: 130_000,
            average_bandwidth: 128_000,
            uri: media_playlist_uri("a0"),
        };
        assert_eq!(
            serde_json::to_string(&rendition).unwrap(),
            r#"{"name":"audio","codec":"aac","width":null,"height":null,"frame_rate":null,"bandwidth":130000,"average_bandwidth":128000,"uri":"a0/index.m3u8"}"#
        );
    }
}
