//! The RTMP server session: a sans-IO state machine for one publishing client (Adobe RTMP
//! specification 1.0, §7.2 "Command Messages": §7.2.1.1 connect, §7.2.1.3 createStream,
//! §7.2.2.6 publish, §7.2.2.3 deleteStream, and the FMLE/OBS commands releaseStream, FCPublish
//! and FCUnpublish that every encoder sends; §7.1.2 data messages for `@setDataFrame`).
//!
//! Bytes go in through [`ServerSession::handle_input`]; bytes to send and [`SessionEvent`]s come
//! out as [`SessionOutput`]s (the shape of rml_rtmp's `ServerSession`). The session never decides
//! policy: a publish raises [`SessionEvent::PublishRequested`] and processing pauses (further
//! input is only buffered, up to [`SessionConfig::max_buffered_input`]) until the application
//! calls [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`]; the next
//! `handle_input` call (an empty slice will do) then resumes with the buffered bytes.
//!
//! Media arriving on a message stream that was never created, or before a publish was accepted
//! on it, is a protocol error. Unknown commands are logged and answered with `_error` when they
//! carry a transaction id.

use bytes::{Bytes, BytesMut};
use sluice_media::{Packet, TrackInfo, TrackKind};
use tracing::{debug, info, warn};

use crate::amf0::{self, Amf0Value};
use crate::chunk::{
    BandwidthLimit, ChunkDecoder, ChunkEncoder, ChunkLimits, ControlMessage, MessageType,
    RtmpMessage, UserControlEvent,
};
use crate::flv::{self, FlvTag};
use crate::handshake::{HandshakeProgress, ServerHandshake};
use crate::RtmpError;

/// Chunk stream used for connection-level command replies.
const COMMAND_CHUNK_STREAM: u32 = 3;
/// Chunk stream used for `onStatus` on a message stream.
const STATUS_CHUNK_STREAM: u32 = 5;

/// Tunables of a session; every field has a named default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Limits on the peer's chunk stream (message length cap, chunk streams in flight, bytes of
    /// partly received messages).
    pub chunk_limits: ChunkLimits,
    /// Chunk size Sluice announces and sends with (default [`Self::DEFAULT_CHUNK_SIZE`]).
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer (default [`Self::DEFAULT_WINDOW`]).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth announced to the peer (default [`Self::DEFAULT_WINDOW`]).
    pub peer_bandwidth: u32,
    /// Most undecoded input bytes held (default [`Self::DEFAULT_MAX_BUFFERED_INPUT`]). The
    /// decoder consumes whole chunks only, so this must exceed the largest chunk the peer may
    /// send, `chunk_limits.max_message_len` plus an 18-byte header, plus one socket read. These
    /// bytes are held apart from the chunk decoder's partial messages, so one connection holds
    /// at most about `max_buffered_input + chunk_limits.max_partial_bytes` of peer data (23 MiB
    /// with the defaults).
    pub max_buffered_input: usize,
    /// Most message streams a client may create (default [`Self::DEFAULT_MAX_STREAMS`]).
    pub max_streams: usize,
    /// The chunk limits until a publish is accepted (default
    /// [`Self::DEFAULT_PRE_PUBLISH_CHUNK_LIMITS`]): commands are small, so a peer that has not
    /// proven it may publish cannot make the server hold media-sized messages.
    pub pre_publish_chunk_limits: ChunkLimits,
    /// Most undecoded input bytes held until a publish is accepted (default
    /// [`Self::DEFAULT_PRE_PUBLISH_MAX_BUFFERED_INPUT`]). With the pre-publish chunk limits a
    /// connection holds at most about 0.5 MiB of peer data before it is authorised.
    pub pre_publish_max_buffered_input: usize,
}

