//! Where a low-latency session's parts are served from.
//!
//! - `sessions`: `packager_url`, the internal base URL of the node packaging the session's
//!   LL-HLS in memory (`NULL` for other sessions), which api nodes forward held playlist and
//!   part requests to.
//!
//! Only `ADD COLUMN` with `NULL`, so existing rows stay valid on SQLite and Postgres alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    PackagerUrl,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_null(Sessions::PackagerUrl))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::PackagerUrl)
                    .to_owned(),
            )
            .await
    }
}
