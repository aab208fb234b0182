//! A live stream's health while it is published: what the publisher's encoder sends, judged
//! against the rules below and explained in words a creator can act on (OBS's settings).
//! [`HealthMonitor`] does no I/O and reads no clock: every call passes `now`, the time since
//! the session started at which the input arrived at the server. Media time is the packets'
//! decode time, made continuous per track kind: a timestamp jump is reported and bridged, so
//! that it does not also look like a long key frame interval or a stall.
//!
//! The rules, each a [`HealthWarning`] while it holds:
//!
//! * `KeyframeIntervalLong`: more than 4 s of video without a key frame, raised as soon as the
//!   gap passes 4 s; clears after two intervals in a row of at most 4 s.
//! * `KeyframeIntervalIrregular`: among the last 5 key frame intervals (not counting the
//!   session's first), all at most 4 s, the longest is more than 1.5 times the shortest and
//!   more than 0.5 s longer; clears when they no longer are.
//! * `BFramesPassthrough`: with a passthrough (`source`) rendition, a video frame whose
//!   presentation time differs from its decode time; clears 10 s after the last one.
//! * `VariableFrameRate`: in the last 2 s of video (by decode time), more than 20% of the
//!   steps between frames differ from their median by more than 25% (and by more than the
//!   2 ms that millisecond timestamps round by); clears at 10% or fewer.
//! * `BitrateAboveDeclared` / `BitrateBelowDeclared`: the video bitrate received over the last
//!   4 s, once 4 s of video arrived, is more than twice or less than half the bitrate the
//!   encoder declared (when it declared one); clears under 1.5 times or above two thirds.
//! * `BitrateSpike`: one second of video (by decode time, key frames left out) carries more
//!   than 3 times the median of the 10 seconds before it (with at least 5 of them, and a
//!   median of at least 100 kb/s assumed); clears 10 s after the last spike.
//! * `AudioFormatChanged`: an AAC configuration whose sample rate or channel count differs from
//!   the session's previous one; clears after 30 s.
//! * `TimestampJump`: a video or audio decode time more than 1 s after the previous one of its
//!   kind, or more than 10 ms before it; clears 30 s after the last jump.
//! * `TimestampStall`: over the last 5 s of arrival time, once 5 s of video arrived, video
//!   decode time advanced by less than half as much; clears at 80% or more.
//! * `FramesDropped`: the ladder's dropped-frame counter rose; clears 10 s after it last did.
//!
//! The two rules that compare with arrival time (the declared bitrate, the stall) judge only
//! while video arrives (some arrived in the last second), so that a publisher that is gone
//! is neither below its bitrate nor stalled; a returning publisher starts their windows again
//! ([`HealthMonitor::publisher_returned`]).
//!
//! Every 5 s of arrival time makes a [`HealthSample`]; the last 60 (5 minutes) are kept. Every
//! window is of fixed size whatever the publisher sends, so memory stays bounded.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sluice_media::{Packet, Timebase, TrackInfo, TrackKind};
use sluice_storage::{HealthSample, HealthWarning, HealthWarningCode, StreamHealth};

/// The clock media times are compared in: microseconds.
const MICROS: Timebase = Timebase(1_000_000);
/// One second in microseconds.
const SECOND_US: i64 = 1_000_000;

/// The longest key frame interval that is not a warning.
const KEYFRAME_INTERVAL_MAX_US: i64 = 4 * SECOND_US;
/// Key frame intervals in a row of at most [`KEYFRAME_INTERVAL_MAX_US`] that clear a long
/// interval warning.
const KEYFRAME_SHORT_TO_CLEAR: u8 = 2;
/// The latest key frame intervals compared for regularity.
const KEYFRAME_INTERVALS_KEPT: usize = 5;
/// Key frames are irregular when the longest kept interval is more than this times the
/// shortest...
const KEYFRAME_IRREGULAR_RATIO: f64 = 1.5;
/// ...and longer than it by more than this.
const KEYFRAME_IRREGULAR_SPREAD_US: i64 = SECOND_US / 2;
/// What to do about key frames, in OBS's words.
const KEYFRAME_ADVICE: &str = "set Keyframe Interval to 2 s in OBS → Settings → Output.";

/// The frames whose spacing is compared: those of the last 2 s of decode time...
const FRAME_WINDOW_US: i64 = 2 * SECOND_US;
/// ...but no more than this many (2 s at 240 fps fit).
const FRAME_WINDOW_MAX: usize = 512;
/// The fewest steps between frames whose spacing is judged.
const FRAME_WINDOW_MIN: usize = 8;
/// A step between frames is uneven when it differs from the window's median by more than this
/// share of it...
const FRAME_STEP_DEVIATION: f64 = 0.25;
/// ...and by more than millisecond timestamps round by.
const FRAME_STEP_ROUNDING_US: i64 = 2_000;
/// The share of uneven steps above which the frame rate is variable...
const UNEVEN_SHARE_RAISE: f64 = 0.2;
/// ...and at or below which it no longer is.
const UNEVEN_SHARE_CLEAR: f64 = 0.1;

/// A decode time this much after the previous one of its kind is a jump...
const JUMP_FORWARD_US: i64 = SECOND_US;
/// ...and so is one this much before it.
const JUMP_BACK_US: i64 = 10_000;
/// How long a timestamp jump stays a warning.
const JUMP_HOLD: Duration = Duration::from_secs(30);
/// How long an audio format change stays a warning.
const AUDIO_CHANGE_HOLD: Duration = Duration::from_secs(30);
/// How long B-frames through a passthrough rendition stay a warning after the last one.
const B_FRAMES_HOLD: Duration = Duration::from_secs(10);
/// What B-frames through a passthrough rendition do, and what to do about them.
const B_FRAMES_MESSAGE: &str = "The source rendition passes B-frames to viewers, which adds \
     latency and makes some players stutter; set B-frames to 0 (OBS → Settings → Output → \
     Advanced → x264 options `bframes=0`, or the 'zerolatency' tune / baseline profile).";

/// Arrival time is counted in buckets of this many milliseconds...
const BUCKET_MS: u128 = 250;
/// ...of which this many are kept: the one filling and the complete ones before it.
const BUCKETS: usize = 24;
/// Windows of arrival time are judged while video arrived in the last this many complete
/// buckets (1 s): a publisher that is gone neither stalls nor falls below its bitrate.
const RECENT_VIDEO: u64 = 4;
/// The received bitrate is compared with the declared one over this many buckets (4 s).
const DECLARED_WINDOW: u64 = 16;
/// Received over declared bitrate above which a warning is raised...
const ABOVE_DECLARED_RAISE: f64 = 2.0;
/// ...and at or below which it clears.
const ABOVE_DECLARED_CLEAR: f64 = 1.5;
/// Received over declared bitrate below which a warning is raised...
const BELOW_DECLARED_RAISE: f64 = 0.5;
/// ...and at or above which it clears.
const BELOW_DECLARED_CLEAR: f64 = 2.0 / 3.0;
/// Media progress is compared with arrival time over this many buckets (5 s).
const STALL_WINDOW: u64 = 20;
/// Media time per arrival time below which the stream stalls...
const STALL_RAISE: f64 = 0.5;
/// ...and at or above which it no longer does.
const STALL_CLEAR: f64 = 0.8;
/// Dropped frames are counted over this many buckets and the one filling (5 s).
const DROPPED_WINDOW: u64 = 20;
/// How long dropped frames stay a warning after the last drop.
const DROPPED_HOLD: Duration = Duration::from_secs(10);

/// Seconds of decode time before the current one whose video bitrate is a spike's reference.
const SPIKE_HISTORY: usize = 10;
/// The fewest such seconds a spike is judged against.
const SPIKE_HISTORY_MIN: usize = 5;
/// A second carrying more than this times the reference is a spike.
const SPIKE_RATIO: f64 = 3.0;
/// The smallest reference bitrate, in bits per second, so that tiny streams do not spike.
const SPIKE_FLOOR_BPS: f64 = 100_000.0;
/// How long a spike stays a warning after the last one.
const SPIKE_HOLD: Duration = Duration::from_secs(10);

/// The shortest time between two announcements of warnings of one kind.
pub const ANNOUNCE_COOLDOWN: Duration = Duration::from_secs(600);

/// Seconds of arrival time in a sample.
const SAMPLE_PERIOD_S: u64 = 5;
/// Samples kept: 5 minutes.
const SAMPLES_KEPT: usize = 60;

