//! Live transcription of a room: every visible participant's microphone recognised as it
//! speaks, each line sent to the room's clients as LiveKit transcription packets and stored in
//! the transcript of the room's session.
//!
//! ```text
//! engine ──tap (members, audio)──> transcriber thread ──Opus→16 kHz──> LiveRecognition per microphone
//!    ^                                      │  partial and final lines
//!    └──── Control::Transcription ──────────┤
//!                                           └──> store task ──> room_transcript_lines
//! ```
//!
//! * [`Transcriptions::start`] sets an audio-only [`tap`](crate::tap) on the room and starts its
//!   thread. It runs while the room's session does: the room ending (or
//!   [`Transcriptions::stop`]) finishes every microphone's recognition, so the last lines are
//!   sent and stored, then `room.transcription.stopped` is published.
//! * The thread decodes each microphone's Opus once (`LiveSpeechAudio`) and hands the 16 kHz
//!   samples to a [`LiveRecognition`] of its own (a thread each: the engine recognises one
//!   thing at a time, so a busy engine delays lines but never the room). Up to
//!   [`MAX_MICROPHONES`] microphones of a room are transcribed at once; those past it are not
//!   (logged), and one whose track is unpublished is finished and its place freed.
//! * Times are milliseconds from the start of the room's session. A microphone's timeline is
//!   anchored when its first packet arrives; after that its RTP clock places every sample, so
//!   silence the sender left out (DTX) keeps its length. The sender's clock is not trusted
//!   further: audio is never placed before the audio placed last (it is appended) nor more
//!   than [`MAX_AHEAD_OF_ARRIVAL`] ahead of its arrival, so timestamps can neither restart
//!   recognition nor make it hear more silence than time passes.
//! * Complete lines also go to the room's listeners ([`Transcriptions::listen`]): a composite
//!   of a transcribed room captions its stream with them.
//! * Clients get each line as the participant's `Transcription` data packet: partial segments
//!   (`final: false`) while it is spoken, at most one per [`RECOGNISE_EVERY`], then the final
//!   one under the same segment id. Segment times are the line's, in milliseconds from the
//!   session's start.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self as std_mpsc, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use livekit_protocol as proto;
use serde_json::json;
use sluice_media::{Packet, Timebase, TrackKind};
use sluice_storage::{
    Db, EventBus, EventType, NewEvent, NewRoomTranscriptLine, RoomId, RoomSessionId,
};
use sluice_transcoder::speech::{LiveSpeechAudio, SpeechSamples};
use sluice_transcribe::live::{LiveRecognition, Recognised, RECOGNISE_EVERY};
use sluice_transcribe::{Line, Speech};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use crate::control::{ControlError, ParticipantView};
use crate::engine::{Command, Control};
use crate::tap::{set_tap, TapCodec, TapEvent};

/// Microphones of one room transcribed at once.
pub const MAX_MICROPHONES: usize = 16;
/// How far ahead of its arrival a microphone's audio may be placed: well above a network's
/// jitter, far below what a sender's clock could gain on purpose.
pub const MAX_AHEAD_OF_ARRIVAL: Duration = Duration::from_millis(500);
/// Blocks of audio (one per Opus packet, 20 ms) waiting for one microphone's recogniser: 8 s.
const AUDIO_QUEUE: usize = 400;
/// How long finishing a microphone waits for its last lines.
const FINISH_WAIT: Duration = Duration::from_secs(10);
/// Lines waiting to be stored.
const STORE_QUEUE: usize = 256;
/// The RTP clock of Opus (RFC 7587 §4.1).
const OPUS_CLOCK: u32 = 48_000;

/// A room to transcribe: its current session, and the language spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptionSpec {
    pub room_id: RoomId,
    pub room_name: String,
    pub session_id: RoomSessionId,
    /// When the session started: line times count from here.
    pub session_started_at: DateTime<Utc>,
    pub language: String,
}

/// A complete line said in a room, for its composite's captions: when, by the process's
/// clock, who said it and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpokenLine {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) speaker: String,
    pub(crate) text: String,
}

