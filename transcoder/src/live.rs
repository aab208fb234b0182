//! The live ladder pipeline: decode the source once, scale and encode every rung on its own
//! thread, and cut all rungs at the same source instants.
//!
//! ```text
//! push(Packet) ──bounded──> decode thread ──bounded, per rung──> rung thread: fps cap → swscale → x264 or rav1e
//!      │                       (cut decisions)                                        │
//!      └── "source" rung: repackaged as is ────────────────> output channel (bounded) <┘
//! ```
//!
//! - **Aligned IDRs** (HLS Authoring Spec §1.13, §7.4): the decode thread decides which source
//!   pictures start a segment, and every rung forces an IDR (an AV1 key frame on AV1 rungs) on
//!   exactly those pictures. Without a `source` rung, a cut falls on the first picture at or
//!   after each multiple of `keyframe_interval` from the first picture. With a `source` rung, the encoded rungs cut on
//!   the source's own keyframes, so the repackaged source lines up with them too.
//! - **Backpressure** (DESIGN.md "Live backpressure"): every queue is bounded and nothing waits
//!   on a full one except the rung threads on the output channel. `push` never blocks: when the
//!   decode queue is full the packet is dropped, and so is everything up to the next keyframe,
//!   so the decoder never sees a broken reference chain. When a rung's picture queue is full the
//!   picture is dropped for that rung only (before its encoder), and if it was a cut the rung
//!   cuts on its next picture instead. Every drop is counted in [`TranscodeStats`].
//! - **Timestamps**: output packets are on the 90 kHz clock and keep the source's absolute
//!   times, so the packager can align them with the untouched audio. When the source clock goes
//!   backwards (a publisher restarting its clock), the interval cuts and each rung's frame-rate
//!   cap start a new schedule there instead of waiting for the old times to come back.
//! - **Sources** ([`VideoSource`]): the decode thread decodes live H.264 from its avcC, VP8
//!   from WebRTC, uncompressed pictures (a room's composite, through libavcodec's `rawvideo`),
//!   or a file's stream in any codec whose pictures it first normalises (upright, square
//!   pixels, yuv420p, constant frame rate; see [`crate::normalize`]); either way the rungs get
//!   the same pictures.
//! - **Failures**: a rung whose encoder fails stops alone; once every encoding rung has stopped
//!   (or the output receiver is gone), the decode thread stops too and [`LiveTranscoder::push`]
//!   reports [`TranscodeError::Stopped`] instead of decoding for nobody.
//!
//! The output receiver must be drained while the transcoder runs (from another thread or
//! task): rung threads wait for room in it, and [`LiveTranscoder::finish`] waits for them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;
use sluice_media::{Packet, Timebase, TrackKind, VideoCodec, VideoConfig};
use tracing::{debug, error, info, warn};

use crate::av1::{self, Av1Encoder};
use crate::decode::{DecodedPicture, SourcePictures, VideoSource};
use crate::ladder::{EncodeTarget, PlannedRung};
use crate::x264::{EncodedFrame, Preset, Tune, X264Encoder};
use crate::TranscodeError;

/// How the live pipeline encodes and how much it may queue.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSettings {
    /// x264 preset for every rung (default [`Preset::Veryfast`]).
    pub preset: Preset,
    /// x264 tune for every rung (default [`Tune::Quality`]).
    pub tune: Tune,
    /// Distance between forced IDRs when there is no source rung (default
    /// [`Self::DEFAULT_KEYFRAME_INTERVAL`]).
    pub keyframe_interval: Duration,
    /// Encoder threads per rung; 0 lets x264 choose, and shares one pool among AV1 rungs
    /// (default [`Self::DEFAULT_THREADS_PER_RUNG`]).
    pub threads_per_rung: u32,
    /// Codecs of the encoded rungs for files (default H.264 only); with AV1, each encoded
    /// H.264 rung gets an AV1 twin (see [`crate::plan_with_codecs`]). The live path plans
    /// H.264 only.
    pub codecs: Vec<VideoCodec>,
    /// rav1e speed preset of AV1 rungs, 0–10, 10 fastest (default [`av1::DEFAULT_SPEED`]).
    pub av1_speed: u8,
    /// Packets waiting for the decoder (default [`Self::DEFAULT_PACKET_QUEUE`]).
    pub packet_queue: usize,
    /// Decoded pictures waiting for each rung (default [`Self::DEFAULT_FRAME_QUEUE`]).
    pub frame_queue: usize,
    /// What a full queue means (default [`WhenBehind::Drop`], as live input needs).
    pub when_behind: WhenBehind,
    /// Messages waiting in the output channel (default [`Self::DEFAULT_OUTPUT_QUEUE`]; never
    /// fewer than the number of rungs, so the configurations fit before anyone reads).
    pub output_queue: usize,
}

