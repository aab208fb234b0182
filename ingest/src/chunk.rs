//! RTMP chunk stream: decoder, encoder and protocol control messages (Adobe RTMP specification
//! 1.0, §5.3 "Chunking" and §5.4 "Protocol Control Messages", §6.2 "User Control Messages").
//!
//! The decoder is incremental with three outcomes: a whole message, "need more bytes" (`Ok(None)`,
//! nothing consumed from the partial chunk), or a [`ChunkError`] carrying the stream byte offset.
//! It only consumes whole chunks, so the buffer it reads from never has to hold more than one
//! chunk (at most the message length cap plus an 18-byte header) beyond what is already decoded.
//!
//! Limits (after MediaMTX): Set Chunk Size must be 1..=16 MiB with the top bit clear; a message
//! may not declare more than [`ChunkLimits::max_message_len`] (10 MiB by default); a type-1/2/3
//! chunk on a chunk stream that never had a type-0 chunk is refused; at most
//! [`ChunkLimits::max_chunk_streams`] chunk streams may be known at once; the partly received
//! messages of all chunk streams together may not hold more than
//! [`ChunkLimits::max_partial_bytes`] (12 MiB by default), so interleaving many large messages
//! cannot multiply the message cap. Payload buffers grow with what has arrived, never from the
//! declared length.
//!
//! Timestamps: 24-bit fields, with the 4-byte extended timestamp when the field is 0xFFFFFF,
//! repeated on type-3 chunks of such a message (as ffmpeg, librtmp and OBS send it). Deltas are
//! accumulated into a 64-bit millisecond clock per chunk stream, so nothing wraps at 2^24 ms
//! (4 h 39 min) or at 2^32 ms (49.7 days).

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The chunk size every RTMP connection starts with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size accepted from a peer (MediaMTX's bound; the spec allows 2^31 - 1).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Default message length cap.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 10 * 1024 * 1024;
/// Default cap on distinct chunk stream ids.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;
/// Default cap on the bytes of all partly received messages together: one maximal message plus
/// 2 MiB, room for a real encoder's interleaving of one audio and one video message.
pub const DEFAULT_MAX_PARTIAL_BYTES: usize = DEFAULT_MAX_MESSAGE_LEN as usize + 2 * 1024 * 1024;
/// A 24-bit timestamp field with this value means "read the extended timestamp".
const EXTENDED_TIMESTAMP_MARKER: u32 = 0x00FF_FFFF;

/// Errors raised by the chunk layer; offsets count bytes since the end of the handshake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error(
        "chunk at offset {offset}: message header type {fmt} on chunk stream {csid}, which never had a type-0 chunk"
    )]
    NoPreviousHeader { offset: u64, csid: u32, fmt: u8 },
    #[error("chunk at offset {offset}: message length {length} exceeds the cap of {max} bytes")]
    MessageTooLong { offset: u64, length: u32, max: u32 },
    #[error("chunk at offset {offset}: more than {max} chunk streams in use")]
    TooManyChunkStreams { offset: u64, max: usize },
    #[error("chunk at offset {offset} on chunk stream {csid}: partly received messages would hold {total} bytes, over the cap of {max}")]
    PartialMessagesTooLarge {
        offset: u64,
        csid: u32,
        total: usize,
        max: usize,
    },
    #[error("chunk at offset {offset}: a new message header on chunk stream {csid} interrupts a message with {missing} bytes missing")]
    InterruptedMessage {
        offset: u64,
        csid: u32,
        missing: u32,
    },
    #[error("invalid chunk size {size}: must be 1..={MAX_CHUNK_SIZE} with the top bit clear")]
    InvalidChunkSize { size: u32 },
    #[error("{message} payload is {len} bytes; expected {expected}")]
    BadControlMessage {
        message: &'static str,
        len: usize,
        expected: usize,
    },
}

/// Limits applied to the peer's chunk stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest message length accepted (default [`DEFAULT_MAX_MESSAGE_LEN`]).
    pub max_message_len: u32,
    /// Most chunk stream ids tracked at once (default [`DEFAULT_MAX_CHUNK_STREAMS`]).
    pub max_chunk_streams: usize,
    /// Most payload bytes held, across all chunk streams, for messages not yet complete (default
    /// [`DEFAULT_MAX_PARTIAL_BYTES`]). Keep it at least `max_message_len`, or messages near the
    /// length cap sent in several chunks cannot be received. Buffers grow amortised, so the
    /// memory behind them can reach about twice this.
    pub max_partial_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            max_partial_bytes: DEFAULT_MAX_PARTIAL_BYTES,
        }
    }
}

