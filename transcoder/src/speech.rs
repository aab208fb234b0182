//! Audio for speech recognition: 16 kHz mono `f32` samples (packed, −1..1), the form every
//! `sluice-transcribe` engine takes, decoded once per stream by libavcodec and resampled and
//! downmixed by libswresample.
//!
//! Two sources:
//!
//! - **A file** ([`decode_speech_audio`], [`decode_speech_audio_with`]): any container the probe
//!   accepts and any audio codec libavcodec decodes. The best audio stream (or a given one) is
//!   decoded from start to end and the samples are handed to a callback in chunks of at most
//!   [`MAX_CHUNK_SAMPLES`] ([`SpeechChunk`], which also says how far the decoding got), so a
//!   two-hour file never sits whole in memory: what is held at any time is one chunk, one
//!   decoded frame and the resampler's few milliseconds. The callback may stop the decoding
//!   early ([`ControlFlow::Break`]).
//! - **Live packets** ([`LiveSpeechAudio`]): AAC frames as the live core carries them (raw
//!   frames, [`Packet`], with their [`AudioSpecificConfig`]; MP3 and Opus publishers reach the
//!   packaging thread as AAC too), or Opus packets (a room participant's microphone, whose
//!   packets are not transcoded). Each packet gives back its 16 kHz samples with the media time
//!   of the first one ([`SpeechSamples`]).
//!
//! # The file timeline
//!
//! Sample `i` of a file's speech audio is at media time `i / 16000` s, where media time 0 is the
//! start of the file as a player shows it:
//!
//! - the origin is the container's start time (libavformat's `start_time`: the earliest first
//!   timestamp over the file's streams), or the audio stream's own start time when the container
//!   does not know it, or else the first decoded frame; a negative start counts as 0 (samples
//!   timed before 0 are encoder priming or Opus pre-skip, which decoders discard, as
//!   Matroska's Opus shows). For an audio-only file this is the audio
//!   stream's first presentation time; audio that starts after the video (an MP4 edit list,
//!   `-itsoffset`) therefore begins with that much silence, so recognised lines line up with the
//!   video. [`SpeechAudio::origin_s`] gives the origin on the file's own clock;
//! - each decoded frame belongs at `(pts − origin) × 16000`. The first frame is placed exactly;
//!   after that a frame more than [`TIMESTAMP_TOLERANCE`] later than where the previous one ended
//!   leaves a gap, filled with silence, and one more than that tolerance earlier overlaps, and
//!   the overlapping samples are dropped (as are samples before the origin, such as an encoder's
//!   priming that no edit list removes). Within the tolerance, samples are taken as contiguous;
//! - timestamps that cannot be right are a clock jump, not a gap: a forward leap past the end
//!   the file declares (by more than 10 %, and at least [`END_SLACK`]), or longer than
//!   [`MAX_FILL_WITHOUT_END`] when the file declares no end, and a leap back of more than
//!   [`MAX_OVERLAP_DROP`]. The audio then carries on contiguously and the clock is re-anchored
//!   there ([`SpeechAudio::clock_jumps`]); every later time keeps the jump's offset.
//!
//! Silence and drops are applied to the resampled samples at the positions where they belong,
//! so nothing is resampled twice and the resampler's own delay does not shift them.
//!
//! # Live timestamps
//!
//! [`LiveSpeechAudio`] fills no gaps: each call returns the samples that became ready with the
//! time of the first one (the packet's pts in seconds, on the packet's own clock, carried
//! through the decoder and the resampler), so a caller that feeds a speech stream maps the
//! stream's times back to media times with it. A new [`AudioSpecificConfig`] (a publisher that
//! reconnected with other settings) reopens the decoder; the resampler's last fraction of a
//! millisecond of the old configuration is dropped. The only buffers it holds are one packet's
//! samples and a handful of time anchors.
//!
//! Everything here is blocking CPU work for a thread the caller owns, and little of it:
//! ten minutes of 48 kHz stereo AAC decode and resample in under half a second of CPU.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next::codec::{self, decoder};
use ffmpeg_next::format::{sample::Type as SampleType, Sample};
use ffmpeg_next::software::resampling;
use ffmpeg_next::{frame, media, ChannelLayout, Rational};
use sluice_media::{AudioSpecificConfig, Packet, Timebase};
use tracing::debug;

use crate::audio::{open_opus_decoder, receive_audio_frame};
use crate::probe::{self, ProbeError, ProbeLimits};
use crate::TranscodeError;

/// Samples per second of speech audio.
pub const SPEECH_SAMPLE_RATE: u32 = 16_000;
/// The most samples one [`SpeechChunk`] holds: one second.
pub const MAX_CHUNK_SAMPLES: usize = SPEECH_SAMPLE_RATE as usize;
/// How far a file's frame may sit from where the previous one ended before the difference is
/// a gap (filled with silence) or an overlap (dropped): more than the millisecond rounding of
/// FLV and Matroska timestamps, less than anything a listener or a caption would notice.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(10);
/// The longest overlap dropped; a frame further back than this is a clock jump.
pub const MAX_OVERLAP_DROP: Duration = Duration::from_secs(10);
/// The longest gap filled with silence in a file that declares no duration; a longer leap is a
/// clock jump.
pub const MAX_FILL_WITHOUT_END: Duration = Duration::from_secs(600);
/// How far past the end a file declares (besides 10 % of it) a gap may reach and still be
/// filled: declared durations are often estimates.
pub const END_SLACK: Duration = Duration::from_secs(10);

