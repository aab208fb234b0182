//! Control of running sessions through the event bus: the API publishes
//! `live_stream.disabled`, `live_stream.stream_key_reset`, `live_stream.deleted` and
//! `live_stream.completed`; the media plane follows the bus and ends the matching session.
//! The API never reaches into ingest, and the same events reach a session running in another
//! process through the bus. [`RunningSessions`] is the registry a session's [`StopSignal`]
//! comes from; [`LiveService::follow_control_events`] is the task applying the events to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sluice_storage::{Event, EventType};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::LiveService;

/// Events read per query when catching up with the event history.
const CATCH_UP_PAGE: u64 = 500;

/// Why the control plane ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Disabled,
    StreamKeyReset,
    Deleted,
    Completed,
    /// The publisher ended its WebRTC session (WHIP `DELETE`), possibly while the session waited
    /// in its reconnect window.
    Unpublished,
}

impl StopReason {
    /// The reason an event of this type stops its live stream's session, if it does.
    pub fn for_event(event_type: &str) -> Option<Self> {
        match EventType::parse(event_type)? {
            EventType::LiveStreamDisabled => Some(Self::Disabled),
            EventType::LiveStreamStreamKeyReset => Some(Self::StreamKeyReset),
            EventType::LiveStreamDeleted => Some(Self::Deleted),
            EventType::LiveStreamCompleted => Some(Self::Completed),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Disabled => "the live stream was disabled",
            Self::StreamKeyReset => "the stream key was reset",
            Self::Deleted => "the live stream was deleted",
            Self::Completed => "the session was completed through the API",
            Self::Unpublished => "the publisher ended its WHIP session",
        }
    }
}

/// A registered session: its token, the event history position it started after, and where
/// to send its stop.
type Registration = (u64, i64, oneshot::Sender<StopReason>);
type Registry = HashMap<String, Registration>;

/// The sessions running in this process, by live stream id.
#[derive(Debug, Default, Clone)]
pub struct RunningSessions {
    inner: Arc<Mutex<(u64, Registry)>>,
}

/// Held by a running session: resolves when the control plane stops it, and unregisters the
/// session when dropped.
pub struct StopSignal {
    receiver: oneshot::Receiver<StopReason>,
    /// The receiver has answered (a reason, or the registration was replaced).
    answered: bool,
    live_stream_id: String,
    token: u64,
    sessions: RunningSessions,
}

impl RunningSessions {
    /// Registers the session receiving `live_stream_id`, requested when the event history was
    /// at position `since`: control events recorded before that are older than the session and
    /// never stop it.
    pub fn register(&self, live_stream_id: &str, since: i64) -> StopSignal {
        let (sender, receiver) = oneshot::channel();
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (next_token, registry) = &mut *guard;
        *next_token += 1;
        let token = *next_token;
        registry.insert(live_stream_id.to_owned(), (token, since, sender));
        StopSignal {
            receiver,
            answered: false,
            live_stream_id: live_stream_id.to_owned(),
            token,
            sessions: self.clone(),
        }
    }

    /// Stops the session of `live_stream_id` for the control event at history position
    /// `event_seq`; returns whether one was running here and the event is newer than it.
    pub fn stop(&self, live_stream_id: &str, reason: StopReason, event_seq: i64) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let registry = &mut guard.1;
        if registry
            .get(live_stream_id)
            .is_none_or(|(_, since, _)| event_seq <= *since)
        {
            return false;
        }
        match registry.remove(live_stream_id) {
            Some((_, _, sender)) => sender.send(reason).is_ok(),
            None => false,
        }
    }
}

impl StopSignal {
    /// Resolves with the reason once the control plane stops the session; never resolves when
    /// the registration was replaced (nothing will ask this signal to stop), nor after it
    /// has answered once.
    pub async fn requested(&mut self) -> StopReason {
        if !self.answered {
            let answer = (&mut self.receiver).await;
            self.answered = true;
            if let Ok(reason) = answer {
                return reason;
            }
        }
        std::future::pending().await
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        let mut guard = self
            .sessions
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A newer session of the same stream may have registered since: leave it alone.
        if guard
            .1
            .get(&self.live_stream_id)
            .is_some_and(|(token, _, _)| *token == self.token)
        {
            guard.1.remove(&self.live_stream_id);
        }
    }
}

