//! The `events` table: the durable history of domain events (`live_stream.created`,
//! `session.ended`, …) that `GET /v1/events`, Server-Sent Events and webhooks read.
//!
//! `seq` is an auto-increment key that orders events; `id` is the public `evt_…` id.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, string, string_len, string_uniq, text, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
    Id,
    EventType,
    ObjectType,
    ObjectId,
    Data,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_integer(Events::Seq).auto_increment().primary_key())
                    .col(string_uniq(Events::Id))
                    .col(string_len(Events::EventType, 64))
                    .col(string_len(Events::ObjectType, 32))
                    .col(string(Events::ObjectId))
                    .col(text(Events::Data))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