/// Packed (interleaved) `f32`: with one channel, a plain slice of samples.
const SPEECH_FORMAT: Sample = Sample::F32(SampleType::Packed);
/// Errors in a row from the demuxer before reading gives up.
const MAX_READ_ERRORS: u32 = 32;
/// Time anchors [`LiveSpeechAudio`] keeps at most (one per decoded frame still in flight).
const MAX_ANCHORS: usize = 64;
/// The clock packets are handed to the live decoder in.
const MICROS: Timebase = Timebase(1_000_000);

/// Why a file's speech audio cannot be decoded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpeechAudioError {
    /// The file cannot be read from the file system.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not media the probe accepts (unknown, damaged, refused container, over a
    /// limit).
    #[error("{path} cannot be opened as media: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: ProbeError,
    },
    /// The file has no audio stream: there is nothing to transcribe.
    #[error("{path} has no audio stream")]
    NoAudio { path: PathBuf },
    /// The stream asked for does not exist or is not audio.
    #[error("{path} has no audio stream at index {index}")]
    NotAudio { path: PathBuf, index: usize },
    /// The audio cannot be decoded: no decoder for its codec, or not one frame decoded.
    #[error("the {codec} audio of {path} cannot be decoded: {reason}")]
    Undecodable {
        path: PathBuf,
        codec: String,
        reason: String,
    },
    /// Reading the file failed part way.
    #[error("reading {path} failed after {seconds:.1} s of audio: {source}")]
    Read {
        path: PathBuf,
        seconds: f64,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// libswresample refused the decoded audio.
    #[error("resampling the audio of {path}: {source}")]
    Resample {
        path: PathBuf,
        #[source]
        source: ffmpeg_next::Error,
    },
}

/// Which audio of a file to decode, and the limits the file is held to.
#[derive(Clone, Debug, Default)]
pub struct SpeechAudioOptions {
    /// The audio stream's index in the container; `None` picks the best one (libavformat's
    /// choice, as the probe reports it).
    pub stream: Option<usize>,
    /// What the file may be, as for transcoding ([`ProbeLimits::default`] by default).
    pub limits: ProbeLimits,
}

/// Consecutive speech samples from a file, handed to the caller's callback.
#[derive(Clone, Copy, Debug)]
pub struct SpeechChunk<'a> {
    /// At most [`MAX_CHUNK_SAMPLES`] samples, 16 kHz mono, −1..1.
    pub samples: &'a [f32],
    /// Index of the first sample on the file's timeline (its media time × 16000).
    pub start_sample: u64,
    /// How many samples the whole file should give, when its audio stream or container says
    /// how long it is.
    pub expected_samples: Option<u64>,
}

impl SpeechChunk<'_> {
    /// Media time of the first sample, in seconds.
    pub fn start_s(&self) -> f64 {
        self.start_sample as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }

    /// Samples given so far, this chunk included.
    pub fn samples_done(&self) -> u64 {
        self.start_sample + self.samples.len() as u64
    }

    /// The fraction of the file decoded so far (0..=1), when its duration is known.
    pub fn progress(&self) -> Option<f64> {
        self.expected_samples
            .filter(|&total| total > 0)
            .map(|total| (self.samples_done() as f64 / total as f64).min(1.0))
    }
}

/// What decoding a file's speech audio gave.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechAudio {
    /// The audio stream decoded (its index in the container).
    pub stream_index: usize,
    /// libavcodec's name of its codec (`aac`, `mp3`, `opus`, …).
    pub codec: String,
    /// Samples handed to the callback.
    pub samples: u64,
    /// Their duration: `samples / 16000` s.
    pub duration: Duration,
    /// The samples the file's declared duration promised, when it declares one.
    pub expected_samples: Option<u64>,
    /// Media time 0 on the file's own clock, in seconds (see the module documentation).
    pub origin_s: f64,
    /// Samples of silence put in gaps (leading silence included).
    pub silence_samples: u64,
    /// Samples dropped because they overlapped earlier ones or came before the origin.
    pub dropped_samples: u64,
    /// Timestamp leaps taken as clock jumps (not filled, not dropped).
    pub clock_jumps: u32,
    /// Packets or frames that did not decode and were skipped.
    pub decode_errors: u64,
    /// False when the callback stopped the decoding before the end.
    pub complete: bool,
}

