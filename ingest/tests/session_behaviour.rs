//! Behaviour of `ServerSession` against hand-built clients: the OBS command sequence, the
//! replies a client waits for, and bad input of every kind the field has seen.

use bytes::{Bytes, BytesMut};
use sluice_ingest::chunk::{ChunkDecoder, ChunkEncoder, ControlMessage, RtmpMessage};
use sluice_ingest::{
    amf0, Amf0Error, Amf0Value, ChunkError, ChunkLimits, HandshakeError, MessageType, PublishMode,
    RtmpError, ServerSession, SessionConfig, SessionEvent, SessionOutput,
};
use sluice_media::{AudioCodec, TrackInfo, TrackKind};

/// A client that speaks the simple handshake and sends what tests ask, chunked at 128 bytes.
struct Client {
    encoder: ChunkEncoder,
}

impl Client {
    fn new() -> Self {
        Client {
            encoder: ChunkEncoder::default(),
        }
    }

    fn handshake() -> Vec<u8> {
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(&[0u8; 1536]); // C1: time 0, version 0 → simple handshake
        bytes.extend_from_slice(&[0x5Au8; 1536]); // C2: not S1; the server must not care
        bytes
    }

    fn message(
        &self,
        csid: u32,
        stream_id: u32,
        message_type: MessageType,
        ts: u64,
        payload: Bytes,
    ) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.encoder.encode(
            &RtmpMessage {
                chunk_stream_id: csid,
                timestamp: ts,
                message_type,
                stream_id,
                payload,
            },
            &mut out,
        );
        out.to_vec()
    }

    fn command(&self, stream_id: u32, values: &[Amf0Value]) -> Vec<u8> {
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.message(
            csid,
            stream_id,
            MessageType::CommandAmf0,
            0,
            amf0::encode_all(values),
        )
    }

    fn control(&self, control: ControlMessage) -> Vec<u8> {
        let m = control.to_message();
        self.message(2, 0, m.message_type, 0, m.payload)
    }

    /// OBS's connect (librtmp's SendConnectPacket as OBS configures it).
    fn obs_connect(&self) -> Vec<u8> {
        self.command(
            0,
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::object([
                    ("app", Amf0Value::string("live")),
                    ("type", Amf0Value::string("nonprivate")),
                    (
                        "flashVer",
                        Amf0Value::string("FMLE/3.0 (compatible; FMSc/1.0)"),
                    ),
                    ("swfUrl", Amf0Value::string("rtmp://example.com/live")),
                    ("tcUrl", Amf0Value::string("rtmp://example.com/live")),
                ]),
            ],
        )
    }

    /// releaseStream, FCPublish, createStream, publish "key" "live", as OBS sends them.
    fn obs_publish(&self, key: &str) -> Vec<u8> {
        let call = |name: &str, txn: f64, args: &[Amf0Value]| {
            let mut values = vec![
                Amf0Value::string(name),
                Amf0Value::Number(txn),
                Amf0Value::Null,
            ];
            values.extend_from_slice(args);
            values
        };
        [
            self.command(0, &call("releaseStream", 2.0, &[Amf0Value::string(key)])),
            self.command(0, &call("FCPublish", 3.0, &[Amf0Value::string(key)])),
            self.command(0, &call("createStream", 4.0, &[])),
            self.command(
                1,
                &call(
                    "publish",
                    5.0,
                    &[Amf0Value::string(key), Amf0Value::string("live")],
                ),
            ),
        ]
        .concat()
    }

    fn video(&self, ts: u64, body: Vec<u8>) -> Vec<u8> {
        self.message(6, 1, MessageType::Video, ts, Bytes::from(body))
    }

    fn audio(&self, ts: u64, body: Vec<u8>) -> Vec<u8> {
        self.message(4, 1, MessageType::Audio, ts, Bytes::from(body))
    }
}