impl SessionConfig {
    pub const DEFAULT_CHUNK_SIZE: u32 = 4096;
    pub const DEFAULT_WINDOW: u32 = 2_500_000;
    /// One maximal message plus 1 MiB of what follows it.
    pub const DEFAULT_MAX_BUFFERED_INPUT: usize =
        crate::chunk::DEFAULT_MAX_MESSAGE_LEN as usize + 1024 * 1024;
    pub const DEFAULT_MAX_STREAMS: usize = 8;
    /// 64 KiB messages (a connect command with every property an encoder sends is a few
    /// hundred bytes), 128 KiB of them in the making.
    pub const DEFAULT_PRE_PUBLISH_CHUNK_LIMITS: ChunkLimits = ChunkLimits {
        max_message_len: 64 * 1024,
        max_chunk_streams: crate::chunk::DEFAULT_MAX_CHUNK_STREAMS,
        max_partial_bytes: 128 * 1024,
    };
    /// One maximal pre-publish message, its header and one socket read, with room to spare.
    pub const DEFAULT_PRE_PUBLISH_MAX_BUFFERED_INPUT: usize = 256 * 1024;
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            chunk_limits: ChunkLimits::default(),
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            window_ack_size: Self::DEFAULT_WINDOW,
            peer_bandwidth: Self::DEFAULT_WINDOW,
            max_buffered_input: Self::DEFAULT_MAX_BUFFERED_INPUT,
            max_streams: Self::DEFAULT_MAX_STREAMS,
            pre_publish_chunk_limits: Self::DEFAULT_PRE_PUBLISH_CHUNK_LIMITS,
            pre_publish_max_buffered_input: Self::DEFAULT_PRE_PUBLISH_MAX_BUFFERED_INPUT,
        }
    }
}

/// What `publish` asked for (§7.2.2.6); Sluice treats them all as live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    Live,
    Record,
    Append,
}

/// What `onMetaData` announced (every field is the encoder's claim, not a measurement).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamMetadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// kbit/s.
    pub video_data_rate: Option<f64>,
    /// kbit/s.
    pub audio_data_rate: Option<f64>,
    pub encoder: Option<String>,
}

/// Something the application needs to know.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The client sent `connect` and was answered with NetConnection.Connect.Success.
    Connected {
        app: String,
        tc_url: Option<String>,
        flash_ver: Option<String>,
    },
    /// The client wants to publish; answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        app: String,
        stream_key: String,
        mode: PublishMode,
        /// The RTMP message stream id it publishes on.
        stream_id: u32,
    },
    /// The client stopped publishing (FCUnpublish, deleteStream or closeStream).
    PublishFinished { app: String, stream_key: String },
    /// `@setDataFrame onMetaData` / `onMetaData`.
    Metadata(StreamMetadata),
    /// A new or changed track (sent once per distinct configuration).
    Track(TrackInfo),
    /// One compressed frame, timestamps in milliseconds.
    Packet(Packet),
}

/// What [`ServerSession::handle_input`] asks the caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionOutput {
    /// Send these bytes to the client, in order.
    Transmit(Bytes),
    /// Hand this event to the application.
    Event(SessionEvent),
}

#[derive(Debug)]
enum Phase {
    Handshake(ServerHandshake),
    Chunks,
}

#[derive(Debug, Clone, PartialEq)]
enum Publish {
    Idle,
    Requested { stream_id: u32, stream_key: String },
    Publishing { stream_id: u32, stream_key: String },
}

/// AMF0 command names the session understands (§7.2).
#[derive(Debug, PartialEq)]
enum Command {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
    Publish,
    FcUnpublish,
    DeleteStream,
    CloseStream,
    /// `_result` / `_error`: answers to calls; the server makes none, so they are only logged.
    Response,
    Unknown(String),
}

impl Command {
    fn from_name(name: &str) -> Self {
        match name {
            "connect" => Command::Connect,
            "releaseStream" => Command::ReleaseStream,
            "FCPublish" => Command::FcPublish,
            "createStream" => Command::CreateStream,
            "publish" => Command::Publish,
            "FCUnpublish" => Command::FcUnpublish,
            "deleteStream" => Command::DeleteStream,
            "closeStream" => Command::CloseStream,
            "_result" | "_error" => Command::Response,
            other => Command::Unknown(other.to_owned()),
        }
    }
}