/// Decodes the best audio stream of the file at `path` into 16 kHz mono samples, handed to
/// `on_chunk` in order, in chunks of at most [`MAX_CHUNK_SAMPLES`]; see
/// [`decode_speech_audio_with`].
pub fn decode_speech_audio(
    path: &Path,
    on_chunk: impl FnMut(SpeechChunk<'_>) -> ControlFlow<()>,
) -> Result<SpeechAudio, SpeechAudioError> {
    decode_speech_audio_with(path, &SpeechAudioOptions::default(), on_chunk)
}

/// Decodes an audio stream of the file at `path` (probed against `options.limits` first, as a
/// transcode is) into 16 kHz mono samples on the timeline the module documentation describes,
/// handing them to `on_chunk` in order, in chunks of at most [`MAX_CHUNK_SAMPLES`]. Returning
/// [`ControlFlow::Break`] from `on_chunk` stops the decoding; the result then says it is not
/// complete. Packets that do not decode are skipped and counted; a stream of which nothing
/// decodes is [`SpeechAudioError::Undecodable`].
pub fn decode_speech_audio_with<F>(
    path: &Path,
    options: &SpeechAudioOptions,
    on_chunk: F,
) -> Result<SpeechAudio, SpeechAudioError>
where
    F: FnMut(SpeechChunk<'_>) -> ControlFlow<()>,
{
    let (mut input, report) = probe::open(path, &options.limits).map_err(|e| match e {
        ProbeError::Read { path, source } => SpeechAudioError::Io { path, source },
        ProbeError::NoMediaStreams => SpeechAudioError::NoAudio {
            path: path.to_owned(),
        },
        source => SpeechAudioError::Open {
            path: path.to_owned(),
            source,
        },
    })?;
    let index = match options.stream {
        Some(index) => index,
        None => report
            .audio
            .as_ref()
            .map(|audio| audio.index)
            .ok_or_else(|| SpeechAudioError::NoAudio {
                path: path.to_owned(),
            })?,
    };
    let stream = input
        .stream(index)
        .filter(|stream| stream.parameters().medium() == media::Type::Audio)
        .ok_or_else(|| SpeechAudioError::NotAudio {
            path: path.to_owned(),
            index,
        })?;
    let parameters = stream.parameters();
    let codec = parameters.id().name().to_owned();
    let clock = Clock::new(stream.time_base());
    let stream_start = known(stream.start_time()).map(|ticks| clock.seconds(ticks));
    let stream_duration = known(stream.duration())
        .filter(|&ticks| ticks > 0)
        .map(|ticks| clock.seconds(ticks));
    // SAFETY: plain reads of the open input's own fields.
    let (container_start, container_duration) = unsafe {
        let raw = input.as_ptr();
        ((*raw).start_time, (*raw).duration)
    };
    let container_start = known(container_start).map(|micros| micros as f64 / 1e6);
    let container_duration = known(container_duration)
        .filter(|&micros| micros > 0)
        .map(|micros| micros as f64 / 1e6);
    // Times before 0 belong to samples decoders discard (AAC priming, Opus pre-skip): a file
    // that starts there starts at 0 as it plays.
    let origin = container_start.or(stream_start).map(|start| start.max(0.0));
    let expected_end = match (stream_duration, container_duration) {
        // Without a start time (WAV), the stream starts at the origin: its first frame.
        (Some(duration), _) => Some(match (stream_start, origin) {
            (Some(start), Some(origin)) => start + duration - origin,
            _ => duration,
        }),
        (None, Some(duration)) => Some(duration),
        (None, None) => None,
    };
    let expected_samples = expected_end
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(|seconds| (seconds * f64::from(SPEECH_SAMPLE_RATE)).round() as u64);

    let undecodable = |reason: String| SpeechAudioError::Undecodable {
        path: path.to_owned(),
        codec: codec.clone(),
        reason,
    };
    let mut decoder = open_file_decoder(parameters, stream.time_base())
        .map_err(|e| undecodable(e.to_string()))?;

    let mut file = FileSpeech {
        resampler: MonoResampler::default(),
        timeline: Timeline::new(on_chunk, expected_samples),
        clock,
        origin,
        decode_errors: 0,
        frames: 0,
    };
    let resample_error = |source| SpeechAudioError::Resample {
        path: path.to_owned(),
        source,
    };
    let mut read_errors = 0;
    while !file.timeline.stopped {
        // A fresh packet each time: `av_read_frame` overwrites a packet's reference without
        // releasing it, so reusing one would leak every packet read.
        let mut packet = ffmpeg_next::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => read_errors = 0,
            Err(ffmpeg_next::Error::Eof) => break,
            Err(ffmpeg_next::Error::Other { errno }) if errno == ffmpeg_next::error::EAGAIN => {
                continue
            }
            Err(source) => {
                read_errors += 1;
                if read_errors < MAX_READ_ERRORS {
                    continue;
                }
                return Err(SpeechAudioError::Read {
                    path: path.to_owned(),
                    seconds: file.timeline.written as f64 / f64::from(SPEECH_SAMPLE_RATE),
                    source,
                });
            }
        }
        if packet.stream() != index {
            continue;
        }
        if let Err(e) = decoder.send_packet(&packet) {
            file.decode_errors += 1;
            debug!(path = %path.display(), error = %e, "Audio packet skipped: it does not decode.");
            continue;
        }
        file.drain(&mut decoder).map_err(resample_error)?;
    }
    if !file.timeline.stopped {
        // Sending EOF only fails if it was already sent; the frames come out either way.
        let _ = decoder.send_eof();
        file.drain(&mut decoder).map_err(resample_error)?;
        let timeline = &mut file.timeline;
        file.resampler
            .flush(&mut |samples| timeline.take(samples))
            .map_err(resample_error)?;
        file.timeline.finish();
    }
    if file.frames == 0 && file.decode_errors > 0 {
        return Err(undecodable(format!(
            "none of its packets decoded ({} failed)",
            file.decode_errors
        )));
    }
    let timeline = file.timeline;
    Ok(SpeechAudio {
        stream_index: index,
        codec,
        samples: timeline.written,
        duration: Duration::from_secs_f64(timeline.written as f64 / f64::from(SPEECH_SAMPLE_RATE)),
        expected_samples,
        origin_s: file.origin.unwrap_or(0.0),
        silence_samples: timeline.silence_samples,
        dropped_samples: timeline.dropped_samples,
        clock_jumps: timeline.clock_jumps,
        decode_errors: file.decode_errors,
        complete: !timeline.stopped,
    })
}

/// `Some(value)` unless libav* says "no value" (`AV_NOPTS_VALUE`).
fn known(value: i64) -> Option<i64> {
    (value != ffmpeg_next::ffi::AV_NOPTS_VALUE).then_some(value)
}

/// A stream's clock, for turning its ticks into seconds.
#[derive(Clone, Copy)]
struct Clock {
    numerator: f64,
    denominator: f64,
}

impl Clock {
    fn new(time_base: Rational) -> Self {
        Clock {
            numerator: f64::from(time_base.numerator()),
            denominator: f64::from(time_base.denominator().max(1)),
        }
    }

    fn seconds(self, ticks: i64) -> f64 {
        ticks as f64 * self.numerator / self.denominator
    }
}

/// Opens the decoder of a file's audio stream from its codec parameters; frames keep the
/// stream's clock (`pkt_timebase`), so skipped priming moves their timestamps as it should.
fn open_file_decoder(
    parameters: codec::Parameters,
    time_base: Rational,
) -> Result<decoder::Audio, ffmpeg_next::Error> {
    crate::init_ffmpeg();
    if decoder::find(parameters.id()).is_none() {
        return Err(ffmpeg_next::Error::DecoderNotFound);
    }
    let mut context = codec::Context::from_parameters(parameters)?;
    // SAFETY: a plain field write on a context we own that has not been opened yet.
    unsafe {
        (*context.as_mut_ptr()).pkt_timebase = time_base.into();
    }
    context.decoder().audio()
}

/// The reading side of a file's decoding: decoded frames placed on the timeline.
struct FileSpeech<F> {
    resampler: MonoResampler,
    timeline: Timeline<F>,
    clock: Clock,
    /// Media time 0 on the stream's clock, in seconds; `None` until the first frame when
    /// neither the container nor the stream says.
    origin: Option<f64>,
    decode_errors: u64,
    frames: u64,
}

impl<F: FnMut(SpeechChunk<'_>) -> ControlFlow<()>> FileSpeech<F> {
    /// Takes every frame the decoder has ready and places it on the timeline.
    fn drain(&mut self, decoder: &mut decoder::Audio) -> Result<(), ffmpeg_next::Error> {
        let mut decoded = frame::Audio::empty();
        while !self.timeline.stopped
            && receive_audio_frame(decoder, &mut decoded, &mut self.decode_errors, "audio")
        {
            if decoded.samples() == 0 || decoded.rate() == 0 {
                continue;
            }
            self.frames += 1;
            let length = decoded.samples() as f64 * f64::from(SPEECH_SAMPLE_RATE)
                / f64::from(decoded.rate());
            let at = decoded.pts().or(decoded.timestamp()).map(|ticks| {
                let seconds = self.clock.seconds(ticks);
                let origin = *self.origin.get_or_insert(seconds);
                (seconds - origin) * f64::from(SPEECH_SAMPLE_RATE)
            });
            if self.timeline.place(at, length) == Placement::Skip {
                continue;
            }
            let timeline = &mut self.timeline;
            self.resampler
                .convert(&mut decoded, &mut |samples| timeline.take(samples))?;
            timeline.raw_fed += length;
        }
        Ok(())
    }
}

/// What becomes of a decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Resample it (gaps and overlaps are queued as edits).
    Feed,
    /// It lies wholly over audio already taken: drop it.
    Skip,
}

