//! CMAF fragmented-MP4 writer: one init segment per track and `moof`+`mdat` fragments.
//!
//! Follows ISO/IEC 14496-12 (ISOBMFF) §4.2 box structure, §8.8 movie fragments, and the CMAF
//! track constraints of ISO/IEC 23000-19 §7 (one track per init segment, empty sample tables in
//! `moov`, `mvex`/`trex` present, `tfdt` in every fragment, `default-base-is-moof`). Sample
//! entries follow ISO/IEC 14496-15 §5.4 (`avc1` + `avcC`), the AV1 Codec ISO Media File Format
//! Binding §2.2–2.3 (`av01` + `av1C`, with the `av01` brand) and ISO/IEC 14496-14 §5.6 (`mp4a` +
//! `esds`, whose descriptors are ISO/IEC 14496-1 §7.2.6). AV1 samples are temporal units
//! without temporal delimiters (binding §2.4), as the transcoder writes them.
//!
//! Boxes are written by hand, one function per box, each box's size patched once its body is
//! written (the shape of gst-plugins-rs `isobmff/boxes.rs`). `mp4-atom` could encode them, but
//! Sluice writes only about twenty boxes with fixed contents, needs byte-level control over
//! `trun` (version 1 signed composition offsets, a data offset patched after `moof` is
//! complete) and would otherwise take on a 0.x dependency whose API changes between releases.

use bytes::{BufMut, Bytes, BytesMut};
use sluice_media::{AudioSpecificConfig, Av1Config, AvcConfig, TrackInfo, VideoCodec};

use crate::PackagerError;

/// One access unit ready to be written into a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Ticks (in the track timescale) until the next sample's decode time.
    pub duration: u32,
    /// The compressed bytes (AVCC for H.264, a temporal unit for AV1, a raw frame for AAC).
    pub data: Bytes,
    /// Whether this is a sync sample (an IDR; an AV1 key frame; every AAC frame).
    pub keyframe: bool,
    /// Presentation time minus decode time, in ticks; negative values are allowed.
    pub composition_offset: i32,
}

/// The brands of every init segment: ISO base media version 6, the CMAF track brand, MP4 v1.
const BRANDS: [&[u8; 4]; 3] = [b"iso6", b"cmfc", b"mp41"];
/// The brand an init segment with an AV1 track adds (AV1-ISOBMFF binding §2.1).
const AV1_BRAND: &[u8; 4] = b"av01";
/// The compressor name the binding recommends for `av01` sample entries (§2.2.4): a length
/// byte of 10, then the name, zero-padded to 32 bytes.
const AV1_COMPRESSOR_NAME: &[u8] = b"\x0aAOM Coding";
/// Timescale of `mvhd`; the movie itself carries no samples, so milliseconds are enough.
const MOVIE_TIMESCALE: u32 = 1_000;
/// The identity transformation matrix of `mvhd` and `tkhd` (§8.2.2.3).
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// ISO-639-2/T `und`, packed as three 5-bit letters (§8.4.2.3).
const LANGUAGE_UNDETERMINED: u16 = 0x55c4;
/// Sample flags (§8.8.3.1) of a sync sample: depends on no other sample.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: depends on others, `sample_is_non_sync_sample` set.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;
/// `tfhd` flag: sample data offsets count from the start of `moof` (§8.8.7.1).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data offset, then per-sample duration, size, flags, composition offset.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;
/// MPEG-4 objectTypeIndication for AAC (ISO/IEC 14496-1 Table 5).
const OBJECT_TYPE_AAC: u8 = 0x40;
/// streamType 0x05 (audio) shifted left twice, with the reserved bit set.
const STREAM_TYPE_AUDIO: u8 = (0x05 << 2) | 1;

/// Builds the CMAF header (init segment) of one track: `ftyp` + `moov`.
///
/// `timescale` is the track's media clock: 90 000 for video, the sample rate for audio.
pub fn init_segment(
    track: &TrackInfo,
    track_id: u32,
    timescale: u32,
) -> Result<Bytes, PackagerError> {
    let media = MediaSpecific::of(track)?;
    let mut buf = BytesMut::new();
    let extra_brand = match &media {
        MediaSpecific::Video {
            config: VisualConfig::Av1(_),
            ..
        } => Some(AV1_BRAND),
        _ => None,
    };
    ftyp(&mut buf, extra_brand);
    moov(&mut buf, &media, track_id, timescale);
    Ok(buf.freeze())
}

