//! `RtmpConnection` over an in-memory duplex: a replayed ffmpeg publish end to end, deadlines,
//! and rejection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use sluice_ingest::{ConnectionConfig, RtmpConnection, SessionEvent, TimeoutPhase};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const CAPTURE: &[u8] = include_bytes!("../testdata/ffmpeg_publish.bin");

fn peer() -> SocketAddr {
    "192.0.2.7:50000".parse().unwrap()
}

#[tokio::test]
async fn replayed_ffmpeg_publish_ends_with_a_clean_close() {
    let (server_side, mut client_side) = tokio::io::duplex(1 << 16);
    let client = tokio::spawn(async move {
        client_side.write_all(CAPTURE).await.unwrap();
        client_side.shutdown().await.unwrap();
        let mut replies = Vec::new();
        client_side.read_to_end(&mut replies).await.unwrap();
        replies
    });
    let mut connection = RtmpConnection::new(server_side, peer(), ConnectionConfig::default());
    let mut packets = 0;
    let mut finished = false;
    while let Some(event) = connection.next_event().await.unwrap() {
        match event {
            SessionEvent::PublishRequested { stream_key, .. } => {
                assert_eq!(stream_key, "testkey");
                connection.accept_publish().await.unwrap();
            }
            SessionEvent::Packet(_) => packets += 1,
            SessionEvent::PublishFinished { .. } => finished = true,
            _ => {}
        }
    }
    assert!(finished);
    assert!(packets > 50, "{packets} packets");
    assert_eq!(connection.bytes_received(), CAPTURE.len() as u64);
    drop(connection);
    let replies = client.await.unwrap();
    assert_eq!(replies[0], 3, "S0");
    assert!(replies.len() > 1 + 2 * 1536);
}

#[tokio::test]
async fn silent_client_hits_the_handshake_deadline() {
    let (server_side, _client_side) = tokio::io::duplex(1024);
    let config = ConnectionConfig {
        handshake_timeout: Duration::from_millis(50),
        ..ConnectionConfig::default()
    };
    let mut connection = RtmpConnection::new(server_side, peer(), config);
    let err = connection.next_event().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.peer(), peer());
    assert!(matches!(
        err,
        sluice_ingest::IngestError::Timeout {
            phase: TimeoutPhase::Handshake,
            ..
        }
    ));
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let (server_side, mut client_side) = tokio::io::duplex(1024);
    client_side
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut connection = RtmpConnection::new(server_side, peer(), ConnectionConfig::default());
    let err = connection.next_event().await.unwrap_err();
    assert!(err.is_protocol(), "{err}");
}

#[tokio::test]
async fn rejected_publish_sends_status_and_keeps_the_connection_for_the_caller_to_drop() {
    let (server_side, mut client_side) = tokio::io::duplex(1 << 16);
    client_side.write_all(CAPTURE).await.unwrap();
    let mut connection = RtmpConnection::new(server_side, peer(), ConnectionConfig::default());
    loop {
        match connection.next_event().await.unwrap() {
            Some(SessionEvent::PublishRequested { .. }) => break,
            Some(_) => {}
            None => panic!("closed before publish"),
        }
    }
    connection
        .reject_publish("stream key unknown")
        .await
        .unwrap();
    drop(connection);
    let mut replies = Vec::new();
    client_side.read_to_end(&mut replies).await.unwrap();
    let text = String::from_utf8_lossy(&replies);
    assert!(text.contains("NetStream.Publish.BadName"));
    assert!(text.contains("stream key unknown"));
}

/// A stream whose reads return at most `max` bytes, as a socket read falling behind its peer
/// returns the input in pieces.
struct Trickle<S> {
    inner: S,
    max: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Trickle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut chunk = vec![0u8; self.max.min(buf.remaining())];
        let mut piece = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut piece))?;
        buf.put_slice(piece.filled());
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Trickle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn an_unpublish_is_seen_even_when_the_encoder_closed_before_our_acknowledgement() {
    let (server_side, mut client_side) = tokio::io::duplex(1 << 16);
    client_side.write_all(CAPTURE).await.unwrap();
    // A small window makes the session acknowledge during the media, after the encoder left;
    // small reads leave the deleteStream for reads after the acknowledgement that fails.
    let mut config = ConnectionConfig::default();
    config.session.window_ack_size = 1_000;
    let server_side = Trickle {
        inner: server_side,
        max: 300,
    };
    let mut connection = RtmpConnection::new(server_side, peer(), config);
    loop {
        match connection.next_event().await.unwrap() {
            Some(SessionEvent::PublishRequested { .. }) => break,
            Some(_) => {}
            None => panic!("closed before publish"),
        }
    }
    connection.accept_publish().await.unwrap();
    // The encoder sent everything, deleteStream included, and closed: writes now fail.
    drop(client_side);
    let mut finished = false;
    let end = loop {
        match connection.next_event().await {
            Ok(Some(SessionEvent::PublishFinished { .. })) => finished = true,
            Ok(Some(_)) => {}
            end => break end,
        }
    };
    assert!(
        finished,
        "the unpublish was lost; the connection ended with {end:?}"
    );
    assert!(
        end.is_err(),
        "the failed acknowledgement is reported last: {end:?}"
    );
    assert_eq!(connection.bytes_received(), CAPTURE.len() as u64);
}