/// Watches one live session's publisher and explains what is wrong with what it sends.
///
/// Feed it everything the publisher sends ([`metadata`](Self::metadata),
/// [`track`](Self::track), [`packet`](Self::packet)) and the ladder's dropped-frame counter
/// ([`frames_dropped`](Self::frames_dropped)); call [`check`](Self::check) about every second
/// while the publisher is connected for the warnings to announce, and
/// [`report`](Self::report) for the state to show.
#[derive(Debug)]
pub struct HealthMonitor {
    /// The ladder passes the source video through to viewers.
    passthrough: bool,
    /// The wall-clock time of `now = 0`.
    started_at: DateTime<Utc>,
    /// The video bitrate the encoder declared, in kb/s.
    declared_kbps: Option<f64>,
    /// The latest `now` given: time here never runs backwards.
    now: Duration,
    /// The video track's timing, key frames, frame spacing and bitrate per second.
    video: VideoState,
    /// The audio track's decode times.
    audio_clock: Continuity,
    /// The latest AAC configuration's format.
    audio_format: Option<AudioFormat>,
    /// What arrived in the last seconds, by arrival time.
    arrivals: Arrivals,
    /// The samples made and the one being counted.
    samples: Samples,
    /// The ladder's dropped-frame counter as last given.
    dropped_total: u64,
    /// The warnings that hold now.
    warnings: Warnings,
}

impl HealthMonitor {
    /// A monitor for a session that started at `started_at` (the wall-clock time of
    /// `now = 0`, which stamps warnings and samples); `passthrough` says whether its ladder
    /// passes the source video through to viewers (a `source` rendition).
    pub fn new(passthrough: bool, started_at: DateTime<Utc>) -> Self {
        HealthMonitor {
            passthrough,
            started_at,
            declared_kbps: None,
            now: Duration::ZERO,
            video: VideoState::default(),
            audio_clock: Continuity::default(),
            audio_format: None,
            arrivals: Arrivals::default(),
            samples: Samples::default(),
            dropped_total: 0,
            warnings: Warnings::default(),
        }
    }

    /// The video bitrate the encoder declares, in kb/s (RTMP onMetaData `videodatarate`). The
    /// latest declaration wins; none, zero or nonsense declares nothing, and the received
    /// bitrate is then compared with nothing.
    pub fn metadata(&mut self, video_kbps: Option<f64>) {
        if let Some(kbps) = video_kbps.filter(|kbps| kbps.is_finite() && *kbps > 0.0) {
            self.declared_kbps = Some(kbps);
        }
    }

    /// The video bitrate the encoder declared, in kb/s, if it declared one.
    pub fn declared_kbps(&self) -> Option<f64> {
        self.declared_kbps
    }

    /// A track configuration from the publisher, arriving at `now`. The session's first AAC
    /// configuration, and any that repeats the previous format, is no change.
    pub fn track(&mut self, track: &TrackInfo, now: Duration) {
        self.advance(now);
        let TrackInfo::Aac { config } = track else {
            return;
        };
        let format = AudioFormat {
            sample_rate: config.sample_rate,
            channels: config.channels,
        };
        if let Some(old) = self
            .audio_format
            .replace(format)
            .filter(|old| *old != format)
        {
            self.warnings.raise_for(
                HealthWarningCode::AudioFormatChanged,
                format!(
                    "The audio format changed mid-stream ({old} → {format}); set one sample \
                     rate in OBS → Settings → Audio and keep your audio devices at it."
                ),
                self.now,
                AUDIO_CHANGE_HOLD,
            );
        }
    }

    /// A packet from the publisher, arriving at `now`.
    pub fn packet(&mut self, packet: &Packet, now: Duration) {
        self.advance(now);
        if packet.timebase.0 == 0 {
            // Its times mean nothing.
            return;
        }
        let dts = packet.timebase.rescale(packet.dts, MICROS);
        let bytes = u64::try_from(packet.data.len()).unwrap_or(u64::MAX);
        match packet.kind {
            TrackKind::Video => self.video_packet(packet, dts, bytes),
            TrackKind::Audio => {
                if let Some(jump) = self.audio_clock.place(dts).jump {
                    self.timestamp_jump(TrackKind::Audio, jump);
                }
                self.samples.counts.audio_bytes =
                    self.samples.counts.audio_bytes.saturating_add(bytes);
            }
        }
    }

    /// The ladder's dropped-frame counter (frames dropped since it started), read at `now`. A
    /// counter lower than the last one given is a new ladder's, counting from 0.
    pub fn frames_dropped(&mut self, total: u64, now: Duration) {
        self.advance(now);
        // A pipeline of a returning publisher counts from 0 again.
        let new = if total < self.dropped_total {
            total
        } else {
            total - self.dropped_total
        };
        self.dropped_total = total;
        if new == 0 {
            return;
        }
        let bucket = self.arrivals.current_mut();
        bucket.dropped = bucket.dropped.saturating_add(new);
        self.samples.counts.dropped = self.samples.counts.dropped.saturating_add(new);
        let recent = self.arrivals.dropped(DROPPED_WINDOW);
        let frames = if recent == 1 { "frame" } else { "frames" };
        self.warnings.raise_for(
            HealthWarningCode::FramesDropped,
            format!(
                "The server dropped {recent} {frames} in the last 5 s because it could not \
                 encode the ladder in real time; use fewer or smaller renditions, or give the \
                 server more CPU."
            ),
            self.now,
            DROPPED_HOLD,
        );
    }

    /// The publisher came back, at `now`, to the same session: its timestamps may start anew,
    /// so its first packets continue where the last ones ended (no jump), and the key frame,
    /// frame spacing and bitrate windows start again. Warnings and samples stay.
    pub fn publisher_returned(&mut self, now: Duration) {
        self.advance(now);
        self.video = VideoState {
            clock: self.video.clock.bridged(),
            ..VideoState::default()
        };
        self.audio_clock = self.audio_clock.bridged();
        self.arrivals.video_start = None;
    }

    /// Brings the judgement up to `now` and returns the warnings raised since the last call
    /// (for `live_stream.warning` events), oldest first: a warning is returned once while it
    /// holds, and again only if it cleared and came back at least [`ANNOUNCE_COOLDOWN`] after
    /// it was last returned (a problem that comes and goes, such as scene-cut key frames, is
    /// announced once per cooldown, while the report shows it each time it holds).
    pub fn check(&mut self, now: Duration) -> Vec<HealthWarning> {
        self.advance(now);
        self.warnings.take_unreported(self.started_at, self.now)
    }

    /// The warnings that hold, oldest first, and the samples of the last 5 minutes, as of the
    /// latest call.
    pub fn report(&self) -> StreamHealth {
        StreamHealth {
            warnings: self.warnings.all(self.started_at),
            samples: self.samples.kept.iter().cloned().collect(),
        }
    }

