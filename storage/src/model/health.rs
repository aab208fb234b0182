//! A live session's health: what the publisher's encoder sends, judged while it is live
//! (the live core's `health` module makes it; the session row keeps the latest).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A problem with what an encoder sends, each with advice a creator can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthWarningCode {
    /// Key frames further apart than the segments need.
    KeyframeIntervalLong,
    /// Key frames at uneven intervals.
    KeyframeIntervalIrregular,
    /// B-frames reach viewers through a passthrough (`source`) rendition.
    BFramesPassthrough,
    /// Frames at uneven intervals.
    VariableFrameRate,
    /// Video bitrate far above what the encoder declared.
    BitrateAboveDeclared,
    /// Video bitrate far below what the encoder declared.
    BitrateBelowDeclared,
    /// Video bitrate swinging far above its recent level.
    BitrateSpike,
    /// The audio's sample rate or channel count changed mid-stream.
    AudioFormatChanged,
    /// Timestamps jumped forwards or backwards.
    TimestampJump,
    /// Media time falling behind the clock: the encoder or its network cannot keep up.
    TimestampStall,
    /// The server's ladder dropped frames because it could not keep up.
    FramesDropped,
}

impl HealthWarningCode {
    /// The name in JSON and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyframeIntervalLong => "keyframe_interval_long",
            Self::KeyframeIntervalIrregular => "keyframe_interval_irregular",
            Self::BFramesPassthrough => "b_frames_passthrough",
            Self::VariableFrameRate => "variable_frame_rate",
            Self::BitrateAboveDeclared => "bitrate_above_declared",
            Self::BitrateBelowDeclared => "bitrate_below_declared",
            Self::BitrateSpike => "bitrate_spike",
            Self::AudioFormatChanged => "audio_format_changed",
            Self::TimestampJump => "timestamp_jump",
            Self::TimestampStall => "timestamp_stall",
            Self::FramesDropped => "frames_dropped",
        }
    }
}

/// One problem found, while it lasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthWarning {
    pub code: HealthWarningCode,
    /// What was seen and how to fix it, e.g. "Key frames arrive every 10.0 s; set Keyframe
    /// Interval to 2 s in OBS → Settings → Output."
    pub message: String,
    /// When it was first seen.
    pub since: DateTime<Utc>,
}

/// What the publisher sent over a few seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    /// The end of the interval.
    pub at: DateTime<Utc>,
    /// Video bits per second received, in kb/s.
    pub video_kbps: f64,
    /// Audio bits per second received, in kb/s.
    pub audio_kbps: f64,
    /// Video frames per second received.
    pub frame_rate: f64,
    /// The longest time between two key frames that ended in the interval, in seconds.
    pub keyframe_interval_s: Option<f64>,
    /// Frames the ladder dropped in the interval.
    pub frames_dropped: u64,
}

/// A live session's health as last judged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamHealth {
    /// The problems seen now, oldest first.
    pub warnings: Vec<HealthWarning>,
    /// The last minutes, oldest first.
    pub samples: Vec<HealthSample>,
}
