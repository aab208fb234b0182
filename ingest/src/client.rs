//! The client side of an RTMP publish, for pushing a stream to another RTMP server (YouTube,
//! Twitch, Facebook, nginx-rtmp): the same chunk stream, AMF0 and FLV code as the server side,
//! driven the other way round.
//!
//! [`ClientSession`] is sans-IO like [`crate::ServerSession`]: [`ClientSession::start`] gives
//! C0+C1, bytes from the server go in through [`ClientSession::handle_input`] and bytes to send
//! come out. It plays the simple handshake of the specification (§5.2: C1 random with a zero
//! version, C2 echoing S1), which every server accepts for plain RTMP, then the FMLE/OBS command
//! sequence: `connect(app, tcUrl)`, waiting for its `_result`; `releaseStream`, `FCPublish` and
//! `createStream`, waiting for the stream id; `publish(key, "live")`, waiting for `onStatus`
//! `NetStream.Publish.Start`. An `_error` to `connect` or `createStream`, or an `onStatus` of
//! level `error` (`NetStream.Publish.BadName`, …), is a [`ClientError::Refused`] naming the
//! server's code and description. Once publishing, [`ClientSession::metadata`] and
//! [`ClientSession::media`] encode `@setDataFrame onMetaData` and audio/video tag bodies (see the
//! writers in [`crate::flv`]); the session keeps answering pings and acknowledging the server's
//! window.
//!
//! [`RtmpPublisher`] is the thin tokio driver over any byte stream; [`RtmpUrl`] splits a target
//! URL into host, port, app and tcUrl; [`tls_connect`] wraps a TCP stream in TLS (rustls with the
//! webpki roots) for `rtmps://` targets.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig as TlsConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::amf0::{self, Amf0Value};
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, ControlMessage, MessageType};
use crate::chunk::{RtmpMessage, UserControlEvent};
use crate::handshake::{HandshakeError, HANDSHAKE_PACKET_LEN, RTMP_VERSION};
use crate::RtmpError;

/// Chunk stream of connection-level commands.
const COMMAND_CHUNK_STREAM: u32 = 3;
/// Chunk stream of audio messages.
const AUDIO_CHUNK_STREAM: u32 = 4;
/// Chunk stream of commands and data on the publishing message stream.
const STREAM_CHUNK_STREAM: u32 = 5;
/// Chunk stream of video messages.
const VIDEO_CHUNK_STREAM: u32 = 6;

const CONNECT_TRANSACTION: f64 = 1.0;
const RELEASE_STREAM_TRANSACTION: f64 = 2.0;
const FC_PUBLISH_TRANSACTION: f64 = 3.0;
const CREATE_STREAM_TRANSACTION: f64 = 4.0;
const PUBLISH_TRANSACTION: f64 = 5.0;

/// The default RTMP port.
pub const RTMP_PORT: u16 = 1935;
/// The default RTMPS port.
pub const RTMPS_PORT: u16 = 443;

/// What a client publishes to, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The application (`live2` in `rtmp://a.rtmp.youtube.com/live2`).
    pub app: String,
    /// The URL announced as `tcUrl` (the target URL without the stream key).
    pub tc_url: String,
    /// The stream key, the `publish` name.
    pub stream_key: String,
    /// Chunk size announced and sent with (default [`Self::DEFAULT_CHUNK_SIZE`]).
    pub chunk_size: u32,
    /// Limits on what the server may send.
    pub chunk_limits: ChunkLimits,
    /// Most undecoded bytes from the server held at once.
    pub max_buffered_input: usize,
}

impl ClientConfig {
    pub const DEFAULT_CHUNK_SIZE: u32 = 4096;
    /// Servers send commands and control messages only: 1 MiB is plenty.
    pub const DEFAULT_MAX_BUFFERED_INPUT: usize = 1024 * 1024;

    /// A configuration for `url` and `stream_key` with the default limits.
    pub fn new(url: &RtmpUrl, stream_key: &str) -> Self {
        ClientConfig {
            app: url.app.clone(),
            tc_url: url.tc_url.clone(),
            stream_key: stream_key.to_owned(),
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            chunk_limits: ChunkLimits {
                max_message_len: Self::DEFAULT_MAX_BUFFERED_INPUT as u32 / 2,
                ..ChunkLimits::default()
            },
            max_buffered_input: Self::DEFAULT_MAX_BUFFERED_INPUT,
        }
    }
}