fn events(outputs: &[SessionOutput]) -> Vec<SessionEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            SessionOutput::Event(e) => Some(e.clone()),
            SessionOutput::Transmit(_) => None,
        })
        .collect()
}

/// Decodes what the server sent (skipping S0/S1/S2 when present) into AMF0 command values.
fn sent_commands(outputs: &[SessionOutput], skip: usize) -> Vec<Vec<Amf0Value>> {
    let mut wire = BytesMut::new();
    for o in outputs {
        if let SessionOutput::Transmit(b) = o {
            wire.extend_from_slice(b);
        }
    }
    let _ = wire.split_to(skip.min(wire.len()));
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut commands = Vec::new();
    while let Some(m) = decoder.decode(&mut wire).unwrap() {
        if let Some(Ok(ControlMessage::SetChunkSize(size))) =
            ControlMessage::parse(m.message_type, &m.payload)
        {
            decoder.set_chunk_size(size).unwrap();
        }
        if m.message_type == MessageType::CommandAmf0 {
            commands.push(amf0::decode_all(&m.payload).unwrap());
        }
    }
    commands
}

fn status_code(command: &[Amf0Value]) -> Option<&str> {
    command.get(3)?.get("code")?.as_str()
}

/// A session fed the handshake and OBS's connect/publish sequence for `key`, with what it
/// answered.
fn session_requesting_publish(client: &Client, key: &str) -> (ServerSession, Vec<SessionOutput>) {
    let mut session = ServerSession::new(SessionConfig::default());
    let input = [
        Client::handshake(),
        client.obs_connect(),
        client.obs_publish(key),
    ]
    .concat();
    let outputs = session.handle_input(&input).unwrap();
    (session, outputs)
}

/// A session that has completed the OBS sequence up to an accepted publish.
fn publishing_session(client: &Client) -> ServerSession {
    let (mut session, _) = session_requesting_publish(client, "key");
    session.accept_publish();
    session
}

#[test]
fn obs_sequence_connects_and_requests_publish() {
    let client = Client::new();
    let (mut session, outputs) = session_requesting_publish(&client, "key");
    assert_eq!(
        events(&outputs),
        vec![
            SessionEvent::Connected {
                app: "live".into(),
                tc_url: Some("rtmp://example.com/live".into()),
                flash_ver: Some("FMLE/3.0 (compatible; FMSc/1.0)".into()),
            },
            SessionEvent::PublishRequested {
                app: "live".into(),
                stream_key: "key".into(),
                mode: PublishMode::Live,
                stream_id: 1,
            },
        ]
    );
    let commands = sent_commands(&outputs, 1 + 2 * 1536);
    assert_eq!(commands[0][0].as_str(), Some("_result"));
    assert_eq!(
        status_code(&commands[0]),
        Some("NetConnection.Connect.Success")
    );
    let create = commands
        .iter()
        .find(|c| c[1].as_number() == Some(4.0))
        .expect("createStream answered");
    assert_eq!(create[3], Amf0Value::Number(1.0));
    assert!(commands
        .iter()
        .any(|c| c[0].as_str() == Some("onFCPublish")));
    let input_len =
        Client::handshake().len() + client.obs_connect().len() + client.obs_publish("key").len();
    assert_eq!(session.bytes_received(), input_len as u64);

    let accepted = session.accept_publish();
    let status = sent_commands(&accepted, 0);
    assert_eq!(status_code(&status[0]), Some("NetStream.Publish.Start"));
}

#[test]
fn rejected_publish_gets_bad_name_and_media_is_then_refused() {
    let client = Client::new();
    let (mut session, _) = session_requesting_publish(&client, "key");
    let rejected = session.reject_publish("unknown stream key");
    let status = sent_commands(&rejected, 0);
    assert_eq!(status_code(&status[0]), Some("NetStream.Publish.BadName"));
    assert_eq!(
        status[0][3].get("level").and_then(Amf0Value::as_str),
        Some("error")
    );
    let err = session
        .handle_input(&client.video(0, vec![0x17, 1, 0, 0, 0]))
        .unwrap_err();
    assert!(
        matches!(err, RtmpError::MediaBeforePublish { stream_id: 1 }),
        "{err}"
    );
}

