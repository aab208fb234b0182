//! Probing a local media file before anything else reads it: what it contains, and whether
//! Sluice accepts it.
//!
//! Files come from people, so nothing in them is trusted:
//!
//! - the size limit is checked before the file is opened;
//! - the container is recognised from the file's first bytes by libavformat's probe alone,
//!   and only the demuxers of [`ACCEPTED_CONTAINERS`] are accepted. Playlist-like demuxers
//!   (`hls`, `dash`, `concat`) open other files or URLs named inside the input, so they are
//!   refused before they read anything (and every other demuxer, `image2` patterns included,
//!   is refused for not being on the list);
//! - the file is then opened with `protocol_whitelist=file` (no network, no pipes) and
//!   `format_whitelist` set to the demuxer already checked, so libavformat cannot pick another
//!   one on a second look;
//! - stream count, picture size and duration are checked against [`ProbeLimits`] once
//!   libavformat has read the stream headers (`input_with_dictionary` runs
//!   `avformat_find_stream_info`, which may decode a few packets of each stream) and before
//!   Sluice reads a single packet.
//!
//! Every refusal is a [`ProbeError`] whose message says what is wrong in terms a person
//! understands; nothing here panics on any input.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next::codec::packet::side_data;
use ffmpeg_next::ffi::AVFieldOrder;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::format::stream::{Disposition, Stream};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::{media, Dictionary, Rational};

use crate::normalize::{display_rotation, quarter_turns, Normalization, Orientation};

/// Demuxers accepted as input, by the names libavformat gives them, with the name people know
/// them by. A detected demuxer is accepted when one of its comma-separated names is listed.
pub const ACCEPTED_CONTAINERS: &[(&str, &str)] = &[
    ("mov", "MP4/MOV"),
    ("matroska", "Matroska/WebM"),
    ("mpegts", "MPEG-TS"),
    ("flv", "FLV"),
    ("avi", "AVI"),
    ("mp3", "MP3"),
    ("aac", "AAC (ADTS)"),
    ("wav", "WAV"),
    ("ogg", "Ogg"),
    ("asf", "ASF"),
    ("mxf", "MXF"),
];

/// Demuxers that read other files or URLs named inside the input, with the name people know
/// them by.
const PLAYLIST_DEMUXERS: &[(&str, &str)] = &[
    ("hls", "HLS"),
    ("applehttp", "HLS"),
    ("dash", "DASH"),
    ("concat", "ffconcat"),
];

