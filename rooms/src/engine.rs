//! The room engine: every room of this process, its participants and their peer connections,
//! owned by one task that also owns the UDP socket all room media arrives on.
//!
//! Each participant has two str0m [`Rtc`]s, as LiveKit's two-peer-connection protocol has
//! them: the **publisher** connection, which the client offers (its data channels and the
//! tracks it publishes), and the **subscriber** connection, which the engine offers (one
//! send-only media section per track of the others, its msid `PA_…|TR_…` naming the
//! participant and track for the SDK). Media is forwarded frame by frame without decoding:
//! a frame from a publisher's track is written to every subscriber of it, the simulcast layer
//! each subscriber asked for and its bandwidth allows ([`crate::simulcast`]); key frame requests
//! travel back to the publisher; microphone audio levels drive active-speaker updates
//! ([`crate::speakers`]); data packets are relayed to their destinations.
//!
//! Signal messages reach the engine as [`Command::Signal`] from each participant's WebSocket
//! task, and responses go back over the participant's bounded queue: a participant that does
//! not read them (or floods the engine) is removed alone. What happened is reported as
//! [`Notice`]s, which the recorder turns into session rows and events.

// The SDKs in use still read the fields LiveKit's protocol marks deprecated (a track's
// `layers` and `simulcast`, a data packet's `kind`, a user packet's sender), so they are filled.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use livekit_protocol as proto;
use prost::Message as _;
use rand::distributions::{Alphanumeric, DistString};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::control::{ControlError, DataMessage, ParticipantView, TrackView};
use crate::signal::{self, Request, Response, MAX_MEDIA_SECTIONS};
use crate::simulcast::{choose_layer, Forward, Layer, LayerForwarder, Quality};
use crate::speakers::Speakers;
use crate::tap::{Offered, Tap, TapCodec, TapEvent};
use crate::token::Grant;

/// Largest datagram read (above any path MTU).
const MAX_DATAGRAM: usize = 2048;
/// Rounds of polling and acting on events per wake-up.
const DRIVE_ROUNDS: usize = 4;
/// Longest sleep of the task when no timer is due sooner.
const MAX_IDLE: Duration = Duration::from_millis(100);
/// How often the SDK pings, and how long a silent signal connection lives (LiveKit's values).
pub const PING_INTERVAL_S: i32 = 5;
pub const PING_TIMEOUT_S: i32 = 15;
/// The publisher connection must be up this long after joining.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time between two key frame requests for one layer of one track.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// A simulcast layer with no frame for this long is not chosen for anyone.
const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often each subscriber connection's wanted bitrate is updated (its bandwidth estimator
/// probes up to it).
const DESIRED_BITRATE_INTERVAL: Duration = Duration::from_secs(1);
/// What a video track without announced layer bitrates is assumed to need, and an audio track.
const DEFAULT_VIDEO_BITRATE: u64 = 1_500_000;
const AUDIO_BITRATE: u64 = 64_000;
/// How often speaker changes are computed and sent.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(300);
/// The most tracks one participant may publish.
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 16;
/// The largest data packet relayed, in bytes.
pub const MAX_DATA_PACKET_BYTES: usize = 64 * 1024;
/// Signal messages a participant may send in a burst, and per second after it.
const SIGNAL_BURST: f64 = 200.0;
const SIGNAL_RATE: f64 = 50.0;
/// The version this server reports; the SDKs require one of at least 1.8.0 for RPC.
pub const SERVER_VERSION: &str = "1.9.0";
/// The data channel labels LiveKit's SDKs open on the publisher connection.
const RELIABLE_LABEL: &str = "_reliable";
const LOSSY_LABEL: &str = "_lossy";

/// A participant's key inside the engine (never reused in a process).
pub type ParticipantKey = u64;

/// A room as the engine needs it, from its database row.
#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    /// 0: no limit.
    pub max_participants: u32,
    pub empty_timeout_s: u32,
    pub metadata: String,
    pub created_at: DateTime<Utc>,
    /// The language its microphones are transcribed in, when they are.
    pub transcription_language: Option<String>,
}

/// A client that passed the token check and asks to join.
pub struct Joining {
    pub room: RoomRecord,
    pub grant: Grant,
    pub auto_subscribe: bool,
    /// Where the participant's signal responses go.
    pub signal: mpsc::Sender<Response>,
}

/// What the engine is asked to do.
pub enum Command {
    Join {
        joining: Box<Joining>,
        /// The participant's key, or why it was refused.
        reply: oneshot::Sender<Result<ParticipantKey, proto::DisconnectReason>>,
    },
    Signal {
        key: ParticipantKey,
        request: Box<Request>,
    },
    /// The participant's WebSocket closed or sent something unreadable.
    Gone {
        key: ParticipantKey,
        reason: String,
    },
    Control(Control),
}

/// A request from the REST API.
pub enum Control {
    Participants {
        room: String,
        reply: oneshot::Sender<Vec<ParticipantView>>,
    },
    Remove {
        room: String,
        identity: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Mute {
        room: String,
        identity: String,
        track_sid: String,
        muted: bool,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    SendData {
        room: String,
        message: DataMessage,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Close {
        room: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Sets a tap on a room by name ([`crate::tap`]); `video: false` takes members and audio
    /// only.
    Tap {
        room: String,
        sender: std::sync::mpsc::SyncSender<TapEvent>,
        video: bool,
    },
    /// Sends recognised speech of a participant's track to everyone in the room, as LiveKit's
    /// transcription data packets (the SDKs' `TranscriptionReceived`).
    Transcription {
        room: String,
        transcription: proto::Transcription,
    },
    /// A tap's consumer needs a key frame of a video track.
    TapKeyframe { room: String, track_sid: String },
}

/// What happened, for the session rows and events.
#[derive(Debug, Clone)]
pub enum Notice {
    RoomStarted {
        room: RoomRecord,
    },
    RoomFinished {
        room: RoomRecord,
    },
    ParticipantJoined {
        room: RoomRecord,
        participant: ParticipantView,
    },
    ParticipantLeft {
        room: RoomRecord,
        participant: ParticipantView,
        reason: String,
    },
    TrackPublished {
        room: RoomRecord,
        participant: ParticipantView,
        track: TrackView,
    },
    TrackUnpublished {
        room: RoomRecord,
        participant: ParticipantView,
        track: TrackView,
    },
    TrackMuted {
        room: RoomRecord,
        participant: ParticipantView,
        track: TrackView,
        muted: bool,
    },
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The host candidate announced to clients.
    pub candidate: SocketAddr,
    /// Participants of all rooms together.
    pub max_participants: usize,
    /// This node, as `ServerInfo.node_id`.
    pub node_id: String,
}

struct Peer {
    rtc: Rtc,
    next_timeout: Instant,
    connected: bool,
}

/// Which of a participant's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Publisher,
    Subscriber,
}

/// A track a participant publishes.
struct Published {
    info: proto::TrackInfo,
    cid: String,
    /// Its media section on the publisher connection, once the client's offer carried it.
    mid: Option<Mid>,
    /// Simulcast layers, lowest first (empty without simulcast).
    layers: Vec<Layer>,
    /// When a frame of each layer last arrived: a browser sends the higher layers only once
    /// its bandwidth allows, and stops them when it drops.
    layer_seen: HashMap<Rid, Instant>,
    last_keyframe_request: HashMap<Option<Rid>, Instant>,
}

/// A track of another participant this one receives.
struct Subscription {
    publisher: ParticipantKey,
    track_sid: String,
    /// The publisher's participant sid, for the media section's msid.
    publisher_sid: String,
    /// Its media section on the subscriber connection, from the offer that added it.
    mid: Option<Mid>,
    kind: MediaKind,
    quality: Quality,
    disabled: bool,
    forwarder: LayerForwarder,
}

/// The subscriber connection's offer/answer state: one offer outstanding at a time.
#[derive(Default)]
struct Negotiation {
    pending: Option<SdpPendingOffer>,
    /// Media sections of tracks that went away, to stop in the next offer.
    stops: Vec<Mid>,
    last_id: u32,
    /// Changes were made while an offer was outstanding.
    again: bool,
    /// The first offer carried the connection's data channel.
    started: bool,
}

struct Participant {
    key: ParticipantKey,
    room: String,
    sid: String,
    grant: Grant,
    joined_at: DateTime<Utc>,
    joined: Instant,
    signal: mpsc::Sender<Response>,
    publisher: Peer,
    subscriber: Peer,
    auto_subscribe: bool,
    version: u32,
    tracks: Vec<Published>,
    subscriptions: Vec<Subscription>,
    negotiation: Negotiation,
    /// The media sections of the client's last offer on the publisher connection.
    offered_mids: Vec<Mid>,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    /// The subscriber connection's bandwidth estimate, bits per second.
    bandwidth: Option<u64>,
    last_signal: Instant,
    signal_budget: f64,
}

struct RoomState {
    record: RoomRecord,
    members: Vec<ParticipantKey>,
    empty_since: Option<Instant>,
    speakers: Speakers,
    next_speaker_check: Instant,
}

/// The engine's task state.
pub struct Engine {
    socket: UdpSocket,
    settings: EngineSettings,
    commands: mpsc::Receiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
    shutdown: watch::Receiver<bool>,
    rooms: HashMap<String, RoomState>,
    participants: HashMap<ParticipantKey, Participant>,
    next_key: ParticipantKey,
    next_desired_bitrate: Instant,
    /// Taps by room name.
    taps: HashMap<String, Vec<Tap>>,
}

fn random_sid(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 12)
    )
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn kind_name(info: &proto::TrackInfo) -> &'static str {
    if info.r#type == proto::TrackType::Audio as i32 {
        "audio"
    } else {
        "video"
    }
}

