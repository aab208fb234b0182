//! A live session's health as last judged.
//!
//! - `sessions`: `health`, JSON text of the session's current warnings and the last minutes
//!   of what its publisher sent (`StreamHealth`), rewritten while the session is live.
//!
//! Only `ADD COLUMN` with `NULL`, so existing rows stay valid on SQLite and Postgres alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Health,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(text_null(Sessions::Health))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Health)
                    .to_owned(),
            )
            .await
    }
}