/// RTMP message type ids (§5.4, §6.2, §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    SetChunkSize,
    Abort,
    Acknowledgement,
    UserControl,
    WindowAckSize,
    SetPeerBandwidth,
    Audio,
    Video,
    DataAmf3,
    SharedObjectAmf3,
    CommandAmf3,
    DataAmf0,
    SharedObjectAmf0,
    CommandAmf0,
    Aggregate,
    Unknown(u8),
}

impl MessageType {
    /// The type id byte.
    pub fn id(self) -> u8 {
        match self {
            MessageType::SetChunkSize => 1,
            MessageType::Abort => 2,
            MessageType::Acknowledgement => 3,
            MessageType::UserControl => 4,
            MessageType::WindowAckSize => 5,
            MessageType::SetPeerBandwidth => 6,
            MessageType::Audio => 8,
            MessageType::Video => 9,
            MessageType::DataAmf3 => 15,
            MessageType::SharedObjectAmf3 => 16,
            MessageType::CommandAmf3 => 17,
            MessageType::DataAmf0 => 18,
            MessageType::SharedObjectAmf0 => 19,
            MessageType::CommandAmf0 => 20,
            MessageType::Aggregate => 22,
            MessageType::Unknown(id) => id,
        }
    }

    /// The type for an id byte.
    pub fn from_id(id: u8) -> Self {
        match id {
            1 => MessageType::SetChunkSize,
            2 => MessageType::Abort,
            3 => MessageType::Acknowledgement,
            4 => MessageType::UserControl,
            5 => MessageType::WindowAckSize,
            6 => MessageType::SetPeerBandwidth,
            8 => MessageType::Audio,
            9 => MessageType::Video,
            15 => MessageType::DataAmf3,
            16 => MessageType::SharedObjectAmf3,
            17 => MessageType::CommandAmf3,
            18 => MessageType::DataAmf0,
            19 => MessageType::SharedObjectAmf0,
            20 => MessageType::CommandAmf0,
            22 => MessageType::Aggregate,
            other => MessageType::Unknown(other),
        }
    }
}

/// One reassembled RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpMessage {
    /// The chunk stream it travelled on.
    pub chunk_stream_id: u32,
    /// Milliseconds on the 64-bit clock of its chunk stream.
    pub timestamp: u64,
    pub message_type: MessageType,
    /// The message stream id (0 for connection-level messages).
    pub stream_id: u32,
    pub payload: Bytes,
}

/// The header state remembered per chunk stream (§5.3.1.2).
#[derive(Debug)]
struct ChunkStream {
    length: u32,
    message_type: MessageType,
    stream_id: u32,
    /// The last delta (or, after a type-0 chunk, its timestamp: §5.3.1.2.4).
    delta: u32,
    clock: u64,
    /// Whether the last header carried an extended timestamp (then type-3 chunks do too).
    extended: bool,
    /// Payload received so far of the message in flight.
    partial: Option<BytesMut>,
}

/// The parts of a chunk header that a chunk carries (§5.3.1).
struct ParsedHeader {
    fmt: u8,
    csid: u32,
    timestamp_field: Option<u32>,
    length: Option<u32>,
    message_type: Option<MessageType>,
    stream_id: Option<u32>,
    /// Whether a 4-byte extended timestamp followed (then `timestamp_field` holds it).
    extended: bool,
    header_len: usize,
}

