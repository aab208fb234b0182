//! A live ffmpeg publish over TCP into `RtmpConnection`: proves ffmpeg accepts Sluice's
//! handshake and replies (the capture tests only prove Sluice understands ffmpeg).
//! Needs the ffmpeg CLI with libx264 (`make test` installs it).

use std::process::Stdio;

use sluice_ingest::{ConnectionConfig, RtmpConnection, SessionEvent};
use sluice_media::TrackInfo;
use tokio::net::TcpListener;

#[tokio::test]
async fn ffmpeg_publishes_to_rtmp_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args([
            "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        ])
        .args([
            "-f",
            "flv",
            &format!("rtmp://127.0.0.1:{port}/live/livekey"),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    let (socket, peer) = listener.accept().await.unwrap();
    let mut connection = RtmpConnection::new(socket, peer, ConnectionConfig::default());
    let (mut tracks, mut packets, mut finished) = (Vec::new(), 0, false);
    while let Some(event) = connection.next_event().await.unwrap() {
        match event {
            SessionEvent::PublishRequested { stream_key, .. } => {
                assert_eq!(stream_key, "livekey");
                connection.accept_publish().await.unwrap();
            }
            SessionEvent::Track(track) => tracks.push(track),
            SessionEvent::Packet(_) => packets += 1,
            SessionEvent::PublishFinished { .. } => finished = true,
            _ => {}
        }
    }
    assert!(ffmpeg.wait().await.unwrap().success());
    assert!(finished);
    assert!(packets > 50, "{packets} packets");
    assert!(matches!(
        tracks[..],
        [TrackInfo::Avc { .. }, TrackInfo::Aac { .. }]
    ));
}
