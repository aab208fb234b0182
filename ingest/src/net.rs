//! The socket edge of RTMP ingest: [`RtmpConnection`] drives a [`ServerSession`] over a tokio
//! stream (a `TcpStream` in production, any `AsyncRead + AsyncWrite` in tests).
//!
//! This is the only module with I/O. It applies the deadlines MediaMTX uses: the handshake must
//! finish within [`ConnectionConfig::handshake_timeout`] (10 s), every read must produce bytes
//! within [`ConnectionConfig::idle_timeout`] and every write must drain within
//! [`ConnectionConfig::write_timeout`]. Buffers are bounded by the session's limits.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::session::{ServerSession, SessionConfig, SessionEvent, SessionOutput};
use crate::RtmpError;

/// Size of one socket read.
const READ_CHUNK: usize = 64 * 1024;

/// Deadlines and session limits of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub session: SessionConfig,
    /// Time allowed from accept to the end of the handshake (default
    /// [`Self::DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// Longest wait for the next bytes from the client (default [`Self::DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Longest wait for a write to drain (default [`Self::DEFAULT_WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
}

impl ConnectionConfig {
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            session: SessionConfig::default(),
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// Which deadline expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    Handshake,
    Read,
    Write,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Handshake => "handshake",
            TimeoutPhase::Read => "read",
            TimeoutPhase::Write => "write",
        })
    }
}

/// Errors at the public edge of ingest, each naming the peer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("RTMP peer {peer}: i/o error: {source}")]
    Io {
        peer: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("RTMP peer {peer}: {phase} deadline of {after:?} expired")]
    Timeout {
        peer: SocketAddr,
        phase: TimeoutPhase,
        after: Duration,
    },
    #[error("RTMP peer {peer}: protocol error: {source}")]
    Protocol {
        peer: SocketAddr,
        #[source]
        source: RtmpError,
    },
}

impl IngestError {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        match self {
            IngestError::Io { peer, .. }
            | IngestError::Timeout { peer, .. }
            | IngestError::Protocol { peer, .. } => *peer,
        }
    }

    pub fn is_io(&self) -> bool {
        matches!(self, IngestError::Io { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, IngestError::Timeout { .. })
    }

    pub fn is_protocol(&self) -> bool {
        matches!(self, IngestError::Protocol { .. })
    }
}