#[test]
fn input_after_a_publish_request_waits_for_the_decision() {
    let client = Client::new();
    let mut session = ServerSession::new(SessionConfig::default());
    let input = [
        Client::handshake(),
        client.obs_connect(),
        client.obs_publish("key"),
        client.video(40, vec![0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
    ]
    .concat();
    let before = events(&session.handle_input(&input).unwrap());
    assert!(matches!(
        before.last(),
        Some(SessionEvent::PublishRequested { .. })
    ));
    session.accept_publish();
    let after = events(&session.handle_input(&[]).unwrap());
    let [SessionEvent::Packet(packet)] = &after[..] else {
        panic!("expected one packet, got {after:?}");
    };
    assert_eq!(packet.dts, 40);
}

#[test]
fn publish_with_an_empty_stream_key_is_refused_without_an_event() {
    let client = Client::new();
    let (_, outputs) = session_requesting_publish(&client, "");
    assert!(!events(&outputs)
        .iter()
        .any(|e| matches!(e, SessionEvent::PublishRequested { .. })));
    let commands = sent_commands(&outputs, 1 + 2 * 1536);
    assert!(commands
        .iter()
        .any(|c| status_code(c) == Some("NetStream.Publish.BadName")));
}

#[test]
fn unknown_commands_are_answered_with_error() {
    let client = Client::new();
    let mut session = ServerSession::new(SessionConfig::default());
    session
        .handle_input(&[Client::handshake(), client.obs_connect()].concat())
        .unwrap();
    let outputs = session
        .handle_input(&client.command(
            0,
            &[
                Amf0Value::string("_checkbw"),
                Amf0Value::Number(7.0),
                Amf0Value::Null,
            ],
        ))
        .unwrap();
    let commands = sent_commands(&outputs, 0);
    assert_eq!(commands[0][0].as_str(), Some("_error"));
    assert_eq!(commands[0][1].as_number(), Some(7.0));
    // Without a transaction id there is nothing to answer.
    let outputs = session
        .handle_input(&client.command(
            0,
            &[Amf0Value::string("onWhatever"), Amf0Value::Number(0.0)],
        ))
        .unwrap();
    assert!(outputs.is_empty());
}

#[test]
fn garbage_instead_of_c0_is_a_handshake_error() {
    let mut session = ServerSession::new(SessionConfig::default());
    let err = session
        .handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap_err();
    assert!(matches!(
        err,
        RtmpError::Handshake(HandshakeError::UnsupportedVersion { version: b'G' })
    ));
}

#[test]
fn handshake_stopped_half_way_yields_nothing() {
    let handshake = Client::handshake();
    for end in [1, 700, 1537, 1537 + 1000] {
        let mut session = ServerSession::new(SessionConfig::default());
        let outputs = session.handle_input(&handshake[..end]).unwrap();
        assert!(events(&outputs).is_empty());
        assert_eq!(outputs.len(), usize::from(end >= 1537), "cut at {end}");
        assert!(!session.handshake_done());
    }
}

fn session_after_handshake() -> ServerSession {
    let mut session = ServerSession::new(SessionConfig::default());
    session.handle_input(&Client::handshake()).unwrap();
    session
}

#[test]
fn chunk_size_zero_and_2_pow_31_are_refused() {
    let client = Client::new();
    for size in [0u32, 0x8000_0000] {
        let mut session = session_after_handshake();
        let err = session
            .handle_input(&client.control(ControlMessage::SetChunkSize(size)))
            .unwrap_err();
        assert!(
            matches!(err, RtmpError::Chunk(ChunkError::InvalidChunkSize { size: s }) if s == size),
            "{err}"
        );
    }
}

#[test]
fn declared_message_length_of_16_mib_is_refused() {
    let mut session = session_after_handshake();
    let header = [0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x09, 1, 0, 0, 0];
    let err = session.handle_input(&header).unwrap_err();
    assert!(
        matches!(
            err,
            RtmpError::Chunk(ChunkError::MessageTooLong {
                length: 0xFF_FFFF,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn before_a_publish_is_accepted_only_small_messages_are_taken() {
    let pre_publish = SessionConfig::DEFAULT_PRE_PUBLISH_CHUNK_LIMITS.max_message_len;
    // A message of 1 MiB announced before any publish: refused at its header.
    let mut session = session_after_handshake();
    let header = [0x04, 0, 0, 0, 0x10, 0, 0, 0x09, 1, 0, 0, 0];
    let err = session.handle_input(&header).unwrap_err();
    assert!(
        matches!(err, RtmpError::Chunk(ChunkError::MessageTooLong { length: 0x10_0000, max, .. }) if max == pre_publish),
        "{err}"
    );

    // Media piling up while the publish decision is pending: refused past the small buffer.
    let client = Client::new();
    let (mut session, _) = session_requesting_publish(&client, "key");
    let flood = client.video(40, vec![0x27; 60 * 1024]);
    let mut refused = None;
    for _ in 0..8 {
        if let Err(err) = session.handle_input(&flood) {
            refused = Some(err);
            break;
        }
    }
    assert!(
        matches!(refused, Some(RtmpError::InputBufferFull { limit }) if limit == SessionConfig::DEFAULT_PRE_PUBLISH_MAX_BUFFERED_INPUT),
        "{refused:?}"
    );

    // Once accepted, media-sized messages go through.
    let mut session = publishing_session(&client);
    let big = client.video(80, [vec![0x17, 1, 0, 0, 0], vec![0; 1024 * 1024]].concat());
    let outputs = session.handle_input(&big).unwrap();
    assert!(
        events(&outputs).iter().any(|event| matches!(event, SessionEvent::Packet(packet) if packet.data.len() > 1024 * 1024 - 16)),
        "a 1 MiB frame arrives after the publish is accepted"
    );
}

#[test]
fn chunk_for_a_never_opened_chunk_stream_is_refused() {
    for first in [0x44u8, 0x84, 0xC4] {
        let mut session = session_after_handshake();
        let err = session
            .handle_input(&[first, 0, 0, 0, 0, 0, 1, 9, 0])
            .unwrap_err();
        assert!(
            matches!(
                err,
                RtmpError::Chunk(ChunkError::NoPreviousHeader { csid: 4, .. })
            ),
            "{err}"
        );
    }
}

#[test]
fn media_for_a_stream_never_created_is_refused() {
    let client = Client::new();
    let mut session = session_after_handshake();
    session.handle_input(&client.obs_connect()).unwrap();
    let err = session
        .handle_input(&client.video(0, vec![0x17, 1, 0, 0, 0]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            RtmpError::UnknownStream {
                stream_id: 1,
                message_type: MessageType::Video
            }
        ),
        "{err}"
    );
}

#[test]
fn commands_before_connect_are_refused() {
    let client = Client::new();
    let mut session = session_after_handshake();
    let err = session
        .handle_input(&client.obs_publish("key"))
        .unwrap_err();
    assert!(matches!(err, RtmpError::NotConnected { .. }), "{err}");
}

#[test]
fn deeply_nested_amf_is_refused() {
    let client = Client::new();
    let mut session = session_after_handshake();
    let mut body =
        amf0::encode_all(&[Amf0Value::string("connect"), Amf0Value::Number(1.0)]).to_vec();
    for _ in 0..200 {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    let input = client.message(3, 0, MessageType::CommandAmf0, 0, Bytes::from(body));
    let err = session.handle_input(&input).unwrap_err();
    assert!(
        matches!(
            err,
            RtmpError::Amf0 {
                source: Amf0Error::TooDeep { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_amf_commands_are_errors_never_panics() {
    let client = Client::new();
    let full = amf0::encode_all(&[
        Amf0Value::string("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("tcUrl", Amf0Value::string("rtmp://example.com/live")),
        ]),
    ]);
    for end in 0..full.len() {
        let mut session = session_after_handshake();
        let input = client.message(3, 0, MessageType::CommandAmf0, 0, full.slice(..end));
        let result = session.handle_input(&input);
        assert!(result.is_err(), "cut at {end} was accepted");
    }
}

#[test]
fn extended_timestamps_and_times_past_2_pow_24_ms_reach_packets() {
    let client = Client::new();
    let mut session = publishing_session(&client);
    let frame = |len: usize| {
        let mut body = vec![0x27, 1, 0, 0, 0];
        body.resize(len, 0xAB);
        body
    };
    // 300-byte frames span three chunks: the extended timestamp rides on every continuation.
    let times = [
        0x00FF_FFFEu64,
        0x00FF_FFFF,
        0x0100_0000,
        0x0100_0021,
        0xFFFF_FFF0,
        0x1_0000_0005,
    ];
    let input: Vec<u8> = times
        .iter()
        .flat_map(|&t| client.video(t, frame(300)))
        .collect();
    let outputs = session.handle_input(&input).unwrap();
    let dts: Vec<i64> = events(&outputs)
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Packet(p) => Some(p.dts),
            _ => None,
        })
        .collect();
    // The last time is sent as 5 (modulo 2^32) and unwrapped forward, past 49.7 days.
    assert_eq!(dts, times.map(|t| t as i64));
}

#[test]
fn mp3_audio_announces_its_track_once_and_delivers_every_frame() {
    let client = Client::new();
    let mut session = publishing_session(&client);
    // SoundFormat 2 (MP3), 44 kHz, 16-bit, stereo; then an MPEG-1 Layer III frame header.
    let tag = || vec![0x2F, 0xFF, 0xFB, 0x90, 0x64, 0x00, 0x00];
    let input: Vec<u8> = [0u64, 26, 52]
        .iter()
        .flat_map(|&t| client.audio(t, tag()))
        .collect();
    let events = events(&session.handle_input(&input).unwrap());
    let [SessionEvent::Track(track), frames @ ..] = &events[..] else {
        panic!("expected a track first, got {events:?}");
    };
    assert_eq!(
        track,
        &TrackInfo::OtherAudio {
            codec: AudioCodec::Mp3
        }
    );
    let packets: Vec<(i64, &[u8])> = frames
        .iter()
        .map(|e| match e {
            SessionEvent::Packet(p) if p.kind == TrackKind::Audio => (p.dts, &p.data[..]),
            other => panic!("expected only audio packets, got {other:?}"),
        })
        .collect();
    let payload = &tag()[1..];
    assert_eq!(packets, [(0, payload), (26, payload), (52, payload)]);
}

#[test]
fn acknowledgements_follow_the_peer_window() {
    let client = Client::new();
    let mut session = publishing_session(&client);
    session
        .handle_input(&client.control(ControlMessage::WindowAckSize(1000)))
        .unwrap();
    let outputs = session
        .handle_input(&client.video(0, [0x27, 1, 0, 0, 0, 0xAB].repeat(200)))
        .unwrap();
    let mut wire = BytesMut::new();
    for o in &outputs {
        if let SessionOutput::Transmit(b) = o {
            wire.extend_from_slice(b);
        }
    }
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let message = decoder
        .decode(&mut wire)
        .unwrap()
        .expect("an acknowledgement");
    assert!(matches!(
        ControlMessage::parse(message.message_type, &message.payload),
        Some(Ok(ControlMessage::Acknowledgement { sequence_number })) if u64::from(sequence_number) == session.bytes_received()
    ));
}