/// A change to the resampled samples at a position counted in resampler output.
#[derive(Clone, Copy, Debug)]
enum Edit {
    Silence(u64),
    Drop(u64),
}

/// A file's timeline: where resampled samples go, with gaps filled and overlaps dropped, cut
/// into chunks for the caller.
///
/// Positions come in two counts: "raw", samples as they leave the resampler (which aligns its
/// output with its input, holding back the few it cannot compute yet), and the timeline, raw
/// plus the silence put in less the samples dropped. A frame's place is decided when it is fed
/// (in raw terms, where its first sample will come out) and applied when the resampler gets
/// there.
struct Timeline<F> {
    on_chunk: F,
    chunk: Vec<f32>,
    expected_samples: Option<u64>,
    /// Timeline samples given to the caller or waiting in `chunk`.
    written: u64,
    /// Raw samples out of the resampler so far.
    raw_out: u64,
    /// Raw position of the next sample fed to the resampler.
    raw_fed: f64,
    /// Timeline position minus raw position, every queued edit counted.
    shift: i64,
    /// Edits not yet reached by the resampler's output, in order (a few at most: the output
    /// lags the input by milliseconds).
    edits: VecDeque<(u64, Edit)>,
    /// Raw samples still to drop.
    dropping: u64,
    /// Subtracted from frame positions since the last clock jump.
    jump_offset: f64,
    /// Whether a frame has been fed yet (the first one is placed exactly).
    started: bool,
    /// The caller asked to stop.
    stopped: bool,
    silence_samples: u64,
    dropped_samples: u64,
    clock_jumps: u32,
}

