//! Live transcription of real-time rooms: each room's setting, the lines transcribed from its
//! participants' microphones while a session runs, and a full-text index over the lines.
//!
//! - `rooms`: `transcription`, JSON text of the room's transcription setting (`NULL`: off),
//!   added with `NULL` so existing rows stay valid.
//! - `room_transcript_lines`: the lines of a room session in the order they were stored
//!   (`line_no` from 0 per session; the primary key is `(session_id, line_no)`), each with the
//!   room, the participant who spoke it (sid, identity, name), the microphone track it was
//!   heard on, its times in milliseconds from the session's start and its text. They go with
//!   their session (a cascading foreign key), and so with their room. Lines are read and
//!   removed by session, which the primary key indexes; the room is kept with each line for
//!   search hits, which no query looks lines up by, so it has no index of its own.
//! - The search index, per backend, as for the asset transcripts (see the `transcripts`
//!   migration):
//!   - Postgres: a GIN index on `to_tsvector('english', text)` of `room_transcript_lines`,
//!     which the database keeps in step by itself; searches use the same expression.
//!   - SQLite: `room_transcript_search`, an FTS5 table holding each line's `text` (tokenised
//!     by the Porter stemmer over `unicode61`, like `transcript_search`), its `session_id` and
//!     its `line_no` (unindexed). It holds its own copy of the text, for the same reason as
//!     `transcript_search` (the lines have no `INTEGER PRIMARY KEY`, so `VACUUM` may renumber
//!     their rowids). Lines are indexed by the `Db` method that stores them, in the same
//!     transaction. A trigger on `room_sessions` removes a deleted session's index rows,
//!     whatever deletes it (a room's cascade included), finding them through the index itself
//!     (the session's id is indexed in the `session_id` column) rather than by scanning.
//!     Searches still join every hit back to `room_transcript_lines`, so an index row
//!     outliving its line is never shown.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, text, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Transcription,
}

#[derive(DeriveIden)]
enum RoomSessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RoomTranscriptLines {
    Table,
    SessionId,
    RoomId,
    LineNo,
    ParticipantSid,
    ParticipantIdentity,
    ParticipantName,
    TrackSid,
    StartMs,
    EndMs,
    Text,
}

/// SQLite: the FTS5 table over the lines.
const CREATE_SQLITE_SEARCH: &str = "CREATE VIRTUAL TABLE room_transcript_search USING fts5(\
     text, session_id, line_no UNINDEXED, \
     tokenize = 'porter unicode61 remove_diacritics 2')";
/// SQLite: a deleted session's index rows go with it, found through the index by the phrase
/// of its id in the `session_id` column, then checked against the stored id.
const CREATE_SQLITE_SEARCH_TRIGGER: &str = "CREATE TRIGGER room_sessions_search_delete \
     AFTER DELETE ON room_sessions BEGIN \
       DELETE FROM room_transcript_search WHERE rowid IN (\
         SELECT rowid FROM room_transcript_search \
         WHERE room_transcript_search MATCH 'session_id : \"' || replace(old.id, '\"', '\"\"') || '\"'\
       ) AND session_id = old.id; \
     END";
/// Postgres: the full-text index on the lines' text.
const CREATE_POSTGRES_SEARCH: &str = "CREATE INDEX idx_room_transcript_lines_text_search \
     ON room_transcript_lines USING GIN (to_tsvector('english', text))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        if backend == DatabaseBackend::MySql {
            return Err(DbErr::Migration(
                "room transcripts need SQLite or Postgres".to_owned(),
            ));
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(text_null(Rooms::Transcription))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomTranscriptLines::Table)
                    .col(string(RoomTranscriptLines::SessionId))
                    .col(string(RoomTranscriptLines::RoomId))
                    .col(integer(RoomTranscriptLines::LineNo))
                    .col(text(RoomTranscriptLines::ParticipantSid))
                    .col(text(RoomTranscriptLines::ParticipantIdentity))
                    .col(text(RoomTranscriptLines::ParticipantName))
                    .col(string(RoomTranscriptLines::TrackSid))
                    .col(big_integer(RoomTranscriptLines::StartMs))
                    .col(big_integer(RoomTranscriptLines::EndMs))
                    .col(text(RoomTranscriptLines::Text))
                    .primary_key(
                        Index::create()
                            .col(RoomTranscriptLines::SessionId)
                            .col(RoomTranscriptLines::LineNo),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_transcript_line_session")
                            .from(RoomTranscriptLines::Table, RoomTranscriptLines::SessionId)
                            .to(RoomSessions::Table, RoomSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if backend == DatabaseBackend::Sqlite {
            db.execute_unprepared(CREATE_SQLITE_SEARCH).await?;
            db.execute_unprepared(CREATE_SQLITE_SEARCH_TRIGGER).await?;
        } else {
            db.execute_unprepared(CREATE_POSTGRES_SEARCH).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Postgres's index goes with its table. SQLite's trigger is on `room_sessions`, which
        // stays, so it is dropped by name (before the table it writes to); the FTS5 table is a
        // table of its own.
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            let db = manager.get_connection();
            db.execute_unprepared("DROP TRIGGER room_sessions_search_delete")
                .await?;
            db.execute_unprepared("DROP TABLE room_transcript_search")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(RoomTranscriptLines::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .drop_column(Rooms::Transcription)
                    .to_owned(),
            )
            .await
    }
}