/// The label of the first of `container`'s comma-separated names listed in `table`.
fn label(table: &[(&str, &'static str)], container: &str) -> Option<&'static str> {
    container.split(',').find_map(|name| {
        table
            .iter()
            .find(|(demuxer, _)| *demuxer == name)
            .map(|(_, label)| *label)
    })
}

/// Bytes read from the start of the file to recognise its container (libavformat's own
/// default probe size).
const PROBE_BYTES: usize = 1 << 20;

/// A detection must score above this to count: libavformat's `AVPROBE_SCORE_RETRY`
/// (`AVPROBE_SCORE_MAX / 4`), below which it would only be guessing from the file name.
const PROBE_SCORE_RETRY: i32 = 25;

/// What a file may be before Sluice transcodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeLimits {
    /// Largest picture, in pixels (width × height).
    pub max_pixels: u64,
    /// Longest duration.
    pub max_duration: Duration,
    /// Most streams of any kind in the container.
    pub max_streams: usize,
    /// Largest file, in bytes.
    pub max_file_size: u64,
}

impl ProbeLimits {
    /// 8192×4320 (8K).
    pub const DEFAULT_MAX_PIXELS: u64 = 8192 * 4320;
    /// 12 hours.
    pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(12 * 3600);
    /// 16 streams.
    pub const DEFAULT_MAX_STREAMS: usize = 16;
    /// 20 GiB.
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 20 << 30;
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            max_duration: Self::DEFAULT_MAX_DURATION,
            max_streams: Self::DEFAULT_MAX_STREAMS,
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// What a probed file contains.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    /// The demuxer that reads it, as libavformat names it (`mov,mp4,m4a,3gp,3g2,mj2`,
    /// `matroska,webm`, …).
    pub container: String,
    /// File size in bytes.
    pub file_size: u64,
    /// Duration, when the container knows it.
    pub duration: Option<Duration>,
    /// Streams of every kind in the container.
    pub stream_count: usize,
    /// The main video stream (the largest picture, cover art left out), if any.
    pub video: Option<VideoStreamInfo>,
    /// The main audio stream, if any.
    pub audio: Option<AudioStreamInfo>,
}

/// The main video stream of a probed file.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoStreamInfo {
    /// Stream index in the container.
    pub index: usize,
    /// libavcodec's codec name (`h264`, `hevc`, `vp9`, `av1`, `prores`, …).
    pub codec: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Width of the picture as shown: upright, in square pixels (what the ladder is planned on).
    pub display_width: u32,
    /// Height of the picture as shown: upright, in square pixels.
    pub display_height: u32,
    /// Shape of the picture as shown, reduced (`16:9`, `9:16`, `4:3`, …).
    pub display_aspect_ratio: (u32, u32),
    /// Shape of one coded pixel, reduced (`1:1` for square pixels; `32:27` for anamorphic
    /// widescreen NTSC, …).
    pub sample_aspect_ratio: (u32, u32),
    /// The frame rate the video is transcoded at: the stream's nominal rate when its average
    /// agrees with it (within 1 %), otherwise its average rate; the nominal rate when no
    /// average is known. `None` when neither is.
    pub frame_rate: Option<f64>,
    /// Whether the pictures' timing is irregular: the average rate departs from the nominal
    /// one, or a Matroska track declares no frame duration. Such video is made constant-rate.
    pub variable_frame_rate: bool,
    /// Clockwise rotation a player applies for display (0, 90, 180 or 270).
    pub rotation: u32,
    /// Whether the pictures are interlaced (coded as two fields), as the codec headers say;
    /// such video is deinterlaced.
    pub interlaced: bool,
    /// Pixel format (`yuv420p`, `yuv420p10le`, `yuv422p`, …), when libavcodec knows it.
    pub pixel_format: Option<String>,
    /// Bits per sample of the first component (8, 10, 12, …), when the pixel format is known.
    pub bit_depth: Option<u32>,
    /// Chroma subsampling of YUV pixel formats (`4:2:0`, `4:2:2`, `4:4:4`, …; `4:0:0` for
    /// greyscale); `None` for RGB or an unknown format.
    pub chroma_subsampling: Option<String>,
    /// How long the video stream lasts, when the container says.
    pub duration: Option<Duration>,
}

/// The main audio stream of a probed file.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioStreamInfo {
    /// Stream index in the container.
    pub index: usize,
    /// libavcodec's codec name (`aac`, `mp3`, `opus`, …).
    pub codec: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
}

/// Why a file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The file cannot be read at all.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The file is larger than allowed.
    #[error("the file is {size} bytes, over the {limit}-byte limit")]
    FileTooLarge { size: u64, limit: u64 },
    /// No demuxer recognises the bytes.
    #[error("not a media file: no known container format recognised")]
    NotMedia,
    /// A playlist or list of other files was given.
    #[error("{kind} playlists are not accepted as input: give the media file itself")]
    Playlist { kind: &'static str },
    /// A container Sluice does not accept.
    #[error(
        "the {container} format is not accepted as input (accepted: MP4/MOV, Matroska/WebM, \
         MPEG-TS, FLV, AVI, MP3, AAC, WAV, Ogg, ASF, MXF)"
    )]
    UnsupportedContainer { container: String },
    /// The container was recognised but cannot be read: damaged or cut short.
    #[error("the {kind} file is damaged or truncated: {reason}")]
    Damaged { kind: &'static str, reason: String },
    /// More streams than allowed.
    #[error("the file has {count} streams, over the {limit}-stream limit")]
    TooManyStreams { count: usize, limit: usize },
    /// Neither video nor audio.
    #[error("no video or audio stream")]
    NoMediaStreams,
    /// A video stream without a usable picture size.
    #[error("the video stream has no picture size")]
    NoPictureSize,
    /// A picture larger than allowed.
    #[error("picture {width}×{height} exceeds the {limit}-pixel limit")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    /// Longer than allowed.
    #[error("duration {} exceeds the {} limit", clock(*.duration), clock(*.limit))]
    TooLong { duration: Duration, limit: Duration },
    /// The video covers a small part of a much longer file (a still picture over a long
    /// soundtrack): its renditions would end long before the audio.
    #[error(
        "the video lasts {} but the file lasts {}: a few pictures over a long soundtrack are not \
         supported; send the audio alone, or a video as long as its audio",
        clock(*.video), clock(*.file)
    )]
    VideoMuchShorter { video: Duration, file: Duration },
}

