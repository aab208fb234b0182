//! Playback ids: the public ids under which viewers play a live stream or an asset, each
//! `public` or `signed`.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use tracing::info;

use super::{now, Db, Record, Result, StorageError};
use crate::entities::playback_id;
use crate::ids;
use crate::ids::{AssetId, LiveStreamId};
use crate::model::{PlaybackId, PlaybackPolicy};

/// What a playback id plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlaybackOwner<'a> {
    LiveStream(&'a str),
    Asset(&'a str),
}

impl PlaybackOwner<'_> {
    /// The column naming this kind of owner, and the owner's id.
    fn column(self) -> (playback_id::Column, String) {
        match self {
            Self::LiveStream(id) => (playback_id::Column::LiveStreamId, id.to_owned()),
            Self::Asset(id) => (playback_id::Column::AssetId, id.to_owned()),
        }
    }
}

fn playback_id_from_row(row: playback_id::Model) -> PlaybackId {
    PlaybackId {
        id: row.id,
        live_stream_id: row.live_stream_id.map(LiveStreamId::stored),
        asset_id: row.asset_id.map(AssetId::stored),
        policy: row.policy,
        created_at: row.created_at,
    }
}

/// Inserts a playback id for an owner known to exist; `conn` may be a transaction.
pub(super) async fn insert_playback_id(
    conn: &impl ConnectionTrait,
    owner: PlaybackOwner<'_>,
    policy: PlaybackPolicy,
) -> Result<PlaybackId> {
    let (live_stream_id, asset_id) = match owner {
        PlaybackOwner::LiveStream(id) => (Some(id.to_owned()), None),
        PlaybackOwner::Asset(id) => (None, Some(id.to_owned())),
    };
    let row = playback_id::ActiveModel {
        id: Set(ids::new_playback_id()),
        live_stream_id: Set(live_stream_id),
        asset_id: Set(asset_id),
        policy: Set(policy),
        created_at: Set(now()),
    };
    let row = playback_id::Entity::insert(row)
        .exec_with_returning(conn)
        .await?;
    Ok(playback_id_from_row(row))
}

/// An owner's playback ids, oldest first.
pub(super) async fn owned_playback_ids(
    conn: &impl ConnectionTrait,
    owner: PlaybackOwner<'_>,
) -> Result<Vec<PlaybackId>> {
    let (column, id) = owner.column();
    Ok(playback_id::Entity::find()
        .filter(column.eq(id))
        .order_by_asc(playback_id::Column::CreatedAt)
        .order_by_asc(playback_id::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(playback_id_from_row)
        .collect())
}

impl Db {
    /// Adds a playback id to a live stream.
    pub async fn create_playback_id(
        &self,
        live_stream_id: &LiveStreamId,
        policy: PlaybackPolicy,
    ) -> Result<PlaybackId> {
        self.require_live_stream(live_stream_id).await?;
        let playback_id = insert_playback_id(
            &self.conn,
            PlaybackOwner::LiveStream(live_stream_id),
            policy,
        )
        .await?;
        info!(live_stream_id = %live_stream_id, playback_id = %playback_id.id, "Playback id created.");
        Ok(playback_id)
    }

    /// Adds a playback id to an asset.
    pub async fn create_asset_playback_id(
        &self,
        asset_id: &AssetId,
        policy: PlaybackPolicy,
    ) -> Result<PlaybackId> {
        self.require_asset(asset_id).await?;
        let playback_id =
            insert_playback_id(&self.conn, PlaybackOwner::Asset(asset_id), policy).await?;
        info!(asset_id = %asset_id, playback_id = %playback_id.id, "Playback id created.");
        Ok(playback_id)
    }

    /// A live stream's playback ids, oldest first.
    pub async fn list_playback_ids(
        &self,
        live_stream_id: &LiveStreamId,
    ) -> Result<Vec<PlaybackId>> {
        owned_playback_ids(&self.conn, PlaybackOwner::LiveStream(live_stream_id)).await
    }

    /// An asset's playback ids, oldest first.
    pub async fn asset_playback_ids(&self, asset_id: &AssetId) -> Result<Vec<PlaybackId>> {
        owned_playback_ids(&self.conn, PlaybackOwner::Asset(asset_id)).await
    }

    /// The playback id `id`, whatever it plays.
    pub async fn get_playback_id(&self, id: &str) -> Result<Option<PlaybackId>> {
        Ok(playback_id::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(playback_id_from_row))
    }

    /// Deletes playback id `id` of live stream `live_stream_id`; viewers can no longer play
    /// the stream under it.
    pub async fn delete_playback_id(&self, live_stream_id: &LiveStreamId, id: &str) -> Result<()> {
        self.delete_owned_playback_id(PlaybackOwner::LiveStream(live_stream_id), id)
            .await
    }

    /// Deletes playback id `id` of asset `asset_id`.
    pub async fn delete_asset_playback_id(&self, asset_id: &AssetId, id: &str) -> Result<()> {
        self.delete_owned_playback_id(PlaybackOwner::Asset(asset_id), id)
            .await
    }

    async fn delete_owned_playback_id(&self, owner: PlaybackOwner<'_>, id: &str) -> Result<()> {
        let (column, owner_id) = owner.column();
        let result = playback_id::Entity::delete_many()
            .filter(playback_id::Column::Id.eq(id))
            .filter(column.eq(owner_id.clone()))
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::NotFound {
                record: Record::PlaybackId,
                id: id.to_owned(),
            });
        }
        info!(owner = %owner_id, playback_id = %id, "Playback id deleted.");
        Ok(())
    }
}
