//! API keys: creation, lookup and revocation.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{now, Db, Record, Result, StorageError};
use crate::entities::api_key;
use crate::ids;
use crate::model::ApiKey;

fn api_key_from_row(row: api_key::Model) -> ApiKey {
    ApiKey {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

impl Db {
    /// Creates a key with a fresh id and secret; the secret is returned only here.
    pub async fn create_api_key(&self, name: &str) -> Result<(ApiKey, String)> {
        let secret = ids::new_secret();
        let key = self
            .insert_api_key(&ids::new_id(ids::API_KEY_PREFIX), &secret, name)
            .await?;
        Ok((key, secret))
    }

    /// Inserts a key with a given id and secret, or replaces the secret and name of the key
    /// with that id (and un-revokes it): used for the key configured in the environment.
    pub async fn insert_api_key(&self, id: &str, secret: &str, name: &str) -> Result<ApiKey> {
        let row = api_key::ActiveModel {
            id: Set(id.to_owned()),
            secret: Set(secret.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(now()),
            revoked_at: Set(None),
        };
        api_key::Entity::insert(row)
            .on_conflict(
                OnConflict::column(api_key::Column::Id)
                    .update_columns([
                        api_key::Column::Secret,
                        api_key::Column::Name,
                        api_key::Column::RevokedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.conn)
            .await?;
        let row = api_key::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                record: Record::ApiKey,
                id: id.to_owned(),
            })?;
        Ok(api_key_from_row(row))
    }

    /// The secret of a usable key: `None` when the key is unknown or revoked.
    pub async fn api_key_secret(&self, key_id: &str) -> Result<Option<String>> {
        let row = api_key::Entity::find_by_id(key_id)
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.conn)
            .await?;
        Ok(row.map(|row| row.secret))
    }

    /// Marks a key revoked; it stops authenticating at once. Revoking twice keeps the first
    /// revocation time.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        if api_key::Entity::find_by_id(key_id)
            .one(&self.conn)
            .await?
            .is_none()
        {
            return Err(StorageError::NotFound {
                record: Record::ApiKey,
                id: key_id.to_owned(),
            });
        }
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Some(now()).into())
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Number of keys ever created, revoked ones included.
    pub async fn count_api_keys(&self) -> Result<u64> {
        Ok(api_key::Entity::find().count(&self.conn).await?)
    }
}
