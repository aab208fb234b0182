//! Black-box: an Enhanced RTMP publisher sending HEVC (FourCC `hvc1`, as OBS ≥ 29.1 can) is
//! recognised and refused with a clear log line; the stream stays idle.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::live::wait_idle;
use common::{wait_for, Server};
use serde_json::json;
use sluice_ingest::amf0::{self, Amf0Value};
use sluice_ingest::chunk::{ChunkEncoder, RtmpMessage};
use sluice_ingest::MessageType;

/// Encodes one message as chunks with the default chunk size.
fn chunks(csid: u32, stream_id: u32, message_type: MessageType, payload: Bytes) -> Vec<u8> {
    let mut out = BytesMut::new();
    ChunkEncoder::default().encode(
        &RtmpMessage {
            chunk_stream_id: csid,
            timestamp: 0,
            message_type,
            stream_id,
            payload,
        },
        &mut out,
    );
    out.to_vec()
}

fn command(stream_id: u32, values: &[Amf0Value]) -> Vec<u8> {
    chunks(
        3,
        stream_id,
        MessageType::CommandAmf0,
        amf0::encode_all(values),
    )
}

/// Reads from `socket` until `needle` has been seen; panics after `within`.
fn read_until(socket: &mut TcpStream, needle: &[u8], within: Duration) {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let read = socket.read(&mut buffer).expect("server answers");
        assert!(
            read > 0,
            "server closed before {:?}",
            String::from_utf8_lossy(needle)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[test]
fn hevc_over_enhanced_rtmp_is_refused_clearly() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "hevc"}));
    let key = stream["stream_key"].as_str().unwrap();

    let mut socket = server.rtmp_handshaken();

    let connect = command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; FMSc/1.0)"),
                ),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1/live")),
                // Enhanced RTMP: the client announces the FourCCs it can send.
                (
                    "fourCcList",
                    Amf0Value::StrictArray(vec![Amf0Value::string("hvc1")]),
                ),
            ]),
        ],
    );
    let create = command(
        0,
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
        ],
    );
    let publish = command(
        1,
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            Amf0Value::string(key),
            Amf0Value::string("live"),
        ],
    );
    socket
        .write_all(&[connect, create, publish].concat())
        .unwrap();
    read_until(
        &mut socket,
        b"NetStream.Publish.Start",
        Duration::from_secs(5),
    );

    // IsExHeader | keyframe, PacketType SequenceStart, FourCC hvc1, then an hvcC record.
    let mut tag = vec![0x80 | 0x10, b'h', b'v', b'c', b'1'];
    tag.extend_from_slice(&[
        1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f,
        0,
    ]);
    socket
        .write_all(&chunks(6, 1, MessageType::Video, Bytes::from(tag)))
        .unwrap();

    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = match socket.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the server closes the connection");
    wait_for("the refusal in the log", Duration::from_secs(5), || {
        let log = server.log();
        (log.contains("only H.264 video can be ingested") && log.contains("codec=hevc"))
            .then_some(())
    });
    // The stream flips back to idle as the refused session ends, just after the log line.
    wait_idle(
        &server,
        stream["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
}