    /// Moves time on to `now`: closes samples and arrival buckets, judges the rules that
    /// compare with arrival time and lets held warnings expire.
    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
        let now = self.now;
        self.samples
            .roll_to(now.as_secs() / SAMPLE_PERIOD_S, self.started_at);
        let bucket = u64::try_from(now.as_millis() / BUCKET_MS).unwrap_or(u64::MAX);
        if self.arrivals.roll_to(bucket) {
            self.judge_declared_bitrate();
            self.judge_stall();
        }
        self.warnings.expire(now);
    }

    /// A video packet at decode time `dts` (µs) with `bytes` of payload.
    fn video_packet(&mut self, packet: &Packet, dts: i64, bytes: u64) {
        let placed = self.video.clock.place(dts);
        if let Some(jump) = placed.jump {
            self.timestamp_jump(TrackKind::Video, jump);
        }
        if self.passthrough && packet.pts != packet.dts {
            self.warnings.raise_for(
                HealthWarningCode::BFramesPassthrough,
                B_FRAMES_MESSAGE.to_owned(),
                self.now,
                B_FRAMES_HOLD,
            );
        }
        self.key_frames(placed.time, packet.keyframe);
        if let Some(step) = placed.step {
            self.frame_spacing(placed.time, step);
        }
        // Key frames are left out: a static picture spends most of its bits on them.
        let between_keys = if packet.keyframe { 0 } else { bytes };
        if let Some((now_bps, usual_bps)) = self.video.seconds.add(placed.time, between_keys) {
            self.warnings.raise_for(
                HealthWarningCode::BitrateSpike,
                format!(
                    "Video bitrate spiked to {:.0} kb/s, more than 3 times its recent {:.0} \
                     kb/s; use CBR rate control at a fixed bitrate (OBS → Settings → Output), \
                     or cap the rate (x264 options `vbv-maxrate` and `vbv-bufsize`).",
                    now_bps / 1000.0,
                    usual_bps / 1000.0
                ),
                self.now,
                SPIKE_HOLD,
            );
        }
        self.arrivals.video(placed.time, bytes);
        let counts = &mut self.samples.counts;
        counts.video_bytes = counts.video_bytes.saturating_add(bytes);
        counts.frames = counts.frames.saturating_add(1);
    }

    /// A decode time of `kind` that jumped by `jump` µs.
    fn timestamp_jump(&mut self, kind: TrackKind, jump: i64) {
        let track = match kind {
            TrackKind::Video => "Video",
            TrackKind::Audio => "Audio",
        };
        let direction = if jump > 0 { "forward" } else { "back" };
        self.warnings.raise_for(
            HealthWarningCode::TimestampJump,
            format!(
                "{track} timestamps jumped {direction} by {:.1} s; restart the encoder, or check \
                 its source (a media source that loops or restarts, a capture device that drops \
                 out).",
                seconds(jump.saturating_abs())
            ),
            self.now,
            JUMP_HOLD,
        );
    }

    /// A video frame at continuous decode time `time`: the key frame rules.
    fn key_frames(&mut self, time: i64, keyframe: bool) {
        let gap_from = *self.video.gap_from.get_or_insert(time);
        if !keyframe {
            let gap = time.saturating_sub(gap_from);
            if gap > KEYFRAME_INTERVAL_MAX_US {
                self.video.short_streak = 0;
                self.warnings.raise(
                    HealthWarningCode::KeyframeIntervalLong,
                    format!("No key frame for {:.1} s; {KEYFRAME_ADVICE}", seconds(gap)),
                    self.now,
                );
            }
            return;
        }
        self.video.gap_from = Some(time);
        if let Some(last) = self.video.last_key.replace(time) {
            self.keyframe_interval(time.saturating_sub(last));
        }
    }

    /// A key frame `interval` (µs) ended.
    fn keyframe_interval(&mut self, interval: i64) {
        let longest = &mut self.samples.counts.keyframe_interval;
        *longest = Some(longest.map_or(interval, |longest| longest.max(interval)));
        if interval > KEYFRAME_INTERVAL_MAX_US {
            self.video.short_streak = 0;
            self.warnings.raise(
                HealthWarningCode::KeyframeIntervalLong,
                format!(
                    "Key frames arrive every {:.1} s; {KEYFRAME_ADVICE}",
                    seconds(interval)
                ),
                self.now,
            );
        } else {
            self.video.short_streak = self.video.short_streak.saturating_add(1);
            if self.video.short_streak >= KEYFRAME_SHORT_TO_CLEAR {
                self.warnings.clear(HealthWarningCode::KeyframeIntervalLong);
            }
        }
        if !self.video.first_interval_ended {
            // The encoder's first group of pictures may be short.
            self.video.first_interval_ended = true;
            return;
        }
        let intervals = &mut self.video.intervals;
        intervals.push_back(interval);
        while intervals.len() > KEYFRAME_INTERVALS_KEPT {
            intervals.pop_front();
        }
        let (shortest, longest) = min_max(intervals.iter().copied());
        let irregular = intervals.len() >= 2
            && longest <= KEYFRAME_INTERVAL_MAX_US
            && longest as f64 > KEYFRAME_IRREGULAR_RATIO * shortest as f64
            && longest.saturating_sub(shortest) > KEYFRAME_IRREGULAR_SPREAD_US;
        if irregular {
            self.warnings.raise(
                HealthWarningCode::KeyframeIntervalIrregular,
                format!(
                    "Key frames arrive at uneven intervals ({:.1} to {:.1} s); set a fixed \
                     Keyframe Interval of 2 s in OBS → Settings → Output, and turn off \
                     scene-cut key frames if your encoder has them (x264 options `scenecut=0`).",
                    seconds(shortest),
                    seconds(longest)
                ),
                self.now,
            );
        } else {
            self.warnings
                .clear(HealthWarningCode::KeyframeIntervalIrregular);
        }
    }

    /// A video frame at continuous decode time `time`, `step` µs after the previous one: the
    /// frame rate rule.
    fn frame_spacing(&mut self, time: i64, step: i64) {
        let frames = &mut self.video.frames;
        frames.push_back((time, step));
        while frames.len() > FRAME_WINDOW_MAX
            || frames
                .front()
                .is_some_and(|(first, _)| time.saturating_sub(*first) > FRAME_WINDOW_US)
        {
            frames.pop_front();
        }
        if frames.len() < FRAME_WINDOW_MIN {
            return;
        }
        let mut steps: Vec<i64> = frames.iter().map(|(_, step)| *step).collect();
        let middle = steps.len() / 2;
        let median = *steps.select_nth_unstable(middle).1;
        let tolerance = ((median.saturating_abs() as f64 * FRAME_STEP_DEVIATION) as i64)
            .max(FRAME_STEP_ROUNDING_US);
        let uneven = steps
            .iter()
            .filter(|step| step.saturating_sub(median).saturating_abs() > tolerance)
            .count();
        let share = uneven as f64 / steps.len() as f64;
        if share > UNEVEN_SHARE_RAISE {
            let (shortest, longest) = min_max(steps.iter().copied());
            self.warnings.raise(
                HealthWarningCode::VariableFrameRate,
                format!(
                    "Frames arrive at uneven intervals ({:.0} to {:.0} ms); use a constant \
                     frame rate (OBS → Settings → Video → Common FPS Values).",
                    milliseconds(shortest),
                    milliseconds(longest)
                ),
                self.now,
            );
        } else if share <= UNEVEN_SHARE_CLEAR {
            self.warnings.clear(HealthWarningCode::VariableFrameRate);
        }
    }

    /// Compares the video bitrate received over the last seconds with the declared one.
    fn judge_declared_bitrate(&mut self) {
        let (Some(declared), Some(received)) = (
            self.declared_kbps,
            self.arrivals.video_kbps(DECLARED_WINDOW),
        ) else {
            return;
        };
        let ratio = received / declared;
        if ratio > ABOVE_DECLARED_RAISE {
            self.warnings.raise(
                HealthWarningCode::BitrateAboveDeclared,
                format!(
                    "Video arrives at {received:.0} kb/s, more than twice the {declared:.0} kb/s \
                     the encoder declares; use CBR rate control at the bitrate you want (OBS → \
                     Settings → Output → Rate Control)."
                ),
                self.now,
            );
        } else if ratio <= ABOVE_DECLARED_CLEAR {
            self.warnings.clear(HealthWarningCode::BitrateAboveDeclared);
        }
        if ratio < BELOW_DECLARED_RAISE {
            self.warnings.raise(
                HealthWarningCode::BitrateBelowDeclared,
                format!(
                    "Video arrives at {received:.0} kb/s, less than half the {declared:.0} kb/s \
                     the encoder declares; use CBR rate control (OBS → Settings → Output → Rate \
                     Control), and check that your upload keeps up."
                ),
                self.now,
            );
        } else if ratio >= BELOW_DECLARED_CLEAR {
            self.warnings.clear(HealthWarningCode::BitrateBelowDeclared);
        }
    }

    /// Compares the video decode time that arrived over the last seconds with the time it took.
    fn judge_stall(&mut self) {
        let Some(speed) = self.arrivals.media_speed(STALL_WINDOW) else {
            return;
        };
        if speed < STALL_RAISE {
            self.warnings.raise(
                HealthWarningCode::TimestampStall,
                format!(
                    "Only {:.0}% of real time arrived over the last 5 s: the encoder or its \
                     upload cannot keep up; lower the bitrate or the output resolution, or \
                     choose a faster encoder preset (OBS → Settings → Output).",
                    speed.max(0.0) * 100.0
                ),
                self.now,
            );
        } else if speed >= STALL_CLEAR {
            self.warnings.clear(HealthWarningCode::TimestampStall);
        }
    }
}

/// The wall-clock time `at` into a session that started at `started_at`.
fn stamp(started_at: DateTime<Utc>, at: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(at)
        .ok()
        .and_then(|delta| started_at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Microseconds as seconds.
fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

/// Microseconds as milliseconds.
fn milliseconds(us: i64) -> f64 {
    us as f64 / 1e3
}

/// The smallest and largest of `values`; `(i64::MAX, i64::MIN)` for none.
fn min_max(values: impl Iterator<Item = i64>) -> (i64, i64) {
    values.fold((i64::MAX, i64::MIN), |(low, high), value| {
        (low.min(value), high.max(value))
    })
}

/// An AAC track's format as a creator sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AudioFormat {
    sample_rate: u32,
    channels: u8,
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz ", self.sample_rate)?;
        match self.channels {
            1 => write!(f, "mono"),
            2 => write!(f, "stereo"),
            channels => write!(f, "{channels} channels"),
        }
    }
}