impl EncoderSettings {
    /// One IDR every 2 s (HLS Authoring Spec §1.13).
    pub const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
    /// Rungs already run in parallel, one thread each; a second x264 thread per rung lets a
    /// 1080p veryfast rung keep up on its own while costing little latency (frame threads).
    pub const DEFAULT_THREADS_PER_RUNG: u32 = 2;
    /// About 2 s of 60 fps video.
    pub const DEFAULT_PACKET_QUEUE: usize = 120;
    /// A few pictures of slack per rung; each 1080p picture is about 3 MB.
    pub const DEFAULT_FRAME_QUEUE: usize = 8;
    /// Room for a few segments' worth of packets across all rungs.
    pub const DEFAULT_OUTPUT_QUEUE: usize = 256;
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            preset: Preset::default(),
            tune: Tune::default(),
            keyframe_interval: Self::DEFAULT_KEYFRAME_INTERVAL,
            threads_per_rung: Self::DEFAULT_THREADS_PER_RUNG,
            codecs: vec![VideoCodec::H264],
            av1_speed: av1::DEFAULT_SPEED,
            packet_queue: Self::DEFAULT_PACKET_QUEUE,
            frame_queue: Self::DEFAULT_FRAME_QUEUE,
            output_queue: Self::DEFAULT_OUTPUT_QUEUE,
            when_behind: WhenBehind::Drop,
        }
    }
}

/// What the pipeline does when a queue between two stages is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenBehind {
    /// Drop (and count) rather than fall further behind real time: live input.
    #[default]
    Drop,
    /// Wait for room, dropping nothing: files, and benchmarks measuring throughput.
    Wait,
}

/// Hands `item` to `sender` the way `when_behind` asks.
fn offer<T>(
    sender: &SyncSender<T>,
    item: T,
    when_behind: WhenBehind,
) -> Result<(), TrySendError<T>> {
    match when_behind {
        WhenBehind::Drop => sender.try_send(item),
        WhenBehind::Wait => sender
            .send(item)
            .map_err(|mpsc::SendError(item)| TrySendError::Disconnected(item)),
    }
}

/// What the pipeline produces; `rung` is the index in the planned rungs given to `start`.
#[derive(Clone, Debug, PartialEq)]
pub enum TranscoderOutput {
    /// The rung's decoder configuration; sent once per rung, before any of its packets (by
    /// `start` for the source and H.264 rungs, by the rung thread before its first packet for
    /// AV1 rungs, whose sequence header comes with the first key frame).
    Config { rung: usize, config: VideoConfig },
    /// One access unit (AVCC for H.264, a temporal unit for AV1; 90 kHz timestamps). The first
    /// packet of a rung is a keyframe.
    Packet { rung: usize, packet: Packet },
    /// The rung has delivered everything it will.
    Finished { rung: usize },
}

/// A snapshot of the pipeline's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// Video packets given to `push`.
    pub packets_received: u64,
    /// Packets not decoded: the decode queue was full, or they came before the next keyframe.
    pub packets_dropped: u64,
    /// Packets libavcodec rejected.
    pub decode_errors: u64,
    /// Pictures out of the decoder.
    pub frames_decoded: u64,
    /// Per rung: access units delivered (encoded frames, or packets for the source rung).
    pub frames_emitted_per_rung: Vec<u64>,
    /// Per rung: pictures (or source packets) dropped because the rung could not keep up.
    /// Pictures left out to meet a rung's frame-rate cap are not counted.
    pub frames_dropped_per_rung: Vec<u64>,
}

#[derive(Default)]
struct RungCounters {
    emitted: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Counters {
    packets_received: AtomicU64,
    packets_dropped: AtomicU64,
    decode_errors: AtomicU64,
    frames_decoded: AtomicU64,
    rungs: Vec<RungCounters>,
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed)
}

/// Admits packets from a keyframe on: once a packet of a stream is lost, every following one
/// is refused until the next keyframe, so a decoder never sees a picture whose references are
/// missing.
struct KeyframeGate {
    waiting: AtomicBool,
}

impl KeyframeGate {
    fn closed() -> Self {
        KeyframeGate {
            waiting: AtomicBool::new(true),
        }
    }

    fn admits(&self, keyframe: bool) -> bool {
        if keyframe {
            self.waiting.store(false, Ordering::Relaxed);
        }
        !self.waiting.load(Ordering::Relaxed)
    }

