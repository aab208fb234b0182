//! Simulcast targets of live streams: created and deleted through the API, read by the
//! restreamer when a session starts, their connection state written back as it changes. The
//! stream key is sealed under the master key like API key secrets.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use tracing::info;

use super::{from_db_count, now, to_db_count, Db, Record, Result, StorageError};
use crate::entities::simulcast_target;
use crate::ids::{LiveStreamId, SimulcastTargetId};
use crate::model::{NewSimulcastTarget, SimulcastTarget, SimulcastTargetStatus};

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::SimulcastTarget,
        id: id.to_owned(),
    }
}

impl Db {
    fn simulcast_target_from_row(&self, row: simulcast_target::Model) -> Result<SimulcastTarget> {
        let stream_key = self
            .secret_box()?
            .open(&row.stream_key_sealed)
            .map_err(|source| StorageError::SealedSecret {
                record: Record::SimulcastTarget,
                id: row.id.clone(),
                source,
            })?;
        Ok(SimulcastTarget {
            stream_key: String::from_utf8_lossy(&stream_key).into_owned(),
            id: SimulcastTargetId::stored(row.id),
            live_stream_id: LiveStreamId::stored(row.live_stream_id),
            url: row.url,
            rendition: row.rendition,
            passthrough: row.passthrough,
            status: row.status,
            last_error: row.last_error,
            bytes_sent: from_db_count(row.bytes_sent),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Adds a target to a live stream (idle until the stream is live).
    pub async fn create_simulcast_target(
        &self,
        live_stream_id: &LiveStreamId,
        target: &NewSimulcastTarget,
    ) -> Result<SimulcastTarget> {
        self.require_live_stream(live_stream_id).await?;
        let at = now();
        let row = simulcast_target::ActiveModel {
            id: Set(SimulcastTargetId::generate().into()),
            live_stream_id: Set(live_stream_id.to_string()),
            url: Set(target.url.clone()),
            stream_key_sealed: Set(self.secret_box()?.seal(target.stream_key.as_bytes())),
            rendition: Set(target.rendition.clone()),
            passthrough: Set(target.passthrough),
            status: Set(SimulcastTargetStatus::Idle),
            last_error: Set(None),
            bytes_sent: Set(0),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let row = simulcast_target::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(live_stream_id = %live_stream_id, simulcast_target_id = %row.id, "Simulcast target created.");
        self.simulcast_target_from_row(row)
    }

    /// A target by id, whichever stream it belongs to.
    pub async fn get_simulcast_target(
        &self,
        id: &SimulcastTargetId,
    ) -> Result<Option<SimulcastTarget>> {
        simulcast_target::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(|row| self.simulcast_target_from_row(row))
            .transpose()
    }

    /// A live stream's targets, oldest first.
    pub async fn list_simulcast_targets(
        &self,
        live_stream_id: &LiveStreamId,
    ) -> Result<Vec<SimulcastTarget>> {
        simulcast_target::Entity::find()
            .filter(simulcast_target::Column::LiveStreamId.eq(live_stream_id))
            .order_by_asc(simulcast_target::Column::CreatedAt)
            .order_by_asc(simulcast_target::Column::Id)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|row| self.simulcast_target_from_row(row))
            .collect()
    }

    /// How many targets a live stream has.
    pub async fn count_simulcast_targets(&self, live_stream_id: &LiveStreamId) -> Result<u64> {
        Ok(simulcast_target::Entity::find()
            .filter(simulcast_target::Column::LiveStreamId.eq(live_stream_id))
            .count(&self.conn)
            .await?)
    }

    /// Removes a target; returns it as it was.
    pub async fn delete_simulcast_target(&self, id: &SimulcastTargetId) -> Result<SimulcastTarget> {
        let target = self
            .get_simulcast_target(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        simulcast_target::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        info!(simulcast_target_id = %id, "Simulcast target deleted.");
        Ok(target)
    }

    /// Records a target's connection state; `Ok(None)` when it was deleted meanwhile.
    pub async fn set_simulcast_target_state(
        &self,
        id: &SimulcastTargetId,
        status: SimulcastTargetStatus,
        last_error: Option<&str>,
        bytes_sent: u64,
    ) -> Result<Option<SimulcastTarget>> {
        let result = simulcast_target::Entity::update_many()
            .filter(simulcast_target::Column::Id.eq(id))
            .col_expr(simulcast_target::Column::Status, status.into())
            .col_expr(
                simulcast_target::Column::LastError,
                last_error.map(str::to_owned).into(),
            )
            .col_expr(
                simulcast_target::Column::BytesSent,
                to_db_count(bytes_sent).into(),
            )
            .col_expr(simulcast_target::Column::UpdatedAt, now().into())
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        self.get_simulcast_target(id).await
    }
}
