//! How a [`Ladder`] (the configured renditions, defined in `sluice_media::ladder`) is fitted
//! to a given source.
//!
//! [`plan`] fits a ladder to a source following the Apple HLS Authoring Specification: never
//! upscale (§2.1 ladder guidance), even dimensions for 4:2:0 chroma, frame rate never above the
//! source's, and capped VBR (VBV) so segment peaks stay near the declared BANDWIDTH (§1.26).
//! Every rung it plans is H.264. [`plan_with_codecs`] adds, when AV1 is asked for, an AV1 twin
//! of each encoded H.264 rung (same size and frame rate, [`AV1_BITRATE_FACTOR`] of its
//! bitrate) after all of them; the live path never asks for AV1.

pub use sluice_media::ladder::{Ladder, Rung, RungSpec, SOURCE_NAME};
use sluice_media::VideoCodec;

use crate::TranscodeError;

/// A rung fitted to a source.
#[derive(Clone, Debug, PartialEq)]
pub enum PlannedRung {
    /// Repackage the source.
    Source,
    /// Encode with these settings.
    Encode(EncodeTarget),
}

impl PlannedRung {
    /// The rung's name (`source`, `720p`, …).
    pub fn name(&self) -> &str {
        match self {
            PlannedRung::Source => SOURCE_NAME,
            PlannedRung::Encode(target) => &target.name,
        }
    }
}

/// What one encoded rung is made of, once fitted to the source.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeTarget {
    /// Rung name (`720p`; an AV1 twin is `720p-av1`).
    pub name: String,
    /// What the rung is encoded to: H.264 (x264) or AV1 (rav1e).
    pub codec: VideoCodec,
    /// Output width (even, source aspect ratio).
    pub width: u32,
    /// Output height (even, never above the source).
    pub height: u32,
    /// Output frame rate: the source's, capped at the rung's `max_fps`.
    pub frame_rate: f64,
    /// Average bitrate in kb/s (x264 ABR, rav1e's bitrate mode).
    pub bitrate_kbps: u32,
    /// VBV maximum rate in kb/s (for AV1, which rav1e cannot cap, it only picks the level).
    pub vbv_maxrate_kbps: u32,
    /// VBV buffer size in kbit.
    pub vbv_bufsize_kbit: u32,
}

/// VBV maximum rate as a multiple of the average bitrate: 10 % headroom, the tolerance the
/// HLS Authoring Spec allows between declared and measured bitrates (§1.26–1.27).
const VBV_MAXRATE_FACTOR: f64 = 1.1;
/// VBV buffer in seconds of average bitrate: one 2 s segment.
const VBV_BUFFER_SECONDS: u32 = 2;
/// Largest source Sluice transcodes (4096×2304, a 16:9 4K frame): larger frames are refused
/// before a decoder allocates them.
pub const MAX_SOURCE_PIXELS: u64 = 4096 * 2304;