    fn lost_one(&self) {
        self.waiting.store(true, Ordering::Relaxed);
    }
}

/// A running live ladder.
pub struct LiveTranscoder {
    /// `None` when every rung is the source (nothing to decode).
    decode_input: Option<SyncSender<Packet>>,
    decode_gate: KeyframeGate,
    source_rung: Option<usize>,
    source_gate: KeyframeGate,
    output: SyncSender<TranscoderOutput>,
    when_behind: WhenBehind,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<()>>,
}

impl LiveTranscoder {
    /// Opens every encoder, queues each rung's [`TranscoderOutput::Config`] (when known before
    /// encoding) and starts the threads. `source` is the incoming stream: an H.264
    /// configuration (`&AvcConfig`, as live ingest gives it) or a file's stream with its
    /// normalisation ([`VideoSource`]); a `source` rung needs the former. `rungs` come from
    /// [`crate::plan`] or [`crate::plan_with_codecs`].
    pub fn start(
        source: impl Into<VideoSource>,
        rungs: Vec<PlannedRung>,
        settings: EncoderSettings,
    ) -> Result<(LiveTranscoder, Receiver<TranscoderOutput>), TranscodeError> {
        let source = source.into();
        let (output, receiver) = mpsc::sync_channel(settings.output_queue.max(rungs.len()).max(1));
        let counters = Arc::new(Counters {
            rungs: rungs.iter().map(|_| RungCounters::default()).collect(),
            ..Counters::default()
        });

        let mut encoders = Vec::new();
        let mut source_rung = None;
        for (index, rung) in rungs.iter().enumerate() {
            let config = match rung {
                PlannedRung::Source => {
                    source_rung = source_rung.or(Some(index));
                    Some(VideoConfig::Avc(
                        source
                            .avc_config()
                            .ok_or(TranscodeError::SourceRungUnavailable)?
                            .clone(),
                    ))
                }
                PlannedRung::Encode(target) => {
                    let encoder = RungEncoder::open(target, &settings)?;
                    let config = encoder.config();
                    info!(
                        rung = %target.name,
                        width = target.width,
                        height = target.height,
                        fps = target.frame_rate,
                        bitrate_kbps = target.bitrate_kbps,
                        codec = %config.as_ref().map_or_else(|| target.codec.name(), VideoConfig::codec_string),
                        "Rung encoder opened."
                    );
                    encoders.push((index, target.clone(), encoder));
                    config
                }
            };
            if let Some(config) = config {
                // The channel has room for one message per rung and nobody has sent yet.
                output
                    .try_send(TranscoderOutput::Config {
                        rung: index,
                        config,
                    })
                    .map_err(|_| TranscodeError::Stopped)?;
            }
        }

        let mut threads = Vec::new();
        let decode_input = if encoders.is_empty() {
            None
        } else {
            let decoder = source.open()?;
            let mut rung_inputs = Vec::new();
            for (index, target, encoder) in encoders {
                let (input, frames) = mpsc::sync_channel(settings.frame_queue.max(1));
                rung_inputs.push(RungInput {
                    index,
                    input,
                    pending_cut: false,
                });
                let thread_name = format!("sluice-{}-{index}", encoder.library());
                let worker = RungWorker {
                    index,
                    limiter: FrameRateLimiter::new(target.frame_rate),
                    target,
                    config_sent: encoder.config().is_some(),
                    encoder,
                    output: output.clone(),
                    counters: Arc::clone(&counters),
                };
                threads.push(spawn(thread_name, move || worker.run(frames))?);
            }
            let (input, packets) = mpsc::sync_channel(settings.packet_queue.max(1));
            let cuts = if source_rung.is_some() {
                CutPolicy::SourceKeyframes(SourceKeyframes::default())
            } else {
                CutPolicy::Interval(IntervalCuts::new(settings.keyframe_interval))
            };
            let worker = DecodeWorker {
                decoder,
                cuts,
                when_behind: settings.when_behind,
                rungs: rung_inputs,
                counters: Arc::clone(&counters),
            };
            threads.push(spawn("sluice-decode".to_owned(), move || {
                worker.run(packets)
            })?);
            Some(input)
        };

        let transcoder = LiveTranscoder {
            decode_input,
            decode_gate: KeyframeGate::closed(),
            source_rung,
            source_gate: KeyframeGate::closed(),
            output,
            when_behind: settings.when_behind,
            counters,
            threads,
        };
        Ok((transcoder, receiver))
    }

