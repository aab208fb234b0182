//! Black-box: broken or hostile RTMP peers each lose their own connection, with a clear log
//! line, while a healthy publisher on the same server keeps streaming.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{closed_by_server, wait_for, Publisher, Server};
use serde_json::json;

/// A type-0 chunk on chunk stream 2 carrying one protocol control message.
fn control_message(type_id: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut chunk = vec![0x02, 0, 0, 0];
    chunk.extend_from_slice(&len.to_be_bytes()[1..]);
    chunk.push(type_id);
    chunk.extend_from_slice(&[0, 0, 0, 0]);
    chunk.extend_from_slice(payload);
    chunk
}

#[test]
fn hostile_peers_are_cut_off_and_a_healthy_stream_carries_on() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "healthy", "ladder": ["source"]}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let healthy = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        14,
    );
    wait_for(
        "the healthy stream's first segment",
        Duration::from_secs(30),
        || {
            (server
                .get(&format!("/hls/{playback_id}/master.m3u8"))
                .status
                == 200)
                .then_some(())
        },
    );

    // Garbage instead of a handshake.
    let mut garbage = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        closed_by_server(garbage, Duration::from_secs(5)),
        "garbage closed"
    );

    // A handshake that stops half-way is closed by the handshake deadline.
    let mut half = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    half.write_all(&[3u8; 700]).unwrap();
    assert!(
        closed_by_server(half, Duration::from_secs(15)),
        "half handshake closed"
    );

    // Set Chunk Size 0 and 2^31, and a 16 MiB message.
    for payload in [0u32.to_be_bytes(), 0x8000_0000u32.to_be_bytes()] {
        let mut socket = server.rtmp_handshaken();
        socket.write_all(&control_message(1, &payload)).unwrap();
        assert!(
            closed_by_server(socket, Duration::from_secs(5)),
            "bad chunk size closed"
        );
    }
    let mut huge = server.rtmp_handshaken();
    huge.write_all(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 1, 0, 0, 0])
        .unwrap();
    huge.write_all(&[0u8; 4096]).unwrap();
    assert!(
        closed_by_server(huge, Duration::from_secs(5)),
        "16 MiB message closed"
    );

    // A chunk continuing a chunk stream that was never opened.
    let mut orphan = server.rtmp_handshaken();
    orphan.write_all(&[0xc5, 1, 2, 3, 4]).unwrap();
    assert!(
        closed_by_server(orphan, Duration::from_secs(5)),
        "orphan chunk closed"
    );

    // A publisher with a stream key nobody created is refused.
    let refused = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x240:rate=15:duration=3")
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-f", "flv"])
        .arg(server.rtmp_url("not-a-real-key"))
        .output()
        .expect("ffmpeg");
    assert!(
        !refused.status.success(),
        "an unknown stream key must be refused"
    );

    assert!(healthy.wait(), "the healthy publisher was disturbed");
    let playlist = server.ended_playlist(&playback_id, "v0/index.m3u8");
    assert!(playlist.matches("#EXTINF").count() >= 5, "{playlist}");
    let log = server.log();
    assert!(log.contains("stream key"), "refusal is logged: {log}");
    assert!(!log.contains("panicked"), "no panic: {log}");
}

#[test]
fn one_address_cannot_hold_more_rtmp_connections_than_configured() {
    let server = Server::launch(common::Launch {
        config: Some("[live]\nrtmp_max_connections_per_ip = 2\n".to_owned()),
        ..common::Launch::default()
    });
    let still_open = |socket: &TcpStream| {
        socket
            .set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut byte = [0u8; 1];
        matches!(
            (&*socket).read(&mut byte),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    };
    let first = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    let second = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    assert!(still_open(&first) && still_open(&second));
    let third = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    assert!(
        closed_by_server(third, Duration::from_secs(3)),
        "the third is refused"
    );
    drop(first);
    // The server frees the slot once it sees the close; a new connection then stays open.
    let _again = wait_for("a freed slot to be usable", Duration::from_secs(5), || {
        let socket = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
        still_open(&socket).then_some(socket)
    });
    assert!(server.log().contains("too many from this address"));
}