/// The server side of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    phase: Phase,
    input: BytesMut,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    bytes_received: u64,
    /// The peer's Window Acknowledgement Size (ours until it sends one).
    ack_window: u32,
    bytes_acknowledged: u64,
    app: Option<String>,
    streams: Vec<u32>,
    publish: Publish,
    /// Whether a publish was accepted: from then on the full limits apply.
    authorised: bool,
    metadata_frame_rate: Option<f64>,
    video_track: Option<TrackInfo>,
    audio_track: Option<TrackInfo>,
}

impl ServerSession {
    /// A session waiting for the client's C0.
    pub fn new(config: SessionConfig) -> Self {
        ServerSession {
            decoder: ChunkDecoder::new(config.pre_publish_chunk_limits),
            encoder: ChunkEncoder::default(),
            ack_window: config.window_ack_size,
            config,
            phase: Phase::Handshake(ServerHandshake::new()),
            input: BytesMut::new(),
            bytes_received: 0,
            bytes_acknowledged: 0,
            app: None,
            streams: Vec::new(),
            publish: Publish::Idle,
            authorised: false,
            metadata_frame_rate: None,
            video_track: None,
            audio_track: None,
        }
    }

    /// Total bytes received from the client.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Whether the handshake is over (C2 received).
    pub fn handshake_done(&self) -> bool {
        matches!(self.phase, Phase::Chunks)
    }

