//! The event bus: every domain event is first recorded in the database (so nothing is lost and
//! history can be replayed), then fanned out in-process to subscribers such as the media plane,
//! Server-Sent Events streams and the webhook dispatcher.
//!
//! Each process hands out events in the order of the history (`seq`), each once, whichever
//! process recorded them: the bus remembers the last event it broadcast and, when an event is
//! not the very next one, reads the ones in between back from the database first. With
//! [`EventBus::follow_other_processes`] the bus also hands out the events other processes
//! record in the same database: on Postgres it listens for the announcement each recorded event
//! makes (`NOTIFY` in the recording transaction), on SQLite it polls the history.
//!
//! Subscribers that fall behind the in-process channel miss live notifications
//! (`RecvError::Lagged`) but never events: they re-read the history from the database.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::db::{Db, StorageError};
use crate::model::{Event, NewEvent};

/// Events kept for subscribers that are momentarily slow.
const CHANNEL_CAPACITY: usize = 1024;
/// Events read from the history at once while catching up.
const CATCH_UP_PAGE: u64 = 100;
/// How often a process on SQLite looks for events other processes recorded.
const SQLITE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Pause before listening again after the Postgres listening connection failed.
const RELISTEN_DELAY: Duration = Duration::from_secs(1);

/// Records and distributes events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    db: Db,
    sender: broadcast::Sender<Event>,
    /// `seq` of the last event broadcast, once known: the first event published sets it, or
    /// [`EventBus::follow_other_processes`] sets it to the newest event in the history.
    broadcast_until: Arc<Mutex<Option<i64>>>,
    /// Turns true when the server shuts down, so long-lived subscribers (Server-Sent Events
    /// streams) end and let the HTTP server stop.
    closing: watch::Sender<bool>,
}

