//! WebRTC ingest over WHIP (RFC 9725): the media side of `POST /whip/{live_stream_id}`.
//!
//! [`WhipService`] implements [`WhipIngest`] (the trait the API drives, from `sluice_ingest::whip`): it checks the stream and its key,
//! answers the offer with a str0m [`Rtc`] (ICE-lite, one host candidate on the configured UDP
//! port, H.264/VP8 video and Opus audio only) and starts the session the way an RTMP publish
//! does, through [`LiveService::publish`], with a [`WhipConnection`] as its
//! [`Publisher`]: the same claim of the stream, session row, events, metrics, pipeline and
//! packaging. The SDP answer goes back to the HTTP client when that path accepts the publish.
//!
//! Media flows through the [`transport`] task (one UDP socket for every session), which
//! turns depacketized frames into session events ([`frames`]).

mod frames;
mod transport;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::distributions::{Alphanumeric, DistString};
use sluice_ingest::whip::{WhipAnswer, WhipError, WhipIngest, WhipOffer};
use sluice_storage::{LiveStreamId, LiveStreamStatus, SessionOrigin};
use str0m::change::SdpOffer;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use super::session_control::StopReason;
use super::LiveService;
use crate::config::WhipConfig;
use crate::publisher::{PublishRequest, Publisher, PublisherEvent};
use transport::{CleanEnd, Command, PeerSetup, Timeouts, Transport};

/// Events queued between the transport and a session (about two seconds of 30 fps video with
/// its audio).
const SESSION_QUEUE: usize = 256;
/// Commands queued for the transport.
const COMMAND_QUEUE: usize = 64;
/// The most time an offer waits for its publish to be accepted or refused.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The WHIP sessions of this process and the way to the transport.
pub struct WhipService {
    live: Arc<LiveService>,
    /// The host candidate announced in every answer.
    candidate: SocketAddr,
    commands: mpsc::Sender<Command>,
    /// Running sessions by WHIP session id: their live stream.
    sessions: Arc<Sessions>,
    /// The sessions' tasks, waited for at shutdown; `None` once shutdown took them, when no
    /// session may start.
    tasks: Mutex<Option<JoinSet<()>>>,
}

/// WHIP session ids of this process and the live stream each publishes to.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, String>>);

impl Sessions {
    fn insert(&self, session_id: &str, live_stream_id: &str) {
        self.lock()
            .insert(session_id.to_owned(), live_stream_id.to_owned());
    }

    fn remove(&self, session_id: &str) {
        self.lock().remove(session_id);
    }

