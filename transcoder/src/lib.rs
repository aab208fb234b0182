//! Sluice's transcoder: decode each source once, scale per rung, encode each rung (x264 for
//! H.264, rav1e for AV1) on its own thread, and cut every rung at the same source instants so
//! players can switch between renditions at any segment boundary.
//!
//! - [`ladder`]: which renditions to produce ([`Ladder`], [`RungSpec`]) and how they fit a given
//!   source ([`plan`] → [`PlannedRung`]).
//! - [`decode`]: the video decoder (ffmpeg's libavcodec) fed with [`Packet`]s: H.264 from its
//!   avcC for live input, any codec from a file stream's parameters ([`VideoSource`]).
//! - [`normalize`]: a file's pictures made progressive, upright, square-pixel, 8-bit 4:2:0
//!   and constant frame rate by one libavfilter graph ([`PictureNormalizer`]) before the rungs.
//! - [`x264`]: a small safe wrapper over libx264 through `x264-sys`.
//! - [`av1`]: AV1 rungs encoded with rav1e ([`Av1Encoder`]), key frames where the ladder cuts.
//! - [`audio`]: audio to AAC-LC transcoding ([`AacTranscoder`]) for publishers that send MP3
//!   or Opus and files whose audio is not AAC, on the AAC-LC encoder alone ([`AacEncoder`]),
//!   which a room's composite encodes its mix with.
//! - [`live`]: the live ladder pipeline ([`LiveTranscoder`]) with its threads, bounded queues,
//!   aligned IDRs and drop-before-the-encoder backpressure.
//! - [`probe`]: what a local media file contains, and whether it is accepted ([`probe()`],
//!   [`ProbeLimits`]).
//! - [`speech`]: 16 kHz mono audio for speech recognition, from a file
//!   ([`decode_speech_audio`]) or from live AAC packets ([`LiveSpeechAudio`]).
//! - [`images`]: pictures of a local file: a thumbnail at any time ([`thumbnail`]) and a
//!   storyboard sprite with its WebVTT ([`storyboard`]), as JPEG, PNG or WebP.
//! - [`animated`]: a short span of a local file as an animated GIF or WebP ([`animated()`]).
//! - [`vod`]: a local file read as packets ([`FileDemuxer`]) and run through the same ladder,
//!   nothing dropped ([`FileTranscode`]).
//!
//! All decoding, scaling and encoding is blocking CPU work done on threads this crate owns;
//! nothing here touches an async runtime.
//!
//! [`Packet`]: sluice_media::Packet

pub mod animated;
pub mod audio;
pub mod av1;
pub mod decode;
pub mod images;
pub mod ladder;
pub mod live;
pub mod normalize;
pub mod probe;
pub mod speech;
pub mod vod;
pub mod x264;

use std::sync::Once;

use sluice_media::CodecError;

pub use animated::{
    animated, Animation, AnimationFormat, AnimationRequest, DEFAULT_ANIMATION_WIDTH,
    MAX_ANIMATION_DIMENSION, MAX_ANIMATION_FPS, MAX_ANIMATION_SPAN,
};
pub use audio::{AacEncoder, AacTranscoder};
pub use av1::Av1Encoder;
pub use decode::{DecodedPicture, VideoDecoder, VideoSource};
pub use images::{
    poster_time, storyboard, storyboard_interval, thumbnail, FitMode, Image, ImageError,
    ImageFormat, Storyboard, StoryboardLayout, ThumbnailRequest,
};
pub use ladder::{
    encodable_codec, plan, plan_with_codecs, EncodeTarget, Ladder, PlannedRung, Rung, RungSpec,
};
pub use live::{EncoderSettings, LiveTranscoder, TranscodeStats, TranscoderOutput, WhenBehind};
pub use normalize::{Normalization, Orientation, PictureNormalizer};
pub use probe::{probe, AudioStreamInfo, ProbeError, ProbeLimits, ProbeReport, VideoStreamInfo};
pub use speech::{
    decode_speech_audio, decode_speech_audio_with, LiveSpeechAudio, SpeechAudio, SpeechAudioError,
    SpeechAudioOptions, SpeechChunk, SpeechSamples, MAX_CHUNK_SAMPLES, SPEECH_SAMPLE_RATE,
};
pub use vod::{FileDemuxer, FileTranscode, VodError, VodEvent};
pub use x264::{EncodedFrame, Preset, Tune, X264Encoder};

