//! Room transcripts: a room's live transcription setting, the lines the node hosting a session
//! appends to the session's transcript as its participants speak (with their search index
//! rows), reading a session's transcript back, and full-text search over every session's
//! lines.
//!
//! A session's lines are numbered from 0 in the order they are appended: each append locks the
//! session's row first (a write that changes nothing), so appends to one session take turns on
//! both backends and always continue from the last number stored. A session keeps at most
//! [`MAX_TRANSCRIPT_LINES`]; lines past it are not stored (a warning is logged).
//!
//! Search runs on each backend's own full-text engine, as for the asset transcripts (see the
//! `room_transcripts` migration): the FTS5 table `room_transcript_search` on SQLite, ranked by
//! `bm25`; a GIN index on `to_tsvector('english', text)` on Postgres, ranked by `ts_rank`. A
//! person's query is taken exactly as [`Db::search_transcripts`] takes it
//! ([`full_text_query`]), and bound as a parameter.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Statement, TransactionTrait,
};
use tracing::{info, warn};

use super::rooms::room_from_row;
use super::transcripts::full_text_query;
use super::{now, to_db_count, to_json, Db, DbEngine, Record, Result, StorageError, MAX_PAGE_SIZE};
use crate::entities::{room, room_session, room_transcript_line};
use crate::ids::{RoomId, RoomSessionId};
use crate::model::{
    NewRoomTranscriptLine, Room, RoomSearchHit, RoomTranscriptLine, RoomTranscription,
    MAX_TRANSCRIPT_LINES,
};

/// Lines inserted per statement: ten parameters each, well under every backend's limit.
const LINES_PER_INSERT: usize = 1_000;

/// SQLite: the room transcript lines matching an FTS5 query (`?1`), best first. `bm25` weighs
/// only the `text` column; the query is restricted to it too.
const SQLITE_SEARCH: &str = "SELECT l.room_id, l.session_id, l.participant_identity, \
       l.participant_name, l.start_ms, l.end_ms, l.text \
     FROM room_transcript_search s \
     JOIN room_transcript_lines l ON l.session_id = s.session_id AND l.line_no = s.line_no \
     WHERE room_transcript_search MATCH ?1 \
     ORDER BY bm25(room_transcript_search, 1.0, 0.0, 0.0), l.room_id, l.session_id, \
       l.start_ms, l.line_no \
     LIMIT ?2";
/// Postgres: the room transcript lines matching `plainto_tsquery` of `$1`, best first. The
/// `to_tsvector` expression is the GIN index's.
const POSTGRES_SEARCH: &str = "SELECT l.room_id, l.session_id, l.participant_identity, \
       l.participant_name, l.start_ms, l.end_ms, l.text \
     FROM room_transcript_lines l \
     WHERE to_tsvector('english', l.text) @@ plainto_tsquery('english', $1) \
     ORDER BY ts_rank(to_tsvector('english', l.text), plainto_tsquery('english', $1)) DESC, \
       l.room_id, l.session_id, l.start_ms, l.line_no \
     LIMIT $2";
/// SQLite: indexes a session's lines from line `?2` on.
const SQLITE_INDEX_LINES: &str = "INSERT INTO room_transcript_search (text, session_id, line_no) \
     SELECT text, session_id, line_no FROM room_transcript_lines \
     WHERE session_id = ?1 AND line_no >= ?2";

fn line_from_row(row: room_transcript_line::Model) -> RoomTranscriptLine {
    RoomTranscriptLine {
        line_no: u32::try_from(row.line_no).unwrap_or(0),
        participant_sid: row.participant_sid,
        participant_identity: row.participant_identity,
        participant_name: row.participant_name,
        track_sid: row.track_sid,
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        text: row.text,
    }
}

fn hit_from_row(row: &QueryResult) -> Result<RoomSearchHit> {
    Ok(RoomSearchHit {
        room_id: RoomId::stored(row.try_get("", "room_id")?),
        session_id: RoomSessionId::stored(row.try_get("", "session_id")?),
        participant_identity: row.try_get("", "participant_identity")?,
        participant_name: row.try_get("", "participant_name")?,
        start_ms: row.try_get("", "start_ms")?,
        end_ms: row.try_get("", "end_ms")?,
        text: row.try_get("", "text")?,
    })
}

/// The lines of `lines` worth storing, in the order given: those with some text (NUL
/// characters, which Postgres text cannot hold, removed).
fn lines_to_store(lines: &[NewRoomTranscriptLine]) -> Vec<NewRoomTranscriptLine> {
    lines
        .iter()
        .map(|line| NewRoomTranscriptLine {
            text: line.text.replace('\0', ""),
            ..line.clone()
        })
        .filter(|line| !line.text.trim().is_empty())
        .collect()
}

