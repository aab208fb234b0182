//! The live media plane: accepts RTMP publishers, decides whether they may publish, and runs a
//! session pipeline per accepted publisher.
//!
//! Policy lives here, not in the ingest crate: a publish request names a stream key, which is
//! looked up in the database; unknown keys, other applications than `live`, disabled streams
//! and streams that already have a publisher are refused with a clear log line and the
//! connection is closed. Running sessions follow the event bus and end when the control plane
//! disables, re-keys, deletes or completes their stream (see `session_control`).
//!
//! A session outlives a publisher that vanishes (its connection drops, fails or times out
//! without the encoder unpublishing) by the stream's `reconnect_window_s`: its packaging stays alive and the
//! stream stays claimed and `active`, and `live_stream.disconnected` is published. A publish
//! with the same stream key inside the window resumes the session (`live_stream.connected`,
//! then `live_stream.active` once media flows; no new `session.started`), its playlists
//! carrying EXT-X-DISCONTINUITY (see `reconnect`). Otherwise, when the window closes, or at
//! once when the control plane or shutdown stops it, the session ends: `session.ended`,
//! `live_stream.idle`, and a recorded session's asset is sealed (see `recording`). A returning
//! publisher whose source plans to other renditions ends the session and starts a new one.
//! An encoder that unpublishes (FCUnpublish/deleteStream: "stop streaming") ends its session
//! at once.
//!
//! The stages of one publish, in order: `authorise` (claim or resume), `open_session`,
//! `run_session` (media in, pipeline), `wait_for_reconnect`, `close_session`.
//!
//! While a publisher is connected, its media is also pushed to the stream's simulcast targets
//! (see `restream`); a returning publisher's targets connect again.