/// Why a publish did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Protocol(#[from] RtmpError),
    #[error("the server refused {stage}: {code}: {description}")]
    Refused {
        stage: &'static str,
        code: String,
        description: String,
    },
    #[error("the server sent {0} before the publish started")]
    Unexpected(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
}

/// What a target URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`: TLS around the RTMP connection.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path without its slashes at either end (may itself hold a `/`).
    pub app: String,
    /// The URL as the server expects it in `connect`'s `tcUrl`.
    pub tc_url: String,
}

/// Why a target URL is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtmpUrlError {
    #[error("not a URL: {0}")]
    Invalid(String),
    #[error("scheme {0:?} is not rtmp or rtmps")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL names no application (rtmp://host/app)")]
    NoApp,
    #[error("user names, passwords, queries and fragments are not allowed in the URL")]
    Extras,
}

impl RtmpUrl {
    /// Parses `rtmp://host[:port]/app` or `rtmps://…`.
    pub fn parse(text: &str) -> Result<Self, RtmpUrlError> {
        let url = url::Url::parse(text).map_err(|e| RtmpUrlError::Invalid(e.to_string()))?;
        let (tls, default_port) = match url.scheme() {
            "rtmp" => (false, RTMP_PORT),
            "rtmps" => (true, RTMPS_PORT),
            other => return Err(RtmpUrlError::Scheme(other.to_owned())),
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(RtmpUrlError::Extras);
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(RtmpUrlError::NoHost),
        };
        let app = url.path().trim_matches('/').to_owned();
        if app.is_empty() {
            return Err(RtmpUrlError::NoApp);
        }
        Ok(RtmpUrl {
            tls,
            host,
            port: url.port().unwrap_or(default_port),
            tc_url: text.trim_end_matches('/').to_owned(),
            app,
        })
    }
}

#[derive(Debug)]
enum Stage {
    /// C0+C1 sent; waiting for S0+S1+S2.
    Handshake,
    AwaitConnect,
    AwaitCreateStream,
    AwaitPublish {
        stream_id: u32,
    },
    Publishing {
        stream_id: u32,
    },
}

/// Kinds of media message a publisher sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// The client side of one RTMP publish.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    stage: Stage,
    input: BytesMut,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    bytes_received: u64,
    bytes_acknowledged: u64,
    /// The server's Window Acknowledgement Size, once it sent one.
    ack_window: Option<u32>,
}

impl ClientSession {
    /// A session that has sent nothing yet.
    pub fn new(config: ClientConfig) -> Self {
        ClientSession {
            decoder: ChunkDecoder::new(config.chunk_limits),
            encoder: ChunkEncoder::default(),
            config,
            stage: Stage::Handshake,
            input: BytesMut::new(),
            bytes_received: 0,
            bytes_acknowledged: 0,
            ack_window: None,
        }
    }

    /// C0 and a random C1 (time 0, zero version: the simple handshake).
    pub fn start(&mut self) -> Bytes {
        let mut c0c1 = vec![0u8; 1 + HANDSHAKE_PACKET_LEN];
        c0c1[0] = RTMP_VERSION;
        rand::thread_rng().fill_bytes(&mut c0c1[9..]);
        Bytes::from(c0c1)
    }

    /// Whether the server answered `publish` with NetStream.Publish.Start.
    pub fn is_publishing(&self) -> bool {
        matches!(self.stage, Stage::Publishing { .. })
    }

