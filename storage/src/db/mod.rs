//! The metadata database: [`Db`] wraps a sea-orm connection (SQLite by default, Postgres when
//! the URL says so) and offers the repository functions the rest of Sluice calls. Callers get
//! plain domain structs from [`crate::model`], never sea-orm models.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;
use crate::secret_box::{SecretBox, SecretBoxError};

mod api_keys;
mod assets;
mod events;
mod jobs;
mod live_streams;
mod paging;
mod playback_ids;
mod room_composites;
mod room_transcripts;
mod rooms;
mod sessions;
mod signing_keys;
mod simulcast_targets;
mod transcripts;
#[cfg(test)]
mod upgrade_tests;
mod uploads;
mod webhooks;

/// How long a writer waits for SQLite's lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections one process opens to a Postgres server.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// How long opening a Postgres connection, or waiting for a free one in the pool, may take.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pooled Postgres connections unused this long are closed.
const POSTGRES_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Key of the Postgres advisory lock held while migrating (any constant unique to this use;
/// `0x736c_7569_6365_6d31` spells "sluicem1").
const MIGRATION_LOCK: i64 = 0x736c_7569_6365_6d31;
/// Largest page [`Db::list_live_streams`] returns, whatever the caller asks.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    ApiKey,
    LiveStream,
    Session,
    Event,
    WebhookEndpoint,
    WebhookDelivery,
    SigningKey,
    PlaybackId,
    Job,
    Asset,
    Upload,
    SimulcastTarget,
    Room,
    RoomSession,
    RoomParticipant,
    RoomComposite,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApiKey => "API key",
            Self::LiveStream => "live stream",
            Self::Session => "session",
            Self::Event => "event",
            Self::WebhookEndpoint => "webhook endpoint",
            Self::WebhookDelivery => "webhook delivery",
            Self::SigningKey => "signing key",
            Self::PlaybackId => "playback id",
            Self::Job => "job",
            Self::Asset => "asset",
            Self::Upload => "upload",
            Self::SimulcastTarget => "simulcast target",
            Self::Room => "room",
            Self::RoomSession => "room session",
            Self::RoomParticipant => "room participant",
            Self::RoomComposite => "room composite",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("{record} {id} not found")]
    NotFound { record: Record, id: String },
    /// The record cannot be written as asked because another one holds what must be unique
    /// (a room's name); `detail` says what, in words fit for the client.
    #[error("{detail}")]
    Conflict { record: Record, detail: String },
    #[error(
        "unsupported database URL scheme {0:?}: use sqlite:PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedDatabaseUrl(String),
    #[error("pagination cursor {0:?} names no record")]
    InvalidCursor(String),
    #[error("{record} {id} holds invalid JSON in column {column}: {source}")]
    CorruptJson {
        record: Record,
        id: String,
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "no master key was given to the database, so API key secrets cannot be sealed or opened"
    )]
    MasterKeyMissing,
    #[error("the sealed secret of {record} {id} cannot be opened: {source}")]
    SealedSecret {
        record: Record,
        id: String,
        #[source]
        source: SecretBoxError,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The database engines [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbEngine {
    Sqlite,
    Postgres,
}

impl DbEngine {
    /// The engine a database URL names by its scheme (`sqlite:`, `postgres://`,
    /// `postgresql://`).
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StorageError::UnsupportedDatabaseUrl(scheme.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// `url` with its password (if any) replaced by `***`, fit for logs.
pub fn redact_database_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only URLs that cannot carry a password refuse this; those kept theirs hidden.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // An unparsable URL may still hold a secret: show only its scheme.
        Err(_) => format!("{}:…", url.split_once(':').map_or("", |(scheme, _)| scheme)),
    }
}

/// Handle on the metadata database; cheap to clone (it shares one connection pool).
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    engine: DbEngine,
    /// Seals API key secrets; set with [`Db::with_secret_box`].
    secret_box: Option<SecretBox>,
}

/// Reads a JSON column of a row; a column that does not hold what it should is
/// [`StorageError::CorruptJson`], naming the row and the column.
fn json_column<T: serde::de::DeserializeOwned>(
    record: Record,
    id: &str,
    column: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|source| StorageError::CorruptJson {
        record,
        id: id.to_owned(),
        column,
        source,
    })
}