impl<F: FnMut(SpeechChunk<'_>) -> ControlFlow<()>> Timeline<F> {
    fn new(on_chunk: F, expected_samples: Option<u64>) -> Self {
        Timeline {
            on_chunk,
            chunk: Vec::with_capacity(MAX_CHUNK_SAMPLES),
            expected_samples,
            written: 0,
            raw_out: 0,
            raw_fed: 0.0,
            shift: 0,
            edits: VecDeque::new(),
            dropping: 0,
            jump_offset: 0.0,
            started: false,
            stopped: false,
            silence_samples: 0,
            dropped_samples: 0,
            clock_jumps: 0,
        }
    }

    /// Decides where a frame of `length` samples (at 16 kHz) that belongs at timeline
    /// position `at` goes, queueing the silence or the drop that puts it there.
    fn place(&mut self, at: Option<f64>, length: f64) -> Placement {
        let first = !self.started;
        let Some(at) = at.map(|at| at - self.jump_offset) else {
            self.started = true;
            return Placement::Feed;
        };
        let fed = self.raw_fed + self.shift as f64;
        let difference = at - fed;
        let tolerance = if first {
            0.5
        } else {
            samples_in(TIMESTAMP_TOLERANCE)
        };
        if difference > tolerance {
            if self.believable_end(at) {
                let gap = difference.round() as u64;
                self.queue(Edit::Silence(gap));
                self.shift += gap as i64;
            } else {
                self.jump(difference);
            }
        } else if difference < -tolerance {
            let overlap = -difference;
            if overlap > samples_in(MAX_OVERLAP_DROP) && !first {
                self.jump(difference);
            } else if overlap >= length {
                self.dropped_samples += length.round() as u64;
                // The frame is not fed: its length is not counted, so the timeline is unchanged.
                return Placement::Skip;
            } else {
                let overlap = overlap.round() as u64;
                self.queue(Edit::Drop(overlap));
                self.shift -= overlap as i64;
            }
        }
        self.started = true;
        Placement::Feed
    }

    /// Whether a gap that ends at timeline position `at` is believable (not a clock jump).
    fn believable_end(&self, at: f64) -> bool {
        match self.expected_samples {
            Some(expected) => {
                let slack = (expected as f64 / 10.0).max(samples_in(END_SLACK));
                at <= expected as f64 + slack
            }
            None => at - (self.raw_fed + self.shift as f64) <= samples_in(MAX_FILL_WITHOUT_END),
        }
    }

    fn jump(&mut self, difference: f64) {
        debug!(
            seconds = difference / f64::from(SPEECH_SAMPLE_RATE),
            "Audio clock jumped; the speech audio carries on contiguously."
        );
        self.jump_offset += difference;
        self.clock_jumps += 1;
    }

    fn queue(&mut self, edit: Edit) {
        let at = self.raw_fed.round().max(0.0) as u64;
        self.edits.push_back((at, edit));
    }

    /// Takes samples from the resampler, applying the edits they reach.
    fn take(&mut self, mut samples: &[f32]) {
        while !samples.is_empty() && !self.stopped {
            if self.dropping > 0 {
                let count = samples
                    .len()
                    .min(usize::try_from(self.dropping).unwrap_or(usize::MAX));
                samples = &samples[count..];
                self.raw_out += count as u64;
                self.dropping -= count as u64;
                self.dropped_samples += count as u64;
                continue;
            }
            if self.apply_due_edit() {
                continue;
            }
            let until = self.edits.front().map_or(samples.len(), |&(at, _)| {
                usize::try_from(at - self.raw_out)
                    .unwrap_or(usize::MAX)
                    .min(samples.len())
            });
            self.emit(&samples[..until]);
            self.raw_out += until as u64;
            samples = &samples[until..];
        }
    }

    /// Applies the first queued edit if the resampler's output has reached it.
    fn apply_due_edit(&mut self) -> bool {
        match self.edits.front() {
            Some(&(at, edit)) if at <= self.raw_out => {
                self.edits.pop_front();
                match edit {
                    Edit::Silence(count) => self.silence(count),
                    Edit::Drop(count) => self.dropping += count,
                }
                true
            }
            _ => false,
        }
    }

    /// Ends the timeline: silence still queued is written (a drop past the end has nothing
    /// left to drop) and the last chunk goes to the caller.
    fn finish(&mut self) {
        while let Some((_, edit)) = self.edits.pop_front() {
            if let Edit::Silence(count) = edit {
                self.silence(count);
            }
        }
        self.send();
    }

    fn silence(&mut self, mut count: u64) {
        const ZEROS: [f32; 1024] = [0.0; 1024];
        self.silence_samples += count;
        while count > 0 && !self.stopped {
            let step = count.min(ZEROS.len() as u64);
            self.emit(&ZEROS[..step as usize]);
            count -= step;
        }
    }

    /// Appends timeline samples, sending each chunk as it fills.
    fn emit(&mut self, mut samples: &[f32]) {
        while !samples.is_empty() && !self.stopped {
            let room = MAX_CHUNK_SAMPLES - self.chunk.len();
            let (now, rest) = samples.split_at(room.min(samples.len()));
            self.chunk.extend_from_slice(now);
            self.written += now.len() as u64;
            samples = rest;
            if self.chunk.len() == MAX_CHUNK_SAMPLES {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        if self.chunk.is_empty() || self.stopped {
            return;
        }
        let chunk = SpeechChunk {
            samples: &self.chunk,
            start_sample: self.written - self.chunk.len() as u64,
            expected_samples: self.expected_samples,
        };
        if (self.on_chunk)(chunk).is_break() {
            self.stopped = true;
        }
        self.chunk.clear();
    }
}

/// `duration` in 16 kHz samples.
fn samples_in(duration: Duration) -> f64 {
    duration.as_secs_f64() * f64::from(SPEECH_SAMPLE_RATE)
}

/// libswresample to 16 kHz mono packed `f32`, reopened when the input's format, layout or rate
/// changes. Its output frame is reused, so converting costs no allocation once it is large
/// enough.
#[derive(Default)]
struct MonoResampler {
    context: Option<resampling::Context>,
    output: Option<frame::Audio>,
    capacity: usize,
}

impl MonoResampler {
    /// Converts `decoded` and hands what is ready to `sink`. A frame without a channel layout
    /// gets the default one for its channel count (as [`crate::AacTranscoder`] reads such
    /// frames). A change of input flushes the old resampler into `sink` first.
    fn convert(
        &mut self,
        decoded: &mut frame::Audio,
        sink: &mut dyn FnMut(&[f32]),
    ) -> Result<(), ffmpeg_next::Error> {
        if decoded.channel_layout().is_empty() {
            decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
        }
        let input = (decoded.format(), decoded.channel_layout(), decoded.rate());
        let same = self.context.as_ref().is_some_and(|context| {
            let current = context.input();
            (current.format, current.channel_layout, current.rate) == input
        });
        if !same {
            self.flush(sink)?;
            self.context = Some(resampling::Context::get(
                input.0,
                input.1,
                input.2,
                SPEECH_FORMAT,
                ChannelLayout::MONO,
                SPEECH_SAMPLE_RATE,
            )?);
        }
        // Room for every sample this input can produce, plus what the resampler held back.
        let needed = (decoded.samples() as u64 * u64::from(SPEECH_SAMPLE_RATE))
            .div_ceil(u64::from(input.2.max(1))) as usize
            + 64;
        self.run(Some(decoded), needed, sink)?;
        Ok(())
    }

    /// Hands the samples the resampler still holds to `sink` and closes it.
    fn flush(&mut self, sink: &mut dyn FnMut(&[f32])) -> Result<(), ffmpeg_next::Error> {
        while self.context.is_some() {
            if self.run(None, 256, sink)? == 0 {
                self.context = None;
            }
        }
        Ok(())
    }

    /// Runs the resampler on `input` (`None` flushes), with room for `needed` samples.
    fn run(
        &mut self,
        input: Option<&frame::Audio>,
        needed: usize,
        sink: &mut dyn FnMut(&[f32]),
    ) -> Result<usize, ffmpeg_next::Error> {
        let Some(context) = &mut self.context else {
            return Ok(0);
        };
        if needed > self.capacity || self.output.is_none() {
            self.capacity = needed.max(self.capacity);
            self.output = Some(frame::Audio::new(
                SPEECH_FORMAT,
                self.capacity,
                ChannelLayout::MONO,
            ));
        }
        let Some(output) = &mut self.output else {
            return Ok(0);
        };
        // libswresample takes the frame's sample count as its room and sets it to what it wrote.
        output.set_samples(self.capacity);
        match input {
            Some(input) => context.run(input, output)?,
            None => context.flush(output)?,
        };
        let count = output.samples();
        if count > 0 {
            sink(&output.plane::<f32>(0)[..count]);
        }
        Ok(count)
    }
}

/// The samples one [`LiveSpeechAudio`] call made ready.
#[derive(Clone, Copy, Debug)]
pub struct SpeechSamples<'a> {
    /// Media time of the first sample in seconds, on the packets' clock (the time of the
    /// packet it came from, plus its offset in that packet's audio).
    pub start_s: f64,
    /// 16 kHz mono samples, −1..1; empty when nothing became ready.
    pub samples: &'a [f32],
}

impl SpeechSamples<'_> {
    /// Media time just after the last sample, in seconds.
    pub fn end_s(&self) -> f64 {
        self.start_s + self.samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }
}

