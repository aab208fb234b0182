//! The life of one session, whatever its publisher: authorise (claim the stream, or resume
//! the session waiting in its reconnect window), open the session (row, status, recording's
//! asset, `session.started`), run it (the publisher's events through the [`StartGate`] into
//! the pipeline, restream targets fed beside), wait for a vanished publisher inside the
//! reconnect window, and close it (playlists ended, recording sealed, `session.ended`,
//! `live_stream.idle`). Every step publishes its events through the event bus.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_media::ladder::RungSpec;
use sluice_media::{MediaTime, Timebase};
use sluice_storage::layout;
use sluice_storage::{
    Dvr, DvrMode, EventType, HealthWarning, LiveStream, LiveStreamId, LiveStreamStatus, NewEvent,
    Session, SessionId, SessionOrigin,
};
use tracing::{debug, info, warn};

use crate::captions::{CaptionSettings, CaptionSource};
use crate::config::LiveConfig;
use crate::pipeline::{
    plan_ladder, LowLatencyTarget, PackagingPlan, PackagingTarget, SessionPipeline,
    SourceDescription,
};
use crate::publisher::{PublishRequest, Publisher, PublisherEvent};
use crate::reconnect::{SessionHealth, SessionState};
use crate::renditions::PlaylistWindow;
use crate::restream::{Restreamer, Tap};
use crate::session_control::{StopReason, StopSignal};
use crate::start_gate::{StartGate, Verdict};
use crate::LiveService;

/// How often the session row's counters are refreshed.
const SESSION_UPDATE_INTERVAL: Duration = Duration::from_secs(2);

impl LiveService {
    /// Authorises a publish request and, when accepted, runs it until it ends: the entry point
    /// of every protocol adapter.
    pub async fn publish<P: Publisher>(
        &self,
        mut connection: P,
        request: PublishRequest,
    ) -> Result<(), P::Error> {
        // Control events from here on are looked for once the session can be stopped (see
        // `run_publish`).
        let history_mark = self.db.latest_event_seq().await.ok();
        let Some((stream, parked)) = self
            .authorise(&request.stream_key, &request.origin, &mut connection)
            .await?
        else {
            return Ok(());
        };
        self.run_publish(connection, stream, request.origin, history_mark, parked)
            .await
    }

    /// Looks the stream key up and claims the stream for this publisher, or takes back its
    /// session waiting in the reconnect window; refuses the publish (and returns `None`) when
    /// it may not go on.
    async fn authorise<P: Publisher>(
        &self,
        stream_key: &str,
        origin: &SessionOrigin,
        connection: &mut P,
    ) -> Result<Option<(LiveStream, Option<SessionState>)>, P::Error> {
        let reason = if stream_key.is_empty() {
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
        warn!(protocol = origin.protocol, app = origin.app.as_deref().unwrap_or_default(), reason = %reason, "Refused publish.");
        connection.reject_publish(&reason).await?;
        Ok(None)
    }

    /// Runs an accepted publish until the encoder stops or vanishes, then waits for it inside
    /// the reconnect window or ends the session. `history_mark` is the event history's position
    /// when the publish was requested; `parked` is the session a returning publisher resumes.
    async fn run_publish<P: Publisher>(
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
                    self.views.clone(),
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
            true => self.recordings.start(&stream.id, &session.id).await,
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
            health: SessionHealth::new(stream.ladder.rungs.contains(&RungSpec::Source)),
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
            self.recordings
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
    async fn emit_stream_event(&self, event_type: EventType, live_stream_id: &LiveStreamId) {
        let stream = match self.db.get_live_stream(live_stream_id).await {
            Ok(Some(stream)) => stream,
            // Deleted meanwhile: `live_stream.deleted` said the last word.
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "Could not read the live stream for an event.");
                return;
            }
        };
        match self.views.live_stream(stream).await {
            Ok(data) => {
                self.emit(NewEvent::new(event_type, live_stream_id, data))
                    .await
            }
            Err(e) => warn!(error = %e, "Could not describe the live stream for an event."),
        }
    }