/// Lines waiting for one listener (a composite) before more are dropped.
const LISTENER_QUEUE: usize = 64;

/// The listeners of each room's lines, by room name.
type Listeners = Arc<Mutex<HashMap<String, Vec<std_mpsc::SyncSender<SpokenLine>>>>>;

/// A running transcription, as [`Transcriptions`] keeps it. Dropping it stops the
/// transcriber's thread (its stop channel closes), which then finishes what it holds.
struct Running {
    session_id: RoomSessionId,
    /// When its session started: a start for an older session never replaces it.
    session_started_at: DateTime<Utc>,
    /// Tells this run from a later one of the same room.
    run: u64,
    _stop: std_mpsc::Sender<()>,
}

/// The transcriptions running in this process, by room name.
pub(crate) struct Transcriptions {
    speech: Arc<Speech>,
    db: Db,
    events: EventBus,
    engine: mpsc::Sender<Command>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    runs_started: AtomicU64,
    listeners: Listeners,
}

impl Transcriptions {
    pub(crate) fn new(
        speech: Arc<Speech>,
        db: Db,
        events: EventBus,
        engine: mpsc::Sender<Command>,
    ) -> Transcriptions {
        Transcriptions {
            speech,
            db,
            events,
            engine,
            running: Arc::default(),
            runs_started: AtomicU64::new(0),
            listeners: Arc::default(),
        }
    }

    /// The complete lines recognised in the room named `room` from now on, whichever session
    /// of it is transcribed, until the receiver is dropped (a slow listener misses lines).
    pub(crate) fn listen(&self, room: &str) -> std_mpsc::Receiver<SpokenLine> {
        let (sender, lines) = std_mpsc::sync_channel(LISTENER_QUEUE);
        lock(&self.listeners)
            .entry(room.to_owned())
            .or_default()
            .push(sender);
        lines
    }

