//! Restreaming (simulcast): while a session is live, its media is pushed to every simulcast
//! target of its stream with Sluice's own RTMP client (`sluice_ingest::RtmpPublisher`), over
//! TCP or TLS (`rtmps://`).
//!
//! ```text
//! RTMP task ──publisher's packets──> Tap ──try_send──> bounded queue ──> target task ──> RTMP server
//! forwarder ──rung packets─────────┘                    (one per target)
//! ```
//!
//! * [`Restreamer::start`] runs with the session: one task per target of the stream, and a task
//!   following the event bus so targets created or deleted while live start or stop at once.
//! * [`Tap`] is what the session feeds; it never blocks. Each target has a bounded queue
//!   (`[restream] queue_packets`): when it is full the target drops everything up to the next
//!   video keyframe and counts the drops, so a slow target never slows ingest, the ladder or
//!   the other targets.
//! * `rendition: "source"` sends the publisher's own H.264 and AAC packets; a rung name sends
//!   that rung's encoded H.264 packets with the publisher's AAC audio. A publisher whose video
//!   cannot be sent as it came (VP8 over WebRTC, a room composite's uncompressed pictures) has
//!   its `source` targets sent the ladder's top H.264 rung (the largest) instead, with the same
//!   audio; which video a target's rendition takes is decided in one place (`Feed`). MP3
//!   audio is not sent
//!   (targets then get video only): RTMP servers expect AAC, and the MP3→AAC transcode runs on
//!   the packaging thread, after the taps. AV1 rungs cannot be restreamed (legacy RTMP carries
//!   H.264).
//! * A target that refuses, fails or stalls (the write deadline is the connect timeout) is
//!   marked `errored` and retried with jittered exponential backoff while the session lasts.
//!   Every connection resolves the host again under the `[restream] allow_hosts` address
//!   policy and connects to the address that was checked.
//! * When the session ends or the target is removed, a live connection sends what is still
//!   queued (an encoder's last frames included) and unpublishes (FCUnpublish, deleteStream)
//!   within [`FINISH_GRACE`]; only a target that cannot take it by then sees its connection
//!   dropped.
//! * Status, last error and bytes sent are written to the target's row on every transition and
//!   every few seconds while live; `simulcast_target.connected`, `.errored` and
//!   `.disconnected` are published on transitions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_ingest::flv::{aac_frame, aac_sequence_header, avc_frame, avc_sequence_header};
use sluice_ingest::{
    tls_connect, Amf0Value, ClientConfig, ClientError, MediaKind, RtmpPublisher, RtmpUrl,
};
use sluice_media::{
    AudioSpecificConfig, AvcConfig, Packet, Timebase, TrackKind, VideoCodec, VideoConfig,
};
use sluice_storage::{
    Db, EventBus, EventType, LiveStreamId, NewEvent, SimulcastTarget, SimulcastTargetId,
    SimulcastTargetStatus, SOURCE_RENDITION,
};
use sluice_transcoder::{PlannedRung, TranscoderOutput};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::address_policy::AddressPolicy;
use crate::event_views::EventViews;