/// Reads the basic and message headers at the start of `buf`, if complete.
fn parse_header(buf: &[u8], extended_on_type3: impl Fn(u32) -> bool) -> Option<ParsedHeader> {
    let first = *buf.first()?;
    let fmt = first >> 6;
    let (csid, mut pos) = match first & 0x3F {
        0 => (64 + u32::from(*buf.get(1)?), 2),
        1 => (
            64 + u32::from(*buf.get(1)?) + 256 * u32::from(*buf.get(2)?),
            3,
        ),
        id => (u32::from(id), 1),
    };
    let be24 = |at: usize| -> Option<u32> {
        let b = buf.get(at..at + 3)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    };
    let be32 = |at: usize| -> Option<u32> {
        let b = buf.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut header = ParsedHeader {
        fmt,
        csid,
        timestamp_field: None,
        length: None,
        message_type: None,
        stream_id: None,
        extended: false,
        header_len: 0,
    };
    if fmt <= 2 {
        header.timestamp_field = Some(be24(pos)?);
        pos += 3;
    }
    if fmt <= 1 {
        header.length = Some(be24(pos)?);
        header.message_type = Some(MessageType::from_id(*buf.get(pos + 3)?));
        pos += 4;
    }
    if fmt == 0 {
        // The message stream id is the one little-endian field of RTMP.
        let b = buf.get(pos..pos + 4)?;
        header.stream_id = Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        pos += 4;
    }
    header.extended = match header.timestamp_field {
        Some(field) => field == EXTENDED_TIMESTAMP_MARKER,
        None => extended_on_type3(csid),
    };
    if header.extended {
        header.timestamp_field = Some(be32(pos)?);
        pos += 4;
    }
    header.header_len = pos;
    Some(header)
}

/// Reassembles messages from the peer's chunk stream.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, ChunkStream>,
    /// Payload bytes held in the `partial` buffers of all chunk streams.
    partial_bytes: usize,
    /// Bytes consumed so far, for error offsets.
    consumed: u64,
}

impl ChunkDecoder {
    /// A decoder at the default chunk size of 128.
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            partial_bytes: 0,
            consumed: 0,
        }
    }

    /// Applies new limits to what arrives from now on (a message already being received is
    /// held to them as its chunks come).
    pub fn set_limits(&mut self, limits: ChunkLimits) {
        self.limits = limits;
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        self.chunk_size = validate_chunk_size(size)?;
        Ok(())
    }

    /// Drops the partly received message on `csid` (Abort Message, §5.4.2).
    pub fn abort(&mut self, csid: u32) {
        if let Some(dropped) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.partial_bytes -= dropped.len();
        }
    }

    /// Decodes whole chunks from `buf` until one message completes (`Ok(Some)`) or the next chunk
    /// is incomplete (`Ok(None)`; the partial chunk is left in `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            let Some(header) = parse_header(buf, |csid| {
                self.streams.get(&csid).is_some_and(|s| s.extended)
            }) else {
                return Ok(None);
            };
            let offset = self.consumed;
            let known = self.streams.len();
            let stream = match self.streams.get_mut(&header.csid) {
                Some(stream) => stream,
                None => {
                    if header.fmt != 0 {
                        return Err(ChunkError::NoPreviousHeader {
                            offset,
                            csid: header.csid,
                            fmt: header.fmt,
                        });
                    }
                    if known >= self.limits.max_chunk_streams {
                        return Err(ChunkError::TooManyChunkStreams {
                            offset,
                            max: self.limits.max_chunk_streams,
                        });
                    }
                    self.streams.entry(header.csid).or_insert(ChunkStream {
                        length: 0,
                        message_type: MessageType::Unknown(0),
                        stream_id: 0,
                        delta: 0,
                        clock: 0,
                        extended: false,
                        partial: None,
                    })
                }
            };
            if let Some(length) = header.length {
                if length > self.limits.max_message_len {
                    return Err(ChunkError::MessageTooLong {
                        offset,
                        length,
                        max: self.limits.max_message_len,
                    });
                }
            }
            let continuing = header.fmt == 3 && stream.partial.is_some();
            let received = stream.partial.as_ref().map_or(0, |p| p.len() as u32);
            let length = if continuing {
                stream.length
            } else {
                if let Some(partial) = &stream.partial {
                    return Err(ChunkError::InterruptedMessage {
                        offset,
                        csid: header.csid,
                        missing: stream.length.saturating_sub(partial.len() as u32),
                    });
                }
                header.length.unwrap_or(stream.length)
            };
            let payload_len = length.saturating_sub(received).min(self.chunk_size) as usize;
            let completes = received as usize + payload_len >= length as usize;
            if !completes {
                // Checked before waiting for the chunk's payload, so it is refused at once.
                let total = self.partial_bytes.saturating_add(payload_len);
                if total > self.limits.max_partial_bytes {
                    return Err(ChunkError::PartialMessagesTooLarge {
                        offset,
                        csid: header.csid,
                        total,
                        max: self.limits.max_partial_bytes,
                    });
                }
            }
            let chunk_len = header.header_len + payload_len;
            if buf.len() < chunk_len {
                return Ok(None);
            }
            // The chunk is complete: commit its header to the stream state.
            if !continuing {
                stream.length = length;
                if let Some(message_type) = header.message_type {
                    stream.message_type = message_type;
                }
                if let Some(stream_id) = header.stream_id {
                    stream.stream_id = stream_id;
                }
                match (header.fmt, header.timestamp_field) {
                    (0, Some(absolute)) => {
                        stream.clock = extend_timestamp(stream.clock, absolute);
                        stream.delta = absolute;
                    }
                    (_, Some(delta)) => {
                        stream.delta = delta;
                        stream.clock = stream.clock.saturating_add(u64::from(delta));
                    }
                    (_, None) => {
                        stream.clock = stream.clock.saturating_add(u64::from(stream.delta));
                    }
                }
                // Type-3 chunks carry the extended field exactly when the last type-0/1/2
                // header had the 0xFFFFFF marker, whatever the extended value was (§5.3.1.3).
                if header.fmt != 3 {
                    stream.extended = header.extended;
                }
            }
            buf.advance(header.header_len);
            let piece = buf.split_to(payload_len);
            self.consumed += chunk_len as u64;
            let mut partial = stream.partial.take().unwrap_or_default();
            partial.extend_from_slice(&piece);
            if completes {
                self.partial_bytes -= received as usize;
                return Ok(Some(RtmpMessage {
                    chunk_stream_id: header.csid,
                    timestamp: stream.clock,
                    message_type: stream.message_type,
                    stream_id: stream.stream_id,
                    payload: partial.freeze(),
                }));
            }
            self.partial_bytes += payload_len;
            stream.partial = Some(partial);
        }
    }
}

