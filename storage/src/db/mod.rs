//! The metadata database: [`Db`] wraps a sea-orm connection (SQLite by default) and offers the
//! repository functions the rest of Sluice calls. Callers get plain domain structs from
//! [`crate::model`], never sea-orm models.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ColumnTrait, Condition, ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;

mod api_keys;
mod events;
mod live_streams;
mod sessions;
mod webhooks;

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
    WebhookEndpoint,
    WebhookDelivery,
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

/// Keyset pagination over rows ordered by `(created_at, id)`: the rows after the anchor row.
fn after_row<C: ColumnTrait>(
    created_at_column: C,
    id_column: C,
    anchor_created_at: DateTime<Utc>,
    anchor_id: String,
) -> Condition {
    Condition::any()
        .add(created_at_column.gt(anchor_created_at))
        .add(
            Condition::all()
                .add(created_at_column.eq(anchor_created_at))
                .add(id_column.gt(anchor_id)),
        )
}

/// Cuts a page fetched with one row too many down to `limit` and returns it with the cursor of
/// the next page (the id of its last item), if there is one.
fn into_page<T>(
    mut items: Vec<T>,
    limit: u64,
    id: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    let has_more = items.len() as u64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if has_more {
        items.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    (items, next_cursor)
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
        Ok(Self { conn })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        Ok(())
    }
}