/// How often a live target's bytes sent are written to its row.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a connection must last for the backoff to start again from its minimum.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// How long a live target's connection may take, once stopped, to send what is still queued
/// and unpublish.
const FINISH_GRACE: Duration = Duration::from_secs(3);
/// How long stopping waits for the target tasks to end (their [`FINISH_GRACE`] and last
/// status write) before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How restreaming behaves (`[restream]`).
#[derive(Clone, Debug)]
pub struct RestreamSettings {
    /// Which addresses targets may be on.
    pub addresses: AddressPolicy,
    /// Packets one target may have waiting.
    pub queue_packets: usize,
    /// Longest a connection attempt (TCP, TLS, handshake, publish) or one write may take.
    pub connect_timeout: Duration,
    /// First and longest pause between attempts of a failing target.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Parses a target URL and resolves its host under `addresses`: what to connect to.
pub async fn resolve_target(
    addresses: &AddressPolicy,
    url: &str,
) -> Result<(RtmpUrl, SocketAddr), String> {
    let parsed = RtmpUrl::parse(url).map_err(|e| e.to_string())?;
    let address = addresses
        .resolve("the target URL", &parsed.host, parsed.port)
        .await?;
    Ok((parsed, address))
}

/// One media item on its way to a target, already in the target's rendition.
#[derive(Debug)]
enum Item {
    Video(Packet),
    Audio(Packet),
}

/// A target's end of the tap.
struct Outlet {
    target_id: SimulcastTargetId,
    rendition: String,
    queue: mpsc::Sender<Item>,
    /// Set when the queue overflowed: everything is dropped up to the next video keyframe.
    skipping: AtomicBool,
    dropped: Arc<AtomicU64>,
}

impl Outlet {
    fn offer(&self, item: Item) {
        let keyframe = matches!(&item, Item::Video(packet) if packet.keyframe);
        if self.skipping.load(Ordering::Relaxed) && !keyframe {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.queue.try_send(item) {
            Ok(()) => self.skipping.store(false, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.skipping.swap(true, Ordering::Relaxed) {
                    debug!(simulcast_target_id = %self.target_id, "Target behind; dropping to the next keyframe.");
                }
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The target is ending; it leaves the tap when its task ends.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The decoder configurations targets need before their first packet.
#[derive(Default)]
struct Configs {
    /// Whether the session's source is known (its pipeline started).
    source_known: bool,
    /// The source's H.264 configuration; `None` for a source that cannot be sent as it came
    /// (VP8 from WebRTC, uncompressed pictures).
    source_video: Option<AvcConfig>,
    audio: Option<AudioSpecificConfig>,
    /// Rung index → (name, configuration once known).
    rungs: Vec<(String, Option<VideoConfig>)>,
    /// The rung `source` targets take when the source's video cannot be sent as it came: the
    /// ladder's top H.264 rung.
    source_stand_in: Option<usize>,
}

/// Where the video of a target's rendition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// The publisher's own H.264 packets.
    Publisher,
    /// The transcoder's packets of the rung at this index.
    Rung(usize),
}

impl Configs {
    /// Where `rendition`'s video comes from in this session, if it has it: `source` is the
    /// publisher's own video, or the top H.264 rung when that cannot be sent as it came; any
    /// other name is the rung of that name.
    fn feed(&self, rendition: &str) -> Option<Feed> {
        if rendition == SOURCE_RENDITION {
            return match self.source_video {
                Some(_) => Some(Feed::Publisher),
                None => self.source_stand_in.map(Feed::Rung),
            };
        }
        self.rungs
            .iter()
            .position(|(name, _)| name == rendition)
            .map(Feed::Rung)
    }
}

/// The index of the ladder's top H.264 rung: the largest picture, then the highest bitrate.
fn top_h264_rung(rungs: &[PlannedRung]) -> Option<usize> {
    rungs
        .iter()
        .enumerate()
        .filter_map(|(index, rung)| match rung {
            PlannedRung::Encode(target) if target.codec == VideoCodec::H264 => Some((
                index,
                (
                    u64::from(target.width) * u64::from(target.height),
                    target.bitrate_kbps,
                ),
            )),
            _ => None,
        })
        .max_by_key(|(_, size)| *size)
        .map(|(index, _)| index)
}

#[derive(Default)]
struct TapState {
    configs: Configs,
    outlets: Vec<Arc<Outlet>>,
}

/// Where a session's media enters restreaming. Cheap to clone; every call returns at once.
#[derive(Clone, Default)]
pub struct Tap {
    state: Arc<Mutex<TapState>>,
    configs_changed: Arc<tokio::sync::Notify>,
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The publisher's tracks, once the pipeline starts: `video` only when it can be sent as
    /// it came (H.264), `audio` only when it is AAC.
    pub fn set_source(&self, video: Option<&AvcConfig>, audio: Option<&AudioSpecificConfig>) {
        let mut state = self.lock();
        state.configs.source_known = true;
        state.configs.source_video = video.cloned();
        state.configs.audio = audio.cloned();
        drop(state);
        self.configs_changed.notify_waiters();
    }

    /// The ladder's rungs, in transcoder output order.
    pub fn set_rungs(&self, rungs: &[PlannedRung]) {
        let mut state = self.lock();
        state.configs.rungs = rungs
            .iter()
            .map(|rung| (rung.name().to_owned(), None))
            .collect();
        state.configs.source_stand_in = top_h264_rung(rungs);
        drop(state);
        self.configs_changed.notify_waiters();
    }

    /// A packet from the publisher.
    pub fn source_packet(&self, packet: &Packet) {
        let state = self.lock();
        for outlet in &state.outlets {
            let item = match packet.kind {
                TrackKind::Video
                    if state.configs.feed(&outlet.rendition) == Some(Feed::Publisher) =>
                {
                    Item::Video(packet.clone())
                }
                TrackKind::Audio if state.configs.audio.is_some() => Item::Audio(packet.clone()),
                _ => continue,
            };
            outlet.offer(item);
        }
    }

    /// Something the transcoder produced (rung configurations and packets).
    pub fn transcoder_output(&self, output: &TranscoderOutput) {
        let mut state = self.lock();
        match output {
            TranscoderOutput::Config { rung, config } => {
                if let Some(slot) = state.configs.rungs.get_mut(*rung) {
                    slot.1 = Some(config.clone());
                }
                drop(state);
                self.configs_changed.notify_waiters();
            }
            TranscoderOutput::Packet { rung, packet } => {
                // The ladder's own `source` rung is the publisher's video, which no rendition
                // takes from here: `source_packet` sends it.
                let feed = Some(Feed::Rung(*rung));
                for outlet in &state.outlets {
                    if state.configs.feed(&outlet.rendition) == feed {
                        outlet.offer(Item::Video(packet.clone()));
                    }
                }
            }
            TranscoderOutput::Finished { .. } => {}
        }
    }

    /// The video and audio configurations of `rendition`, once known; an error when the
    /// rendition cannot be restreamed in this session.
    fn configs_for(
        &self,
        rendition: &str,
    ) -> Option<Result<(AvcConfig, Option<AudioSpecificConfig>), String>> {
        let state = self.lock();
        let configs = &state.configs;
        let audio = configs.audio.clone();
        // Rungs are known once the pipeline started, which is when the source is.
        if !configs.source_known {
            return None;
        }
        let rung = match configs.feed(rendition) {
            Some(Feed::Publisher) => {
                return configs.source_video.clone().map(|video| Ok((video, audio)));
            }
            Some(Feed::Rung(index)) => &configs.rungs[index].1,
            None if rendition == SOURCE_RENDITION => {
                return Some(Err(
                    "the publisher's video cannot be sent as it came and this session's ladder has no H.264 rung to send instead"
                        .to_owned(),
                ))
            }
            None => {
                return Some(Err(format!(
                    "rendition {rendition:?} is not part of this session's ladder (rungs taller than the source are left out)"
                )))
            }
        };
        match rung {
            None => None,
            Some(VideoConfig::Avc(config)) => Some(Ok((config.clone(), audio))),
            Some(VideoConfig::Av1(_)) => Some(Err(format!(
                "rendition {rendition:?} is AV1, which RTMP does not carry"
            ))),
        }
    }

    fn attach(&self, outlet: Arc<Outlet>) {
        self.lock().outlets.push(outlet);
    }

    fn detach(&self, target_id: &str) {
        self.lock().outlets.retain(|o| o.target_id != target_id);
    }
}

/// Restreaming of one session: its targets' tasks and the task following target changes.
pub struct Restreamer {
    tap: Tap,
    stop: watch::Sender<bool>,
    manager: tokio::task::JoinHandle<()>,
}

/// What every target task of a session shares.
#[derive(Clone)]
struct Context {
    db: Db,
    events: EventBus,
    views: Arc<dyn EventViews>,
    settings: Arc<RestreamSettings>,
    tap: Tap,
}

impl Restreamer {
    /// Starts restreaming `live_stream_id` to its targets, following changes to them.
    pub fn start(
        db: Db,
        events: EventBus,
        views: Arc<dyn EventViews>,
        settings: Arc<RestreamSettings>,
        live_stream_id: &LiveStreamId,
    ) -> Self {
        let tap = Tap::default();
        let (stop, stopping) = watch::channel(false);
        let context = Context {
            db,
            events,
            views,
            settings,
            tap: tap.clone(),
        };
        let live_stream_id = live_stream_id.to_owned();
        let span = tracing::info_span!("restream", live_stream_id = %live_stream_id);
        let manager = tokio::spawn(manage(context, live_stream_id, stopping).instrument(span));
        Restreamer { tap, stop, manager }
    }

    /// Where the session feeds its media.
    pub fn tap(&self) -> Tap {
        self.tap.clone()
    }

    /// Ends every target's connection (marking it idle) and waits for that, briefly.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.manager.await {
            warn!(error = %e, "The restreaming task ended abnormally.");
        }
    }
}

/// Runs the targets of a stream until `stopping`, starting and stopping them as the event bus
/// reports them created and deleted.
async fn manage(
    context: Context,
    live_stream_id: LiveStreamId,
    mut stopping: watch::Receiver<bool>,
) {
    // Subscribed before listing, so a target created meanwhile is not missed (a duplicate is
    // ignored).
    let mut bus = context.events.subscribe();
    let mut running: HashMap<SimulcastTargetId, watch::Sender<bool>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let start = |target: SimulcastTarget,
                 running: &mut HashMap<SimulcastTargetId, watch::Sender<bool>>,
                 tasks: &mut JoinSet<()>| {
        if running.contains_key(&target.id) {
            return;
        }
        let (stop, stopped) = watch::channel(false);
        running.insert(target.id.clone(), stop);
        let span = tracing::info_span!("target", simulcast_target_id = %target.id);
        tasks.spawn(run_target(context.clone(), target, stopped).instrument(span));
    };
    match context.db.list_simulcast_targets(&live_stream_id).await {
        Ok(targets) => {
            for target in targets {
                start(target, &mut running, &mut tasks);
            }
        }
        Err(e) => warn!(error = %e, "Could not list the simulcast targets."),
    }
    loop {
        let event = tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            event = bus.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // Targets changed while the bus ran ahead: reconcile with the table.
                debug!(missed, "Events missed; re-reading the simulcast targets.");
                if let Ok(targets) = context.db.list_simulcast_targets(&live_stream_id).await {
                    running.retain(|id, stop| {
                        let keep = targets.iter().any(|t| &t.id == id);
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for target in targets {
                        start(target, &mut running, &mut tasks);
                    }
                }
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        let for_this_stream = event.data.get("live_stream_id").and_then(|v| v.as_str())
            == Some(live_stream_id.as_str());
        if !for_this_stream {
            continue;
        }
        match EventType::parse(&event.event_type) {
            Some(EventType::SimulcastTargetCreated) => {
                let Ok(target_id) = SimulcastTargetId::parse(&event.object.id) else {
                    continue;
                };
                match context.db.get_simulcast_target(&target_id).await {
                    Ok(Some(target)) => {
                        info!(simulcast_target_id = %target.id, "Target added while live; connecting.");
                        start(target, &mut running, &mut tasks);
                    }
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "Could not read a new simulcast target."),
                }
            }
            Some(EventType::SimulcastTargetDeleted) => {
                if let Some(stop) = running.remove(event.object.id.as_str()) {
                    info!(simulcast_target_id = %event.object.id, "Target removed while live; disconnecting.");
                    let _ = stop.send(true);
                }
            }
            _ => {}
        }
    }
    for stop in running.values() {
        let _ = stop.send(true);
    }
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("Simulcast targets did not stop in time; dropping their connections.");
        tasks.abort_all();
    }
}

/// Why a connection to a target ended.
enum Ended {
    /// The session ended or the target was removed.
    Stopped,
    Failed(String),
}

/// A target's failure as logged and shown (`last_error`): the remote server's text may repeat
/// the stream key it was given, which is a secret.
fn without_stream_key(error: String, stream_key: &str) -> String {
    if stream_key.is_empty() || !error.contains(stream_key) {
        return error;
    }
    error.replace(stream_key, "[stream key]")
}

/// Runs one target for the session: connect, send, and retry with backoff until stopped.
async fn run_target(context: Context, target: SimulcastTarget, mut stopped: watch::Receiver<bool>) {
    let (queue, mut inbox) = mpsc::channel(context.settings.queue_packets.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let outlet = Arc::new(Outlet {
        target_id: target.id.clone(),
        rendition: target.rendition.clone(),
        queue,
        skipping: AtomicBool::new(true),
        dropped: dropped.clone(),
    });
    context.tap.attach(outlet.clone());
    let mut reporter = Reporter {
        context: context.clone(),
        target_id: target.id.clone(),
        bytes_sent: target.bytes_sent,
        status: None,
    };
    let mut delay = context.settings.retry_min;
    loop {
        reporter.set(SimulcastTargetStatus::Connecting, None).await;
        let started = Instant::now();
        let ended = {
            let mut connection = std::pin::pin!(connect_and_send(
                &context,
                &target,
                &mut inbox,
                &outlet,
                &mut reporter,
                stopped.clone(),
            ));
            tokio::select! {
                ended = &mut connection => ended,
                // The connection sees the stop too: it sends what is queued and unpublishes,
                // which may take this long.
                () = until_stopped(&mut stopped) => {
                    match tokio::time::timeout(FINISH_GRACE, &mut connection).await {
                        Ok(ended) => ended,
                        Err(_) => {
                            warn!(grace = ?FINISH_GRACE, "The target did not take the end of the stream in time; dropping its connection.");
                            Ended::Stopped
                        }
                    }
                }
            }
        };
        match ended {
            Ended::Stopped => break,
            Ended::Failed(error) => {
                let error = without_stream_key(error, &target.stream_key);
                warn!(error = %error, retry_in = ?delay, "Simulcast target failed; retrying.");
                reporter
                    .set(SimulcastTargetStatus::Errored, Some(error))
                    .await;
            }
        }
        if started.elapsed() >= STABLE_CONNECTION {
            delay = context.settings.retry_min;
        }
        // Full jitter on the upper half: between delay/2 and delay.
        let pause = delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            () = until_stopped(&mut stopped) => break,
        }
        delay = (delay * 2).min(context.settings.retry_max);
    }
    context.tap.detach(&target.id);
    let drops = dropped.load(Ordering::Relaxed);
    if drops > 0 {
        info!(
            dropped = drops,
            "Packets dropped for this target because it fell behind."
        );
    }
    reporter.set(SimulcastTargetStatus::Idle, None).await;
}

/// Returns once `stopped` says stop (or its sender is gone), holding nothing of it.
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Writes a target's state to its row and publishes the transition events.
struct Reporter {
    context: Context,
    target_id: SimulcastTargetId,
    bytes_sent: u64,
    status: Option<SimulcastTargetStatus>,
}

impl Reporter {
    async fn set(&mut self, status: SimulcastTargetStatus, error: Option<String>) {
        let previous = self.status.replace(status);
        let stored = self
            .context
            .db
            .set_simulcast_target_state(&self.target_id, status, error.as_deref(), self.bytes_sent)
            .await;
        let target = match stored {
            Ok(Some(target)) => target,
            // Deleted: `simulcast_target.deleted` said the last word.
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "Could not record the simulcast target's state.");
                return;
            }
        };
        let event_type = match (previous, status) {
            (_, SimulcastTargetStatus::Live) => EventType::SimulcastTargetConnected,
            (_, SimulcastTargetStatus::Errored) => EventType::SimulcastTargetErrored,
            (Some(SimulcastTargetStatus::Live), _) => EventType::SimulcastTargetDisconnected,
            _ => return,
        };
        let event = NewEvent::new(
            event_type,
            &target.id.clone(),
            self.context.views.simulcast_target(target),
        );
        if let Err(e) = self.context.events.publish(event).await {
            warn!(error = %e, "Could not record a simulcast target event.");
        }
    }