    /// Whether `session_id` runs here for `live_stream_id`.
    fn holds(&self, session_id: &str, live_stream_id: &str) -> bool {
        self.lock()
            .get(session_id)
            .is_some_and(|stream| stream == live_stream_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl WhipService {
    /// Binds the UDP socket and starts the transport task; the task ends at shutdown.
    pub async fn start(
        live: Arc<LiveService>,
        config: &WhipConfig,
        bind: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<WhipService>> {
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("binding WebRTC UDP to {bind}: {e}"))?;
        let candidate = announced_address(config.public_ip, socket.local_addr()?);
        info!(udp = %bind, candidate = %candidate, "WebRTC (WHIP) ingest is listening.");
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let timeouts = Timeouts {
            connect: Duration::from_secs_f64(config.connect_timeout_seconds),
            media: Duration::from_secs_f64(config.media_timeout_seconds),
        };
        tokio::spawn(Transport::new(socket, candidate, timeouts, inbox, shutdown).run());
        Ok(Arc::new(WhipService {
            live,
            candidate,
            commands,
            sessions: Arc::default(),
            tasks: Mutex::new(Some(JoinSet::new())),
        }))
    }

    /// Runs a session's task, kept for [`Self::finish`]; refused once shutdown has begun.
    fn spawn_session(
        &self,
        session: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), WhipError> {
        let mut tasks = self.lock_tasks();
        let tasks = tasks.as_mut().ok_or(WhipError::ShuttingDown)?;
        // Finished sessions' results are of no further use.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(session);
        Ok(())
    }

    /// Waits (up to [`super::SHUTDOWN_GRACE`]) for every session to end its playlists and session row
    /// once shutdown has begun; sessions still running then are dropped. Offers arriving
    /// afterwards are refused.
    pub async fn finish(&self) {
        let Some(mut tasks) = self.lock_tasks().take() else {
            return;
        };
        super::drain_or_abort(&mut tasks, "WebRTC sessions").await;
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Option<JoinSet<()>>> {
        // A panic while holding this lock leaves a set that is still whole.
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An `Rtc` that takes only what the pipeline carries, with its SDP answer to `offer`.
    /// The publisher's order of video codecs is kept: the answer picks its first choice.
    fn answer(&self, offer: &WhipOffer) -> Result<(Rtc, String), WhipError> {
        // The parser's error text shows its internal state (heap addresses among it): the
        // publisher hears a plain message, the log keeps the detail.
        let sdp = SdpOffer::from_sdp_string(&offer.sdp).map_err(|e| {
            debug!(error = %e, "The WebRTC stack cannot parse a WHIP offer.");
            WhipError::BadOffer(
                "malformed SDP offer: it needs ICE credentials (a=ice-ufrag, a=ice-pwd), a DTLS \
                 fingerprint and a mid per media section, as a browser's offer has"
                    .to_owned(),
            )
        })?;
        let mut config = Rtc::builder().set_ice_lite(true).clear_codecs();
        for codec in &offer.offered.video_codecs {
            config = match codec.as_str() {
                "VP8" => config.enable_vp8(true),
                "H264" => config.enable_h264(true),
                _ => config,
            };
        }
        let mut rtc = config.enable_opus(true, false).build(Instant::now());
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| WhipError::Internal(format!("host candidate {}: {e}", self.candidate)))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(sdp)
            .map_err(|e| WhipError::BadOffer(format!("the SDP offer cannot be answered: {e}")))?;
        Ok((rtc, answer.to_sdp_string()))
    }
}

#[async_trait]
impl WhipIngest for WhipService {
    async fn offer(&self, offer: WhipOffer) -> Result<WhipAnswer, WhipError> {
        let Ok(live_stream_id) = LiveStreamId::parse(&offer.live_stream_id) else {
            return Err(WhipError::StreamNotFound);
        };
        let stream = match self.live.db.get_live_stream(&live_stream_id).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return Err(WhipError::StreamNotFound),
            Err(e) => return Err(WhipError::Internal(format!("live stream lookup: {e}"))),
        };
        if !keys_match(&stream.stream_key, &offer.stream_key) {
            warn!(live_stream_id = %stream.id, "Refused WHIP publish: wrong stream key.");
            return Err(WhipError::WrongKey);
        }
        if stream.disabled {
            warn!(live_stream_id = %stream.id, "Refused WHIP publish: the live stream is disabled.");
            return Err(WhipError::Refused(format!(
                "live stream {} is disabled",
                stream.id
            )));
        }
        // A session waiting inside its reconnect window keeps the stream `active`: a returning
        // publisher resumes it (the session path decides, as for RTMP).
        if stream.status == LiveStreamStatus::Active
            && !self.live.reconnecting.is_parked(&stream.id)
        {
            warn!(live_stream_id = %stream.id, "Refused WHIP publish: the live stream already has a publisher.");
            return Err(WhipError::Busy);
        }
        let (rtc, answer) = self.answer(&offer).inspect_err(|e| {
            warn!(live_stream_id = %stream.id, error = %e, "Refused WHIP publish: bad offer.");
        })?;

        let session_id = format!(
            "whs_{}",
            Alphanumeric.sample_string(&mut rand::thread_rng(), 20)
        );
        let (reply, replied) = oneshot::channel();
        let (events_in, events) = mpsc::channel(SESSION_QUEUE);
        let clean_end = CleanEnd::default();
        let connection = WhipConnection {
            pending: Some(PendingAnswer {
                setup: PeerSetup {
                    id: session_id.clone(),
                    live_stream_id: stream.id.clone(),
                    rtc,
                    events: events_in,
                    bytes_received: Arc::default(),
                    clean_end: clean_end.clone(),
                },
                answer: WhipAnswer {
                    session_id: session_id.clone(),
                    sdp: answer,
                },
                reply,
            }),
            bytes_received: Arc::default(),
            events,
            clean_end,
            commands: self.commands.clone(),
        };
        let origin = SessionOrigin {
            client_addr: offer
                .offered
                .first_candidate
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
            protocol: "webrtc",
            encoder: offer.user_agent.clone(),
            app: None,
        };
        self.sessions.insert(&session_id, &stream.id);
        let live = self.live.clone();
        let stream_key = offer.stream_key.clone();
        let span =
            tracing::info_span!("whip", live_stream_id = %stream.id, whip_session = %session_id);
        let sessions = self.sessions.clone();
        let task_session_id = session_id.clone();
        let session = async move {
            if let Err(e) = live
                .publish(connection, PublishRequest { stream_key, origin })
                .await
            {
                warn!(error = %e, "WHIP session ended with an error.");
            }
            sessions.remove(&task_session_id);
        };
        if let Err(e) = self.spawn_session(session.instrument(span)) {
            self.sessions.remove(&session_id);
            warn!(live_stream_id = %stream.id, "Refused WHIP publish: the server is shutting down.");
            return Err(e);
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, replied).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WhipError::Internal(
                "the session ended before answering".into(),
            )),
            Err(_) => Err(WhipError::Internal(
                "the session did not start in time".into(),
            )),
        }
    }

    async fn end(
        &self,
        live_stream_id: &str,
        session_id: &str,
        stream_key: &str,
    ) -> Result<(), WhipError> {
        if !self.sessions.holds(session_id, live_stream_id) {
            return Err(WhipError::SessionNotFound);
        }
        let Ok(live_stream_id) = LiveStreamId::parse(live_stream_id) else {
            return Err(WhipError::SessionNotFound);
        };
        let stream = match self.live.db.get_live_stream(&live_stream_id).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return Err(WhipError::SessionNotFound),
            Err(e) => return Err(WhipError::Internal(format!("live stream lookup: {e}"))),
        };
        if !keys_match(&stream.stream_key, stream_key) {
            return Err(WhipError::WrongKey);
        }
        // The transport closes the peer and the session ends without a reconnect window; a
        // session already waiting in its window (the peer gone) is ended by its stop signal,
        // sent once the transport has closed the peer so that the DELETE is what ends a
        // connected session.
        let (closed, transport_closed) = oneshot::channel();
        self.commands
            .send(Command::Close {
                id: session_id.to_owned(),
                closed,
            })
            .await
            .map_err(|_| WhipError::Internal("the WebRTC transport has stopped".into()))?;
        // An error means the transport stopped, which ends every session anyway.
        let _ = transport_closed.await;
        self.live
            .running
            .stop(&live_stream_id, StopReason::Unpublished, i64::MAX);
        Ok(())
    }
}