    /// Starts transcribing a room's session; see the module documentation. The run is
    /// registered before this returns, so a [`Self::stop`] (or the room's end) that comes
    /// after the call stops it, even while it is still starting; the starting goes on as a task
    /// of its own, which the returned future waits for and which a caller that goes away does
    /// not cancel. A room already transcribed for that session, or for a newer one, is left as
    /// it is; one transcribed for an older session (the room ended and runs again) is stopped.
    pub(crate) fn start(
        self: &Arc<Self>,
        spec: TranscriptionSpec,
    ) -> impl Future<Output = Result<(), ControlError>> + Send + 'static {
        let starting = self
            .register(&spec)
            .map(|(run, stop_inbox)| tokio::spawn(self.clone().begin(spec, run, stop_inbox)));
        async move {
            match starting {
                Some(task) => task.await.map_err(|_| ControlError::Stopped)?,
                None => Ok(()),
            }
        }
    }

    /// Registers a run of `spec`'s session, replacing a run of an older session of the room;
    /// `None` when the room's transcription already runs for this session or a newer one.
    fn register(&self, spec: &TranscriptionSpec) -> Option<(u64, std_mpsc::Receiver<()>)> {
        let mut running = lock(&self.running);
        if running.get(&spec.room_name).is_some_and(|current| {
            current.session_id == spec.session_id
                || current.session_started_at > spec.session_started_at
        }) {
            return None;
        }
        let (stop, stop_inbox) = std_mpsc::channel();
        let run = self.runs_started.fetch_add(1, Ordering::Relaxed);
        // An older session's run, if any, is replaced: dropped, it stops.
        running.insert(
            spec.room_name.clone(),
            Running {
                session_id: spec.session_id.clone(),
                session_started_at: spec.session_started_at,
                run,
                _stop: stop,
            },
        );
        Some((run, stop_inbox))
    }

    /// Whether `run` is still the room's registered run (not stopped or replaced).
    fn is_current(&self, room: &str, run: u64) -> bool {
        lock(&self.running)
            .get(room)
            .is_some_and(|running| running.run == run)
    }

    /// Loads the engine, taps the room and starts the run's thread, unless the run was stopped
    /// meanwhile.
    async fn begin(
        self: Arc<Self>,
        spec: TranscriptionSpec,
        run: u64,
        stop_inbox: std_mpsc::Receiver<()>,
    ) -> Result<(), ControlError> {
        let speech = self.speech.clone();
        let loaded = match tokio::task::spawn_blocking(move || speech.engine().map(drop)).await {
            Ok(loaded) => loaded.map_err(ControlError::TranscriptionUnavailable),
            Err(_) => Err(ControlError::Stopped),
        };
        if let Err(e) = loaded {
            forget(&self.running, &spec.room_name, run);
            return Err(e);
        }
        if !self.is_current(&spec.room_name, run) {
            return Ok(());
        }
        let tap_inbox = match set_tap(&self.engine, &spec.room_name, false).await {
            Ok(events) => events,
            Err(e) => {
                forget(&self.running, &spec.room_name, run);
                return Err(e);
            }
        };
        if !self.is_current(&spec.room_name, run) {
            // Stopped, or the room ended, while the tap was set: the engine drops a tap whose
            // inbox is gone.
            return Ok(());
        }
        let (lines, line_inbox) = mpsc::channel(STORE_QUEUE);
        let transcriber = Transcriber {
            speech: self.speech.clone(),
            engine: self.engine.clone(),
            lines,
            listeners: self.listeners.clone(),
            spec: spec.clone(),
            epoch: Instant::now(),
            epoch_s: (Utc::now() - spec.session_started_at).num_milliseconds() as f64 / 1000.0,
            microphones: HashMap::new(),
            refused: HashSet::new(),
        };
        let span = tracing::info_span!("transcription", room = %spec.room_name, session_id = %spec.session_id);
        let thread = {
            let span = span.clone();
            thread::Builder::new()
                .name("sluice-room-transcription".into())
                .spawn(move || span.in_scope(|| transcriber.run(&tap_inbox, &stop_inbox)))
        };
        if let Err(e) = thread {
            forget(&self.running, &spec.room_name, run);
            return Err(ControlError::TranscriptionUnavailable(format!(
                "starting the transcription's thread: {e}"
            )));
        }
        info!(room = %spec.room_name, session_id = %spec.session_id, language = %spec.language, "Room transcription started.");
        self.publish(EventType::RoomTranscriptionStarted, &spec, json!({}))
            .await;
        let (db, events, running) = (self.db.clone(), self.events.clone(), self.running.clone());
        tokio::spawn(
            async move {
                let stored = store(&db, &spec, line_inbox).await;
                forget(&running, &spec.room_name, run);
                info!(lines = stored, "Room transcription stopped.");
                publish(
                    &events,
                    EventType::RoomTranscriptionStopped,
                    &spec,
                    json!({"lines": stored}),
                )
                .await;
            }
            .instrument(span),
        );
        Ok(())
    }

    /// Stops a room's transcription; its last lines are still sent and stored. A new one may
    /// start at once.
    pub(crate) fn stop(&self, room: &str) -> Result<(), ControlError> {
        lock(&self.running)
            .remove(room)
            .map(drop)
            .ok_or(ControlError::NoTranscription)
    }

    async fn publish(
        &self,
        event_type: EventType,
        spec: &TranscriptionSpec,
        data: serde_json::Value,
    ) {
        publish(&self.events, event_type, spec, data).await;
    }
}

/// Publishes a transcription event about `spec`'s room, with `data` added to the room, the
/// session and the language.
async fn publish(
    events: &EventBus,
    event_type: EventType,
    spec: &TranscriptionSpec,
    mut data: serde_json::Value,
) {
    data["room"] = json!({"id": spec.room_id, "name": spec.room_name});
    data["session_id"] = json!(spec.session_id);
    data["language"] = json!(spec.language);
    if let Err(e) = events
        .publish(NewEvent::about_room(event_type, &spec.room_id, data))
        .await
    {
        warn!(error = %e, "Publishing a room transcription event failed.");
    }
}

/// Forgets run `run` of the room named `room`, unless a later run replaced it.
fn forget(running: &Mutex<HashMap<String, Running>>, room: &str, run: u64) {
    let mut running = lock(running);
    if running.get(room).is_some_and(|running| running.run == run) {
        running.remove(room);
    }
}

