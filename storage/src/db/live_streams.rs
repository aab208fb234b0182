//! Live streams: creation, lookup, listing with status filters, updates, stream key resets,
//! disabling, deletion and the idle/active status.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use sluice_media::Ladder;
use tracing::info;

use super::paging::{keyset_page, PageKey, PageOrder};
use super::playback_ids::{insert_playback_id, PlaybackOwner};
use super::{json_column, now, to_json, Db, Record, Result, StorageError};
use crate::entities::{live_stream, session};
use crate::ids;
use crate::ids::{LiveStreamId, SessionId};
use crate::model::{
    Dvr, GeneratedSubtitles, LiveStream, LiveStreamChanges, LiveStreamFilter, LiveStreamPage,
    LiveStreamSettings, LiveStreamStatus, PlaybackPolicy,
};

const LIVE_STREAM_PAGE: PageKey<live_stream::Entity> = PageKey {
    created_at: live_stream::Column::CreatedAt,
    id: live_stream::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::OldestFirst,
};

fn live_stream_from_row(row: live_stream::Model) -> Result<LiveStream> {
    // A ladder stored as `null` (never written by the API) means the default one.
    let ladder: Option<Ladder> = json_column(Record::LiveStream, &row.id, "ladder", &row.ladder)?;
    let generated_subtitles = match &row.generated_subtitles {
        Some(text) => json_column(Record::LiveStream, &row.id, "generated_subtitles", text)?,
        None => Vec::new(),
    };
    let captions = match &row.captions {
        Some(text) => Some(json_column(Record::LiveStream, &row.id, "captions", text)?),
        None => None,
    };
    Ok(LiveStream {
        id: LiveStreamId::stored(row.id),
        name: row.name,
        stream_key: row.stream_key,
        ladder: ladder.unwrap_or_default(),
        status: row.status,
        active_session_id: row.active_session_id.map(SessionId::stored),
        disabled: row.disabled,
        latency_mode: row.latency_mode,
        reconnect_window_s: u32::try_from(row.reconnect_window_s).unwrap_or(0),
        record: row.record,
        dvr: Dvr {
            mode: row.dvr_mode,
            window_s: row.dvr_window_s.and_then(|s| u32::try_from(s).ok()),
        },
        generated_subtitles,
        captions,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::LiveStream,
        id: id.to_owned(),
    }
}

/// The `generated_subtitles` column: `NULL` for none.
fn subtitles_column(subtitles: &[GeneratedSubtitles]) -> Option<String> {
    (!subtitles.is_empty()).then(|| to_json(&subtitles))
}

fn to_db_window(seconds: u32) -> i32 {
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

impl Db {
    /// Creates an idle live stream with a fresh id and stream key, and one `public` playback
    /// id. `ladder` must already be validated.
    pub async fn create_live_stream(
        &self,
        name: &str,
        ladder: &Ladder,
        settings: &LiveStreamSettings,
    ) -> Result<LiveStream> {
        let created_at = now();
        let row = live_stream::ActiveModel {
            id: Set(LiveStreamId::generate().into()),
            name: Set(name.to_owned()),
            stream_key: Set(ids::new_secret()),
            ladder: Set(to_json(ladder)),
            status: Set(LiveStreamStatus::Idle),
            active_session_id: Set(None),
            created_at: Set(created_at),
            updated_at: Set(created_at),
            disabled: Set(false),
            latency_mode: Set(settings.latency_mode),
            reconnect_window_s: Set(to_db_window(settings.reconnect_window_s)),
            record: Set(settings.record),
            dvr_mode: Set(settings.dvr.mode),
            dvr_window_s: Set(settings.dvr.window_s.map(to_db_window)),
            generated_subtitles: Set(subtitles_column(&settings.generated_subtitles)),
            captions: Set(settings.captions.as_ref().map(to_json)),
        };
        let txn = self.conn.begin().await?;
        let row = live_stream::Entity::insert(row)
            .exec_with_returning(&txn)
            .await?;
        insert_playback_id(
            &txn,
            PlaybackOwner::LiveStream(&row.id),
            PlaybackPolicy::Public,
        )
        .await?;
        txn.commit().await?;
        info!(live_stream_id = %row.id, "Live stream created.");
        live_stream_from_row(row)
    }

    pub async fn get_live_stream(&self, id: &LiveStreamId) -> Result<Option<LiveStream>> {
        live_stream::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(live_stream_from_row)
            .transpose()
    }

    /// The live stream `id`, or [`StorageError::NotFound`].
    pub(super) async fn require_live_stream(&self, id: &LiveStreamId) -> Result<LiveStream> {
        self.get_live_stream(id).await?.ok_or_else(|| not_found(id))
    }

    /// Live streams in creation order, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]),
    /// starting after the stream whose id is `after` (the previous page's `next_cursor`), only
    /// those matching `filter` when given.
    pub async fn list_live_streams(
        &self,
        limit: u64,
        after: Option<&str>,
        filter: Option<LiveStreamFilter>,
    ) -> Result<LiveStreamPage> {
        let query = match filter {
            None => live_stream::Entity::find(),
            Some(LiveStreamFilter::Idle) => live_stream::Entity::find()
                .filter(live_stream::Column::Status.eq(LiveStreamStatus::Idle))
                .filter(live_stream::Column::Disabled.eq(false)),
            Some(LiveStreamFilter::Active) => live_stream::Entity::find()
                .filter(live_stream::Column::Status.eq(LiveStreamStatus::Active))
                .filter(live_stream::Column::Disabled.eq(false)),
            Some(LiveStreamFilter::Disabled) => {
                live_stream::Entity::find().filter(live_stream::Column::Disabled.eq(true))
            }
        };
        let (rows, next_cursor) =
            keyset_page(&self.conn, query, LIVE_STREAM_PAGE, limit, after).await?;
        let items = rows
            .into_iter()
            .map(live_stream_from_row)
            .collect::<Result<Vec<_>>>()?;
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

    /// Sets a stream's status and the session it is receiving (`None` when idle).
    pub async fn set_live_stream_status(
        &self,
        id: &LiveStreamId,
        status: LiveStreamStatus,
        active_session_id: Option<&SessionId>,
    ) -> Result<LiveStream> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Status, status.into())
            .col_expr(
                live_stream::Column::ActiveSessionId,
                active_session_id.map(String::from).into(),
            )
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        self.updated_live_stream(id, result.rows_affected).await
    }

    /// Applies a `PATCH`; returns the stream as it is afterwards.
    pub async fn update_live_stream(
        &self,
        id: &LiveStreamId,
        changes: &LiveStreamChanges,
    ) -> Result<LiveStream> {
        let mut update = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id));
        if let Some(name) = &changes.name {
            update = update.col_expr(live_stream::Column::Name, name.clone().into());
        }
        if let Some(ladder) = &changes.ladder {
            update = update.col_expr(live_stream::Column::Ladder, to_json(ladder).into());
        }
        if let Some(mode) = changes.latency_mode {
            update = update.col_expr(live_stream::Column::LatencyMode, mode.into());
        }
        if let Some(window) = changes.reconnect_window_s {
            update = update.col_expr(
                live_stream::Column::ReconnectWindowS,
                to_db_window(window).into(),
            );
        }
        if let Some(record) = changes.record {
            update = update.col_expr(live_stream::Column::Record, record.into());
        }
        if let Some(dvr) = changes.dvr {
            update = update
                .col_expr(live_stream::Column::DvrMode, dvr.mode.into())
                .col_expr(
                    live_stream::Column::DvrWindowS,
                    dvr.window_s.map(to_db_window).into(),
                );
        }
        if let Some(subtitles) = &changes.generated_subtitles {
            update = update.col_expr(
                live_stream::Column::GeneratedSubtitles,
                subtitles_column(subtitles).into(),
            );
        }
        if let Some(captions) = &changes.captions {
            update = update.col_expr(
                live_stream::Column::Captions,
                captions.as_ref().map(to_json).into(),
            );
        }
        self.updated_live_stream(id, update.exec(&self.conn).await?.rows_affected)
            .await
    }

    /// Gives a stream a fresh stream key; the old one stops working at once.
    pub async fn reset_stream_key(&self, id: &LiveStreamId) -> Result<LiveStream> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::StreamKey, ids::new_secret().into())
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        self.updated_live_stream(id, result.rows_affected).await
    }

    /// Disables (refuses publishes) or enables a stream.
    pub async fn set_live_stream_disabled(
        &self,
        id: &LiveStreamId,
        disabled: bool,
    ) -> Result<LiveStream> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Disabled, disabled.into())
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        self.updated_live_stream(id, result.rows_affected).await
    }

    /// Deletes a stream and, through the foreign key, its sessions. Returns the stream as it
    /// was.
    pub async fn delete_live_stream(&self, id: &LiveStreamId) -> Result<LiveStream> {
        let stream = self.require_live_stream(id).await?;
        live_stream::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        info!(live_stream_id = %id, "Live stream deleted.");
        Ok(stream)
    }

    /// The stream after an update that touched `rows_affected` rows.
    async fn updated_live_stream(
        &self,
        id: &LiveStreamId,
        rows_affected: u64,
    ) -> Result<LiveStream> {
        if rows_affected == 0 {
            return Err(not_found(id));
        }
        self.require_live_stream(id).await
    }

    /// Turns an `idle` stream `active` in one conditional update, so that of two publishers
    /// racing for the same stream exactly one wins. Returns whether this call won; the session
    /// is attached afterwards with [`Db::set_live_stream_status`].
    pub async fn claim_live_stream(&self, id: &LiveStreamId) -> Result<bool> {
        let result = live_stream::Entity::update_many()
            .col_expr(live_stream::Column::Status, LiveStreamStatus::Active.into())
            // The previous session is over; the new one is attached once recorded.
            .col_expr(live_stream::Column::ActiveSessionId, None::<String>.into())
            .col_expr(live_stream::Column::UpdatedAt, now().into())
            .filter(live_stream::Column::Id.eq(id))
            .filter(live_stream::Column::Status.eq(LiveStreamStatus::Idle))
            .filter(live_stream::Column::Disabled.eq(false))
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
}