/// The 64-bit time nearest to `previous` whose low 32 bits are the absolute timestamp of a
/// type-0 chunk: RTMP time is modulo 2^32 (§5.3.1.2.1), so a wrap moves forward and a small
/// step back stays a step back.
fn extend_timestamp(previous: u64, absolute: u32) -> u64 {
    let candidate = (previous & !0xFFFF_FFFF) | u64::from(absolute);
    [
        candidate.checked_sub(1 << 32),
        Some(candidate),
        candidate.checked_add(1 << 32),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|time| time.abs_diff(previous))
    .unwrap_or(candidate)
}

fn validate_chunk_size(size: u32) -> Result<u32, ChunkError> {
    if size == 0 || size & 0x8000_0000 != 0 || size > MAX_CHUNK_SIZE {
        return Err(ChunkError::InvalidChunkSize { size });
    }
    Ok(size)
}

/// Splits outgoing messages into chunks: a type-0 chunk then type-3 continuations.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkEncoder {
    /// Uses `size` for messages encoded from now on (send a Set Chunk Size first).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        self.chunk_size = validate_chunk_size(size)?;
        Ok(())
    }

    /// Appends `message` as chunks to `out`.
    pub fn encode(&self, message: &RtmpMessage, out: &mut BytesMut) {
        let csid = message.chunk_stream_id;
        // RTMP time is modulo 2^32 (§5.3.1.2.1); the peer's decoder unwraps it.
        let timestamp = message.timestamp as u32;
        let extended = timestamp >= EXTENDED_TIMESTAMP_MARKER;
        let mut first = true;
        let mut rest = &message.payload[..];
        loop {
            let fmt: u8 = if first { 0 } else { 3 };
            put_basic_header(out, fmt, csid);
            if first {
                out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP_MARKER)), 3);
                out.put_uint(rest.len() as u64, 3);
                out.put_u8(message.message_type.id());
                out.put_u32_le(message.stream_id);
            }
            if extended {
                out.put_u32(timestamp);
            }
            let take = rest.len().min(self.chunk_size as usize);
            out.put_slice(&rest[..take]);
            rest = &rest[take..];
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid.saturating_sub(64).min(0xFFFF);
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le(id as u16);
        }
    }
}

