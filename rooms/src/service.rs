//! The rooms of this process as the rest of Sluice sees them: [`Rooms`] admits a client (its
//! access token checked against the API key it names, its room found or created), runs its
//! signal connection against the [`Engine`], answers the REST API's [`RoomControl`] requests,
//! and records what happens (session rows, participants, events) from the engine's notices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use livekit_protocol as proto;
use serde_json::{json, Value};
use sluice_live::LiveService;
use sluice_storage::{
    Db, EventBus, EventType, NewEvent, Permission, Room, RoomId, RoomSession, RoomSessionId,
};
use sluice_transcribe::Speech;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::composite::Composites;
use crate::control::{
    CompositeLayout, CompositeSpec, ControlError, DataMessage, ParticipantView, RoomControl,
};
use crate::engine::{Command, Control, Engine, EngineSettings, Joining, Notice, RoomRecord};
use crate::signal::{self, decode_request, encode_response};
use crate::token::{self, Grant, TokenError};
use crate::transcription::{TranscriptionSpec, Transcriptions};

/// Commands queued for the engine.
const COMMAND_QUEUE: usize = 1024;
/// Signal responses queued for one participant's WebSocket; a client that lets more pile up
/// is removed.
const SIGNAL_QUEUE: usize = 256;

/// Settings of the rooms of this process (config `[rooms]`).
#[derive(Debug, Clone)]
pub struct RoomsSettings {
    /// Joining a room name that does not exist creates it.
    pub auto_create: bool,
    /// The address announced to clients for media.
    pub candidate: SocketAddr,
    /// Participants this node holds, all rooms together.
    pub max_participants: usize,
    /// This node's base URL, recorded on the sessions it hosts.
    pub node_url: String,
}

/// A client whose token and room were checked, ready to join.
pub struct Admission {
    grant: Grant,
    room: RoomRecord,
    resume: bool,
    auto_subscribe: bool,
}

/// What a joining client asked for in its connect URL.
#[derive(Debug, Clone, Copy)]
pub struct JoinOptions {
    /// `reconnect=1`: the SDK tries to resume a session.
    pub resume: bool,
    pub auto_subscribe: bool,
}

/// Why a client may not connect: the HTTP status and message the SDK shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        Refusal {
            status: 401,
            message: error.to_string(),
        }
    }
}

/// The rooms of this process.
pub struct Rooms {
    commands: mpsc::Sender<Command>,
    composites: Composites,
    transcriptions: Arc<Transcriptions>,
    db: Db,
    auto_create: bool,
    node_url: String,
}

impl Rooms {
    /// Ends the sessions this node left open (a crash), starts the engine on `socket` and the
    /// recorder; both end at shutdown. Room composites publish through `live` (none without);
    /// transcriptions recognise speech with `speech`.
    pub async fn start(
        db: Db,
        events: EventBus,
        socket: UdpSocket,
        settings: RoomsSettings,
        live: Option<Arc<LiveService>>,
        speech: Arc<Speech>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Rooms>> {
        let ended = db.end_room_sessions_of_node(&settings.node_url).await?;
        if ended > 0 {
            info!(ended, "Ended room sessions this node left open.");
        }
        info!(udp = %socket.local_addr()?, candidate = %settings.candidate, "Rooms are listening for media.");
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let (notices, notice_inbox) = mpsc::unbounded_channel();
        let engine = Engine::new(
            socket,
            EngineSettings {
                candidate: settings.candidate,
                max_participants: settings.max_participants,
                node_id: settings.node_url.clone(),
            },
            inbox,
            notices,
            shutdown,
        );
        tokio::spawn(engine.run());
        let transcriptions = Arc::new(Transcriptions::new(
            speech,
            db.clone(),
            events.clone(),
            commands.clone(),
        ));
        tokio::spawn(record(
            db.clone(),
            events.clone(),
            settings.node_url.clone(),
            transcriptions.clone(),
            notice_inbox,
        ));
        Ok(Arc::new(Rooms {
            composites: Composites::new(
                live,
                transcriptions.clone(),
                db.clone(),
                events,
                commands.clone(),
            ),
            transcriptions,
            commands,
            db,
            auto_create: settings.auto_create,
            node_url: settings.node_url,
        }))
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Control(make(reply)))
            .await
            .map_err(|_| ControlError::Stopped)?;
        answer.await.map_err(|_| ControlError::Stopped)
    }
}