/// Writes one CMAF chunk: `moof` (`mfhd`, `traf` with `tfhd`, `tfdt`, `trun`) and its `mdat`.
///
/// `sequence_number` must increase by one per fragment of the track; `base_media_decode_time`
/// is the first sample's decode time in the track timescale.
pub fn write_fragment(
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[Sample],
) -> Result<Bytes, PackagerError> {
    if samples.is_empty() {
        return Err(PackagerError::EmptyFragment);
    }
    let sample_count = fits_u32("sample count", samples.len())?;
    let payload_len: usize = samples.iter().map(|sample| sample.data.len()).sum();
    let mdat_size = fits_u32("mdat size", payload_len.saturating_add(8))?;
    for sample in samples {
        fits_u32("sample size", sample.data.len())?;
    }

    let mut buf = BytesMut::with_capacity(payload_len + 100 + 16 * samples.len());
    let mut data_offset_at = 0;
    write_box(&mut buf, b"moof", |buf| {
        mfhd(buf, sequence_number);
        write_box(buf, b"traf", |buf| {
            tfhd(buf, track_id);
            tfdt(buf, base_media_decode_time);
            data_offset_at = trun(buf, sample_count, samples);
        });
    });
    // Samples start right after the moof and the mdat header.
    let data_offset = fits_u32("data offset", buf.len() + 8)?;
    buf[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());

    buf.put_u32(mdat_size);
    buf.put_slice(b"mdat");
    for sample in samples {
        buf.put_slice(&sample.data);
    }
    Ok(buf.freeze())
}

fn fits_u32(what: &'static str, value: usize) -> Result<u32, PackagerError> {
    u32::try_from(value).map_err(|_| PackagerError::TooLarge {
        what,
        value: value as u64,
    })
}

/// What differs between a video and an audio track in the init segment.
enum MediaSpecific<'a> {
    Video {
        config: VisualConfig<'a>,
        width: u16,
        height: u16,
    },
    Audio {
        config: &'a AudioSpecificConfig,
    },
}

impl<'a> MediaSpecific<'a> {
    fn of(track: &'a TrackInfo) -> Result<Self, PackagerError> {
        match track {
            TrackInfo::Avc { config, .. } => Ok(MediaSpecific::Video {
                config: VisualConfig::Avc(config),
                width: dimension(config.width)?,
                height: dimension(config.height)?,
            }),
            TrackInfo::Av1 { config, .. } => Ok(MediaSpecific::Video {
                config: VisualConfig::Av1(config),
                width: dimension(config.width)?,
                height: dimension(config.height)?,
            }),
            TrackInfo::Aac { config } => Ok(MediaSpecific::Audio { config }),
            TrackInfo::RawVideo { .. } => Err(PackagerError::UnsupportedCodec {
                codec: VideoCodec::Raw.name(),
            }),
            TrackInfo::OtherVideo { codec } => Err(PackagerError::UnsupportedCodec {
                codec: codec.name(),
            }),
            TrackInfo::OtherAudio { codec } => Err(PackagerError::UnsupportedCodec {
                codec: codec.name(),
            }),
        }
    }
}