    /// Hands one source video packet to the pipeline; audio packets are ignored. With
    /// [`WhenBehind::Drop`] it never blocks; with [`WhenBehind::Wait`] it waits for room. Fails
    /// only once the decode thread has ended or the output receiver is gone.
    pub fn push(&self, packet: Packet) -> Result<(), TranscodeError> {
        if packet.kind != TrackKind::Video {
            return Ok(());
        }
        bump(&self.counters.packets_received);
        if let Some(rung) = self.source_rung {
            self.forward_source(rung, &packet)?;
        }
        let Some(input) = &self.decode_input else {
            return Ok(());
        };
        if !self.decode_gate.admits(packet.keyframe) {
            bump(&self.counters.packets_dropped);
            return Ok(());
        }
        match offer(input, packet, self.when_behind) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(packet)) => {
                self.decode_gate.lost_one();
                if bump(&self.counters.packets_dropped) == 0 {
                    warn!(
                        pts = packet.pts,
                        "Decoder falling behind; dropping packets until the next keyframe."
                    );
                }
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(TranscodeError::Stopped),
        }
    }

    /// Repackages a source packet for the source rung.
    fn forward_source(&self, rung: usize, packet: &Packet) -> Result<(), TranscodeError> {
        let counters = &self.counters.rungs[rung];
        if !self.source_gate.admits(packet.keyframe) {
            bump(&counters.dropped);
            return Ok(());
        }
        let repackaged = Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: packet.timebase.rescale(packet.dts, Timebase::MPEG),
            pts: packet.timebase.rescale(packet.pts, Timebase::MPEG),
            keyframe: packet.keyframe,
            data: packet.data.clone(),
        };
        let output = TranscoderOutput::Packet {
            rung,
            packet: repackaged,
        };
        match offer(&self.output, output, self.when_behind) {
            Ok(()) => {
                bump(&counters.emitted);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.source_gate.lost_one();
                bump(&counters.dropped);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(TranscodeError::Stopped),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TranscodeStats {
        self.counters.snapshot()
    }

    /// Ends the stream: decodes and encodes what is queued, flushes every encoder, sends each
    /// rung's [`TranscoderOutput::Finished`] and waits for the threads. The receiver must keep
    /// being drained meanwhile.
    pub fn finish(self) -> TranscodeStats {
        let LiveTranscoder {
            decode_input,
            source_rung,
            output,
            counters,
            threads,
            ..
        } = self;
        drop(decode_input);
        if let Some(rung) = source_rung {
            // Only fails when the receiver is gone, and then nobody is waiting for it.
            let _ = output.send(TranscoderOutput::Finished { rung });
        }
        drop(output);
        for thread in threads {
            let name = thread.thread().name().unwrap_or("transcoder").to_owned();
            if thread.join().is_err() {
                error!(thread = %name, "Transcoder thread panicked.");
            }
        }
        counters.snapshot()
    }
}

impl Counters {
    fn snapshot(&self) -> TranscodeStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TranscodeStats {
            packets_received: load(&self.packets_received),
            packets_dropped: load(&self.packets_dropped),
            decode_errors: load(&self.decode_errors),
            frames_decoded: load(&self.frames_decoded),
            frames_emitted_per_rung: self.rungs.iter().map(|rung| load(&rung.emitted)).collect(),
            frames_dropped_per_rung: self.rungs.iter().map(|rung| load(&rung.dropped)).collect(),
        }
    }
}

fn spawn(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, TranscodeError> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|source| TranscodeError::Spawn {
            thread: name,
            source,
        })
}

/// Which decoded pictures start a segment.
enum CutPolicy {
    Interval(IntervalCuts),
    SourceKeyframes(SourceKeyframes),
}

impl CutPolicy {
    fn note_keyframe(&mut self, pts: i64) {
        if let CutPolicy::SourceKeyframes(keyframes) = self {
            keyframes.note(pts);
        }
    }

    fn is_cut(&mut self, pts: i64) -> bool {
        match self {
            CutPolicy::Interval(cuts) => cuts.is_cut(pts),
            CutPolicy::SourceKeyframes(keyframes) => keyframes.is_cut(pts),
        }
    }
}

/// Cuts on the first picture at or after each multiple of the interval from the first picture
/// (or from the first picture after the source clock went backwards).
struct IntervalCuts {
    interval: i64,
    origin: Option<i64>,
    next: i64,
    /// The previous picture's time; pictures come in presentation order.
    last: Option<i64>,
}

impl IntervalCuts {
    fn new(interval: Duration) -> Self {
        let ticks = interval
            .as_micros()
            .saturating_mul(u128::from(Timebase::MPEG.0))
            / 1_000_000;
        IntervalCuts {
            interval: i64::try_from(ticks).unwrap_or(i64::MAX).max(1),
            origin: None,
            next: 0,
            last: None,
        }
    }