/// `h:mm:ss` (seconds with hundredths under a minute), for messages.
fn clock(duration: Duration) -> impl fmt::Display {
    let secs = duration.as_secs();
    if secs < 60 {
        return format!("{:.2} s", duration.as_secs_f64());
    }
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Probes `path` against `limits`.
pub fn probe(path: &Path, limits: &ProbeLimits) -> Result<ProbeReport, ProbeError> {
    open(path, limits).map(|(_, report)| report)
}

/// Probes `path` against `limits` and returns it opened, ready to read packets from.
pub(crate) fn open(path: &Path, limits: &ProbeLimits) -> Result<(Input, ProbeReport), ProbeError> {
    crate::init_ffmpeg();
    let read_error = |source| ProbeError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(ProbeError::NotAFile(path.to_owned()));
    }
    let file_size = metadata.len();
    if file_size == 0 {
        return Err(ProbeError::Empty);
    }
    if file_size > limits.max_file_size {
        return Err(ProbeError::FileTooLarge {
            size: file_size,
            limit: limits.max_file_size,
        });
    }

    let container = detect_container(path)
        .map_err(read_error)?
        .ok_or(ProbeError::NotMedia)?;
    if let Some(kind) = label(PLAYLIST_DEMUXERS, &container) {
        return Err(ProbeError::Playlist { kind });
    }
    let Some(kind) = label(ACCEPTED_CONTAINERS, &container) else {
        return Err(ProbeError::UnsupportedContainer { container });
    };

    let mut options = Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", &container);
    let input = ffmpeg_next::format::input_with_dictionary(path, options).map_err(|e| {
        ProbeError::Damaged {
            kind,
            reason: e.to_string(),
        }
    })?;
    let report = inspect(&input, container, file_size)?;
    check(&report, limits)?;
    Ok((input, report))
}

