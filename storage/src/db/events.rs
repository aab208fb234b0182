//! The event history: recording events (together with their webhook outbox rows) and reading
//! them back in order.

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use super::paging::{seq_page, SeqKey};
use super::{json_column, now, webhooks, Db, DbEngine, Record, Result};
use crate::entities::event;
use crate::ids;
use crate::model::{Event, EventFilter, EventObject, EventPage, NewEvent};

const EVENT_PAGE: SeqKey<event::Entity> = SeqKey {
    seq: event::Column::Seq,
    id: event::Column::Id,
    seq_of: |row| row.seq,
    id_of: |row| &row.id,
};

/// Key of the Postgres advisory lock that serialises event inserts (any constant unique to
/// this use; `0x736c_7569_6365_7631` spells "sluicev1").
const EVENT_APPEND_LOCK: i64 = 0x736c_7569_6365_7631;

/// The Postgres notification channel each recorded event is announced on, its `seq` as the
/// payload, so that every process sharing the database hands out every event.
const EVENTS_CHANNEL: &str = "sluice_events";

pub(super) fn event_from_row(row: event::Model) -> Result<Event> {
    let data = json_column(Record::Event, &row.id, "data", &row.data)?;
    Ok(Event {
        seq: row.seq,
        id: row.id,
        event_type: row.event_type,
        created_at: row.created_at,
        object: EventObject {
            object_type: row.object_type,
            id: row.object_id,
        },
        data,
    })
}

impl Db {
    /// Appends an event to the history and returns it as recorded. In the same transaction it
    /// queues one webhook delivery for every enabled endpoint that wants this type of event, so
    /// an event is never recorded without its deliveries (nor the other way round). Events
    /// become visible in `seq` order: once a reader sees an event, every earlier one is there.
    pub async fn record_event(&self, new: &NewEvent) -> Result<Event> {
        let row = event::ActiveModel {
            seq: sea_orm::ActiveValue::NotSet,
            id: Set(ids::new_id(ids::EVENT_PREFIX)),
            event_type: Set(new.event_type.as_str().to_owned()),
            object_type: Set(new.event_type.object_type().to_owned()),
            object_id: Set(new.object_id.clone()),
            data: Set(new.data.to_string()),
            created_at: Set(now()),
        };
        let txn = self.conn.begin().await?;
        if self.engine() == DbEngine::Postgres {
            // Postgres hands out `seq` at insert but transactions commit in any order, so a
            // reader could see event 6 before 5 is committed and skip 5 for good. Holding this
            // lock from before the insert until commit makes `seq` order commit order. (SQLite
            // allows one writer at a time anyway.)
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({EVENT_APPEND_LOCK})"
            ))
            .await?;
        }
        let row = event::Entity::insert(row).exec_with_returning(&txn).await?;
        let event = event_from_row(row)?;
        webhooks::queue_deliveries(&txn, &event).await?;
        if self.engine() == DbEngine::Postgres {
            // Sent at commit, in commit order, and never for a rolled back event.
            txn.execute_unprepared(&format!("NOTIFY {EVENTS_CHANNEL}, '{}'", event.seq))
                .await?;
        }
        txn.commit().await?;
        Ok(event)
    }

    /// Events oldest first, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]),
    /// starting after the event whose id is `after`.
    pub async fn list_events(&self, limit: u64, after: Option<&str>) -> Result<EventPage> {
        self.list_events_matching(limit, after, &EventFilter::default())
            .await
    }

    /// Like [`Db::list_events`], only the events that `filter` selects.
    pub async fn list_events_matching(
        &self,
        limit: u64,
        after: Option<&str>,
        filter: &EventFilter,
    ) -> Result<EventPage> {
        let mut query = event::Entity::find();
        if let Some(event_type) = filter.event_type {
            query = query.filter(event::Column::EventType.eq(event_type.as_str()));
        }
        if let Some(object_id) = &filter.object_id {
            query = query.filter(event::Column::ObjectId.eq(object_id.as_str()));
        }
        let (rows, next_cursor) = seq_page(&self.conn, query, EVENT_PAGE, limit, after).await?;
        let items = rows
            .into_iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(EventPage { items, next_cursor })
    }

    /// The position of the event with public id `id`, if it exists.
    pub async fn event_seq(&self, id: &str) -> Result<Option<i64>> {
        Ok(event::Entity::find()
            .filter(event::Column::Id.eq(id))
            .one(&self.conn)
            .await?
            .map(|row| row.seq))
    }

    /// The position of the newest event, 0 when there is none: where a reader that wants only
    /// events from now on starts.
    pub async fn latest_event_seq(&self) -> Result<i64> {
        Ok(event::Entity::find()
            .order_by_desc(event::Column::Seq)
            .one(&self.conn)
            .await?
            .map_or(0, |row| row.seq))
    }

    /// A connection of its own (taken from the pool) listening to the announcements of newly
    /// recorded events, on Postgres; `None` on SQLite, which has no notifications.
    pub(crate) async fn listen_for_events(
        &self,
    ) -> Option<std::result::Result<PgListener, sea_orm::sqlx::Error>> {
        if self.engine() != DbEngine::Postgres {
            return None;
        }
        let pool = self.conn.get_postgres_connection_pool();
        Some(
            async {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(EVENTS_CHANNEL).await?;
                Ok(listener)
            }
            .await,
        )
    }

    /// Up to `limit` events recorded after position `seq`, oldest first.
    pub async fn events_after_seq(&self, seq: i64, limit: u64) -> Result<Vec<Event>> {
        event::Entity::find()
            .filter(event::Column::Seq.gt(seq))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(event_from_row)
            .collect()
    }
}
