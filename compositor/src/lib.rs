//! sluice-compositor: a room's participants composed onto one canvas, their audio mixed into
//! one AAC track, at a constant frame rate whatever the inputs do. Sans I/O: frames and time go
//! in, raw pictures and AAC packets come out (see [`Compositor`]).
//!
//! - [`layout`]: where each participant goes ([`layout::place`]), pure placement.
//! - `canvas`: the yuv420p canvas the tiles are scaled onto, redrawn only where it changed.
//! - `label`: participants' names in a bitmap font.
//! - `video`: one decoder per video track, pictures shown in step with the audio.
//! - `mix`: the audio mix, AAC-LC.

pub mod layout;

mod canvas;
mod label;
mod mix;
mod video;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_media::{AudioSpecificConfig, Packet, Timebase, TrackKind};

use canvas::{Canvas, TileContent, TileDraw, TileKey};
use layout::{Source, Tile};
use mix::AudioMixer;
use video::VideoInput;

pub use mix::{MixStats, PLAYOUT_DELAY};

/// How far behind its pictures the caller may fall before the compositor skips ahead.
pub const MAX_LAG: Duration = Duration::from_secs(1);
/// The largest canvas side.
pub const MAX_CANVAS_SIDE: u32 = 4096;
/// The smallest canvas side.
pub const MIN_CANVAS_SIDE: u32 = 64;
/// The highest frame rate.
pub const MAX_FRAME_RATE: u32 = 60;

/// How participants are placed on the canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Every participant in an equal tile, re-flowed as people join and leave; a screen share
    /// takes a large tile of its own.
    #[default]
    Grid,
    /// The active speaker (or a screen share) large, the others in a strip.
    Speaker,
    /// Only the active speaker (or a screen share).
    Single,
}

/// The codec of a participant's video track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    /// H.264 in Annex B form, as WebRTC depacketizes it.
    H264,
}

/// A participant as the compositor places it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The participant's id (its sid).
    pub id: String,
    /// Drawn on its tile.
    pub name: String,
    /// Track ids of its camera, screen share and microphone, when published.
    pub camera: Option<String>,
    pub screen_share: Option<String>,
    pub microphone: Option<String>,
}

/// The canvas and how it is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositorSettings {
    /// Canvas size in pixels: even, from [`MIN_CANVAS_SIDE`] to [`MAX_CANVAS_SIDE`].
    pub width: u32,
    pub height: u32,
    /// Pictures per second, 1 to [`MAX_FRAME_RATE`].
    pub frame_rate: u32,
    /// The layout to start with ([`Compositor::set_layout`] changes it).
    pub layout: Layout,
}

/// Why the compositor could not start.
#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    /// The canvas size or frame rate is out of bounds.
    #[error("canvas {width}x{height} at {frame_rate} fps: {reason}")]
    Settings {
        width: u32,
        height: u32,
        frame_rate: u32,
        reason: String,
    },
    /// A codec could not be opened.
    #[error("opening {what}: {source}")]
    Open {
        what: &'static str,
        source: sluice_transcoder::TranscodeError,
    },
}

/// What the compositor produces.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// One canvas picture: `width × height` yuv420p planes packed one after another, 90 kHz.
    Picture(Packet),
    /// One AAC-LC frame of the mix.
    Audio(Packet),
}

/// Composes a room: members' video tracks decoded and placed on one canvas, their microphones
/// mixed, canvas pictures at a constant frame rate counted from `start` whatever the inputs do.
///
/// Picture `n` shows the instant `start + n / frame_rate`, stamped `n × 90000 / frame_rate` on
/// the 90 kHz clock: each tile the latest picture of its track that had arrived by then. Like
/// the mix of an instant, it is made [`PLAYOUT_DELAY`] after that instant (the depth of the
/// mixer's jitter buffer), so the pictures and the audio of one instant carry the same time.
pub struct Compositor {
    settings: CompositorSettings,
    start: Instant,
    members: Vec<Member>,
    active_speaker: Option<String>,
    /// Where the members go, placed again whenever members, speaker or layout change.
    tiles: Vec<Tile>,
    /// Video inputs by track id: every camera and screen share of the members.
    inputs: HashMap<String, VideoInput>,
    inputs_opened: u64,
    canvas: Canvas,
    mixer: AudioMixer,
    /// Index of the next picture.
    next_picture: u64,
    skipped_pictures: u64,
    /// The latest time seen, for key-frame requests.
    clock: Instant,
}