/// Where a packet lands on its kind's continuous clock.
struct Placed {
    /// Its continuous decode time, in µs.
    time: i64,
    /// How far after the previous packet of its kind, in µs; `None` for the first.
    step: Option<i64>,
    /// How far its decode time jumped from the previous one, in µs, when it did.
    jump: Option<i64>,
}

/// One track kind's decode times made continuous: a jump is reported once and bridged, the
/// packets after it going on from where the ones before it ended.
#[derive(Clone, Copy, Debug, Default)]
struct Continuity {
    /// The previous packet's continuous decode time, in µs.
    last: Option<i64>,
    /// Added to a decode time to make it continuous.
    offset: i64,
    /// The latest step forward between two packets, which bridges a jump.
    step: i64,
    /// The next packet is bridged without a jump (its publisher came back).
    bridge_next: bool,
}

impl Continuity {
    /// The same clock, bridging its next packet to the last one.
    fn bridged(self) -> Self {
        Continuity {
            bridge_next: true,
            ..self
        }
    }

    /// Places a packet with decode time `dts` (µs).
    fn place(&mut self, dts: i64) -> Placed {
        let Some(last) = self.last else {
            self.last = Some(dts);
            self.bridge_next = false;
            return Placed {
                time: dts,
                step: None,
                jump: None,
            };
        };
        let time = dts.saturating_add(self.offset);
        let step = time.saturating_sub(last);
        let jumped = !(-JUMP_BACK_US..=JUMP_FORWARD_US).contains(&step);
        if jumped || self.bridge_next {
            let bridged = last.saturating_add(self.step);
            self.offset = bridged.saturating_sub(dts);
            self.last = Some(bridged);
            let jump = (jumped && !self.bridge_next).then_some(step);
            self.bridge_next = false;
            return Placed {
                time: bridged,
                step: Some(self.step),
                jump,
            };
        }
        if step > 0 {
            self.step = step;
        }
        self.last = Some(time);
        Placed {
            time,
            step: Some(step),
            jump: None,
        }
    }
}

/// What is known of the video track, on its continuous clock.
#[derive(Debug, Default)]
struct VideoState {
    /// Its decode times.
    clock: Continuity,
    /// The last key frame's time.
    last_key: Option<i64>,
    /// Where the current run without a key frame began: the last key frame, or the first
    /// frame.
    gap_from: Option<i64>,
    /// The first key frame interval ended (it is not judged for regularity).
    first_interval_ended: bool,
    /// The latest key frame intervals after the first, oldest first.
    intervals: VecDeque<i64>,
    /// Key frame intervals in a row within the limit.
    short_streak: u8,
    /// The frames of the last [`FRAME_WINDOW_US`]: their time and step from the previous one.
    frames: VecDeque<(i64, i64)>,
    /// Bytes between key frames per second of decode time.
    seconds: MediaSeconds,
}

/// Video bytes per second of decode time (key frames left out): the second filling and the
/// ones before it.
#[derive(Debug, Default)]
struct MediaSeconds {
    /// The first frame's time: second 0 starts there.
    origin: Option<i64>,
    /// The second filling.
    current: i64,
    /// Bytes per second, in a ring.
    bytes: [u64; SPIKE_HISTORY + 1],
}

impl MediaSeconds {
    /// Counts a frame of `bytes` at `time`: the bitrate of its second and the usual one, in
    /// bits per second, when that second spikes.
    fn add(&mut self, time: i64, bytes: u64) -> Option<(f64, f64)> {
        let origin = *self.origin.get_or_insert(time);
        let second = time.saturating_sub(origin).div_euclid(SECOND_US);
        if second > self.current {
            self.roll_to(second);
        }
        if second < 0 || second < self.current.saturating_sub(SPIKE_HISTORY as i64) {
            return None;
        }
        let slot = &mut self.bytes[Self::slot(second)];
        *slot = slot.saturating_add(bytes);
        self.spike()
    }

    /// Starts `second`, emptying the seconds skipped.
    fn roll_to(&mut self, second: i64) {
        if second.saturating_sub(self.current) > SPIKE_HISTORY as i64 {
            self.bytes = [0; SPIKE_HISTORY + 1];
        } else {
            for skipped in self.current + 1..=second {
                self.bytes[Self::slot(skipped)] = 0;
            }
        }
        self.current = second;
    }

    /// The current second's bitrate and the usual one when it is a spike.
    fn spike(&self) -> Option<(f64, f64)> {
        let history = usize::try_from(self.current)
            .unwrap_or(0)
            .min(SPIKE_HISTORY);
        if history < SPIKE_HISTORY_MIN {
            return None;
        }
        let mut before: Vec<f64> = (1..=history as i64)
            .map(|back| self.bits(self.current - back))
            .collect();
        before.sort_by(f64::total_cmp);
        let usual = before[before.len() / 2];
        let now = self.bits(self.current);
        (now > SPIKE_RATIO * usual.max(SPIKE_FLOOR_BPS)).then_some((now, usual))
    }

    /// The bits counted in `second`.
    fn bits(&self, second: i64) -> f64 {
        self.bytes[Self::slot(second)] as f64 * 8.0
    }

    /// Where `second` is in the ring.
    fn slot(second: i64) -> usize {
        second.rem_euclid(SPIKE_HISTORY as i64 + 1) as usize
    }
}

/// What arrived in one bucket of arrival time.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Video payload bytes.
    video_bytes: u64,
    /// Frames the ladder dropped.
    dropped: u64,
    /// The latest video decode time received by its end (set once it is complete).
    media_end: Option<i64>,
}

/// The last seconds by arrival time, in buckets of [`BUCKET_MS`].
#[derive(Debug, Default)]
struct Arrivals {
    /// The buckets, in a ring.
    buckets: [Bucket; BUCKETS],
    /// The bucket filling: arrival time over [`BUCKET_MS`].
    current: u64,
    /// The bucket in which the first video arrived (since the publisher came).
    video_start: Option<u64>,
    /// The latest video decode time received.
    media: Option<i64>,
    /// The bucket in which the latest video arrived.
    last_video: Option<u64>,
}

impl Arrivals {
    /// Starts bucket `index`, completing those before it; whether it is a new one.
    fn roll_to(&mut self, index: u64) -> bool {
        if index <= self.current {
            return false;
        }
        let first = self.current.max(index.saturating_sub(BUCKETS as u64 - 1));
        for completed in first..index {
            let bucket = &mut self.buckets[Self::slot(completed)];
            if completed != self.current {
                *bucket = Bucket::default();
            }
            bucket.media_end = self.media;
        }
        self.buckets[Self::slot(index)] = Bucket::default();
        self.current = index;
        true
    }

    /// A video frame at decode time `time` with `bytes` of payload.
    fn video(&mut self, time: i64, bytes: u64) {
        self.video_start.get_or_insert(self.current);
        self.last_video = Some(self.current);
        self.media = Some(self.media.map_or(time, |media| media.max(time)));
        let bucket = self.current_mut();
        bucket.video_bytes = bucket.video_bytes.saturating_add(bytes);
    }

    /// The bucket filling.
    fn current_mut(&mut self) -> &mut Bucket {
        &mut self.buckets[Self::slot(self.current)]
    }

    /// The complete bucket `back` before the one filling.
    fn complete(&self, back: u64) -> Option<&Bucket> {
        if back == 0 || back >= BUCKETS as u64 {
            return None;
        }
        let index = self.current.checked_sub(back)?;
        Some(&self.buckets[Self::slot(index)])
    }

    /// Whether video arrived in the bucket filling or the [`RECENT_VIDEO`] before it: the
    /// publisher is sending, so a window ending now is judged (one with a publisher gone is
    /// not).
    fn video_arriving(&self) -> bool {
        self.last_video
            .is_some_and(|last| self.current.saturating_sub(last) <= RECENT_VIDEO)
    }

    /// The video bitrate received over the last `window` complete buckets, in kb/s, once
    /// they all follow the one in which video started, while video arrives.
    fn video_kbps(&self, window: u64) -> Option<f64> {
        let start = self.current.checked_sub(window)?;
        if start <= self.video_start? || !self.video_arriving() {
            return None;
        }
        let bytes = (1..=window)
            .filter_map(|back| self.complete(back))
            .fold(0u64, |sum, bucket| sum.saturating_add(bucket.video_bytes));
        // Bits per millisecond are kilobits per second.
        Some(bytes as f64 * 8.0 / (window as f64 * BUCKET_MS as f64))
    }