/// Names the demuxer that recognises the file's first bytes, with libavformat's probe.
fn detect_container(path: &Path) -> Result<Option<String>, std::io::Error> {
    let mut head = Vec::with_capacity(PROBE_BYTES);
    File::open(path)?
        .take(PROBE_BYTES as u64)
        .read_to_end(&mut head)?;
    let size = head.len();
    // The probe reads up to AVPROBE_PADDING_SIZE bytes past the data, which must be zero.
    head.resize(size + ffmpeg_next::ffi::AVPROBE_PADDING_SIZE as usize, 0);
    // The file name only adds a small score for a matching extension; an unrepresentable one
    // (an interior NUL cannot come from a path, but stay safe) probes the bytes alone.
    let filename = CString::new(path.to_string_lossy().as_bytes()).unwrap_or_default();
    let probe = ffmpeg_next::ffi::AVProbeData {
        filename: filename.as_ptr(),
        buf: head.as_mut_ptr(),
        buf_size: size as i32,
        mime_type: std::ptr::null(),
    };
    let mut score = PROBE_SCORE_RETRY;
    // SAFETY: `probe` points at a live buffer of `size` bytes followed by the zero padding
    // libavformat requires, and at a NUL-terminated file name; both outlive the call. The
    // returned format is a static libavformat table entry (or null).
    let name = unsafe {
        let format = ffmpeg_next::ffi::av_probe_input_format2(&probe, 1, &mut score);
        if format.is_null() || (*format).name.is_null() {
            None
        } else {
            Some(
                CStr::from_ptr((*format).name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    Ok(name)
}

/// Reads the report out of an opened container.
fn inspect(input: &Input, container: String, file_size: u64) -> Result<ProbeReport, ProbeError> {
    let duration = u64::try_from(input.duration())
        .ok()
        .filter(|&micros| micros > 0)
        .map(Duration::from_micros);
    // Cover art (an attached picture, as MP3 and M4A files carry) is not a video stream.
    let video = input
        .streams()
        .filter(|stream| {
            stream.parameters().medium() == media::Type::Video
                && !stream.disposition().contains(Disposition::ATTACHED_PIC)
        })
        .max_by_key(|stream| {
            // SAFETY: plain reads of the stream's codec parameters, owned by the open input.
            let (width, height) = unsafe {
                let raw = stream.parameters().as_ptr();
                ((*raw).width, (*raw).height)
            };
            i64::from(width) * i64::from(height)
        })
        .map(|stream| video_info(input, &stream));
    let audio = input.streams().best(media::Type::Audio).map(|stream| {
        let parameters = stream.parameters();
        // SAFETY: plain reads of the stream's codec parameters, owned by the open input.
        let (sample_rate, channels) = unsafe {
            let raw = parameters.as_ptr();
            ((*raw).sample_rate, (*raw).ch_layout.nb_channels)
        };
        AudioStreamInfo {
            index: stream.index(),
            codec: parameters.id().name().to_owned(),
            sample_rate: u32::try_from(sample_rate).unwrap_or(0),
            channels: u32::try_from(channels).unwrap_or(0),
        }
    });
    if video.is_none() && audio.is_none() {
        return Err(ProbeError::NoMediaStreams);
    }
    Ok(ProbeReport {
        container,
        file_size,
        duration,
        stream_count: input.streams().count(),
        video,
        audio,
    })
}

/// How much shorter than the file its video may be (besides being at least half of it): audio
/// often runs on a little past the last picture.
const VIDEO_SHORTFALL_ALLOWED: Duration = Duration::from_secs(10);

/// Holds a report to the limits.
fn check(report: &ProbeReport, limits: &ProbeLimits) -> Result<(), ProbeError> {
    if report.stream_count > limits.max_streams {
        return Err(ProbeError::TooManyStreams {
            count: report.stream_count,
            limit: limits.max_streams,
        });
    }
    if let Some(video) = &report.video {
        if video.width == 0 || video.height == 0 {
            return Err(ProbeError::NoPictureSize);
        }
        if u64::from(video.width) * u64::from(video.height) > limits.max_pixels {
            return Err(ProbeError::TooManyPixels {
                width: video.width,
                height: video.height,
                limit: limits.max_pixels,
            });
        }
    }
    if let Some(duration) = report.duration.filter(|d| *d > limits.max_duration) {
        return Err(ProbeError::TooLong {
            duration,
            limit: limits.max_duration,
        });
    }
    let video_duration = report.video.as_ref().and_then(|video| video.duration);
    if let (Some(video), Some(file)) = (video_duration, report.duration) {
        if video < file / 2 && file - video > VIDEO_SHORTFALL_ALLOWED {
            return Err(ProbeError::VideoMuchShorter { video, file });
        }
    }
    Ok(())
}

/// Describes a video stream for the report.
fn video_info(input: &Input, stream: &Stream) -> VideoStreamInfo {
    let parameters = stream.parameters();
    // SAFETY: plain reads of the stream's codec parameters, owned by the open input.
    let (width, height) = unsafe {
        let raw = parameters.as_ptr();
        ((*raw).width, (*raw).height)
    };
    let width = u32::try_from(width).unwrap_or(0);
    let height = u32::try_from(height).unwrap_or(0);
    let layout = video_layout(input, stream);
    let normalization = layout.normalization(None);
    let (display_width, display_height) = normalization.display_size(width, height);
    let sar = layout.sample_aspect_ratio;
    // The exact ratio (coded size stretched by the pixel shape), not the rounded display size.
    let mut aspect = (
        u64::from(width) * u64::try_from(sar.numerator()).unwrap_or(1),
        u64::from(height) * u64::try_from(sar.denominator()).unwrap_or(1),
    );
    if layout.orientation.swaps_dimensions() {
        aspect = (aspect.1, aspect.0);
    }
    let format = pixel_format(stream.parameters());
    VideoStreamInfo {
        index: stream.index(),
        codec: parameters.id().name().to_owned(),
        width,
        height,
        display_width,
        display_height,
        display_aspect_ratio: reduced(aspect.0, aspect.1),
        sample_aspect_ratio: reduced(
            u64::try_from(sar.numerator()).unwrap_or(1),
            u64::try_from(sar.denominator()).unwrap_or(1),
        ),
        frame_rate: layout.frame_rate.map(f64::from),
        variable_frame_rate: layout.variable_frame_rate,
        rotation: layout.rotation,
        interlaced: layout.interlaced,
        pixel_format: format
            .and_then(|format| format.descriptor())
            .map(|descriptor| descriptor.name().to_owned()),
        bit_depth: format.map(bit_depth),
        chroma_subsampling: format.and_then(chroma_subsampling),
        duration: stream_duration(stream),
    }
}

/// A stream's own duration, when the container records one.
fn stream_duration(stream: &Stream) -> Option<Duration> {
    let ticks = u64::try_from(stream.duration()).ok().filter(|&t| t > 0)?;
    let base = stream.time_base();
    let (num, den) = (
        u64::try_from(base.numerator()).ok()?,
        u64::try_from(base.denominator()).ok().filter(|&d| d > 0)?,
    );
    let micros = u128::from(ticks) * u128::from(num) * 1_000_000 / u128::from(den);
    Some(Duration::from_micros(u64::try_from(micros).ok()?))
}

/// A video stream's orientation, pixel shape and timing, as the container and the codec
/// headers give them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct VideoLayout {
    /// Clockwise rotation for display, in quarter turns (0, 90, 180, 270).
    pub rotation: u32,
    /// What turns the coded picture upright.
    pub orientation: Orientation,
    /// The coded pixels' shape; 1:1 when unknown.
    pub sample_aspect_ratio: Rational,
    /// The rate to transcode at (see [`VideoStreamInfo::frame_rate`]).
    pub frame_rate: Option<Rational>,
    /// See [`VideoStreamInfo::variable_frame_rate`].
    pub variable_frame_rate: bool,
    /// See [`VideoStreamInfo::interlaced`].
    pub interlaced: bool,
}

/// Frame rates closer than this (relative) count as the same.
const SAME_RATE_TOLERANCE: f64 = 0.01;

/// Reads a video stream's layout.
pub(crate) fn video_layout(input: &Input, stream: &Stream) -> VideoLayout {
    let valid = |rate: Rational| (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate);
    let average = valid(stream.avg_frame_rate());
    let nominal = valid(stream.rate());
    let (frame_rate, variable_frame_rate) = match (average, nominal) {
        (Some(average), Some(nominal)) => {
            let drift = (f64::from(average) / f64::from(nominal) - 1.0).abs();
            if drift <= SAME_RATE_TOLERANCE {
                (Some(nominal), false)
            } else {
                (Some(average), true)
            }
        }
        (Some(average), None) => (Some(average), false),
        // Matroska declares a constant rate as the track's default frame duration (which
        // libavformat gives as the average); a track without one was written with irregular
        // timing. Other containers (Ogg) may simply not say.
        (None, Some(nominal)) => (Some(nominal), input.format().name().contains("matroska")),
        (None, None) => (None, false),
    };
    // SAFETY: libavformat reads the stream's and its codec parameters' aspect ratios; both
    // are owned by the open input, and a null frame is allowed.
    let sample_aspect_ratio = unsafe {
        Rational::from(ffmpeg_next::ffi::av_guess_sample_aspect_ratio(
            input.as_ptr().cast_mut(),
            stream.as_ptr().cast_mut(),
            std::ptr::null_mut(),
        ))
    };
    let sample_aspect_ratio = valid(sample_aspect_ratio).unwrap_or(Rational::new(1, 1));
    let (rotation, orientation) = match display_matrix(stream) {
        Some(matrix) => (
            display_rotation(&matrix),
            Orientation::from_display_matrix(&matrix),
        ),
        None => {
            let rotation = rotate_tag(stream);
            (rotation, Orientation::from_rotation(rotation))
        }
    };
    // SAFETY: a plain read of the stream's codec parameters, owned by the open input.
    let field_order = unsafe { (*stream.parameters().as_ptr()).field_order };
    let interlaced = !matches!(
        field_order,
        AVFieldOrder::AV_FIELD_PROGRESSIVE | AVFieldOrder::AV_FIELD_UNKNOWN
    );
    VideoLayout {
        rotation,
        orientation,
        sample_aspect_ratio,
        frame_rate,
        variable_frame_rate,
        interlaced,
    }
}

impl VideoLayout {
    /// Whether decoded pictures need nothing done before a rung encodes them: progressive,
    /// upright, square pixels, a regular frame rate.
    pub(crate) fn is_regular(&self) -> bool {
        !self.interlaced
            && self.orientation.is_upright()
            && self.sample_aspect_ratio.numerator() == self.sample_aspect_ratio.denominator()
            && !self.variable_frame_rate
    }

    /// The normalisation of this stream's pictures at its own frame rate, capped at
    /// `max_rate` when given ([`Self::UNKNOWN_RATE`] when the source gives none).
    pub(crate) fn normalization(&self, max_rate: Option<Rational>) -> Normalization {
        let rate = self.frame_rate.unwrap_or(Self::UNKNOWN_RATE);
        let frame_rate = match max_rate {
            Some(max_rate) if f64::from(rate) > f64::from(max_rate) => max_rate,
            _ => rate,
        };
        Normalization {
            orientation: self.orientation,
            sample_aspect_ratio: self.sample_aspect_ratio,
            frame_rate,
        }
    }

    /// The rate a video whose container gives no frame rate at all is made constant at.
    pub(crate) const UNKNOWN_RATE: Rational = Rational(30, 1);
}

/// A video stream's display matrix (ISO/IEC 14496-12 §8.2.2.3, as libavutil keeps it).
fn display_matrix(stream: &Stream) -> Option<[i32; 9]> {
    let data = stream
        .side_data()
        .find(|data| data.kind() == side_data::Type::DisplayMatrix)?
        .data()
        .to_vec();
    let mut matrix = [0i32; 9];
    if data.len() < 9 * 4 {
        return None;
    }
    for (value, bytes) in matrix.iter_mut().zip(data.chunks_exact(4)) {
        *value = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    Some(matrix)
}

/// The clockwise rotation a `rotate` stream tag asks for (older muxers wrote one instead of a
/// display matrix); 0 without one.
fn rotate_tag(stream: &Stream) -> u32 {
    stream
        .metadata()
        .get("rotate")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|degrees| degrees.is_finite())
        .map_or(0, quarter_turns)
}

/// `a:b` with common factors taken out (`1:1` when either is zero).
fn reduced(a: u64, b: u64) -> (u32, u32) {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == 0 || b == 0 {
        return (1, 1);
    }
    let divisor = gcd(a, b);
    (
        u32::try_from(a / divisor).unwrap_or(u32::MAX),
        u32::try_from(b / divisor).unwrap_or(u32::MAX),
    )
}

/// The stream's pixel format, when its headers give one.
fn pixel_format(parameters: ffmpeg_next::codec::Parameters) -> Option<Pixel> {
    let context = ffmpeg_next::codec::Context::from_parameters(parameters).ok()?;
    let format = context.decoder().video().ok()?.format();
    (format != Pixel::None && format.descriptor().is_some()).then_some(format)
}

/// Bits per sample of a pixel format's first component.
fn bit_depth(format: Pixel) -> u32 {
    format.descriptor().map_or(0, |descriptor| {
        // SAFETY: a descriptor is a static libavutil table entry with at least one component.
        let depth = unsafe { (*descriptor.as_ptr()).comp[0].depth };
        u32::try_from(depth).unwrap_or(0)
    })
}

/// `J:a:b` chroma subsampling of a YUV (or greyscale) pixel format.
fn chroma_subsampling(format: Pixel) -> Option<String> {
    let descriptor = format.descriptor()?;
    // SAFETY: a descriptor is a static libavutil table entry.
    let flags = unsafe { (*descriptor.as_ptr()).flags };
    if flags & ffmpeg_next::ffi::AV_PIX_FMT_FLAG_RGB as u64 != 0 {
        return None;
    }
    if descriptor.nb_components() < 3 {
        return Some("4:0:0".to_owned());
    }
    let horizontal = 4 >> descriptor.log2_chroma_w();
    let vertical = if descriptor.log2_chroma_h() > 0 {
        0
    } else {
        horizontal
    };
    Some(format!("4:{horizontal}:{vertical}"))
}