/// Where a decoded frame's first sample comes out of the resampler, and its time.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    raw: f64,
    seconds: f64,
}

/// Live AAC (raw frames, as the live core carries them) or Opus (a room's microphones) to
/// 16 kHz mono samples, packet by packet; see the module documentation.
pub struct LiveSpeechAudio {
    /// The AAC stream being decoded; `None` for Opus.
    config: Option<AudioSpecificConfig>,
    decoder: decoder::Audio,
    resampler: MonoResampler,
    /// The samples of the last call, reused.
    block: Vec<f32>,
    /// Frames fed to the resampler whose output may not all be out yet.
    anchors: VecDeque<Anchor>,
    raw_fed: f64,
    raw_out: u64,
    decode_errors: u64,
    config_changes: u64,
}

impl LiveSpeechAudio {
    /// Opens an AAC decoder for the stream `config` describes.
    pub fn new(config: &AudioSpecificConfig) -> Result<Self, TranscodeError> {
        Ok(Self::with_decoder(
            Some(config.clone()),
            open_aac_decoder(config)?,
        ))
    }

    /// Opens an Opus decoder (mono or stereo packets; RFC 7587's 48 kHz clock is the usual
    /// timebase of their packets).
    pub fn opus() -> Result<Self, TranscodeError> {
        Ok(Self::with_decoder(None, open_opus_decoder(2)?))
    }

    fn with_decoder(config: Option<AudioSpecificConfig>, decoder: decoder::Audio) -> Self {
        LiveSpeechAudio {
            config,
            decoder,
            resampler: MonoResampler::default(),
            block: Vec::new(),
            anchors: VecDeque::new(),
            raw_fed: 0.0,
            raw_out: 0,
            decode_errors: 0,
            config_changes: 0,
        }
    }

