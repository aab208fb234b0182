//! The WebRTC transport: one UDP socket, owned by one task, shared by every WHIP session.
//!
//! Each session is a str0m [`Rtc`] (sans-IO: ICE-lite, DTLS-SRTP, RTCP with NACK and
//! keyframe requests). The task routes each datagram to the `Rtc` that accepts it (str0m
//! matches STUN by ICE username fragment and media by the remote address ICE settled on),
//! drives every `Rtc`'s timers, sends what they ask to send, and turns depacketized frames into
//! session events ([`FrameConverter`]) for the session's task.
//!
//! A session ends here, with one log line naming why, when: ICE and DTLS do not complete in
//! time, no media arrives for a while, ICE connectivity is lost, the peer closes DTLS, the
//! WebRTC stack reports an error, `DELETE` asks, or the session's task stopped listening.
//! Keyframes are asked for (PLI, else FIR) when the session starts, while video waits for a
//! frame a decoder can start on, and when a frame arrives after lost packets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::publisher::PublisherEvent;
use sluice_storage::LiveStreamId;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::frames::{FrameCodec, FrameConverter, FrameError, ReceivedFrame};

/// Largest datagram read (above any path MTU).
const MAX_DATAGRAM: usize = 2048;
/// Least time between two keyframe requests of one session.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Longest sleep of the task when no timer is due sooner.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// How long sessions may take, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// ICE and DTLS must complete within this after the answer.
    pub connect: Duration,
    /// A connected session with no media for this long ends.
    pub media: Duration,
}

/// A session handed to the transport once its publish was accepted.
pub struct PeerSetup {
    /// The WHIP session id.
    pub id: String,
    pub live_stream_id: LiveStreamId,
    pub rtc: Rtc,
    /// Where the session's task reads its events.
    pub events: mpsc::Sender<PublisherEvent>,
    /// Bytes of datagrams routed to this session.
    pub bytes_received: Arc<AtomicU64>,
    /// Marked when the publisher ends its publish on purpose.
    pub clean_end: CleanEnd,
}

/// Whether a publisher ended its publish on purpose (`DELETE`, or DTLS closed), as an RTMP
/// encoder's FCUnpublish does: the session then ends without a reconnect window, while a
/// publisher that vanishes (timeouts, ICE lost) gets the window. The transport marks it before
/// it lets go of the session's event queue, and the session reads it once that queue is
/// drained: the end comes after every frame queued before it, and a full queue cannot lose it.
#[derive(Clone, Debug, Default)]
pub struct CleanEnd(Arc<AtomicBool>);

impl CleanEnd {
    pub(super) fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the publish ended on purpose; `true` once only.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Acquire)
    }
}

/// What the transport is asked to do.
pub enum Command {
    Add(Box<PeerSetup>),
    /// End a session (`DELETE`); `closed` is answered once the transport has ended it (or
    /// found it gone), so the session's stop signal never overtakes the DELETE.
    Close {
        id: String,
        closed: tokio::sync::oneshot::Sender<()>,
    },
}

/// One session's state in the transport.
struct Peer {
    setup: PeerSetup,
    started: Instant,
    next_timeout: Instant,
    connected: bool,
    last_media: Instant,
    video: Option<Mid>,
    converter: FrameConverter,
    last_keyframe_request: Option<Instant>,
    refused_frames: u64,
}

/// The socket, the sessions and the task's inputs.
pub struct Transport {
    socket: UdpSocket,
    /// The address announced in the host candidate: datagrams are addressed to it.
    local: SocketAddr,
    timeouts: Timeouts,
    commands: mpsc::Receiver<Command>,
    shutdown: watch::Receiver<bool>,
    peers: Vec<Peer>,
}

impl Transport {
    pub fn new(
        socket: UdpSocket,
        local: SocketAddr,
        timeouts: Timeouts,
        commands: mpsc::Receiver<Command>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Transport {
            socket,
            local,
            timeouts,
            commands,
            shutdown,
            peers: Vec::new(),
        }
    }