/// Fits `ladder` to a source of `source_width`×`source_height` at `source_fps` (when known).
///
/// Rungs taller than the source are dropped; when none is left, the lowest rung is kept at the
/// source size with its bitrate scaled by pixel count. Widths keep the source aspect ratio and
/// both dimensions are even. Only the first `source` entry is kept.
pub fn plan(
    ladder: &Ladder,
    source_width: u32,
    source_height: u32,
    source_fps: Option<f64>,
) -> Result<Vec<PlannedRung>, TranscodeError> {
    let invalid = |reason| TranscodeError::InvalidSource {
        width: source_width,
        height: source_height,
        reason,
    };
    if source_width < 2 || source_height < 2 {
        return Err(invalid("dimensions below 2 pixels"));
    }
    if u64::from(source_width) * u64::from(source_height) > MAX_SOURCE_PIXELS {
        return Err(invalid("more pixels than 4096x2304"));
    }
    let source_fps = source_fps.filter(|fps| fps.is_finite() && *fps > 0.0);
    let fit = |rung: &Rung, height: u32| {
        let height = even_floor(height);
        let width =
            even_round(f64::from(height) * f64::from(source_width) / f64::from(source_height));
        let cap = f64::from(rung.max_fps.max(1));
        let frame_rate = source_fps.map_or(cap, |fps| fps.min(cap));
        EncodeTarget {
            name: rung.name.to_string(),
            codec: VideoCodec::H264,
            width,
            height,
            frame_rate,
            bitrate_kbps: rung.bitrate_kbps,
            vbv_maxrate_kbps: (f64::from(rung.bitrate_kbps) * VBV_MAXRATE_FACTOR).round() as u32,
            vbv_bufsize_kbit: rung.bitrate_kbps.saturating_mul(VBV_BUFFER_SECONDS),
        }
    };

    let mut planned = Vec::new();
    let mut has_source = false;
    for spec in ladder.rungs.iter() {
        match spec {
            RungSpec::Source if !has_source => {
                has_source = true;
                planned.push(PlannedRung::Source);
            }
            RungSpec::Source => {}
            RungSpec::Encode(rung) if rung.height <= source_height && rung.height >= 2 => {
                planned.push(PlannedRung::Encode(fit(rung, rung.height)));
            }
            RungSpec::Encode(_) => {}
        }
    }

    let has_encode = planned
        .iter()
        .any(|rung| matches!(rung, PlannedRung::Encode(_)));
    let lowest = ladder
        .rungs
        .iter()
        .filter_map(|spec| match spec {
            RungSpec::Encode(rung) => Some(rung),
            RungSpec::Source => None,
        })
        .min_by_key(|rung| rung.height);
    if let (false, Some(lowest)) = (has_encode, lowest) {
        let mut target = fit(lowest, source_height);
        let nominal_width = even_round(f64::from(lowest.height) * 16.0 / 9.0);
        let area_ratio = f64::from(target.width) * f64::from(target.height)
            / (f64::from(nominal_width) * f64::from(lowest.height.max(1)));
        let scale = |kbps: u32| ((f64::from(kbps) * area_ratio.min(1.0)).round() as u32).max(1);
        target.name = format!("{}p", target.height);
        target.bitrate_kbps = scale(target.bitrate_kbps);
        target.vbv_maxrate_kbps = scale(target.vbv_maxrate_kbps);
        target.vbv_bufsize_kbit = scale(target.vbv_bufsize_kbit);
        planned.push(PlannedRung::Encode(target));
    }
    Ok(planned)
}

/// An AV1 rung's bitrate as a share of its H.264 twin's: AV1 reaches the same quality with
/// roughly 30–40 % fewer bits.
pub const AV1_BITRATE_FACTOR: f64 = 0.65;

/// The codec named `name` (`h264` or `av1`), if the ladder can encode it.
pub fn encodable_codec(name: &str) -> Result<VideoCodec, TranscodeError> {
    [VideoCodec::H264, VideoCodec::Av1]
        .into_iter()
        .find(|codec| codec.name() == name.trim())
        .ok_or_else(|| TranscodeError::UnsupportedCodec(name.trim().to_owned()))
}

/// [`plan`], then an AV1 twin of every encoded rung when `codecs` holds
/// [`VideoCodec::Av1`]: the H.264 rungs first (they play everywhere), then the AV1 ones in the
/// same order. `codecs` may name H.264 and AV1 only; H.264 rungs are always planned.
pub fn plan_with_codecs(
    ladder: &Ladder,
    source_width: u32,
    source_height: u32,
    source_fps: Option<f64>,
    codecs: &[VideoCodec],
) -> Result<Vec<PlannedRung>, TranscodeError> {
    if let Some(other) = codecs
        .iter()
        .find(|codec| !matches!(codec, VideoCodec::H264 | VideoCodec::Av1))
    {
        return Err(TranscodeError::UnsupportedCodec(other.name()));
    }
    let mut planned = plan(ladder, source_width, source_height, source_fps)?;
    if codecs.contains(&VideoCodec::Av1) {
        let twins: Vec<PlannedRung> = planned
            .iter()
            .filter_map(|rung| match rung {
                PlannedRung::Encode(target) => Some(PlannedRung::Encode(av1_twin(target))),
                PlannedRung::Source => None,
            })
            .collect();
        planned.extend(twins);
    }
    Ok(planned)
}