/// Timestamps are kept to the microsecond, the precision Postgres stores, so values read back
/// equal the values written on every backend.
/// The JSON text of a typed column. The column types are plain derived structs and enums with
/// string keys, which always serialize.
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("typed columns always serialize to JSON")
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn sqlx_error(error: sea_orm::sqlx::Error) -> StorageError {
    StorageError::Database(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error)))
}

fn to_db_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_db_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Db {
    /// Opens the database at `url`: `sqlite:///var/lib/sluice/sluice.db?mode=rwc` or
    /// `postgres://user:password@host/database` (`postgresql://` also works); any other scheme
    /// is [`StorageError::UnsupportedDatabaseUrl`]. SQLite runs in WAL mode with a busy timeout
    /// so readers never block the writer, and enforces foreign keys; Postgres gets a bounded
    /// pool with connect and idle timeouts.
    pub async fn connect(url: &str) -> Result<Self> {
        let engine = DbEngine::from_url(url)?;
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false);
        match engine {
            DbEngine::Sqlite => {
                options.map_sqlx_sqlite_opts(|sqlite| {
                    sqlite
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
            }
            DbEngine::Postgres => {
                options
                    .max_connections(POSTGRES_MAX_CONNECTIONS)
                    .min_connections(0)
                    .connect_timeout(POSTGRES_CONNECT_TIMEOUT)
                    .acquire_timeout(POSTGRES_CONNECT_TIMEOUT)
                    .idle_timeout(POSTGRES_IDLE_TIMEOUT);
            }
        }
        let conn = Database::connect(options).await?;
        Ok(Self {
            conn,
            engine,
            secret_box: None,
        })
    }

    /// The engine this handle talks to.
    pub fn engine(&self) -> DbEngine {
        self.engine
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        self.conn.ping().await?;
        Ok(())
    }

    /// The database sealing API key secrets with `secret_box` (the server's master key).
    pub fn with_secret_box(self, secret_box: SecretBox) -> Self {
        Self {
            secret_box: Some(secret_box),
            ..self
        }
    }

    /// The token the nodes sharing this master key present to each other (see
    /// [`SecretBox::node_token`]); `None` without a master key.
    pub fn node_token(&self) -> Option<&str> {
        self.secret_box.as_ref().map(SecretBox::node_token)
    }

    /// Applies every pending migration, then seals the secrets of API keys made before secrets
    /// were kept sealed. On Postgres, processes starting at once (the nodes of a deployment)
    /// take turns, so each migration runs once.
    pub async fn migrate(&self) -> Result<()> {
        let turn = match self.engine {
            DbEngine::Postgres => Some(self.migration_turn().await?),
            DbEngine::Sqlite => None,
        };
        Migrator::up(&self.conn, None).await?;
        self.seal_legacy_api_keys().await?;
        if let Some(turn) = turn {
            use sea_orm::sqlx::Connection;
            // Closing the connection ends the lock (so does dropping it, on an early return).
            turn.close().await.map_err(sqlx_error)?;
        }
        Ok(())
    }

    /// A connection of its own, outside the pool, holding the Postgres advisory lock that
    /// serialises migrations until it closes.
    async fn migration_turn(&self) -> Result<sea_orm::sqlx::PgConnection> {
        let pool = self.conn.get_postgres_connection_pool();
        let mut connection = pool.acquire().await.map_err(sqlx_error)?.detach();
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut connection)
            .await
            .map_err(sqlx_error)?;
        Ok(connection)
    }
}

/// How many rows a table holds on SQLite (the full-text indexes' tests count theirs).
#[cfg(test)]
async fn sqlite_rows(db: &Db, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    db.conn
        .query_one(Statement::from_string(
            DatabaseBackend::Sqlite,
            format!("SELECT count(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}