impl EventBus {
    /// A bus that hands out the events this process publishes; see
    /// [`EventBus::follow_other_processes`] for those of other processes.
    pub fn new(db: Db) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (closing, _) = watch::channel(false);
        Self {
            db,
            sender,
            broadcast_until: Arc::new(Mutex::new(None)),
            closing,
        }
    }

    /// Records `event` durably, then notifies every subscriber (of every process following
    /// the database, see [`EventBus::follow_other_processes`]).
    pub async fn publish(&self, event: NewEvent) -> Result<Event, StorageError> {
        let event = self.db.record_event(&event).await?;
        let mut broadcast_until = self.broadcast_until.lock().await;
        let mut last = broadcast_until.unwrap_or(event.seq - 1);
        if event.seq > last + 1 {
            // Events of other processes, or of faster publishers here, go out first.
            if let Err(error) = self.broadcast_history(&mut last).await {
                warn!(%error, "Cannot read the events recorded before a new one; subscribers find them in the history only.");
            }
        }
        if event.seq > last {
            self.broadcast(event.clone(), &mut last);
        }
        *broadcast_until = Some(last);
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

    /// From now on also hands out the events other processes record in the same database,
    /// in history order, until [`EventBus::close`]: the returned task ends then. On Postgres
    /// it listens for the announcement of each new event, and after a lost connection listens
    /// again and catches up from the history; on SQLite it reads the history every
    /// [`SQLITE_POLL_INTERVAL`].
    pub async fn follow_other_processes(&self) -> Result<JoinHandle<()>, StorageError> {
        {
            let mut broadcast_until = self.broadcast_until.lock().await;
            if broadcast_until.is_none() {
                *broadcast_until = Some(self.db.latest_event_seq().await?);
            }
        }
        let bus = self.clone();
        Ok(tokio::spawn(async move {
            tokio::select! {
                () = bus.closed() => {}
                () = bus.follow_announcements() => {}
            }
        }))
    }

    /// Runs until cancelled: broadcasts other processes' events as they are announced
    /// (Postgres) or found in the history (SQLite).
    async fn follow_announcements(&self) {
        loop {
            let Some(listening) = self.db.listen_for_events().await else {
                return self.poll_history().await;
            };
            match listening {
                Ok(mut listener) => {
                    info!("Following the events of other processes.");
                    // What was recorded while nobody listened.
                    self.catch_up(None).await;
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                self.catch_up(notification.payload().parse().ok()).await;
                            }
                            // Listening again already; announcements in between were lost.
                            Ok(None) => {
                                warn!("The connection listening for events was lost; catching up.");
                                self.catch_up(None).await;
                            }
                            Err(error) => {
                                warn!(%error, "Listening for events failed; listening again.");
                                break;
                            }
                        }
                    }
                }
                Err(error) => warn!(%error, "Cannot listen for events; trying again."),
            }
            tokio::time::sleep(RELISTEN_DELAY).await;
        }
    }

    /// Broadcasts what other processes recorded, every [`SQLITE_POLL_INTERVAL`].
    async fn poll_history(&self) {
        let mut poll = tokio::time::interval(SQLITE_POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            poll.tick().await;
            self.catch_up(None).await;
        }
    }

    /// Broadcasts the recorded events not broadcast yet; `announced` (an event's `seq`) saves
    /// the read when that event was broadcast already.
    async fn catch_up(&self, announced: Option<i64>) {
        let mut broadcast_until = self.broadcast_until.lock().await;
        let Some(mut last) = *broadcast_until else {
            return;
        };
        if announced.is_some_and(|seq| seq <= last) {
            return;
        }
        if let Err(error) = self.broadcast_history(&mut last).await {
            warn!(%error, "Cannot read the event history; trying again at the next event.");
        }
        *broadcast_until = Some(last);
    }

    /// Broadcasts the events recorded after `last`, oldest first, moving `last` along.
    async fn broadcast_history(&self, last: &mut i64) -> Result<(), StorageError> {
        loop {
            let page = self.db.events_after_seq(*last, CATCH_UP_PAGE).await?;
            let complete = (page.len() as u64) < CATCH_UP_PAGE;
            for event in page {
                self.broadcast(event, last);
            }
            if complete {
                return Ok(());
            }
        }
    }

    /// Sends `event` to the subscribers and records it as the last broadcast.
    fn broadcast(&self, event: Event, last: &mut i64) {
        *last = event.seq;
        // No subscriber is not an error: the event is in the history.
        let _ = self.sender.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;
    use crate::test_support::TestDatabase;
    use crate::DbEngine;

    /// A bus on a connection pool of its own, like one more process on the same database.
    async fn process_bus(database: &TestDatabase) -> (EventBus, JoinHandle<()>) {
        let db = Db::connect(database.url()).await.unwrap();
        let bus = EventBus::new(db);
        let follower = bus.follow_other_processes().await.unwrap();
        (bus, follower)
    }

    /// The next `count` events a subscriber receives, failing after a few seconds of silence.
    async fn receive(receiver: &mut broadcast::Receiver<Event>, count: usize) -> Vec<i64> {
        let mut seqs = Vec::new();
        while seqs.len() < count {
            let event = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
                .await
                .expect("an event within 10 s")
                .expect("no lag, no closed channel");
            seqs.push(event.seq);
        }
        seqs
    }

    #[tokio::test]
    async fn every_process_hands_out_every_event_once_in_history_order() {
        let database = TestDatabase::new();
        let setup = Db::connect(database.url()).await.unwrap();
        setup.migrate().await.unwrap();
        setup
            .record_event(&NewEvent::new(
                EventType::LiveStreamCreated,
                "ls_before",
                serde_json::json!({}),
            ))
            .await
            .unwrap();
        let (first, first_follower) = process_bus(&database).await;
        let (second, second_follower) = process_bus(&database).await;
        let mut first_events = first.subscribe();
        let mut second_events = second.subscribe();

        // Both processes publish at once, interleaving their events in the history.
        let mut publishing = tokio::task::JoinSet::new();
        for n in 0..20 {
            let bus = if n % 2 == 0 { &first } else { &second }.clone();
            publishing.spawn(async move {
                let object_id = format!("ls_{n}");
                let event = NewEvent::new(
                    EventType::LiveStreamCreated,
                    &object_id,
                    serde_json::json!({}),
                );
                bus.publish(event).await.unwrap().seq
            });
        }
        let mut published: Vec<i64> = publishing.join_all().await;
        published.sort_unstable();

        // The event recorded before the buses started is history, not news.
        assert_eq!(receive(&mut first_events, 20).await, published);
        assert_eq!(receive(&mut second_events, 20).await, published);
        tokio::time::sleep(SQLITE_POLL_INTERVAL * 2).await;
        assert!(first_events.try_recv().is_err(), "no event twice");
        assert!(second_events.try_recv().is_err(), "no event twice");

        if setup.engine() == DbEngine::Postgres {
            // Cut the second process's listening connection: it listens again and catches up.
            use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
            let admin = sea_orm::Database::connect(database.url()).await.unwrap();
            let cut = admin
                .query_all(Statement::from_string(
                    DatabaseBackend::Postgres,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE query LIKE 'LISTEN%' AND datname = current_database()",
                ))
                .await
                .unwrap();
            assert_eq!(cut.len(), 2, "both processes were listening");
            let event = NewEvent::new(EventType::LiveStreamDeleted, "ls_0", serde_json::json!({}));
            let seq = first.publish(event).await.unwrap().seq;
            assert_eq!(receive(&mut first_events, 1).await, [seq]);
            assert_eq!(receive(&mut second_events, 1).await, [seq]);
        }

        first.close();
        second.close();
        first_follower.await.unwrap();
        second_follower.await.unwrap();
    }
}
