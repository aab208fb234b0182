//! RTMP ingest for Sluice: the server side of an RTMP publish, from TCP bytes to
//! `sluice_media` [`Track`](sluice_media::TrackInfo)s and [`Packet`](sluice_media::Packet)s.
//!
//! Layers, each its own module, each sans-IO except the last:
//!
//! * [`handshake`]: C0/C1/C2 ↔ S0/S1/S2, simple and Flash digest (RTMP spec 1.0 §5.2);
//! * [`chunk`]: chunk stream decoding/encoding and protocol control messages (§5.3, §5.4, §6.2);
//! * [`amf0`]: AMF0 values (AMF0 specification);
//! * [`flv`]: FLV audio/video tag bodies and Enhanced RTMP FourCC tags (FLV v10.1 annex E);
//! * [`session`]: [`ServerSession`], the command state machine (§7.2) raising [`SessionEvent`]s;
//! * [`net`]: [`RtmpConnection`], the server's socket edge (tokio);
//! * [`client`]: [`ClientSession`] and its driver [`RtmpPublisher`], the same protocol code
//!   publishing to another server (restreaming), over TCP or TLS.
//!
//! Beside RTMP, [`whip`] holds WHIP signalling as the HTTP side and the media plane exchange
//! it (the offer's first check, the answer, the refusals), without I/O.
//!
//! **Why hand-written.** `rml_rtmp` was the model for the session API, but it is unmaintained
//! since 2021, allocates from peer-declared lengths, has no message size cap or chunk stream cap
//! and does not accept extended timestamps on type-3 continuation chunks the way ffmpeg and OBS
//! send them; the limits Sluice needs (MediaMTX's) could not be added from outside. RTMP is small
//! enough to own: every parser here is incremental, bounds-checked, split-point tested and
//! fuzzed (`fuzz/`).
//!
//! **Memory per connection.** What one peer can make the server hold is bounded by
//! [`SessionConfig::max_buffered_input`] (undecoded input, 11 MiB by default) plus
//! [`ChunkLimits::max_partial_bytes`] (partly received messages across all chunk streams,
//! 12 MiB by default); within those, [`ChunkLimits::max_message_len`] caps one message (10 MiB),
//! [`ChunkLimits::max_chunk_streams`] the chunk streams tracked (64) and
//! [`SessionConfig::max_streams`] the message streams (8). Nothing is allocated from a length
//! the peer declared.
//!
//! Policy stays with the application: a publish raises [`SessionEvent::PublishRequested`] and the
//! caller accepts or rejects it.

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod flv;
pub mod handshake;
pub mod net;
pub mod peers;
pub mod session;
pub mod whip;

pub use amf0::{Amf0Error, Amf0Value};
pub use chunk::{ChunkError, ChunkLimits, MessageType};
pub use client::{
    tls_connect, ClientConfig, ClientError, ClientSession, MediaKind, RtmpPublisher, RtmpUrl,
    RtmpUrlError,
};
pub use flv::{FlvError, FlvTag};
pub use handshake::HandshakeError;
pub use net::{ConnectionConfig, IngestError, RtmpConnection, TimeoutPhase};
pub use session::{
    PublishMode, ServerSession, SessionConfig, SessionEvent, SessionOutput, StreamMetadata,
};

/// Everything that can go wrong in the RTMP protocol layers (all sans-IO).
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("AMF0 in a {message_type:?} message: {source}")]
    Amf0 {
        message_type: MessageType,
        #[source]
        source: Amf0Error,
    },
    #[error("media tag on stream {stream_id} at {timestamp} ms: {source}")]
    Flv {
        stream_id: u32,
        timestamp: u64,
        #[source]
        source: FlvError,
    },
    #[error("malformed {command:?} command: {reason}")]
    MalformedCommand { command: String, reason: String },
    #[error("command {command:?} before connect")]
    NotConnected { command: String },
    #[error("{message_type:?} message for message stream {stream_id}, which was never created")]
    UnknownStream {
        stream_id: u32,
        message_type: MessageType,
    },
    #[error("media on message stream {stream_id} before a publish was accepted on it")]
    MediaBeforePublish { stream_id: u32 },
    #[error("more than {max} message streams created")]
    TooManyStreams { max: usize },
    #[error("more than {limit} bytes of input buffered")]
    InputBufferFull { limit: usize },
}
