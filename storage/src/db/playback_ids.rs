//! Playback ids: the public ids under which viewers play a live stream, each `public` or
//! `signed`.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use tracing::info;

use super::{now, Db, Record, Result, StorageError};
use crate::entities::playback_id;
use crate::ids;
use crate::model::{PlaybackId, PlaybackPolicy};

fn playback_id_from_row(row: playback_id::Model) -> PlaybackId {
    PlaybackId {
        id: row.id,
        live_stream_id: row.live_stream_id,
        policy: row.policy,
        created_at: row.created_at,
    }
}

/// Inserts a playback id for a live stream known to exist; `conn` may be a transaction.
pub(super) async fn insert_playback_id(
    conn: &impl ConnectionTrait,
    live_stream_id: &str,
    policy: PlaybackPolicy,
) -> Result<PlaybackId> {
    let row = playback_id::ActiveModel {
        id: Set(ids::new_playback_id()),
        live_stream_id: Set(live_stream_id.to_owned()),
        policy: Set(policy),
        created_at: Set(now()),
    };
    let row = playback_id::Entity::insert(row)
        .exec_with_returning(conn)
        .await?;
    Ok(playback_id_from_row(row))
}

impl Db {
    /// Adds a playback id to a live stream.
    pub async fn create_playback_id(
        &self,
        live_stream_id: &str,
        policy: PlaybackPolicy,
    ) -> Result<PlaybackId> {
        self.require_live_stream(live_stream_id).await?;
        let playback_id = insert_playback_id(&self.conn, live_stream_id, policy).await?;
        info!(live_stream_id, playback_id = %playback_id.id, "Playback id created.");
        Ok(playback_id)
    }

    /// A live stream's playback ids, oldest first.
    pub async fn list_playback_ids(&self, live_stream_id: &str) -> Result<Vec<PlaybackId>> {
        Ok(playback_id::Entity::find()
            .filter(playback_id::Column::LiveStreamId.eq(live_stream_id))
            .order_by_asc(playback_id::Column::CreatedAt)
            .order_by_asc(playback_id::Column::Id)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(playback_id_from_row)
            .collect())
    }

    /// The playback id `id`, whatever stream it belongs to.
    pub async fn get_playback_id(&self, id: &str) -> Result<Option<PlaybackId>> {
        Ok(playback_id::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(playback_id_from_row))
    }

    /// Deletes playback id `id` of live stream `live_stream_id`; viewers can no longer play
    /// the stream under it.
    pub async fn delete_playback_id(&self, live_stream_id: &str, id: &str) -> Result<()> {
        let result = playback_id::Entity::delete_many()
            .filter(playback_id::Column::Id.eq(id))
            .filter(playback_id::Column::LiveStreamId.eq(live_stream_id))
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::NotFound {
                record: Record::PlaybackId,
                id: id.to_owned(),
            });
        }
        info!(live_stream_id, playback_id = %id, "Playback id deleted.");
        Ok(())
    }
}