fn unavailable() -> Refusal {
    Refusal {
        status: 503,
        message: "the database is unavailable".into(),
    }
}

fn room_record(room: Room) -> RoomRecord {
    RoomRecord {
        id: room.id.to_string(),
        name: room.name,
        max_participants: room.max_participants,
        empty_timeout_s: room.empty_timeout_s,
        metadata: room.metadata,
        created_at: room.created_at,
        transcription_language: room
            .transcription
            .map(|transcription| transcription.language),
    }
}

#[async_trait]
impl RoomControl for Rooms {
    async fn admit(&self, access_token: &str, options: JoinOptions) -> Result<Admission, Refusal> {
        let key_id = token::claimed_api_key(access_token)?;
        let secret = self
            .db
            .api_key_jwt_secret(&key_id)
            .await
            .map_err(|e| {
                warn!(error = %e, "Reading an API key for a room token failed.");
                unavailable()
            })?
            .filter(|(key, _)| key.revoked_at.is_none())
            .ok_or(TokenError::UnknownKey)?;
        // Whoever holds a key can sign tokens with it offline: only a key that may manage
        // rooms (`rooms:write`, or `admin`) can let anyone in.
        let (key, secret) = secret;
        if !Permission::RoomsWrite.is_granted_by(&key.permissions) {
            return Err(Refusal {
                status: 403,
                message: format!(
                    "API key {} may not grant room access (it lacks rooms:write)",
                    key.id
                ),
            });
        }
        let grant = token::verify(access_token, &secret)?;
        let room = self
            .db
            .room_for_join(&grant.room, self.auto_create)
            .await
            .map_err(|e| {
                warn!(error = %e, "Finding a room to join failed.");
                unavailable()
            })?
            .ok_or_else(|| Refusal {
                // The SDKs recognise this text as "no such room".
                status: 404,
                message: "requested room does not exist".into(),
            })?;
        // A room runs on one node: the one that started its session.
        let running = self.db.active_room_session(&room.id).await.map_err(|e| {
            warn!(error = %e, "Reading a room's session failed.");
            unavailable()
        })?;
        if let Some(session) = running.filter(|session| session.node_url != self.node_url) {
            return Err(Refusal {
                status: 503,
                message: format!(
                    "room {} runs on node {}; connect there",
                    room.name, session.node_url
                ),
            });
        }
        Ok(Admission {
            grant,
            room: room_record(room),
            resume: options.resume,
            auto_subscribe: options.auto_subscribe,
        })
    }

    async fn attach(
        &self,
        admission: Admission,
        mut incoming: mpsc::Receiver<Vec<u8>>,
        outgoing: mpsc::Sender<Vec<u8>>,
    ) {
        if admission.resume {
            // Sessions are not resumed: the SDK rejoins in full on this answer.
            let leave = signal::leave(proto::DisconnectReason::StateMismatch, true);
            let _ = outgoing.send(encode_response(leave)).await;
            return;
        }
        let (signal_tx, mut responses) = mpsc::channel(SIGNAL_QUEUE);
        let (reply, joined) = oneshot::channel();
        let joining = Joining {
            room: admission.room,
            grant: admission.grant,
            auto_subscribe: admission.auto_subscribe,
            signal: signal_tx,
        };
        if self
            .commands
            .send(Command::Join {
                joining: Box::new(joining),
                reply,
            })
            .await
            .is_err()
        {
            return;
        }
        let key = match joined.await {
            Ok(Ok(key)) => key,
            Ok(Err(reason)) => {
                let leave = signal::leave(reason, false);
                let _ = outgoing.send(encode_response(leave)).await;
                return;
            }
            Err(_) => return,
        };
        let gone = |reason: String| Command::Gone { key, reason };
        loop {
            tokio::select! {
                message = incoming.recv() => {
                    let Some(bytes) = message else {
                        let _ = self.commands.send(gone("its signal connection closed".into())).await;
                        break;
                    };
                    match decode_request(&bytes) {
                        Ok(request) => {
                            if self.commands.send(Command::Signal {
                                key,
                                request: Box::new(request),
                            }).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            debug!(error = %e, "Refused a signal message.");
                            let _ = self.commands.send(gone(format!("it sent a bad signal message: {e}"))).await;
                        }
                    }
                }
                response = responses.recv() => {
                    // `None`: the engine removed the participant (after queueing its leave).
                    let Some(response) = response else { break };
                    if outgoing.send(encode_response(response)).await.is_err() {
                        let _ = self.commands.send(gone("its signal connection closed".into())).await;
                        break;
                    }
                }
            }
        }
        // What the engine queued last (a leave) still goes out.
        while let Ok(response) = responses.try_recv() {
            if outgoing.send(encode_response(response)).await.is_err() {
                break;
            }
        }
    }