    /// Runs until shutdown (or until no one can send commands any more).
    pub async fn run(mut self) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut shutdown = self.shutdown.clone();
        loop {
            let now = Instant::now();
            self.drive(now);
            let wake = self
                .peers
                .iter()
                .map(|peer| peer.next_timeout)
                .min()
                .unwrap_or(now + MAX_IDLE)
                .clamp(now, now + MAX_IDLE);
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => self.route(&buffer[..length], source),
                    // ICMP port unreachable from a peer that left, and the like.
                    Err(e) => debug!(error = %e, "Receiving a WebRTC datagram failed."),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.apply(command),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        for peer in &mut self.peers {
            peer.setup.rtc.disconnect();
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Add(setup) => {
                let now = Instant::now();
                info!(live_stream_id = %setup.live_stream_id, whip_session = %setup.id, "WebRTC session waiting for ICE and DTLS.");
                self.peers.push(Peer {
                    setup: *setup,
                    started: now,
                    next_timeout: now,
                    connected: false,
                    last_media: now,
                    video: None,
                    converter: FrameConverter::default(),
                    last_keyframe_request: None,
                    refused_frames: 0,
                });
            }
            Command::Close { id, closed } => {
                if let Some(index) = self.peers.iter().position(|peer| peer.setup.id == id) {
                    self.peers[index].setup.clean_end.mark();
                    self.end(index, "the publisher sent DELETE");
                }
                let _ = closed.send(());
            }
        }
    }

    /// Hands a datagram to the session that accepts it; others are dropped.
    fn route(&mut self, datagram: &[u8], source: SocketAddr) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, datagram) else {
            debug!(peer = %source, bytes = datagram.len(), "Dropped a datagram that is not STUN, DTLS or RTP.");
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let Some(index) = self
            .peers
            .iter()
            .position(|peer| peer.setup.rtc.accepts(&input))
        else {
            debug!(peer = %source, "Dropped a datagram of no WebRTC session.");
            return;
        };
        let peer = &mut self.peers[index];
        peer.setup
            .bytes_received
            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        if let Err(e) = peer.setup.rtc.handle_input(input) {
            self.end(index, &format!("the WebRTC stack refused a datagram: {e}"));
        }
    }

    /// Fires due timers, sends what every session asks to send, delivers their events and ends
    /// the sessions that are over.
    fn drive(&mut self, now: Instant) {
        let mut ended = Vec::new();
        for (index, peer) in self.peers.iter_mut().enumerate() {
            if let Some(reason) = peer.drive(&self.socket, now, self.timeouts) {
                ended.push((index, reason));
            }
        }
        for (index, reason) in ended.into_iter().rev() {
            self.end(index, &reason);
        }
    }

    fn end(&mut self, index: usize, reason: &str) {
        let mut peer = self.peers.swap_remove(index);
        peer.setup.rtc.disconnect();
        // Sends the DTLS close_notify and RTCP BYE str0m queued on disconnect.
        while let Ok(Output::Transmit(transmit)) = peer.setup.rtc.poll_output() {
            let _ = self
                .socket
                .try_send_to(&transmit.contents, transmit.destination);
        }
        info!(
            live_stream_id = %peer.setup.live_stream_id,
            whip_session = %peer.setup.id,
            reason,
            refused_frames = peer.refused_frames,
            "WebRTC session ended."
        );
        // Dropping the sender ends the session's event stream: its task winds the session up,
        // cleanly when `clean_end` was marked.
    }
}