impl LiveService {
    /// Ends the sessions the control plane asks to end, until shutdown. Live notifications
    /// that the channel dropped (`Lagged`) are read back from the event history, so no control
    /// event is missed.
    pub(crate) async fn follow_control_events(self: Arc<Self>) {
        let mut events = self.events.subscribe();
        let mut shutdown = self.shutdown.clone();
        let mut last_seq = match self.db.latest_event_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                warn!(error = %e, "Could not read the event history; following live events only.");
                i64::MAX
            }
        };
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match event {
                // An event applied twice (live and read back after a lag) stops nothing the
                // second time; one older than a session never stops it.
                Ok(event) => {
                    last_seq = last_seq.max(event.seq);
                    self.apply_control_event(&event);
                }
                Err(RecvError::Lagged(missed)) => {
                    debug!(missed, "Control events missed live; reading them back.");
                    for event in self.control_events_after(last_seq, None).await {
                        last_seq = last_seq.max(event.seq);
                        self.apply_control_event(&event);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops the session `event` is about, when it is a control event and that session runs
    /// here.
    fn apply_control_event(&self, event: &Event) {
        if let Some(reason) = StopReason::for_event(&event.event_type) {
            if self.running.stop(&event.object.id, reason, event.seq) {
                info!(live_stream_id = %event.object.id, reason = reason.describe(), "Stopping the session.");
            }
        }
    }

    /// The control events recorded after position `seq`, of one live stream when given.
    pub(crate) async fn control_events_after(
        &self,
        mut seq: i64,
        live_stream_id: Option<&str>,
    ) -> Vec<Event> {
        let mut found = Vec::new();
        loop {
            let page = match self.db.events_after_seq(seq, CATCH_UP_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "Could not read the event history.");
                    return found;
                }
            };
            let Some(last) = page.last() else {
                return found;
            };
            seq = last.seq;
            found.extend(page.into_iter().filter(|event| {
                StopReason::for_event(&event.event_type).is_some()
                    && live_stream_id.is_none_or(|id| event.object.id == id)
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_map_to_stop_reasons() {
        assert_eq!(
            StopReason::for_event("live_stream.disabled"),
            Some(StopReason::Disabled)
        );
        assert_eq!(
            StopReason::for_event("live_stream.completed"),
            Some(StopReason::Completed)
        );
        assert_eq!(StopReason::for_event("live_stream.updated"), None);
        assert_eq!(StopReason::for_event("nonsense"), None);
    }

    #[tokio::test]
    async fn stopping_reaches_the_registered_session_only() {
        let sessions = RunningSessions::default();
        let mut signal = sessions.register("ls_a", 10);
        assert!(!sessions.stop("ls_b", StopReason::Disabled, 11));
        assert!(sessions.stop("ls_a", StopReason::Deleted, 11));
        assert_eq!(signal.requested().await, StopReason::Deleted);
        assert!(
            !sessions.stop("ls_a", StopReason::Deleted, 12),
            "stopped once"
        );
    }

    #[test]
    fn control_events_older_than_the_session_do_not_stop_it() {
        let sessions = RunningSessions::default();
        let _signal = sessions.register("ls_a", 10);
        assert!(!sessions.stop("ls_a", StopReason::Disabled, 9));
        assert!(!sessions.stop("ls_a", StopReason::Disabled, 10));
        assert!(sessions.stop("ls_a", StopReason::Disabled, 11));
    }

    #[tokio::test]
    async fn a_replaced_signal_never_answers() {
        let sessions = RunningSessions::default();
        let mut old = sessions.register("ls_a", 0);
        let _new = sessions.register("ls_a", 0);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), old.requested()).await;
        assert!(
            waited.is_err(),
            "a replaced signal must not stop its session"
        );
    }

    #[test]
    fn an_old_signal_dropped_late_keeps_the_newer_registration() {
        let sessions = RunningSessions::default();
        let old = sessions.register("ls_a", 0);
        let _new = sessions.register("ls_a", 0);
        drop(old);
        assert!(sessions.stop("ls_a", StopReason::Completed, 1));
    }
}
