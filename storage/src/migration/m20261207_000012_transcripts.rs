//! Transcripts: the subtitles tracks generated from an asset's speech, their timed lines, and a
//! full-text index over the lines.
//!
//! - `live_streams`: `generated_subtitles`, JSON text of the subtitles each recording of the
//!   stream is made with, and `captions`, JSON text of its live captions setting (`NULL`:
//!   none), added with `NULL` so existing rows stay valid.
//! - `transcripts`: one row per asset and language (a unique index), with its name, status
//!   (`preparing`, `ready`, `errored`), error and progress (percent recognised); it goes with its asset (a cascading foreign
//!   key, like playback ids).
//! - `transcript_lines`: the lines of a transcript in time order (`line_no` from 0), with their
//!   times in milliseconds and the asset they belong to (indexed); they go with their
//!   transcript (a cascading foreign key).
//! - The search index, per backend:
//!   - Postgres: a GIN index on `to_tsvector('english', text)` of `transcript_lines`, which
//!     the database keeps in step by itself; searches use the same expression.
//!   - SQLite: `transcript_search`, an FTS5 table holding each line's `text` (tokenised by the
//!     Porter stemmer over `unicode61`, so English words match their other forms as on
//!     Postgres; unlike Postgres, diacritics are also ignored), its `track_id` and its
//!     `line_no` (unindexed). It holds its
//!     own copy of the text: an external-content table (`content='transcript_lines'`) would
//!     need a rowid that never changes, and `transcript_lines`, keyed by `(track_id,
//!     line_no)`, has no `INTEGER PRIMARY KEY`, so `VACUUM` (which the server runs) may
//!     renumber its rows. Lines are indexed by the `Db` methods that store them, in the same
//!     transaction. A track's index rows are found through the index itself (its id is
//!     indexed in the `track_id` column), not by scanning: the methods that replace a track's
//!     lines remove them so, and a trigger on `transcripts` does the same when a transcript
//!     is deleted, whatever deletes it (an asset's cascade included). Searches still join
//!     every hit back to `transcript_lines` and `transcripts`, so an index row outliving its
//!     line is never shown.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, small_integer, string, string_len, text, text_null,
    timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transcripts {
    Table,
    Id,
    AssetId,
    LanguageCode,
    Name,
    Status,
    Error,
    Progress,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TranscriptLines {
    Table,
    TrackId,
    AssetId,
    LineNo,
    StartMs,
    EndMs,
    Text,
}

#[derive(DeriveIden)]
enum Assets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    GeneratedSubtitles,
    Captions,
}

const TRANSCRIPTS_ASSET_LANGUAGE_INDEX: &str = "idx_transcripts_asset_id_language_code";
const LINES_ASSET_INDEX: &str = "idx_transcript_lines_asset_id";

/// SQLite: the FTS5 table over the lines.
const CREATE_SQLITE_SEARCH: &str = "CREATE VIRTUAL TABLE transcript_search USING fts5(\
     text, track_id, line_no UNINDEXED, \
     tokenize = 'porter unicode61 remove_diacritics 2')";
/// SQLite: a deleted transcript's index rows go with it, found through the index by the
/// phrase of its id in the `track_id` column, then checked against the stored id.
const CREATE_SQLITE_SEARCH_TRIGGER: &str = "CREATE TRIGGER transcripts_search_delete \
     AFTER DELETE ON transcripts BEGIN \
       DELETE FROM transcript_search WHERE rowid IN (\
         SELECT rowid FROM transcript_search \
         WHERE transcript_search MATCH 'track_id : \"' || replace(old.id, '\"', '\"\"') || '\"'\
       ) AND track_id = old.id; \
     END";
/// Postgres: the full-text index on the lines' text.
const CREATE_POSTGRES_SEARCH: &str = "CREATE INDEX idx_transcript_lines_text_search \
     ON transcript_lines USING GIN (to_tsvector('english', text))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Transcripts::Table)
                    .col(string(Transcripts::Id).primary_key())
                    .col(string(Transcripts::AssetId))
                    .col(string(Transcripts::LanguageCode))
                    .col(text(Transcripts::Name))
                    .col(string_len(Transcripts::Status, 16))
                    .col(text_null(Transcripts::Error))
                    .col(small_integer(Transcripts::Progress).default(0))
                    .col(timestamp_with_time_zone(Transcripts::CreatedAt))
                    .col(timestamp_with_time_zone(Transcripts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transcript_asset")
                            .from(Transcripts::Table, Transcripts::AssetId)
                            .to(Assets::Table, Assets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(TRANSCRIPTS_ASSET_LANGUAGE_INDEX)
                    .table(Transcripts::Table)
                    .col(Transcripts::AssetId)
                    .col(Transcripts::LanguageCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TranscriptLines::Table)
                    .col(string(TranscriptLines::TrackId))
                    .col(string(TranscriptLines::AssetId))
                    .col(integer(TranscriptLines::LineNo))
                    .col(big_integer(TranscriptLines::StartMs))
                    .col(big_integer(TranscriptLines::EndMs))
                    .col(text(TranscriptLines::Text))
                    .primary_key(
                        Index::create()
                            .col(TranscriptLines::TrackId)
                            .col(TranscriptLines::LineNo),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transcript_line_track")
                            .from(TranscriptLines::Table, TranscriptLines::TrackId)
                            .to(Transcripts::Table, Transcripts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(LINES_ASSET_INDEX)
                    .table(TranscriptLines::Table)
                    .col(TranscriptLines::AssetId)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(CREATE_SQLITE_SEARCH).await?;
                db.execute_unprepared(CREATE_SQLITE_SEARCH_TRIGGER).await?;
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(CREATE_POSTGRES_SEARCH).await?;
            }
            DatabaseBackend::MySql => {
                return Err(DbErr::Migration(
                    "transcripts need SQLite or Postgres".to_owned(),
                ))
            }
        }
        // SQLite takes one change per ALTER TABLE.
        for column in [LiveStreams::GeneratedSubtitles, LiveStreams::Captions] {
            manager
                .alter_table(
                    Table::alter()
                        .table(LiveStreams::Table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [LiveStreams::GeneratedSubtitles, LiveStreams::Captions] {
            manager
                .alter_table(
                    Table::alter()
                        .table(LiveStreams::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Postgres's index and SQLite's trigger go with their tables; SQLite's FTS5 table is
        // a table of its own.
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE transcript_search")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(TranscriptLines::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Transcripts::Table).to_owned())
            .await
    }
}