    async fn emit_session_event(&self, event_type: EventType, session: Session) {
        let session_id = session.id.clone();
        match self.views.session(session) {
            Ok(data) => {
                self.emit(NewEvent::new(event_type, &session_id, data))
                    .await
            }
            Err(e) => warn!(error = %e, "Could not describe the session for an event."),
        }
    }

    /// Stores the session's health as judged now, for the API, unless it is what was stored
    /// last (samples close every 5 s; warnings come and go).
    async fn store_health(&self, state: &mut SessionState) {
        let health = state.health.monitor.report();
        if state.health.stored.as_ref() == Some(&health) {
            return;
        }
        match self.db.set_session_health(&state.session_id, &health).await {
            Ok(()) => state.health.stored = Some(health),
            Err(e) => warn!(error = %e, "Could not store the session's health."),
        }
    }

    /// Publishes `live_stream.warning` about a problem the health check found.
    async fn emit_warning(
        &self,
        stream: &LiveStream,
        session_id: &SessionId,
        warning: HealthWarning,
    ) {
        info!(live_stream_id = %stream.id, code = warning.code.as_str(), message = %warning.message, "Stream health warning.");
        let data = json!({
            "live_stream_id": stream.id,
            "session_id": session_id,
            "code": warning.code,
            "message": warning.message,
            "since": warning.since,
        });
        self.emit(NewEvent::new(
            EventType::LiveStreamWarning,
            &stream.id,
            data,
        ))
        .await;
    }

    /// Events are part of the record, but a database hiccup must not end a live session.
    async fn emit(&self, event: NewEvent) {
        if let Err(e) = self.events.publish(event).await {
            warn!(error = %e, "Could not record an event.");
        }
    }