    fn is_cut(&mut self, pts: i64) -> bool {
        let previous = self.last.replace(pts);
        let origin = match (self.origin, previous) {
            (Some(origin), Some(previous)) if pts >= previous => origin,
            // The first picture, or the source clock went backwards: a new schedule starts here
            // (otherwise no cut would come until the old times came back, hours later maybe).
            _ => {
                self.origin = Some(pts);
                self.next = pts.saturating_add(self.interval);
                return true;
            }
        };
        if pts < self.next {
            return false;
        }
        let elapsed_intervals = pts.saturating_sub(origin) / self.interval;
        self.next = origin.saturating_add(
            elapsed_intervals
                .saturating_add(1)
                .saturating_mul(self.interval),
        );
        true
    }
}

/// Cuts where the source has keyframes (matched by presentation time), and on the first picture.
#[derive(Default)]
struct SourceKeyframes {
    pending: std::collections::VecDeque<i64>,
    started: bool,
}

impl SourceKeyframes {
    /// Keyframes waiting for their picture; more means the decoder is not producing any.
    const MAX_PENDING: usize = 64;

    fn note(&mut self, pts: i64) {
        if self.pending.len() == Self::MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(pts);
    }

    fn is_cut(&mut self, pts: i64) -> bool {
        while self.pending.front().is_some_and(|&keyframe| keyframe < pts) {
            self.pending.pop_front();
        }
        let at_keyframe = self.pending.front() == Some(&pts);
        if at_keyframe {
            self.pending.pop_front();
        }
        let first = !self.started;
        self.started = true;
        at_keyframe || first
    }
}

/// A decoded picture on its way to one rung.
struct RungFrame {
    source: Arc<DecodedPicture>,
    /// Force an IDR here: a cut, or the first picture after a dropped cut.
    force_idr: bool,
}

struct RungInput {
    index: usize,
    input: SyncSender<RungFrame>,
    /// A cut was dropped for this rung; the next picture it gets carries it.
    pending_cut: bool,
}

struct DecodeWorker {
    decoder: SourcePictures,
    cuts: CutPolicy,
    when_behind: WhenBehind,
    rungs: Vec<RungInput>,
    counters: Arc<Counters>,
}

impl DecodeWorker {
    fn run(mut self, packets: Receiver<Packet>) {
        for packet in packets {
            if packet.keyframe {
                self.cuts
                    .note_keyframe(packet.timebase.rescale(packet.pts, Timebase::MPEG));
            }
            match self.decoder.decode(&packet) {
                Ok(pictures) => pictures
                    .into_iter()
                    .for_each(|picture| self.distribute(picture)),
                Err(err) => {
                    if bump(&self.counters.decode_errors) == 0 {
                        warn!(error = %err, "Source packet failed to decode.");
                    } else {
                        debug!(error = %err, "Source packet failed to decode.");
                    }
                }
            }
            if self.rungs.is_empty() {
                warn!("Every rung has stopped; the decoder stops too.");
                return;
            }
        }
        match self.decoder.flush() {
            Ok(pictures) => pictures
                .into_iter()
                .for_each(|picture| self.distribute(picture)),
            Err(err) => warn!(error = %err, "The last source pictures could not be finished."),
        }
        debug!("Decoder finished.");
    }

    fn distribute(&mut self, picture: DecodedPicture) {
        bump(&self.counters.frames_decoded);
        let cut = self.cuts.is_cut(picture.pts);
        let source = Arc::new(picture);
        let (when_behind, counters) = (self.when_behind, &self.counters);
        self.rungs.retain_mut(|rung| {
            let force_idr = cut || rung.pending_cut;
            let frame = RungFrame {
                source: Arc::clone(&source),
                force_idr,
            };
            match offer(&rung.input, frame, when_behind) {
                Ok(()) => rung.pending_cut = false,
                Err(TrySendError::Full(_)) => {
                    rung.pending_cut = force_idr;
                    bump(&counters.rungs[rung.index].dropped);
                }
                // The rung stopped (an encoder error, or nobody reads the output any more);
                // the others go on without it.
                Err(TrySendError::Disconnected(_)) => return false,
            }
            true
        });
    }
}

/// A rung's encoder: x264 for H.264 rungs, rav1e for AV1 ones.
enum RungEncoder {
    X264(X264Encoder),
    Av1(Box<Av1Encoder>),
}

