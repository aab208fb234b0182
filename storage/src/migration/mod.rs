//! Schema migrations, applied in order by [`Migrator`] (sea-orm-migration's `MigratorTrait`).

use sea_orm_migration::prelude::*;

mod m20250101_000001_create_tables;
mod m20261121_000002_events;
mod m20261121_000003_auth;
mod m20261121_000004_webhooks;
mod m20261121_000005_lifecycle;
mod m20261121_000006_jobs;
mod m20261121_000007_vod;
mod m20261121_000008_simulcast_targets;
mod m20261121_000009_recordings;
mod m20261207_000010_packagers;
mod m20261207_000011_session_health;
mod m20261207_000012_transcripts;
mod m20261207_000013_rooms;
mod m20261207_000014_room_composites;
mod m20261207_000015_room_transcripts;

pub use m20261121_000003_auth::LEGACY_API_KEYS_TABLE;

/// Every migration Sluice knows, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_tables::Migration),
            Box::new(m20261121_000002_events::Migration),
            Box::new(m20261121_000003_auth::Migration),
            Box::new(m20261121_000004_webhooks::Migration),
            Box::new(m20261121_000005_lifecycle::Migration),
            Box::new(m20261121_000006_jobs::Migration),
            Box::new(m20261121_000007_vod::Migration),
            Box::new(m20261121_000008_simulcast_targets::Migration),
            Box::new(m20261121_000009_recordings::Migration),
            Box::new(m20261207_000010_packagers::Migration),
            Box::new(m20261207_000011_session_health::Migration),
            Box::new(m20261207_000012_transcripts::Migration),
            Box::new(m20261207_000013_rooms::Migration),
            Box::new(m20261207_000014_room_composites::Migration),
            Box::new(m20261207_000015_room_transcripts::Migration),
        ]
    }
}