    /// The configuration of the AAC packets being decoded (`None`: Opus).
    pub fn config(&self) -> Option<&AudioSpecificConfig> {
        self.config.as_ref()
    }

    /// Packets that did not decode and were skipped.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Times a new configuration reopened the decoder.
    pub fn config_changes(&self) -> u64 {
        self.config_changes
    }

    /// Decodes one raw AAC frame of the stream `config` describes (any timebase) and returns
    /// the 16 kHz samples now ready, with the media time of the first. A `config` other than
    /// the current one reopens the decoder first. A packet that does not decode is counted and
    /// skipped (nothing comes back for it).
    pub fn push(
        &mut self,
        config: &AudioSpecificConfig,
        packet: &Packet,
    ) -> Result<SpeechSamples<'_>, TranscodeError> {
        if self.config.as_ref() != Some(config) {
            self.reopen(config)?;
        }
        self.decode(packet)
    }

    /// Decodes one Opus packet (any timebase) of a decoder made by [`LiveSpeechAudio::opus`],
    /// as [`LiveSpeechAudio::push`] does an AAC frame.
    pub fn push_opus(&mut self, packet: &Packet) -> Result<SpeechSamples<'_>, TranscodeError> {
        self.decode(packet)
    }

    fn codec_name(&self) -> &'static str {
        if self.config.is_some() {
            "AAC"
        } else {
            "Opus"
        }
    }

    fn decode(&mut self, packet: &Packet) -> Result<SpeechSamples<'_>, TranscodeError> {
        self.block.clear();
        let first_raw = self.raw_out;
        let pts = packet.timebase.rescale(packet.pts, MICROS);
        let mut input = ffmpeg_next::Packet::copy(&packet.data);
        input.set_pts(Some(pts));
        input.set_dts(Some(pts));
        match self.decoder.send_packet(&input) {
            Ok(()) => self.drain(packet.pts_time().as_secs_f64())?,
            Err(e) => {
                self.decode_errors += 1;
                let codec = self.codec_name();
                debug!(pts_us = pts, error = %e, codec, "Audio packet skipped: it does not decode.");
            }
        }
        let start_s = self
            .time_of(first_raw)
            .unwrap_or_else(|| packet.pts_time().as_secs_f64());
        Ok(SpeechSamples {
            start_s,
            samples: &self.block,
        })
    }

    /// Returns what the decoder and the resampler still hold (the end of a stream, or before
    /// a pause) and makes ready for more packets.
    pub fn flush(&mut self) -> Result<SpeechSamples<'_>, TranscodeError> {
        self.block.clear();
        let first_raw = self.raw_out;
        // Sending EOF only fails if it was already sent; the frames come out either way.
        let _ = self.decoder.send_eof();
        let last = self.anchors.back().map_or(0.0, |anchor| anchor.seconds);
        self.drain(last)?;
        let (block, raw_out) = (&mut self.block, &mut self.raw_out);
        self.resampler
            .flush(&mut |samples| {
                block.extend_from_slice(samples);
                *raw_out += samples.len() as u64;
            })
            .map_err(TranscodeError::Resample)?;
        self.decoder.flush();
        let start_s = self.time_of(first_raw).unwrap_or(last);
        // The resampler starts afresh: its output counts from zero again.
        self.anchors.clear();
        self.raw_fed = 0.0;
        self.raw_out = 0;
        Ok(SpeechSamples {
            start_s,
            samples: &self.block,
        })
    }

    /// Opens a decoder for a new configuration; what the old resampler still held is dropped.
    fn reopen(&mut self, config: &AudioSpecificConfig) -> Result<(), TranscodeError> {
        debug!(
            from = ?self.config,
            to = ?config,
            "AAC configuration changed; the speech decoder is reopened."
        );
        self.decoder = open_aac_decoder(config)?;
        self.config = Some(config.clone());
        self.resampler = MonoResampler::default();
        self.anchors.clear();
        self.raw_fed = 0.0;
        self.raw_out = 0;
        self.config_changes += 1;
        Ok(())
    }

    /// Resamples every frame the decoder has ready into the block.
    fn drain(&mut self, packet_s: f64) -> Result<(), TranscodeError> {
        let mut decoded = frame::Audio::empty();
        let codec = self.codec_name();
        while receive_audio_frame(
            &mut self.decoder,
            &mut decoded,
            &mut self.decode_errors,
            codec,
        ) {
            if decoded.samples() == 0 || decoded.rate() == 0 {
                continue;
            }
            let seconds = decoded
                .pts()
                .or(decoded.timestamp())
                .map_or(packet_s, |micros| micros as f64 / f64::from(MICROS.0));
            if self.anchors.len() == MAX_ANCHORS {
                self.anchors.pop_front();
            }
            self.anchors.push_back(Anchor {
                raw: self.raw_fed,
                seconds,
            });
            let (block, raw_out) = (&mut self.block, &mut self.raw_out);
            self.resampler
                .convert(&mut decoded, &mut |samples| {
                    block.extend_from_slice(samples);
                    *raw_out += samples.len() as u64;
                })
                .map_err(TranscodeError::Resample)?;
            self.raw_fed += decoded.samples() as f64 * f64::from(SPEECH_SAMPLE_RATE)
                / f64::from(decoded.rate());
        }
        Ok(())
    }

    /// The media time of raw output sample `raw`, from the last frame that starts at or
    /// before it; anchors before that frame are let go.
    fn time_of(&mut self, raw: u64) -> Option<f64> {
        let raw = raw as f64;
        while self.anchors.len() > 1 && self.anchors[1].raw <= raw {
            self.anchors.pop_front();
        }
        let anchor = self.anchors.front()?;
        Some(anchor.seconds + (raw - anchor.raw) / f64::from(SPEECH_SAMPLE_RATE))
    }
}