fn source_name(source: i32) -> &'static str {
    match proto::TrackSource::try_from(source) {
        Ok(proto::TrackSource::Camera) => "camera",
        Ok(proto::TrackSource::Microphone) => "microphone",
        Ok(proto::TrackSource::ScreenShare) => "screen_share",
        Ok(proto::TrackSource::ScreenShareAudio) => "screen_share_audio",
        _ => "unknown",
    }
}

fn track_view(track: &Published) -> TrackView {
    TrackView {
        sid: track.info.sid.clone(),
        kind: kind_name(&track.info),
        source: source_name(track.info.source),
        name: track.info.name.clone(),
        muted: track.info.muted,
        mime_type: track.info.mime_type.clone(),
        width: track.info.width,
        height: track.info.height,
        simulcast: track.info.simulcast,
    }
}

fn quality_of(value: i32) -> Quality {
    match proto::VideoQuality::try_from(value) {
        Ok(proto::VideoQuality::Low) => Quality::Low,
        Ok(proto::VideoQuality::Medium) => Quality::Medium,
        _ => Quality::High,
    }
}

impl Peer {
    fn new(candidate: SocketAddr, offerer: bool) -> Peer {
        let mut config = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true);
        if offerer {
            config = config.enable_bwe(Some(Bitrate::kbps(600)));
        }
        let mut rtc = config.build(Instant::now());
        if let Ok(candidate) = Candidate::host(candidate, "udp") {
            rtc.add_local_candidate(candidate);
        }
        Peer {
            rtc,
            next_timeout: Instant::now(),
            connected: false,
        }
    }
}

impl Participant {
    fn info(&self, state: proto::participant_info::State) -> proto::ParticipantInfo {
        let grant = &self.grant;
        proto::ParticipantInfo {
            sid: self.sid.clone(),
            identity: grant.identity.clone(),
            state: state as i32,
            tracks: self
                .tracks
                .iter()
                .filter(|track| track.mid.is_some())
                .map(|track| track.info.clone())
                .collect(),
            metadata: grant.metadata.clone(),
            joined_at: self.joined_at.timestamp(),
            joined_at_ms: self.joined_at.timestamp_millis(),
            name: grant.name.clone(),
            version: self.version,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: grant.can_subscribe,
                can_publish: grant.can_publish,
                can_publish_data: grant.can_publish_data,
                can_publish_sources: grant
                    .can_publish_sources
                    .iter()
                    .filter_map(|name| {
                        proto::TrackSource::from_str_name(&name.to_ascii_uppercase())
                            .map(|source| source as i32)
                    })
                    .collect(),
                hidden: grant.hidden,
                ..Default::default()
            }),
            is_publisher: self.tracks.iter().any(|track| track.mid.is_some()),
            ..Default::default()
        }
    }

    fn view(&self) -> ParticipantView {
        ParticipantView {
            sid: self.sid.clone(),
            identity: self.grant.identity.clone(),
            name: self.grant.name.clone(),
            metadata: self.grant.metadata.clone(),
            joined_at: self.joined_at,
            state: if self.publisher.connected {
                "active"
            } else {
                "joining"
            },
            hidden: self.grant.hidden,
            tracks: self
                .tracks
                .iter()
                .filter(|track| track.mid.is_some())
                .map(track_view)
                .collect(),
        }
    }

    /// Queues a signal response; `false` when the client does not keep up (or is gone).
    fn send(&self, response: Response) -> bool {
        self.signal.try_send(response).is_ok()
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Publisher => &mut self.publisher,
            Side::Subscriber => &mut self.subscriber,
        }
    }

    /// Takes one signal message from the budget; `false` when the client floods.
    fn spend_signal_budget(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last_signal).as_secs_f64();
        self.signal_budget = (self.signal_budget + elapsed * SIGNAL_RATE).min(SIGNAL_BURST) - 1.0;
        self.last_signal = now;
        self.signal_budget >= 0.0
    }

    /// Whether the grant lets this participant publish a track of `source`.
    fn may_publish(&self, source: i32) -> bool {
        let sources = &self.grant.can_publish_sources;
        self.grant.can_publish
            && (sources.is_empty()
                || sources
                    .iter()
                    .any(|name| name.as_str() == source_name(source)))
    }

    /// Offers the subscriber connection's pending changes, unless an offer is outstanding.
    fn negotiate(&mut self) {
        if self.negotiation.pending.is_some() {
            self.negotiation.again = true;
            return;
        }
        // str0m keeps an `SdpApi`'s changes only until it is dropped: everything goes into
        // one, then one offer.
        let mut api = self.subscriber.rtc.sdp_api();
        if !self.negotiation.started {
            // A data section keeps the connection's bundle alive when every track it carried
            // is stopped (an offer of stopped sections only is refused by browsers); the SDK
            // adopts the channel by its label.
            api.add_channel(RELIABLE_LABEL.to_owned());
            self.negotiation.started = true;
        }
        for mid in self.negotiation.stops.drain(..) {
            api.stop_media(mid);
        }
        for sub in self
            .subscriptions
            .iter_mut()
            .filter(|sub| sub.mid.is_none())
        {
            sub.mid = Some(api.add_media(
                sub.kind,
                Direction::SendOnly,
                Some(format!("{}|{}", sub.publisher_sid, sub.track_sid)),
                Some(sub.track_sid.clone()),
                None,
            ));
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.negotiation.pending = Some(pending);
        self.negotiation.again = false;
        self.negotiation.last_id += 1;
        debug!(participant_sid = %self.sid, offer = self.negotiation.last_id, subscriptions = self.subscriptions.len(), "Offering the subscriber connection.");
        let mid_to_track_id = self
            .subscriptions
            .iter()
            .filter_map(|sub| Some((sub.mid?.to_string(), sub.track_sid.clone())))
            .collect();
        self.send(Response::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: self.negotiation.last_id,
            mid_to_track_id,
        }));
    }
}