impl RungEncoder {
    fn open(target: &EncodeTarget, settings: &EncoderSettings) -> Result<Self, TranscodeError> {
        Ok(match target.codec {
            VideoCodec::Av1 => RungEncoder::Av1(Box::new(Av1Encoder::open(
                target,
                settings.av1_speed,
                settings.threads_per_rung,
            )?)),
            VideoCodec::H264 => RungEncoder::X264(X264Encoder::open(
                target,
                settings.preset,
                settings.tune,
                settings.threads_per_rung,
            )?),
            other => return Err(TranscodeError::UnsupportedCodec(other.name())),
        })
    }

    /// The encoder library, for thread names.
    fn library(&self) -> &'static str {
        match self {
            RungEncoder::X264(_) => "x264",
            RungEncoder::Av1(_) => "rav1e",
        }
    }

    /// The decoder configuration, once known (at once for x264, after the first unit for AV1).
    fn config(&self) -> Option<VideoConfig> {
        match self {
            RungEncoder::X264(encoder) => Some(VideoConfig::Avc(encoder.config().clone())),
            RungEncoder::Av1(encoder) => encoder.config().cloned().map(VideoConfig::Av1),
        }
    }

    fn encode(
        &mut self,
        picture: &frame::Video,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, TranscodeError> {
        match self {
            RungEncoder::X264(encoder) => Ok(encoder
                .encode(picture, pts, force_keyframe)?
                .into_iter()
                .collect()),
            RungEncoder::Av1(encoder) => encoder.encode(picture, pts, force_keyframe),
        }
    }

    fn flush(&mut self) -> Result<Vec<EncodedFrame>, TranscodeError> {
        match self {
            RungEncoder::X264(encoder) => encoder.flush(),
            RungEncoder::Av1(encoder) => encoder.flush(),
        }
    }
}

struct RungWorker {
    index: usize,
    target: EncodeTarget,
    limiter: FrameRateLimiter,
    encoder: RungEncoder,
    /// Whether the rung's [`TranscoderOutput::Config`] has gone out.
    config_sent: bool,
    output: SyncSender<TranscoderOutput>,
    counters: Arc<Counters>,
}

impl RungWorker {
    fn run(mut self, frames: Receiver<RungFrame>) {
        // swscale contexts are not `Send`: the scaler is made on the rung's own thread.
        let mut scaler = RungScaler::new(&self.target);
        let mut pending_idr = false;
        for frame in frames {
            pending_idr |= frame.force_idr;
            if !self.limiter.admits(frame.source.pts, pending_idr) {
                continue;
            }
            let picture = match scaler.scale(&frame.source.picture) {
                Ok(picture) => picture,
                Err(err) => {
                    warn!(rung = %self.target.name, error = %err, "Picture could not be scaled.");
                    bump(&self.counters.rungs[self.index].dropped);
                    continue;
                }
            };
            match self.encoder.encode(picture, frame.source.pts, pending_idr) {
                Ok(encoded) => {
                    pending_idr = false;
                    if !encoded.into_iter().all(|encoded| self.emit(encoded)) {
                        return;
                    }
                }
                Err(err) => {
                    error!(rung = %self.target.name, error = %err, "Encoder failed; the rung stops.");
                    break;
                }
            }
        }
        match self.encoder.flush() {
            Ok(frames) => {
                for encoded in frames {
                    if !self.emit(encoded) {
                        return;
                    }
                }
            }
            Err(err) => error!(rung = %self.target.name, error = %err, "Encoder failed to flush."),
        }
        let _ = self
            .output
            .send(TranscoderOutput::Finished { rung: self.index });
        debug!(rung = %self.target.name, "Rung finished.");
    }

    /// Sends one access unit, preceded by the rung's configuration if it has not gone out yet;
    /// false once nobody listens any more.
    fn emit(&mut self, encoded: EncodedFrame) -> bool {
        if !self.config_sent {
            let Some(config) = self.encoder.config() else {
                error!(rung = %self.target.name, "The encoder gave no configuration; the rung stops.");
                return false;
            };
            let message = TranscoderOutput::Config {
                rung: self.index,
                config,
            };
            if self.output.send(message).is_err() {
                return false;
            }
            self.config_sent = true;
        }
        let packet = Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: encoded.dts,
            pts: encoded.pts,
            keyframe: encoded.keyframe,
            data: encoded.data,
        };
        let delivered = self
            .output
            .send(TranscoderOutput::Packet {
                rung: self.index,
                packet,
            })
            .is_ok();
        if delivered {
            bump(&self.counters.rungs[self.index].emitted);
        }
        delivered
    }
}

/// Converts decoded pictures to the rung's size in yuv420p, reusing one output picture.
struct RungScaler {
    width: u32,
    height: u32,
    context: Option<scaling::Context>,
    output: frame::Video,
}