/// The number the next line of session `session` gets: one past its last stored line, 0 for
/// none.
async fn next_line_no(conn: &impl ConnectionTrait, session: &RoomSessionId) -> Result<usize> {
    let last: Option<Option<i32>> = room_transcript_line::Entity::find()
        .select_only()
        .column_as(room_transcript_line::Column::LineNo.max(), "last")
        .filter(room_transcript_line::Column::SessionId.eq(session))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(last
        .flatten()
        .map_or(0, |last| usize::try_from(last).unwrap_or(0) + 1))
}

impl Db {
    /// Sets the live transcription of room `id` (`None` turns it off) and bumps its
    /// `updated_at`; the room as it now is, or `None` when there is no such room.
    pub async fn set_room_transcription(
        &self,
        id: &RoomId,
        transcription: Option<&RoomTranscription>,
    ) -> Result<Option<Room>> {
        let txn = self.conn.begin().await?;
        let updated = room::Entity::update_many()
            .col_expr(
                room::Column::Transcription,
                transcription.map(to_json).into(),
            )
            .col_expr(room::Column::UpdatedAt, now().into())
            .filter(room::Column::Id.eq(id))
            .exec(&txn)
            .await?
            .rows_affected;
        if updated == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let row = room::Entity::find_by_id(id).one(&txn).await?;
        txn.commit().await?;
        if row.is_some() {
            info!(
                room_id = %id,
                language = transcription.map(|t| t.language.as_str()),
                "Room transcription set."
            );
        }
        row.map(room_from_row).transpose()
    }

