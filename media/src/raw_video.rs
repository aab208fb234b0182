//! Uncompressed video, the way a publisher that makes its own pictures (a room's composite)
//! hands them over without encoding them first: [`TrackInfo::RawVideo`](crate::TrackInfo).
//!
//! Each [`Packet`](crate::Packet) of such a track is one picture in yuv420p with 8 bits per
//! sample, its three planes packed one after another with no padding between rows: Y
//! (`width`×`height` bytes), then U, then V (`width/2`×`height/2` bytes each). Both
//! dimensions are even, so the chroma planes halve them exactly.

/// Bytes of one picture of a raw video track of `width`×`height` (even dimensions): the Y
/// plane, then the U and V planes at half the width and half the height.
pub fn raw_picture_bytes(width: u32, height: u32) -> u64 {
    let luma = u64::from(width) * u64::from(height);
    let chroma = u64::from(width / 2) * u64::from(height / 2);
    luma.saturating_add(2 * chroma)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_a_full_luma_plane_and_two_quarter_chroma_planes() {
        assert_eq!(raw_picture_bytes(320, 180), 320 * 180 * 3 / 2);
        assert_eq!(raw_picture_bytes(1920, 1080), 3_110_400);
        assert_eq!(raw_picture_bytes(0, 1080), 0);
        assert!(raw_picture_bytes(u32::MAX, u32::MAX) > u64::from(u32::MAX));
    }
}
