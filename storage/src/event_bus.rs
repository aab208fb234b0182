//! The event bus: every domain event is first recorded in the database (so nothing is lost and
//! history can be replayed), then fanned out in-process to subscribers such as the media plane,
//! Server-Sent Events streams and the webhook dispatcher.
//!
//! Subscribers that fall behind the in-process channel miss live notifications
//! (`RecvError::Lagged`) but never events: they re-read the history from the database.

use tokio::sync::broadcast;

use crate::db::{Db, StorageError};
use crate::model::{Event, NewEvent};

/// Events kept for subscribers that are momentarily slow.
const CHANNEL_CAPACITY: usize = 1024;

/// Records and distributes events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    db: Db,
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(db: Db) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { db, sender }
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
}