/// One RTMP client connection: reads, writes and deadlines around a [`ServerSession`].
#[derive(Debug)]
pub struct RtmpConnection<S = TcpStream> {
    stream: S,
    peer: SocketAddr,
    config: ConnectionConfig,
    session: ServerSession,
    events: VecDeque<SessionEvent>,
    /// A failed write, reported once the client's input has been read to its end (see
    /// [`Self::next_event`]): an encoder that sends deleteStream and closes at once can make our
    /// next acknowledgement fail, and its clean end must still be seen.
    write_failure: Option<IngestError>,
    handshake_deadline: Instant,
    read_buf: Box<[u8]>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RtmpConnection<S> {
    /// Wraps an accepted stream; the handshake deadline starts now.
    pub fn new(stream: S, peer: SocketAddr, config: ConnectionConfig) -> Self {
        RtmpConnection {
            stream,
            peer,
            session: ServerSession::new(config.session.clone()),
            handshake_deadline: Instant::now() + config.handshake_timeout,
            config,
            events: VecDeque::new(),
            write_failure: None,
            read_buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Total bytes received from the client.
    pub fn bytes_received(&self) -> u64 {
        self.session.bytes_received()
    }

    /// The next event, reading and answering the client as needed; `Ok(None)` when the client
    /// closed the connection.
    ///
    /// A write that fails because the client closed or reset the connection does not end the
    /// reading: the bytes it sent before are still decoded (an encoder's deleteStream followed
    /// by its close must read as a clean end), and the failure is returned where the input
    /// ends. A write that times out (a client that stopped reading) ends it at once.
    pub async fn next_event(&mut self) -> Result<Option<SessionEvent>, IngestError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if let Some(stalled) = self.write_failure.take_if(|error| error.is_timeout()) {
                return Err(stalled);
            }
            // Resume whatever was buffered while a publish decision was pending.
            let outputs = self
                .session
                .handle_input(&[])
                .map_err(|e| self.protocol(e))?;
            self.apply(outputs).await;
            if !self.events.is_empty() {
                continue;
            }
            let n = match self.read().await {
                Ok(n) => n,
                Err(e) => return Err(self.write_failure.take().unwrap_or(e)),
            };
            if n == 0 {
                debug!(peer = %self.peer, bytes = self.bytes_received(), "RTMP client closed the connection.");
                return match self.write_failure.take() {
                    Some(error) => Err(error),
                    None => Ok(None),
                };
            }
            let outputs = self
                .session
                .handle_input(&self.read_buf[..n])
                .map_err(|e| self.protocol(e))?;
            self.apply(outputs).await;
        }
    }

    /// Accepts the pending publish (see [`SessionEvent::PublishRequested`]).
    pub async fn accept_publish(&mut self) -> Result<(), IngestError> {
        let outputs = self.session.accept_publish();
        self.apply(outputs).await;
        self.write_failure.take().map_or(Ok(()), Err)
    }

    /// Rejects the pending publish; drop the connection afterwards.
    pub async fn reject_publish(&mut self, reason: &str) -> Result<(), IngestError> {
        let outputs = self.session.reject_publish(reason);
        self.apply(outputs).await;
        if let Some(error) = self.write_failure.take() {
            return Err(error);
        }
        let (peer, after) = (self.peer, self.config.write_timeout);
        deadline(peer, TimeoutPhase::Write, after, self.stream.flush()).await
    }

    fn protocol(&self, source: RtmpError) -> IngestError {
        IngestError::Protocol {
            peer: self.peer,
            source,
        }
    }

    async fn read(&mut self) -> Result<usize, IngestError> {
        let peer = self.peer;
        if self.session.handshake_done() {
            let after = self.config.idle_timeout;
            return deadline(
                peer,
                TimeoutPhase::Read,
                after,
                self.stream.read(&mut self.read_buf),
            )
            .await;
        }
        let left = self
            .handshake_deadline
            .saturating_duration_since(Instant::now());
        let read = self.stream.read(&mut self.read_buf);
        deadline(peer, TimeoutPhase::Handshake, left, read)
            .await
            .map_err(|error| match error {
                // Report the whole allowance, not what was left of it at this read.
                IngestError::Timeout { peer, phase, .. } => IngestError::Timeout {
                    peer,
                    phase,
                    after: self.config.handshake_timeout,
                },
                other => other,
            })
    }

    /// Writes the session's bytes and queues its events. After a failed write (kept in
    /// `write_failure`) nothing more is written; events are still queued, since they come from
    /// bytes the peer already sent.
    async fn apply(&mut self, outputs: Vec<SessionOutput>) {
        for output in outputs {
            match output {
                SessionOutput::Transmit(bytes) if self.write_failure.is_none() => {
                    let (peer, after) = (self.peer, self.config.write_timeout);
                    let write = self.stream.write_all(&bytes);
                    if let Err(e) = deadline(peer, TimeoutPhase::Write, after, write).await {
                        self.write_failure = Some(e);
                    }
                }
                SessionOutput::Transmit(_) => {}
                SessionOutput::Event(event) => self.events.push_back(event),
            }
        }
    }
}

/// Runs `work` under a deadline, naming the peer in errors.
async fn deadline<T>(
    peer: SocketAddr,
    phase: TimeoutPhase,
    after: Duration,
    work: impl Future<Output = io::Result<T>>,
) -> Result<T, IngestError> {
    match tokio::time::timeout(after, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(IngestError::Io { peer, source }),
        Err(_) => Err(IngestError::Timeout { peer, phase, after }),
    }
}
