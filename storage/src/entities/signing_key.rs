//! The `signing_keys` table.

use sea_orm::entity::prelude::*;

use crate::model::SigningAlgorithm;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The `kid` of the tokens the key signs.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub algorithm: SigningAlgorithm,
    /// SubjectPublicKeyInfo PEM; the private half is never stored.
    pub public_key: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