/// Opens libavcodec's AAC decoder with `config` as its extradata, on a microsecond clock.
fn open_aac_decoder(config: &AudioSpecificConfig) -> Result<decoder::Audio, TranscodeError> {
    crate::init_ffmpeg();
    let open_error = |source| TranscodeError::AudioCodecOpen {
        codec: "AAC decoder",
        source,
    };
    let codec =
        decoder::find(codec::Id::AAC).ok_or(open_error(ffmpeg_next::Error::DecoderNotFound))?;
    let mut context = codec::Context::new_with_codec(codec);
    crate::decode::set_extradata(&mut context, &config.raw)?;
    // SAFETY: a plain field write on a context we own that has not been opened yet.
    unsafe {
        (*context.as_mut_ptr()).pkt_timebase = Rational::new(1, MICROS.0 as i32).into();
    }
    context.decoder().audio().map_err(open_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline that collects what it sends, each chunk checked against the bound.
    fn timeline(expected: Option<u64>) -> Timeline<impl FnMut(SpeechChunk<'_>) -> ControlFlow<()>> {
        let mut next = 0;
        Timeline::new(
            move |chunk: SpeechChunk<'_>| {
                assert!(chunk.samples.len() <= MAX_CHUNK_SAMPLES);
                assert_eq!(chunk.start_sample, next);
                next += chunk.samples.len() as u64;
                ControlFlow::Continue(())
            },
            expected,
        )
    }

    /// Places a frame of `length` samples of `value` at `at` and feeds it, as the decoder
    /// loop does (the resampler's output stands in for itself here).
    fn frame<F: FnMut(SpeechChunk<'_>) -> ControlFlow<()>>(
        timeline: &mut Timeline<F>,
        at: f64,
        length: usize,
    ) -> Placement {
        let placement = timeline.place(Some(at), length as f64);
        if placement == Placement::Feed {
            timeline.take(&vec![1.0; length]);
            timeline.raw_fed += length as f64;
        }
        placement
    }

    #[test]
    fn the_first_frame_is_placed_exactly_and_later_jitter_is_tolerated() {
        let mut t = timeline(None);
        frame(&mut t, 3.0, 100);
        assert_eq!((t.written, t.silence_samples), (103, 3));
        // 100 samples (6 ms) late: within the tolerance, taken as contiguous.
        frame(&mut t, 203.0, 100);
        assert_eq!((t.written, t.silence_samples), (203, 3));
    }

    #[test]
    fn samples_before_the_origin_are_dropped() {
        let mut t = timeline(None);
        assert_eq!(frame(&mut t, -150.0, 100), Placement::Skip);
        frame(&mut t, -50.0, 100);
        assert_eq!((t.written, t.dropped_samples), (50, 150));
    }

    #[test]
    fn gaps_become_silence_and_overlaps_are_dropped() {
        let mut t = timeline(Some(100_000));
        frame(&mut t, 0.0, 1_000);
        frame(&mut t, 2_000.0, 1_000);
        assert_eq!((t.written, t.silence_samples), (3_000, 1_000));
        // Starts 500 samples before the end of what is there: its first 500 are dropped.
        frame(&mut t, 2_500.0, 1_000);
        assert_eq!((t.written, t.dropped_samples), (3_500, 500));
        // Wholly inside what is there: skipped.
        assert_eq!(frame(&mut t, 1_000.0, 1_000), Placement::Skip);
        assert_eq!(t.written, 3_500);
        frame(&mut t, 3_500.0, 1_000);
        t.finish();
        assert_eq!(t.written, 4_500);
        assert_eq!(t.clock_jumps, 0);
    }

    #[test]
    fn a_long_gap_is_written_in_bounded_chunks() {
        let mut t = timeline(Some(40 * 16_000));
        frame(&mut t, 0.0, 1_000);
        frame(&mut t, 30.0 * 16_000.0, 1_000);
        t.finish();
        assert_eq!(t.written, 30 * 16_000 + 1_000);
        assert_eq!(t.silence_samples, 30 * 16_000 - 1_000);
    }

    #[test]
    fn leaps_that_cannot_be_right_are_clock_jumps() {
        // Forward past the declared end (100 s, so 110 s at most).
        let mut t = timeline(Some(100 * 16_000));
        frame(&mut t, 0.0, 1_000);
        frame(&mut t, 3_600.0 * 16_000.0, 1_000);
        assert_eq!((t.written, t.clock_jumps), (2_000, 1));
        // Later times keep the jump's offset: the next frame follows on.
        frame(&mut t, 3_600.0 * 16_000.0 + 1_000.0, 1_000);
        assert_eq!((t.written, t.clock_jumps), (3_000, 1));
        // Backwards by more than the drop limit.
        frame(&mut t, 0.0, 1_000);
        assert_eq!((t.written, t.clock_jumps), (4_000, 2));

        // Without a declared end, up to ten minutes are filled.
        let mut t = timeline(None);
        frame(&mut t, 0.0, 1_000);
        frame(&mut t, 601.0 * 16_000.0, 1_000);
        assert_eq!((t.written, t.clock_jumps), (2_000, 1));
    }
}