    /// Appends `lines` to the transcript of room session `session` of room `room`, in one
    /// transaction, and indexes them for search; says how many were stored. Lines are kept in
    /// the order given, numbered on from the session's last stored line; lines without text
    /// are not stored. A session keeps at most [`MAX_TRANSCRIPT_LINES`]: the lines past it are
    /// not stored (a warning is logged). A session that does not exist (its room deleted
    /// meanwhile, say) or is not of `room` is [`StorageError::NotFound`].
    pub async fn append_room_transcript_lines(
        &self,
        session: &RoomSessionId,
        room: &RoomId,
        lines: &[NewRoomTranscriptLine],
    ) -> Result<u64> {
        let mut kept = lines_to_store(lines);
        if kept.is_empty() {
            return Ok(0);
        }
        let txn = self.conn.begin().await?;
        // A write that changes nothing, first: it locks the session's row (Postgres) or the
        // database (SQLite) until the commit, so appends to one session take turns and each
        // numbers on from the lines the one before it stored.
        let found = room_session::Entity::update_many()
            .col_expr(
                room_session::Column::NodeUrl,
                Expr::col(room_session::Column::NodeUrl).into(),
            )
            .filter(room_session::Column::Id.eq(session))
            .filter(room_session::Column::RoomId.eq(room))
            .exec(&txn)
            .await?
            .rows_affected;
        if found == 0 {
            txn.rollback().await?;
            return Err(StorageError::NotFound {
                record: Record::RoomSession,
                id: session.to_string(),
            });
        }
        let first = next_line_no(&txn, session).await?;
        let room_left = MAX_TRANSCRIPT_LINES.saturating_sub(first);
        if kept.len() > room_left {
            warn!(
                room_session_id = %session,
                lines = kept.len(),
                kept = room_left,
                max = MAX_TRANSCRIPT_LINES,
                "Room transcript full: lines past its cap are dropped."
            );
            kept.truncate(room_left);
        }
        if kept.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        for (chunk_no, chunk) in kept.chunks(LINES_PER_INSERT).enumerate() {
            let chunk_first = first + chunk_no * LINES_PER_INSERT;
            let rows = chunk.iter().zip(chunk_first..).map(|(line, line_no)| {
                room_transcript_line::ActiveModel {
                    session_id: Set(session.to_string()),
                    // At most MAX_TRANSCRIPT_LINES, well within i32.
                    line_no: Set(i32::try_from(line_no).unwrap_or(i32::MAX)),
                    room_id: Set(room.to_string()),
                    participant_sid: Set(line.participant_sid.clone()),
                    participant_identity: Set(line.participant_identity.clone()),
                    participant_name: Set(line.participant_name.clone()),
                    track_sid: Set(line.track_sid.clone()),
                    start_ms: Set(line.start_ms),
                    end_ms: Set(line.end_ms),
                    text: Set(line.text.clone()),
                }
            });
            room_transcript_line::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        if self.engine == DbEngine::Sqlite {
            txn.execute(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                SQLITE_INDEX_LINES,
                [
                    session.into(),
                    i32::try_from(first).unwrap_or(i32::MAX).into(),
                ],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(u64::try_from(kept.len()).unwrap_or(u64::MAX))
    }

    /// The transcript of room session `session`: its stored lines by start time, lines
    /// starting together in the order they were appended (none for a session that does not
    /// exist).
    pub async fn room_transcript_lines(
        &self,
        session: &RoomSessionId,
    ) -> Result<Vec<RoomTranscriptLine>> {
        Ok(room_transcript_line::Entity::find()
            .filter(room_transcript_line::Column::SessionId.eq(session))
            .order_by_asc(room_transcript_line::Column::StartMs)
            .order_by_asc(room_transcript_line::Column::LineNo)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(line_from_row)
            .collect())
    }

    /// The lines of room session transcripts that hold every word of `query` (a person's
    /// typing; English words also match their other forms), best match first, then by room,
    /// session and time; at most `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]). Queries are taken
    /// as [`Db::search_transcripts`] takes them: never read as query syntax, one without a
    /// word finds nothing, and only the first 32 words count.
    pub async fn search_room_transcripts(
        &self,
        query: &str,
        limit: u64,
    ) -> Result<Vec<RoomSearchHit>> {
        let Some(terms) = full_text_query(self.engine, query) else {
            return Ok(Vec::new());
        };
        let limit = to_db_count(limit.clamp(1, MAX_PAGE_SIZE));
        let (backend, sql) = match self.engine {
            DbEngine::Sqlite => (DatabaseBackend::Sqlite, SQLITE_SEARCH),
            DbEngine::Postgres => (DatabaseBackend::Postgres, POSTGRES_SEARCH),
        };
        self.conn
            .query_all(Statement::from_sql_and_values(
                backend,
                sql,
                [terms.into(), limit.into()],
            ))
            .await?
            .iter()
            .map(hit_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::model::NewRoom;

    fn said(start_ms: i64, text: &str) -> NewRoomTranscriptLine {
        NewRoomTranscriptLine {
            participant_sid: "PA_alice".to_owned(),
            participant_identity: "alice".to_owned(),
            participant_name: "Alice".to_owned(),
            track_sid: "TR_mic".to_owned(),
            start_ms,
            end_ms: start_ms + 1_000,
            text: text.to_owned(),
        }
    }

    /// How many rows SQLite's FTS5 table holds.
    async fn search_rows(db: &Db) -> i64 {
        super::super::sqlite_rows(db, "room_transcript_search").await
    }

    async fn found(db: &Db, query: &str) -> Vec<(RoomSessionId, i64, String)> {
        db.search_room_transcripts(query, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|hit| (hit.session_id, hit.start_ms, hit.text))
            .collect()
    }

    #[tokio::test]
    async fn sqlite_index_rows_follow_their_lines_through_vacuum_and_go_with_their_session() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let gone = db.create_room(&NewRoom::named("gone")).await.unwrap();
        let kept = db.create_room(&NewRoom::named("kept")).await.unwrap();
        let gone_session = db.start_room_session(&gone.id, "http://n:1").await.unwrap();
        let kept_session = db.start_room_session(&kept.id, "http://n:1").await.unwrap();
        db.append_room_transcript_lines(
            &gone_session.id,
            &gone.id,
            &[
                said(0, "alpha one"),
                said(1_000, "alpha two"),
                said(2_000, " "),
            ],
        )
        .await
        .unwrap();
        db.append_room_transcript_lines(&kept_session.id, &kept.id, &[said(0, "beta one")])
            .await
            .unwrap();
        db.append_room_transcript_lines(&kept_session.id, &kept.id, &[said(500, "beta two")])
            .await
            .unwrap();
        assert_eq!(search_rows(&db).await, 4, "each line indexed once");

        // VACUUM may renumber the lines' rowids: hits still name the right lines.
        db.conn.execute_unprepared("VACUUM").await.unwrap();
        assert_eq!(
            found(&db, "beta two").await,
            [(kept_session.id.clone(), 500, "beta two".to_owned())]
        );

        // Deleting a room cascades to its sessions, whose trigger removes their index rows.
        db.delete_room(&gone.id).await.unwrap();
        assert_eq!(search_rows(&db).await, 2);
        assert!(found(&db, "alpha").await.is_empty());
        assert_eq!(found(&db, "beta").await.len(), 2);
    }

    #[test]
    fn lines_without_text_are_dropped_and_the_rest_kept_in_the_order_given() {
        let lines = [
            said(2_000, "second"),
            said(0, " \n\t"),
            said(1_000, "first"),
            said(3_000, "\0"),
            said(4_000, "nul\0 removed"),
        ];
        let stored = lines_to_store(&lines);
        let texts: Vec<_> = stored.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, ["second", "first", "nul removed"]);
    }
}