/// Stores lines as they come until the transcriber ends; returns how many were stored.
async fn store(
    db: &Db,
    spec: &TranscriptionSpec,
    mut inbox: mpsc::Receiver<NewRoomTranscriptLine>,
) -> u64 {
    let mut stored = 0;
    let mut batch = Vec::new();
    while inbox.recv_many(&mut batch, STORE_QUEUE).await > 0 {
        match db
            .append_room_transcript_lines(&spec.session_id, &spec.room_id, &batch)
            .await
        {
            Ok(count) => stored += count,
            Err(e) => {
                warn!(error = %e, lines = batch.len(), "Storing transcript lines failed; they are lost.")
            }
        }
        batch.clear();
    }
    stored
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Who a microphone belongs to.
#[derive(Debug, Clone)]
struct Speaker {
    identity: String,
    name: String,
}

/// One transcribed microphone.
struct Microphone {
    speaker: Speaker,
    participant_sid: String,
    decoder: LiveSpeechAudio,
    recognition: LiveRecognition,
    clock: RtpTimeline,
    /// The partial line last sent: its id and text.
    last_partial: Option<(u64, String)>,
}

/// A microphone's RTP clock placed on the session's timeline.
#[derive(Debug, Default)]
struct RtpTimeline {
    /// The first packet: its extended RTP time and its place on the session's timeline.
    anchor: Option<(i64, f64)>,
    /// The last packet's RTP time and its extension to 64 bits.
    last_rtp: Option<(u32, i64)>,
    /// Where the audio placed last ends on the session's timeline.
    placed_end: Option<f64>,
}

impl RtpTimeline {
    /// A packet's RTP time extended past 32-bit wraps (a packet behind the last one, reordered,
    /// extends to before it); the first anchors the clock at `arrived_s` on the timeline.
    fn extend(&mut self, rtp_time: u32, arrived_s: f64) -> i64 {
        let extended = match self.last_rtp {
            Some((last, extended)) => extended + i64::from(rtp_time.wrapping_sub(last) as i32),
            None => i64::from(rtp_time),
        };
        self.last_rtp = Some((rtp_time, extended));
        self.anchor.get_or_insert((extended, arrived_s));
        extended
    }

    /// Where `seconds` on the extended RTP clock is on the session's timeline, once the first
    /// packet anchored it.
    fn on_timeline(&self, seconds: f64) -> Option<f64> {
        let (first_rtp, first_s) = self.anchor?;
        Some(first_s + seconds - first_rtp as f64 / f64::from(OPUS_CLOCK))
    }

    /// Places `duration_s` of audio at `seconds` on the extended RTP clock, which arrived at
    /// `arrived_s`: where its clock puts it, but not before the end of the audio placed last
    /// and not more than [`MAX_AHEAD_OF_ARRIVAL`] after its arrival.
    fn place(&mut self, seconds: f64, duration_s: f64, arrived_s: f64) -> Option<f64> {
        let start = self
            .on_timeline(seconds)?
            .min(arrived_s + MAX_AHEAD_OF_ARRIVAL.as_secs_f64())
            .max(self.placed_end.unwrap_or(f64::NEG_INFINITY));
        self.placed_end = Some(start + duration_s);
        Some(start)
    }
}

/// Places a microphone's decoded samples, which were ready at `now_s`, on the session's
/// timeline and hands them to its recognition.
fn recognise(
    clock: &mut RtpTimeline,
    recognition: &mut LiveRecognition,
    samples: SpeechSamples<'_>,
    now_s: f64,
) {
    if samples.samples.is_empty() {
        return;
    }
    let duration_s = samples.end_s() - samples.start_s;
    if let Some(start_s) = clock.place(samples.start_s, duration_s, now_s) {
        recognition.push(start_s, samples.samples.to_vec());
    }
}

/// The transcriber's thread: its tap's events in, lines out.
struct Transcriber {
    speech: Arc<Speech>,
    engine: mpsc::Sender<Command>,
    lines: mpsc::Sender<NewRoomTranscriptLine>,
    listeners: Listeners,
    spec: TranscriptionSpec,
    /// When the transcriber started, and where that is on the session's timeline.
    epoch: Instant,
    epoch_s: f64,
    /// By track sid.
    microphones: HashMap<String, Microphone>,
    /// Published microphones not transcribed because [`MAX_MICROPHONES`] were (each logged
    /// once), by track sid.
    refused: HashSet<String>,
}

impl Transcriber {
    fn run(mut self, tap: &Receiver<TapEvent>, stop: &Receiver<()>) {
        let mut last_poll = Instant::now();
        loop {
            match tap.recv_timeout(RECOGNISE_EVERY / 4) {
                Ok(TapEvent::Members(members)) => self.update_members(&members),
                Ok(TapEvent::Audio {
                    track_sid,
                    codec: TapCodec::Opus,
                    data,
                    rtp_time,
                    ..
                }) => self.push_audio(&track_sid, &data, rtp_time),
                Ok(TapEvent::Audio { .. } | TapEvent::Video { .. }) => {}
                Ok(TapEvent::RoomFinished) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Its sender is dropped when the run is stopped or replaced.
            if !matches!(stop.try_recv(), Err(std_mpsc::TryRecvError::Empty)) {
                break;
            }
            if last_poll.elapsed() >= RECOGNISE_EVERY / 2 {
                last_poll = Instant::now();
                let tracks: Vec<String> = self.microphones.keys().cloned().collect();
                for track_sid in tracks {
                    self.take_recognised(&track_sid);
                }
            }
        }
        let tracks: Vec<String> = self.microphones.keys().cloned().collect();
        for track_sid in tracks {
            self.finish(&track_sid);
        }
    }

    /// Opens the microphones of the room's visible participants (those who joined first
    /// first, when there are more than [`MAX_MICROPHONES`]), and finishes those no longer
    /// published.
    fn update_members(&mut self, members: &[ParticipantView]) {
        let published: Vec<(String, String, Speaker)> = members
            .iter()
            .flat_map(|member| {
                member
                    .tracks
                    .iter()
                    .filter(|track| track.kind == "audio" && track.source == "microphone")
                    .map(|track| {
                        let speaker = Speaker {
                            identity: member.identity.clone(),
                            name: member.name.clone(),
                        };
                        (track.sid.clone(), member.sid.clone(), speaker)
                    })
            })
            .collect();
        let sids: HashSet<&str> = published.iter().map(|(sid, _, _)| sid.as_str()).collect();
        let gone: Vec<String> = self
            .microphones
            .keys()
            .filter(|sid| !sids.contains(sid.as_str()))
            .cloned()
            .collect();
        for track_sid in gone {
            self.finish(&track_sid);
        }
        self.refused.retain(|sid| sids.contains(sid.as_str()));
        for (track_sid, participant_sid, speaker) in published {
            if self.microphones.contains_key(&track_sid) {
                continue;
            }
            if self.microphones.len() >= MAX_MICROPHONES {
                if self.refused.insert(track_sid.clone()) {
                    warn!(%track_sid, identity = %speaker.identity, "A microphone is not transcribed: the room has {MAX_MICROPHONES} transcribed already.");
                }
                continue;
            }
            self.refused.remove(&track_sid);
            match self.open(&speaker, participant_sid) {
                Ok(microphone) => {
                    debug!(%track_sid, identity = %speaker.identity, "A microphone is transcribed.");
                    self.microphones.insert(track_sid, microphone);
                }
                Err(e) => warn!(%track_sid, error = %e, "A microphone cannot be transcribed."),
            }
        }
    }

    fn open(&self, speaker: &Speaker, participant_sid: String) -> anyhow::Result<Microphone> {
        Ok(Microphone {
            speaker: speaker.clone(),
            participant_sid,
            decoder: LiveSpeechAudio::opus()?,
            recognition: LiveRecognition::start(
                self.speech.clone(),
                "sluice-room-speech",
                AUDIO_QUEUE,
            )?,
            clock: RtpTimeline::default(),
            last_partial: None,
        })
    }

    /// Now, on the session's timeline.
    fn now_s(&self) -> f64 {
        self.epoch_s + self.epoch.elapsed().as_secs_f64()
    }

    /// Decodes one Opus packet of a microphone and queues its speech on the session's timeline.
    fn push_audio(&mut self, track_sid: &str, data: &Bytes, rtp_time: u32) {
        let now_s = self.now_s();
        let Some(microphone) = self.microphones.get_mut(track_sid) else {
            return;
        };
        let extended = microphone.clock.extend(rtp_time, now_s);
        let packet = Packet {
            kind: TrackKind::Audio,
            timebase: Timebase(OPUS_CLOCK),
            dts: extended,
            pts: extended,
            keyframe: true,
            data: data.clone(),
        };
        match microphone.decoder.push_opus(&packet) {
            Ok(samples) => recognise(
                &mut microphone.clock,
                &mut microphone.recognition,
                samples,
                now_s,
            ),
            Err(e) => {
                debug!(%track_sid, error = %e, "An audio packet was left out of the transcription.")
            }
        }
    }

    /// Sends and stores what a microphone's recognition found since the last look.
    fn take_recognised(&mut self, track_sid: &str) {
        let Some(microphone) = self.microphones.get(track_sid) else {
            return;
        };
        let mut found = Vec::new();
        while let Some(recognised) = microphone.recognition.try_recv() {
            found.push(recognised);
        }
        for recognised in found {
            self.handle(track_sid, recognised);
        }
    }

    /// Finishes a microphone's recognition: its last lines are sent and stored.
    fn finish(&mut self, track_sid: &str) {
        let now_s = self.now_s();
        let Some(microphone) = self.microphones.get_mut(track_sid) else {
            return;
        };
        if let Ok(samples) = microphone.decoder.flush() {
            recognise(
                &mut microphone.clock,
                &mut microphone.recognition,
                samples,
                now_s,
            );
        }
        let found = microphone.recognition.finish(FINISH_WAIT);
        for recognised in found {
            self.handle(track_sid, recognised);
        }
        self.microphones.remove(track_sid);
    }

    fn handle(&mut self, track_sid: &str, recognised: Recognised) {
        let Some(microphone) = self.microphones.get_mut(track_sid) else {
            return;
        };
        match recognised {
            Recognised::Partial(line) => {
                let unchanged = microphone
                    .last_partial
                    .as_ref()
                    .is_some_and(|(id, text)| *id == line.id && *text == line.text);
                if unchanged || line.text.trim().is_empty() {
                    return;
                }
                microphone.last_partial = Some((line.id, line.text.clone()));
                let transcription = self.segment(track_sid, &line, false);
                // A partial line is soon replaced: it waits for no one.
                let _ = self.engine.try_send(Command::Control(transcription));
            }
            Recognised::Lines(lines) => {
                for line in lines {
                    if line.text.trim().is_empty() {
                        continue;
                    }
                    let Some(microphone) = self.microphones.get(track_sid) else {
                        return;
                    };
                    let stored = NewRoomTranscriptLine {
                        participant_sid: microphone.participant_sid.clone(),
                        participant_identity: microphone.speaker.identity.clone(),
                        participant_name: microphone.speaker.name.clone(),
                        track_sid: track_sid.to_owned(),
                        start_ms: millis(line.start_s),
                        end_ms: millis(line.end_s),
                        text: line.text.trim().to_owned(),
                    };
                    let transcription = self.segment(track_sid, &line, true);
                    if self
                        .engine
                        .blocking_send(Command::Control(transcription))
                        .is_err()
                    {
                        debug!("The room engine stopped; a line was not sent.");
                    }
                    self.tell_listeners(SpokenLine {
                        start: self.instant(line.start_s),
                        end: self.instant(line.end_s),
                        speaker: if stored.participant_name.is_empty() {
                            stored.participant_identity.clone()
                        } else {
                            stored.participant_name.clone()
                        },
                        text: stored.text.clone(),
                    });
                    if self.lines.blocking_send(stored).is_err() {
                        warn!("A transcript line was lost: its store stopped.");
                    }
                }
            }
            Recognised::Settled(_) | Recognised::Done => {}
        }
    }

    /// When `seconds` on the session's timeline is, by the process's clock.
    fn instant(&self, seconds: f64) -> Instant {
        let from_epoch = seconds - self.epoch_s;
        if from_epoch >= 0.0 {
            self.epoch + Duration::from_secs_f64(from_epoch)
        } else {
            self.epoch
                .checked_sub(Duration::from_secs_f64(-from_epoch))
                .unwrap_or(self.epoch)
        }
    }

    /// Gives a line to the room's listeners; those gone are forgotten.
    fn tell_listeners(&self, line: SpokenLine) {
        let mut listeners = lock(&self.listeners);
        let room = &self.spec.room_name;
        if let Some(listening) = listeners.get_mut(room) {
            listening.retain(|listener| {
                !matches!(
                    listener.try_send(line.clone()),
                    Err(std_mpsc::TrySendError::Disconnected(_))
                )
            });
            if listening.is_empty() {
                listeners.remove(room);
            }
        }
    }

    /// The transcription packet of one line of a microphone.
    fn segment(&self, track_sid: &str, line: &Line, complete: bool) -> Control {
        let speaker = &self.microphones[track_sid].speaker;
        Control::Transcription {
            room: self.spec.room_name.clone(),
            transcription: proto::Transcription {
                transcribed_participant_identity: speaker.identity.clone(),
                track_id: track_sid.to_owned(),
                segments: vec![proto::TranscriptionSegment {
                    id: format!("{track_sid}-{}", line.id),
                    text: line.text.trim().to_owned(),
                    start_time: millis(line.start_s).max(0) as u64,
                    end_time: millis(line.end_s).max(0) as u64,
                    r#final: complete,
                    language: self.spec.language.clone(),
                }],
            },
        }
    }
}

/// Seconds on the session's timeline as whole milliseconds.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_times_extend_past_wraps_and_place_samples_from_the_first_arrival() {
        let mut clock = RtpTimeline::default();
        assert_eq!(clock.on_timeline(1.0), None, "no packet yet");
        let first = u32::MAX - 959;
        assert_eq!(clock.extend(first, 12.5), i64::from(first));
        // 20 ms later the clock wrapped.
        assert_eq!(clock.extend(0, 99.0), i64::from(first) + 960);
        // A reordered packet from before the wrap.
        assert_eq!(clock.extend(u32::MAX - 479, 99.0), i64::from(first) + 480);
        let at = |extended: i64| clock.on_timeline(extended as f64 / f64::from(OPUS_CLOCK));
        assert_eq!(
            at(i64::from(first)),
            Some(12.5),
            "the first packet's arrival"
        );
        // One second of RTP clock later is one second later, whenever it arrived.
        let one_second_on = at(i64::from(first) + 48_000).unwrap();
        assert!((one_second_on - 13.5).abs() < 1e-9, "{one_second_on}");
    }

    #[test]
    fn a_senders_clock_can_neither_step_audio_back_nor_run_it_ahead_of_its_arrival() {
        let mut clock = RtpTimeline::default();
        clock.extend(0, 10.0);
        let close = |placed: Option<f64>, expected: f64| {
            let placed = placed.unwrap();
            assert!(
                (placed - expected).abs() < 1e-9,
                "{placed} against {expected}"
            );
        };
        // In step with its arrival: where the RTP clock says.
        close(clock.place(0.0, 0.02, 10.0), 10.0);
        close(clock.place(0.02, 0.02, 10.02), 10.02);
        // A DTX gap keeps its length.
        close(clock.place(1.0, 0.02, 11.0), 11.0);
        // Two seconds ahead of the clock in one packet: held at half a second past its arrival.
        close(clock.place(3.02, 0.02, 11.02), 11.52);
        // A step back (or a reordered packet) is appended after what was placed last.
        close(clock.place(0.5, 0.02, 11.04), 11.54);
        close(clock.place(0.52, 0.02, 11.06), 11.56);
    }
}