/// User Control event types (§6.2, §7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength { stream_id: u32, millis: u32 },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    Other { event_type: u16 },
}

/// Limit type of Set Peer Bandwidth (§5.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandwidthLimit {
    Hard,
    Soft,
    Dynamic,
}

/// Protocol control and user control messages (message stream 0, chunk stream 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    Abort { chunk_stream_id: u32 },
    Acknowledgement { sequence_number: u32 },
    WindowAckSize(u32),
    SetPeerBandwidth { size: u32, limit: BandwidthLimit },
    UserControl(UserControlEvent),
}

/// The chunk stream id the specification reserves for control messages.
pub const CONTROL_CHUNK_STREAM: u32 = 2;

impl ControlMessage {
    /// Parses a control message; `None` when `message_type` is not one.
    pub fn parse(message_type: MessageType, payload: &[u8]) -> Option<Result<Self, ChunkError>> {
        let u32_at = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let need = |message: &'static str, expected: usize| ChunkError::BadControlMessage {
            message,
            len: payload.len(),
            expected,
        };
        let parsed = match message_type {
            MessageType::SetChunkSize => u32_at(0)
                .ok_or(need("Set Chunk Size", 4))
                .map(ControlMessage::SetChunkSize),
            MessageType::Abort => u32_at(0)
                .ok_or(need("Abort", 4))
                .map(|chunk_stream_id| ControlMessage::Abort { chunk_stream_id }),
            MessageType::Acknowledgement => u32_at(0)
                .ok_or(need("Acknowledgement", 4))
                .map(|sequence_number| ControlMessage::Acknowledgement { sequence_number }),
            MessageType::WindowAckSize => u32_at(0)
                .ok_or(need("Window Acknowledgement Size", 4))
                .map(ControlMessage::WindowAckSize),
            MessageType::SetPeerBandwidth => match (u32_at(0), payload.get(4)) {
                (Some(size), Some(&limit)) => Ok(ControlMessage::SetPeerBandwidth {
                    size,
                    limit: match limit {
                        0 => BandwidthLimit::Hard,
                        1 => BandwidthLimit::Soft,
                        _ => BandwidthLimit::Dynamic,
                    },
                }),
                _ => Err(need("Set Peer Bandwidth", 5)),
            },
            MessageType::UserControl => {
                let Some(event_type) = payload.get(0..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
                else {
                    return Some(Err(need("User Control", 2)));
                };
                let value = || u32_at(2).ok_or(need("User Control", 6));
                let event = match event_type {
                    0 => value().map(UserControlEvent::StreamBegin),
                    1 => value().map(UserControlEvent::StreamEof),
                    2 => value().map(UserControlEvent::StreamDry),
                    3 => match (u32_at(2), u32_at(6)) {
                        (Some(stream_id), Some(millis)) => {
                            Ok(UserControlEvent::SetBufferLength { stream_id, millis })
                        }
                        _ => Err(need("User Control SetBufferLength", 10)),
                    },
                    4 => value().map(UserControlEvent::StreamIsRecorded),
                    6 => value().map(UserControlEvent::PingRequest),
                    7 => value().map(UserControlEvent::PingResponse),
                    other => Ok(UserControlEvent::Other { event_type: other }),
                };
                event.map(ControlMessage::UserControl)
            }
            _ => return None,
        };
        Some(parsed)
    }