impl Compositor {
    /// A compositor whose first picture shows `start` (and is due [`PLAYOUT_DELAY`] later),
    /// with no members yet.
    pub fn new(settings: CompositorSettings, start: Instant) -> Result<Self, CompositorError> {
        validate(&settings)?;
        let mixer = AudioMixer::new(start)?;
        Ok(Compositor {
            canvas: Canvas::new(settings.width, settings.height),
            settings,
            start,
            members: Vec::new(),
            active_speaker: None,
            tiles: Vec::new(),
            inputs: HashMap::new(),
            inputs_opened: 0,
            mixer,
            next_picture: 0,
            skipped_pictures: 0,
            clock: start,
        })
    }

    /// Sets who is in the room, in join order. Tracks no member publishes any more are
    /// dropped (their decoders closed, their audio taken out of the mix); new video tracks wait
    /// for a key frame.
    pub fn set_members(&mut self, members: Vec<Member>) {
        for gone in microphones(&self.members) {
            if !microphones(&members).any(|track| track == gone) {
                self.mixer.remove(gone);
            }
        }
        self.inputs
            .retain(|track, _| video_tracks(&members).any(|named| named == track));
        for track in video_tracks(&members) {
            if !self.inputs.contains_key(track) {
                self.inputs_opened += 1;
                self.inputs
                    .insert(track.to_owned(), VideoInput::new(self.inputs_opened));
            }
        }
        self.members = members;
        self.place();
    }

    /// Sets the member who speaks (by id); `None` or an id no member has counts as the first
    /// member.
    pub fn set_active_speaker(&mut self, id: Option<String>) {
        self.active_speaker = id;
        self.place();
    }

    /// Changes the layout from the next picture on.
    pub fn set_layout(&mut self, layout: Layout) {
        self.settings.layout = layout;
        self.place();
    }

    /// Takes one frame of a member's camera or screen share (frames of tracks no member
    /// publishes are ignored). `rtp_time` is on the 90 kHz clock; the frame is timed by `now`,
    /// its arrival.
    pub fn push_video(
        &mut self,
        track: &str,
        codec: VideoCodec,
        frame: Bytes,
        keyframe: bool,
        rtp_time: u32,
        now: Instant,
    ) {
        self.observe(now);
        match self.inputs.get_mut(track) {
            Some(input) => input.push(codec, frame, keyframe, rtp_time, now),
            None => tracing::trace!(track, "video of a track no member publishes"),
        }
    }

    /// Takes one Opus packet of a member's microphone (packets of other tracks are ignored).
    /// `rtp_time` is on the 48 kHz clock.
    pub fn push_audio(&mut self, track: &str, rtp_time: u32, opus: Bytes, now: Instant) {
        self.observe(now);
        if microphones(&self.members).any(|microphone| microphone == track) {
            self.mixer.push(track, rtp_time, &opus, now);
        } else {
            tracing::trace!(track, "audio of a track no member publishes");
        }
    }

