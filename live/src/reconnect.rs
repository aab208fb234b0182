//! The reconnect window: sessions whose publisher went away on its own, waiting for it to come
//! back.
//!
//! A parked session keeps its packaging thread (playlists, segment numbering, recording) and
//! its claim on the live stream. A publish with the same stream key inside the window takes it
//! back ([`Reconnecting::resume`]) and continues the session; the task that parked it waits for
//! the window to close and ends the session only if nobody took it ([`Reconnecting::expire`]).
//! Whichever comes first wins, under one lock, so a session is never both resumed and ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::health::HealthMonitor;
use super::pipeline::Packaging;
use sluice_media::MediaTime;
use sluice_storage::{AssetId, SessionId, StreamHealth};

/// What of a session carries over from one publisher to the next.
pub struct SessionState {
    pub session_id: SessionId,
    /// The asset the session is recorded into.
    pub asset_id: Option<AssetId>,
    /// The session's packaging thread, once a pipeline started (always there when parked).
    pub packaging: Option<Packaging>,
    /// Where a returning publisher's first packet should land.
    pub resume_at: Option<MediaTime>,
    /// Counters of the publishers before the current one.
    pub bytes_received: u64,
    pub frames_dropped: u64,
    /// `live_stream.disconnected` was published when the last publisher went away.
    pub disconnect_announced: bool,
    /// The session's health check, over all its publishers.
    pub health: SessionHealth,
}

/// A session's health check and the instant its clock counts from.
pub struct SessionHealth {
    pub monitor: HealthMonitor,
    started: Instant,
    /// The report last stored on the session row.
    pub stored: Option<StreamHealth>,
}

impl SessionHealth {
    /// The health check of a session that starts now; `passthrough`: its ladder passes the
    /// source video through.
    pub fn new(passthrough: bool) -> Self {
        SessionHealth {
            monitor: HealthMonitor::new(passthrough, chrono::Utc::now()),
            started: Instant::now(),
            stored: None,
        }
    }

    /// Time since the session started, the monitor's clock.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }
}

struct Waiting {
    token: u64,
    session: SessionState,
    /// Dropped when the session is resumed: wakes the task waiting for the window to close.
    _resumed: oneshot::Sender<()>,
}

/// Parked sessions of this process, by live stream id.
#[derive(Clone, Default)]
pub struct Reconnecting {
    inner: Arc<Mutex<(u64, HashMap<String, Waiting>)>>,
}

/// A parked session's claim ticket: what the parking task waits on and presents to
/// [`Reconnecting::expire`].
pub struct ParkTicket {
    token: u64,
    /// Completes (with an error) once the session has been resumed.
    pub resumed: oneshot::Receiver<()>,
}

impl Reconnecting {
    /// Parks `session` of `live_stream_id` until a publisher resumes it or it expires.
    pub fn park(&self, live_stream_id: &str, session: SessionState) -> ParkTicket {
        let (sender, resumed) = oneshot::channel();
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (next_token, waiting) = &mut *guard;
        *next_token += 1;
        let token = *next_token;
        waiting.insert(
            live_stream_id.to_owned(),
            Waiting {
                token,
                session,
                _resumed: sender,
            },
        );
        ParkTicket { token, resumed }
    }

    /// Whether a session of `live_stream_id` waits for its publisher here.
    pub fn is_parked(&self, live_stream_id: &str) -> bool {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        guard.1.contains_key(live_stream_id)
    }

    /// Takes the session parked for `live_stream_id`, for a returning publisher.
    pub fn resume(&self, live_stream_id: &str) -> Option<SessionState> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        guard
            .1
            .remove(live_stream_id)
            .map(|waiting| waiting.session)
    }

    /// Takes the session `ticket` parked, unless a publisher resumed it meanwhile.
    pub fn expire(&self, live_stream_id: &str, ticket: &ParkTicket) -> Option<SessionState> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = &mut guard.1;
        if waiting
            .get(live_stream_id)
            .is_some_and(|parked| parked.token == ticket.token)
        {
            waiting
                .remove(live_stream_id)
                .map(|waiting| waiting.session)
        } else {
            None
        }
    }
}