    /// The message as it goes on the wire (chunk stream 2, message stream 0, time 0).
    pub fn to_message(self) -> RtmpMessage {
        let mut payload = BytesMut::with_capacity(10);
        let message_type = match self {
            ControlMessage::SetChunkSize(size) => {
                payload.put_u32(size);
                MessageType::SetChunkSize
            }
            ControlMessage::Abort { chunk_stream_id } => {
                payload.put_u32(chunk_stream_id);
                MessageType::Abort
            }
            ControlMessage::Acknowledgement { sequence_number } => {
                payload.put_u32(sequence_number);
                MessageType::Acknowledgement
            }
            ControlMessage::WindowAckSize(size) => {
                payload.put_u32(size);
                MessageType::WindowAckSize
            }
            ControlMessage::SetPeerBandwidth { size, limit } => {
                payload.put_u32(size);
                payload.put_u8(match limit {
                    BandwidthLimit::Hard => 0,
                    BandwidthLimit::Soft => 1,
                    BandwidthLimit::Dynamic => 2,
                });
                MessageType::SetPeerBandwidth
            }
            ControlMessage::UserControl(event) => {
                let (event_type, values): (u16, &[u32]) = match event {
                    UserControlEvent::StreamBegin(id) => (0, &[id]),
                    UserControlEvent::StreamEof(id) => (1, &[id]),
                    UserControlEvent::StreamDry(id) => (2, &[id]),
                    UserControlEvent::SetBufferLength { stream_id, millis } => {
                        (3, &[stream_id, millis])
                    }
                    UserControlEvent::StreamIsRecorded(id) => (4, &[id]),
                    UserControlEvent::PingRequest(t) => (6, &[t]),
                    UserControlEvent::PingResponse(t) => (7, &[t]),
                    UserControlEvent::Other { event_type } => (event_type, &[]),
                };
                payload.put_u16(event_type);
                for value in values {
                    payload.put_u32(*value);
                }
                MessageType::UserControl
            }
        };
        RtmpMessage {
            chunk_stream_id: CONTROL_CHUNK_STREAM,
            timestamp: 0,
            message_type,
            stream_id: 0,
            payload: payload.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(csid: u32, timestamp: u64, len: usize) -> RtmpMessage {
        RtmpMessage {
            chunk_stream_id: csid,
            timestamp,
            message_type: MessageType::Video,
            stream_id: 1,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    fn decode_all(
        decoder: &mut ChunkDecoder,
        bytes: &[u8],
    ) -> Result<Vec<RtmpMessage>, ChunkError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = decoder.decode(&mut buf)? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn encoded_messages_decode_back_at_every_split_point() {
        let mut encoder = ChunkEncoder::default();
        let mut wire = BytesMut::new();
        let sent = vec![
            message(4, 0, 300),
            message(64, 1000, 10),
            message(400, 0x0100_0000, 129),
            message(6, 0, 0),
        ];
        for m in &sent {
            encoder.encode(m, &mut wire);
        }
        encoder.set_chunk_size(4096).unwrap();
        for split in 0..wire.len() {
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            let mut buf = BytesMut::from(&wire[..split]);
            let mut got = Vec::new();
            while let Some(m) = decoder.decode(&mut buf).unwrap() {
                got.push(m);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(m) = decoder.decode(&mut buf).unwrap() {
                got.push(m);
            }
            assert_eq!(got, sent, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn golden_chunks_with_type_1_2_3_headers_accumulate_time() {
        // Spec §5.3.2.1 example 1: four audio messages on csid 3, 32 bytes each, 1000 then +20s.
        let mut wire = vec![0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 1, 0, 0, 0];
        wire.extend_from_slice(&[0xAA; 32]);
        wire.extend_from_slice(&[0x83, 0x00, 0x00, 0x14]); // type 2, delta 20
        wire.extend_from_slice(&[0xBB; 32]);
        wire.push(0xC3); // type 3: same delta
        wire.extend_from_slice(&[0xCC; 32]);
        wire.push(0xC3);
        wire.extend_from_slice(&[0xDD; 32]);
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut decoder, &wire).unwrap();
        let times: Vec<u64> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(times, [1000, 1020, 1040, 1060]);
        assert!(got
            .iter()
            .all(|m| m.message_type == MessageType::Audio && m.stream_id == 1));
        assert_eq!(got[3].payload, Bytes::from(vec![0xDD; 32]));
    }

    #[test]
    fn type_3_after_type_0_repeats_the_type_0_timestamp_as_delta() {
        let mut wire = vec![
            0x04, 0x00, 0x00, 0x21, 0x00, 0x00, 0x01, 0x09, 1, 0, 0, 0, 0xAB,
        ];
        wire.extend_from_slice(&[0xC4, 0xCD]);
        let got = decode_all(&mut ChunkDecoder::new(ChunkLimits::default()), &wire).unwrap();
        assert_eq!(got[0].timestamp, 33);
        assert_eq!(got[1].timestamp, 66);
    }

    #[test]
    fn extended_timestamps_are_read_on_type_3_continuation_chunks() {
        // 200-byte message with chunk size 128 and the 0xFFFFFF marker: the continuation chunk
        // repeats the 4-byte extended timestamp, as ffmpeg and OBS send it. The field follows
        // the marker even when its value (5) would have fitted in 24 bits (§5.3.1.3), so it
        // must never be read as payload.
        for extended in [0x0100_0000u32, 5] {
            let mut wire = vec![0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x09, 1, 0, 0, 0];
            wire.extend_from_slice(&extended.to_be_bytes());
            wire.extend_from_slice(&[1; 128]);
            wire.push(0xC6);
            wire.extend_from_slice(&extended.to_be_bytes());
            wire.extend_from_slice(&[2; 72]);
            let got = decode_all(&mut ChunkDecoder::new(ChunkLimits::default()), &wire).unwrap();
            assert_eq!(got.len(), 1, "extended {extended}");
            assert_eq!(got[0].timestamp, u64::from(extended));
            assert_eq!(got[0].payload.len(), 200);
            assert!(
                got[0].payload[128..].iter().all(|&b| b == 2),
                "extended {extended}"
            );
        }
    }

    #[test]
    fn deltas_past_2_pow_24_and_2_pow_32_ms_keep_counting_up() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let mut wire = vec![0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x09, 1, 0, 0, 0];
        wire.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        wire.push(0);
        // Type 1 with delta 0x20 (crosses 2^32) then type 0 with a wrapped absolute time.
        wire.extend_from_slice(&[0x46, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x09, 0]);
        wire.extend_from_slice(&[
            0x06, 0x00, 0x00, 0x40, 0x00, 0x00, 0x01, 0x09, 1, 0, 0, 0, 0,
        ]);
        let got = decode_all(&mut decoder, &wire).unwrap();
        let times: Vec<u64> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(times, [0xFFFF_FFF0, 0x1_0000_0010, 0x1_0000_0040]);
    }

    #[test]
    fn chunk_on_a_never_opened_chunk_stream_is_refused() {
        for first in [0x45u8, 0x85, 0xC5] {
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            let err = decode_all(&mut decoder, &[first, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0]).unwrap_err();
            assert!(matches!(
                err,
                ChunkError::NoPreviousHeader {
                    csid: 5,
                    offset: 0,
                    ..
                }
            ));
        }
    }

    #[test]
    fn declared_length_over_the_cap_is_refused_before_any_payload() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let header = [0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x09, 1, 0, 0, 0];
        assert_eq!(
            decode_all(&mut decoder, &header),
            Err(ChunkError::MessageTooLong {
                offset: 0,
                length: 0xFF_FFFF,
                max: DEFAULT_MAX_MESSAGE_LEN
            })
        );
    }

    #[test]
    fn invalid_chunk_sizes_are_refused() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        for size in [0, 0x8000_0000, MAX_CHUNK_SIZE + 1] {
            assert_eq!(
                decoder.set_chunk_size(size),
                Err(ChunkError::InvalidChunkSize { size })
            );
        }
        assert_eq!(decoder.set_chunk_size(MAX_CHUNK_SIZE), Ok(()));
    }

    #[test]
    fn too_many_chunk_streams_are_refused() {
        let limits = ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        let mut wire = Vec::new();
        for csid in 3..6u8 {
            wire.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
        }
        let err = decode_all(&mut decoder, &wire).unwrap_err();
        assert_eq!(err, ChunkError::TooManyChunkStreams { offset: 26, max: 2 });
    }

    /// A type-0 chunk header on `csid` opening a video message of `length` bytes.
    fn type_0_header(csid: u8, length: u32) -> Vec<u8> {
        let mut header = vec![csid, 0, 0, 0];
        header.extend_from_slice(&length.to_be_bytes()[1..]);
        header.extend_from_slice(&[0x09, 1, 0, 0, 0]);
        header
    }

    #[test]
    fn many_chunk_streams_opening_large_messages_are_refused_past_the_partial_cap() {
        const MIB: usize = 1024 * 1024;
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.set_chunk_size(MIB as u32).unwrap();
        // Every one-byte chunk stream id starts a maximal message with a 1 MiB chunk: 610 MiB
        // held if allowed.
        let mut wire = Vec::new();
        for csid in 3..64u8 {
            wire.extend_from_slice(&type_0_header(csid, DEFAULT_MAX_MESSAGE_LEN));
            wire.resize(wire.len() + MIB, 0);
        }
        let err = decode_all(&mut decoder, &wire).unwrap_err();
        // Twelve chunks fill the 12 MiB cap exactly; the thirteenth is refused at its header.
        assert_eq!(
            err,
            ChunkError::PartialMessagesTooLarge {
                offset: 12 * (12 + MIB as u64),
                csid: 15,
                total: 13 * MIB,
                max: DEFAULT_MAX_PARTIAL_BYTES,
            }
        );
        let mut header_only = BytesMut::from(&type_0_header(15, DEFAULT_MAX_MESSAGE_LEN)[..]);
        assert_eq!(decoder.decode(&mut header_only), Err(err));
    }

    #[test]
    fn completed_and_aborted_messages_release_their_partial_bytes() {
        let limits = ChunkLimits {
            max_partial_bytes: 300,
            ..ChunkLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        let first_chunk = |csid: u8| {
            let mut chunk = type_0_header(csid, 256);
            chunk.extend_from_slice(&[csid; 128]);
            chunk
        };
        // Two messages half received: 256 bytes held.
        let mut wire = first_chunk(4);
        wire.extend_from_slice(&first_chunk(5));
        assert!(decode_all(&mut decoder, &wire).unwrap().is_empty());
        // Completing the one on csid 4 and aborting the one on csid 5 frees both.
        let mut rest = vec![0xC4];
        rest.extend_from_slice(&[4; 128]);
        assert_eq!(decode_all(&mut decoder, &rest).unwrap().len(), 1);
        decoder.abort(5);
        let mut wire = first_chunk(6);
        wire.extend_from_slice(&first_chunk(7));
        assert!(decode_all(&mut decoder, &wire).unwrap().is_empty());
        assert!(matches!(
            decode_all(&mut decoder, &first_chunk(8)),
            Err(ChunkError::PartialMessagesTooLarge {
                csid: 8,
                total: 384,
                max: 300,
                ..
            })
        ));
    }

    #[test]
    fn a_maximal_message_in_default_size_chunks_fits_the_partial_cap() {
        let mut wire = BytesMut::new();
        let sent = message(4, 0, DEFAULT_MAX_MESSAGE_LEN as usize);
        ChunkEncoder::default().encode(&sent, &mut wire);
        let got = decode_all(&mut ChunkDecoder::new(ChunkLimits::default()), &wire).unwrap();
        assert_eq!(got, [sent]);
    }

    #[test]
    fn abort_discards_the_partial_message() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let mut wire = vec![0x04, 0, 0, 0, 0, 0x01, 0x00, 0x09, 1, 0, 0, 0];
        wire.extend_from_slice(&[0; 128]);
        assert!(decode_all(&mut decoder, &wire).unwrap().is_empty());
        decoder.abort(4);
        let next = [0x04, 0, 0, 0, 0, 0, 1, 0x09, 1, 0, 0, 0, 7];
        let got = decode_all(&mut decoder, &next).unwrap();
        assert_eq!(got[0].payload, Bytes::from_static(&[7]));
    }

    #[test]
    fn control_messages_round_trip() {
        let all = [
            ControlMessage::SetChunkSize(4096),
            ControlMessage::Abort { chunk_stream_id: 4 },
            ControlMessage::Acknowledgement { sequence_number: 9 },
            ControlMessage::WindowAckSize(2_500_000),
            ControlMessage::SetPeerBandwidth {
                size: 2_500_000,
                limit: BandwidthLimit::Dynamic,
            },
            ControlMessage::UserControl(UserControlEvent::StreamBegin(1)),
            ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
        ];
        for control in all {
            let message = control.to_message();
            assert_eq!(
                ControlMessage::parse(message.message_type, &message.payload),
                Some(Ok(control))
            );
        }
        assert!(matches!(
            ControlMessage::parse(MessageType::SetChunkSize, &[0, 0]),
            Some(Err(ChunkError::BadControlMessage { .. }))
        ));
        assert_eq!(ControlMessage::parse(MessageType::Video, &[]), None);
    }
}
