//! Test support for other crates (feature `fixtures`): known-good codec configurations, raw
//! video pictures, media clips made at test time with the ffmpeg CLI, and a reader of animated
//! WebP files (which ffmpeg's WebP decoder does not read).

use crate::av1::Av1Config;
use crate::codec::AvcConfig;

/// Sequence parameter set of a 320x240 High-profile stream written by x264 (ffmpeg lavfi
/// `testsrc`, yuv420p).
pub const SPS_320X240: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];

/// The picture parameter set written with [`SPS_320X240`].
pub const PPS_320X240: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// The decoder configuration of that 320x240 stream.
pub fn avc_320x240() -> AvcConfig {
    AvcConfig::from_parameter_sets(&SPS_320X240, &PPS_320X240)
        .expect("the fixture parameter sets parse")
}

/// Sequence header OBU (with its header and size) of a 320x180 8-bit 4:2:0 stream written by
/// rav1e at speed 10, level 2.0.
pub const AV1_SEQUENCE_HEADER_320X180: [u8; 13] = [
    0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xfe, 0xcc, 0x42, 0x15, 0x01, 0x40,
];

/// The decoder configuration of that 320x180 AV1 stream.
pub fn av1_320x180() -> Av1Config {
    Av1Config::from_sequence_header_obu(&AV1_SEQUENCE_HEADER_320X180)
        .expect("the fixture sequence header parses")
}

/// Picture `index` of a moving test pattern as a raw video packet's bytes
/// ([`crate::raw_video`]: yuv420p, `width` and `height` even): a diagonal luma ramp that moves
/// a pixel per picture over flat chroma, so each picture differs from the last.
pub fn raw_picture(width: u32, height: u32, index: u32) -> bytes::Bytes {
    let mut picture = Vec::with_capacity(crate::raw_picture_bytes(width, height) as usize);
    let (width, height) = (width as usize, height as usize);
    for row in 0..height {
        picture.extend((0..width).map(|column| (row + column + index as usize) as u8));
    }
    let chroma = (width / 2) * (height / 2);
    picture.extend(std::iter::repeat_n(96u8, chroma));
    picture.extend(std::iter::repeat_n(160u8, chroma));
    picture.into()
}

/// Runs the ffmpeg CLI quietly with `args`, writing `name` in `dir`, and returns its path.
/// Panics if ffmpeg fails: a test cannot go on without its clip.
pub fn ffmpeg_clip(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .status()
        .expect("the ffmpeg CLI runs");
    assert!(status.success(), "ffmpeg made {name}");
    path
}

/// What an animated WebP file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebpAnimation {
    /// Canvas width and height.
    pub canvas: (u32, u32),
    /// Each frame's duration in milliseconds, in order.
    pub durations: Vec<u32>,
    /// Times the animation plays (0: forever); `None` without an `ANIM` chunk.
    pub loop_count: Option<u16>,
}

fn le24(bytes: &[u8]) -> u32 {
    u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16
}

/// Reads a WebP file's RIFF chunks (`RIFF` size `WEBP`, then fourcc, size, payload padded to
/// an even length): the canvas from `VP8X`, the loop count from `ANIM`, a frame per `ANMF`.
/// Panics on anything else than a well-formed extended WebP.
pub fn read_webp_animation(data: &[u8]) -> WebpAnimation {
    assert_eq!(&data[..4], b"RIFF", "a RIFF file");
    assert_eq!(&data[8..12], b"WEBP", "a WebP file");
    let mut animation = WebpAnimation {
        canvas: (0, 0),
        durations: Vec::new(),
        loop_count: None,
    };
    let mut at = 12;
    while at + 8 <= data.len() {
        let fourcc = &data[at..at + 4];
        let size = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        let payload = &data[at + 8..at + 8 + size];
        match fourcc {
            b"VP8X" => animation.canvas = (le24(&payload[4..]) + 1, le24(&payload[7..]) + 1),
            b"ANIM" => animation.loop_count = Some(u16::from_le_bytes([payload[4], payload[5]])),
            b"ANMF" => animation.durations.push(le24(&payload[12..])),
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    animation
}
