//! Playback signing keys: only their public halves are stored. Deleting a key refuses every
//! token it signed from then on.

use sea_orm::{ActiveValue::Set, EntityTrait};
use tracing::info;

use super::paging::{keyset_page, PageKey, PageOrder};
use super::{now, Db, Record, Result, StorageError};
use crate::entities::signing_key;
use crate::ids;
use crate::model::{SigningAlgorithm, SigningKey, SigningKeyPage};

fn signing_key_from_row(row: signing_key::Model) -> SigningKey {
    SigningKey {
        id: row.id,
        algorithm: row.algorithm,
        public_key_pem: row.public_key,
        created_at: row.created_at,
    }
}

const SIGNING_KEY_PAGE: PageKey<signing_key::Entity> = PageKey {
    created_at: signing_key::Column::CreatedAt,
    id: signing_key::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::OldestFirst,
};

impl Db {
    /// Records the public half (SubjectPublicKeyInfo PEM) of a new signing key.
    pub async fn create_signing_key(
        &self,
        algorithm: SigningAlgorithm,
        public_key_pem: &str,
    ) -> Result<SigningKey> {
        let row = signing_key::ActiveModel {
            id: Set(ids::new_id(ids::SIGNING_KEY_PREFIX)),
            algorithm: Set(algorithm),
            public_key: Set(public_key_pem.to_owned()),
            created_at: Set(now()),
        };
        let row = signing_key::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(signing_key_id = %row.id, "Signing key created.");
        Ok(signing_key_from_row(row))
    }

    pub async fn get_signing_key(&self, id: &str) -> Result<Option<SigningKey>> {
        Ok(signing_key::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(signing_key_from_row))
    }

    /// Signing keys in creation order, at most `limit` (clamped to
    /// 1..=[`super::MAX_PAGE_SIZE`]) after the key whose id is `after`.
    pub async fn list_signing_keys(
        &self,
        limit: u64,
        after: Option<&str>,
    ) -> Result<SigningKeyPage> {
        let (rows, next_cursor) = keyset_page(
            &self.conn,
            signing_key::Entity::find(),
            SIGNING_KEY_PAGE,
            limit,
            after,
        )
        .await?;
        Ok(SigningKeyPage {
            items: rows.into_iter().map(signing_key_from_row).collect(),
            next_cursor,
        })
    }

    /// Deletes a signing key: tokens it signed stop being accepted at once.
    pub async fn delete_signing_key(&self, id: &str) -> Result<()> {
        let result = signing_key::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::NotFound {
                record: Record::SigningKey,
                id: id.to_owned(),
            });
        }
        info!(signing_key_id = %id, "Signing key deleted.");
        Ok(())
    }
}
