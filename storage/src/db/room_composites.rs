//! Room composites: recorded by the API when it starts one, marked active and stopped by the
//! room side as the composite publishes and ends, listed per room as its history.
//!
//! A room has at most one running composite (`waiting` or `active`): a partial unique index
//! guards it, so of two starts racing for one room, on one node or several, the second is
//! [`StorageError::Conflict`]. A composite only moves forward (`waiting` → `active` →
//! `stopped`, or `waiting` → `stopped`); [`Db::mark_room_composite_active`] and
//! [`Db::mark_room_composite_stopped`] say whether they moved it, so whoever moved it publishes
//! the event, once.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::info;

use super::paging::{keyset_page, PageKey, PageOrder};
use super::rooms::{is_foreign_key_violation, is_unique_violation, room_not_found};
use super::{json_column, now, to_json, Db, Record, Result, StorageError};
use crate::entities::room_composite;
use crate::ids::{LiveStreamId, RoomCompositeId, RoomId};
use crate::model::{
    NewRoomComposite, RoomComposite, RoomCompositeLayout, RoomCompositeOutputs, RoomCompositePage,
    RoomCompositeStatus,
};

const ROOM_COMPOSITE_PAGE: PageKey<room_composite::Entity> = PageKey {
    created_at: room_composite::Column::CreatedAt,
    id: room_composite::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::NewestFirst,
};

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::RoomComposite,
        id: id.to_owned(),
    }
}

fn composite_from_row(row: room_composite::Model) -> Result<RoomComposite> {
    let outputs = json_column(Record::RoomComposite, &row.id, "outputs", &row.outputs)?;
    Ok(RoomComposite {
        id: RoomCompositeId::stored(row.id),
        room_id: RoomId::stored(row.room_id),
        live_stream_id: LiveStreamId::stored(row.live_stream_id),
        layout: row.layout,
        resolution: row.resolution,
        latency_mode: row.latency_mode,
        outputs,
        status: row.status,
        created_at: row.created_at,
        started_at: row.started_at,
        stopped_at: row.stopped_at,
    })
}