/// Everything that can go wrong in the transcoder, with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The source cannot be transcoded (zero or oversized dimensions, …).
    #[error("source {width}x{height} cannot be transcoded: {reason}")]
    InvalidSource {
        width: u32,
        height: u32,
        reason: &'static str,
    },
    /// A `source` rung was asked of a source that has no H.264 configuration to repackage.
    #[error("the source rung repackages H.264 with its decoder configuration, which this source does not have")]
    SourceRungUnavailable,
    /// libavcodec has no decoder for the source's codec, or refused to open it.
    #[error("opening the video decoder: {0}")]
    DecoderOpen(#[source] ffmpeg_next::Error),
    /// libavcodec rejected a packet.
    #[error("decoding the packet at pts {pts} (90 kHz): {source}")]
    Decode {
        pts: i64,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// swscale could not convert a decoded frame to a rung's size.
    #[error("scaling to {width}x{height}: {source}")]
    Scale {
        width: u32,
        height: u32,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The picture normaliser's filter graph could not be built or run.
    #[error("normalising pictures through {graph:?}: {source}")]
    Normalize {
        graph: String,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// libx264 refused the parameters.
    #[error("opening x264 at {width}x{height}, {bitrate_kbps} kb/s: {reason}")]
    EncoderOpen {
        width: u32,
        height: u32,
        bitrate_kbps: u32,
        reason: &'static str,
    },
    /// The parameter sets x264 produced do not form a valid avcC.
    #[error("x264 parameter sets: {0}")]
    EncoderHeaders(#[from] CodecError),
    /// rav1e refused the parameters.
    #[error("opening rav1e at {width}x{height}, {bitrate_kbps} kb/s: {reason}")]
    Av1EncoderOpen {
        width: u32,
        height: u32,
        bitrate_kbps: u32,
        reason: String,
    },
    /// rav1e failed to encode a frame.
    #[error("rav1e failed at pts {pts} (90 kHz): {reason}")]
    Av1Encode { pts: i64, reason: String },
    /// rav1e's output does not form valid AV1 OBUs or a valid sequence header.
    #[error("rav1e output: {0}")]
    Av1SequenceHeader(#[source] CodecError),
    /// A ladder asks for a codec Sluice does not encode.
    #[error("codec {0} cannot be encoded: the ladder encodes h264 and av1")]
    UnsupportedCodec(String),
    /// A picture does not match what the encoder was opened with.
    #[error("picture is {actual}, the encoder expects {expected}")]
    PictureMismatch { expected: String, actual: String },
    /// libx264 failed to encode a frame.
    #[error("x264 failed to encode the frame at pts {pts} (90 kHz)")]
    Encode { pts: i64 },
    /// libavcodec could not open an audio decoder or encoder.
    #[error("opening the {codec}: {source}")]
    AudioCodecOpen {
        codec: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// libswresample could not convert decoded audio to the encoder's format.
    #[error("resampling audio: {0}")]
    Resample(#[source] ffmpeg_next::Error),
    /// The AAC encoder refused a frame.
    #[error("encoding the AAC frame at sample {pts}: {source}")]
    AudioEncode {
        pts: i64,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The AAC encoder's AudioSpecificConfig does not parse.
    #[error("AAC encoder configuration: {0}")]
    AacConfig(#[source] CodecError),
    /// A pipeline thread could not be started.
    #[error("starting the {thread} thread: {source}")]
    Spawn {
        thread: String,
        #[source]
        source: std::io::Error,
    },
    /// The pipeline's decode thread has ended; no more packets can be taken.
    #[error("the transcoder has stopped")]
    Stopped,
}

/// Initialises libav* once per process and keeps its logging to errors only: ffmpeg writes its
/// log straight to stderr, outside our structured logs, so only what matters gets there.
pub(crate) fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers devices/filters on old FFmpeg versions and cannot fail on 5.x.
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}
