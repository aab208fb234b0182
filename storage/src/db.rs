//! The metadata database: [`Db`] wraps a sea-orm connection (SQLite by default) and offers the
//! repository functions the rest of Sluice calls. Callers get plain domain structs from
//! [`crate::model`], never sea-orm models.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectOptions, Database, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tracing::info;

use crate::entities::{api_key, live_stream, session};
use crate::ids;
use crate::migration::Migrator;
use crate::model::{ApiKey, LiveStream, LiveStreamPage, LiveStreamStatus, Session};

/// How long a writer waits for SQLite's lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest page [`Db::list_live_streams`] returns, whatever the caller asks.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    ApiKey,
    LiveStream,
    Session,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApiKey => "API key",
            Self::LiveStream => "live stream",
            Self::Session => "session",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("{record} {id} not found")]
    NotFound { record: Record, id: String },
    #[error("pagination cursor {0:?} names no live stream")]
    InvalidCursor(String),
    #[error("{record} {id} holds invalid JSON in column {column}: {source}")]
    CorruptJson {
        record: Record,
        id: String,
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Handle on the metadata database; cheap to clone (it shares one connection pool).
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
}

/// Timestamps are kept to the microsecond, the precision Postgres stores, so values read back
/// equal the values written on every backend.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn to_db_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_db_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn api_key_from_row(row: api_key::Model) -> ApiKey {
    ApiKey {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

fn live_stream_from_row(row: live_stream::Model) -> Result<LiveStream> {
    let ladder = serde_json::from_str(&row.ladder).map_err(|source| StorageError::CorruptJson {
        record: Record::LiveStream,
        id: row.id.clone(),
        column: "ladder",
        source,
    })?;
    Ok(LiveStream {
        id: row.id,
        name: row.name,
        stream_key: row.stream_key,
        playback_id: row.playback_id,
        ladder,
        status: row.status,
        active_session_id: row.active_session_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn session_from_row(row: session::Model) -> Result<Session> {
    let input = row
        .input
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|source| StorageError::CorruptJson {
            record: Record::Session,
            id: row.id.clone(),
            column: "input",
            source,
        })?;
    Ok(Session {
        id: row.id,
        live_stream_id: row.live_stream_id,
        started_at: row.started_at,
        ended_at: row.ended_at,
        client_addr: row.client_addr,
        encoder: row.encoder,
        input,
        bytes_received: from_db_count(row.bytes_received),
        frames_dropped: from_db_count(row.frames_dropped),
    })
}

impl Db {
    /// Opens the database at `url`, e.g. `sqlite:///var/lib/sluice/sluice.db?mode=rwc`.
    /// SQLite runs in WAL mode with a busy timeout so readers never block the writer.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false).map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true)
        });
        let conn = Database::connect(options).await?;
        Ok(Self { conn })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        Ok(())
    }

    // ---- API keys ----

    /// Creates a key with a fresh id and secret; the secret is returned only here.
    pub async fn create_api_key(&self, name: &str) -> Result<(ApiKey, String)> {
        let secret = ids::new_secret();
        let key = self
            .insert_api_key(&ids::new_id(ids::API_KEY_PREFIX), &secret, name)
            .await?;
        Ok((key, secret))
    }

    /// Inserts a key with a given id and secret, or replaces the secret and name of the key
    /// with that id (and un-revokes it): used for the key configured in the environment.
    pub async fn insert_api_key(&self, id: &str, secret: &str, name: &str) -> Result<ApiKey> {
        let row = api_key::ActiveModel {
            id: Set(id.to_owned()),
            secret: Set(secret.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(now()),
            revoked_at: Set(None),
        };
        api_key::Entity::insert(row)
            .on_conflict(
                OnConflict::column(api_key::Column::Id)
                    .update_columns([
                        api_key::Column::Secret,
                        api_key::Column::Name,
                        api_key::Column::RevokedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.conn)
            .await?;
        let row = api_key::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                record: Record::ApiKey,
                id: id.to_owned(),
            })?;
        Ok(api_key_from_row(row))
    }

    /// The secret of a usable key: `None` when the key is unknown or revoked.
    pub async fn api_key_secret(&self, key_id: &str) -> Result<Option<String>> {
        let row = api_key::Entity::find_by_id(key_id)
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.conn)
            .await?;
        Ok(row.map(|row| row.secret))
    }

    /// Marks a key revoked; it stops authenticating at once. Revoking twice keeps the first
    /// revocation time.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        if api_key::Entity::find_by_id(key_id)
            .one(&self.conn)
            .await?
            .is_none()
        {
            return Err(StorageError::NotFound {
                record: Record::ApiKey,
                id: key_id.to_owned(),
            });
        }
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Some(now()).into())
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Number of keys ever created, revoked ones included.
    pub async fn count_api_keys(&self) -> Result<u64> {
        Ok(api_key::Entity::find().count(&self.conn).await?)
    }

    // ---- live streams ----

    /// Creates an idle live stream with a fresh id, stream key and playback id. `ladder` must
    /// already be validated.
    pub async fn create_live_stream(
        &self,
        name: &str,
        ladder: &serde_json::Value,
    ) -> Result<LiveStream> {
        let created_at = now();
        let row = live_stream::ActiveModel {
            id: Set(ids::new_id(ids::LIVE_STREAM_PREFIX)),
            name: Set(name.to_owned()),
            stream_key: Set(ids::new_secret()),
            playback_id: Set(ids::new_playback_id()),
            ladder: Set(ladder.to_string()),
            status: Set(LiveStreamStatus::Idle),
            active_session_id: Set(None),
            created_at: Set(created_at),
            updated_at: Set(created_at),
        };
        let row = live_stream::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(live_stream_id = %row.id, "Live stream created.");
        live_stream_from_row(row)
    }

    pub async fn get_live_stream(&self, id: &str) -> Result<Option<LiveStream>> {
        live_stream::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(live_stream_from_row)
            .transpose()
    }

    /// Live streams in creation order, at most `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]),
    /// starting after the stream whose id is `after` (the previous page's `next_cursor`).
    pub async fn list_live_streams(
        &self,
        limit: u64,
        after: Option<&str>,
    ) -> Result<LiveStreamPage> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let mut query = live_stream::Entity::find()
            .order_by_asc(live_stream::Column::CreatedAt)
            .order_by_asc(live_stream::Column::Id)
            .limit(limit + 1);
        if let Some(after) = after {
            let anchor = live_stream::Entity::find_by_id(after)
                .one(&self.conn)
                .await?
                .ok_or_else(|| StorageError::InvalidCursor(after.to_owned()))?;
            query = query.filter(
                Condition::any()
                    .add(live_stream::Column::CreatedAt.gt(anchor.created_at))
                    .add(
                        Condition::all()
                            .add(live_stream::Column::CreatedAt.eq(anchor.created_at))
                            .add(live_stream::Column::Id.gt(anchor.id)),
                    ),
            );
        }
        let mut rows = query.all(&self.conn).await?;
        let has_more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let items = rows
            .into_iter()
            .map(live_stream_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if has_more {
            items.last().map(|stream| stream.id.clone())
        } else {
            None
        };
        Ok(LiveStreamPage { items, next_cursor })
    }

    pub async fn find_by_stream_key(&self, stream_key: &str) -> Result<Option<LiveStream>> {
        live_stream::Entity::find()
            .filter(live_stream::Column::StreamKey.eq(stream_key))
            .one(&self.conn)
            .await?
            .map(live_stream_from_row)
            .transpose()
    }

    pub async fn find_by_playback_id(&self, playback_id: &str) -> Result<Option<LiveStream>> {
        live_stream::Entity::find()
            .filter(live_stream::Column::PlaybackId.eq(playback_id))
            .one(&self.conn)
            .await?
            .map(live_stream_from_row)
            .transpose()
    }

    /// Sets a stream's status and the session it is receiving (`None` when idle).
    pub async fn set_live_stream_status(
        &self,
        id: &str,
        status: LiveStreamStatus,
        active_session_id: Option<&str>,
    ) -> Result<LiveStream> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Status, status.into())
            .col_expr(
                live_stream::Column::ActiveSessionId,
                active_session_id.map(str::to_owned).into(),
            )
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        let not_found = || StorageError::NotFound {
            record: Record::LiveStream,
            id: id.to_owned(),
        };
        if result.rows_affected == 0 {
            return Err(not_found());
        }
        self.get_live_stream(id).await?.ok_or_else(not_found)
    }

    /// Turns an `idle` stream `active` in one conditional update, so that of two publishers
    /// racing for the same stream exactly one wins. Returns whether this call won; the session
    /// is attached afterwards with [`Db::set_live_stream_status`].
    pub async fn claim_live_stream(&self, id: &str) -> Result<bool> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Status, LiveStreamStatus::Active.into())
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .filter(live_stream::Column::Status.eq(LiveStreamStatus::Idle))
            .exec(&self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Marks every `active` stream idle and ends every open session: run at startup, since a
    /// crash leaves them looking live. Returns how many streams were reset.
    pub async fn reset_stale_active_streams(&self) -> Result<u64> {
        let at = now();
        let txn = self.conn.begin().await?;
        session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Some(at).into())
            .filter(session::Column::EndedAt.is_null())
            .exec(&txn)
            .await?;
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Status, LiveStreamStatus::Idle.into())
            .col_expr(live_stream::Column::ActiveSessionId, None::<String>.into())
            .col_expr(live_stream::Column::UpdatedAt, at.into())
            .filter(live_stream::Column::Status.eq(LiveStreamStatus::Active))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if result.rows_affected > 0 {
            info!(
                count = result.rows_affected,
                "Reset live streams left active by a previous run."
            );
        }
        Ok(result.rows_affected)
    }

    // ---- sessions ----

    /// Records a publisher connecting to a live stream. `encoder` is what it said about itself.
    pub async fn start_session(
        &self,
        live_stream_id: &str,
        client_addr: &str,
        encoder: Option<&str>,
    ) -> Result<Session> {
        if self.get_live_stream(live_stream_id).await?.is_none() {
            return Err(StorageError::NotFound {
                record: Record::LiveStream,
                id: live_stream_id.to_owned(),
            });
        }
        let row = session::ActiveModel {
            id: Set(ids::new_id(ids::SESSION_PREFIX)),
            live_stream_id: Set(live_stream_id.to_owned()),
            started_at: Set(now()),
            ended_at: Set(None),
            client_addr: Set(client_addr.to_owned()),
            encoder: Set(encoder.map(str::to_owned)),
            input: Set(None),
            bytes_received: Set(0),
            frames_dropped: Set(0),
        };
        let row = session::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        session_from_row(row)
    }

    /// Stores what is known about a session's input and its counters so far.
    pub async fn update_session_input(
        &self,
        session_id: &str,
        input: &serde_json::Value,
        bytes_received: u64,
        frames_dropped: u64,
    ) -> Result<()> {
        let result = session::Entity::update_many()
            .col_expr(session::Column::Input, Some(input.to_string()).into())
            .col_expr(
                session::Column::BytesReceived,
                to_db_count(bytes_received).into(),
            )
            .col_expr(
                session::Column::FramesDropped,
                to_db_count(frames_dropped).into(),
            )
            .filter(session::Column::Id.eq(session_id))
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::NotFound {
                record: Record::Session,
                id: session_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Records the publisher's disconnection; ending an ended session keeps the first end.
    pub async fn end_session(&self, session_id: &str) -> Result<Session> {
        session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Some(now()).into())
            .filter(session::Column::Id.eq(session_id))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.conn)
            .await?;
        self.get_session(session_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                record: Record::Session,
                id: session_id.to_owned(),
            })
    }

    pub async fn get_session(&self, session_id: &str) -> Result<Option<Session>> {
        session::Entity::find_by_id(session_id)
            .one(&self.conn)
            .await?
            .map(session_from_row)
            .transpose()
    }

    /// The session a live stream is receiving, per its `active_session_id`.
    pub async fn current_session(&self, live_stream_id: &str) -> Result<Option<Session>> {
        let Some(stream) = self.get_live_stream(live_stream_id).await? else {
            return Err(StorageError::NotFound {
                record: Record::LiveStream,
                id: live_stream_id.to_owned(),
            });
        };
        match stream.active_session_id {
            Some(session_id) => self.get_session(&session_id).await,
            None => Ok(None),
        }
    }
}