    /// Returns a claimed stream to `idle`, pointing at `last_session` when there was one.
    async fn release(&self, live_stream_id: &LiveStreamId, last_session: Option<&SessionId>) {
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
        let prefix = match layout::live_stream(live_stream_id) {
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
        if state.packaging.is_some() {
            let now = state.health.now();
            state.health.monitor.publisher_returned(now);
        }
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
            let now = state.health.now();
            let health = &mut state.health.monitor;
            let verdict = match next {
                Ok(PublisherEvent::Metadata {
                    frame_rate,
                    video_kbps,
                }) => {
                    gate.metadata(frame_rate);
                    health.metadata(video_kbps);
                    Verdict::Wait
                }
                Ok(PublisherEvent::Track(track)) => {
                    health.track(&track, now);
                    gate.track(track)
                }
                Ok(PublisherEvent::Media(packet)) => {
                    health.packet(&packet, now);
                    match &mut pipeline {
                        Some(running) => match running.push(packet).await {
                            Ok(()) => Verdict::Wait,
                            Err(e) => {
                                warn!(error = %e, "The live pipeline stopped; ending the session.");
                                break Ok(None);
                            }
                        },
                        None => gate.packet(packet, started.elapsed()),
                    }
                }
                Ok(PublisherEvent::Captions(lines)) => match &mut pipeline {
                    Some(running) => match running.push_captions(lines).await {
                        Ok(()) => Verdict::Wait,
                        Err(e) => {
                            warn!(error = %e, "The live pipeline stopped; ending the session.");
                            break Ok(None);
                        }
                    },
                    // Speech before the media starts has nothing to caption.
                    None => Verdict::Wait,
                },
                Ok(PublisherEvent::Unpublished) => {
                    unpublished = true;
                    break Ok(None);
                }
                Ok(PublisherEvent::Dropped) => break Ok(None),
                Err(e) => {
                    // Logged again when the session ends, which a reconnect window may delay.
                    debug!(error = %e, "The publisher's connection failed.");
                    break Err(e);
                }
            };
            let raised = state.health.monitor.check(now);
            if !raised.is_empty() {
                // Stored first, so whoever the event sends to the API finds the warning there.
                self.store_health(state).await;
                for warning in raised {
                    self.emit_warning(stream, &state.session_id, warning).await;
                }
            }
            match verdict {
                Verdict::Wait => {}
                Verdict::Refuse(refusal) => {
                    refusal.log();
                    break Ok(None);
                }
                Verdict::Start(source) => {
                    match self
                        .start_pipeline(
                            source,
                            stream,
                            origin,
                            connection.sends_captions(),
                            state,
                            restream.clone(),
                        )
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
                            for held in gate.open() {
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
            if let Some(running) = &pipeline {
                if last_update.elapsed() >= SESSION_UPDATE_INTERVAL {
                    last_update = Instant::now();
                    let dropped = running.frames_dropped();
                    state.health.monitor.frames_dropped(dropped, now);
                    self.store_health(state).await;
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
        sends_captions: bool,
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
                health: std::mem::replace(&mut state.health, SessionHealth::new(false)),
            };
            // The returning encoder declared its bitrate to the ending session's health check.
            let declared_kbps = previous.health.monitor.declared_kbps();
            self.end_session_record(stream, previous, false).await;
            let (fresh, session) = self
                .open_session(stream, origin)
                .await
                .ok_or_else(|| anyhow::anyhow!("could not record a new session"))?;
            *state = fresh;
            state.health.monitor.metadata(declared_kbps);
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
            None => {
                let part_target = self.config.part_target(stream.latency_mode);
                if let (Some(_), Some(url)) = (part_target, &self.packager_url) {
                    // Without it api nodes elsewhere serve the store's regular playlist.
                    if let Err(e) = self.db.set_session_packager(&state.session_id, url).await {
                        warn!(error = %e, "Could not record where the session's parts are served.");
                    }
                }
                let segment = self.config.segment_duration(stream.latency_mode);
                PackagingPlan::New(PackagingTarget {
                    store: self.store.clone(),
                    spool: self.spool.clone(),
                    live_stream_id: stream.id.clone(),
                    session_id: state.session_id.clone(),
                    window: playlist_window(&stream.dvr, segment, &self.config),
                    latency_mode: stream.latency_mode,
                    record: state.asset_id.is_some(),
                    low_latency: part_target.map(|part_target| LowLatencyTarget {
                        streams: self.low_latency.clone(),
                        part_target,
                    }),
                    captions: stream.captions.as_ref().map(|captions| CaptionSettings {
                        language: captions.language.clone(),
                        name: captions.name.clone(),
                        source: if sends_captions {
                            CaptionSource::Publisher
                        } else {
                            CaptionSource::Speech(self.speech.clone())
                        },
                    }),
                })
            }
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
        let session_id = &state.session_id;
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
/// whole segments of `segment`.
fn playlist_window(dvr: &Dvr, segment: Duration, config: &LiveConfig) -> PlaylistWindow {
    match (dvr.mode, dvr.window_s) {
        (DvrMode::Event, _) => PlaylistWindow::Event,
        (DvrMode::Window, None) => PlaylistWindow::Segments(config.playlist_window),
        (DvrMode::Window, Some(seconds)) => {
            let segment = segment.as_secs().max(1);
            PlaylistWindow::Segments(u64::from(seconds).div_ceil(segment).max(1) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_storage::LatencyMode;

    use super::*;

    #[test]
    fn a_dvr_window_in_seconds_counts_whole_segments_of_the_sessions_latency_mode() {
        let config = LiveConfig::default();
        let dvr = Dvr {
            mode: DvrMode::Window,
            window_s: Some(15),
        };
        let window = |mode| playlist_window(&dvr, config.segment_duration(mode), &config);
        assert_eq!(window(LatencyMode::Standard), PlaylistWindow::Segments(8));
        assert_eq!(window(LatencyMode::Reduced), PlaylistWindow::Segments(15));
        assert_eq!(window(LatencyMode::Low), PlaylistWindow::Segments(15));
        let default_window = Dvr {
            mode: DvrMode::Window,
            window_s: None,
        };
        assert_eq!(
            playlist_window(&default_window, Duration::from_secs(1), &config),
            PlaylistWindow::Segments(config.playlist_window)
        );
    }
}