impl Db {
    /// Records a composite of a room, `waiting`. A room that already has a running one is
    /// [`StorageError::Conflict`]; a room that does not exist, [`StorageError::NotFound`].
    pub async fn create_room_composite(&self, new: &NewRoomComposite) -> Result<RoomComposite> {
        let row = room_composite::ActiveModel {
            id: Set(RoomCompositeId::generate().into()),
            room_id: Set(new.room_id.to_string()),
            live_stream_id: Set(new.live_stream_id.to_string()),
            layout: Set(new.layout),
            resolution: Set(new.resolution),
            latency_mode: Set(new.latency_mode),
            outputs: Set(to_json(&new.outputs)),
            status: Set(RoomCompositeStatus::Waiting),
            created_at: Set(now()),
            started_at: Set(None),
            stopped_at: Set(None),
        };
        match room_composite::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await
        {
            Ok(row) => {
                info!(room_id = %row.room_id, room_composite_id = %row.id,
                    live_stream_id = %row.live_stream_id, "Room composite created.");
                composite_from_row(row)
            }
            Err(err) if is_unique_violation(&err) => Err(StorageError::Conflict {
                record: Record::RoomComposite,
                detail: "the room already has a composite running".to_owned(),
            }),
            Err(err) if is_foreign_key_violation(&err) => Err(room_not_found(&new.room_id)),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn get_room_composite(&self, id: &RoomCompositeId) -> Result<Option<RoomComposite>> {
        room_composite::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(composite_from_row)
            .transpose()
    }

    /// The room's running composite (`waiting` or `active`), if it has one.
    pub async fn running_room_composite(&self, room_id: &RoomId) -> Result<Option<RoomComposite>> {
        room_composite::Entity::find()
            .filter(room_composite::Column::RoomId.eq(room_id))
            .filter(room_composite::Column::Status.ne(RoomCompositeStatus::Stopped))
            .one(&self.conn)
            .await?
            .map(composite_from_row)
            .transpose()
    }

    /// A room's composites, newest first, at most `limit` (clamped to
    /// 1..=[`super::MAX_PAGE_SIZE`]), starting after the composite whose id is `after`. A room
    /// that does not exist is [`StorageError::NotFound`].
    pub async fn list_room_composites(
        &self,
        room_id: &RoomId,
        limit: u64,
        after: Option<&str>,
    ) -> Result<RoomCompositePage> {
        if self.get_room(room_id).await?.is_none() {
            return Err(room_not_found(room_id));
        }
        let query =
            room_composite::Entity::find().filter(room_composite::Column::RoomId.eq(room_id));
        let (rows, next_cursor) =
            keyset_page(&self.conn, query, ROOM_COMPOSITE_PAGE, limit, after).await?;
        Ok(RoomCompositePage {
            items: rows
                .into_iter()
                .map(composite_from_row)
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Marks a `waiting` composite `active` (it publishes now), `started_at` now. Returns the
    /// composite when this call moved it; `None` when it was not waiting (already active, or
    /// stopped) or no longer exists.
    pub async fn mark_room_composite_active(
        &self,
        id: &RoomCompositeId,
    ) -> Result<Option<RoomComposite>> {
        self.move_composite(
            id,
            RoomCompositeStatus::Active,
            room_composite::Column::StartedAt,
            room_composite::Column::Status.eq(RoomCompositeStatus::Waiting),
        )
        .await
    }

    /// Marks a running composite `stopped`, `stopped_at` now. Returns the composite when this
    /// call stopped it (publish `room.composite.stopped` then); `None` when it was already
    /// stopped or no longer exists.
    pub async fn mark_room_composite_stopped(
        &self,
        id: &RoomCompositeId,
    ) -> Result<Option<RoomComposite>> {
        self.move_composite(
            id,
            RoomCompositeStatus::Stopped,
            room_composite::Column::StoppedAt,
            room_composite::Column::Status.ne(RoomCompositeStatus::Stopped),
        )
        .await
    }

    /// Records a composite's new layout; returns the composite as it is afterwards.
    pub async fn set_room_composite_layout(
        &self,
        id: &RoomCompositeId,
        layout: RoomCompositeLayout,
    ) -> Result<RoomComposite> {
        let result = room_composite::Entity::update_many()
            .col_expr(room_composite::Column::Layout, layout.into())
            .filter(room_composite::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        self.updated_composite(id, result.rows_affected).await
    }

    /// Records a composite's outputs (its simulcast targets changed); returns the composite
    /// as it is afterwards.
    pub async fn set_room_composite_outputs(
        &self,
        id: &RoomCompositeId,
        outputs: &RoomCompositeOutputs,
    ) -> Result<RoomComposite> {
        let result = room_composite::Entity::update_many()
            .col_expr(room_composite::Column::Outputs, to_json(outputs).into())
            .filter(room_composite::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        self.updated_composite(id, result.rows_affected).await
    }

    /// Moves a composite matching `from` to `status`, stamping `stamped` now; returns it when
    /// this call moved it.
    async fn move_composite(
        &self,
        id: &RoomCompositeId,
        status: RoomCompositeStatus,
        stamped: room_composite::Column,
        from: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Option<RoomComposite>> {
        let moved = room_composite::Entity::update_many()
            .col_expr(room_composite::Column::Status, status.into())
            .col_expr(stamped, Some(now()).into())
            .filter(room_composite::Column::Id.eq(id))
            .filter(from)
            .exec(&self.conn)
            .await?
            .rows_affected
            > 0;
        if !moved {
            return Ok(None);
        }
        info!(room_composite_id = %id, status = status.as_str(), "Room composite status changed.");
        self.get_room_composite(id).await
    }

    /// The composite after an update that touched `rows_affected` rows.
    async fn updated_composite(
        &self,
        id: &RoomCompositeId,
        rows_affected: u64,
    ) -> Result<RoomComposite> {
        if rows_affected == 0 {
            return Err(not_found(id));
        }
        self.get_room_composite(id)
            .await?
            .ok_or_else(|| not_found(id))
    }
}