    async fn progress(&mut self, bytes_sent: u64) {
        self.bytes_sent = bytes_sent;
        if let Err(e) = self
            .context
            .db
            .set_simulcast_target_state(
                &self.target_id,
                SimulcastTargetStatus::Live,
                None,
                bytes_sent,
            )
            .await
        {
            warn!(error = %e, "Could not record the simulcast target's progress.");
        }
    }
}

/// Any stream a publisher can run over (TCP, or TLS around it).
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A connection publishing to a target, with the configurations its stream starts with.
struct Connection {
    publisher: RtmpPublisher<Box<dyn Transport>>,
    video: AvcConfig,
    audio: Option<AudioSpecificConfig>,
}

/// One connection: connects (unless `stopped` first), then sends until something fails or,
/// once `stopped`, until what is queued has been sent and the publish ended.
async fn connect_and_send(
    context: &Context,
    target: &SimulcastTarget,
    inbox: &mut mpsc::Receiver<Item>,
    outlet: &Outlet,
    reporter: &mut Reporter,
    mut stopped: watch::Receiver<bool>,
) -> Ended {
    let connected = tokio::select! {
        connected = connect(context, target) => connected,
        () = until_stopped(&mut stopped) => return Ended::Stopped,
    };
    let Connection {
        mut publisher,
        video,
        audio,
    } = match connected {
        Ok(connection) => connection,
        Err(error) => return Ended::Failed(error),
    };
    let base_bytes = reporter.bytes_sent;
    info!(url = %target.url, "Restreaming to the target.");
    // Whatever waited in the queue predates this connection: start again at a keyframe.
    while inbox.try_recv().is_ok() {}
    outlet.skipping.store(true, Ordering::Relaxed);
    let sent = send_headers(&mut publisher, &video, audio.as_ref()).await;
    if let Err(e) = sent {
        return Ended::Failed(e.to_string());
    }
    reporter.bytes_sent = base_bytes + publisher.bytes_sent();
    reporter.set(SimulcastTargetStatus::Live, None).await;
    let mut clock = StreamClock::default();
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut ending = false;
    loop {
        let item = tokio::select! {
            item = inbox.recv() => item,
            read = publisher.read_some(&mut buf) => {
                match read {
                    Ok(0) => return Ended::Failed("the server closed the connection".to_owned()),
                    Ok(n) => {
                        if let Err(e) = publisher.handle_server_bytes(&buf[..n]).await {
                            return Ended::Failed(e.to_string());
                        }
                        continue;
                    }
                    Err(e) => return Ended::Failed(format!("reading from the server: {e}")),
                }
            }
            () = until_stopped(&mut stopped), if !ending => {
                // The session ended or the target was removed: what is queued now is the end
                // of the stream.
                inbox.close();
                ending = true;
                continue;
            }
        };
        let Some(item) = item else {
            reporter.bytes_sent = base_bytes + publisher.bytes_sent();
            if let Err(e) = publisher.finish().await {
                let error = without_stream_key(describe(e), &target.stream_key);
                warn!(error = %error, "Could not end the publish on the target.");
            }
            return Ended::Stopped;
        };
        let result = match item {
            Item::Video(packet) => match clock.millis(&packet, true) {
                Some(at) => {
                    publisher
                        .send_media(MediaKind::Video, at, avc_frame(&packet))
                        .await
                }
                None => Ok(()),
            },
            Item::Audio(packet) => match clock.millis(&packet, false) {
                Some(at) => {
                    publisher
                        .send_media(MediaKind::Audio, at, aac_frame(&packet))
                        .await
                }
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            return Ended::Failed(describe(e));
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            reporter.progress(base_bytes + publisher.bytes_sent()).await;
        }
    }
}

/// Waits for the rendition's configuration, then connects and publishes.
async fn connect(context: &Context, target: &SimulcastTarget) -> Result<Connection, String> {
    let (video, audio) = loop {
        let changed = context.tap.configs_changed.notified();
        match context.tap.configs_for(&target.rendition) {
            Some(configs) => break configs?,
            None => changed.await,
        }
    };
    let timeout = context.settings.connect_timeout;
    let (url, address) = resolve_target(&context.settings.addresses, &target.url).await?;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connecting to {address}: {e}")),
        Err(_) => {
            return Err(format!(
                "connecting to {address} took longer than {timeout:?}"
            ))
        }
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = if url.tls {
        match tokio::time::timeout(timeout, tls_connect(tcp, &url.host)).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => return Err(format!("TLS with {}: {e}", url.host)),
            Err(_) => {
                return Err(format!(
                    "TLS with {} took longer than {timeout:?}",
                    url.host
                ))
            }
        }
    } else {
        Box::new(tcp)
    };
    let config = ClientConfig::new(&url, &target.stream_key);
    let publisher = RtmpPublisher::publish(stream, config, timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Connection {
        publisher,
        video,
        audio,
    })
}

fn describe(error: ClientError) -> String {
    match error {
        ClientError::Timeout(after) => {
            format!("the target stalled: a write took longer than {after:?}")
        }
        other => other.to_string(),
    }
}

/// Metadata and sequence headers, sent once per connection before any frame.
async fn send_headers<S: AsyncRead + AsyncWrite + Unpin>(
    publisher: &mut RtmpPublisher<S>,
    video: &AvcConfig,
    audio: Option<&AudioSpecificConfig>,
) -> Result<(), ClientError> {
    let mut properties = vec![
        (
            "width".to_owned(),
            Amf0Value::Number(f64::from(video.width)),
        ),
        (
            "height".to_owned(),
            Amf0Value::Number(f64::from(video.height)),
        ),
        ("videocodecid".to_owned(), Amf0Value::Number(7.0)),
        ("encoder".to_owned(), Amf0Value::string("Sluice")),
    ];
    if let Some(fps) = video.sps_frame_rate {
        properties.push(("framerate".to_owned(), Amf0Value::Number(fps)));
    }
    if let Some(audio) = audio {
        properties.push(("audiocodecid".to_owned(), Amf0Value::Number(10.0)));
        properties.push((
            "audiosamplerate".to_owned(),
            Amf0Value::Number(f64::from(audio.sample_rate)),
        ));
        properties.push((
            "audiochannels".to_owned(),
            Amf0Value::Number(f64::from(audio.channels)),
        ));
    }
    publisher.send_metadata(properties).await?;
    publisher
        .send_media(MediaKind::Video, 0, avc_sequence_header(video))
        .await?;
    if let Some(audio) = audio {
        publisher
            .send_media(MediaKind::Audio, 0, aac_sequence_header(audio))
            .await?;
    }
    Ok(())
}

/// RTMP timestamps of one connection: milliseconds since its first video keyframe.
#[derive(Default)]
struct StreamClock {
    base: Option<i64>,
}

impl StreamClock {
    /// The timestamp of `packet`, or `None` for what comes before the first keyframe (which
    /// the target could not decode).
    fn millis(&mut self, packet: &Packet, video: bool) -> Option<u64> {
        let dts = packet.timebase.rescale(packet.dts, Timebase::MILLIS);
        let base = match self.base {
            Some(base) => base,
            None if video && packet.keyframe => *self.base.insert(dts),
            None => return None,
        };
        u64::try_from(dts - base).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_media::fixtures;

    #[test]
    fn a_failure_never_repeats_the_stream_key() {
        let error = "publish refused: NetStream.Publish.BadName (live_sk_123 is not a valid key)";
        assert_eq!(
            without_stream_key(error.to_owned(), "live_sk_123"),
            "publish refused: NetStream.Publish.BadName ([stream key] is not a valid key)"
        );
        assert_eq!(without_stream_key("refused".to_owned(), ""), "refused");
    }

    fn packet(kind: TrackKind, dts: i64, keyframe: bool) -> Packet {
        Packet {
            kind,
            timebase: Timebase::MPEG,
            dts,
            pts: dts,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    #[test]
    fn the_clock_starts_at_the_first_keyframe() {
        let mut clock = StreamClock::default();
        assert_eq!(
            clock.millis(&packet(TrackKind::Audio, 90_000, true), false),
            None
        );
        assert_eq!(
            clock.millis(&packet(TrackKind::Video, 90_000, false), true),
            None
        );
        assert_eq!(
            clock.millis(&packet(TrackKind::Video, 180_000, true), true),
            Some(0)
        );
        assert_eq!(
            clock.millis(&packet(TrackKind::Audio, 179_910, false), false),
            None
        );
        assert_eq!(
            clock.millis(&packet(TrackKind::Audio, 183_600, false), false),
            Some(40)
        );
    }

    /// The ladder `rungs` planned for a 1280×720 source, without its `source` entry when the
    /// source cannot be sent as it came (as `pipeline::plan_ladder` leaves it out).
    fn planned(rungs: serde_json::Value, passthrough: bool) -> Vec<PlannedRung> {
        let ladder = sluice_media::Ladder::from_request(&rungs).unwrap();
        let mut planned = sluice_transcoder::plan(&ladder, 1280, 720, Some(30.0)).unwrap();
        planned.retain(|rung| passthrough || matches!(rung, PlannedRung::Encode(_)));
        planned
    }

    /// A target's outlet taking every item at once, and its queue.
    fn outlet(tap: &Tap, rendition: &str) -> mpsc::Receiver<Item> {
        let (queue, inbox) = mpsc::channel(16);
        tap.attach(Arc::new(Outlet {
            target_id: SimulcastTargetId::parse("st_x").unwrap(),
            rendition: rendition.to_owned(),
            queue,
            skipping: AtomicBool::new(false),
            dropped: Arc::default(),
        }));
        inbox
    }

    /// The items waiting in `inbox`, as `video 3` (a rung's packet, by dts) or `audio`.
    fn queued(inbox: &mut mpsc::Receiver<Item>) -> Vec<String> {
        std::iter::from_fn(|| inbox.try_recv().ok())
            .map(|item| match item {
                Item::Video(packet) => format!("video {}", packet.dts),
                Item::Audio(_) => "audio".to_owned(),
            })
            .collect()
    }

    fn aac() -> AudioSpecificConfig {
        AudioSpecificConfig::new(2, 48_000, 2).unwrap()
    }

    #[test]
    fn the_top_h264_rung_is_the_largest_wherever_the_ladder_lists_it() {
        let rungs = planned(serde_json::json!(["source", "360p", "720p", "480p"]), true);
        assert_eq!(top_h264_rung(&rungs), Some(2));
        assert_eq!(
            top_h264_rung(&planned(serde_json::json!(["source"]), true)),
            None
        );
    }

    #[test]
    fn source_targets_of_a_source_that_cannot_be_sent_as_it_came_take_the_top_rung() {
        let tap = Tap::default();
        let mut source_target = outlet(&tap, SOURCE_RENDITION);
        let mut rung_target = outlet(&tap, "360p");
        tap.set_rungs(&planned(
            serde_json::json!(["source", "360p", "720p"]),
            false,
        ));
        tap.set_source(None, Some(&aac()));
        assert!(
            tap.configs_for(SOURCE_RENDITION).is_none(),
            "waits for the 720p rung's configuration"
        );
        let top = fixtures::avc_320x240();
        tap.transcoder_output(&TranscoderOutput::Config {
            rung: 1,
            config: VideoConfig::Avc(top.clone()),
        });
        let Some(Ok((video, audio))) = tap.configs_for(SOURCE_RENDITION) else {
            panic!("the top rung's configuration");
        };
        assert_eq!((video, audio), (top, Some(aac())));

        tap.source_packet(&packet(TrackKind::Video, 1, true));
        tap.source_packet(&packet(TrackKind::Audio, 2, true));
        for rung in [0, 1] {
            tap.transcoder_output(&TranscoderOutput::Packet {
                rung,
                packet: packet(TrackKind::Video, 10 + rung as i64, true),
            });
        }
        assert_eq!(queued(&mut source_target), ["audio", "video 11"]);
        assert_eq!(queued(&mut rung_target), ["audio", "video 10"]);
    }

    #[test]
    fn source_targets_of_an_h264_publisher_take_its_own_packets() {
        let tap = Tap::default();
        let mut source_target = outlet(&tap, SOURCE_RENDITION);
        tap.set_rungs(&planned(serde_json::json!(["source", "360p"]), true));
        let publisher = fixtures::avc_320x240();
        tap.set_source(Some(&publisher), None);
        assert!(matches!(
            tap.configs_for(SOURCE_RENDITION),
            Some(Ok((video, None))) if video == publisher
        ));
        assert!(matches!(tap.configs_for("1080p"), Some(Err(_))));

        tap.source_packet(&packet(TrackKind::Video, 1, true));
        for rung in [0, 1] {
            tap.transcoder_output(&TranscoderOutput::Packet {
                rung,
                packet: packet(TrackKind::Video, 10 + rung as i64, true),
            });
        }
        assert_eq!(queued(&mut source_target), ["video 1"]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_until_the_next_keyframe() {
        let (queue, mut inbox) = mpsc::channel(2);
        let outlet = Outlet {
            target_id: SimulcastTargetId::parse("st_x").unwrap(),
            rendition: SOURCE_RENDITION.into(),
            queue,
            skipping: AtomicBool::new(true),
            dropped: Arc::default(),
        };
        // Nothing is queued before the first keyframe.
        outlet.offer(Item::Video(packet(TrackKind::Video, 0, false)));
        outlet.offer(Item::Video(packet(TrackKind::Video, 1, true)));
        outlet.offer(Item::Video(packet(TrackKind::Video, 2, false)));
        // Full: this and everything up to the next keyframe is dropped.
        outlet.offer(Item::Video(packet(TrackKind::Video, 3, false)));
        inbox.recv().await.unwrap();
        inbox.recv().await.unwrap();
        outlet.offer(Item::Audio(packet(TrackKind::Audio, 4, true)));
        outlet.offer(Item::Video(packet(TrackKind::Video, 5, false)));
        outlet.offer(Item::Video(packet(TrackKind::Video, 6, true)));
        outlet.offer(Item::Video(packet(TrackKind::Video, 7, false)));
        let Some(Item::Video(first)) = inbox.recv().await else {
            panic!("expected the keyframe");
        };
        assert_eq!((first.dts, first.keyframe), (6, true));
        let Some(Item::Video(next)) = inbox.recv().await else {
            panic!("expected the next frame");
        };
        assert_eq!(next.dts, 7);
        assert_eq!(outlet.dropped.load(Ordering::Relaxed), 4);
    }
}