fn av1_twin(target: &EncodeTarget) -> EncodeTarget {
    let scale = |kbps: u32| ((f64::from(kbps) * AV1_BITRATE_FACTOR).round() as u32).max(1);
    EncodeTarget {
        name: format!("{}-av1", target.name),
        codec: VideoCodec::Av1,
        bitrate_kbps: scale(target.bitrate_kbps),
        vbv_maxrate_kbps: scale(target.vbv_maxrate_kbps),
        vbv_bufsize_kbit: scale(target.vbv_bufsize_kbit),
        ..target.clone()
    }
}

fn even_floor(value: u32) -> u32 {
    value & !1
}

fn even_round(value: f64) -> u32 {
    ((value / 2.0).round() as u32).max(1) * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_targets(planned: &[PlannedRung]) -> Vec<&EncodeTarget> {
        planned
            .iter()
            .filter_map(|rung| match rung {
                PlannedRung::Encode(target) => Some(target),
                PlannedRung::Source => None,
            })
            .collect()
    }

    #[test]
    fn default_ladder_on_1080p_keeps_every_rung_with_even_16_9_sizes() {
        let planned = plan(&Ladder::DEFAULT, 1920, 1080, Some(30.0)).unwrap();
        let sizes: Vec<_> = encode_targets(&planned)
            .iter()
            .map(|t| (t.name.as_str(), t.width, t.height, t.bitrate_kbps))
            .collect();
        assert_eq!(
            sizes,
            [
                ("1080p", 1920, 1080, 6000),
                ("720p", 1280, 720, 3000),
                ("480p", 854, 480, 1400),
                ("360p", 640, 360, 800),
            ]
        );
    }

    #[test]
    fn rungs_taller_than_the_source_are_dropped() {
        let planned = plan(&Ladder::DEFAULT, 1280, 720, Some(30.0)).unwrap();
        let names: Vec<_> = planned.iter().map(PlannedRung::name).collect();
        assert_eq!(names, ["720p", "480p", "360p"]);
    }

    #[test]
    fn a_source_smaller_than_every_rung_keeps_one_rung_at_source_size() {
        let planned = plan(&Ladder::DEFAULT, 320, 240, Some(25.0)).unwrap();
        let targets = encode_targets(&planned);
        assert_eq!(targets.len(), 1);
        let target = targets[0];
        assert_eq!((target.width, target.height), (320, 240));
        assert_eq!(target.name, "240p");
        // 320×240 is a third of 640×360's pixels: 800 kb/s scales down to 267 kb/s.
        assert_eq!(target.bitrate_kbps, 267);
        assert!(target.vbv_maxrate_kbps > target.bitrate_kbps);
    }

    #[test]
    fn width_follows_the_source_aspect_ratio_and_stays_even() {
        let planned = plan(&Ladder::DEFAULT, 1440, 1080, None).unwrap();
        let widths: Vec<_> = encode_targets(&planned).iter().map(|t| t.width).collect();
        assert_eq!(widths, [1440, 960, 640, 480]);

        // A portrait phone source: 1080×1920 fits every rung by height, widths shrink.
        let planned = plan(&Ladder::DEFAULT, 1080, 1920, None).unwrap();
        let sizes: Vec<_> = encode_targets(&planned)
            .iter()
            .map(|t| (t.width, t.height))
            .collect();
        assert_eq!(sizes, [(608, 1080), (406, 720), (270, 480), (202, 360)]);
    }

    #[test]
    fn odd_source_dimensions_give_even_output() {
        let planned = plan(&Ladder::DEFAULT, 639, 359, None).unwrap();
        let target = encode_targets(&planned)[0];
        assert_eq!((target.width % 2, target.height % 2), (0, 0));
        assert_eq!(target.height, 358);
    }

    #[test]
    fn frame_rate_is_never_above_the_source_nor_the_rung_cap() {
        let planned = plan(&Ladder::DEFAULT, 1920, 1080, Some(60.0)).unwrap();
        let rates: Vec<_> = encode_targets(&planned)
            .iter()
            .map(|t| t.frame_rate)
            .collect();
        assert_eq!(rates, [60.0, 60.0, 30.0, 30.0]);

        let planned = plan(&Ladder::DEFAULT, 1920, 1080, Some(24.0)).unwrap();
        assert!(encode_targets(&planned)
            .iter()
            .all(|t| t.frame_rate == 24.0));

        let planned = plan(&Ladder::DEFAULT, 1920, 1080, None).unwrap();
        let rates: Vec<_> = encode_targets(&planned)
            .iter()
            .map(|t| t.frame_rate)
            .collect();
        assert_eq!(rates, [60.0, 60.0, 30.0, 30.0]);
    }

    #[test]
    fn vbv_allows_ten_percent_peaks_over_a_two_second_buffer() {
        let planned = plan(&Ladder::DEFAULT, 1280, 720, Some(30.0)).unwrap();
        let target = encode_targets(&planned)[0];
        assert_eq!(target.vbv_maxrate_kbps, 3300);
        assert_eq!(target.vbv_bufsize_kbit, 6000);
    }

    #[test]
    fn source_rung_is_kept_once_and_in_place() {
        let ladder: Ladder = serde_json::from_str(r#"["source", "360p", "source"]"#).unwrap();
        let planned = plan(&ladder, 1920, 1080, Some(30.0)).unwrap();
        let names: Vec<_> = planned.iter().map(PlannedRung::name).collect();
        assert_eq!(names, ["source", "360p"]);
    }

    #[test]
    fn zero_sized_and_oversized_sources_are_refused() {
        assert!(matches!(
            plan(&Ladder::DEFAULT, 0, 1080, None),
            Err(TranscodeError::InvalidSource { .. })
        ));
        assert!(matches!(
            plan(&Ladder::DEFAULT, 16384, 16384, None),
            Err(TranscodeError::InvalidSource { .. })
        ));
    }

    #[test]
    fn av1_twins_follow_every_encoded_rung_at_a_lower_bitrate() {
        let ladder: Ladder = serde_json::from_str(r#"["source", "720p", "360p"]"#).unwrap();
        let planned = plan_with_codecs(
            &ladder,
            1920,
            1080,
            Some(30.0),
            &[VideoCodec::H264, VideoCodec::Av1],
        )
        .unwrap();
        let names: Vec<_> = planned.iter().map(PlannedRung::name).collect();
        assert_eq!(names, ["source", "720p", "360p", "720p-av1", "360p-av1"]);
        let targets = encode_targets(&planned);
        for (h264, av1) in targets[..2].iter().zip(&targets[2..]) {
            assert_eq!(h264.codec, VideoCodec::H264);
            assert_eq!(av1.codec, VideoCodec::Av1);
            assert_eq!(
                (av1.width, av1.height, av1.frame_rate),
                (h264.width, h264.height, h264.frame_rate)
            );
        }
        assert_eq!(targets[2].bitrate_kbps, 1950);
        assert_eq!(targets[3].bitrate_kbps, 520);
        assert_eq!(targets[3].vbv_maxrate_kbps, 572);

        let h264_only = plan_with_codecs(&ladder, 1920, 1080, None, &[VideoCodec::H264]).unwrap();
        assert_eq!(h264_only, plan(&ladder, 1920, 1080, None).unwrap());
        assert!(matches!(
            plan_with_codecs(&ladder, 1920, 1080, None, &[VideoCodec::Vp9]),
            Err(TranscodeError::UnsupportedCodec(codec)) if codec == "vp9"
        ));
    }

    #[test]
    fn encodable_codecs_are_h264_and_av1() {
        assert_eq!(encodable_codec("h264").unwrap(), VideoCodec::H264);
        assert_eq!(encodable_codec(" av1").unwrap(), VideoCodec::Av1);
        assert!(encodable_codec("hevc").is_err());
    }
}
