//! The metadata database: [`Db`] wraps a sea-orm connection (SQLite by default) and offers the
//! repository functions the rest of Sluice calls. Callers get plain domain structs from
//! [`crate::model`], never sea-orm models.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;
use crate::secret_box::{SecretBox, SecretBoxError};

mod api_keys;
mod events;
mod live_streams;
mod paging;
mod playback_ids;
mod sessions;
mod signing_keys;
#[cfg(test)]
mod upgrade_tests;

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
    Event,
    SigningKey,
    PlaybackId,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApiKey => "API key",
            Self::LiveStream => "live stream",
            Self::Session => "session",
            Self::Event => "event",
            Self::SigningKey => "signing key",
            Self::PlaybackId => "playback id",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("{record} {id} not found")]
    NotFound { record: Record, id: String },
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
    #[error("the sealed secret of API key {id} cannot be opened: {source}")]
    SealedSecret {
        id: String,
        #[source]
        source: SecretBoxError,
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
    /// Seals API key secrets; set with [`Db::with_secret_box`].
    secret_box: Option<SecretBox>,
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
        Ok(Self {
            conn,
            secret_box: None,
        })
    }

    /// The database sealing API key secrets with `secret_box` (the server's master key).
    pub fn with_secret_box(self, secret_box: SecretBox) -> Self {
        Self {
            secret_box: Some(secret_box),
            ..self
        }
    }

    /// Applies every pending migration, then seals the secrets of API keys made before secrets
    /// were kept sealed.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        self.seal_legacy_api_keys().await
    }
}
