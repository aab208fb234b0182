//! API keys: creation, lookup, listing and revocation.
//!
//! A key's secret is never stored in clear: `secret_hash` (SHA-256) checks Basic credentials,
//! and `secret_sealed` (the secret under the master key, see [`SecretBox`]) is opened only to
//! verify the HS256 JWTs the key signs.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use sea_orm_migration::SchemaManager;
use tracing::info;

use super::paging::{keyset_page, PageKey, PageOrder};
use super::{json_column, now, Db, Record, Result, StorageError};
use crate::entities::api_key;
use crate::ids;
use crate::migration::LEGACY_API_KEYS_TABLE;
use crate::model::{ApiKey, ApiKeyPage, Permission};
use crate::secret_box::{secret_hash, secret_matches, SecretBox};

fn api_key_from_row(row: api_key::Model) -> Result<ApiKey> {
    let permissions = json_column(Record::ApiKey, &row.id, "permissions", &row.permissions)?;
    Ok(ApiKey {
        id: row.id,
        name: row.name,
        permissions,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    })
}

const API_KEY_PAGE: PageKey<api_key::Entity> = PageKey {
    created_at: api_key::Column::CreatedAt,
    id: api_key::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::OldestFirst,
};

/// A key as it was before secrets were sealed, read from the legacy table.
struct LegacyApiKey {
    id: String,
    secret: String,
    name: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl Db {
    pub(super) fn secret_box(&self) -> Result<&SecretBox> {
        self.secret_box
            .as_ref()
            .ok_or(StorageError::MasterKeyMissing)
    }

    /// The row of a key whose secret is `secret`: hashed, sealed, nothing in clear.
    fn sealed_api_key_row(
        &self,
        id: &str,
        secret: &str,
        name: &str,
        permissions: &[Permission],
        created_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Result<api_key::ActiveModel> {
        let permissions =
            serde_json::to_string(permissions).map_err(|source| StorageError::CorruptJson {
                record: Record::ApiKey,
                id: id.to_owned(),
                column: "permissions",
                source,
            })?;
        Ok(api_key::ActiveModel {
            id: Set(id.to_owned()),
            name: Set(name.to_owned()),
            secret_hash: Set(secret_hash(secret)),
            secret_sealed: Set(self.secret_box()?.seal(secret.as_bytes())),
            permissions: Set(permissions),
            created_at: Set(created_at),
            revoked_at: Set(revoked_at),
        })
    }

    /// Creates a key with a fresh id and secret; the secret is returned only here.
    pub async fn create_api_key(
        &self,
        name: &str,
        permissions: &[Permission],
    ) -> Result<(ApiKey, String)> {
        let secret = ids::new_secret();
        let row = self.sealed_api_key_row(
            &ids::new_id(ids::API_KEY_PREFIX),
            &secret,
            name,
            permissions,
            now(),
            None,
        )?;
        let row = api_key::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(api_key_id = %row.id, "API key created.");
        Ok((api_key_from_row(row)?, secret))
    }

    /// Inserts an `admin` key with a given id and secret, or replaces the secret and name of
    /// the key with that id: used for the key configured in the environment. A revoked key
    /// stays revoked (its `revoked_at` is returned for the caller to report), so restarting
    /// with a revoked key in the environment does not bring it back.
    pub async fn insert_api_key(&self, id: &str, secret: &str, name: &str) -> Result<ApiKey> {
        let row = self.sealed_api_key_row(id, secret, name, &[Permission::Admin], now(), None)?;
        api_key::Entity::insert(row)
            .on_conflict(
                OnConflict::column(api_key::Column::Id)
                    .update_columns([
                        api_key::Column::SecretHash,
                        api_key::Column::SecretSealed,
                        api_key::Column::Name,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.conn)
            .await?;
        self.get_api_key(id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                record: Record::ApiKey,
                id: id.to_owned(),
            })
    }

    /// A key, revoked or not.
    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        api_key::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(api_key_from_row)
            .transpose()
    }

    /// Whether the key `id` exists and is not revoked: for long-lived requests (event streams)
    /// to stop once their key no longer authenticates.
    pub async fn api_key_is_usable(&self, id: &str) -> Result<bool> {
        Ok(api_key::Entity::find_by_id(id)
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&self.conn)
            .await?
            > 0)
    }

    /// Keys in creation order, revoked ones included, at most `limit` (clamped to
    /// 1..=[`super::MAX_PAGE_SIZE`]) after the key whose id is `after`.
    pub async fn list_api_keys(&self, limit: u64, after: Option<&str>) -> Result<ApiKeyPage> {
        let (rows, next_cursor) = keyset_page(
            &self.conn,
            api_key::Entity::find(),
            API_KEY_PAGE,
            limit,
            after,
        )
        .await?;
        let items = rows
            .into_iter()
            .map(api_key_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(ApiKeyPage { items, next_cursor })
    }

    /// The key `key_id` when `secret` is its secret (compared by hash, in constant time);
    /// `None` for an unknown key or a wrong secret. A revoked key is returned with its
    /// `revoked_at`, for the caller to refuse.
    pub async fn verify_api_key_secret(
        &self,
        key_id: &str,
        secret: &str,
    ) -> Result<Option<ApiKey>> {
        let Some(row) = api_key::Entity::find_by_id(key_id).one(&self.conn).await? else {
            return Ok(None);
        };
        if !secret_matches(secret, &row.secret_hash) {
            return Ok(None);
        }
        api_key_from_row(row).map(Some)
    }

    /// A key and its secret, opened from its sealed form to verify an HS256 JWT; `None` for
    /// an unknown key. A revoked key is returned with its `revoked_at`, for the caller to refuse.
    pub async fn api_key_jwt_secret(&self, key_id: &str) -> Result<Option<(ApiKey, Vec<u8>)>> {
        let Some(row) = api_key::Entity::find_by_id(key_id).one(&self.conn).await? else {
            return Ok(None);
        };
        let secret = self.open_sealed_secret(&row)?;
        Ok(Some((api_key_from_row(row)?, secret)))
    }

    fn open_sealed_secret(&self, row: &api_key::Model) -> Result<Vec<u8>> {
        self.secret_box()?
            .open(&row.secret_sealed)
            .map_err(|source| StorageError::SealedSecret {
                record: Record::ApiKey,
                id: row.id.clone(),
                source,
            })
    }

    /// Checks that the master key opens the stored secrets (it opens the newest key's), so a
    /// wrong `SLUICE_MASTER_KEY` or `master.key` is reported at startup.
    pub async fn check_master_key(&self) -> Result<()> {
        let newest = api_key::Entity::find()
            .order_by_desc(api_key::Column::CreatedAt)
            .one(&self.conn)
            .await?;
        match newest {
            Some(row) => self.open_sealed_secret(&row).map(drop),
            None => Ok(()),
        }
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
        info!(api_key_id = %key_id, "API key revoked.");
        Ok(())
    }

    /// Number of keys ever created, revoked ones included.
    pub async fn count_api_keys(&self) -> Result<u64> {
        Ok(api_key::Entity::find().count(&self.conn).await?)
    }

    /// Moves the keys of the pre-upgrade table (plaintext secrets) into `api_keys`, hashed and
    /// sealed with `admin` permissions (what every key could do before), then drops that table.
    /// Needs the master key only when there are such keys.
    pub(super) async fn seal_legacy_api_keys(&self) -> Result<()> {
        if !SchemaManager::new(&self.conn)
            .has_table(LEGACY_API_KEYS_TABLE)
            .await?
        {
            return Ok(());
        }
        let backend = self.conn.get_database_backend();
        let legacy = self
            .conn
            .query_all(Statement::from_string(
                backend,
                format!(
                    "SELECT id, secret, name, created_at, revoked_at FROM {LEGACY_API_KEYS_TABLE}"
                ),
            ))
            .await?
            .into_iter()
            .map(|row| {
                Ok(LegacyApiKey {
                    id: row.try_get("", "id")?,
                    secret: row.try_get("", "secret")?,
                    name: row.try_get("", "name")?,
                    created_at: row.try_get("", "created_at")?,
                    revoked_at: row.try_get("", "revoked_at")?,
                })
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        let rows = legacy
            .iter()
            .map(|key| {
                self.sealed_api_key_row(
                    &key.id,
                    &key.secret,
                    &key.name,
                    &[Permission::Admin],
                    key.created_at,
                    key.revoked_at,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let txn = self.conn.begin().await?;
        if !rows.is_empty() {
            api_key::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.execute_unprepared(&format!("DROP TABLE {LEGACY_API_KEYS_TABLE}"))
            .await?;
        txn.commit().await?;
        if !legacy.is_empty() {
            if backend == DbBackend::Sqlite {
                // SQLite leaves freed pages (the dropped plaintext) in the file and old frames
                // in the WAL: rewrite the file and empty the WAL so no secret stays in clear.
                self.conn.execute_unprepared("VACUUM").await?;
                self.conn
                    .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                    .await?;
            }
            info!(
                count = legacy.len(),
                "Sealed the secrets of API keys stored before secrets were kept sealed."
            );
        }
        Ok(())
    }
}
