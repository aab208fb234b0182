//! A room's composite: its participants composed onto one canvas with their audio mixed
//! ([`sluice_compositor`]), published to a live stream through the live core like any other
//! publisher, so the stream's ladder, LL-HLS, DVR, recording and simulcast targets all apply.
//!
//! ```text
//! engine ──tap (bounded)──> composite thread: Compositor ──raw pictures, AAC──> CompositePublisher ──> LiveService::publish
//!    ^                             │
//!    └──── key frame requests ─────┘
//! ```
//!
//! * [`Composites::start`] sets a [`tap`](crate::tap) on the room and starts the composite's
//!   thread. The thread waits for the first visible participant; only then does the publish
//!   begin, so a composite started on an empty room leaves its stream idle until someone joins.
//! * The thread owns the [`Compositor`] (decoding, scaling and mixing are CPU work, kept off the
//!   async runtime). It takes the tap's events as they come, hands the compositor its due
//!   pictures and audio on its constant clock, and follows the loudest speaker (the same
//!   RFC 6464 levels as the room's active speakers) for the speaker layouts. When its stream
//!   has live captions (its room is transcribed), it sends the lines the room's transcription
//!   recognises as the stream's captions, on its own clock and led by the speaker's name.
//! * It stops when asked ([`Composites::stop`]), when the room finishes, or when the live
//!   session no longer takes its media (the stream was disabled, or refused the publish). Its
//!   session then ends at once (an unpublish, no reconnect window): the recording is sealed.
//!   Either way the `room_composites` row is marked stopped and `room.composite.stopped` is
//!   published.