impl Peer {
    /// Drives this session; returns why it ended, if it did.
    fn drive(&mut self, socket: &UdpSocket, now: Instant, timeouts: Timeouts) -> Option<String> {
        if now >= self.next_timeout {
            if let Err(e) = self.setup.rtc.handle_input(Input::Timeout(now)) {
                return Some(format!("WebRTC error: {e}"));
            }
        }
        if !self.connected && now.duration_since(self.started) > timeouts.connect {
            return Some(format!(
                "ICE and DTLS did not complete within {} s",
                timeouts.connect.as_secs_f64()
            ));
        }
        if self.connected && now.duration_since(self.last_media) > timeouts.media {
            return Some(format!(
                "no media for {} s (the publisher went away without DELETE)",
                timeouts.media.as_secs_f64()
            ));
        }
        if !self.setup.rtc.is_alive() {
            return Some("the WebRTC connection is closed".to_owned());
        }
        loop {
            match self.setup.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at;
                    return None;
                }
                Ok(Output::Transmit(transmit)) => {
                    if let Err(e) = socket.try_send_to(&transmit.contents, transmit.destination) {
                        debug!(error = %e, peer = %transmit.destination, "Sending a WebRTC datagram failed.");
                    }
                }
                Ok(Output::Event(event)) => {
                    if let Some(reason) = self.handle_event(event, now) {
                        return Some(reason);
                    }
                }
                Err(e) => return Some(format!("WebRTC error: {e}")),
            }
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) -> Option<String> {
        match event {
            Event::Connected => {
                info!(live_stream_id = %self.setup.live_stream_id, whip_session = %self.setup.id, "WebRTC publisher connected (ICE and DTLS done).");
                self.connected = true;
                self.last_media = now;
                self.request_keyframe(now);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Some("ICE connectivity was lost".to_owned());
            }
            Event::MediaAdded(media) if media.kind == MediaKind::Video => {
                self.video = Some(media.mid);
            }
            Event::MediaData(data) => return self.handle_media(data, now),
            Event::Closed => {
                self.setup.clean_end.mark();
                return Some("the publisher closed the connection".to_owned());
            }
            _ => {}
        }
        None
    }

    fn handle_media(&mut self, data: MediaData, now: Instant) -> Option<String> {
        self.last_media = now;
        let codec = match data.params.spec().codec {
            Codec::H264 => FrameCodec::H264,
            Codec::Vp8 => FrameCodec::Vp8,
            Codec::Opus => FrameCodec::Opus,
            other => {
                debug!(codec = ?other, "Frame of a codec not taken ignored.");
                return None;
            }
        };
        if !data.contiguous && codec != FrameCodec::Opus {
            // Packets were lost before this frame: later frames may reference what is missing.
            self.request_keyframe(now);
        }
        let frame = ReceivedFrame {
            codec,
            rtp_time: data.time.numer(),
            clock_rate: data.time.denom(),
            arrival: data.network_time.saturating_duration_since(self.started),
            data: &data.data,
        };
        let events = match self.converter.convert(frame) {
            Ok(events) => events,
            Err(FrameError::WaitingForKeyframe) => {
                self.request_keyframe(now);
                return None;
            }
            Err(e) => {
                self.refused_frames += 1;
                debug!(live_stream_id = %self.setup.live_stream_id, error = %e, "Refused a frame from the WebRTC publisher.");
                if codec != FrameCodec::Opus {
                    self.request_keyframe(now);
                }
                return None;
            }
        };
        for event in events {
            match self.setup.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The session is behind: a dropped video frame breaks the pictures after
                    // it, so ask for a fresh start.
                    warn!(live_stream_id = %self.setup.live_stream_id, "The session is behind; dropped a WebRTC frame.");
                    self.request_keyframe(now);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Some("the session stopped".to_owned());
                }
            }
        }
        None
    }

    /// Asks the publisher for a keyframe (PLI, else FIR), at most every
    /// [`KEYFRAME_REQUEST_INTERVAL`].
    fn request_keyframe(&mut self, now: Instant) {
        let Some(mid) = self.video else {
            return;
        };
        if self
            .last_keyframe_request
            .is_some_and(|last| now.duration_since(last) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(mut writer) = self.setup.rtc.writer(mid) else {
            return;
        };
        let sent = writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .or_else(|_| writer.request_keyframe(None, KeyframeRequestKind::Fir));
        match sent {
            Ok(()) => {
                self.last_keyframe_request = Some(now);
                debug!(live_stream_id = %self.setup.live_stream_id, "Asked the WebRTC publisher for a keyframe.");
            }
            Err(e) => debug!(error = %e, "Could not ask for a keyframe."),
        }
    }
}