    /// Video decode time received per arrival time over the last `window` complete buckets,
    /// once video started by their start, while video arrives.
    fn media_speed(&self, window: u64) -> Option<f64> {
        let start = self.current.checked_sub(window + 1)?;
        if start < self.video_start? || !self.video_arriving() {
            return None;
        }
        let begin = self.complete(window + 1)?.media_end?;
        let end = self.complete(1)?.media_end?;
        let window_us = window as f64 * BUCKET_MS as f64 * 1e3;
        Some(end.saturating_sub(begin) as f64 / window_us)
    }

    /// Frames dropped in the bucket filling and the `window` complete ones before it.
    fn dropped(&self, window: u64) -> u64 {
        (1..=window).filter_map(|back| self.complete(back)).fold(
            self.buckets[Self::slot(self.current)].dropped,
            |sum, bucket| sum.saturating_add(bucket.dropped),
        )
    }

    /// Where bucket `index` is in the ring.
    fn slot(index: u64) -> usize {
        (index % BUCKETS as u64) as usize
    }
}

/// What arrived in one sample's period so far.
#[derive(Debug, Default)]
struct Counts {
    video_bytes: u64,
    audio_bytes: u64,
    /// Video frames.
    frames: u64,
    /// The longest key frame interval that ended, in µs.
    keyframe_interval: Option<i64>,
    /// Frames the ladder dropped.
    dropped: u64,
}

impl Counts {
    /// The sample of a period that ended `at`.
    fn sample(self, at: DateTime<Utc>) -> HealthSample {
        let period = SAMPLE_PERIOD_S as f64;
        HealthSample {
            at,
            video_kbps: self.video_bytes as f64 * 8.0 / period / 1000.0,
            audio_kbps: self.audio_bytes as f64 * 8.0 / period / 1000.0,
            frame_rate: self.frames as f64 / period,
            keyframe_interval_s: self.keyframe_interval.map(seconds),
            frames_dropped: self.dropped,
        }
    }
}

/// The samples made, and the one being counted.
#[derive(Debug, Default)]
struct Samples {
    /// The period being counted: arrival time over [`SAMPLE_PERIOD_S`].
    period: u64,
    /// What arrived in it.
    counts: Counts,
    /// The latest samples, oldest first.
    kept: VecDeque<HealthSample>,
}

impl Samples {
    /// Starts period `period`, making the samples of those before it (empty ones for periods
    /// in which nothing was given).
    fn roll_to(&mut self, period: u64, started_at: DateTime<Utc>) {
        if period <= self.period {
            return;
        }
        let first = self.period.max(period.saturating_sub(SAMPLES_KEPT as u64));
        if first != self.period {
            // The period counted is older than any sample kept.
            self.counts = Counts::default();
        }
        for ended in first..period {
            let end = Duration::from_secs(ended.saturating_add(1).saturating_mul(SAMPLE_PERIOD_S));
            let sample = std::mem::take(&mut self.counts).sample(stamp(started_at, end));
            self.kept.push_back(sample);
            while self.kept.len() > SAMPLES_KEPT {
                self.kept.pop_front();
            }
        }
        self.period = period;
    }
}

/// A warning that holds.
#[derive(Debug)]
struct Active {
    /// When it was first seen.
    since: Duration,
    /// What is seen and what to do.
    message: String,
    /// When it clears unless raised again; `None` while its rule says it holds.
    until: Option<Duration>,
    /// [`HealthMonitor::check`] returned it.
    reported: bool,
}

/// The warnings that hold, one per code.
#[derive(Debug, Default)]
struct Warnings {
    active: BTreeMap<HealthWarningCode, Active>,
    /// When each code was last returned by [`HealthMonitor::check`].
    announced: BTreeMap<HealthWarningCode, Duration>,
}

impl Warnings {
    /// `code` holds from `now` until its rule clears it, with `message`.
    fn raise(&mut self, code: HealthWarningCode, message: String, now: Duration) {
        self.set(code, message, now, None);
    }

    /// `code` holds from `now` for `hold`, with `message`.
    fn raise_for(
        &mut self,
        code: HealthWarningCode,
        message: String,
        now: Duration,
        hold: Duration,
    ) {
        let until = now.checked_add(hold).unwrap_or(Duration::MAX);
        self.set(code, message, now, Some(until));
    }

    /// Raises `code`, or renews it (keeping when it was first seen).
    fn set(
        &mut self,
        code: HealthWarningCode,
        message: String,
        now: Duration,
        until: Option<Duration>,
    ) {
        match self.active.entry(code) {
            Entry::Occupied(mut entry) => {
                let active = entry.get_mut();
                active.message = message;
                active.until = until;
            }
            Entry::Vacant(entry) => {
                entry.insert(Active {
                    since: now,
                    message,
                    until,
                    reported: false,
                });
            }
        }
    }

    /// `code` no longer holds.
    fn clear(&mut self, code: HealthWarningCode) {
        self.active.remove(&code);
    }

    /// Clears the held warnings whose time ran out by `now`.
    fn expire(&mut self, now: Duration) {
        self.active
            .retain(|_, active| active.until.is_none_or(|until| now < until));
    }

    /// The warnings not returned yet, oldest first, now returned.
    /// Those whose code was announced less than [`ANNOUNCE_COOLDOWN`] before `now` are taken
    /// as returned without being returned.
    fn take_unreported(&mut self, started_at: DateTime<Utc>, now: Duration) -> Vec<HealthWarning> {
        let announced = &mut self.announced;
        let mut raised: Vec<HealthWarning> = self
            .active
            .iter_mut()
            .filter(|(_, active)| !active.reported)
            .filter_map(|(code, active)| {
                active.reported = true;
                let quiet = announced
                    .get(code)
                    .is_some_and(|last| now.saturating_sub(*last) < ANNOUNCE_COOLDOWN);
                if quiet {
                    return None;
                }
                announced.insert(*code, now);
                Some(warning(*code, active, started_at))
            })
            .collect();
        raised.sort_by_key(|warning| (warning.since, warning.code));
        raised
    }

    /// Every warning, oldest first.
    fn all(&self, started_at: DateTime<Utc>) -> Vec<HealthWarning> {
        let mut all: Vec<HealthWarning> = self
            .active
            .iter()
            .map(|(code, active)| warning(*code, active, started_at))
            .collect();
        all.sort_by_key(|warning| (warning.since, warning.code));
        all
    }
}