/// Compares stream keys in time independent of where they differ.
fn keys_match(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// The address a WebRTC host candidate announces for a socket bound at `bound`: the configured
/// public address, else the bound one when it names one interface, else the address this host
/// routes from; with the bound port. (Rooms announce theirs the same way.)
pub fn announced_address(public_ip: Option<IpAddr>, bound: SocketAddr) -> SocketAddr {
    let ip = public_ip
        .or_else(|| (!bound.ip().is_unspecified()).then_some(bound.ip()))
        .unwrap_or_else(routed_local_ip);
    SocketAddr::new(ip, bound.port())
}

/// The address this host sends from towards the internet (no packet is sent: connecting a UDP
/// socket only picks a route), else loopback.
fn routed_local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// What a WHIP publish hands over once the live plane accepts it.
struct PendingAnswer {
    setup: PeerSetup,
    answer: WhipAnswer,
    reply: oneshot::Sender<Result<WhipAnswer, WhipError>>,
}

/// A WHIP publisher as the live session sees it.
struct WhipConnection {
    /// Until the publish is accepted or refused.
    pending: Option<PendingAnswer>,
    bytes_received: Arc<AtomicU64>,
    events: mpsc::Receiver<PublisherEvent>,
    /// Read once the transport let go of `events`.
    clean_end: CleanEnd,
    commands: mpsc::Sender<Command>,
}

/// The WebRTC transport went away under a session.
#[derive(Debug, thiserror::Error)]
#[error("the WebRTC transport has stopped")]
struct TransportStopped;

impl Publisher for WhipConnection {
    type Error = TransportStopped;

    async fn next_event(&mut self) -> Result<PublisherEvent, TransportStopped> {
        Ok(match self.events.recv().await {
            Some(event) => event,
            // Every event queued before the end has been read: the publish ended on purpose.
            None if self.clean_end.take() => {
                debug!("Publisher ended its WHIP session.");
                PublisherEvent::Unpublished
            }
            None => PublisherEvent::Dropped,
        })
    }

    async fn accept_publish(&mut self) -> Result<(), TransportStopped> {
        let Some(PendingAnswer {
            mut setup,
            answer,
            reply,
        }) = self.pending.take()
        else {
            return Ok(());
        };
        setup.bytes_received = self.bytes_received.clone();
        self.commands
            .send(Command::Add(Box::new(setup)))
            .await
            .map_err(|_| TransportStopped)?;
        // An HTTP client that gave up finds the session ending by the connect timeout.
        let _ = reply.send(Ok(answer));
        Ok(())
    }

    async fn reject_publish(&mut self, reason: &str) -> Result<(), TransportStopped> {
        if let Some(pending) = self.pending.take() {
            let _ = pending
                .reply
                .send(Err(WhipError::Refused(reason.to_owned())));
        }
        Ok(())
    }

    fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection reading `events` (no pending answer), with the flag the transport marks.
    fn connection(events: mpsc::Receiver<PublisherEvent>) -> (WhipConnection, CleanEnd) {
        let clean_end = CleanEnd::default();
        let connection = WhipConnection {
            pending: None,
            bytes_received: Arc::default(),
            events,
            clean_end: clean_end.clone(),
            commands: mpsc::channel(1).0,
        };
        (connection, clean_end)
    }

    fn metadata() -> PublisherEvent {
        PublisherEvent::Metadata {
            frame_rate: None,
            video_kbps: None,
        }
    }

    #[tokio::test]
    async fn a_clean_end_follows_the_queued_events_even_when_the_queue_was_full() {
        let (sender, events) = mpsc::channel(1);
        let (mut connection, clean_end) = connection(events);
        sender.try_send(metadata()).unwrap();
        assert!(sender.try_send(metadata()).is_err(), "the queue is full");
        clean_end.mark();
        drop(sender);
        let first = connection.next_event().await.unwrap();
        assert!(
            matches!(first, PublisherEvent::Metadata { .. }),
            "{first:?}"
        );
        let end = connection.next_event().await.unwrap();
        assert_eq!(end, PublisherEvent::Unpublished);
        assert_eq!(
            connection.next_event().await.unwrap(),
            PublisherEvent::Dropped
        );
    }

    #[tokio::test]
    async fn a_publisher_that_vanished_ends_without_a_clean_end() {
        let (sender, events) = mpsc::channel(1);
        let (mut connection, _) = connection(events);
        sender.try_send(metadata()).unwrap();
        drop(sender);
        let first = connection.next_event().await.unwrap();
        assert!(
            matches!(first, PublisherEvent::Metadata { .. }),
            "{first:?}"
        );
        assert_eq!(
            connection.next_event().await.unwrap(),
            PublisherEvent::Dropped
        );
    }

    #[test]
    fn stream_keys_match_only_when_equal() {
        assert!(keys_match("abc", "abc"));
        assert!(!keys_match("abc", "abd"));
        assert!(!keys_match("abc", "ab"));
        assert!(!keys_match("abc", ""));
    }
}