impl Engine {
    pub fn new(
        socket: UdpSocket,
        settings: EngineSettings,
        commands: mpsc::Receiver<Command>,
        notices: mpsc::UnboundedSender<Notice>,
        shutdown: watch::Receiver<bool>,
    ) -> Engine {
        Engine {
            socket,
            settings,
            commands,
            notices,
            shutdown,
            rooms: HashMap::new(),
            participants: HashMap::new(),
            next_key: 1,
            next_desired_bitrate: Instant::now(),
            taps: HashMap::new(),
        }
    }

    /// Runs until shutdown; every participant is then told the server is going away.
    pub async fn run(mut self) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut shutdown = self.shutdown.clone();
        loop {
            let now = Instant::now();
            self.drive(now);
            self.tick(now);
            let wake = self
                .participants
                .values()
                .flat_map(|p| [p.publisher.next_timeout, p.subscriber.next_timeout])
                .min()
                .unwrap_or(now + MAX_IDLE)
                .clamp(now, now + MAX_IDLE);
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => self.route(&buffer[..length], source),
                    Err(e) => debug!(error = %e, "Receiving a room datagram failed."),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.apply(command),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        let keys: Vec<_> = self.participants.keys().copied().collect();
        for key in keys {
            self.remove(
                key,
                "the server is shutting down",
                Some(signal::leave(proto::DisconnectReason::ServerShutdown, true)),
            );
        }
        let names: Vec<_> = self.rooms.keys().cloned().collect();
        for name in names {
            self.finish_room(&name);
        }
    }

    fn notice(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    fn room_record(&self, name: &str) -> Option<RoomRecord> {
        self.rooms.get(name).map(|room| room.record.clone())
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Join { joining, reply } => {
                let result = self.join(*joining);
                let _ = reply.send(result);
            }
            Command::Signal { key, request } => self.signal(key, *request),
            Command::Gone { key, reason } => self.remove(key, &reason, None),
            Command::Control(control) => self.control(control),
        }
    }

    // ---- joining and leaving -------------------------------------------------------------