mod connection_slots;
mod ladder_policy;
mod pipeline;
mod publisher;
mod reconnect;
mod recording;
mod renditions;
pub mod restream;
mod session_control;
mod start_gate;
mod uploader;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_api::{live_stream_event_data, session_event_data, Metrics};
use sluice_ingest::{ConnectionConfig, IngestError, RtmpConnection, SessionEvent};
use sluice_media::{AudioCodec, MediaTime, Timebase, TrackInfo, VideoCodec};
use sluice_storage::{
    Db, Dvr, DvrMode, Event, EventBus, EventType, LiveStream, LiveStreamStatus, NewEvent,
    ObjectKey, ObjectStore, Session, SessionOrigin,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::config::LiveConfig;
use connection_slots::{ConnectionSlot, OpenConnections};
pub use ladder_policy::validate_ladder;
use pipeline::{plan_ladder, PackagingPlan, PackagingTarget, SessionPipeline, SourceDescription};
use publisher::Publisher;
use reconnect::{Reconnecting, SessionState};
use recording::Recorder;
use renditions::PlaylistWindow;
use restream::{RestreamSettings, Restreamer, Tap};
use session_control::{RunningSessions, StopReason, StopSignal};
use start_gate::{StartGate, MAX_PENDING_PACKETS};
use uploader::Spool;

/// How long a shutdown waits for live sessions to flush their last segments and playlists.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Events read per query when catching up with the event history.
const CATCH_UP_PAGE: u64 = 500;
/// How often the session row's counters are refreshed.
const SESSION_UPDATE_INTERVAL: Duration = Duration::from_secs(2);

/// Accepts RTMP connections and runs one task per publisher.
pub struct LiveService {
    db: Db,
    store: Arc<dyn ObjectStore>,
    spool: Arc<Spool>,
    events: EventBus,
    metrics: Metrics,
    config: LiveConfig,
    /// The ingest URL shown in events' live stream objects.
    rtmp_url: String,
    shutdown: watch::Receiver<bool>,
    /// Open RTMP connections per client address.
    per_ip: OpenConnections,
    /// Sessions of this process, stopped by control events.
    running: RunningSessions,
    /// Sessions waiting for their publisher to come back.
    reconnecting: Reconnecting,
    recorder: Recorder,
    restream: Arc<RestreamSettings>,
}

impl LiveService {
    /// A service whose sessions end cleanly once `shutdown` turns `true`; recordings' playback
    /// URLs in events are under `public_url`.
    // Each argument is a separate piece of the server's wiring, all given once in `serve`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        store: Arc<dyn ObjectStore>,
        events: EventBus,
        metrics: Metrics,
        config: LiveConfig,
        rtmp_url: String,
        public_url: String,
        restream: RestreamSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let recorder = Recorder {
            db: db.clone(),
            store: store.clone(),
            events: events.clone(),
            public_url,
        };
        Arc::new(LiveService {
            reconnecting: Reconnecting::default(),
            recorder,
            db,
            store,
            spool: Spool::new(config.spool_dir(), config.spool_max_bytes, metrics.clone()),
            events,
            metrics,
            config,
            rtmp_url,
            shutdown,
            per_ip: Arc::default(),
            running: RunningSessions::default(),
            restream: Arc::new(restream),
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
        drain_or_abort(&mut connections, "RTMP connections").await;
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
        let Some((stream, parked)) = self.authorise(app, stream_key, &mut connection).await? else {
            return Ok(());
        };
        self.publish(connection, stream, origin, history_mark, parked)
            .await
    }

    /// Looks the stream key up and claims the stream for this publisher, or takes back its
    /// session waiting in the reconnect window; refuses the publish (and returns `None`) when
    /// it may not go on.
    async fn authorise<P: Publisher>(
        &self,
        app: &str,
        stream_key: &str,
        connection: &mut P,
    ) -> Result<Option<(LiveStream, Option<SessionState>)>, P::Error> {
        let reason = if app != "live" {
            format!("unknown application {app:?}; publish to rtmp://HOST/live/STREAM_KEY")
        } else if stream_key.is_empty() {
            "publish request has no stream key".to_owned()
        } else {
            match self.db.find_by_stream_key(stream_key).await {
                Ok(Some(stream)) if stream.disabled => {
                    format!("live stream {} is disabled", stream.id)
                }
                Ok(Some(stream)) => match self.reconnecting.resume(&stream.id) {
                    Some(parked) => return Ok(Some((stream, Some(parked)))),
                    None => match self.db.claim_live_stream(&stream.id).await {
                        Ok(true) => return Ok(Some((stream, None))),
                        Ok(false) => {
                            format!("live stream {} already has a publisher", stream.id)
                        }
                        Err(e) => {
                            warn!(error = %e, "Claiming the live stream failed.");
                            "internal error".to_owned()
                        }
                    },
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

    /// Runs an accepted publish until the encoder stops or vanishes, then waits for it inside
    /// the reconnect window or ends the session. `history_mark` is the event history's position
    /// when the publish was requested; `parked` is the session a returning publisher resumes.
    async fn publish<P: Publisher>(
        &self,
        mut connection: P,
        stream: LiveStream,
        origin: SessionOrigin,
        history_mark: Option<i64>,
        parked: Option<SessionState>,
    ) -> Result<(), P::Error> {
        // `None` for a resumed session, which started before.
        let (mut state, started) = match parked {
            Some(mut state) => {
                info!(live_stream_id = %stream.id, session_id = %state.session_id, "Publisher reconnected inside the reconnect window; resuming the session.");
                state.disconnect_announced = false;
                (state, None)
            }
            None => match self.open_session(&stream, &origin).await {
                Some((state, session)) => (state, Some(session)),
                None => {
                    self.release(&stream.id, None).await;
                    connection.reject_publish("internal error").await?;
                    return Ok(());
                }
            },
        };
        let mut stop = self
            .running
            .register(&stream.id, history_mark.unwrap_or(i64::MIN));
        if let Err(e) = connection.accept_publish().await {
            // The session is open (and may hold a resumed session's packaging): end it rather
            // than leave the stream claimed and the recording unsealed.
            drop(stop);
            self.close_session(&stream, state, None).await;
            return Err(e);
        }
        let encoder = origin.encoder.as_deref().unwrap_or("unknown encoder");
        info!(live_stream_id = %stream.id, session_id = %state.session_id, protocol = origin.protocol, encoder = %encoder, "Publisher connected.");
        self.emit_stream_event(EventType::LiveStreamConnected, &stream.id)
            .await;
        if let Some(session) = started {
            self.emit_session_event(EventType::SessionStarted, session)
                .await;
        }

        // A control event published between the publish request and the registration above
        // found no session to stop: look for it in the history.
        let missed = match history_mark {
            Some(mark) => self.control_events_after(mark, Some(&stream.id)).await,
            None => Vec::new(),
        };
        let gone = match missed
            .first()
            .and_then(|event| StopReason::for_event(&event.event_type))
        {
            Some(reason) => {
                info!(reason = reason.describe(), "Stopping the session.");
                PublisherGone {
                    outcome: Ok(Some(reason)),
                    bytes: connection.bytes_received(),
                    unpublished: false,
                }
            }
            None => {
                let restreamer = Restreamer::start(
                    self.db.clone(),
                    self.events.clone(),
                    self.restream.clone(),
                    &stream.id,
                );
                let gone = self
                    .run_session(
                        connection,
                        &stream,
                        &origin,
                        &mut state,
                        &mut stop,
                        restreamer.tap(),
                    )
                    .await;
                restreamer.stop().await;
                gone
            }
        };
        let PublisherGone {
            outcome,
            bytes,
            unpublished,
        } = gone;
        let mut reason = outcome.as_ref().ok().copied().flatten();
        let window = Duration::from_secs(u64::from(stream.reconnect_window_s));
        let shutting_down = *self.shutdown.borrow();
        let vanished = reason.is_none() && !unpublished && !shutting_down;
        if vanished && !window.is_zero() && state.packaging.is_some() {
            match self
                .wait_for_reconnect(&stream, state, &mut stop, window)
                .await
            {
                Some((expired, why)) => {
                    state = expired;
                    reason = why;
                }
                None => {
                    info!(live_stream_id = %stream.id, bytes, "Publisher disconnected; the session was resumed by a new connection.");
                    return outcome.map(drop);
                }
            }
        }
        drop(stop);
        let session_id = state.session_id.clone();
        self.close_session(&stream, state, reason).await;
        match outcome {
            Ok(_) => {
                info!(live_stream_id = %stream.id, session_id = %session_id, bytes, "Publisher disconnected.");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Records a new session of the claimed `stream`: its row, the stream's status and its
    /// recording's asset when the stream records; returns it for `session.started`. `None`
    /// (logged) when the session could not be recorded.
    async fn open_session(
        &self,
        stream: &LiveStream,
        origin: &SessionOrigin,
    ) -> Option<(SessionState, Session)> {
        let session = match self.db.start_session(&stream.id, origin).await {
            Ok(session) => session,
            Err(e) => {
                warn!(error = %e, "Could not record the session; refusing the publish.");
                return None;
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
        let asset_id = match stream.record {
            true => self.recorder.start(&stream.id, &session.id).await,
            false => None,
        };
        self.metrics.session_started(&session.id);
        let session = match asset_id {
            // The row now names its asset.
            Some(_) => self
                .db
                .get_session(&session.id)
                .await
                .ok()
                .flatten()
                .unwrap_or(session),
            None => session,
        };
        let state = SessionState {
            session_id: session.id.clone(),
            asset_id,
            packaging: None,
            resume_at: None,
            bytes_received: 0,
            frames_dropped: 0,
            disconnect_announced: false,
        };
        Some((state, session))
    }

    /// Parks the session of a publisher that went away on its own, for `window`. Returns
    /// `None` when a returning publisher took it back, else the session to end and the control
    /// plane's reason when it stopped the wait (`None` for the window closing or shutdown).
    async fn wait_for_reconnect(
        &self,
        stream: &LiveStream,
        mut state: SessionState,
        stop: &mut StopSignal,
        window: Duration,
    ) -> Option<(SessionState, Option<StopReason>)> {
        info!(live_stream_id = %stream.id, session_id = %state.session_id, window_s = window.as_secs(), "Publisher gone; the session is reconnecting.");
        state.disconnect_announced = true;
        self.emit_stream_event(EventType::LiveStreamDisconnected, &stream.id)
            .await;
        let mut ticket = self.reconnecting.park(&stream.id, state);
        let mut shutdown = self.shutdown.clone();
        let why = tokio::select! {
            _ = tokio::time::sleep(window) => None,
            reason = stop.requested() => Some(reason),
            _ = shutdown.wait_for(|stop| *stop) => None,
            _ = &mut ticket.resumed => None,
        };
        let state = self.reconnecting.expire(&stream.id, &ticket)?;
        match why {
            Some(reason) => {
                info!(
                    reason = reason.describe(),
                    "Ending the reconnecting session."
                )
            }
            None => {
                info!(live_stream_id = %stream.id, session_id = %state.session_id, "No publisher came back inside the reconnect window; ending the session.")
            }
        }
        Some((state, why))
    }

    /// Ends a session for good: ends its playlists, seals its recording, ends its row and
    /// releases the stream (`session.ended`, `live_stream.disconnected` unless already said,
    /// `live_stream.idle`).
    async fn close_session(
        &self,
        stream: &LiveStream,
        state: SessionState,
        reason: Option<StopReason>,
    ) {
        let announced = state.disconnect_announced;
        let session_id = state.session_id.clone();
        let deleted = reason == Some(StopReason::Deleted);
        self.end_session_record(stream, state, deleted).await;
        if deleted {
            // The stream, its sessions and its objects are gone; remove what the session wrote
            // while it was being stopped.
            self.clear_previous_session(&stream.id).await;
            info!(live_stream_id = %stream.id, session_id = %session_id, "Session ended: the live stream was deleted.");
            return;
        }
        if !announced {
            self.emit_stream_event(EventType::LiveStreamDisconnected, &stream.id)
                .await;
        }
        // The stream keeps pointing at its last session, so its final counters stay visible.
        self.release(&stream.id, Some(&session_id)).await;
        self.emit_stream_event(EventType::LiveStreamIdle, &stream.id)
            .await;
    }

    /// The session's own ending: its playlists end, its recording is sealed, its row ends
    /// (`session.ended`, unless the stream and its sessions were `deleted`). The stream stays
    /// claimed.
    async fn end_session_record(&self, stream: &LiveStream, state: SessionState, deleted: bool) {
        let recording = match state.packaging {
            Some(packaging) => packaging.finish().await,
            None => None,
        };
        if let Some(asset_id) = &state.asset_id {
            let shutting_down = *self.shutdown.borrow();
            self.recorder
                .seal(asset_id, &stream.id, recording, shutting_down)
                .await;
        }
        self.metrics.session_ended(&state.session_id);
        if deleted {
            return;
        }
        match self.db.end_session(&state.session_id).await {
            Ok(ended) => {
                self.emit_session_event(EventType::SessionEnded, ended)
                    .await
            }
            Err(e) => warn!(error = %e, "Could not end the session row."),
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
        match live_stream_event_data(&self.db, &self.rtmp_url, &self.recorder.public_url, stream)
            .await
        {
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

    /// Clears what a crashed earlier run left: spool directories of sessions no longer open
    /// and, when this process alone ingests (`sole`: nothing is being sealed anywhere else),
    /// recordings that were never sealed. Call at startup, after stale sessions were ended.
    pub async fn recover(&self, sole: bool) {
        if sole {
            self.recorder.error_interrupted().await;
        }
        self.spool.remove_stale(&self.db).await;
    }

    /// Runs the session until the publisher stops, the pipeline fails, the server shuts down
    /// or the control plane stops it (then says why).
    /// The pipeline's packaging is left in `state` for the reconnect window or the end.
    async fn run_session<P: Publisher>(
        &self,
        mut connection: P,
        stream: &LiveStream,
        origin: &SessionOrigin,
        state: &mut SessionState,
        stop: &mut StopSignal,
        restream: Tap,
    ) -> PublisherGone<P::Error> {
        let started = Instant::now();
        let mut gate = StartGate::default();
        let mut pipeline: Option<SessionPipeline> = None;
        let mut last_update = Instant::now();
        let mut reported_dropped = 0;
        let mut shutdown = self.shutdown.clone();
        // The publisher ended cleanly (FCUnpublish/deleteStream) and will close the connection.
        let mut unpublished = false;
        let outcome = loop {
            let next = tokio::select! {
                next = connection.next_event() => next,
                _ = shutdown.wait_for(|stop| *stop) => {
                    info!("Server shutting down: ending the session.");
                    break Ok(None);
                }
                reason = stop.requested() => {
                    info!(reason = reason.describe(), "Stopping the session.");
                    break Ok(Some(reason));
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
                            match self
                                .start_pipeline(source, stream, origin, state, restream.clone())
                                .await
                            {
                                Ok(mut started) => {
                                    self.record_input(
                                        state,
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
                        state,
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
            let stopped = running.stop().await;
            self.record_input(state, description, bytes_received, stopped.frames_dropped)
                .await;
            state.packaging = Some(stopped.packaging);
            state.resume_at = Some(stopped.resume_at);
            state.frames_dropped += stopped.frames_dropped;
        }
        state.bytes_received += bytes_received;
        drop(open_connection);
        PublisherGone {
            outcome,
            bytes: bytes_received,
            unpublished,
        }
    }

    /// Starts a session pipeline off the reactor (opening the decoder and every encoder is
    /// blocking work that can take a while). It resumes the session's packaging when the
    /// source plans to the same renditions; otherwise a returning publisher's session ends
    /// and a new one starts in `state`.
    async fn start_pipeline(
        &self,
        source: SourceDescription,
        stream: &LiveStream,
        origin: &SessionOrigin,
        state: &mut SessionState,
        restream: Tap,
    ) -> anyhow::Result<SessionPipeline> {
        let shape = plan_ladder(&source, &stream.ladder)?;
        if state
            .packaging
            .as_ref()
            .is_some_and(|packaging| packaging.shape() != &shape)
        {
            info!(live_stream_id = %stream.id, session_id = %state.session_id, "The returning publisher's source needs other renditions; ending the session and starting a new one.");
            // Sealed first: a new session clears the stream's live objects.
            let previous = SessionState {
                session_id: state.session_id.clone(),
                asset_id: state.asset_id.take(),
                packaging: state.packaging.take(),
                resume_at: state.resume_at.take(),
                bytes_received: state.bytes_received,
                frames_dropped: state.frames_dropped,
                disconnect_announced: state.disconnect_announced,
            };
            self.end_session_record(stream, previous, false).await;
            let (fresh, session) = self
                .open_session(stream, origin)
                .await
                .ok_or_else(|| anyhow::anyhow!("could not record a new session"))?;
            *state = fresh;
            self.emit_session_event(EventType::SessionStarted, session)
                .await;
        }
        let plan = match state.packaging.take() {
            Some(packaging) => PackagingPlan::Resume {
                packaging,
                resume_at: state
                    .resume_at
                    .unwrap_or(MediaTime::new(0, Timebase(1_000))),
            },
            None => PackagingPlan::New(PackagingTarget {
                store: self.store.clone(),
                spool: self.spool.clone(),
                live_stream_id: stream.id.clone(),
                session_id: state.session_id.clone(),
                window: playlist_window(&stream.dvr, &self.config),
                record: state.asset_id.is_some(),
            }),
        };
        let config = self.config.clone();
        let started = tokio::task::spawn_blocking(move || {
            SessionPipeline::start(source, shape, &config, plan, restream)
        })
        .await?;
        started.map_err(|failed| {
            // A resumed session keeps its packaging (and so its reconnect window).
            if let Some(PackagingPlan::Resume {
                packaging,
                resume_at,
            }) = failed.plan.map(|plan| *plan)
            {
                state.packaging = Some(packaging);
                state.resume_at = Some(resume_at);
            }
            failed.error
        })
    }

    /// Stores the session's input and counters: the current publisher's added to those of the
    /// publishers before it.
    async fn record_input(
        &self,
        state: &SessionState,
        input: serde_json::Value,
        bytes_received: u64,
        frames_dropped: u64,
    ) {
        let bytes_received = state.bytes_received + bytes_received;
        let frames_dropped = state.frames_dropped + frames_dropped;
        let session_id = state.session_id.as_str();
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

/// How a publisher's part of a session ended.
struct PublisherGone<E> {
    /// The control plane's reason when it stopped the session, or the connection's error.
    outcome: Result<Option<StopReason>, E>,
    /// Bytes this publisher sent.
    bytes: u64,
    /// The encoder unpublished (FCUnpublish/deleteStream) rather than vanishing.
    unpublished: bool,
}

/// The live playlists' window for a stream's DVR setting: a window in seconds is rounded up to
/// whole segments.
fn playlist_window(dvr: &Dvr, config: &LiveConfig) -> PlaylistWindow {
    match (dvr.mode, dvr.window_s) {
        (DvrMode::Event, _) => PlaylistWindow::Event,
        (DvrMode::Window, None) => PlaylistWindow::Segments(config.playlist_window),
        (DvrMode::Window, Some(seconds)) => {
            let segment = config.segment_seconds.max(1);
            PlaylistWindow::Segments(seconds.div_ceil(segment).max(1) as usize)
        }
    }
}

/// Waits up to [`SHUTDOWN_GRACE`] for `tasks` (publishers' connections, of `what` kind) to end
/// their sessions, then drops those still running.
async fn drain_or_abort<T: 'static>(tasks: &mut JoinSet<T>, what: &str) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = tasks.len(),
            "{what} did not end in time; dropping them."
        );
        tasks.abort_all();
    }
}
