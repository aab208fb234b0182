//! The HTTP listener: the router served over HTTP/1.1 with hyper, with the limits `axum::serve`
//! lacks. A client must send a request's headers within `header_read_timeout_seconds` (an
//! idle kept-alive connection is closed after as long), so half-sent headers (slowloris) or a
//! silent connection cannot hold a socket for long; at most `max_connections` are open at once
//! and `max_connections_per_ip` from one client (more are closed as soon as they are accepted,
//! so the kernel's queue never fills). A request body sent slowly, or a response read slowly,
//! has no deadline of its own: the per-client cap bounds what one host can hold that way. The API and
//! HLS delivery need nothing of HTTP/2 without TLS, and hyper's automatic HTTP/2 detection has
//! no deadline of its own, so only HTTP/1.1 is served.
//!
//! Each request carries `ConnectInfo<SocketAddr>` with the peer's address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use sluice_ingest::peers::RefusalLog;
use sluice_live::connection_slots::{ConnectionSlot, OpenConnections};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// Seconds a client has to send a request's headers when the configuration says nothing.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: f64 = 30.0;
/// Connections open at once when the configuration says nothing.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// Connections one client (IPv4 address or IPv6 /64) may hold open when the configuration says
/// nothing: a browser opens six per host, a proxy or CDN in front of Sluice many more.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Most connections the configuration may allow.
const MAX_CONNECTIONS_LIMIT: u32 = 1_000_000;
/// Pause after a failed accept (out of file descriptors, …) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Limits of the HTTP listener (`[http_server]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Time a client has to send a request's headers, and the longest a kept-alive connection
    /// waits for its next request. Default: [`DEFAULT_HEADER_READ_TIMEOUT_SECONDS`].
    pub header_read_timeout_seconds: f64,
    /// Connections open at once; more are closed when accepted. Default:
    /// [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Connections one client (an IPv4 address or IPv6 /64) may hold open; more are closed
    /// when accepted. Raise it when a reverse proxy or CDN connects on behalf of everyone.
    /// Default: [`DEFAULT_MAX_CONNECTIONS_PER_IP`].
    pub max_connections_per_ip: usize,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }
}

impl HttpServerConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let timeout = self.header_read_timeout_seconds;
        anyhow::ensure!(
            timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0,
            "http_server.header_read_timeout_seconds must be more than 0 and at most 3600"
        );
        anyhow::ensure!(
            (1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections),
            "http_server.max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT}"
        );
        anyhow::ensure!(
            self.max_connections_per_ip >= 1,
            "http_server.max_connections_per_ip must be at least 1"
        );
        Ok(())
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_read_timeout_seconds)
    }
}

/// Serves `app` on `listener` until `stopping` turns true, then waits for the connections
/// still open to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpServerConfig,
    mut stopping: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections as usize));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout());
    let per_client = OpenConnections::default();
    let mut refused_overall = RefusalLog::default();
    let mut refused_per_client = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "Cannot accept an HTTP connection.");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(refused) = refused_overall.refused(Instant::now()) {
                warn!(
                    max_connections = config.max_connections,
                    refused, "HTTP connection refused: the server holds as many as allowed."
                );
            }
            continue;
        };
        let Some(client_slot) =
            ConnectionSlot::take(&per_client, peer.ip(), config.max_connections_per_ip)
        else {
            if let Some(refused) = refused_per_client.refused(Instant::now()) {
                warn!(
                    %peer,
                    max_connections_per_ip = config.max_connections_per_ip,
                    refused,
                    "HTTP connection refused: too many from this address."
                );
            }
            continue;
        };
        let service =
            app.clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                // The request in progress is answered; the connection closes after it.
                () = stopped(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                debug!(%error, %peer, "HTTP connection ended with an error.");
            }
            drop((slot, client_slot));
        });
    }
    drop(listener);
    // Every slot back means every connection has closed.
    let _ = slots.acquire_many(config.max_connections).await;
    info!("HTTP server stopped.");
}

/// Resolves once `stopping` turns true (or its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