use std::collections::HashMap;
use std::sync::mpsc::{self as std_mpsc, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sluice_compositor::{Compositor, CompositorSettings, Layout, Member, Output, VideoCodec};
use sluice_live::{LiveService, PublishRequest, Publisher, PublisherEvent};
use sluice_media::TrackInfo;
use sluice_storage::{Db, EventBus, EventType, NewEvent, RoomCompositeId, SessionOrigin};
use sluice_transcribe::Line;
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use crate::control::{CompositeLayout, CompositeSpec, ControlError, ParticipantView};
use crate::engine::{Command, Control};
use crate::speakers::Speakers;
use crate::tap::{set_tap, TapCodec, TapEvent};
use crate::transcription::{SpokenLine, Transcriptions};

/// The composite's frame rate.
const FRAME_RATE: u32 = 30;
/// Publisher events queued between the composite thread and its live session: about 0.4 s
/// of pictures and audio packets. A 1080p picture is about 3 MB, so the queue holds at most
/// about 100 MB; the session takes events as they come, and the thread waits when it is full.
const PUBLISH_QUEUE: usize = 32;
/// The longest the thread waits for a tap event before looking at its controls again.
const CONTROL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the speaker layouts look for a new loudest speaker.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(500);

/// What a running composite is told.
enum CompositeControl {
    Layout(CompositeLayout),
    Stop,
}

/// The composites running in this process, by room name.
pub(crate) struct Composites {
    live: Option<Arc<LiveService>>,
    transcriptions: Arc<Transcriptions>,
    db: Db,
    events: EventBus,
    engine: mpsc::Sender<Command>,
    running: Arc<Mutex<HashMap<String, std_mpsc::Sender<CompositeControl>>>>,
}

impl Composites {
    /// Composites publish through `live`; without it (a node that does not ingest) none can
    /// start.
    pub(crate) fn new(
        live: Option<Arc<LiveService>>,
        transcriptions: Arc<Transcriptions>,
        db: Db,
        events: EventBus,
        engine: mpsc::Sender<Command>,
    ) -> Composites {
        Composites {
            live,
            transcriptions,
            db,
            events,
            engine,
            running: Arc::default(),
        }
    }

    /// Starts a room's composite; see the module documentation.
    pub(crate) async fn start(&self, spec: CompositeSpec) -> Result<(), ControlError> {
        let live = self.live.clone().ok_or_else(|| {
            ControlError::CompositeUnavailable(
                "this node does not ingest live streams (run it with the all or a combined role)"
                    .into(),
            )
        })?;
        let composite_id = RoomCompositeId::parse(&spec.composite_id).map_err(|_| {
            ControlError::CompositeUnavailable(format!(
                "{} is not a composite id",
                spec.composite_id
            ))
        })?;
        let (controls, control_inbox) = std_mpsc::channel();
        {
            let mut running = lock(&self.running);
            if running.contains_key(&spec.room_name) {
                return Err(ControlError::CompositeRunning);
            }
            running.insert(spec.room_name.clone(), controls);
        }
        let tap_inbox = match set_tap(&self.engine, &spec.room_name, true).await {
            Ok(events) => events,
            Err(e) => {
                lock(&self.running).remove(&spec.room_name);
                return Err(e);
            }
        };
        let (published, publish_inbox) = mpsc::channel(PUBLISH_QUEUE);
        let composer = Composer {
            room: spec.room_name.clone(),
            size: spec.resolution.size(),
            layout: spec.layout,
            engine: self.engine.clone(),
            published,
            spoken: spec
                .captions
                .then(|| self.transcriptions.listen(&spec.room_name)),
        };
        let thread = thread::Builder::new()
            .name("sluice-composite".into())
            .spawn(move || composer.run(tap_inbox, control_inbox));
        if let Err(e) = thread {
            lock(&self.running).remove(&spec.room_name);
            return Err(ControlError::CompositeUnavailable(format!(
                "starting the composite's thread: {e}"
            )));
        }
        let span = tracing::info_span!("composite", room = %spec.room_name, live_stream_id = %spec.live_stream_id);
        tokio::spawn(
            publish(
                live,
                self.db.clone(),
                self.events.clone(),
                self.running.clone(),
                spec,
                composite_id,
                publish_inbox,
            )
            .instrument(span),
        );
        Ok(())
    }

    /// Changes a running composite's layout.
    pub(crate) fn set_layout(
        &self,
        room: &str,
        layout: CompositeLayout,
    ) -> Result<(), ControlError> {
        self.tell(room, CompositeControl::Layout(layout))
    }

    /// Stops a running composite.
    pub(crate) fn stop(&self, room: &str) -> Result<(), ControlError> {
        self.tell(room, CompositeControl::Stop)
    }

    fn tell(&self, room: &str, control: CompositeControl) -> Result<(), ControlError> {
        lock(&self.running)
            .get(room)
            .ok_or(ControlError::NoComposite)?
            .send(control)
            .map_err(|_| ControlError::NoComposite)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the composite's live session once its first media is ready, then records its end.
async fn publish(
    live: Arc<LiveService>,
    db: Db,
    events: EventBus,
    running: Arc<Mutex<HashMap<String, std_mpsc::Sender<CompositeControl>>>>,
    spec: CompositeSpec,
    composite_id: RoomCompositeId,
    mut inbox: mpsc::Receiver<PublisherEvent>,
) {
    let reason = match inbox.recv().await {
        None => "stopped before anyone joined".to_owned(),
        Some(first) => {
            info!("First participant in the room: the composite starts publishing.");
            let publisher = CompositePublisher {
                first: Some(first),
                inbox,
                sends_captions: spec.captions,
                bytes: 0,
                db: db.clone(),
                composite_id: composite_id.clone(),
            };
            let request = PublishRequest {
                stream_key: spec.stream_key.clone(),
                origin: SessionOrigin {
                    client_addr: format!("room {}", spec.room_name),
                    protocol: "composite",
                    encoder: Some("sluice-compositor".into()),
                    app: None,
                },
            };
            match live.publish(publisher, request).await {
                Ok(()) => "the composite's session ended".to_owned(),
                Err(e) => match e {},
            }
        }
    };
    lock(&running).remove(&spec.room_name);
    info!(reason, "Room composite stopped.");
    match db.mark_room_composite_stopped(&composite_id).await {
        Ok(Some(composite)) => {
            let event = NewEvent::about_room_composite(EventType::RoomCompositeStopped, &composite);
            if let Err(e) = events.publish(event).await {
                warn!(error = %e, "Could not publish room.composite.stopped.");
            }
        }
        // Stopped already (through the API while this node was away): announced then.
        Ok(None) => {}
        Err(e) => warn!(error = %e, "Could not mark the composite stopped."),
    }
}

/// The composite as the live core's publisher: the composite thread's events.
struct CompositePublisher {
    /// The event that showed media was ready, handed out first.
    first: Option<PublisherEvent>,
    inbox: mpsc::Receiver<PublisherEvent>,
    /// Its stream has live captions, made of its room's transcription.
    sends_captions: bool,
    bytes: u64,
    db: Db,
    composite_id: RoomCompositeId,
}

impl Publisher for CompositePublisher {
    type Error = std::convert::Infallible;

    async fn next_event(&mut self) -> Result<PublisherEvent, Self::Error> {
        let event = match self.first.take() {
            Some(event) => Some(event),
            None => self.inbox.recv().await,
        };
        // The thread ends its media with an unpublish; a thread that is gone ends it too.
        let event = event.unwrap_or(PublisherEvent::Unpublished);
        if let PublisherEvent::Media(packet) = &event {
            self.bytes += packet.data.len() as u64;
        }
        Ok(event)
    }

    async fn accept_publish(&mut self) -> Result<(), Self::Error> {
        if let Err(e) = self.db.mark_room_composite_active(&self.composite_id).await {
            warn!(error = %e, "Could not mark the composite active.");
        }
        Ok(())
    }

    async fn reject_publish(&mut self, reason: &str) -> Result<(), Self::Error> {
        warn!(reason, "The composite's live stream refused it.");
        self.inbox.close();
        Ok(())
    }

    fn bytes_received(&self) -> u64 {
        self.bytes
    }

    fn sends_captions(&self) -> bool {
        self.sends_captions
    }
}

/// The composite thread's state.
struct Composer {
    room: String,
    size: (u32, u32),
    layout: CompositeLayout,
    engine: mpsc::Sender<Command>,
    published: mpsc::Sender<PublisherEvent>,
    /// The lines its room's transcription recognises, when its stream has captions.
    spoken: Option<Receiver<SpokenLine>>,
}

/// Why the composite thread stopped composing.
enum Ended {
    /// Stopped, or the room finished: the session is unpublished.
    Done,
    /// The live session no longer takes media.
    SessionGone,
}

impl Composer {
    fn run(self, taps: Receiver<TapEvent>, controls: Receiver<CompositeControl>) {
        let Some(members) = self.wait_for_first(&taps, &controls) else {
            return;
        };
        let published = self.published.clone();
        if let Ended::Done = self.compose(members, &taps, &controls) {
            let _ = published.blocking_send(PublisherEvent::Unpublished);
        }
    }

    /// Waits for the room's first visible participant; `None` when stopped first.
    fn wait_for_first(
        &self,
        taps: &Receiver<TapEvent>,
        controls: &Receiver<CompositeControl>,
    ) -> Option<Vec<ParticipantView>> {
        loop {
            if let Ok(CompositeControl::Stop) | Err(std_mpsc::TryRecvError::Disconnected) =
                controls.try_recv()
            {
                return None;
            }
            match taps.recv_timeout(CONTROL_INTERVAL) {
                Ok(TapEvent::Members(members)) if !members.is_empty() => return Some(members),
                Ok(TapEvent::RoomFinished) | Err(RecvTimeoutError::Disconnected) => return None,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn compose(
        mut self,
        members: Vec<ParticipantView>,
        taps: &Receiver<TapEvent>,
        controls: &Receiver<CompositeControl>,
    ) -> Ended {
        let start = Instant::now();
        let (width, height) = self.size;
        let settings = CompositorSettings {
            width,
            height,
            frame_rate: FRAME_RATE,
            layout: layout_of(self.layout),
        };
        let mut compositor = match Compositor::new(settings, start) {
            Ok(compositor) => compositor,
            Err(e) => {
                warn!(room = %self.room, error = %e, "The composite could not start.");
                return Ended::Done;
            }
        };
        compositor.set_members(visible_members(&members));
        let tracks = [
            TrackInfo::RawVideo {
                width,
                height,
                frame_rate: f64::from(FRAME_RATE),
            },
            TrackInfo::Aac {
                config: compositor.audio_config().clone(),
            },
        ];
        for track in tracks {
            if self
                .published
                .blocking_send(PublisherEvent::Track(track))
                .is_err()
            {
                return Ended::SessionGone;
            }
        }
        let mut speakers = Speakers::default();
        let mut next_speaker_check = start;
        loop {
            let now = Instant::now();
            let wait = compositor
                .next_deadline()
                .saturating_duration_since(now)
                .min(CONTROL_INTERVAL);
            match taps.recv_timeout(wait) {
                Ok(event) => {
                    if !self.take(event, &mut compositor, &mut speakers) {
                        break;
                    }
                    // Take what else is queued before composing.
                    let mut finished = false;
                    while let Ok(event) = taps.try_recv() {
                        if !self.take(event, &mut compositor, &mut speakers) {
                            finished = true;
                            break;
                        }
                    }
                    if finished {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            match controls.try_recv() {
                Ok(CompositeControl::Layout(layout)) => {
                    info!(room = %self.room, ?layout, "Composite layout changed.");
                    self.layout = layout;
                    compositor.set_layout(layout_of(layout));
                }
                Ok(CompositeControl::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => break,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= next_speaker_check {
                next_speaker_check = now + SPEAKER_INTERVAL;
                if let Some(loudest) = speakers.loudest(now) {
                    compositor.set_active_speaker(Some(loudest));
                }
            }
            for track_sid in compositor.take_keyframe_requests() {
                let _ = self.engine.try_send(Command::Control(Control::TapKeyframe {
                    room: self.room.clone(),
                    track_sid,
                }));
            }
            if !self.publish(compositor.poll(now)) || !self.caption(start) {
                return Ended::SessionGone;
            }
        }
        info!(
            room = %self.room,
            skipped_pictures = compositor.skipped_pictures(),
            audio = ?compositor.audio_stats(),
            "The composite stops composing."
        );
        if !self.publish(compositor.finish()) {
            return Ended::SessionGone;
        }
        Ended::Done
    }

    /// Sends the lines said since the last call as captions, timed on the composite's clock
    /// (`start` is its media time 0) and led by the speaker's name; `false` once the session
    /// no longer takes them.
    fn caption(&self, start: Instant) -> bool {
        let Some(spoken) = &self.spoken else {
            return true;
        };
        let lines: Vec<Line> = spoken
            .try_iter()
            .map(|line| Line {
                id: 0,
                start_s: line.start.saturating_duration_since(start).as_secs_f64(),
                end_s: line.end.saturating_duration_since(start).as_secs_f64(),
                text: format!("{}: {}", line.speaker, line.text),
                complete: true,
            })
            .collect();
        lines.is_empty()
            || self
                .published
                .blocking_send(PublisherEvent::Captions(lines))
                .is_ok()
    }

    /// Hands one tap event to the compositor; `false` once the room finished.
    fn take(&self, event: TapEvent, compositor: &mut Compositor, speakers: &mut Speakers) -> bool {
        let now = Instant::now();
        match event {
            TapEvent::Members(members) => compositor.set_members(visible_members(&members)),
            TapEvent::Video {
                track_sid,
                codec,
                data,
                keyframe,
                rtp_time,
            } => {
                let codec = match codec {
                    TapCodec::H264 => VideoCodec::H264,
                    TapCodec::Vp8 => VideoCodec::Vp8,
                    TapCodec::Opus => return true,
                };
                compositor.push_video(&track_sid, codec, data, keyframe, rtp_time, now);
            }
            TapEvent::Audio {
                participant_sid,
                track_sid,
                data,
                rtp_time,
                level,
                ..
            } => {
                if let Some(level) = level {
                    speakers.observe(&participant_sid, level, now);
                }
                compositor.push_audio(&track_sid, rtp_time, data, now);
            }
            TapEvent::RoomFinished => {
                info!(room = %self.room, "The room finished: its composite stops.");
                return false;
            }
        }
        true
    }

    /// Queues the compositor's output for the live session; `false` once it is gone.
    fn publish(&self, outputs: Vec<Output>) -> bool {
        outputs.into_iter().all(|output| {
            let packet = match output {
                Output::Picture(packet) | Output::Audio(packet) => packet,
            };
            self.published
                .blocking_send(PublisherEvent::Media(packet))
                .is_ok()
        })
    }
}

fn layout_of(layout: CompositeLayout) -> Layout {
    match layout {
        CompositeLayout::Grid => Layout::Grid,
        CompositeLayout::Speaker => Layout::Speaker,
        CompositeLayout::Single => Layout::Single,
    }
}

/// The room's participants as the compositor places them: hidden ones left out, muted tracks
/// treated as absent, a track published without a source taken as camera or microphone.
fn visible_members(views: &[ParticipantView]) -> Vec<Member> {
    views
        .iter()
        .filter(|view| !view.hidden)
        .map(|view| {
            // A track of the given kind from `source`, or else one whose source is unknown.
            let track = |kind: &str, source: &str| {
                let live = || view.tracks.iter().filter(|t| t.kind == kind && !t.muted);
                live()
                    .find(|t| t.source == source)
                    .or_else(|| live().find(|t| t.source == "unknown"))
                    .map(|t| t.sid.clone())
            };
            Member {
                id: view.sid.clone(),
                name: if view.name.is_empty() {
                    view.identity.clone()
                } else {
                    view.name.clone()
                },
                camera: track("video", "camera"),
                screen_share: track("video", "screen_share"),
                microphone: track("audio", "microphone"),
            }
        })
        .collect()
}