    /// Feeds bytes from the server; returns the bytes to send to it, in order.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, ClientError> {
        let buffered = self.input.len().saturating_add(bytes.len());
        if buffered > self.config.max_buffered_input {
            return Err(RtmpError::InputBufferFull {
                limit: self.config.max_buffered_input,
            }
            .into());
        }
        self.input.extend_from_slice(bytes);
        self.bytes_received += bytes.len() as u64;
        let mut out = Vec::new();
        if let Some(window) = self.ack_window {
            if self.bytes_received - self.bytes_acknowledged >= u64::from(window) {
                self.bytes_acknowledged = self.bytes_received;
                // The sequence number is the byte count modulo 2^32 (§5.4.3).
                let sequence_number = self.bytes_received as u32;
                out.push(
                    self.encode(ControlMessage::Acknowledgement { sequence_number }.to_message()),
                );
            }
        }
        if matches!(self.stage, Stage::Handshake) {
            const REPLY_LEN: usize = 1 + 2 * HANDSHAKE_PACKET_LEN;
            if self.input.len() < REPLY_LEN {
                return Ok(out);
            }
            let version = self.input[0];
            if version != RTMP_VERSION {
                return Err(
                    RtmpError::Handshake(HandshakeError::UnsupportedVersion { version }).into(),
                );
            }
            // C2 echoes S1; S2 (the server's echo of C1) is not checked, as servers do not
            // check C2 either.
            let c2 = Bytes::copy_from_slice(&self.input[1..1 + HANDSHAKE_PACKET_LEN]);
            self.input.advance(REPLY_LEN);
            self.bytes_acknowledged = self.bytes_received - self.input.len() as u64;
            out.push(c2);
            out.push(
                self.encode(ControlMessage::SetChunkSize(self.config.chunk_size).to_message()),
            );
            self.encoder
                .set_chunk_size(self.config.chunk_size)
                .map_err(RtmpError::from)?;
            out.push(self.command(
                0,
                &[
                    Amf0Value::string("connect"),
                    Amf0Value::Number(CONNECT_TRANSACTION),
                    Amf0Value::object([
                        ("app", Amf0Value::string(&self.config.app)),
                        ("type", Amf0Value::string("nonprivate")),
                        (
                            "flashVer",
                            Amf0Value::string("FMLE/3.0 (compatible; Sluice)"),
                        ),
                        ("tcUrl", Amf0Value::string(&self.config.tc_url)),
                    ]),
                ],
            ));
            self.stage = Stage::AwaitConnect;
        }
        while let Some(message) = self
            .decoder
            .decode(&mut self.input)
            .map_err(RtmpError::from)?
        {
            self.handle_message(message, &mut out)?;
        }
        Ok(out)
    }

    /// `@setDataFrame onMetaData` with `properties`, on the publishing stream.
    pub fn metadata(&self, properties: Vec<(String, Amf0Value)>) -> Bytes {
        let payload = amf0::encode_all(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(properties),
        ]);
        self.encode(RtmpMessage {
            chunk_stream_id: STREAM_CHUNK_STREAM,
            timestamp: 0,
            message_type: MessageType::DataAmf0,
            stream_id: self.stream_id(),
            payload,
        })
    }

    /// An audio or video message carrying the tag `body`, at `timestamp` milliseconds.
    pub fn media(&self, kind: MediaKind, timestamp: u64, body: Bytes) -> Bytes {
        let (chunk_stream_id, message_type) = match kind {
            MediaKind::Audio => (AUDIO_CHUNK_STREAM, MessageType::Audio),
            MediaKind::Video => (VIDEO_CHUNK_STREAM, MessageType::Video),
        };
        self.encode(RtmpMessage {
            chunk_stream_id,
            timestamp,
            message_type,
            stream_id: self.stream_id(),
            payload: body,
        })
    }

    /// `FCUnpublish` and `deleteStream`: the polite end of a publish.
    pub fn unpublish(&self) -> Bytes {
        let key = Amf0Value::string(&self.config.stream_key);
        let mut out = BytesMut::new();
        out.extend_from_slice(&self.command(
            0,
            &[
                Amf0Value::string("FCUnpublish"),
                Amf0Value::Number(6.0),
                Amf0Value::Null,
                key,
            ],
        ));
        out.extend_from_slice(&self.command(
            0,
            &[
                Amf0Value::string("deleteStream"),
                Amf0Value::Number(7.0),
                Amf0Value::Null,
                Amf0Value::Number(f64::from(self.stream_id())),
            ],
        ));
        out.freeze()
    }

    fn stream_id(&self) -> u32 {
        match self.stage {
            Stage::AwaitPublish { stream_id } | Stage::Publishing { stream_id } => stream_id,
            _ => 0,
        }
    }

    fn encode(&self, message: RtmpMessage) -> Bytes {
        let mut bytes = BytesMut::with_capacity(message.payload.len() + 32);
        self.encoder.encode(&message, &mut bytes);
        bytes.freeze()
    }

    fn command(&self, stream_id: u32, values: &[Amf0Value]) -> Bytes {
        self.encode(RtmpMessage {
            chunk_stream_id: if stream_id == 0 {
                COMMAND_CHUNK_STREAM
            } else {
                STREAM_CHUNK_STREAM
            },
            timestamp: 0,
            message_type: MessageType::CommandAmf0,
            stream_id,
            payload: amf0::encode_all(values),
        })
    }

    fn handle_message(
        &mut self,
        message: RtmpMessage,
        out: &mut Vec<Bytes>,
    ) -> Result<(), ClientError> {
        if let Some(control) = ControlMessage::parse(message.message_type, &message.payload) {
            match control.map_err(RtmpError::from)? {
                ControlMessage::SetChunkSize(size) => {
                    self.decoder.set_chunk_size(size).map_err(RtmpError::from)?;
                }
                ControlMessage::Abort { chunk_stream_id } => self.decoder.abort(chunk_stream_id),
                ControlMessage::WindowAckSize(size) if size > 0 => self.ack_window = Some(size),
                ControlMessage::UserControl(UserControlEvent::PingRequest(time)) => out.push(
                    self.encode(
                        ControlMessage::UserControl(UserControlEvent::PingResponse(time))
                            .to_message(),
                    ),
                ),
                other => debug!(control = ?other, "Control message from the RTMP server."),
            }
            return Ok(());
        }
        let body = match message.message_type {
            MessageType::CommandAmf0 => &message.payload[..],
            MessageType::CommandAmf3 => message.payload.get(1..).unwrap_or_default(),
            other => {
                debug!(message_type = other.id(), "RTMP server message ignored.");
                return Ok(());
            }
        };
        let values = amf0::decode_all(body).map_err(|source| RtmpError::Amf0 {
            message_type: message.message_type,
            source,
        })?;
        let name = values
            .first()
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        let transaction = values.get(1).and_then(Amf0Value::as_number).unwrap_or(0.0);
        // `_result`/`_error` carry their information object fourth; `onStatus` too.
        let info = values.get(3);
        let text = |key: &str| {
            info.and_then(|info| info.get(key))
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let refused = |stage: &'static str| ClientError::Refused {
            stage,
            code: text("code"),
            description: text("description"),
        };
        match (name, &self.stage) {
            ("_result", Stage::AwaitConnect) if transaction == CONNECT_TRANSACTION => {
                let key = Amf0Value::string(&self.config.stream_key);
                out.push(self.command(
                    0,
                    &[
                        Amf0Value::string("releaseStream"),
                        Amf0Value::Number(RELEASE_STREAM_TRANSACTION),
                        Amf0Value::Null,
                        key.clone(),
                    ],
                ));
                out.push(self.command(
                    0,
                    &[
                        Amf0Value::string("FCPublish"),
                        Amf0Value::Number(FC_PUBLISH_TRANSACTION),
                        Amf0Value::Null,
                        key,
                    ],
                ));
                out.push(self.command(
                    0,
                    &[
                        Amf0Value::string("createStream"),
                        Amf0Value::Number(CREATE_STREAM_TRANSACTION),
                        Amf0Value::Null,
                    ],
                ));
                self.stage = Stage::AwaitCreateStream;
            }
            ("_error", Stage::AwaitConnect) if transaction == CONNECT_TRANSACTION => {
                return Err(refused("connect"));
            }
            ("_result", Stage::AwaitCreateStream) if transaction == CREATE_STREAM_TRANSACTION => {
                let stream_id = values
                    .get(3)
                    .and_then(Amf0Value::as_number)
                    .filter(|id| *id >= 1.0 && *id <= f64::from(u32::MAX))
                    .ok_or_else(|| RtmpError::MalformedCommand {
                        command: "_result".into(),
                        reason: "createStream answered without a stream id".into(),
                    })? as u32;
                self.stage = Stage::AwaitPublish { stream_id };
                out.push(self.command(
                    stream_id,
                    &[
                        Amf0Value::string("publish"),
                        Amf0Value::Number(PUBLISH_TRANSACTION),
                        Amf0Value::Null,
                        Amf0Value::string(&self.config.stream_key),
                        Amf0Value::string("live"),
                    ],
                ));
            }
            ("_error", Stage::AwaitCreateStream) if transaction == CREATE_STREAM_TRANSACTION => {
                return Err(refused("createStream"));
            }
            ("onStatus", Stage::AwaitPublish { stream_id }) => {
                let stream_id = *stream_id;
                if text("level") == "error" {
                    return Err(refused("publish"));
                }
                if text("code") == "NetStream.Publish.Start" {
                    debug!(stream_id, "Publishing to the RTMP server.");
                    self.stage = Stage::Publishing { stream_id };
                }
            }
            ("onStatus", Stage::Publishing { .. }) if text("level") == "error" => {
                return Err(refused("the stream"));
            }
            ("_error", _) => {
                debug!(transaction, code = %text("code"), "The RTMP server refused a call that is not needed.");
            }
            (name, _) => debug!(command = name, transaction, "RTMP server command noted."),
        }
        Ok(())
    }
}

