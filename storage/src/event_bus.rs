//! The event bus: every domain event is first recorded in the database (so nothing is lost and
//! history can be replayed), then fanned out in-process to subscribers such as the media plane,
//! Server-Sent Events streams and the webhook dispatcher.
//!
//! Subscribers that fall behind the in-process channel miss live notifications
//! (`RecvError::Lagged`) but never events: they re-read the history from the database.

use tokio::sync::{broadcast, watch};

use crate::db::{Db, StorageError};
use crate::model::{Event, NewEvent};

/// Events kept for subscribers that are momentarily slow.
const CHANNEL_CAPACITY: usize = 1024;

/// Records and distributes events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    db: Db,
    sender: broadcast::Sender<Event>,
    /// Turns true when the server shuts down, so long-lived subscribers (Server-Sent Events
    /// streams) end and let the HTTP server stop.
    closing: watch::Sender<bool>,
}

impl EventBus {
    pub fn new(db: Db) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (closing, _) = watch::channel(false);
        Self {
            db,
            sender,
            closing,
        }
    }

    /// Records `event` durably, then notifies every subscriber.
    pub async fn publish(&self, event: NewEvent) -> Result<Event, StorageError> {
        let event = self.db.record_event(&event).await?;
        // No subscriber is not an error: the event is in the history.
        let _ = self.sender.send(event.clone());
        Ok(event)
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Tells long-lived subscribers that the server is shutting down.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`EventBus::close`] has been called.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        // The sender lives as long as `self`, so this only ends when closing turns true.
        let _ = closing.wait_for(|closing| *closing).await;
    }
}