    /// Video tracks whose decoder waits for a key frame (a new track, or one that failed to
    /// decode), each at most every 500 ms: the caller asks their senders for one (PLI).
    pub fn take_keyframe_requests(&mut self) -> Vec<String> {
        let now = self.clock;
        video_tracks(&self.members)
            .filter(|track| {
                self.inputs
                    .get_mut(*track)
                    .is_some_and(|input| input.take_keyframe_request(now))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Every picture due by `now`, then the AAC packets of the mix that are ready. A caller
    /// more than [`MAX_LAG`] behind gets only the latest picture due: the pictures in between
    /// are skipped ([`Self::skipped_pictures`]), the timestamps keep counting.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        self.observe(now);
        let mut outputs = Vec::new();
        if let Some(latest) = self.latest_due(now) {
            if latest > self.next_picture
                && now.saturating_duration_since(self.deadline(self.next_picture)) > MAX_LAG
            {
                if self.skipped_pictures == 0 {
                    tracing::warn!(
                        behind_ms = now
                            .saturating_duration_since(self.deadline(self.next_picture))
                            .as_millis(),
                        "room composite fell behind; skipping pictures to catch up"
                    );
                }
                self.skipped_pictures += latest - self.next_picture;
                self.next_picture = latest;
            }
            while self.next_picture <= latest {
                outputs.push(Output::Picture(self.compose(self.next_picture)));
                self.next_picture += 1;
            }
        }
        outputs.extend(self.mixer.pull(now).into_iter().map(Output::Audio));
        outputs
    }

    /// When the next picture is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.next_picture)
    }

    /// How many pictures were skipped because the caller fell behind.
    pub fn skipped_pictures(&self) -> u64 {
        self.skipped_pictures
    }

    /// What the audio mix dropped so far.
    pub fn audio_stats(&self) -> MixStats {
        self.mixer.stats()
    }

    /// The mix's AAC configuration (AAC-LC, 48 kHz, stereo).
    pub fn audio_config(&self) -> &AudioSpecificConfig {
        self.mixer.config()
    }

    /// Ends the composite: the AAC packets the encoder still held.
    pub fn finish(self) -> Vec<Output> {
        self.mixer.finish().into_iter().map(Output::Audio).collect()
    }

    fn observe(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
    }

    fn place(&mut self) {
        self.tiles = layout::place(
            self.settings.layout,
            self.settings.width,
            self.settings.height,
            &self.members,
            self.active_speaker.as_deref(),
        );
    }

    /// The instant picture `index` shows.
    fn instant(&self, index: u64) -> Instant {
        let nanos = u128::from(index) * 1_000_000_000 / u128::from(self.settings.frame_rate);
        self.start + Duration::from_nanos(nanos as u64)
    }

    /// When picture `index` is due: [`PLAYOUT_DELAY`] after the instant it shows.
    fn deadline(&self, index: u64) -> Instant {
        self.instant(index) + PLAYOUT_DELAY
    }

    /// The index of the latest picture due by `now`; `None` before the first is due.
    fn latest_due(&self, now: Instant) -> Option<u64> {
        let elapsed = now.checked_duration_since(self.start + PLAYOUT_DELAY)?;
        let index = elapsed.as_nanos() * u128::from(self.settings.frame_rate) / 1_000_000_000;
        Some(index as u64)
    }

    /// Picture `index`: every input moved on to its instant, the tiles drawn.
    fn compose(&mut self, index: u64) -> Packet {
        let at = self.instant(index);
        for input in self.inputs.values_mut() {
            input.advance(at);
        }
        let draws: Vec<TileDraw> = self
            .tiles
            .iter()
            .map(|tile| {
                let member = &self.members[tile.member];
                let track = match tile.source {
                    Source::Camera => member.camera.as_deref(),
                    Source::ScreenShare => member.screen_share.as_deref(),
                };
                let content = track
                    .and_then(|track| self.inputs.get(track))
                    .and_then(|input| input.picture(at))
                    .map_or(TileContent::Placeholder, |(id, picture)| {
                        TileContent::Picture { id, picture }
                    });
                TileDraw {
                    key: TileKey {
                        member: member.id.clone(),
                        source: tile.source,
                    },
                    rect: tile.rect,
                    content,
                    name: &member.name,
                }
            })
            .collect();
        let data = self.canvas.compose(&draws);
        let pts = (u128::from(index) * u128::from(Timebase::MPEG.0)
            / u128::from(self.settings.frame_rate)) as i64;
        Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: pts,
            pts,
            keyframe: true,
            data,
        }
    }
}

fn validate(settings: &CompositorSettings) -> Result<(), CompositorError> {
    let CompositorSettings {
        width,
        height,
        frame_rate,
        ..
    } = *settings;
    let sides = MIN_CANVAS_SIDE..=MAX_CANVAS_SIDE;
    let reason = if width % 2 != 0 || height % 2 != 0 {
        Some("width and height must be even (4:2:0)".to_owned())
    } else if !sides.contains(&width) || !sides.contains(&height) {
        Some(format!(
            "each side must be from {MIN_CANVAS_SIDE} to {MAX_CANVAS_SIDE} pixels"
        ))
    } else if !(1..=MAX_FRAME_RATE).contains(&frame_rate) {
        Some(format!("the frame rate must be from 1 to {MAX_FRAME_RATE}"))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CompositorError::Settings {
            width,
            height,
            frame_rate,
            reason,
        }),
        None => Ok(()),
    }
}

/// Every member's camera and screen-share track ids, in join order.
fn video_tracks(members: &[Member]) -> impl Iterator<Item = &str> {
    members.iter().flat_map(|member| {
        [member.camera.as_deref(), member.screen_share.as_deref()]
            .into_iter()
            .flatten()
    })
}

fn microphones(members: &[Member]) -> impl Iterator<Item = &str> {
    members
        .iter()
        .filter_map(|member| member.microphone.as_deref())
}
