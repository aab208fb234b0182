//! Direct uploads: creation, the received offset (advanced only from where it stands), the
//! completion that turns an upload into an asset, and expiry.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use tracing::info;

use super::assets::insert_asset;
use super::paging::{keyset_page, PageKey, PageOrder};
use super::{json_column, now, to_json, Db, Record, Result, StorageError};
use crate::entities::upload;
use crate::ids;
use crate::ids::{AssetId, UploadId};
use crate::model::{Asset, AssetInput, NewAsset, NewUpload, Upload, UploadPage, UploadStatus};

const UPLOAD_PAGE: PageKey<upload::Entity> = PageKey {
    created_at: upload::Column::CreatedAt,
    id: upload::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::NewestFirst,
};

fn upload_from_row(row: upload::Model) -> Result<Upload> {
    let settings = json_column(Record::Upload, &row.id, "settings", &row.settings)?;
    Ok(Upload {
        id: UploadId::stored(row.id),
        status: row.status,
        settings,
        max_size: row.max_size,
        length: row.length,
        offset: row.offset,
        metadata: row.metadata,
        asset_id: row.asset_id.map(AssetId::stored),
        error: row.error,
        expires_at: row.expires_at,
        token: row.token,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

impl Db {
    /// Creates a waiting upload with a fresh id and URL token.
    pub async fn create_upload(&self, new: &NewUpload) -> Result<Upload> {
        let at = now();
        let row = upload::ActiveModel {
            id: Set(UploadId::generate().into()),
            status: Set(UploadStatus::Waiting),
            settings: Set(to_json(&new.settings)),
            max_size: Set(new.max_size),
            length: Set(None),
            offset: Set(0),
            metadata: Set(None),
            asset_id: Set(None),
            error: Set(None),
            token: Set(ids::new_secret()),
            expires_at: Set(new.expires_at),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let row = upload::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(upload_id = %row.id, "Upload created.");
        upload_from_row(row)
    }

    pub async fn get_upload(&self, id: &UploadId) -> Result<Option<Upload>> {
        upload::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(upload_from_row)
            .transpose()
    }

    /// Uploads newest first, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]), after
    /// the upload whose id is `after`.
    pub async fn list_uploads(&self, limit: u64, after: Option<&str>) -> Result<UploadPage> {
        let (rows, next_cursor) = keyset_page(
            &self.conn,
            upload::Entity::find(),
            UPLOAD_PAGE,
            limit,
            after,
        )
        .await?;
        Ok(UploadPage {
            items: rows
                .into_iter()
                .map(upload_from_row)
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Declares the total length (and the client's metadata) of a waiting upload whose length
    /// is not known yet. `false` when it was already declared or the upload is not waiting.
    pub async fn set_upload_length(
        &self,
        id: &UploadId,
        length: i64,
        metadata: Option<&str>,
    ) -> Result<bool> {
        let updated = upload::Entity::update_many()
            .col_expr(upload::Column::Length, Some(length).into())
            .col_expr(upload::Column::Metadata, metadata.map(str::to_owned).into())
            .col_expr(upload::Column::UpdatedAt, now().into())
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::Status.eq(UploadStatus::Waiting))
            .filter(upload::Column::Length.is_null())
            .exec(&self.conn)
            .await?
            .rows_affected;
        Ok(updated == 1)
    }

    /// Moves a waiting upload's offset from `from` to `to`. `false` when the offset is not
    /// `from` any more (another request moved it) or the upload is not waiting.
    pub async fn advance_upload(&self, id: &UploadId, from: i64, to: i64) -> Result<bool> {
        let updated = upload::Entity::update_many()
            .col_expr(upload::Column::Offset, to.into())
            .col_expr(upload::Column::UpdatedAt, now().into())
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::Status.eq(UploadStatus::Waiting))
            .filter(upload::Column::Offset.eq(from))
            .exec(&self.conn)
            .await?
            .rows_affected;
        Ok(updated == 1)
    }

    /// Turns a waiting upload that has all its bytes into an asset (with the upload's
    /// settings, its playback ids, its transcripts and its processing job), in one
    /// transaction. `None` when the upload is not waiting or not complete.
    pub async fn complete_upload(&self, id: &UploadId) -> Result<Option<(Upload, Asset)>> {
        let Some(upload) = self.get_upload(id).await? else {
            return Ok(None);
        };
        if upload.status != UploadStatus::Waiting || upload.length != Some(upload.offset) {
            return Ok(None);
        }
        let txn = self.conn.begin().await?;
        let new = NewAsset {
            input: AssetInput::Upload {
                upload_id: id.clone(),
            },
            settings: Some(upload.settings.clone()),
            playback_policies: upload.settings.playback_policy.clone(),
        };
        let asset = insert_asset(&txn, &new).await?;
        let updated = upload::Entity::update_many()
            .col_expr(upload::Column::Status, UploadStatus::AssetCreated.into())
            .col_expr(upload::Column::AssetId, Some(asset.id.to_string()).into())
            .col_expr(upload::Column::UpdatedAt, now().into())
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::Status.eq(UploadStatus::Waiting))
            .filter(upload::Column::Offset.eq(upload.offset))
            .exec(&txn)
            .await?
            .rows_affected;
        if updated == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        info!(upload_id = %id, asset_id = %asset.id, "Upload completed.");
        let upload = self.get_upload(id).await?.ok_or(StorageError::NotFound {
            record: Record::Upload,
            id: id.to_string(),
        })?;
        Ok(Some((upload, asset)))
    }

    /// Ends a waiting upload as `status` (errored, cancelled, timed out) with an optional
    /// reason. `false` when it was not waiting.
    pub async fn set_upload_status(
        &self,
        id: &UploadId,
        status: UploadStatus,
        error: Option<&str>,
    ) -> Result<bool> {
        let updated = upload::Entity::update_many()
            .col_expr(upload::Column::Status, status.into())
            .col_expr(upload::Column::Error, error.map(str::to_owned).into())
            .col_expr(upload::Column::UpdatedAt, now().into())
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::Status.eq(UploadStatus::Waiting))
            .exec(&self.conn)
            .await?
            .rows_affected;
        if updated == 1 {
            info!(upload_id = %id, status = ?status, "Upload ended.");
        }
        Ok(updated == 1)
    }

    /// Waiting uploads whose `expires_at` is before `at`, oldest first.
    pub async fn expired_uploads(&self, at: DateTime<Utc>) -> Result<Vec<Upload>> {
        upload::Entity::find()
            .filter(upload::Column::Status.eq(UploadStatus::Waiting))
            .filter(upload::Column::ExpiresAt.lt(at))
            .order_by_asc(upload::Column::ExpiresAt)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(upload_from_row)
            .collect()
    }
}
