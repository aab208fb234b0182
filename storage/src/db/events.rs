//! The event history: recording events and reading them back in order.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{now, Db, Record, Result, StorageError, MAX_PAGE_SIZE};
use crate::entities::event;
use crate::ids;
use crate::model::{Event, EventObject, EventPage, NewEvent};

fn event_from_row(row: event::Model) -> Result<Event> {
    let data = serde_json::from_str(&row.data).map_err(|source| StorageError::CorruptJson {
        record: Record::Event,
        id: row.id.clone(),
        column: "data",
        source,
    })?;
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
    /// Appends an event to the history and returns it as recorded.
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
        let row = event::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        event_from_row(row)
    }

    /// Events oldest first, at most `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]), starting after
    /// the event whose id is `after`.
    pub async fn list_events(&self, limit: u64, after: Option<&str>) -> Result<EventPage> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let after_seq = match after {
            Some(id) => self
                .event_seq(id)
                .await?
                .ok_or_else(|| StorageError::InvalidCursor(id.to_owned()))?,
            None => 0,
        };
        let mut items = self.events_after_seq(after_seq, limit + 1).await?;
        let has_more = items.len() as u64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if has_more {
            items.last().map(|event| event.id.clone())
        } else {
            None
        };
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
