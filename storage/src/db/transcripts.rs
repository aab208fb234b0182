//! Transcripts: the generated subtitles tracks asked for when an asset is created (made
//! `preparing` with it, in its transaction), the transcription job queued when the asset
//! becomes ready, the lines the worker stores (with their search index rows) and its outcome,
//! and full-text search over the lines of ready transcripts.
//!
//! Search runs on each backend's own full-text engine (see the `transcripts` migration): an
//! FTS5 table on SQLite, ranked by `bm25`; a GIN index on `to_tsvector('english', text)` on
//! Postgres, ranked by `ts_rank`. A person's query is never parsed as query syntax: it is cut
//! into words at whitespace, words without a letter or digit are dropped, and each remaining
//! word becomes a quoted FTS5 string (all of them required) on SQLite, or goes to
//! `plainto_tsquery` on Postgres; both are bound as parameters. The search over room
//! transcripts (`room_transcripts`) takes queries the same way, through [`full_text_query`].

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    QueryFilter, QueryOrder, QueryResult, Statement, TransactionTrait,
};
use serde_json::json;
use tracing::{info, warn};

use super::jobs::enqueue_job_in;
use super::{now, to_db_count, Db, DbEngine, Result, MAX_PAGE_SIZE};
use crate::entities::{transcript, transcript_line};
use crate::ids::{AssetId, TrackId};
use crate::model::{
    GeneratedSubtitles, NewJob, SearchHit, Transcript, TranscriptLine, TranscriptStatus,
    MAX_TRANSCRIPT_LINES, TRANSCRIBE_JOB_KIND,
};

/// Most words of a query that count; the rest are ignored.
const MAX_SEARCH_WORDS: usize = 32;
/// Lines inserted per statement: six parameters each, well under every backend's limit.
const LINES_PER_INSERT: usize = 1_000;

/// SQLite: the lines of the ready transcripts matching an FTS5 query (`?1`), best first.
/// `bm25` weighs only the `text` column; the query is restricted to it too.
const SQLITE_SEARCH: &str = "SELECT l.asset_id, l.track_id, t.language_code, l.start_ms, \
       l.end_ms, l.text \
     FROM transcript_search s \
     JOIN transcript_lines l ON l.track_id = s.track_id AND l.line_no = s.line_no \
     JOIN transcripts t ON t.id = l.track_id \
     WHERE transcript_search MATCH ?1 AND t.status = ?2 \
     ORDER BY bm25(transcript_search, 1.0, 0.0, 0.0), l.asset_id, l.start_ms, l.track_id, \
       l.line_no \
     LIMIT ?3";
/// Postgres: the lines of the ready transcripts matching `plainto_tsquery` of `$1`, best
/// first. The `to_tsvector` expression is the GIN index's.
const POSTGRES_SEARCH: &str = "SELECT l.asset_id, l.track_id, t.language_code, l.start_ms, \
       l.end_ms, l.text \
     FROM transcript_lines l \
     JOIN transcripts t ON t.id = l.track_id \
     WHERE to_tsvector('english', l.text) @@ plainto_tsquery('english', $1) AND t.status = $2 \
     ORDER BY ts_rank(to_tsvector('english', l.text), plainto_tsquery('english', $1)) DESC, \
       l.asset_id, l.start_ms, l.track_id, l.line_no \
     LIMIT $3";
/// SQLite: removes a track's index rows, found through the index by the phrase of its id in
/// the `track_id` column (`?1`), then checked against the id itself (`?2`).
const SQLITE_FORGET_TRACK: &str = "DELETE FROM transcript_search WHERE rowid IN (\
       SELECT rowid FROM transcript_search WHERE transcript_search MATCH ?1\
     ) AND track_id = ?2";
/// SQLite: indexes a track's stored lines.
const SQLITE_INDEX_TRACK: &str = "INSERT INTO transcript_search (text, track_id, line_no) \
     SELECT text, track_id, line_no FROM transcript_lines WHERE track_id = ?1";

