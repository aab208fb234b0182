//! The live media plane: accepts RTMP and WebRTC (WHIP, see `whip`) publishers, decides
//! whether they may publish, and runs a session pipeline per accepted publisher (either kind
//! through the `publisher::Publisher` trait).
//!
//! Policy lives here, not in the ingest crate: a publish request names a stream key, which is
//! looked up in the database; unknown keys, other applications than `live`, disabled streams
//! and streams that already have a publisher are refused with a clear log line and the
//! connection is closed. Running sessions follow the event bus and end when the control plane
//! disables, re-keys, deletes or completes their stream (see `session_control`).

mod connection_slots;
mod ladder_policy;
mod pipeline;
mod publisher;
mod renditions;
mod session_control;
mod start_gate;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{live_stream_event_data, session_event_data, Metrics};
use sluice_ingest::{ConnectionConfig, IngestError, RtmpConnection, SessionEvent};
use sluice_media::{AudioCodec, TrackInfo, VideoCodec};
use sluice_storage::{
    Db, Event, EventBus, EventType, LiveStream, LiveStreamStatus, NewEvent, ObjectKey, ObjectStore,
    Session, SessionOrigin,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::config::LiveConfig;
use connection_slots::{ConnectionSlot, OpenConnections};
pub use ladder_policy::validate_ladder;
use pipeline::{SessionPipeline, SourceDescription};
use publisher::Publisher;
use session_control::{RunningSessions, StopReason, StopSignal};
use start_gate::{StartGate, MAX_PENDING_PACKETS};

/// How long a shutdown waits for live sessions to flush their last segments and playlists.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Events read per query when catching up with the event history.
const CATCH_UP_PAGE: u64 = 500;
/// How often the session row's counters are refreshed.
const SESSION_UPDATE_INTERVAL: Duration = Duration::from_secs(2);

/// Where publishers are told to send: the RTMP ingest URL, and the API's public base URL (under
/// which each stream's WHIP endpoint lives).
pub struct IngestUrls {
    pub rtmp_url: String,
    pub public_url: String,
}

/// Accepts RTMP connections and runs one task per publisher.
pub struct LiveService {
    db: Db,
    store: Arc<dyn ObjectStore>,
    events: EventBus,
    metrics: Metrics,
    config: LiveConfig,
    /// The URLs shown in events' live stream objects.
    urls: IngestUrls,
    shutdown: watch::Receiver<bool>,
    /// Open RTMP connections per client address.
    per_ip: OpenConnections,
    /// Sessions of this process, stopped by control events.
    running: RunningSessions,
}

impl LiveService {
    /// A service whose sessions end cleanly once `shutdown` turns `true`.
    pub fn new(
        db: Db,
        store: Arc<dyn ObjectStore>,
        events: EventBus,
        metrics: Metrics,
        config: LiveConfig,
        urls: IngestUrls,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(LiveService {
            db,
            store,
            events,
            metrics,
            config,
            urls,
            shutdown,
            per_ip: Arc::default(),
            running: RunningSessions::default(),
        })
    }

    /// Accepts connections until shutdown; each one is independent of the others. On shutdown
    /// it stops accepting and waits (up to [`SHUTDOWN_GRACE`]) for every session to end its
    /// playlists and session row.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        let control = tokio::spawn(self.clone().follow_control_events());
        let mut connections = JoinSet::new();
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the
                    // listener itself is fine, so wait a moment and go on.
                    warn!(error = %e, "Accepting an RTMP connection failed.");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            let Some(slot) = ConnectionSlot::take(
                &self.per_ip,
                peer.ip(),
                self.config.rtmp_max_connections_per_ip,
            ) else {
                warn!(peer = %peer, limit = self.config.rtmp_max_connections_per_ip, "Refused RTMP connection: too many from this address.");
                continue;
            };
            let service = self.clone();
            let span = tracing::info_span!("rtmp", peer = %peer);
            connections.spawn(
                async move {
                    debug!("RTMP connection opened.");
                    match service.handle_connection(socket, peer).await {
                        Ok(()) => debug!("RTMP connection closed."),
                        Err(e) => warn!(error = %e, "RTMP connection ended with an error."),
                    }
                    drop(slot);
                }
                .instrument(span),
            );
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                connections = connections.len(),
                "RTMP connections did not end in time; dropping them."
            );
            connections.abort_all();
        }
        control.abort();
    }

    /// Ends the sessions the control plane asks to end, until shutdown. Live notifications
    /// that the channel dropped (`Lagged`) are read back from the event history, so no control
    /// event is missed.
    async fn follow_control_events(self: Arc<Self>) {
        let mut events = self.events.subscribe();
        let mut shutdown = self.shutdown.clone();
        let mut last_seq = match self.db.latest_event_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                warn!(error = %e, "Could not read the event history; following live events only.");
                i64::MAX
            }
        };
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match event {
                // An event applied twice (live and read back after a lag) stops nothing the
                // second time; one older than a session never stops it.
                Ok(event) => {
                    last_seq = last_seq.max(event.seq);
                    self.apply_control_event(&event);
                }
                Err(RecvError::Lagged(missed)) => {
                    debug!(missed, "Control events missed live; reading them back.");
                    for event in self.control_events_after(last_seq, None).await {
                        last_seq = last_seq.max(event.seq);
                        self.apply_control_event(&event);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops the session `event` is about, when it is a control event and that session runs
    /// here.
    fn apply_control_event(&self, event: &Event) {
        if let Some(reason) = StopReason::for_event(&event.event_type) {
            if self.running.stop(&event.object.id, reason, event.seq) {
                info!(live_stream_id = %event.object.id, reason = reason.describe(), "Stopping the session.");
            }
        }
    }

    /// The control events recorded after position `seq`, of one live stream when given.
    async fn control_events_after(&self, mut seq: i64, live_stream_id: Option<&str>) -> Vec<Event> {
        let mut found = Vec::new();
        loop {
            let page = match self.db.events_after_seq(seq, CATCH_UP_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "Could not read the event history.");
                    return found;
                }
            };
            let Some(last) = page.last() else {
                return found;
            };
            seq = last.seq;
            found.extend(page.into_iter().filter(|event| {
                StopReason::for_event(&event.event_type).is_some()
                    && live_stream_id.is_none_or(|id| event.object.id == id)
            }));
        }
    }

    async fn handle_connection(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> Result<(), IngestError> {
        let limits = ConnectionConfig {
            idle_timeout: Duration::from_secs(self.config.rtmp_idle_timeout_seconds),
            ..ConnectionConfig::default()
        };
        let mut connection = RtmpConnection::new(socket, peer, limits);
        let mut origin = SessionOrigin {
            client_addr: peer.to_string(),
            protocol: "rtmp",
            encoder: None,
            app: None,
        };
        loop {
            let Some(event) = connection.next_event().await? else {
                return Ok(());
            };
            match event {
                SessionEvent::Connected { app, flash_ver, .. } => {
                    origin.encoder = flash_ver;
                    origin.app = Some(app);
                }
                SessionEvent::PublishRequested {
                    app, stream_key, ..
                } => {
                    return self
                        .authorise_and_publish(connection, &app, &stream_key, origin)
                        .await;
                }
                other => debug!(event = ?other, "Event before publish ignored."),
            }
        }
    }

    /// Authorises a publish request and, when accepted, runs it until it ends.
    async fn authorise_and_publish<P: Publisher>(
        &self,
        mut connection: P,
        app: &str,
        stream_key: &str,
        origin: SessionOrigin,
    ) -> Result<(), P::Error> {
        // Control events from here on are looked for once the session can be stopped (see
        // `publish`).
        let history_mark = self.db.latest_event_seq().await.ok();
        let Some(stream) = self.authorise(app, stream_key, &mut connection).await? else {
            return Ok(());
        };
        self.publish(connection, stream, origin, history_mark).await
    }

    /// Looks the stream key up and claims the stream for this publisher; refuses the publish
    /// (and returns `None`) when it may not go on.
    async fn authorise<P: Publisher>(
        &self,
        app: &str,
        stream_key: &str,
        connection: &mut P,
    ) -> Result<Option<LiveStream>, P::Error> {
        let reason = if app != "live" {
            format!("unknown application {app:?}; publish to rtmp://HOST/live/STREAM_KEY")
        } else if stream_key.is_empty() {
            "publish request has no stream key".to_owned()
        } else {
            match self.db.find_by_stream_key(stream_key).await {
                Ok(Some(stream)) if stream.disabled => {
                    format!("live stream {} is disabled", stream.id)
                }
                Ok(Some(stream)) => match self.db.claim_live_stream(&stream.id).await {
                    Ok(true) => return Ok(Some(stream)),
                    Ok(false) => format!("live stream {} already has a publisher", stream.id),
                    Err(e) => {
                        warn!(error = %e, "Claiming the live stream failed.");
                        "internal error".to_owned()
                    }
                },
                Ok(None) => "unknown stream key".to_owned(),
                Err(e) => {
                    warn!(error = %e, "Stream key lookup failed.");
                    "stream key lookup failed".to_owned()
                }
            }
        };
        warn!(app = %app, reason = %reason, "Refused publish.");
        connection.reject_publish(&reason).await?;
        Ok(None)
    }

    /// Runs an accepted publish until the encoder stops or vanishes. `history_mark` is the
    /// event history's position when the publish was requested.
    async fn publish<P: Publisher>(
        &self,
        mut connection: P,
        stream: LiveStream,
        origin: SessionOrigin,
        history_mark: Option<i64>,
    ) -> Result<(), P::Error> {
        let session = match self.db.start_session(&stream.id, &origin).await {
            Ok(session) => session,
            Err(e) => {
                warn!(error = %e, "Could not record the session; refusing the publish.");
                self.release(&stream.id, None).await;
                connection.reject_publish("internal error").await?;
                return Ok(());
            }
        };
        if let Err(e) = self
            .db
            .set_live_stream_status(&stream.id, LiveStreamStatus::Active, Some(&session.id))
            .await
        {
            warn!(error = %e, "Could not attach the session to the live stream.");
        }
        self.clear_previous_session(&stream.id).await;
        let mut stop = self
            .running
            .register(&stream.id, history_mark.unwrap_or(i64::MIN));
        connection.accept_publish().await?;
        let encoder = origin.encoder.as_deref().unwrap_or("unknown encoder");
        info!(live_stream_id = %stream.id, session_id = %session.id, protocol = origin.protocol, encoder = %encoder, "Publisher connected.");
        self.metrics.session_started(&session.id);
        self.emit_stream_event(EventType::LiveStreamConnected, &stream.id)
            .await;
        self.emit_session_event(EventType::SessionStarted, session.clone())
            .await;

        // A control event published between the publish request and the registration above
        // found no session to stop: look for it in the history.
        let missed = match history_mark {
            Some(mark) => self.control_events_after(mark, Some(&stream.id)).await,
            None => Vec::new(),
        };
        let result = match missed
            .first()
            .and_then(|event| StopReason::for_event(&event.event_type))
        {
            Some(reason) => {
                info!(reason = reason.describe(), "Stopping the session.");
                Ok((Some(reason), connection.bytes_received()))
            }
            None => {
                self.run_session(connection, &stream, &session.id, &mut stop)
                    .await
            }
        };
        drop(stop);
        self.metrics.session_ended(&session.id);
        if let Ok((Some(StopReason::Deleted), _)) = result {
            // The stream, its sessions and its objects are gone; remove what the session wrote
            // while it was being stopped.
            self.clear_previous_session(&stream.id).await;
            info!(live_stream_id = %stream.id, session_id = %session.id, "Publisher disconnected: the live stream was deleted.");
            return Ok(());
        }

        match self.db.end_session(&session.id).await {
            Ok(ended) => {
                self.emit_session_event(EventType::SessionEnded, ended)
                    .await
            }
            Err(e) => warn!(error = %e, "Could not end the session row."),
        }
        self.emit_stream_event(EventType::LiveStreamDisconnected, &stream.id)
            .await;
        // The stream keeps pointing at its last session, so its final counters stay visible.
        self.release(&stream.id, Some(&session.id)).await;
        self.emit_stream_event(EventType::LiveStreamIdle, &stream.id)
            .await;
        match result {
            Ok((_, bytes)) => {
                info!(live_stream_id = %stream.id, session_id = %session.id, bytes, "Publisher disconnected.");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Publishes an event about a live stream, with the stream as it is now as its data.
    async fn emit_stream_event(&self, event_type: EventType, live_stream_id: &str) {
        let stream = match self.db.get_live_stream(live_stream_id).await {
            Ok(Some(stream)) => stream,
            // Deleted meanwhile: `live_stream.deleted` said the last word.
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "Could not read the live stream for an event.");
                return;
            }
        };
        let IngestUrls {
            rtmp_url,
            public_url,
        } = &self.urls;
        match live_stream_event_data(&self.db, rtmp_url, public_url, stream).await {
            Ok(data) => {
                self.emit(NewEvent::new(event_type, live_stream_id, data))
                    .await
            }
            Err(e) => warn!(error = %e, "Could not describe the live stream for an event."),
        }
    }

    async fn emit_session_event(&self, event_type: EventType, session: Session) {
        let session_id = session.id.clone();
        match session_event_data(session) {
            Ok(data) => {
                self.emit(NewEvent::new(event_type, &session_id, data))
                    .await
            }
            Err(e) => warn!(error = %e, "Could not describe the session for an event."),
        }
    }

    /// Events are part of the record, but a database hiccup must not end a live session.
    async fn emit(&self, event: NewEvent) {
        if let Err(e) = self.events.publish(event).await {
            warn!(error = %e, "Could not record an event.");
        }
    }

    /// Returns a claimed stream to `idle`, pointing at `last_session` when there was one.
    async fn release(&self, live_stream_id: &str, last_session: Option<&str>) {
        if let Err(e) = self
            .db
            .set_live_stream_status(live_stream_id, LiveStreamStatus::Idle, last_session)
            .await
        {
            warn!(error = %e, "Could not mark the live stream idle.");
        }
    }

    /// Removes what an earlier session of this stream left in storage (its playlists and its
    /// last window of segments), so a new session never serves or leaks stale objects.
    async fn clear_previous_session(&self, live_stream_id: &str) {
        let prefix = match ObjectKey::new(["live", live_stream_id]) {
            Ok(prefix) => prefix,
            Err(e) => {
                warn!(error = %e, "Live stream id is not a valid object key.");
                return;
            }
        };
        if let Err(e) = self.store.delete_prefix(&prefix).await {
            warn!(error = %e, "Could not remove the previous session's objects.");
        }
    }

    /// Runs the session until the publisher stops, the pipeline fails, the server shuts down
    /// or the control plane stops it (then returns why).
    async fn run_session<P: Publisher>(
        &self,
        mut connection: P,
        stream: &LiveStream,
        session_id: &str,
        stop: &mut StopSignal,
    ) -> Result<(Option<StopReason>, u64), P::Error> {
        let started = Instant::now();
        let mut gate = StartGate::default();
        let mut pipeline: Option<SessionPipeline> = None;
        let mut last_update = Instant::now();
        let mut reported_dropped = 0;
        let mut shutdown = self.shutdown.clone();
        let mut control_open = true;
        // The publisher ended cleanly (FCUnpublish/deleteStream) and will close the connection.
        let mut unpublished = false;
        let outcome = loop {
            let next = tokio::select! {
                next = connection.next_event() => next,
                _ = shutdown.wait_for(|stop| *stop) => {
                    info!("Server shutting down: ending the session.");
                    break Ok(None);
                }
                reason = &mut stop.receiver, if control_open => {
                    match reason {
                        Ok(reason) => {
                            info!(reason = reason.describe(), "Stopping the session.");
                            break Ok(Some(reason));
                        }
                        // The registration was replaced; nothing asked this session to stop.
                        Err(_) => {
                            control_open = false;
                            continue;
                        }
                    }
                }
            };
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            };
            match event {
                SessionEvent::Metadata(metadata) => {
                    gate.frame_rate = metadata.frame_rate.or(gate.frame_rate)
                }
                SessionEvent::Track(track) => match (&mut pipeline, track) {
                    (_, TrackInfo::OtherVideo { codec }) if codec != VideoCodec::Vp8 => {
                        warn!(codec = %codec.name(), "Refused publish: only H.264 video can be ingested (VP8 too, over WebRTC).");
                        break Ok(None);
                    }
                    (_, TrackInfo::OtherAudio { codec })
                        if !matches!(codec, AudioCodec::Mp3 | AudioCodec::Opus) =>
                    {
                        warn!(codec = %codec.name(), "Audio codec not supported; the stream goes on without audio.");
                        gate.audio_unsupported = true;
                    }
                    (Some(_), track) => {
                        // The decoder, the init segments and the master playlist all describe
                        // the first configuration: end the session so the encoder reconnects.
                        warn!(kind = ?track.kind(), "Track configuration changed mid-stream; ending the session.");
                        break Ok(None);
                    }
                    (None, track) => gate.set_track(track),
                },
                SessionEvent::Packet(packet) => match &mut pipeline {
                    Some(running) => {
                        if let Err(e) = running.push(packet).await {
                            warn!(error = %e, "The live pipeline stopped; ending the session.");
                            break Ok(None);
                        }
                    }
                    None => {
                        gate.hold(packet);
                        if gate.pending.len() > MAX_PENDING_PACKETS {
                            warn!("Refused publish: no usable video configuration arrived.");
                            break Ok(None);
                        }
                        if gate.audio_only_for(started) {
                            warn!("Refused publish: audio-only streams are not supported; send H.264 video.");
                            break Ok(None);
                        }
                        if let Some(source) = gate.ready() {
                            match self.start_pipeline(source, stream, session_id).await {
                                Ok(mut started) => {
                                    self.record_input(
                                        session_id,
                                        started.input_description(),
                                        connection.bytes_received(),
                                        0,
                                    )
                                    .await;
                                    self.emit_stream_event(EventType::LiveStreamActive, &stream.id)
                                        .await;
                                    let mut fed = Ok(());
                                    for held in gate.pending.drain(..) {
                                        fed = fed.and(started.push(held).await);
                                    }
                                    pipeline = Some(started);
                                    if let Err(e) = fed {
                                        warn!(error = %e, "The live pipeline stopped; ending the session.");
                                        break Ok(None);
                                    }
                                }
                                Err(e) => {
                                    warn!(error = %e, "Refused publish: the pipeline could not start.");
                                    break Ok(None);
                                }
                            }
                        }
                    }
                },
                SessionEvent::PublishFinished { .. } => {
                    debug!("Publisher sent FCUnpublish/deleteStream.");
                    unpublished = true;
                    break Ok(None);
                }
                other => debug!(event = ?other, "Event ignored."),
            }
            if let Some(running) = &pipeline {
                if last_update.elapsed() >= SESSION_UPDATE_INTERVAL {
                    last_update = Instant::now();
                    let dropped = running.frames_dropped();
                    if dropped > reported_dropped {
                        warn!(
                            dropped = dropped - reported_dropped,
                            total = dropped,
                            "Live ladder behind real time: frames dropped before the encoders."
                        );
                        reported_dropped = dropped;
                    }
                    self.record_input(
                        session_id,
                        running.input_description(),
                        connection.bytes_received(),
                        dropped,
                    )
                    .await;
                }
            }
        };
        let bytes_received = connection.bytes_received();
        // The publisher is let go at once, before the last segments and playlists are flushed
        // (a stopped one sees its connection close right away), except one that unpublished:
        // it closes the connection itself, and closing first would turn its clean end into an
        // error on its side.
        let open_connection = unpublished.then_some(connection);
        if let Some(running) = pipeline {
            let description = running.input_description();
            let dropped = running.finish().await;
            self.record_input(session_id, description, bytes_received, dropped)
                .await;
        }
        drop(open_connection);
        outcome.map(|reason| (reason, bytes_received))
    }

    /// Starts a session pipeline off the reactor: opening the decoder and every encoder is
    /// blocking work that can take a while.
    async fn start_pipeline(
        &self,
        source: SourceDescription,
        stream: &LiveStream,
        session_id: &str,
    ) -> anyhow::Result<SessionPipeline> {
        let ladder = stream.ladder.clone();
        let config = self.config.clone();
        let store = self.store.clone();
        let live_stream_id = stream.id.clone();
        let session_id = session_id.to_owned();
        tokio::task::spawn_blocking(move || {
            SessionPipeline::start(
                source,
                &ladder,
                &config,
                store,
                &live_stream_id,
                &session_id,
            )
        })
        .await?
    }

    async fn record_input(
        &self,
        session_id: &str,
        input: serde_json::Value,
        bytes_received: u64,
        frames_dropped: u64,
    ) {
        self.metrics
            .session_progress(session_id, bytes_received, frames_dropped);
        if let Err(e) = self
            .db
            .update_session_input(session_id, &input, bytes_received, frames_dropped)
            .await
        {
            warn!(error = %e, "Could not update the session row.");
        }
    }
}