impl RungScaler {
    fn new(target: &EncodeTarget) -> Self {
        RungScaler {
            width: target.width,
            height: target.height,
            context: None,
            output: frame::Video::new(Pixel::YUV420P, target.width, target.height),
        }
    }

    fn scale<'a>(
        &'a mut self,
        picture: &'a frame::Video,
    ) -> Result<&'a frame::Video, TranscodeError> {
        if picture.format() == Pixel::YUV420P
            && picture.width() == self.width
            && picture.height() == self.height
        {
            return Ok(picture);
        }
        let failed = |source| TranscodeError::Scale {
            width: self.width,
            height: self.height,
            source,
        };
        let stale = self.context.as_ref().is_none_or(|context| {
            let input = context.input();
            (input.format, input.width, input.height)
                != (picture.format(), picture.width(), picture.height())
        });
        if stale {
            // A new source size or format (an SPS change mid-stream) needs a new context.
            self.context = Some(
                scaling::Context::get(
                    picture.format(),
                    picture.width(),
                    picture.height(),
                    Pixel::YUV420P,
                    self.width,
                    self.height,
                    scaling::Flags::BILINEAR,
                )
                .map_err(failed)?,
            );
        }
        let context = self
            .context
            .as_mut()
            .ok_or_else(|| failed(ffmpeg_next::Error::Bug))?;
        context.run(picture, &mut self.output).map_err(failed)?;
        Ok(&self.output)
    }
}

/// Keeps a rung at or below its frame rate by leaving pictures out by timestamp.
struct FrameRateLimiter {
    /// Ticks (90 kHz) between kept pictures.
    interval: i64,
    /// A picture this much early still counts as due: absorbs millisecond-rounded timestamps
    /// without letting a faster source through.
    tolerance: i64,
    next_due: Option<i64>,
}

impl FrameRateLimiter {
    fn new(frame_rate: f64) -> Self {
        let interval = (f64::from(Timebase::MPEG.0) / frame_rate).round() as i64;
        let interval = interval.max(1);
        FrameRateLimiter {
            interval,
            tolerance: interval / 8,
            next_due: None,
        }
    }