    async fn participants(&self, room: &str) -> Result<Vec<ParticipantView>, ControlError> {
        let room = room.to_owned();
        self.ask(|reply| Control::Participants { room, reply })
            .await
    }

    async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), ControlError> {
        let (room, identity) = (room.to_owned(), identity.to_owned());
        self.ask(|reply| Control::Remove {
            room,
            identity,
            reply,
        })
        .await?
    }

    async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<(), ControlError> {
        let (room, identity, track_sid) =
            (room.to_owned(), identity.to_owned(), track_sid.to_owned());
        self.ask(|reply| Control::Mute {
            room,
            identity,
            track_sid,
            muted,
            reply,
        })
        .await?
    }

    async fn send_data(&self, room: &str, message: DataMessage) -> Result<(), ControlError> {
        let room = room.to_owned();
        self.ask(|reply| Control::SendData {
            room,
            message,
            reply,
        })
        .await?
    }

    async fn close_room(&self, room: &str) -> Result<(), ControlError> {
        let room = room.to_owned();
        self.ask(|reply| Control::Close { room, reply }).await?
    }

    async fn start_composite(&self, spec: CompositeSpec) -> Result<(), ControlError> {
        self.composites.start(spec).await
    }

    async fn set_composite_layout(
        &self,
        room: &str,
        layout: CompositeLayout,
    ) -> Result<(), ControlError> {
        self.composites.set_layout(room, layout)
    }

    async fn stop_composite(&self, room: &str) -> Result<(), ControlError> {
        self.composites.stop(room)
    }

    async fn start_transcription(
        &self,
        room_id: &str,
        room_name: &str,
        language: &str,
    ) -> Result<bool, ControlError> {
        let room_id = RoomId::parse(room_id).map_err(|_| ControlError::RoomNotRunning)?;
        let session = self.db.active_room_session(&room_id).await.map_err(|e| {
            warn!(error = %e, "Reading a room's session to transcribe failed.");
            ControlError::Stopped
        })?;
        let Some(session) = session.filter(|session| session.node_url == self.node_url) else {
            return Ok(false);
        };
        self.transcriptions
            .start(transcription_spec(room_name, &session, language))
            .await
            .map(|()| true)
    }

    async fn stop_transcription(&self, room: &str) -> Result<(), ControlError> {
        self.transcriptions.stop(room)
    }
}

/// What transcribing `session` of the room named `room_name` takes.
fn transcription_spec(room_name: &str, session: &RoomSession, language: &str) -> TranscriptionSpec {
    TranscriptionSpec {
        room_id: session.room_id.clone(),
        room_name: room_name.to_owned(),
        session_id: session.id.clone(),
        session_started_at: session.started_at,
        language: language.to_owned(),
    }
}

/// Turns the engine's notices into session rows and events, in order.
async fn record(
    db: Db,
    events: EventBus,
    node_url: String,
    transcriptions: Arc<Transcriptions>,
    mut notices: mpsc::UnboundedReceiver<Notice>,
) {
    let mut recorder = Recorder {
        db,
        events,
        node_url,
        transcriptions,
        sessions: HashMap::new(),
    };
    while let Some(notice) = notices.recv().await {
        if let Err(e) = recorder.record(notice).await {
            warn!(error = %e, "Recording a room event failed.");
        }
    }
}