    fn join(&mut self, joining: Joining) -> Result<ParticipantKey, proto::DisconnectReason> {
        let Joining {
            room,
            grant,
            auto_subscribe,
            signal,
        } = joining;
        if self.participants.len() >= self.settings.max_participants {
            warn!(room = %room.name, "Refused a participant: this node holds as many as it may.");
            return Err(proto::DisconnectReason::JoinFailure);
        }
        // The same identity joining again (a client's full reconnect) replaces the old one.
        if let Some(old) = self.find(&room.name, &grant.identity) {
            self.remove(
                old,
                "the same identity joined again",
                Some(signal::leave(
                    proto::DisconnectReason::DuplicateIdentity,
                    false,
                )),
            );
        }
        let state = self
            .rooms
            .entry(room.name.clone())
            .or_insert_with(|| RoomState {
                record: room.clone(),
                members: Vec::new(),
                empty_since: None,
                speakers: Speakers::default(),
                next_speaker_check: Instant::now(),
            });
        let starting = state.members.is_empty() && state.empty_since.is_none();
        state.record = room.clone();
        if room.max_participants > 0 && state.members.len() >= room.max_participants as usize {
            info!(room = %room.name, identity = %grant.identity, "Refused a participant: the room is full.");
            if starting {
                self.rooms.remove(&room.name);
            }
            return Err(proto::DisconnectReason::JoinFailure);
        }
        state.members.push(self.next_key);
        state.empty_since = None;
        let key = self.next_key;
        self.next_key += 1;
        let now = Instant::now();
        let participant = Participant {
            key,
            room: room.name.clone(),
            sid: random_sid("PA_"),
            grant,
            joined_at: Utc::now(),
            joined: now,
            signal,
            publisher: Peer::new(self.settings.candidate, false),
            subscriber: Peer::new(self.settings.candidate, true),
            auto_subscribe,
            version: 1,
            tracks: Vec::new(),
            subscriptions: Vec::new(),
            negotiation: Negotiation::default(),
            offered_mids: Vec::new(),
            reliable: None,
            lossy: None,
            bandwidth: None,
            last_signal: now,
            signal_budget: SIGNAL_BURST,
        };
        let others: Vec<proto::ParticipantInfo> = self
            .members(&room.name, Some(key))
            .filter(|other| !other.grant.hidden)
            .map(|other| other.info(proto::participant_info::State::Active))
            .collect();
        let response = Response::Join(proto::JoinResponse {
            room: Some(proto::Room {
                sid: room.id.clone(),
                name: room.name.clone(),
                empty_timeout: room.empty_timeout_s,
                max_participants: room.max_participants,
                creation_time: room.created_at.timestamp(),
                creation_time_ms: room.created_at.timestamp_millis(),
                metadata: room.metadata.clone(),
                num_participants: others.len() as u32 + 1,
                ..Default::default()
            }),
            participant: Some(participant.info(proto::participant_info::State::Joined)),
            other_participants: others,
            server_version: SERVER_VERSION.into(),
            subscriber_primary: false,
            client_configuration: Some(proto::ClientConfiguration {
                // A dropped connection rejoins in full rather than resuming.
                resume_connection: proto::ClientConfigSetting::Disabled as i32,
                ..Default::default()
            }),
            ping_timeout: PING_TIMEOUT_S,
            ping_interval: PING_INTERVAL_S,
            server_info: Some(proto::ServerInfo {
                edition: proto::server_info::Edition::Standard as i32,
                version: SERVER_VERSION.into(),
                protocol: 16,
                node_id: self.settings.node_id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        participant.send(response);
        info!(room = %room.name, identity = %participant.grant.identity, participant_sid = %participant.sid, "Participant joined.");
        let hidden = participant.grant.hidden;
        let info = participant.info(proto::participant_info::State::Joined);
        let view = participant.view();
        self.participants.insert(key, participant);
        if starting {
            self.notice(Notice::RoomStarted { room: room.clone() });
        }
        self.notice(Notice::ParticipantJoined {
            room: room.clone(),
            participant: view,
        });
        if !hidden {
            self.broadcast_update(&room.name, Some(key), vec![info]);
        }
        // Everything already published in the room.
        let published: Vec<(ParticipantKey, String)> = self
            .members(&room.name, Some(key))
            .flat_map(|other| {
                other
                    .tracks
                    .iter()
                    .filter(|track| track.mid.is_some())
                    .map(|track| (other.key, track.info.sid.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (publisher, track_sid) in published {
            self.subscribe(key, publisher, &track_sid);
        }
        if let Some(participant) = self.participants.get_mut(&key) {
            participant.negotiate();
        }
        Ok(key)
    }

    /// The participants of `room`, but `except`.
    fn members<'a>(
        &'a self,
        room: &str,
        except: Option<ParticipantKey>,
    ) -> impl Iterator<Item = &'a Participant> + 'a {
        self.member_keys(room, except)
            .into_iter()
            .filter_map(|key| self.participants.get(&key))
    }

    fn member_keys(&self, room: &str, except: Option<ParticipantKey>) -> Vec<ParticipantKey> {
        self.rooms
            .get(room)
            .map(|state| {
                state
                    .members
                    .iter()
                    .copied()
                    .filter(|key| Some(*key) != except)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find(&self, room: &str, identity: &str) -> Option<ParticipantKey> {
        self.members(room, None)
            .find(|participant| participant.grant.identity == identity)
            .map(|participant| participant.key)
    }

    /// Sends `participants` to everyone in `room` but `except`.
    fn broadcast_update(
        &mut self,
        room: &str,
        except: Option<ParticipantKey>,
        participants: Vec<proto::ParticipantInfo>,
    ) {
        let update = Response::Update(proto::ParticipantUpdate { participants });
        let mut stalled = Vec::new();
        for other in self.members(room, except) {
            if !other.send(update.clone()) {
                stalled.push(other.key);
            }
        }
        for key in stalled {
            self.remove(key, "its signal connection does not keep up", None);
        }
        self.update_taps(room);
    }

    /// Removes a participant: its connections close, the others stop receiving its tracks and
    /// are told it left.
    fn remove(&mut self, key: ParticipantKey, reason: &str, leave: Option<Response>) {
        let Some(mut participant) = self.participants.remove(&key) else {
            return;
        };
        if let Some(leave) = leave {
            participant.send(leave);
        }
        for peer in [&mut participant.publisher, &mut participant.subscriber] {
            peer.rtc.disconnect();
            while let Ok(Output::Transmit(transmit)) = peer.rtc.poll_output() {
                let _ = self
                    .socket
                    .try_send_to(&transmit.contents, transmit.destination);
            }
        }
        info!(room = %participant.room, identity = %participant.grant.identity, participant_sid = %participant.sid, reason, "Participant left.");
        let room_name = participant.room.clone();
        let Some(record) = self.room_record(&room_name) else {
            return;
        };
        let mut speaker_change = None;
        if let Some(state) = self.rooms.get_mut(&room_name) {
            state.members.retain(|member| *member != key);
            if state.members.is_empty() {
                state.empty_since = Some(Instant::now());
            }
            speaker_change = state.speakers.remove(&participant.sid);
        }
        for other in self.member_keys(&room_name, None) {
            let Some(other) = self.participants.get_mut(&other) else {
                continue;
            };
            let mut changed = false;
            other.subscriptions.retain(|sub| {
                if sub.publisher == key {
                    other.negotiation.stops.extend(sub.mid);
                    changed = true;
                    false
                } else {
                    true
                }
            });
            if changed {
                other.negotiate();
            }
        }
        if !participant.grant.hidden {
            participant.version += 1;
            let info = participant.info(proto::participant_info::State::Disconnected);
            self.broadcast_update(&room_name, None, vec![info]);
        }
        if let Some(change) = speaker_change {
            self.broadcast_speakers(&room_name, vec![change]);
        }
        let view = participant.view();
        for track in participant
            .tracks
            .iter()
            .filter(|track| track.mid.is_some())
        {
            self.notice(Notice::TrackUnpublished {
                room: record.clone(),
                participant: view.clone(),
                track: track_view(track),
            });
        }
        self.notice(Notice::ParticipantLeft {
            room: record,
            participant: view,
            reason: reason.to_owned(),
        });
    }

    fn finish_room(&mut self, name: &str) {
        for tap in self.taps.remove(name).unwrap_or_default() {
            tap.offer(TapEvent::RoomFinished);
        }
        if let Some(state) = self.rooms.remove(name) {
            info!(room = %name, "Room finished: empty for its empty timeout.");
            self.notice(Notice::RoomFinished { room: state.record });
        }
    }

    // ---- signalling ------------------------------------------------------------------------

    fn signal(&mut self, key: ParticipantKey, request: Request) {
        let now = Instant::now();
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        if !participant.spend_signal_budget(now) {
            self.remove(
                key,
                "it sent signal messages faster than allowed",
                Some(signal::leave(proto::DisconnectReason::StateMismatch, false)),
            );
            return;
        }
        match request {
            Request::Offer(offer) => self.publisher_offer(key, offer),
            Request::Answer(answer) => self.subscriber_answer(key, answer),
            Request::AddTrack(request) => self.add_track(key, request),
            Request::Mute(mute) => self.mute(key, &mute.sid, mute.muted),
            Request::Subscription(update) => self.update_subscription(key, update),
            Request::TrackSetting(settings) => self.track_settings(key, settings),
            Request::Leave(_) => self.remove(key, "the client left", None),
            Request::Ping(_) => {
                participant.send(Response::Pong(now_ms()));
            }
            Request::PingReq(ping) => {
                participant.send(Response::PongResp(proto::Pong {
                    last_ping_timestamp: ping.timestamp,
                    timestamp: now_ms(),
                }));
            }
            // ICE-lite: the client's candidates are learnt from its connectivity checks.
            Request::Trickle(_) => {}
            other => {
                debug!(participant_sid = %participant.sid, message = ?std::mem::discriminant(&other), "Signal message not acted on.");
            }
        }
    }

    fn refuse(&mut self, key: ParticipantKey, reason: &str) {
        self.remove(
            key,
            reason,
            Some(signal::leave(proto::DisconnectReason::StateMismatch, false)),
        );
    }

    fn publisher_offer(&mut self, key: ParticipantKey, offer: proto::SessionDescription) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        let sections = signal::media_sections(&offer.sdp);
        if sections > MAX_MEDIA_SECTIONS {
            let reason =
                format!("its offer has {sections} media sections (at most {MAX_MEDIA_SECTIONS})");
            self.refuse(key, &reason);
            return;
        }
        let parsed = match SdpOffer::from_sdp_string(&offer.sdp) {
            Ok(parsed) => parsed,
            Err(e) => {
                debug!(error = %e, "Unparseable publisher offer.");
                self.refuse(key, "its offer is not valid SDP");
                return;
            }
        };
        let answer = match participant.publisher.rtc.sdp_api().accept_offer(parsed) {
            Ok(answer) => answer,
            Err(e) => {
                let reason = format!("its offer cannot be answered: {e}");
                self.refuse(key, &reason);
                return;
            }
        };
        participant.offered_mids = signal::media_ids(&offer.sdp)
            .into_iter()
            .map(Mid::from)
            .collect();
        participant.send(Response::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.to_sdp_string(),
            id: offer.id,
            ..Default::default()
        }));
        self.bind_publisher_media(key);
    }

    /// Binds the publisher connection's receiving media sections to announced tracks (by the
    /// msid's track id, which is the client's track cid), publishing the newly bound ones, and
    /// unpublishes the tracks whose section stopped receiving.
    fn bind_publisher_media(&mut self, key: ParticipantKey) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        let mut bound = Vec::new();
        let mut unbound = Vec::new();
        let sections: Vec<(Mid, MediaKind, String, Direction)> = participant
            .tracks
            .iter()
            .filter_map(|track| track.mid)
            .chain(participant.offered_mids.iter().copied())
            .filter_map(|mid| {
                let media = participant.publisher.rtc.media(mid)?;
                Some((
                    mid,
                    media.kind(),
                    media.track_id().to_owned(),
                    media.direction(),
                ))
            })
            .collect();
        for (mid, kind, track_id, direction) in sections {
            let receiving = matches!(direction, Direction::RecvOnly | Direction::SendRecv);
            if let Some(index) = participant.tracks.iter().position(|t| t.mid == Some(mid)) {
                if !receiving {
                    unbound.push(index);
                }
                continue;
            }
            if !receiving {
                continue;
            }
            let wanted = if kind == MediaKind::Audio {
                proto::TrackType::Audio
            } else {
                proto::TrackType::Video
            } as i32;
            let candidate = participant
                .tracks
                .iter()
                .position(|t| t.mid.is_none() && t.cid == track_id)
                .or_else(|| {
                    participant
                        .tracks
                        .iter()
                        .position(|t| t.mid.is_none() && t.info.r#type == wanted)
                });
            if let Some(index) = candidate {
                debug!(participant_sid = %participant.sid, track_sid = %participant.tracks[index].info.sid, %mid, "Track published.");
                participant.tracks[index].mid = Some(mid);
                participant.tracks[index].info.mid = mid.to_string();
                bound.push(participant.tracks[index].info.sid.clone());
            }
        }
        unbound.sort_unstable();
        let removed: Vec<Published> = unbound
            .into_iter()
            .rev()
            .map(|index| participant.tracks.remove(index))
            .collect();
        if bound.is_empty() && removed.is_empty() {
            return;
        }
        participant.version += 1;
        let info = participant.info(proto::participant_info::State::Active);
        let view = participant.view();
        let room = participant.room.clone();
        let hidden = participant.grant.hidden;
        let Some(record) = self.room_record(&room) else {
            return;
        };
        for track in &removed {
            self.notice(Notice::TrackUnpublished {
                room: record.clone(),
                participant: view.clone(),
                track: track_view(track),
            });
            self.drop_subscriptions(&room, key, &track.info.sid);
        }
        if !hidden {
            self.broadcast_update(&room, Some(key), vec![info.clone()]);
        }
        // The publisher hears its own tracks are live.
        if let Some(participant) = self.participants.get(&key) {
            participant.send(Response::Update(proto::ParticipantUpdate {
                participants: vec![info],
            }));
        }
        for track_sid in bound {
            if let Some(track) = self
                .participants
                .get(&key)
                .and_then(|p| p.tracks.iter().find(|t| t.info.sid == track_sid))
            {
                self.notice(Notice::TrackPublished {
                    room: record.clone(),
                    participant: view.clone(),
                    track: track_view(track),
                });
            }
            for other in self.member_keys(&room, Some(key)) {
                self.subscribe(other, key, &track_sid);
            }
        }
        for other in self.member_keys(&room, Some(key)) {
            if let Some(other) = self.participants.get_mut(&other) {
                other.negotiate();
            }
        }
    }

    /// Stops sending `track_sid` of `publisher` to everyone in `room`.
    fn drop_subscriptions(&mut self, room: &str, publisher: ParticipantKey, track_sid: &str) {
        for other in self.member_keys(room, Some(publisher)) {
            let Some(other) = self.participants.get_mut(&other) else {
                continue;
            };
            let before = other.subscriptions.len();
            let stops = &mut other.negotiation.stops;
            other.subscriptions.retain(|sub| {
                let gone = sub.publisher == publisher && sub.track_sid == track_sid;
                if gone {
                    stops.extend(sub.mid);
                }
                !gone
            });
            if other.subscriptions.len() != before {
                other.negotiate();
            }
        }
    }

    /// Adds a send-only media section for `publisher`'s `track_sid` to `subscriber`'s
    /// connection (added and offered by the caller's next [`Participant::negotiate`]).
    fn subscribe(
        &mut self,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_sid: &str,
    ) {
        let Some((publisher_sid, kind)) = self.participants.get(&publisher).and_then(|p| {
            let track = p.tracks.iter().find(|t| t.info.sid == track_sid)?;
            let kind = if track.info.r#type == proto::TrackType::Audio as i32 {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
            Some((p.sid.clone(), kind))
        }) else {
            return;
        };
        let Some(participant) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if !participant.grant.can_subscribe
            || participant
                .subscriptions
                .iter()
                .any(|sub| sub.publisher == publisher && sub.track_sid == track_sid)
        {
            return;
        }
        participant.subscriptions.push(Subscription {
            publisher,
            publisher_sid,
            track_sid: track_sid.to_owned(),
            mid: None,
            kind,
            quality: Quality::High,
            disabled: !participant.auto_subscribe,
            forwarder: LayerForwarder::default(),
        });
    }

    fn subscriber_answer(&mut self, key: ParticipantKey, answer: proto::SessionDescription) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(pending) = participant.negotiation.pending.take() else {
            debug!(participant_sid = %participant.sid, "An answer with no offer outstanding ignored.");
            return;
        };
        let parsed = match SdpAnswer::from_sdp_string(&answer.sdp) {
            Ok(parsed) => parsed,
            Err(_) => {
                self.refuse(key, "its answer is not valid SDP");
                return;
            }
        };
        if let Err(e) = participant
            .subscriber
            .rtc
            .sdp_api()
            .accept_answer(pending, parsed)
        {
            let reason = format!("its answer cannot be applied: {e}");
            self.refuse(key, &reason);
            return;
        }
        if participant.negotiation.again {
            participant.negotiate();
        }
    }

    fn add_track(&mut self, key: ParticipantKey, request: proto::AddTrackRequest) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        if !participant.may_publish(request.source) {
            warn!(participant_sid = %participant.sid, source = source_name(request.source), "Refused a track: the token does not allow publishing it.");
            return;
        }
        if participant.tracks.len() >= MAX_TRACKS_PER_PARTICIPANT
            || request.cid.is_empty()
            || participant.tracks.iter().any(|t| t.cid == request.cid)
        {
            warn!(participant_sid = %participant.sid, "Refused a track: too many, or its cid is missing or taken.");
            return;
        }
        let audio = request.r#type == proto::TrackType::Audio as i32;
        let mut layers: Vec<proto::VideoLayer> = request.layers.clone();
        layers.sort_by_key(|layer| layer.quality);
        let rids: Vec<Layer> = if layers.len() > 1 {
            layers
                .iter()
                .map(|layer| Layer {
                    // The SDKs name layers q, h, f from the lowest; older ones leave `rid`
                    // empty and give only the quality.
                    rid: if layer.rid.is_empty() {
                        match proto::VideoQuality::try_from(layer.quality) {
                            Ok(proto::VideoQuality::Low) => "q",
                            Ok(proto::VideoQuality::Medium) => "h",
                            _ => "f",
                        }
                        .to_owned()
                    } else {
                        layer.rid.chars().take(8).collect()
                    },
                    bitrate: layer.bitrate,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mime_type = if audio {
            "audio/opus".to_owned()
        } else {
            match request
                .simulcast_codecs
                .first()
                .map(|codec| codec.codec.to_ascii_lowercase())
                .as_deref()
            {
                Some("h264") => "video/H264".to_owned(),
                _ => "video/VP8".to_owned(),
            }
        };
        let info = proto::TrackInfo {
            sid: random_sid("TR_"),
            r#type: request.r#type,
            name: request.name.chars().take(256).collect(),
            muted: request.muted,
            width: request.width,
            height: request.height,
            simulcast: rids.len() > 1,
            disable_dtx: request.disable_dtx,
            source: request.source,
            layers: layers.clone(),
            mime_type: mime_type.clone(),
            codecs: vec![proto::SimulcastCodecInfo {
                mime_type,
                cid: request.cid.clone(),
                layers,
                ..Default::default()
            }],
            stereo: request.stereo,
            disable_red: request.disable_red,
            encryption: request.encryption,
            stream: request.stream.clone(),
            ..Default::default()
        };
        participant.send(Response::TrackPublished(proto::TrackPublishedResponse {
            cid: request.cid.clone(),
            track: Some(info.clone()),
        }));
        participant.tracks.push(Published {
            info,
            cid: request.cid,
            mid: None,
            layers: rids,
            layer_seen: HashMap::new(),
            last_keyframe_request: HashMap::new(),
        });
        // The offer carrying the track may already have been answered.
        self.bind_publisher_media(key);
    }

    fn mute(&mut self, key: ParticipantKey, track_sid: &str, muted: bool) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(track) = participant
            .tracks
            .iter_mut()
            .find(|t| t.info.sid == track_sid)
        else {
            return;
        };
        if track.info.muted == muted {
            return;
        }
        track.info.muted = muted;
        let view_track = track_view(track);
        let published = track.mid.is_some();
        participant.version += 1;
        let info = participant.info(proto::participant_info::State::Active);
        let view = participant.view();
        let room = participant.room.clone();
        let hidden = participant.grant.hidden;
        if !published {
            return;
        }
        if !hidden {
            self.broadcast_update(&room, Some(key), vec![info]);
        }
        if let Some(record) = self.room_record(&room) {
            self.notice(Notice::TrackMuted {
                room: record,
                participant: view,
                track: view_track,
                muted,
            });
        }
    }

    fn update_subscription(&mut self, key: ParticipantKey, update: proto::UpdateSubscription) {
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        let sids: Vec<&String> = update
            .track_sids
            .iter()
            .chain(update.participant_tracks.iter().flat_map(|p| &p.track_sids))
            .collect();
        for sub in &mut participant.subscriptions {
            if sids.contains(&&sub.track_sid) {
                sub.disabled = !update.subscribe;
            }
        }
    }

    fn track_settings(&mut self, key: ParticipantKey, settings: proto::UpdateTrackSettings) {
        let publishers: HashMap<String, Vec<proto::VideoLayer>> = self
            .participants
            .values()
            .flat_map(|p| p.tracks.iter())
            .filter(|t| settings.track_sids.contains(&t.info.sid))
            .map(|t| (t.info.sid.clone(), t.info.layers.clone()))
            .collect();
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        for sub in &mut participant.subscriptions {
            if !settings.track_sids.contains(&sub.track_sid) {
                continue;
            }
            sub.disabled = settings.disabled;
            sub.quality = if settings.width > 0 || settings.height > 0 {
                // The smallest layer at least as big as the element showing it.
                publishers
                    .get(&sub.track_sid)
                    .and_then(|layers| {
                        let mut layers = layers.clone();
                        layers.sort_by_key(|layer| layer.quality);
                        layers
                            .iter()
                            .find(|layer| {
                                layer.width >= settings.width && layer.height >= settings.height
                            })
                            .or(layers.last())
                            .map(|layer| quality_of(layer.quality))
                    })
                    .unwrap_or(Quality::High)
            } else {
                quality_of(settings.quality)
            };
        }
    }

    // ---- media -----------------------------------------------------------------------------

    /// Hands a datagram to the connection that accepts it; others are dropped.
    fn route(&mut self, datagram: &[u8], source: SocketAddr) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.settings.candidate, datagram)
        else {
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let owner = self.participants.values().find_map(|participant| {
            [Side::Publisher, Side::Subscriber]
                .into_iter()
                .find(|side| match side {
                    Side::Publisher => participant.publisher.rtc.accepts(&input),
                    Side::Subscriber => participant.subscriber.rtc.accepts(&input),
                })
                .map(|side| (participant.key, side))
        });
        let Some((key, side)) = owner else {
            debug!(peer = %source, "Dropped a datagram of no room participant.");
            return;
        };
        let Some(participant) = self.participants.get_mut(&key) else {
            return;
        };
        if let Err(e) = participant.peer(side).rtc.handle_input(input) {
            let reason = format!("the WebRTC stack refused a datagram: {e}");
            self.remove(
                key,
                &reason,
                Some(signal::leave(proto::DisconnectReason::MediaFailure, true)),
            );
        }
    }

    /// Fires due timers and sends what every connection asks to send, then acts on their
    /// events.
    fn drive(&mut self, now: Instant) {
        // Acting on events writes media and data, which leave on the next poll: a few rounds
        // until the connections are quiet (bounded, whatever they do).
        for _ in 0..DRIVE_ROUNDS {
            if !self.drive_once(now) {
                break;
            }
        }
    }

    /// One poll of every connection and the events it gave; whether there were any.
    fn drive_once(&mut self, now: Instant) -> bool {
        let mut events = Vec::new();
        let mut failed = Vec::new();
        for participant in self.participants.values_mut() {
            for side in [Side::Publisher, Side::Subscriber] {
                let key = participant.key;
                let peer = participant.peer(side);
                if now >= peer.next_timeout {
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        failed.push((key, format!("WebRTC error: {e}")));
                        continue;
                    }
                }
                loop {
                    match peer.rtc.poll_output() {
                        Ok(Output::Timeout(at)) => {
                            peer.next_timeout = at;
                            break;
                        }
                        Ok(Output::Transmit(transmit)) => {
                            let _ = self
                                .socket
                                .try_send_to(&transmit.contents, transmit.destination);
                        }
                        Ok(Output::Event(event)) => events.push((key, side, event)),
                        Err(e) => {
                            failed.push((key, format!("WebRTC error: {e}")));
                            break;
                        }
                    }
                }
            }
        }
        let busy = !events.is_empty();
        for (key, side, event) in events {
            self.handle_event(key, side, event, now);
        }
        for (key, reason) in failed {
            self.remove(
                key,
                &reason,
                Some(signal::leave(proto::DisconnectReason::MediaFailure, true)),
            );
        }
        busy
    }

    fn handle_event(&mut self, key: ParticipantKey, side: Side, event: Event, now: Instant) {
        match (side, event) {
            (_, Event::Connected) => {
                if let Some(participant) = self.participants.get_mut(&key) {
                    participant.peer(side).connected = true;
                    debug!(participant_sid = %participant.sid, ?side, "Room connection up.");
                }
            }
            (_, Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                self.remove(
                    key,
                    "its media connection was lost",
                    Some(signal::leave(
                        proto::DisconnectReason::ConnectionTimeout,
                        true,
                    )),
                );
            }
            (Side::Publisher, Event::MediaAdded(_) | Event::MediaChanged(_)) => {
                self.bind_publisher_media(key);
            }
            (Side::Publisher, Event::MediaData(data)) => self.forward(key, data, now),
            (side, Event::ChannelOpen(id, label)) => {
                if let Some(participant) = self.participants.get_mut(&key) {
                    debug!(participant_sid = %participant.sid, ?side, label, "Data channel open.");
                    if side == Side::Subscriber {
                        return;
                    }
                    match label.as_str() {
                        RELIABLE_LABEL => participant.reliable = Some(id),
                        LOSSY_LABEL => participant.lossy = Some(id),
                        _ => {}
                    }
                }
            }
            (Side::Publisher, Event::ChannelData(data)) => self.relay_data(key, &data.data),
            (Side::Subscriber, Event::KeyframeRequest(request)) => {
                let target = self.participants.get(&key).and_then(|participant| {
                    let sub = participant
                        .subscriptions
                        .iter()
                        .find(|s| s.mid == Some(request.mid))?;
                    Some((
                        sub.publisher,
                        sub.track_sid.clone(),
                        sub.forwarder.current().map(Rid::from),
                    ))
                });
                if let Some((publisher, track_sid, rid)) = target {
                    self.request_keyframe(publisher, &track_sid, rid, now);
                }
            }
            (Side::Subscriber, Event::EgressBitrateEstimate(estimate)) => {
                if let (Some(participant), BweKind::Twcc { estimate, .. }) =
                    (self.participants.get_mut(&key), estimate)
                {
                    participant.bandwidth = Some(estimate.as_u64());
                }
            }
            _ => {}
        }
    }

    /// Asks a publisher for a key frame of one layer of a track, at most every
    /// [`KEYFRAME_REQUEST_INTERVAL`].
    fn request_keyframe(
        &mut self,
        publisher: ParticipantKey,
        track_sid: &str,
        rid: Option<Rid>,
        now: Instant,
    ) {
        let Some(participant) = self.participants.get_mut(&publisher) else {
            return;
        };
        let Some(track) = participant
            .tracks
            .iter_mut()
            .find(|t| t.info.sid == track_sid)
        else {
            return;
        };
        let Some(mid) = track.mid else {
            return;
        };
        if track
            .last_keyframe_request
            .get(&rid)
            .is_some_and(|last| now.duration_since(*last) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        track.last_keyframe_request.insert(rid, now);
        if let Some(mut writer) = participant.publisher.rtc.writer(mid) {
            if let Err(e) = writer.request_keyframe(rid, KeyframeRequestKind::Pli) {
                debug!(error = %e, "Could not ask for a key frame.");
            }
        }
    }

    /// Writes a publisher's frame to every subscriber of its track.
    fn forward(&mut self, key: ParticipantKey, data: MediaData, now: Instant) {
        let Some(publisher) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(track) = publisher
            .tracks
            .iter_mut()
            .find(|t| t.mid == Some(data.mid))
        else {
            return;
        };
        if let Some(rid) = data.rid {
            track.layer_seen.insert(rid, now);
        }
        let track_sid = track.info.sid.clone();
        let layers: Vec<Layer> = track
            .layers
            .iter()
            .filter(|layer| {
                track
                    .layer_seen
                    .get(&Rid::from(layer.rid.as_str()))
                    .is_some_and(|seen| now.duration_since(*seen) < LAYER_TIMEOUT)
            })
            .cloned()
            .collect();
        let audio = track.info.r#type == proto::TrackType::Audio as i32;
        let room = publisher.room.clone();
        let publisher_sid = publisher.sid.clone();
        if audio && !track.info.muted {
            if let (Some(level), Some(state)) =
                (data.ext_vals.audio_level, self.rooms.get_mut(&room))
            {
                state.speakers.observe(&publisher_sid, level, now);
            }
        }
        let rid = data.rid.as_deref().map(str::to_owned);
        let mut wanted_keyframes = Vec::new();
        for other in self.member_keys(&room, Some(key)) {
            let Some(subscriber) = self.participants.get_mut(&other) else {
                continue;
            };
            let bandwidth = subscriber.bandwidth;
            let Some(sub) = subscriber
                .subscriptions
                .iter_mut()
                .find(|s| s.publisher == key && s.track_sid == track_sid)
            else {
                continue;
            };
            if sub.disabled {
                continue;
            }
            let target = choose_layer(&layers, sub.quality, bandwidth).map(str::to_owned);
            let decision = sub.forwarder.forward(
                rid.as_deref(),
                target.as_deref(),
                data.time.numer(),
                data.time.denom(),
                data.is_keyframe(),
                data.network_time,
            );
            if sub.forwarder.needs_keyframe(target.as_deref()) {
                wanted_keyframes.push(target.as_deref().map(Rid::from));
            }
            let Forward::Send { rtp_time } = decision else {
                continue;
            };
            let Some(mid) = sub.mid else {
                continue;
            };
            let Some(writer) = subscriber.subscriber.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            let writer = match data.ext_vals.audio_level {
                Some(level) => {
                    writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(false))
                }
                None => writer,
            };
            let time = MediaTime::new(rtp_time, data.time.frequency());
            match writer.write(pt, data.network_time, time, data.data.clone()) {
                Ok(()) => sub.forwarder.sent(rtp_time, data.network_time),
                Err(e) => debug!(error = %e, "Forwarding a frame failed."),
            }
        }
        let tap_wants = self.feed_taps(&room, &publisher_sid, &track_sid, &layers, &data);
        wanted_keyframes.extend(tap_wants);
        for rid in wanted_keyframes {
            self.request_keyframe(key, &track_sid, rid, now);
        }
    }

    // ---- taps -------------------------------------------------------------------------------

    /// Sends a frame to the room's taps; returns the layers they need a key frame of.
    fn feed_taps(
        &mut self,
        room: &str,
        publisher_sid: &str,
        track_sid: &str,
        layers: &[Layer],
        data: &MediaData,
    ) -> Vec<Option<Rid>> {
        let Some(taps) = self.taps.get_mut(room) else {
            return Vec::new();
        };
        let codec = match data.params.spec().codec {
            Codec::Vp8 => TapCodec::Vp8,
            Codec::H264 => TapCodec::H264,
            Codec::Opus => TapCodec::Opus,
            _ => return Vec::new(),
        };
        let mut wanted = Vec::new();
        let rid = data.rid.as_deref().map(str::to_owned);
        taps.retain_mut(|tap| {
            let event = if codec == TapCodec::Opus {
                TapEvent::Audio {
                    participant_sid: publisher_sid.to_owned(),
                    track_sid: track_sid.to_owned(),
                    codec,
                    data: Bytes::copy_from_slice(&data.data),
                    rtp_time: data.time.numer() as u32,
                    level: data.ext_vals.audio_level,
                }
            } else {
                if !tap.takes_video() {
                    return true;
                }
                let target = choose_layer(layers, Quality::High, None).map(str::to_owned);
                let forwarder = tap.forwarder(track_sid);
                let decision = forwarder.forward(
                    rid.as_deref(),
                    target.as_deref(),
                    data.time.numer(),
                    data.time.denom(),
                    data.is_keyframe(),
                    data.network_time,
                );
                if forwarder.needs_keyframe(target.as_deref()) {
                    wanted.push(target.as_deref().map(Rid::from));
                }
                let Forward::Send { rtp_time } = decision else {
                    return true;
                };
                forwarder.sent(rtp_time, data.network_time);
                if !tap.admits(track_sid, data.is_keyframe()) {
                    return true;
                }
                TapEvent::Video {
                    track_sid: track_sid.to_owned(),
                    codec,
                    data: Bytes::copy_from_slice(&data.data),
                    keyframe: data.is_keyframe(),
                    rtp_time: rtp_time as u32,
                }
            };
            match tap.offer(event) {
                Offered::Queued => true,
                Offered::Dropped => {
                    if codec != TapCodec::Opus {
                        tap.lost(track_sid);
                        wanted.push(rid.as_deref().map(Rid::from));
                    }
                    true
                }
                Offered::Closed => false,
            }
        });
        wanted
    }

    /// Tells the room's taps who is in it now.
    fn update_taps(&mut self, room: &str) {
        if !self.taps.contains_key(room) {
            return;
        }
        let members: Vec<ParticipantView> = self
            .members(room, None)
            .filter(|participant| !participant.grant.hidden)
            .map(Participant::view)
            .collect();
        let published: HashSet<String> = members
            .iter()
            .flat_map(|member| member.tracks.iter().map(|track| track.sid.clone()))
            .collect();
        if let Some(taps) = self.taps.get_mut(room) {
            taps.retain_mut(|tap| {
                tap.retain_tracks(&published);
                tap.offer(TapEvent::Members(members.clone())) != Offered::Closed
            });
        }
    }

    /// The publisher of a track in `room`, by track sid.
    fn track_publisher(&self, room: &str, track_sid: &str) -> Option<ParticipantKey> {
        self.members(room, None)
            .find(|participant| participant.tracks.iter().any(|t| t.info.sid == track_sid))
            .map(|participant| participant.key)
    }

    /// Relays a data packet from a participant to its destinations in the room.
    fn relay_data(&mut self, key: ParticipantKey, bytes: &[u8]) {
        let Some(sender) = self.participants.get(&key) else {
            return;
        };
        if !sender.grant.can_publish_data || bytes.len() > MAX_DATA_PACKET_BYTES {
            return;
        }
        let Ok(mut packet) = proto::DataPacket::decode(bytes) else {
            debug!(participant_sid = %sender.sid, "Dropped a malformed data packet.");
            return;
        };
        packet.participant_identity = sender.grant.identity.clone();
        packet.participant_sid = sender.sid.clone();
        let mut destinations = packet.destination_identities.clone();
        if let Some(proto::data_packet::Value::User(user)) = &mut packet.value {
            user.participant_identity = sender.grant.identity.clone();
            user.participant_sid = sender.sid.clone();
            if destinations.is_empty() {
                destinations = user.destination_identities.clone();
            }
        }
        let reliable = packet.kind != proto::data_packet::Kind::Lossy as i32;
        let room = sender.room.clone();
        let encoded = packet.encode_to_vec();
        self.deliver(&room, Some(key), &destinations, reliable, &encoded);
    }

    /// Writes an encoded data packet to the participants of `room` named in `destinations`
    /// (everyone when empty) but `except`.
    fn deliver(
        &mut self,
        room: &str,
        except: Option<ParticipantKey>,
        destinations: &[String],
        reliable: bool,
        encoded: &[u8],
    ) {
        for other in self.member_keys(room, except) {
            let Some(receiver) = self.participants.get_mut(&other) else {
                continue;
            };
            if !destinations.is_empty() && !destinations.contains(&receiver.grant.identity) {
                continue;
            }
            let channel = if reliable {
                receiver.reliable.or(receiver.lossy)
            } else {
                receiver.lossy.or(receiver.reliable)
            };
            let Some(mut channel) = channel.and_then(|id| receiver.publisher.rtc.channel(id))
            else {
                continue;
            };
            if !matches!(channel.write(true, encoded), Ok(true)) {
                debug!(participant_sid = %receiver.sid, "A data packet was dropped: the receiver's channel is full.");
            }
        }
    }

    fn broadcast_speakers(&mut self, room: &str, changes: Vec<crate::speakers::SpeakerChange>) {
        let response = Response::SpeakersChanged(proto::SpeakersChanged {
            speakers: changes
                .into_iter()
                .map(|change| proto::SpeakerInfo {
                    sid: change.sid,
                    level: change.level,
                    active: change.active,
                })
                .collect(),
        });
        for other in self.members(room, None) {
            other.send(response.clone());
        }
    }

    /// Timers of the engine itself: speaker updates, silent or unconnected participants,
    /// rooms empty for their timeout.
    fn tick(&mut self, now: Instant) {
        let mut speaker_changes = Vec::new();
        for (name, state) in &mut self.rooms {
            if now >= state.next_speaker_check {
                state.next_speaker_check = now + SPEAKER_INTERVAL;
                let changes = state.speakers.changes(now);
                if !changes.is_empty() {
                    speaker_changes.push((name.clone(), changes));
                }
            }
        }
        for (room, changes) in speaker_changes {
            self.broadcast_speakers(&room, changes);
        }
        if now >= self.next_desired_bitrate {
            self.next_desired_bitrate = now + DESIRED_BITRATE_INTERVAL;
            self.update_desired_bitrates();
        }
        let silent_for = Duration::from_secs(PING_TIMEOUT_S as u64 + 5);
        let stale: Vec<(ParticipantKey, &'static str)> = self
            .participants
            .values()
            .filter_map(|p| {
                if now.duration_since(p.last_signal) > silent_for {
                    Some((p.key, "its signal connection went silent"))
                } else if !p.publisher.connected && now.duration_since(p.joined) > CONNECT_TIMEOUT {
                    Some((p.key, "its media connection did not come up"))
                } else {
                    None
                }
            })
            .collect();
        for (key, reason) in stale {
            self.remove(
                key,
                reason,
                Some(signal::leave(
                    proto::DisconnectReason::ConnectionTimeout,
                    true,
                )),
            );
        }
        let finished: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, state)| {
                state.members.is_empty()
                    && state.empty_since.is_some_and(|since| {
                        now.duration_since(since)
                            >= Duration::from_secs(u64::from(state.record.empty_timeout_s))
                    })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in finished {
            self.finish_room(&name);
        }
    }

    /// Lets each subscriber connection's bandwidth estimator probe up to what its enabled
    /// subscriptions need at their best layer: the estimate then lets [`choose_layer`] pick
    /// the high layers where the network allows.
    fn update_desired_bitrates(&mut self) {
        let needs: HashMap<String, u64> = self
            .participants
            .values()
            .flat_map(|p| p.tracks.iter())
            .map(|track| {
                let need = if track.info.r#type == proto::TrackType::Audio as i32 {
                    AUDIO_BITRATE
                } else {
                    track
                        .layers
                        .iter()
                        .map(|layer| u64::from(layer.bitrate))
                        .max()
                        .filter(|bitrate| *bitrate > 0)
                        .unwrap_or(DEFAULT_VIDEO_BITRATE)
                };
                (track.info.sid.clone(), need)
            })
            .collect();
        for participant in self.participants.values_mut() {
            let desired: u64 = participant
                .subscriptions
                .iter()
                .filter(|sub| !sub.disabled)
                .filter_map(|sub| needs.get(&sub.track_sid))
                .sum();
            if desired > 0 {
                participant
                    .subscriber
                    .rtc
                    .bwe()
                    .set_desired_bitrate(Bitrate::bps(desired));
            }
        }
    }

    // ---- the REST API ----------------------------------------------------------------------

    fn control(&mut self, control: Control) {
        match control {
            Control::Participants { room, reply } => {
                let views = self.members(&room, None).map(Participant::view).collect();
                let _ = reply.send(views);
            }
            Control::Remove {
                room,
                identity,
                reply,
            } => {
                let result = self.running(&room).and_then(|()| {
                    self.find(&room, &identity)
                        .ok_or(ControlError::NoParticipant(identity))
                });
                let _ = reply.send(result.map(|key| {
                    self.remove(
                        key,
                        "removed through the API",
                        Some(signal::leave(
                            proto::DisconnectReason::ParticipantRemoved,
                            false,
                        )),
                    );
                }));
            }
            Control::Mute {
                room,
                identity,
                track_sid,
                muted,
                reply,
            } => {
                let result = self
                    .running(&room)
                    .and_then(|()| {
                        self.find(&room, &identity)
                            .ok_or(ControlError::NoParticipant(identity))
                    })
                    .and_then(|key| {
                        let participant = &self.participants[&key];
                        if participant.tracks.iter().any(|t| t.info.sid == track_sid) {
                            participant.send(Response::Mute(proto::MuteTrackRequest {
                                sid: track_sid.clone(),
                                muted,
                            }));
                            Ok(key)
                        } else {
                            Err(ControlError::NoTrack(track_sid.clone()))
                        }
                    });
                let _ = reply.send(result.map(|key| self.mute(key, &track_sid, muted)));
            }
            Control::SendData {
                room,
                message,
                reply,
            } => {
                let result = self.running(&room).map(|()| {
                    let packet = proto::DataPacket {
                        kind: if message.reliable {
                            proto::data_packet::Kind::Reliable
                        } else {
                            proto::data_packet::Kind::Lossy
                        } as i32,
                        destination_identities: message.destination_identities.clone(),
                        value: Some(proto::data_packet::Value::User(proto::UserPacket {
                            payload: message.payload,
                            topic: message.topic,
                            destination_identities: message.destination_identities.clone(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    };
                    self.deliver(
                        &room,
                        None,
                        &message.destination_identities,
                        message.reliable,
                        &packet.encode_to_vec(),
                    );
                });
                let _ = reply.send(result);
            }
            Control::Close { room, reply } => {
                let result = self.running(&room).map(|()| {
                    for key in self.member_keys(&room, None) {
                        self.remove(
                            key,
                            "the room was closed",
                            Some(signal::leave(proto::DisconnectReason::RoomDeleted, false)),
                        );
                    }
                    self.finish_room(&room);
                });
                let _ = reply.send(result);
            }
            Control::Tap {
                room,
                sender,
                video,
            } => {
                self.taps
                    .entry(room.clone())
                    .or_default()
                    .push(Tap::new(sender, video));
                if self.rooms.contains_key(&room) {
                    self.update_taps(&room);
                }
            }
            Control::Transcription {
                room,
                transcription,
            } => {
                if self.running(&room).is_ok() {
                    let packet = proto::DataPacket {
                        kind: proto::data_packet::Kind::Reliable as i32,
                        participant_identity: transcription
                            .transcribed_participant_identity
                            .clone(),
                        value: Some(proto::data_packet::Value::Transcription(transcription)),
                        ..Default::default()
                    };
                    self.deliver(&room, None, &[], true, &packet.encode_to_vec());
                }
            }
            Control::TapKeyframe { room, track_sid } => {
                if let Some(publisher) = self.track_publisher(&room, &track_sid) {
                    let layer = self.taps.get(&room).and_then(|taps| {
                        taps.iter()
                            .find_map(|tap| tap.current_layer(&track_sid).map(Rid::from))
                    });
                    self.request_keyframe(publisher, &track_sid, layer, Instant::now());
                }
            }
        }
    }

    fn running(&self, room: &str) -> Result<(), ControlError> {
        if self.rooms.contains_key(room) {
            Ok(())
        } else {
            Err(ControlError::RoomNotRunning)
        }
    }
}
