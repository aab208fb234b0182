//! The RTMP adapter of the live core: the accept loop (a connection cap per client address),
//! each connection read until the encoder asks to publish, the RTMP application check (`live`,
//! as in `rtmp://HOST/live/STREAM_KEY`), then the connection handed to
//! [`LiveService::publish`] as a [`Publisher`] whose RTMP events become [`PublisherEvent`]s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_ingest::peers::RefusalLog;
use sluice_ingest::{ConnectionConfig, IngestError, RtmpConnection, SessionEvent};
use sluice_storage::SessionOrigin;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::connection_slots::ConnectionSlot;
use crate::publisher::{PublishRequest, Publisher, PublisherEvent};
use crate::{drain_or_abort, LiveService};

/// The RTMP application encoders publish to.
const APPLICATION: &str = "live";
/// Time from accept to the encoder's publish request (OBS and ffmpeg take well under a
/// second).
const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

impl LiveService {
    /// Accepts RTMP connections until shutdown; each one is independent of the others. On
    /// shutdown it stops accepting and waits (up to [`SHUTDOWN_GRACE`](crate::SHUTDOWN_GRACE))
    /// for every session to end its playlists and session row.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        let control = tokio::spawn(self.clone().follow_control_events());
        let mut connections = JoinSet::new();
        let mut shutdown = self.shutdown.clone();
        let mut refused_overall = RefusalLog::default();
        let mut refused_per_client = RefusalLog::default();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the
                    // listener itself is fine, so wait a moment and go on.
                    warn!(error = %e, "Accepting an RTMP connection failed.");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            if connections.len() >= self.config.rtmp_max_connections {
                if let Some(refused) = refused_overall.refused(std::time::Instant::now()) {
                    warn!(peer = %peer, limit = self.config.rtmp_max_connections, refused, "Refused RTMP connection: the server holds as many as allowed.");
                }
                continue;
            }
            let Some(slot) = ConnectionSlot::take(
                &self.per_ip,
                peer.ip(),
                self.config.rtmp_max_connections_per_ip,
            ) else {
                if let Some(refused) = refused_per_client.refused(std::time::Instant::now()) {
                    warn!(peer = %peer, limit = self.config.rtmp_max_connections_per_ip, refused, "Refused RTMP connection: too many from this address.");
                }
                continue;
            };
            let service = self.clone();
            let span = tracing::info_span!("rtmp", peer = %peer);
            connections.spawn(
                async move {
                    debug!("RTMP connection opened.");
                    match handle_connection(&service, socket, peer).await {
                        Ok(()) => debug!("RTMP connection closed."),
                        Err(e) => warn!(error = %e, "RTMP connection ended with an error."),
                    }
                    drop(slot);
                }
                .instrument(span),
            );
        }
        drain_or_abort(&mut connections, "RTMP connections").await;
        control.abort();
    }
}

/// Reads an RTMP connection until its encoder asks to publish, then publishes (an application
/// other than [`APPLICATION`] is refused first).
async fn handle_connection(
    service: &LiveService,
    socket: TcpStream,
    peer: SocketAddr,
) -> Result<(), IngestError> {
    let limits = ConnectionConfig {
        idle_timeout: Duration::from_secs(service.config.rtmp_idle_timeout_seconds),
        ..ConnectionConfig::default()
    };
    let mut connection = RtmpConnection::new(socket, peer, limits);
    let mut origin = SessionOrigin {
        client_addr: peer.to_string(),
        protocol: "rtmp",
        encoder: None,
        app: None,
    };
    // However it trickles bytes in, a peer that has not asked to publish by then is let go:
    // it holds a connection slot without proving anything.
    let publish_deadline = tokio::time::Instant::now() + PUBLISH_DEADLINE;
    loop {
        let Ok(event) = tokio::time::timeout_at(publish_deadline, connection.next_event()).await
        else {
            info!(after = ?PUBLISH_DEADLINE, "RTMP connection closed: no publish request in time.");
            return Ok(());
        };
        let Some(event) = event? else {
            return Ok(());
        };
        match event {
            SessionEvent::Connected { app, flash_ver, .. } => {
                origin.encoder = flash_ver;
                origin.app = Some(app);
            }
            SessionEvent::PublishRequested {
                app, stream_key, ..
            } => {
                if app != APPLICATION {
                    // The publisher hears what it named; the log never holds it (an encoder
                    // set up with the key in the application would leak it there).
                    let reason = format!(
                        "unknown application {app:?}; publish to rtmp://HOST/{APPLICATION}/STREAM_KEY"
                    );
                    warn!(
                        app_chars = app.chars().count(),
                        reason = "unknown application",
                        "Refused publish."
                    );
                    return connection.reject_publish(&reason).await;
                }
                let request = PublishRequest { stream_key, origin };
                return service.publish(connection, request).await;
            }
            other => debug!(event = ?other, "Event before publish ignored."),
        }
    }
}

impl Publisher for RtmpConnection {
    type Error = IngestError;

    async fn next_event(&mut self) -> Result<PublisherEvent, IngestError> {
        loop {
            let event = match RtmpConnection::next_event(self).await? {
                Some(event) => event,
                None => return Ok(PublisherEvent::Dropped),
            };
            return Ok(match event {
                SessionEvent::Metadata(metadata) => PublisherEvent::Metadata {
                    frame_rate: metadata.frame_rate,
                    video_kbps: metadata.video_data_rate,
                },
                SessionEvent::Track(track) => PublisherEvent::Track(track),
                SessionEvent::Packet(packet) => PublisherEvent::Media(packet),
                SessionEvent::PublishFinished { .. } => {
                    debug!("Publisher sent FCUnpublish/deleteStream.");
                    PublisherEvent::Unpublished
                }
                other => {
                    debug!(event = ?other, "Event ignored.");
                    continue;
                }
            });
        }
    }

    async fn accept_publish(&mut self) -> Result<(), IngestError> {
        RtmpConnection::accept_publish(self).await
    }

    async fn reject_publish(&mut self, reason: &str) -> Result<(), IngestError> {
        RtmpConnection::reject_publish(self, reason).await
    }

    fn bytes_received(&self) -> u64 {
        RtmpConnection::bytes_received(self)
    }
}