/// A live publish over a byte stream: the tokio driver of a [`ClientSession`].
///
/// Reading is separate from writing so a caller can wait on the server and on its own queue in
/// one `select!`: [`Self::read_some`] is cancel-safe, and what it read goes to
/// [`Self::handle_server_bytes`].
#[derive(Debug)]
pub struct RtmpPublisher<S> {
    stream: S,
    session: ClientSession,
    bytes_sent: u64,
    write_timeout: Duration,
}

/// Size of one socket read.
const READ_CHUNK: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> RtmpPublisher<S> {
    /// Handshakes, connects and publishes over `stream`; every step must finish within
    /// `timeout`, which also bounds each later write.
    pub async fn publish(
        stream: S,
        config: ClientConfig,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut publisher = RtmpPublisher {
            stream,
            session: ClientSession::new(config),
            bytes_sent: 0,
            write_timeout: timeout,
        };
        let hello = publisher.session.start();
        publisher.write(&hello).await?;
        let mut buf = vec![0u8; READ_CHUNK];
        while !publisher.session.is_publishing() {
            let n = tokio::time::timeout(timeout, publisher.stream.read(&mut buf))
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            publisher.handle_server_bytes(&buf[..n]).await?;
        }
        Ok(publisher)
    }

    /// Bytes written to the server so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Waits for bytes from the server (cancel-safe); `Ok(0)` when it closed the connection.
    pub async fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// Handles bytes read with [`Self::read_some`], answering the server as needed.
    pub async fn handle_server_bytes(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        for reply in self.session.handle_input(bytes)? {
            self.write(&reply).await?;
        }
        Ok(())
    }

    /// Sends `@setDataFrame onMetaData`.
    pub async fn send_metadata(
        &mut self,
        properties: Vec<(String, Amf0Value)>,
    ) -> Result<(), ClientError> {
        let bytes = self.session.metadata(properties);
        self.write(&bytes).await
    }

    /// Sends an audio or video tag body at `timestamp` milliseconds.
    pub async fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u64,
        body: Bytes,
    ) -> Result<(), ClientError> {
        let bytes = self.session.media(kind, timestamp, body);
        self.write(&bytes).await
    }

    /// Ends the publish politely and flushes; the connection can then be dropped.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        let bytes = self.session.unpublish();
        self.write(&bytes).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        tokio::time::timeout(self.write_timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout(self.write_timeout))??;
        self.bytes_sent += bytes.len() as u64;
        Ok(())
    }
}