struct Recorder {
    db: Db,
    events: EventBus,
    node_url: String,
    transcriptions: Arc<Transcriptions>,
    /// The running session of each room, by room id.
    sessions: HashMap<String, RoomSessionId>,
}

fn room_json(room: &RoomRecord, session: Option<&RoomSessionId>) -> Value {
    json!({"room": {"id": room.id, "name": room.name}, "session_id": session})
}

impl Recorder {
    async fn publish(
        &self,
        event_type: EventType,
        room: &RoomRecord,
        data: Value,
    ) -> anyhow::Result<()> {
        self.events
            .publish(NewEvent::new(event_type, &room.id, data))
            .await?;
        Ok(())
    }

    async fn track_event(
        &self,
        event_type: EventType,
        room: &RoomRecord,
        participant: &ParticipantView,
        track: &crate::control::TrackView,
    ) -> anyhow::Result<()> {
        let mut data = room_json(room, self.sessions.get(&room.id));
        data["participant"] = json!({"sid": participant.sid, "identity": participant.identity});
        data["track"] = serde_json::to_value(track)?;
        self.publish(event_type, room, data).await
    }

    async fn record(&mut self, notice: Notice) -> anyhow::Result<()> {
        match notice {
            Notice::RoomStarted { room } => {
                let room_id = RoomId::parse(&room.id)?;
                let session = self.db.start_room_session(&room_id, &self.node_url).await?;
                self.sessions.insert(room.id.clone(), session.id.clone());
                let data = room_json(&room, Some(&session.id));
                self.publish(EventType::RoomStarted, &room, data.clone())
                    .await?;
                self.publish(EventType::RoomSessionStarted, &room, data)
                    .await?;
                if let Some(language) = &room.transcription_language {
                    // Registered now, so the room's end (a later notice) stops it.
                    let starting = self
                        .transcriptions
                        .start(transcription_spec(&room.name, &session, language));
                    tokio::spawn(async move {
                        if let Err(e) = starting.await {
                            warn!(error = %e, "The room's transcription did not start.");
                        }
                    });
                }
            }
            Notice::RoomFinished { room } => {
                // Its tap hears the end too; this also stops one still starting.
                let _ = self.transcriptions.stop(&room.name);
                let session = self.sessions.remove(&room.id);
                if let Some(session) = &session {
                    self.db.end_room_session(session).await?;
                }
                let data = room_json(&room, session.as_ref());
                self.publish(EventType::RoomSessionEnded, &room, data.clone())
                    .await?;
                self.publish(EventType::RoomFinished, &room, data).await?;
            }
            Notice::ParticipantJoined { room, participant } => {
                let session = self.sessions.get(&room.id).cloned();
                if let Some(session) = &session {
                    let room_id = RoomId::parse(&room.id)?;
                    self.db
                        .record_participant_joined(
                            session,
                            &room_id,
                            &participant.sid,
                            &participant.identity,
                            &participant.name,
                        )
                        .await?;
                }
                let mut data = room_json(&room, session.as_ref());
                data["participant"] = serde_json::to_value(&participant)?;
                self.publish(EventType::ParticipantJoined, &room, data)
                    .await?;
            }
            Notice::ParticipantLeft {
                room,
                participant,
                reason,
            } => {
                self.db.record_participant_left(&participant.sid).await?;
                let mut data = room_json(&room, self.sessions.get(&room.id));
                data["participant"] = serde_json::to_value(&participant)?;
                data["reason"] = json!(reason);
                self.publish(EventType::ParticipantLeft, &room, data)
                    .await?;
            }
            Notice::TrackPublished {
                room,
                participant,
                track,
            } => {
                self.track_event(EventType::TrackPublished, &room, &participant, &track)
                    .await?;
            }
            Notice::TrackUnpublished {
                room,
                participant,
                track,
            } => {
                self.track_event(EventType::TrackUnpublished, &room, &participant, &track)
                    .await?;
            }
            Notice::TrackMuted {
                room,
                participant,
                track,
                muted,
            } => {
                let event_type = if muted {
                    EventType::TrackMuted
                } else {
                    EventType::TrackUnmuted
                };
                self.track_event(event_type, &room, &participant, &track)
                    .await?;
            }
        }
        Ok(())
    }
}