/// The warning `code` as shown.
fn warning(code: HealthWarningCode, active: &Active, started_at: DateTime<Utc>) -> HealthWarning {
    HealthWarning {
        code,
        message: active.message.clone(),
        since: stamp(started_at, active.since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::TimeZone;
    use sluice_media::AudioSpecificConfig;
    use HealthWarningCode as Code;

    /// How often the feed calls [`HealthMonitor::check`].
    const CHECK_EVERY: Duration = Duration::from_millis(250);
    /// One frame at 30 fps, in milliseconds.
    const FRAME_30_FPS: f64 = 1000.0 / 30.0;
    /// One AAC frame (1024 samples) at 48 kHz, in milliseconds.
    const AAC_FRAME_MS: f64 = 1024.0 / 48.0;

    fn started_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn aac(sample_rate: u32, channels: u8) -> TrackInfo {
        TrackInfo::Aac {
            config: AudioSpecificConfig::new(2, sample_rate, channels).expect("a valid config"),
        }
    }

    fn video_packet(dts: i64, pts: i64, keyframe: bool, bytes: usize) -> Packet {
        Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MILLIS,
            dts,
            pts,
            keyframe,
            data: Bytes::from(vec![0; bytes]),
        }
    }

    /// A publisher's encoder and network: RTMP packets (millisecond timestamps) handed to a
    /// monitor in arrival order, checked every 250 ms of arrival time. Its settings may change
    /// between runs; by default it is `ffmpeg -c:v libx264 -g 60 -r 30 -bf 0 -b:v 1M` with
    /// AAC at 48 kHz stereo, 128 kb/s.
    struct Feed {
        monitor: HealthMonitor,
        /// What `check` returned, with when.
        raised: Vec<(Duration, HealthWarning)>,
        video_kbps: f64,
        /// Milliseconds between key frames.
        gop_ms: f64,
        /// A key frame is this many times larger than another frame.
        key_weight: f64,
        b_frames: bool,
        /// Milliseconds between frames, taken in turn.
        frame_ms: Vec<f64>,
        /// Media time sent per arrival time.
        speed: f64,
        /// Added to the video and audio timestamps.
        video_shift_ms: i64,
        audio_shift_ms: i64,
        /// The next frame is a key frame (a scene cut).
        force_key: bool,
        /// The next frame repeats the last one's timestamp.
        duplicate: bool,
        frame: u64,
        /// The next frame's media time.
        video_ms: f64,
        last_key_ms: Option<f64>,
        /// The next audio frame's media time.
        audio_ms: f64,
        /// Arrival (s) and media time (ms) of the last packet.
        anchor: (f64, f64),
        next_check: Duration,
    }

    impl Feed {
        fn new(passthrough: bool) -> Feed {
            let mut monitor = HealthMonitor::new(passthrough, started_at());
            let video = TrackInfo::Avc {
                config: sluice_media::fixtures::avc_320x240(),
                frame_rate: Some(30.0),
            };
            monitor.track(&video, Duration::ZERO);
            monitor.track(&aac(48_000, 2), Duration::ZERO);
            Feed {
                monitor,
                raised: Vec::new(),
                video_kbps: 1000.0,
                gop_ms: 2000.0,
                key_weight: 5.0,
                b_frames: false,
                frame_ms: vec![FRAME_30_FPS],
                speed: 1.0,
                video_shift_ms: 0,
                audio_shift_ms: 0,
                force_key: false,
                duplicate: false,
                frame: 0,
                video_ms: 0.0,
                last_key_ms: None,
                audio_ms: 0.0,
                anchor: (0.0, 0.0),
                next_check: Duration::ZERO,
            }
        }

        /// Sends and checks everything up to `until` seconds of arrival time.
        fn run_until(&mut self, until: f64) {
            let until = at(until);
            loop {
                let media = self.video_ms.min(self.audio_ms);
                let arrival = self.anchor.0 + (media - self.anchor.1) / 1000.0 / self.speed;
                let arrival = at(arrival);
                if self.next_check <= arrival {
                    if self.next_check > until {
                        break;
                    }
                    let now = self.next_check;
                    let raised = self.monitor.check(now);
                    self.raised
                        .extend(raised.into_iter().map(|warning| (now, warning)));
                    self.next_check += CHECK_EVERY;
                    continue;
                }
                if arrival > until {
                    break;
                }
                self.anchor = (arrival.as_secs_f64(), media);
                if self.video_ms <= self.audio_ms {
                    self.send_video(arrival);
                } else {
                    self.send_audio(arrival);
                }
            }
        }

        fn send_video(&mut self, arrival: Duration) {
            let dts = self.video_ms.round() as i64 + self.video_shift_ms;
            let keyframe = self.force_key
                || self
                    .last_key_ms
                    .is_none_or(|last| self.video_ms - last >= self.gop_ms - 1.0);
            if keyframe {
                self.last_key_ms = Some(self.video_ms);
                self.force_key = false;
            }
            let pts = if self.b_frames {
                dts + if self.frame % 3 == 0 { 100 } else { 33 }
            } else {
                dts
            };
            // Frame sizes such that a group of pictures carries `video_kbps`.
            let gop_frames = self.gop_ms / FRAME_30_FPS;
            let frame_bytes = self.video_kbps * 125.0 * FRAME_30_FPS / 1000.0 * gop_frames
                / (gop_frames - 1.0 + self.key_weight);
            let bytes = if keyframe {
                frame_bytes * self.key_weight
            } else {
                frame_bytes
            };
            self.monitor
                .packet(&video_packet(dts, pts, keyframe, bytes as usize), arrival);
            if self.duplicate {
                self.duplicate = false;
            } else {
                self.video_ms += self.frame_ms[self.frame as usize % self.frame_ms.len()];
            }
            self.frame += 1;
        }

        fn send_audio(&mut self, arrival: Duration) {
            let dts = self.audio_ms.round() as i64 + self.audio_shift_ms;
            let packet = Packet {
                kind: TrackKind::Audio,
                timebase: Timebase::MILLIS,
                dts,
                pts: dts,
                keyframe: true,
                data: Bytes::from(vec![0; 341]),
            };
            self.monitor.packet(&packet, arrival);
            self.audio_ms += AAC_FRAME_MS;
        }

        /// The encoder drops its next frame.
        fn drop_frame(&mut self) {
            self.video_ms += FRAME_30_FPS;
            self.frame += 1;
        }

        /// Media time now arrives at `speed` times real time.
        fn set_speed(&mut self, speed: f64) {
            self.speed = speed;
        }

        /// The publisher goes away for `gap` seconds and comes back, its timestamps
        /// starting at 0 again.
        fn reconnect(&mut self, gap: f64) {
            self.anchor.0 += gap;
            self.video_shift_ms = -(self.video_ms.round() as i64);
            self.audio_shift_ms = -(self.audio_ms.round() as i64);
            self.last_key_ms = None;
            self.monitor.publisher_returned(at(self.anchor.0));
        }

        /// When `code` was first returned by `check`.
        fn first_raised(&self, code: Code) -> Option<Duration> {
            self.raised
                .iter()
                .find(|(_, warning)| warning.code == code)
                .map(|(when, _)| *when)
        }

        /// How many times `check` returned `code`.
        fn times_raised(&self, code: Code) -> usize {
            self.raised
                .iter()
                .filter(|(_, warning)| warning.code == code)
                .count()
        }

        /// The codes of the warnings that hold.
        fn active(&self) -> Vec<Code> {
            self.monitor
                .report()
                .warnings
                .iter()
                .map(|warning| warning.code)
                .collect()
        }

        /// The message of the warning `code`, which holds.
        fn message(&self, code: Code) -> String {
            self.monitor
                .report()
                .warnings
                .into_iter()
                .find(|warning| warning.code == code)
                .map(|warning| warning.message)
                .unwrap_or_else(|| panic!("{code:?} holds"))
        }

        /// The codes `check` returned.
        fn raised_codes(&self) -> Vec<Code> {
            self.raised
                .iter()
                .map(|(_, warning)| warning.code)
                .collect()
        }
    }

    /// Asserts that `code` was first raised after `after` seconds and by `by` seconds.
    fn assert_first_raised_between(feed: &Feed, code: Code, after: f64, by: f64) {
        let first = feed
            .first_raised(code)
            .unwrap_or_else(|| panic!("{code:?} was raised"));
        assert!(
            first > at(after) && first <= at(by),
            "{code:?} first raised at {first:?}, expected in ({after} s, {by} s]"
        );
    }

    #[test]
    fn a_clean_two_minute_stream_raises_nothing_and_keeps_24_samples() {
        let mut feed = Feed::new(true);
        feed.monitor.metadata(Some(1000.0));
        feed.run_until(120.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
        let report = feed.monitor.report();
        assert!(report.warnings.is_empty());
        assert_eq!(report.samples.len(), 24);
        assert_eq!(report.samples[0].at, started_at() + TimeDelta::seconds(5));
        assert_eq!(
            report.samples[23].at,
            started_at() + TimeDelta::seconds(120)
        );
        for sample in &report.samples {
            assert!((950.0..1050.0).contains(&sample.video_kbps), "{sample:?}");
            assert!((125.0..132.0).contains(&sample.audio_kbps), "{sample:?}");
            assert!((29.6..30.4).contains(&sample.frame_rate), "{sample:?}");
            let interval = sample.keyframe_interval_s.expect("key frames every 2 s");
            assert!((interval - 2.0).abs() < 0.01, "{sample:?}");
            assert_eq!(sample.frames_dropped, 0);
        }
    }

    #[test]
    fn b_frames_without_a_passthrough_rendition_raise_nothing() {
        let mut feed = Feed::new(false);
        feed.b_frames = true;
        feed.run_until(60.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn b_frames_through_a_passthrough_rendition_are_raised_at_once_and_clear_10_s_after_the_last() {
        let mut feed = Feed::new(true);
        feed.b_frames = true;
        feed.run_until(30.0);
        assert_first_raised_between(&feed, Code::BFramesPassthrough, 0.0, 0.25);
        assert_eq!(feed.raised_codes(), [Code::BFramesPassthrough]);
        assert!(feed.message(Code::BFramesPassthrough).contains("bframes=0"));
        feed.b_frames = false;
        feed.run_until(39.5);
        assert_eq!(feed.active(), [Code::BFramesPassthrough]);
        feed.run_until(40.5);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised.len(), 1, "returned once while it held");
    }

    #[test]
    fn the_latest_sensible_declared_bitrate_is_kept_for_a_session_to_take_over() {
        let mut monitor = HealthMonitor::new(false, started_at());
        assert_eq!(monitor.declared_kbps(), None);
        monitor.metadata(Some(1500.0));
        monitor.metadata(Some(0.0));
        monitor.metadata(Some(f64::NAN));
        monitor.metadata(None);
        assert_eq!(monitor.declared_kbps(), Some(1500.0));
    }

    #[test]
    fn a_declared_bitrate_of_zero_or_none_is_compared_with_nothing() {
        for declared in [None, Some(0.0), Some(f64::NAN), Some(-5.0)] {
            let mut feed = Feed::new(false);
            feed.monitor.metadata(declared);
            feed.video_kbps = 6000.0;
            feed.run_until(30.0);
            assert!(
                feed.raised.is_empty(),
                "{declared:?} raised {:?}",
                feed.raised
            );
        }
    }

    #[test]
    fn millisecond_rounding_of_common_frame_rates_is_not_a_variable_frame_rate() {
        for frame_ms in [FRAME_30_FPS, 1001.0 / 30.0, 1000.0 / 60.0, 1000.0 / 25.0] {
            let mut feed = Feed::new(false);
            feed.frame_ms = vec![frame_ms];
            feed.run_until(30.0);
            assert!(
                feed.raised.is_empty(),
                "{frame_ms} ms raised {:?}",
                feed.raised
            );
        }
    }

    #[test]
    fn a_single_dropped_or_duplicated_frame_is_not_a_variable_frame_rate() {
        let mut feed = Feed::new(false);
        feed.run_until(10.0);
        feed.drop_frame();
        feed.run_until(20.0);
        feed.duplicate = true;
        feed.run_until(30.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn uneven_frame_intervals_are_raised_within_a_second_once_and_clear_when_even_again() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.frame_ms = vec![20.0, 2.0 * FRAME_30_FPS - 20.0];
        feed.run_until(40.0);
        assert_first_raised_between(&feed, Code::VariableFrameRate, 30.0, 31.0);
        assert!(feed
            .message(Code::VariableFrameRate)
            .starts_with("Frames arrive at uneven intervals (20 to 47 ms)"));
        feed.frame_ms = vec![FRAME_30_FPS];
        feed.run_until(42.5);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised_codes(), [Code::VariableFrameRate]);
    }

    #[test]
    fn a_long_key_frame_interval_is_raised_once_when_the_gap_passes_4_s_and_clears_after_two_short_ones(
    ) {
        let mut feed = Feed::new(false);
        // Key frames at 0, 2, ... 20 s; then the next one only at 30 s.
        feed.run_until(21.0);
        feed.gop_ms = 10_000.0;
        feed.run_until(24.25);
        assert_first_raised_between(&feed, Code::KeyframeIntervalLong, 24.0, 24.25);
        assert!(feed
            .message(Code::KeyframeIntervalLong)
            .starts_with("No key frame for 4.2 s; set Keyframe Interval to 2 s"));
        feed.run_until(29.0);
        assert!(feed
            .message(Code::KeyframeIntervalLong)
            .starts_with("No key frame for 9.0 s"));
        feed.run_until(31.0);
        assert_eq!(
            feed.message(Code::KeyframeIntervalLong),
            "Key frames arrive every 10.0 s; set Keyframe Interval to 2 s in OBS → Settings → \
             Output."
        );
        // Key frames at 32 and 34 s again.
        feed.gop_ms = 2000.0;
        feed.run_until(33.9);
        assert_eq!(feed.active(), [Code::KeyframeIntervalLong]);
        feed.run_until(34.25);
        assert!(feed.active().is_empty());
        feed.run_until(60.0);
        assert_eq!(feed.raised_codes(), [Code::KeyframeIntervalLong]);
    }

    #[test]
    fn irregular_key_frames_are_raised_at_the_interval_that_breaks_the_rhythm_and_clear_after_five_regular_ones(
    ) {
        let mut feed = Feed::new(false);
        feed.run_until(20.5);
        // A scene cut: key frames at 20, 20.5, 22.5, 24.5... s.
        feed.force_key = true;
        feed.run_until(30.25);
        assert_first_raised_between(&feed, Code::KeyframeIntervalIrregular, 20.4, 20.75);
        assert!(feed
            .message(Code::KeyframeIntervalIrregular)
            .starts_with("Key frames arrive at uneven intervals (0.5 to 2.0 s)"));
        assert_eq!(feed.active(), [Code::KeyframeIntervalIrregular]);
        feed.run_until(30.75);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised_codes(), [Code::KeyframeIntervalIrregular]);
    }

    #[test]
    fn a_short_first_key_frame_interval_is_not_irregular() {
        let mut feed = Feed::new(false);
        // Key frames at 0, 0.8, 2.8, 4.8... s.
        feed.run_until(0.8);
        feed.force_key = true;
        feed.run_until(30.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn a_bitrate_far_from_the_declared_one_is_raised_once_4_s_of_video_arrived() {
        for (kbps, code) in [
            (3000.0, Code::BitrateAboveDeclared),
            (300.0, Code::BitrateBelowDeclared),
        ] {
            let mut feed = Feed::new(false);
            feed.monitor.metadata(Some(1000.0));
            feed.video_kbps = kbps;
            feed.run_until(30.0);
            assert_first_raised_between(&feed, code, 4.0, 4.5);
            assert_eq!(feed.raised_codes(), [code]);
            let message = feed.message(code);
            assert!(message.contains(&format!("{kbps:.0} kb/s")), "{message}");
            assert!(message.contains("1000 kb/s"), "{message}");
            assert!(message.contains("CBR"), "{message}");
        }
    }

    #[test]
    fn a_bitrate_rising_far_above_the_declared_one_mid_stream_is_raised_within_a_key_frame_interval(
    ) {
        let mut feed = Feed::new(false);
        feed.monitor.metadata(Some(1000.0));
        feed.run_until(30.0);
        feed.video_kbps = 5000.0;
        feed.run_until(40.0);
        assert_first_raised_between(&feed, Code::BitrateAboveDeclared, 30.0, 32.0);
        assert_eq!(feed.times_raised(Code::BitrateAboveDeclared), 1);
        feed.video_kbps = 1000.0;
        feed.run_until(45.0);
        assert!(!feed.active().contains(&Code::BitrateAboveDeclared));
    }

    #[test]
    fn a_one_second_bitrate_spike_is_raised_during_that_second_and_clears_10_s_after() {
        let mut feed = Feed::new(false);
        feed.video_kbps = 2000.0;
        feed.run_until(30.0);
        feed.video_kbps = 8000.0;
        feed.run_until(31.0);
        feed.video_kbps = 2000.0;
        feed.run_until(40.5);
        assert_first_raised_between(&feed, Code::BitrateSpike, 30.0, 31.0);
        assert_eq!(feed.active(), [Code::BitrateSpike]);
        assert!(feed.message(Code::BitrateSpike).contains("CBR"));
        feed.run_until(41.5);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised_codes(), [Code::BitrateSpike]);
    }

    #[test]
    fn the_large_key_frames_of_a_static_picture_are_no_spike() {
        // Constant quality on a still picture: 3 s groups of pictures spending 80% of their
        // bits on the key frame, whose seconds carry 10 times the others.
        let mut feed = Feed::new(false);
        feed.video_kbps = 400.0;
        feed.gop_ms = 3000.0;
        feed.key_weight = 350.0;
        feed.run_until(60.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn a_tiny_stream_does_not_spike() {
        let mut feed = Feed::new(false);
        feed.video_kbps = 20.0;
        feed.run_until(30.0);
        feed.video_kbps = 200.0;
        feed.run_until(31.0);
        feed.video_kbps = 20.0;
        feed.run_until(40.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn the_first_audio_configuration_and_identical_repeats_are_no_change() {
        let mut feed = Feed::new(false);
        feed.run_until(10.0);
        feed.monitor.track(&aac(48_000, 2), at(10.0));
        feed.run_until(20.0);
        feed.monitor.track(&aac(48_000, 2), at(20.0));
        feed.run_until(30.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
    }

    #[test]
    fn a_changed_audio_format_names_both_and_clears_after_30_s() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.monitor.track(&aac(44_100, 1), at(30.0));
        feed.run_until(59.75);
        assert_first_raised_between(&feed, Code::AudioFormatChanged, 29.9, 30.25);
        assert!(feed
            .message(Code::AudioFormatChanged)
            .contains("(48000 Hz stereo → 44100 Hz mono)"));
        assert_eq!(feed.active(), [Code::AudioFormatChanged]);
        feed.run_until(60.25);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised_codes(), [Code::AudioFormatChanged]);
    }

    #[test]
    fn a_timestamp_jump_forward_is_raised_at_once_alone_and_clears_after_30_s() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.video_shift_ms += 10_000;
        feed.audio_shift_ms += 10_000;
        feed.run_until(59.75);
        assert_first_raised_between(&feed, Code::TimestampJump, 30.0, 30.25);
        assert!(feed
            .message(Code::TimestampJump)
            .contains("timestamps jumped forward by 10.0 s; restart the encoder"));
        feed.run_until(60.5);
        assert!(feed.active().is_empty());
        // Bridged, the jump is no long key frame interval, stall or spike.
        assert_eq!(feed.raised_codes(), [Code::TimestampJump]);
    }

    #[test]
    fn a_problem_that_comes_back_is_announced_again_only_after_the_cooldown() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.video_shift_ms += 10_000;
        feed.audio_shift_ms += 10_000;
        feed.run_until(100.0);
        // Cleared after 30 s, back at 100 s: shown, not announced again.
        feed.video_shift_ms += 10_000;
        feed.audio_shift_ms += 10_000;
        feed.run_until(101.0);
        assert_eq!(feed.active(), [Code::TimestampJump]);
        assert_eq!(feed.times_raised(Code::TimestampJump), 1);
        // Back once the cooldown since the announcement is over: announced.
        feed.run_until(30.0 + ANNOUNCE_COOLDOWN.as_secs_f64() + 1.0);
        feed.video_shift_ms += 10_000;
        feed.audio_shift_ms += 10_000;
        feed.run_until(30.0 + ANNOUNCE_COOLDOWN.as_secs_f64() + 2.0);
        assert_eq!(feed.times_raised(Code::TimestampJump), 2);
    }

    #[test]
    fn audio_timestamps_going_back_are_a_jump() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.audio_shift_ms -= 3_000;
        feed.run_until(40.0);
        assert_first_raised_between(&feed, Code::TimestampJump, 30.0, 30.25);
        assert_eq!(
            feed.message(Code::TimestampJump),
            "Audio timestamps jumped back by 3.0 s; restart the encoder, or check its source (a \
             media source that loops or restarts, a capture device that drops out)."
        );
        assert_eq!(feed.raised_codes(), [Code::TimestampJump]);
    }

    #[test]
    fn media_arriving_slower_than_real_time_is_a_stall_that_clears_once_it_keeps_up() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        // A quarter of real time: the 5 s window falls under half after 3.3 s.
        feed.set_speed(0.25);
        feed.run_until(50.0);
        assert_first_raised_between(&feed, Code::TimestampStall, 33.0, 34.0);
        assert!(feed
            .message(Code::TimestampStall)
            .starts_with("Only 25% of real time arrived over the last 5 s"));
        feed.set_speed(1.0);
        feed.run_until(56.0);
        assert!(feed.active().is_empty());
        assert_eq!(feed.raised_codes(), [Code::TimestampStall]);
    }

    #[test]
    fn frames_dropped_by_the_ladder_are_raised_at_once_counted_over_5_s_and_clear_after_10_s() {
        let mut feed = Feed::new(false);
        for second in 1..=20 {
            feed.run_until(f64::from(second));
            feed.monitor.frames_dropped(0, at(f64::from(second)));
        }
        assert!(feed.raised.is_empty());
        feed.monitor.frames_dropped(3, at(20.0));
        feed.run_until(21.0);
        assert_first_raised_between(&feed, Code::FramesDropped, 20.0, 20.25);
        feed.monitor.frames_dropped(5, at(21.0));
        assert!(feed
            .message(Code::FramesDropped)
            .starts_with("The server dropped 5 frames in the last 5 s"));
        feed.run_until(30.75);
        assert_eq!(feed.active(), [Code::FramesDropped]);
        feed.run_until(31.25);
        assert!(feed.active().is_empty());
        let sample = &feed.monitor.report().samples[4];
        assert_eq!(sample.at, started_at() + TimeDelta::seconds(25));
        assert_eq!(sample.frames_dropped, 5);
        // A ladder that starts counting again (a returning publisher's) counts from 0: its
        // first drop is a drop, shown again but not announced again within the cooldown.
        feed.monitor.frames_dropped(1, at(31.25));
        feed.run_until(32.0);
        assert_eq!(feed.active(), [Code::FramesDropped]);
        assert_eq!(feed.times_raised(Code::FramesDropped), 1);
        feed.monitor.frames_dropped(2, at(32.0));
        assert!(feed
            .message(Code::FramesDropped)
            .starts_with("The server dropped 2 frames in the last 5 s"));
    }

    #[test]
    fn the_report_lists_warnings_oldest_first_with_when_they_were_first_seen() {
        let mut feed = Feed::new(true);
        feed.run_until(5.0);
        feed.monitor.frames_dropped(1, at(5.0));
        feed.run_until(8.0);
        feed.monitor.track(&aac(44_100, 2), at(8.0));
        feed.b_frames = true;
        feed.run_until(12.0);
        feed.monitor.frames_dropped(2, at(12.0));
        let warnings = feed.monitor.report().warnings;
        let codes: Vec<Code> = warnings.iter().map(|warning| warning.code).collect();
        assert_eq!(
            codes,
            [
                Code::FramesDropped,
                Code::AudioFormatChanged,
                Code::BFramesPassthrough
            ]
        );
        assert_eq!(warnings[0].since, started_at() + TimeDelta::seconds(5));
        assert_eq!(warnings[1].since, started_at() + TimeDelta::seconds(8));
        // At the first frame after 8 s.
        let b_frames_after = warnings[2].since - started_at();
        assert!(
            b_frames_after > TimeDelta::seconds(8)
                && b_frames_after <= TimeDelta::milliseconds(8_034),
            "{b_frames_after}"
        );
    }

    #[test]
    fn a_returning_publisher_whose_timestamps_start_again_raises_nothing() {
        let mut feed = Feed::new(false);
        feed.run_until(30.0);
        feed.reconnect(3.0);
        feed.run_until(90.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
        assert_eq!(feed.monitor.report().samples.len(), 18);
    }

    #[test]
    fn a_publisher_that_is_gone_is_neither_stalled_nor_below_its_declared_bitrate() {
        let mut feed = Feed::new(false);
        feed.monitor.metadata(Some(1000.0));
        feed.run_until(30.0);
        // The session keeps checking while it waits for the publisher to come back.
        for quarter in 121..=240 {
            let now = Duration::from_millis(quarter * 250);
            assert_eq!(feed.monitor.check(now), [], "at {now:?}");
        }
        assert!(feed.active().is_empty());
        assert_eq!(feed.monitor.report().samples.len(), 12);
    }

    #[test]
    fn an_hour_of_stream_keeps_its_windows_and_samples_bounded() {
        let mut feed = Feed::new(false);
        feed.run_until(3600.0);
        assert!(feed.raised.is_empty(), "raised {:?}", feed.raised);
        let monitor = &feed.monitor;
        assert_eq!(monitor.samples.kept.len(), SAMPLES_KEPT);
        assert_eq!(
            monitor.report().samples[SAMPLES_KEPT - 1].at,
            started_at() + TimeDelta::seconds(3600)
        );
        assert!(monitor.video.frames.len() <= 62);
        assert_eq!(monitor.video.intervals.len(), KEYFRAME_INTERVALS_KEPT);
    }

    #[test]
    fn a_flood_of_frames_at_one_time_keeps_the_frame_window_bounded() {
        let mut monitor = HealthMonitor::new(false, started_at());
        for _ in 0..10_000 {
            monitor.packet(&video_packet(0, 0, false, 10), at(1.0));
        }
        assert_eq!(monitor.video.frames.len(), FRAME_WINDOW_MAX);
        assert!(monitor.check(at(2.0)).is_empty());
    }

    #[test]
    fn hostile_timestamps_and_clocks_neither_panic_nor_grow_memory() {
        let mut monitor = HealthMonitor::new(true, started_at());
        monitor.metadata(Some(f64::MAX));
        let mut packets = Vec::new();
        for dts in [i64::MIN, i64::MAX, 0, i64::MIN + 1, -1, i64::MAX - 1] {
            packets.push(video_packet(
                dts,
                i64::MAX.wrapping_sub(dts),
                dts % 2 == 0,
                1,
            ));
            packets.push(Packet {
                kind: TrackKind::Audio,
                timebase: Timebase(1),
                dts,
                pts: dts,
                keyframe: true,
                data: Bytes::new(),
            });
            packets.push(Packet {
                timebase: Timebase(0),
                ..video_packet(dts, dts, true, 1)
            });
        }
        for (index, packet) in packets.iter().enumerate() {
            monitor.packet(packet, at(index as f64));
            monitor.frames_dropped(u64::MAX - index as u64, at(1.0));
            monitor.check(at(0.5));
        }
        monitor.packet(&packets[0], Duration::MAX);
        monitor.frames_dropped(u64::MAX, Duration::MAX);
        monitor.track(&aac(8_000, 7), Duration::MAX);
        monitor.check(Duration::MAX);
        let report = monitor.report();
        assert_eq!(report.samples.len(), SAMPLES_KEPT);
        assert!(report.warnings.len() <= 11);
        assert!(monitor.video.frames.len() <= FRAME_WINDOW_MAX);
    }
}