    /// Whether to encode the picture at `pts`; a `forced` one (a cut) is always kept and
    /// restarts the schedule, and so does one from before the last kept picture (the source
    /// clock went backwards).
    fn admits(&mut self, pts: i64, forced: bool) -> bool {
        let base = match self.next_due {
            Some(next) if !forced => {
                let last_kept = next.saturating_sub(self.interval);
                if pts < last_kept.saturating_sub(self.tolerance) {
                    // Earlier than the last kept picture: the clock went backwards.
                    pts
                } else if pts < next.saturating_sub(self.tolerance) {
                    return false;
                } else if pts.saturating_sub(next) < self.interval {
                    // On schedule (unless the source skipped ahead by a whole interval).
                    next
                } else {
                    pts
                }
            }
            _ => pts,
        };
        self.next_due = Some(base.saturating_add(self.interval));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(limiter: &mut FrameRateLimiter, timestamps: impl IntoIterator<Item = i64>) -> Vec<i64> {
        timestamps
            .into_iter()
            .filter(|&pts| limiter.admits(pts, false))
            .collect()
    }

    #[test]
    fn frame_rate_cap_halves_sixty_to_thirty_even_with_millisecond_timestamps() {
        let mut limiter = FrameRateLimiter::new(30.0);
        // 60 fps stamped in whole milliseconds, as RTMP delivers them.
        let ms = [0, 17, 33, 50, 67, 83, 100, 117, 133];
        let kept = kept(&mut limiter, ms.iter().map(|ms| ms * 90));
        assert_eq!(kept, [0, 2970, 6030, 9000, 11970]);
    }

    #[test]
    fn frame_rate_cap_keeps_every_picture_of_a_source_at_the_cap() {
        let mut limiter = FrameRateLimiter::new(30.0);
        let timestamps: Vec<i64> = [0, 33, 67, 100, 133, 167]
            .iter()
            .map(|ms| ms * 90)
            .collect();
        assert_eq!(kept(&mut limiter, timestamps.clone()), timestamps);
    }

    #[test]
    fn frame_rate_cap_brings_fifty_down_to_thirty_on_average() {
        let mut limiter = FrameRateLimiter::new(30.0);
        let kept = kept(&mut limiter, (0..500).map(|i| i * 1800));
        assert_eq!(kept.len(), 300);
    }

    #[test]
    fn a_forced_picture_is_always_kept() {
        let mut limiter = FrameRateLimiter::new(30.0);
        assert!(limiter.admits(0, false));
        assert!(!limiter.admits(1500, false));
        assert!(limiter.admits(1500, true));
        assert!(!limiter.admits(3000, false));
        assert!(limiter.admits(4500, false));
    }

    #[test]
    fn interval_cuts_fall_on_the_first_picture_at_or_after_each_boundary() {
        let mut cuts = IntervalCuts::new(Duration::from_secs(2));
        let origin = 900_000;
        let cut_at: Vec<i64> = (0..200)
            .map(|i| origin + i * 3003)
            .filter(|&pts| cuts.is_cut(pts))
            .collect();
        // Boundaries at +180 000 and +360 000 ticks; 3003-tick pictures land just after them.
        assert_eq!(
            cut_at,
            [
                origin,
                origin + 60 * 3003,
                origin + 120 * 3003,
                origin + 180 * 3003
            ]
        );
    }

    #[test]
    fn frame_rate_cap_starts_again_when_the_source_clock_goes_backwards() {
        let mut limiter = FrameRateLimiter::new(30.0);
        let before = (0..10).map(|i| 324_000_000 + i * 3000);
        let after = (0..10).map(|i| i * 3000);
        assert_eq!(kept(&mut limiter, before.chain(after)).len(), 20);
    }

    #[test]
    fn interval_cuts_start_a_new_schedule_when_the_source_clock_goes_backwards() {
        let mut cuts = IntervalCuts::new(Duration::from_secs(2));
        assert!(cuts.is_cut(324_000_000));
        assert!(!cuts.is_cut(324_090_000));
        assert!(cuts.is_cut(0), "the first picture after the jump cuts");
        assert!(!cuts.is_cut(90_000));
        assert!(cuts.is_cut(180_000));
    }

    #[test]
    fn interval_cuts_skip_boundaries_lost_in_a_gap() {
        let mut cuts = IntervalCuts::new(Duration::from_secs(2));
        assert!(cuts.is_cut(0));
        assert!(cuts.is_cut(500_000));
        assert!(!cuts.is_cut(539_999));
        assert!(cuts.is_cut(540_000));
    }

    #[test]
    fn source_keyframe_cuts_follow_keyframe_timestamps() {
        let mut cuts = SourceKeyframes::default();
        cuts.note(3000);
        assert!(cuts.is_cut(0), "the first picture always cuts");
        assert!(cuts.is_cut(3000));
        cuts.note(9000);
        assert!(!cuts.is_cut(6000));
        assert!(cuts.is_cut(9000));
        assert!(!cuts.is_cut(12000));
    }

    #[test]
    fn a_raw_picture_of_the_wrong_size_is_counted_as_a_decode_error_and_the_rest_are_encoded() {
        use crate::ladder::{plan, Ladder, Rung, RungSpec};
        let ladder = Ladder {
            rungs: vec![RungSpec::Encode(Rung {
                name: "90p".into(),
                height: 90,
                bitrate_kbps: 150,
                max_fps: 30,
            })]
            .into(),
        };
        let rungs = plan(&ladder, 320, 180, Some(30.0)).unwrap();
        let settings = EncoderSettings {
            when_behind: WhenBehind::Wait,
            ..EncoderSettings::default()
        };
        let source = VideoSource::Raw {
            width: 320,
            height: 180,
        };
        let (transcoder, outputs) = LiveTranscoder::start(source, rungs, settings).unwrap();
        let encoded = thread::spawn(move || {
            outputs
                .into_iter()
                .filter(|output| matches!(output, TranscoderOutput::Packet { .. }))
                .count()
        });
        for index in 0..10 {
            let mut data = sluice_media::fixtures::raw_picture(320, 180, index);
            if index == 4 {
                data.truncate(data.len() - 1);
            }
            let at = i64::from(index) * 3_000;
            transcoder
                .push(Packet {
                    kind: TrackKind::Video,
                    timebase: Timebase::MPEG,
                    dts: at,
                    pts: at,
                    keyframe: true,
                    data,
                })
                .unwrap();
        }
        let stats = transcoder.finish();
        assert_eq!((stats.decode_errors, stats.frames_decoded), (1, 9));
        assert_eq!(encoded.join().unwrap(), 9);
    }

    #[test]
    fn keyframe_gate_drops_until_the_next_keyframe() {
        let gate = KeyframeGate::closed();
        assert!(!gate.admits(false));
        assert!(gate.admits(true));
        assert!(gate.admits(false));
        gate.lost_one();
        assert!(!gate.admits(false));
        assert!(gate.admits(true));
    }
}