/// The decoder configuration of a video sample entry.
enum VisualConfig<'a> {
    Avc(&'a AvcConfig),
    Av1(&'a Av1Config),
}

fn dimension(pixels: u32) -> Result<u16, PackagerError> {
    u16::try_from(pixels).map_err(|_| PackagerError::TooLarge {
        what: "picture dimension",
        value: u64::from(pixels),
    })
}

/// Writes a box (§4.2): a 32-bit size, the type, then `body`; the size is patched at the end.
fn write_box(buf: &mut BytesMut, fourcc: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    body(buf);
    // Header boxes are bounded by what this module writes (kilobytes); mdat is written apart.
    let size = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box (§4.2): a box whose body starts with a version byte and 24 bits of flags.
fn write_full_box(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    write_box(buf, fourcc, |buf| {
        buf.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(buf);
    });
}

/// §4.3 File Type Box; `extra_brand` joins the compatible brands.
fn ftyp(buf: &mut BytesMut, extra_brand: Option<&[u8; 4]>) {
    write_box(buf, b"ftyp", |buf| {
        buf.put_slice(BRANDS[0]);
        buf.put_u32(0);
        for brand in BRANDS.into_iter().chain(extra_brand) {
            buf.put_slice(brand);
        }
    });
}

/// §8.2.1 Movie Box.
fn moov(buf: &mut BytesMut, media: &MediaSpecific<'_>, track_id: u32, timescale: u32) {
    write_box(buf, b"moov", |buf| {
        mvhd(buf, track_id.saturating_add(1));
        trak(buf, media, track_id, timescale);
        write_box(buf, b"mvex", |buf| trex(buf, track_id));
    });
}

/// §8.2.2 Movie Header Box, with zero times and duration (the movie is fragmented).
fn mvhd(buf: &mut BytesMut, next_track_id: u32) {
    write_full_box(buf, b"mvhd", 0, 0, |buf| {
        buf.put_u32(0); // creation_time
        buf.put_u32(0); // modification_time
        buf.put_u32(MOVIE_TIMESCALE);
        buf.put_u32(0); // duration
        buf.put_u32(0x0001_0000); // rate 1.0
        buf.put_u16(0x0100); // volume 1.0
        buf.put_bytes(0, 10); // reserved
        for value in UNITY_MATRIX {
            buf.put_u32(value);
        }
        buf.put_bytes(0, 24); // pre_defined
        buf.put_u32(next_track_id);
    });
}

/// §8.3.1 Track Box.
fn trak(buf: &mut BytesMut, media: &MediaSpecific<'_>, track_id: u32, timescale: u32) {
    write_box(buf, b"trak", |buf| {
        tkhd(buf, media, track_id);
        write_box(buf, b"mdia", |buf| {
            mdhd(buf, timescale);
            hdlr(buf, media);
            minf(buf, media);
        });
    });
}

/// §8.3.2 Track Header Box: enabled and in the movie; picture size for video, volume for audio.
fn tkhd(buf: &mut BytesMut, media: &MediaSpecific<'_>, track_id: u32) {
    const ENABLED_IN_MOVIE: u32 = 0x3;
    let (volume, width, height) = match media {
        MediaSpecific::Video { width, height, .. } => (0, *width, *height),
        MediaSpecific::Audio { .. } => (0x0100, 0, 0),
    };
    write_full_box(buf, b"tkhd", 0, ENABLED_IN_MOVIE, |buf| {
        buf.put_u32(0); // creation_time
        buf.put_u32(0); // modification_time
        buf.put_u32(track_id);
        buf.put_u32(0); // reserved
        buf.put_u32(0); // duration
        buf.put_bytes(0, 8); // reserved
        buf.put_u16(0); // layer
        buf.put_u16(0); // alternate_group
        buf.put_u16(volume);
        buf.put_u16(0); // reserved
        for value in UNITY_MATRIX {
            buf.put_u32(value);
        }
        buf.put_u32(u32::from(width) << 16); // 16.16 fixed point
        buf.put_u32(u32::from(height) << 16);
    });
}

/// §8.4.2 Media Header Box: the track timescale.
fn mdhd(buf: &mut BytesMut, timescale: u32) {
    write_full_box(buf, b"mdhd", 0, 0, |buf| {
        buf.put_u32(0); // creation_time
        buf.put_u32(0); // modification_time
        buf.put_u32(timescale);
        buf.put_u32(0); // duration
        buf.put_u16(LANGUAGE_UNDETERMINED);
        buf.put_u16(0); // pre_defined
    });
}

/// §8.4.3 Handler Reference Box.
fn hdlr(buf: &mut BytesMut, media: &MediaSpecific<'_>) {
    let (handler, name): (&[u8; 4], &[u8]) = match media {
        MediaSpecific::Video { .. } => (b"vide", b"VideoHandler\0"),
        MediaSpecific::Audio { .. } => (b"soun", b"SoundHandler\0"),
    };
    write_full_box(buf, b"hdlr", 0, 0, |buf| {
        buf.put_u32(0); // pre_defined
        buf.put_slice(handler);
        buf.put_bytes(0, 12); // reserved
        buf.put_slice(name);
    });
}

/// §8.4.4 Media Information Box.
fn minf(buf: &mut BytesMut, media: &MediaSpecific<'_>) {
    write_box(buf, b"minf", |buf| {
        match media {
            MediaSpecific::Video { .. } => vmhd(buf),
            MediaSpecific::Audio { .. } => smhd(buf),
        }
        write_box(buf, b"dinf", dref);
        stbl(buf, media);
    });
}

/// §12.1.2 Video Media Header Box (flags must be 1).
fn vmhd(buf: &mut BytesMut) {
    write_full_box(buf, b"vmhd", 0, 1, |buf| {
        buf.put_u16(0); // graphicsmode: copy
        buf.put_bytes(0, 6); // opcolor
    });
}

/// §12.2.2 Sound Media Header Box.
fn smhd(buf: &mut BytesMut) {
    write_full_box(buf, b"smhd", 0, 0, |buf| {
        buf.put_u16(0); // balance: centre
        buf.put_u16(0); // reserved
    });
}

/// §8.7.2 Data Reference Box with one self-contained `url ` entry (flag 1: data is in this file).
fn dref(buf: &mut BytesMut) {
    write_full_box(buf, b"dref", 0, 0, |buf| {
        buf.put_u32(1); // entry_count
        write_full_box(buf, b"url ", 0, 1, |_| {});
    });
}

/// §8.5.1 Sample Table Box: the sample description and empty tables (samples live in fragments).
fn stbl(buf: &mut BytesMut, media: &MediaSpecific<'_>) {
    write_box(buf, b"stbl", |buf| {
        stsd(buf, media);
        write_full_box(buf, b"stts", 0, 0, |buf| buf.put_u32(0));
        write_full_box(buf, b"stsc", 0, 0, |buf| buf.put_u32(0));
        write_full_box(buf, b"stsz", 0, 0, |buf| {
            buf.put_u32(0); // sample_size
            buf.put_u32(0); // sample_count
        });
        write_full_box(buf, b"stco", 0, 0, |buf| buf.put_u32(0));
    });
}

/// §8.5.2 Sample Description Box with one entry.
fn stsd(buf: &mut BytesMut, media: &MediaSpecific<'_>) {
    write_full_box(buf, b"stsd", 0, 0, |buf| {
        buf.put_u32(1); // entry_count
        match media {
            MediaSpecific::Video {
                config: VisualConfig::Avc(config),
                width,
                height,
            } => avc1(buf, config, *width, *height),
            MediaSpecific::Video {
                config: VisualConfig::Av1(config),
                width,
                height,
            } => av01(buf, config, *width, *height),
            MediaSpecific::Audio { config } => mp4a(buf, config),
        }
    });
}

/// The SampleEntry header (§8.5.2.2): six reserved bytes and the data reference index.
fn sample_entry_header(buf: &mut BytesMut) {
    buf.put_bytes(0, 6);
    buf.put_u16(1); // data_reference_index
}

/// ISO/IEC 14496-15 §5.4.2.1 AVC sample entry (a VisualSampleEntry, §12.1.3) with its `avcC`.
fn avc1(buf: &mut BytesMut, config: &AvcConfig, width: u16, height: u16) {
    visual_sample_entry(buf, b"avc1", width, height, b"", |buf| {
        write_box(buf, b"avcC", |buf| buf.put_slice(&config.record));
    });
}

/// AV1-ISOBMFF §2.2 AV1 sample entry (a VisualSampleEntry) with its `av1C` (§2.3).
fn av01(buf: &mut BytesMut, config: &Av1Config, width: u16, height: u16) {
    visual_sample_entry(buf, b"av01", width, height, AV1_COMPRESSOR_NAME, |buf| {
        write_box(buf, b"av1C", |buf| buf.put_slice(&config.record));
    });
}

/// ISO/IEC 14496-12 §12.1.3 VisualSampleEntry `fourcc` of `width`×`height`, with its
/// `compressor_name` (at most 31 bytes, already length-prefixed) and its configuration boxes.
fn visual_sample_entry(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    width: u16,
    height: u16,
    compressor_name: &[u8],
    configuration: impl FnOnce(&mut BytesMut),
) {
    write_box(buf, fourcc, |buf| {
        sample_entry_header(buf);
        buf.put_u16(0); // pre_defined
        buf.put_u16(0); // reserved
        buf.put_bytes(0, 12); // pre_defined
        buf.put_u16(width);
        buf.put_u16(height);
        buf.put_u32(0x0048_0000); // horizresolution 72 dpi
        buf.put_u32(0x0048_0000); // vertresolution 72 dpi
        buf.put_u32(0); // reserved
        buf.put_u16(1); // frame_count
        buf.put_slice(compressor_name);
        buf.put_bytes(0, 32 - compressor_name.len()); // compressorname, zero-padded
        buf.put_u16(0x0018); // depth: colour, no alpha
        buf.put_i16(-1); // pre_defined
        configuration(buf);
    });
}

/// ISO/IEC 14496-14 §5.6 MP4AudioSampleEntry (an AudioSampleEntry, §12.2.3) with its `esds`.
fn mp4a(buf: &mut BytesMut, config: &AudioSpecificConfig) {
    // "channels 0" means the program config element decides; stereo is the safe declaration.
    let channels = if config.channels == 0 {
        2
    } else {
        u16::from(config.channels)
    };
    // samplerate is 16.16 fixed point; rates above 65535 Hz are declared as 0 and the
    // AudioSpecificConfig (and mdhd timescale) carry the real rate.
    let sample_rate = u16::try_from(config.sample_rate).map_or(0, |rate| u32::from(rate) << 16);
    write_box(buf, b"mp4a", |buf| {
        sample_entry_header(buf);
        buf.put_bytes(0, 8); // reserved
        buf.put_u16(channels);
        buf.put_u16(16); // samplesize
        buf.put_u16(0); // pre_defined
        buf.put_u16(0); // reserved
        buf.put_u32(sample_rate);
        esds(buf, config);
    });
}

/// ISO/IEC 14496-14 §5.6 Elementary Stream Descriptor Box: an ES_Descriptor holding the
/// DecoderConfigDescriptor (AAC, audio stream) whose DecoderSpecificInfo is the raw
/// AudioSpecificConfig, and the SLConfigDescriptor MP4 requires (predefined = 2).
fn esds(buf: &mut BytesMut, config: &AudioSpecificConfig) {
    let mut decoder_config = BytesMut::new();
    decoder_config.put_u8(OBJECT_TYPE_AAC);
    decoder_config.put_u8(STREAM_TYPE_AUDIO);
    decoder_config.put_uint(0, 3); // bufferSizeDB
    decoder_config.put_u32(0); // maxBitrate
    decoder_config.put_u32(0); // avgBitrate
    descriptor(&mut decoder_config, 0x05, &config.raw);

    let mut es = BytesMut::new();
    es.put_u16(0); // ES_ID
    es.put_u8(0); // no stream dependence, URL or OCR stream
    descriptor(&mut es, 0x04, &decoder_config);
    descriptor(&mut es, 0x06, &[0x02]);

    write_full_box(buf, b"esds", 0, 0, |buf| descriptor(buf, 0x03, &es));
}

/// An ISO/IEC 14496-1 §8.3.3 descriptor: tag, size in 7-bit groups (high bit = more), body.
fn descriptor(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    let len = body.len();
    let mut shift = (1..4)
        .rev()
        .find(|groups| len >> (7 * groups) != 0)
        .unwrap_or(0)
        * 7;
    while shift > 0 {
        buf.put_u8(0x80 | ((len >> shift) & 0x7f) as u8);
        shift -= 7;
    }
    buf.put_u8((len & 0x7f) as u8);
    buf.put_slice(body);
}

/// §8.8.3 Track Extends Box: defaults are all carried per sample in `trun`.
fn trex(buf: &mut BytesMut, track_id: u32) {
    write_full_box(buf, b"trex", 0, 0, |buf| {
        buf.put_u32(track_id);
        buf.put_u32(1); // default_sample_description_index
        buf.put_u32(0); // default_sample_duration
        buf.put_u32(0); // default_sample_size
        buf.put_u32(0); // default_sample_flags
    });
}

/// §8.8.5 Movie Fragment Header Box.
fn mfhd(buf: &mut BytesMut, sequence_number: u32) {
    write_full_box(buf, b"mfhd", 0, 0, |buf| buf.put_u32(sequence_number));
}

/// §8.8.7 Track Fragment Header Box with `default-base-is-moof`.
fn tfhd(buf: &mut BytesMut, track_id: u32) {
    write_full_box(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |buf| {
        buf.put_u32(track_id);
    });
}

/// §8.8.12 Track Fragment Base Media Decode Time Box, version 1 (64-bit time).
fn tfdt(buf: &mut BytesMut, base_media_decode_time: u64) {
    write_full_box(buf, b"tfdt", 1, 0, |buf| {
        buf.put_u64(base_media_decode_time)
    });
}

/// §8.8.8 Track Fragment Run Box, version 1 (signed composition offsets), every per-sample field
/// present. Returns the position of `data_offset` in `buf`, which the caller patches once the
/// size of `moof` is known.
fn trun(buf: &mut BytesMut, sample_count: u32, samples: &[Sample]) -> usize {
    let mut data_offset_at = 0;
    write_full_box(buf, b"trun", 1, TRUN_FLAGS, |buf| {
        buf.put_u32(sample_count);
        data_offset_at = buf.len();
        buf.put_i32(0); // data_offset, patched by the caller
        for sample in samples {
            buf.put_u32(sample.duration);
            // Checked by write_fragment before any box is written.
            buf.put_u32(sample.data.len() as u32);
            buf.put_u32(if sample.keyframe {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            });
            buf.put_i32(sample.composition_offset);
        }
    });
    data_offset_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reader::{find, read_boxes, read_one, u16_at, u32_at};
    use sluice_media::{AudioCodec, VideoCodec};

    fn video_track() -> TrackInfo {
        TrackInfo::Avc {
            config: sluice_media::fixtures::avc_320x240(),
            frame_rate: Some(30.0),
        }
    }

    fn audio_track() -> TrackInfo {
        TrackInfo::Aac {
            config: AudioSpecificConfig::new(2, 48_000, 2).unwrap(),
        }
    }

    fn written(write: impl FnOnce(&mut BytesMut)) -> BytesMut {
        let mut buf = BytesMut::new();
        write(&mut buf);
        buf
    }

    #[test]
    fn ftyp_declares_cmaf_brands() {
        let buf = written(|buf| ftyp(buf, None));
        let body = read_one(&buf, b"ftyp");
        assert_eq!(body, b"iso6\0\0\0\0iso6cmfcmp41");
        let buf = written(|buf| ftyp(buf, Some(AV1_BRAND)));
        assert_eq!(read_one(&buf, b"ftyp"), b"iso6\0\0\0\0iso6cmfcmp41av01");
    }

    #[test]
    fn mvhd_round_trips() {
        let buf = written(|buf| mvhd(buf, 3));
        let body = read_one(&buf, b"mvhd");
        assert_eq!(body.len(), 100);
        assert_eq!(u32_at(body, 0), 0, "version 0, no flags");
        assert_eq!(u32_at(body, 12), MOVIE_TIMESCALE);
        assert_eq!(u32_at(body, 20), 0x0001_0000);
        assert_eq!(u32_at(body, 96), 3);
    }

    #[test]
    fn tkhd_carries_picture_size_for_video_and_volume_for_audio() {
        let video = video_track();
        let media = MediaSpecific::of(&video).unwrap();
        let buf = written(|buf| tkhd(buf, &media, 7));
        let body = read_one(&buf, b"tkhd");
        assert_eq!(body.len(), 84);
        assert_eq!(u32_at(body, 0), 3, "enabled and in movie");
        assert_eq!(u32_at(body, 12), 7);
        assert_eq!(u16_at(body, 36), 0, "video has no volume");
        assert_eq!(u32_at(body, 76), 320 << 16);
        assert_eq!(u32_at(body, 80), 240 << 16);

        let audio = audio_track();
        let media = MediaSpecific::of(&audio).unwrap();
        let buf = written(|buf| tkhd(buf, &media, 2));
        let body = read_one(&buf, b"tkhd");
        assert_eq!(u16_at(body, 36), 0x0100);
        assert_eq!(u32_at(body, 76), 0);
    }

    #[test]
    fn mdhd_round_trips_timescale_and_language() {
        let buf = written(|buf| mdhd(buf, 48_000));
        let body = read_one(&buf, b"mdhd");
        assert_eq!(body.len(), 24);
        assert_eq!(u32_at(body, 12), 48_000);
        assert_eq!(u16_at(body, 20), LANGUAGE_UNDETERMINED);
    }

    #[test]
    fn hdlr_names_the_handler() {
        let audio = audio_track();
        let media = MediaSpecific::of(&audio).unwrap();
        let buf = written(|buf| hdlr(buf, &media));
        let body = read_one(&buf, b"hdlr");
        assert_eq!(&body[8..12], b"soun");
        assert_eq!(&body[24..], b"SoundHandler\0");
    }

    #[test]
    fn media_headers_round_trip() {
        let buf = written(vmhd);
        assert_eq!(
            read_one(&buf, b"vmhd"),
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let buf = written(smhd);
        assert_eq!(read_one(&buf, b"smhd"), &[0; 8]);
    }

    #[test]
    fn dref_holds_one_self_contained_url() {
        let buf = written(dref);
        let body = read_one(&buf, b"dref");
        assert_eq!(u32_at(body, 4), 1);
        assert_eq!(read_one(&body[8..], b"url "), &[0, 0, 0, 1]);
    }

    #[test]
    fn stbl_tables_are_empty() {
        let audio = audio_track();
        let media = MediaSpecific::of(&audio).unwrap();
        let buf = written(|buf| stbl(buf, &media));
        let body = read_one(&buf, b"stbl");
        let kinds: Vec<_> = read_boxes(body).iter().map(|b| b.fourcc).collect();
        assert_eq!(kinds, [*b"stsd", *b"stts", *b"stsc", *b"stsz", *b"stco"]);
        assert_eq!(find(body, &[b"stts"]), &[0; 8]);
        assert_eq!(find(body, &[b"stsz"]), &[0; 12]);
    }

    #[test]
    fn avc1_round_trips_size_and_avcc_record() {
        let track = video_track();
        let TrackInfo::Avc { config, .. } = &track else {
            unreachable!()
        };
        let buf = written(|buf| avc1(buf, config, 320, 240));
        let body = read_one(&buf, b"avc1");
        assert_eq!(u16_at(body, 6), 1, "data reference index");
        assert_eq!((u16_at(body, 24), u16_at(body, 26)), (320, 240));
        assert_eq!(u16_at(body, 40), 1, "frame count");
        assert_eq!(u16_at(body, 74), 0x18);
        assert_eq!(read_one(&body[78..], b"avcC"), config.record.as_ref());
    }

    #[test]
    fn av01_sample_entry_is_golden() {
        let config = sluice_media::fixtures::av1_320x180();
        let buf = written(|buf| av01(buf, &config, 320, 180));
        let mut expected = vec![0, 0, 0, 111]; // 8 + 78 + av1C (8 + 4 + 13)
        expected.extend_from_slice(b"av01");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]); // reserved, data_reference_index
        expected.extend_from_slice(&[0; 16]); // pre_defined, reserved, pre_defined
        expected.extend_from_slice(&[0x01, 0x40, 0x00, 0xb4]); // 320 x 180
        expected.extend_from_slice(&[0, 0x48, 0, 0, 0, 0x48, 0, 0]); // 72 dpi, 72 dpi
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 1]); // reserved, frame_count
        expected.extend_from_slice(b"\x0aAOM Coding");
        expected.extend_from_slice(&[0; 21]);
        expected.extend_from_slice(&[0, 0x18, 0xff, 0xff]); // depth, pre_defined -1
        expected.extend_from_slice(&[0, 0, 0, 25]);
        expected.extend_from_slice(b"av1C");
        // marker 1 version 1; profile 0 level 0; tier 0, 8-bit, 4:2:0; no presentation delay.
        expected.extend_from_slice(&[0x81, 0x00, 0x0c, 0x00]);
        expected.extend_from_slice(&sluice_media::fixtures::AV1_SEQUENCE_HEADER_320X180);
        assert_eq!(buf.as_ref(), expected.as_slice());
    }

    #[test]
    fn av1_init_segment_carries_the_av01_brand_and_sample_entry() {
        let track = TrackInfo::Av1 {
            config: sluice_media::fixtures::av1_320x180(),
            frame_rate: Some(30.0),
        };
        let init = init_segment(&track, 1, 90_000).unwrap();
        assert!(find(&init, &[b"ftyp"]).ends_with(b"av01"));
        let moov = find(&init, &[b"moov"]);
        let tkhd = find(moov, &[b"trak", b"tkhd"]);
        assert_eq!((u32_at(tkhd, 76), u32_at(tkhd, 80)), (320 << 16, 180 << 16));
        assert_eq!(&find(moov, &[b"trak", b"mdia", b"hdlr"])[8..12], b"vide");
        let stsd = find(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]);
        let entry = &read_boxes(&stsd[8..])[0];
        assert_eq!(&entry.fourcc, b"av01");
        assert_eq!(
            read_one(&entry.body[78..], b"av1C"),
            sluice_media::fixtures::av1_320x180().record.as_ref()
        );
    }

    #[test]
    fn mp4a_round_trips_channels_rate_and_audio_specific_config() {
        let config = AudioSpecificConfig::new(2, 44_100, 1).unwrap();
        let buf = written(|buf| mp4a(buf, &config));
        let body = read_one(&buf, b"mp4a");
        assert_eq!(u16_at(body, 16), 1, "channel count");
        assert_eq!(u16_at(body, 18), 16, "sample size");
        assert_eq!(u32_at(body, 24), 44_100 << 16);
        let esds = read_one(&body[28..], b"esds");
        // version/flags, then ES_Descriptor(DecoderConfigDescriptor(DecSpecificInfo), SLConfig).
        assert_eq!(
            esds,
            &[
                0,
                0,
                0,
                0, // version 0, flags 0
                0x03,
                25,
                0,
                0,
                0, // ES_Descriptor, ES_ID 0, flags 0
                0x04,
                17,
                0x40,
                0x15,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0, // DecoderConfig
                0x05,
                2,
                config.raw[0],
                config.raw[1], // DecoderSpecificInfo
                0x06,
                1,
                0x02, // SLConfigDescriptor
            ]
        );
    }

    #[test]
    fn descriptor_sizes_use_seven_bit_groups() {
        let long = vec![0xaa; 200];
        let buf = written(|buf| descriptor(buf, 0x05, &long));
        assert_eq!(&buf[..3], &[0x05, 0x81, 0x48]);
        assert_eq!(buf.len(), 3 + 200);
    }

    #[test]
    fn trex_round_trips() {
        let buf = written(|buf| trex(buf, 9));
        let body = read_one(&buf, b"trex");
        assert_eq!(u32_at(body, 4), 9);
        assert_eq!(u32_at(body, 8), 1);
    }

    #[test]
    fn init_segment_is_ftyp_then_one_track_moov() {
        let init = init_segment(&video_track(), 1, 90_000).unwrap();
        let top: Vec<_> = read_boxes(&init).iter().map(|b| b.fourcc).collect();
        assert_eq!(top, [*b"ftyp", *b"moov"]);
        let moov = find(&init, &[b"moov"]);
        let children: Vec<_> = read_boxes(moov).iter().map(|b| b.fourcc).collect();
        assert_eq!(children, [*b"mvhd", *b"trak", *b"mvex"]);
        let mdhd = find(moov, &[b"trak", b"mdia", b"mdhd"]);
        assert_eq!(u32_at(mdhd, 12), 90_000);
        let hdlr = find(moov, &[b"trak", b"mdia", b"hdlr"]);
        assert_eq!(&hdlr[8..12], b"vide");
        find(moov, &[b"trak", b"mdia", b"minf", b"vmhd"]);
        let stsd = find(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]);
        assert_eq!(&read_boxes(&stsd[8..])[0].fourcc, b"avc1");
        assert_eq!(u32_at(find(moov, &[b"mvex", b"trex"]), 4), 1);
    }

    #[test]
    fn init_segment_refuses_codecs_without_a_sample_entry() {
        let hevc = TrackInfo::OtherVideo {
            codec: VideoCodec::Hevc,
        };
        assert!(matches!(
            init_segment(&hevc, 1, 90_000),
            Err(PackagerError::UnsupportedCodec { codec }) if codec == "hevc"
        ));
        let mp3 = TrackInfo::OtherAudio {
            codec: AudioCodec::Mp3,
        };
        assert!(init_segment(&mp3, 2, 44_100).is_err());
    }

    fn sample(duration: u32, data: &'static [u8], keyframe: bool, offset: i32) -> Sample {
        Sample {
            duration,
            data: Bytes::from_static(data),
            keyframe,
            composition_offset: offset,
        }
    }

    #[test]
    fn fragment_round_trips_moof_fields_and_points_at_its_mdat() {
        let samples = [
            sample(3_000, b"key", true, 6_000),
            sample(3_000, b"bframe", false, -3_000),
        ];
        let fragment = write_fragment(5, 1, 1 << 33, &samples).unwrap();
        let top = read_boxes(&fragment);
        assert_eq!(top.len(), 2);
        assert_eq!(&top[0].fourcc, b"moof");
        assert_eq!(&top[1].fourcc, b"mdat");
        assert_eq!(top[1].body, b"keybframe");

        let moof = top[0].body;
        assert_eq!(u32_at(find(moof, &[b"mfhd"]), 4), 5);
        let tfhd = find(moof, &[b"traf", b"tfhd"]);
        assert_eq!(u32_at(tfhd, 0), TFHD_DEFAULT_BASE_IS_MOOF);
        assert_eq!(u32_at(tfhd, 4), 1);
        let tfdt = find(moof, &[b"traf", b"tfdt"]);
        assert_eq!(tfdt[0], 1, "version 1");
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 1 << 33);

        let trun = find(moof, &[b"traf", b"trun"]);
        assert_eq!(u32_at(trun, 0), (1 << 24) | TRUN_FLAGS);
        assert_eq!(u32_at(trun, 4), 2);
        let data_offset = u32_at(trun, 8) as usize;
        let moof_len = moof.len() + 8;
        assert_eq!(data_offset, moof_len + 8);
        assert_eq!(&fragment[data_offset..data_offset + 3], b"key");
        let fields: Vec<[u32; 4]> = trun[12..]
            .chunks(16)
            .map(|c| std::array::from_fn(|i| u32_at(c, i * 4)))
            .collect();
        assert_eq!(
            fields,
            [
                [3_000, 3, SYNC_SAMPLE_FLAGS, 6_000],
                [3_000, 6, NON_SYNC_SAMPLE_FLAGS, (-3_000i32) as u32],
            ]
        );
    }

    #[test]
    fn fragment_needs_samples() {
        assert!(matches!(
            write_fragment(1, 1, 0, &[]),
            Err(PackagerError::EmptyFragment)
        ));
    }
}