/// Wraps `tcp` in TLS for `host`, checking its certificate against the webpki roots.
pub async fn tls_connect(tcp: TcpStream, host: &str) -> io::Result<TlsStream<TcpStream>> {
    static CONFIG: OnceLock<Arc<TlsConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = TlsConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv;
    use crate::net::{ConnectionConfig, RtmpConnection};
    use crate::session::{ServerSession, SessionConfig, SessionEvent, SessionOutput};
    use sluice_media::{AudioSpecificConfig, Packet, Timebase, TrackInfo, TrackKind};

    fn config() -> ClientConfig {
        ClientConfig::new(&RtmpUrl::parse("rtmp://127.0.0.1/live").unwrap(), "key-1")
    }

    fn video_packet(dts: i64, keyframe: bool) -> Packet {
        Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MILLIS,
            dts,
            pts: dts + 40,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        }
    }

    /// Pumps bytes between a client and a server session until neither has anything to say,
    /// handing the server's bytes to the client `step` bytes at a time; returns server events.
    fn pump(
        client: &mut ClientSession,
        server: &mut ServerSession,
        mut to_server: Vec<Bytes>,
        step: usize,
    ) -> Result<Vec<SessionEvent>, ClientError> {
        let mut events = Vec::new();
        loop {
            let mut to_client = Vec::new();
            for bytes in to_server.drain(..) {
                for output in server.handle_input(&bytes).unwrap() {
                    match output {
                        SessionOutput::Transmit(bytes) => to_client.push(bytes),
                        SessionOutput::Event(SessionEvent::PublishRequested { .. }) => {
                            for output in server.accept_publish() {
                                if let SessionOutput::Transmit(bytes) = output {
                                    to_client.push(bytes);
                                }
                            }
                        }
                        SessionOutput::Event(event) => events.push(event),
                    }
                }
            }
            if to_client.is_empty() {
                return Ok(events);
            }
            let all: Vec<u8> = to_client.concat();
            for piece in all.chunks(step) {
                to_server.extend(client.handle_input(piece)?);
            }
        }
    }

    #[test]
    fn client_publishes_to_the_server_session_at_every_split() {
        for step in [1, 7, 100, usize::MAX] {
            let mut client = ClientSession::new(config());
            let mut server = ServerSession::new(SessionConfig::default());
            let hello = client.start();
            pump(&mut client, &mut server, vec![hello], step.min(1 << 20)).unwrap();
            assert!(client.is_publishing(), "step {step}");
            let avc = flv::avc_sequence_header(&sluice_media::fixtures::avc_320x240());
            let aac = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
            let packet = video_packet(40, true);
            let sent = vec![
                client.metadata(vec![("width".into(), Amf0Value::Number(320.0))]),
                client.media(MediaKind::Video, 0, avc),
                client.media(MediaKind::Audio, 0, flv::aac_sequence_header(&aac)),
                client.media(MediaKind::Video, 40, flv::avc_frame(&packet)),
            ];
            let events = pump(&mut client, &mut server, sent, step.min(1 << 20)).unwrap();
            assert!(matches!(&events[0], SessionEvent::Metadata(m) if m.width == Some(320)));
            assert!(
                matches!(&events[1], SessionEvent::Track(TrackInfo::Avc { config, .. }) if config.width == 320)
            );
            assert_eq!(
                events[2],
                SessionEvent::Track(TrackInfo::Aac { config: aac })
            );
            assert_eq!(events[3], SessionEvent::Packet(packet));
        }
    }

    #[test]
    fn a_refused_publish_names_the_server_code() {
        let mut client = ClientSession::new(config());
        let mut server = ServerSession::new(SessionConfig::default());
        let mut to_server = vec![client.start()];
        let error = loop {
            let mut to_client = Vec::new();
            for bytes in to_server.drain(..) {
                for output in server.handle_input(&bytes).unwrap() {
                    match output {
                        SessionOutput::Transmit(bytes) => to_client.push(bytes),
                        SessionOutput::Event(SessionEvent::PublishRequested { .. }) => {
                            for output in server.reject_publish("No such stream.") {
                                if let SessionOutput::Transmit(bytes) = output {
                                    to_client.push(bytes);
                                }
                            }
                        }
                        SessionOutput::Event(_) => {}
                    }
                }
            }
            assert!(!to_client.is_empty(), "the exchange stalled");
            match client.handle_input(&to_client.concat()) {
                Ok(replies) => to_server = replies,
                Err(error) => break error,
            }
        };
        let ClientError::Refused {
            stage,
            code,
            description,
        } = error
        else {
            panic!("expected a refusal, got {error:?}");
        };
        assert_eq!(
            (stage, code.as_str()),
            ("publish", "NetStream.Publish.BadName")
        );
        assert_eq!(description, "No such stream.");
    }

    #[test]
    fn a_wrong_version_byte_from_the_server_is_an_error() {
        let mut client = ClientSession::new(config());
        client.start();
        let reply = vec![6u8; 1 + 2 * HANDSHAKE_PACKET_LEN];
        assert!(matches!(
            client.handle_input(&reply),
            Err(ClientError::Protocol(RtmpError::Handshake(_)))
        ));
    }

    #[test]
    fn pings_are_answered() {
        let mut client = ClientSession::new(config());
        client.start();
        client
            .handle_input(&vec![3u8; 1 + 2 * HANDSHAKE_PACKET_LEN])
            .unwrap();
        let mut ping = BytesMut::new();
        ChunkEncoder::default().encode(
            &ControlMessage::UserControl(UserControlEvent::PingRequest(77)).to_message(),
            &mut ping,
        );
        let replies = client.handle_input(&ping).unwrap();
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let mut bytes = BytesMut::from(&replies.concat()[..]);
        let message = decoder.decode(&mut bytes).unwrap().unwrap();
        assert_eq!(
            ControlMessage::parse(message.message_type, &message.payload),
            Some(Ok(ControlMessage::UserControl(
                UserControlEvent::PingResponse(77)
            )))
        );
    }

    #[test]
    fn urls_split_into_host_port_and_app() {
        let url = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.app.as_str()),
            (false, "a.rtmp.youtube.com", 1935, "live2")
        );
        let url = RtmpUrl::parse("rtmps://live-api-s.facebook.com:443/rtmp/").unwrap();
        assert_eq!((url.tls, url.port, url.app.as_str()), (true, 443, "rtmp"));
        assert_eq!(url.tc_url, "rtmps://live-api-s.facebook.com:443/rtmp");
        let url = RtmpUrl::parse("rtmp://[::1]:1936/app/inst").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.app.as_str()),
            ("::1", 1936, "app/inst")
        );
        assert_eq!(
            RtmpUrl::parse("http://x/app"),
            Err(RtmpUrlError::Scheme("http".into()))
        );
        assert_eq!(RtmpUrl::parse("rtmp://host"), Err(RtmpUrlError::NoApp));
        assert_eq!(
            RtmpUrl::parse("rtmp://u:p@host/app"),
            Err(RtmpUrlError::Extras)
        );
        assert!(matches!(
            RtmpUrl::parse("not a url"),
            Err(RtmpUrlError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn publisher_pushes_to_the_server_over_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, peer) = listener.accept().await.unwrap();
            let mut connection = RtmpConnection::new(socket, peer, ConnectionConfig::default());
            let mut events = Vec::new();
            while let Some(event) = connection.next_event().await.unwrap() {
                match event {
                    SessionEvent::PublishRequested { stream_key, .. } => {
                        assert_eq!(stream_key, "key-1");
                        connection.accept_publish().await.unwrap();
                    }
                    other => events.push(other),
                }
            }
            (events, connection.bytes_received())
        });
        let url = RtmpUrl::parse(&format!("rtmp://{address}/live")).unwrap();
        let tcp = TcpStream::connect(address).await.unwrap();
        let mut publisher = RtmpPublisher::publish(
            tcp,
            ClientConfig::new(&url, "key-1"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let avc = flv::avc_sequence_header(&sluice_media::fixtures::avc_320x240());
        publisher
            .send_media(MediaKind::Video, 0, avc)
            .await
            .unwrap();
        for i in 0..10 {
            let packet = video_packet(i * 40, i == 0);
            publisher
                .send_media(MediaKind::Video, (i * 40) as u64, flv::avc_frame(&packet))
                .await
                .unwrap();
        }
        let sent = publisher.bytes_sent();
        publisher.finish().await.unwrap();
        let (events, received) = server.await.unwrap();
        // Everything counted reached the server, followed by FCUnpublish and deleteStream.
        assert!(received > sent, "received {received} of {sent}");
        let packets: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Packet(p) => Some(p.dts),
                _ => None,
            })
            .collect();
        assert_eq!(packets, (0..10).map(|i| i * 40).collect::<Vec<_>>());
        assert!(events
            .iter()
            .any(|e| matches!(e, SessionEvent::PublishFinished { .. })));
    }
}