    /// Feeds bytes from the client; returns what to send and what happened, in order.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Vec<SessionOutput>, RtmpError> {
        let buffered = self.input.len().saturating_add(bytes.len());
        let limit = match self.authorised {
            true => self.config.max_buffered_input,
            false => self.config.pre_publish_max_buffered_input,
        };
        if buffered > limit {
            return Err(RtmpError::InputBufferFull { limit });
        }
        self.input.extend_from_slice(bytes);
        self.bytes_received += bytes.len() as u64;
        let mut out = Vec::new();
        // Acknowledgements are owed even to a peer that never sent its window (FMLE-family
        // encoders wait for them). One that reaches an encoder in the moment it closes, unread
        // (ffmpeg does not read before closing), turns its close into a reset that also drops
        // its unsent unpublish: that session reads as a vanished publisher and waits out its
        // reconnect window.
        if self.handshake_done()
            && self.bytes_received.saturating_sub(self.bytes_acknowledged)
                >= u64::from(self.ack_window)
        {
            self.bytes_acknowledged = self.bytes_received;
            // The sequence number is the byte count modulo 2^32 (§5.4.3).
            let sequence_number = self.bytes_received as u32;
            self.send(
                &mut out,
                ControlMessage::Acknowledgement { sequence_number }.to_message(),
            );
        }
        while !matches!(self.publish, Publish::Requested { .. }) {
            match &mut self.phase {
                Phase::Handshake(handshake) => match handshake.advance(&mut self.input)? {
                    HandshakeProgress::NeedMore => break,
                    HandshakeProgress::Reply(reply) => {
                        debug!(mode = ?handshake.mode(), "Answered the RTMP handshake.");
                        out.push(SessionOutput::Transmit(reply));
                    }
                    HandshakeProgress::Done => {
                        // What came before C2 counts towards the first acknowledgement.
                        self.bytes_acknowledged = self.bytes_received - self.input.len() as u64;
                        self.phase = Phase::Chunks;
                    }
                },
                Phase::Chunks => match self.decoder.decode(&mut self.input)? {
                    None => break,
                    Some(message) => self.handle_message(message, &mut out)?,
                },
            }
        }
        Ok(out)
    }

    /// Accepts the pending publish: sends StreamBegin and onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self) -> Vec<SessionOutput> {
        let Publish::Requested {
            stream_id,
            stream_key,
        } = std::mem::replace(&mut self.publish, Publish::Idle)
        else {
            warn!("accept_publish called with no publish pending; ignored.");
            return Vec::new();
        };
        info!(stream_id, "Publish accepted.");
        let mut out = Vec::new();
        self.send(
            &mut out,
            ControlMessage::UserControl(UserControlEvent::StreamBegin(stream_id)).to_message(),
        );
        let description = format!("{stream_key} is now published.");
        self.send_status(
            &mut out,
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &description,
        );
        self.publish = Publish::Publishing {
            stream_id,
            stream_key,
        };
        self.authorised = true;
        self.decoder.set_limits(self.config.chunk_limits);
        out
    }

    /// Refuses the pending publish with onStatus NetStream.Publish.BadName (level error); the
    /// caller should then close the connection.
    pub fn reject_publish(&mut self, description: &str) -> Vec<SessionOutput> {
        let Publish::Requested { stream_id, .. } =
            std::mem::replace(&mut self.publish, Publish::Idle)
        else {
            warn!("reject_publish called with no publish pending; ignored.");
            return Vec::new();
        };
        // The reason may repeat what the peer named (its application); whoever decided logs
        // why in its own words.
        info!(stream_id, "Publish rejected.");
        let mut out = Vec::new();
        self.send_status(
            &mut out,
            stream_id,
            "error",
            "NetStream.Publish.BadName",
            description,
        );
        out
    }

    fn send(&self, out: &mut Vec<SessionOutput>, message: RtmpMessage) {
        let mut bytes = BytesMut::new();
        self.encoder.encode(&message, &mut bytes);
        out.push(SessionOutput::Transmit(bytes.freeze()));
    }

    fn send_command(&self, out: &mut Vec<SessionOutput>, stream_id: u32, values: &[Amf0Value]) {
        let chunk_stream_id = if stream_id == 0 {
            COMMAND_CHUNK_STREAM
        } else {
            STATUS_CHUNK_STREAM
        };
        self.send(
            out,
            RtmpMessage {
                chunk_stream_id,
                timestamp: 0,
                message_type: MessageType::CommandAmf0,
                stream_id,
                payload: amf0::encode_all(values),
            },
        );
    }

    fn send_status(
        &self,
        out: &mut Vec<SessionOutput>,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
    ) {
        self.send_command(
            out,
            stream_id,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", Amf0Value::string(level)),
                    ("code", Amf0Value::string(code)),
                    ("description", Amf0Value::string(description)),
                ]),
            ],
        );
    }

    fn send_result(&self, out: &mut Vec<SessionOutput>, transaction_id: f64, value: Amf0Value) {
        self.send_command(
            out,
            0,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(transaction_id),
                Amf0Value::Null,
                value,
            ],
        );
    }

    fn handle_message(
        &mut self,
        message: RtmpMessage,
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        if let Some(control) = ControlMessage::parse(message.message_type, &message.payload) {
            return self.handle_control(control?, out);
        }
        match message.message_type {
            MessageType::CommandAmf0 => self.handle_command(&message, &message.payload, out),
            MessageType::CommandAmf3 => {
                // An AMF3 command starts with a 0 format byte, then AMF0 values (§7.1.1).
                let body = message.payload.get(1..).unwrap_or_default();
                self.handle_command(&message, body, out)
            }
            MessageType::DataAmf0 => self.handle_data(&message, &message.payload, out),
            MessageType::DataAmf3 => {
                let body = message.payload.get(1..).unwrap_or_default();
                self.handle_data(&message, body, out)
            }
            MessageType::Audio | MessageType::Video => self.handle_media(message, out),
            other => {
                warn!(
                    message_type = other.id(),
                    stream_id = message.stream_id,
                    len = message.payload.len(),
                    "Unsupported RTMP message type; dropped."
                );
                Ok(())
            }
        }
    }

    fn handle_control(
        &mut self,
        control: ControlMessage,
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        match control {
            ControlMessage::SetChunkSize(size) => {
                self.decoder.set_chunk_size(size)?;
                debug!(size, "Peer set its chunk size.");
            }
            ControlMessage::Abort { chunk_stream_id } => self.decoder.abort(chunk_stream_id),
            ControlMessage::WindowAckSize(size) => {
                // A zero window would mean an acknowledgement per byte; keep ours instead.
                if size > 0 {
                    self.ack_window = size;
                }
                debug!(size, "Peer set its acknowledgement window.");
            }
            ControlMessage::UserControl(UserControlEvent::PingRequest(time)) => self.send(
                out,
                ControlMessage::UserControl(UserControlEvent::PingResponse(time)).to_message(),
            ),
            ControlMessage::Acknowledgement { .. }
            | ControlMessage::SetPeerBandwidth { .. }
            | ControlMessage::UserControl(_) => {
                debug!(?control, "Control message from peer.");
            }
        }
        Ok(())
    }

    fn handle_command(
        &mut self,
        message: &RtmpMessage,
        body: &[u8],
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        let values = amf0::decode_all(body).map_err(|source| RtmpError::Amf0 {
            message_type: message.message_type,
            source,
        })?;
        let mut values = values.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(name)) => name,
            other => {
                return Err(RtmpError::MalformedCommand {
                    command: String::new(),
                    reason: format!("command name must be a string, got {other:?}"),
                })
            }
        };
        let transaction_id = values.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let command_object = values.next().unwrap_or(Amf0Value::Null);
        let args: Vec<Amf0Value> = values.collect();
        let command = Command::from_name(&name);
        if self.app.is_none() && command != Command::Connect {
            return Err(RtmpError::NotConnected { command: name });
        }
        match command {
            Command::Connect => self.on_connect(transaction_id, &command_object, out),
            Command::ReleaseStream => {
                // Its argument is the stream key: not logged.
                debug!("releaseStream.");
                self.send_result(out, transaction_id, Amf0Value::Undefined);
                Ok(())
            }
            Command::FcPublish => {
                let key = args.first().and_then(Amf0Value::as_str).unwrap_or_default();
                self.send_result(out, transaction_id, Amf0Value::Undefined);
                self.send_command(
                    out,
                    0,
                    &[
                        Amf0Value::string("onFCPublish"),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        Amf0Value::object([
                            ("code", Amf0Value::string("NetStream.Publish.Start")),
                            ("description", Amf0Value::string(key)),
                        ]),
                    ],
                );
                Ok(())
            }
            Command::CreateStream => {
                if self.streams.len() >= self.config.max_streams {
                    return Err(RtmpError::TooManyStreams {
                        max: self.config.max_streams,
                    });
                }
                let stream_id = self.streams.last().map_or(1, |last| last.saturating_add(1));
                self.streams.push(stream_id);
                debug!(stream_id, "Message stream created.");
                self.send_result(out, transaction_id, Amf0Value::Number(f64::from(stream_id)));
                Ok(())
            }
            Command::Publish => self.on_publish(message.stream_id, &args, out),
            Command::FcUnpublish => {
                self.finish_publish(None, out);
                Ok(())
            }
            Command::DeleteStream => {
                let stream_id = args
                    .first()
                    .and_then(Amf0Value::as_number)
                    .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                    .map(|n| n as u32);
                if let Some(stream_id) = stream_id {
                    self.finish_publish(Some(stream_id), out);
                    self.streams.retain(|s| *s != stream_id);
                }
                Ok(())
            }
            Command::CloseStream => {
                self.finish_publish(Some(message.stream_id), out);
                Ok(())
            }
            Command::Response => {
                debug!(command = %name, transaction_id, "Peer answered a call; nothing waits for it.");
                Ok(())
            }
            Command::Unknown(name) => {
                warn!(command = %name, transaction_id, "Unknown RTMP command.");
                if transaction_id != 0.0 {
                    self.send_command(
                        out,
                        message.stream_id,
                        &[
                            Amf0Value::string("_error"),
                            Amf0Value::Number(transaction_id),
                            Amf0Value::Null,
                            Amf0Value::object([
                                ("level", Amf0Value::string("error")),
                                ("code", Amf0Value::string("NetConnection.Call.Failed")),
                                (
                                    "description",
                                    Amf0Value::string(format!("Method not found ({name}).")),
                                ),
                            ]),
                        ],
                    );
                }
                Ok(())
            }
        }
    }

    fn on_connect(
        &mut self,
        transaction_id: f64,
        command_object: &Amf0Value,
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::MalformedCommand {
                command: "connect".into(),
                reason: "connect sent twice".into(),
            });
        }
        let text = |key: &str| {
            command_object
                .get(key)
                .and_then(Amf0Value::as_str)
                .map(str::to_owned)
        };
        let app = text("app").ok_or_else(|| RtmpError::MalformedCommand {
            command: "connect".into(),
            reason: "no app property".into(),
        })?;
        let tc_url = text("tcUrl");
        let flash_ver = text("flashVer");
        self.send(
            out,
            ControlMessage::WindowAckSize(self.config.window_ack_size).to_message(),
        );
        self.send(
            out,
            ControlMessage::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit: BandwidthLimit::Dynamic,
            }
            .to_message(),
        );
        self.send(
            out,
            ControlMessage::SetChunkSize(self.config.chunk_size).to_message(),
        );
        self.encoder.set_chunk_size(self.config.chunk_size)?;
        self.send_command(
            out,
            0,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(transaction_id),
                Amf0Value::object([
                    ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
                    ("capabilities", Amf0Value::Number(31.0)),
                ]),
                Amf0Value::object([
                    ("level", Amf0Value::string("status")),
                    ("code", Amf0Value::string("NetConnection.Connect.Success")),
                    ("description", Amf0Value::string("Connection succeeded.")),
                    ("objectEncoding", Amf0Value::Number(0.0)),
                ]),
            ],
        );
        // The application and the rest of tcUrl may hold a stream key (`rtmp://host/KEY`):
        // only the host is logged at info.
        info!(
            host = tc_url.as_deref().map_or("", url_host),
            flash_ver = ?flash_ver,
            "RTMP client connected."
        );
        debug!(app_chars = app.chars().count(), "RTMP application named.");
        self.app = Some(app.clone());
        out.push(SessionOutput::Event(SessionEvent::Connected {
            app,
            tc_url,
            flash_ver,
        }));
        Ok(())
    }

    fn on_publish(
        &mut self,
        stream_id: u32,
        args: &[Amf0Value],
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        self.require_stream(stream_id, MessageType::CommandAmf0)?;
        if self.publish != Publish::Idle {
            return Err(RtmpError::MalformedCommand {
                command: "publish".into(),
                reason: "a publish is already pending or active on this connection".into(),
            });
        }
        let stream_key = args.first().and_then(Amf0Value::as_str).unwrap_or_default();
        let mode = match args.get(1).and_then(Amf0Value::as_str) {
            Some("record") => PublishMode::Record,
            Some("append") => PublishMode::Append,
            Some("live") | None => PublishMode::Live,
            Some(other) => {
                warn!(mode = other, "Unknown publish type; treated as live.");
                PublishMode::Live
            }
        };
        if stream_key.is_empty() {
            warn!(stream_id, "Publish with an empty stream key; rejected.");
            self.send_status(
                out,
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "A stream key is required.",
            );
            return Ok(());
        }
        let app = self.app.clone().unwrap_or_default();
        info!(stream_id, "Publish requested.");
        self.publish = Publish::Requested {
            stream_id,
            stream_key: stream_key.to_owned(),
        };
        out.push(SessionOutput::Event(SessionEvent::PublishRequested {
            app,
            stream_key: stream_key.to_owned(),
            mode,
            stream_id,
        }));
        Ok(())
    }

    /// Refuses a message on a message stream that `createStream` never made.
    fn require_stream(&self, stream_id: u32, message_type: MessageType) -> Result<(), RtmpError> {
        if self.streams.contains(&stream_id) {
            Ok(())
        } else {
            Err(RtmpError::UnknownStream {
                stream_id,
                message_type,
            })
        }
    }

    /// Ends an active publish (on `stream_id`, or whichever when `None`).
    fn finish_publish(&mut self, stream_id: Option<u32>, out: &mut Vec<SessionOutput>) {
        let Publish::Publishing {
            stream_id: publishing,
            stream_key,
        } = &self.publish
        else {
            return;
        };
        if stream_id.is_some_and(|id| id != *publishing) {
            return;
        }
        let stream_key = stream_key.clone();
        info!(stream_id = *publishing, "Publish finished.");
        self.publish = Publish::Idle;
        out.push(SessionOutput::Event(SessionEvent::PublishFinished {
            app: self.app.clone().unwrap_or_default(),
            stream_key,
        }));
    }

    fn handle_data(
        &mut self,
        message: &RtmpMessage,
        body: &[u8],
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        self.require_stream(message.stream_id, message.message_type)?;
        let values = amf0::decode_all(body).map_err(|source| RtmpError::Amf0 {
            message_type: message.message_type,
            source,
        })?;
        let mut rest = values.iter();
        let mut name = rest.next().and_then(Amf0Value::as_str);
        if name == Some("@setDataFrame") {
            name = rest.next().and_then(Amf0Value::as_str);
        }
        let (Some("onMetaData"), Some(properties)) = (name, rest.next()) else {
            debug!(name = ?name, "Data message other than onMetaData; not used.");
            return Ok(());
        };
        let number = |key: &str| {
            properties
                .get(key)
                .and_then(Amf0Value::as_number)
                .filter(|n| n.is_finite())
        };
        let dimension = |key: &str| {
            number(key)
                .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                .map(|n| n as u32)
        };
        let metadata = StreamMetadata {
            width: dimension("width"),
            height: dimension("height"),
            frame_rate: number("framerate").filter(|fps| *fps > 0.0),
            video_data_rate: number("videodatarate"),
            audio_data_rate: number("audiodatarate"),
            encoder: properties
                .get("encoder")
                .and_then(Amf0Value::as_str)
                .map(str::to_owned),
        };
        debug!(?metadata, "Stream metadata.");
        self.metadata_frame_rate = metadata.frame_rate;
        out.push(SessionOutput::Event(SessionEvent::Metadata(metadata)));
        Ok(())
    }

    fn handle_media(
        &mut self,
        message: RtmpMessage,
        out: &mut Vec<SessionOutput>,
    ) -> Result<(), RtmpError> {
        self.require_stream(message.stream_id, message.message_type)?;
        if !matches!(self.publish, Publish::Publishing { stream_id, .. } if stream_id == message.stream_id)
        {
            return Err(RtmpError::MediaBeforePublish {
                stream_id: message.stream_id,
            });
        }
        let dts = i64::try_from(message.timestamp).unwrap_or(i64::MAX);
        let tag = if message.message_type == MessageType::Video {
            flv::read_video(&message.payload, dts)
        } else {
            flv::read_audio(&message.payload, dts)
        }
        .map_err(|source| RtmpError::Flv {
            stream_id: message.stream_id,
            timestamp: message.timestamp,
            source,
        })?;
        match tag {
            FlvTag::Track(track) => self.announce(track, out),
            FlvTag::Packet(packet) => out.push(SessionOutput::Event(SessionEvent::Packet(packet))),
            FlvTag::Frame { track, packet } => {
                self.announce(track, out);
                out.push(SessionOutput::Event(SessionEvent::Packet(packet)));
            }
            FlvTag::SequenceEnd => debug!(stream_id = message.stream_id, "End of sequence."),
            FlvTag::Nothing => {}
        }
        Ok(())
    }

    /// Emits a track event when `track` is new or differs from the one of its kind.
    fn announce(&mut self, mut track: TrackInfo, out: &mut Vec<SessionOutput>) {
        if let TrackInfo::Avc { frame_rate, .. } = &mut track {
            *frame_rate = frame_rate.or(self.metadata_frame_rate);
        }
        let current = match track.kind() {
            TrackKind::Video => &mut self.video_track,
            TrackKind::Audio => &mut self.audio_track,
        };
        if current.as_ref() != Some(&track) {
            info!(kind = ?track.kind(), codec = ?track.codec_string(), "Track announced.");
            *current = Some(track.clone());
            out.push(SessionOutput::Event(SessionEvent::Track(track)));
        }
    }
}

/// The host (and port) of a URL such as a tcUrl, without scheme, credentials, path or query:
/// what may be logged of a URL that can carry a secret.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn only_the_host_of_a_tc_url_is_kept() {
        assert_eq!(url_host("rtmp://example.com:1935/live"), "example.com:1935");
        assert_eq!(
            url_host("rtmp://user:pass@example.com/SECRET?key=x"),
            "example.com"
        );
        assert_eq!(url_host("rtmps://[::1]:443/live/KEY"), "[::1]:443");
        assert_eq!(url_host("example.com/live"), "example.com");
        assert_eq!(url_host(""), "");
    }
}