fn transcript_from_row(row: transcript::Model) -> Transcript {
    Transcript {
        id: TrackId::stored(row.id),
        asset_id: AssetId::stored(row.asset_id),
        language_code: row.language_code,
        name: row.name,
        status: row.status,
        error: row.error,
        progress: u8::try_from(row.progress.clamp(0, 100)).unwrap_or(0),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn line_from_row(row: transcript_line::Model) -> TranscriptLine {
    TranscriptLine {
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        text: row.text,
    }
}

fn hit_from_row(row: &QueryResult) -> Result<SearchHit> {
    Ok(SearchHit {
        asset_id: AssetId::stored(row.try_get("", "asset_id")?),
        track_id: TrackId::stored(row.try_get("", "track_id")?),
        language_code: row.try_get("", "language_code")?,
        start_ms: row.try_get("", "start_ms")?,
        end_ms: row.try_get("", "end_ms")?,
        text: row.try_get("", "text")?,
    })
}

/// Inserts one preparing transcript per entry of `subtitles` for the asset `asset_id` made
/// at `at`; `conn` should be the asset's transaction. A language asked for twice is made
/// once, as first asked. Creation times step by a microsecond, so transcripts list in the
/// order they were asked for.
pub(super) async fn insert_transcripts(
    conn: &impl ConnectionTrait,
    asset_id: &str,
    subtitles: &[GeneratedSubtitles],
    at: DateTime<Utc>,
) -> Result<()> {
    let mut languages = HashSet::new();
    let rows: Vec<_> = subtitles
        .iter()
        .filter(|entry| languages.insert(entry.language_code.as_str()))
        .zip(0..)
        .map(|(entry, n)| {
            let created_at = at + Duration::microseconds(n);
            transcript::ActiveModel {
                id: Set(TrackId::generate().into()),
                asset_id: Set(asset_id.to_owned()),
                language_code: Set(entry.language_code.clone()),
                name: Set(entry.name.clone()),
                status: Set(TranscriptStatus::Preparing),
                error: Set(None),
                progress: Set(0),
                created_at: Set(created_at),
                updated_at: Set(created_at),
            }
        })
        .collect();
    if !rows.is_empty() {
        transcript::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Queues the transcription job of the asset `asset_id` when it has a preparing transcript
/// (unless one is queued or running already); `conn` should be the transaction that marks
/// the asset ready.
pub(super) async fn queue_transcription(conn: &impl ConnectionTrait, asset_id: &str) -> Result<()> {
    let preparing = transcript::Entity::find()
        .filter(transcript::Column::AssetId.eq(asset_id))
        .filter(transcript::Column::Status.eq(TranscriptStatus::Preparing))
        .one(conn)
        .await?;
    if preparing.is_some() {
        let job = NewJob::new(TRANSCRIBE_JOB_KIND, asset_id, json!({}));
        enqueue_job_in(conn, &job).await?;
    }
    Ok(())
}

/// The error of the transcripts of an asset that could not be prepared.
pub(super) const ASSET_ERRORED_TRANSCRIPT: &str =
    "the asset could not be prepared, so its speech was not transcribed";

/// Errors the preparing transcripts of the asset `asset_id` ([`ASSET_ERRORED_TRANSCRIPT`]):
/// no transcription job will run for them. `conn` should be the transaction that errors the
/// asset.
pub(super) async fn error_preparing_transcripts(
    conn: &impl ConnectionTrait,
    asset_id: &str,
) -> Result<()> {
    transcript::Entity::update_many()
        .col_expr(transcript::Column::Status, TranscriptStatus::Errored.into())
        .col_expr(
            transcript::Column::Error,
            Some(ASSET_ERRORED_TRANSCRIPT.to_owned()).into(),
        )
        .col_expr(transcript::Column::UpdatedAt, now().into())
        .filter(transcript::Column::AssetId.eq(asset_id))
        .filter(transcript::Column::Status.eq(TranscriptStatus::Preparing))
        .exec(conn)
        .await?;
    Ok(())
}

/// Removes the lines of track `id` and, on SQLite, their search index rows.
async fn delete_lines(conn: &impl ConnectionTrait, id: &TrackId) -> Result<()> {
    if conn.get_database_backend() == DatabaseBackend::Sqlite {
        // A track id is `track_` then letters and digits: no quote to escape.
        let phrase = format!("track_id : \"{}\"", id.as_str());
        conn.execute(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            SQLITE_FORGET_TRACK,
            [phrase.into(), id.into()],
        ))
        .await?;
    }
    transcript_line::Entity::delete_many()
        .filter(transcript_line::Column::TrackId.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The lines of `lines` worth storing, in time order: those with some text (NUL characters,
/// which Postgres text cannot hold, removed), lines starting together kept in the order
/// given, at most [`MAX_TRANSCRIPT_LINES`].
fn lines_to_store(id: &TrackId, lines: &[TranscriptLine]) -> Vec<TranscriptLine> {
    let mut kept: Vec<_> = lines
        .iter()
        .map(|line| TranscriptLine {
            start_ms: line.start_ms,
            end_ms: line.end_ms,
            text: line.text.replace('\0', ""),
        })
        .filter(|line| !line.text.trim().is_empty())
        .collect();
    kept.sort_by_key(|line| line.start_ms);
    if kept.len() > MAX_TRANSCRIPT_LINES {
        warn!(
            track_id = %id,
            lines = kept.len(),
            kept = MAX_TRANSCRIPT_LINES,
            "Transcript too long: its last lines are dropped."
        );
        kept.truncate(MAX_TRANSCRIPT_LINES);
    }
    kept
}

/// The words of a person's query that a search looks for: the runs between whitespace and
/// control characters (Postgres text cannot hold NUL) that hold a letter or a digit, at most
/// [`MAX_SEARCH_WORDS`].
fn search_words(query: &str) -> Vec<&str> {
    query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .take(MAX_SEARCH_WORDS)
        .collect()
}

/// An FTS5 query requiring every word in the `text` column: each word a quoted string (its
/// quotes doubled), so nothing in it is read as query syntax.
fn fts5_query(words: &[&str]) -> String {
    let phrases: Vec<_> = words
        .iter()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    format!("text : ({})", phrases.join(" "))
}

/// A person's `query` as `engine`'s full-text search takes it, to bind as a parameter: an FTS5
/// query requiring every word in the `text` column ([`fts5_query`]) on SQLite, the words for
/// `plainto_tsquery` on Postgres. `None` when it holds no word ([`search_words`]): such a
/// query finds nothing.
pub(super) fn full_text_query(engine: DbEngine, query: &str) -> Option<String> {
    let words = search_words(query);
    if words.is_empty() {
        return None;
    }
    Some(match engine {
        DbEngine::Sqlite => fts5_query(&words),
        DbEngine::Postgres => words.join(" "),
    })
}

impl Db {
    /// The transcripts of asset `asset`, in the order they were asked for (creation, then id).
    pub async fn transcripts_of(&self, asset: &AssetId) -> Result<Vec<Transcript>> {
        Ok(transcript::Entity::find()
            .filter(transcript::Column::AssetId.eq(asset))
            .order_by_asc(transcript::Column::CreatedAt)
            .order_by_asc(transcript::Column::Id)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(transcript_from_row)
            .collect())
    }

    /// Replaces the lines of transcript `id` (and their search index rows) with `lines` and
    /// marks it ready (its error cleared), in one transaction. Lines without text are not
    /// stored; the rest are stored in time order, at most [`MAX_TRANSCRIPT_LINES`] (the first
    /// ones; a warning is logged). `None` when the transcript is gone.
    pub async fn set_transcript_ready(
        &self,
        id: &TrackId,
        lines: &[TranscriptLine],
    ) -> Result<Option<Transcript>> {
        let kept = lines_to_store(id, lines);
        let txn = self.conn.begin().await?;
        // Updated first: on Postgres the row lock makes concurrent replacements take turns.
        transcript::Entity::update_many()
            .col_expr(transcript::Column::Status, TranscriptStatus::Ready.into())
            .col_expr(transcript::Column::Error, None::<String>.into())
            .col_expr(transcript::Column::Progress, 100_i16.into())
            .col_expr(transcript::Column::UpdatedAt, now().into())
            .filter(transcript::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let Some(row) = transcript::Entity::find_by_id(id).one(&txn).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        delete_lines(&txn, id).await?;
        for (chunk_no, chunk) in kept.chunks(LINES_PER_INSERT).enumerate() {
            let first = chunk_no * LINES_PER_INSERT;
            let rows = chunk.iter().zip(first..).map(|(line, line_no)| {
                transcript_line::ActiveModel {
                    track_id: Set(id.to_string()),
                    // At most MAX_TRANSCRIPT_LINES, well within i32.
                    line_no: Set(i32::try_from(line_no).unwrap_or(i32::MAX)),
                    asset_id: Set(row.asset_id.clone()),
                    start_ms: Set(line.start_ms),
                    end_ms: Set(line.end_ms),
                    text: Set(line.text.clone()),
                }
            });
            transcript_line::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        if self.engine == DbEngine::Sqlite {
            txn.execute(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                SQLITE_INDEX_TRACK,
                [id.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        info!(track_id = %id, asset_id = %row.asset_id, lines = kept.len(), "Transcript ready.");
        Ok(Some(transcript_from_row(row)))
    }

    /// Marks transcript `id` errored with a reason for a person, and removes any lines it had
    /// (an errored transcript has none). `None` when the transcript is gone.
    pub async fn set_transcript_errored(
        &self,
        id: &TrackId,
        reason: &str,
    ) -> Result<Option<Transcript>> {
        let txn = self.conn.begin().await?;
        let updated = transcript::Entity::update_many()
            .col_expr(transcript::Column::Status, TranscriptStatus::Errored.into())
            .col_expr(transcript::Column::Error, Some(reason.to_owned()).into())
            .col_expr(transcript::Column::UpdatedAt, now().into())
            .filter(transcript::Column::Id.eq(id))
            .exec(&txn)
            .await?
            .rows_affected;
        if updated == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        delete_lines(&txn, id).await?;
        let row = transcript::Entity::find_by_id(id).one(&txn).await?;
        txn.commit().await?;
        if row.is_some() {
            info!(track_id = %id, reason, "Transcript errored.");
        }
        Ok(row.map(transcript_from_row))
    }

    /// Records `percent` of the speech of asset `asset_id` recognised on its preparing
    /// transcripts.
    pub async fn set_transcripts_progress(&self, asset_id: &AssetId, percent: u8) -> Result<()> {
        transcript::Entity::update_many()
            .col_expr(
                transcript::Column::Progress,
                i16::from(percent.min(100)).into(),
            )
            .filter(transcript::Column::AssetId.eq(asset_id))
            .filter(transcript::Column::Status.eq(TranscriptStatus::Preparing))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// The stored lines of transcript `id`, in time order (none unless it is ready).
    pub async fn transcript_lines(&self, id: &TrackId) -> Result<Vec<TranscriptLine>> {
        Ok(transcript_line::Entity::find()
            .filter(transcript_line::Column::TrackId.eq(id))
            .order_by_asc(transcript_line::Column::LineNo)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(line_from_row)
            .collect())
    }

    /// The lines of ready transcripts that hold every word of `query` (a person's typing;
    /// English words also match their other forms), best match first, then by asset and
    /// time; at most `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]). Whatever `query` holds, it
    /// is never read as query syntax; one without a word (empty, or only punctuation) finds
    /// nothing, and only its first 32 words count.
    pub async fn search_transcripts(&self, query: &str, limit: u64) -> Result<Vec<SearchHit>> {
        let Some(terms) = full_text_query(self.engine, query) else {
            return Ok(Vec::new());
        };
        let limit = to_db_count(limit.clamp(1, MAX_PAGE_SIZE));
        let ready = TranscriptStatus::Ready.to_value();
        let (backend, sql) = match self.engine {
            DbEngine::Sqlite => (DatabaseBackend::Sqlite, SQLITE_SEARCH),
            DbEngine::Postgres => (DatabaseBackend::Postgres, POSTGRES_SEARCH),
        };
        let statement = Statement::from_sql_and_values(
            backend,
            sql,
            [terms.into(), ready.into(), limit.into()],
        );
        self.conn
            .query_all(statement)
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
    use crate::model::{AssetInput, AssetSettings, LadderCodec, NewAsset, PlaybackPolicy};

    /// A ready asset with one English transcript, ready with `lines`.
    async fn transcribed(db: &Db, lines: &[TranscriptLine]) -> (AssetId, TrackId) {
        let settings = AssetSettings {
            playback_policy: vec![PlaybackPolicy::Public],
            ladder: Default::default(),
            codecs: vec![LadderCodec::H264],
            passthrough: None,
            generated_subtitles: vec![GeneratedSubtitles {
                language_code: "en".to_owned(),
                name: "English".to_owned(),
            }],
        };
        let asset = db
            .create_asset(&NewAsset {
                input: AssetInput::Url {
                    url: "https://example.com/a.mp4".to_owned(),
                },
                settings: Some(settings),
                playback_policies: Vec::new(),
            })
            .await
            .unwrap();
        db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
        let track = db.transcripts_of(&asset.id).await.unwrap().remove(0).id;
        db.set_transcript_ready(&track, lines)
            .await
            .unwrap()
            .unwrap();
        (asset.id, track)
    }

    fn said(start_ms: i64, text: &str) -> TranscriptLine {
        TranscriptLine {
            start_ms,
            end_ms: start_ms + 1_000,
            text: text.to_owned(),
        }
    }

    /// How many rows SQLite's FTS5 table holds.
    async fn search_rows(db: &Db) -> i64 {
        super::super::sqlite_rows(db, "transcript_search").await
    }

    async fn found(db: &Db, query: &str) -> Vec<(TrackId, i64, String)> {
        db.search_transcripts(query, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|hit| (hit.track_id, hit.start_ms, hit.text))
            .collect()
    }

    #[tokio::test]
    async fn sqlite_index_rows_follow_their_lines_through_replacement_vacuum_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let (first_asset, first) = transcribed(
            &db,
            &[
                said(0, "alpha one"),
                said(1_000, "alpha two"),
                said(2_000, "x"),
            ],
        )
        .await;
        let (_, second) = transcribed(&db, &[said(0, "beta one"), said(1_000, "beta two")]).await;
        assert_eq!(search_rows(&db).await, 5);

        db.set_transcript_ready(&first, &[said(5_000, "gamma")])
            .await
            .unwrap();
        assert_eq!(search_rows(&db).await, 3);
        assert!(found(&db, "alpha").await.is_empty());

        // VACUUM may renumber the lines' rowids: hits still name the right lines, and a
        // track's index rows are still found and removed.
        db.conn.execute_unprepared("VACUUM").await.unwrap();
        assert_eq!(
            found(&db, "beta two").await,
            [(second.clone(), 1_000, "beta two".to_owned())]
        );
        assert_eq!(
            found(&db, "gamma").await,
            [(first.clone(), 5_000, "gamma".to_owned())]
        );
        db.set_transcript_ready(&second, &[said(0, "delta")])
            .await
            .unwrap();
        assert_eq!(search_rows(&db).await, 2);

        // Deleting the asset cascades to its transcript, whose trigger removes its rows.
        assert!(db.delete_asset(&first_asset).await.unwrap());
        assert_eq!(search_rows(&db).await, 1);
        assert!(found(&db, "gamma").await.is_empty());

        db.set_transcript_errored(&second, "gone wrong")
            .await
            .unwrap();
        assert_eq!(search_rows(&db).await, 0);
    }

    #[test]
    fn only_words_with_a_letter_or_digit_count() {
        assert_eq!(search_words("  "), Vec::<&str>::new());
        assert_eq!(search_words("\" ' -- * () ; !"), Vec::<&str>::new());
        assert_eq!(search_words("a OR b*"), ["a", "OR", "b*"]);
        assert_eq!(search_words("ab\u{0}cd\u{7}"), ["ab", "cd"]);
        assert_eq!(search_words("café\tnaïve\n東京"), ["café", "naïve", "東京"]);
        assert_eq!(search_words(&"word ".repeat(100)).len(), MAX_SEARCH_WORDS);
    }

    #[test]
    fn every_word_becomes_a_quoted_fts5_string_in_the_text_column() {
        assert_eq!(
            fts5_query(&["say", "\"hi\"", "NEAR("]),
            r#"text : ("say" """hi""" "NEAR(")"#
        );
    }

    #[test]
    fn a_query_becomes_each_engines_full_text_query_or_none_without_a_word() {
        assert_eq!(
            full_text_query(DbEngine::Sqlite, " budgets  \"q1\" "),
            Some(r#"text : ("budgets" """q1""")"#.to_owned())
        );
        assert_eq!(
            full_text_query(DbEngine::Postgres, " budgets  \"q1\" "),
            Some(r#"budgets "q1""#.to_owned())
        );
        for engine in [DbEngine::Sqlite, DbEngine::Postgres] {
            assert_eq!(full_text_query(engine, " -- * ; "), None);
        }
    }

    #[test]
    fn empty_lines_are_dropped_and_the_rest_put_in_time_order() {
        let line = |start_ms, text: &str| TranscriptLine {
            start_ms,
            end_ms: start_ms + 1_000,
            text: text.to_owned(),
        };
        let lines = [
            line(2_000, "second"),
            line(0, " \n\t"),
            line(1_000, "first"),
            line(2_000, "second, too"),
            line(3_000, ""),
            line(3_000, "\0"),
            line(4_000, "nul\0 removed"),
        ];
        let id = TrackId::parse("track_abc").unwrap();
        let stored = lines_to_store(&id, &lines);
        let texts: Vec<_> = stored.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, ["first", "second", "second, too", "nul removed"]);
    }
}
