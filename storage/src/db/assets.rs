//! Assets: creation (with their playback ids, transcripts and processing job, in one
//! transaction), lookup, listing, the progress and outcome the worker records (a ready asset
//! with transcripts to make gets its transcription job), and deletion.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use serde_json::Value;
use tracing::info;

use super::jobs::new_job_row;
use super::paging::{keyset_page, PageKey, PageOrder};
use super::playback_ids::{insert_playback_id, PlaybackOwner};
use super::transcripts::{error_preparing_transcripts, insert_transcripts, queue_transcription};
use super::{json_column, now, to_json, Db, Record, Result, StorageError};
use crate::entities::{asset, job, session};
use crate::ids::{AssetId, LiveStreamId, SessionId};
use crate::model::{
    Asset, AssetInput, AssetPage, AssetStatus, GeneratedSubtitles, JobStatus, NewAsset, NewJob,
    ASSET_JOB_KIND,
};

const ASSET_PAGE: PageKey<asset::Entity> = PageKey {
    created_at: asset::Column::CreatedAt,
    id: asset::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::NewestFirst,
};

/// How a recorded session's settings (it has none) are kept in the settings column.
const NO_SETTINGS: &str = "{}";

fn asset_from_row(row: asset::Model) -> Result<Asset> {
    let column = |name, text| json_column::<Value>(Record::Asset, &row.id, name, text);
    let settings = match row.settings.as_str() {
        NO_SETTINGS => None,
        text => Some(json_column(Record::Asset, &row.id, "settings", text)?),
    };
    Ok(Asset {
        input: json_column(Record::Asset, &row.id, "input", &row.input)?,
        settings,
        tracks: column("tracks", &row.tracks)?,
        source_metadata: column("source_metadata", &row.source_metadata)?,
        renditions: column("renditions", &row.renditions)?,
        status: row.status,
        error: row.error,
        progress: u8::try_from(row.progress.clamp(0, 100)).unwrap_or(0),
        duration_ms: row.duration_ms,
        playable: row.playable,
        live_stream_id: row.live_stream_id.map(LiveStreamId::stored),
        session_id: row.session_id.map(SessionId::stored),
        created_at: row.created_at,
        updated_at: row.updated_at,
        id: AssetId::stored(row.id),
    })
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::Asset,
        id: id.to_owned(),
    }
}

/// Inserts a preparing asset, its playback ids, its transcripts (one per generated subtitles
/// track its settings ask for) and its processing job; `conn` should be a transaction, so an
/// asset never exists without the job that processes it.
pub(super) async fn insert_asset(conn: &impl ConnectionTrait, new: &NewAsset) -> Result<Asset> {
    let subtitles = new
        .settings
        .as_ref()
        .map_or(&[][..], |settings| &settings.generated_subtitles);
    let asset = insert_asset_row(conn, new, None, subtitles).await?;
    let job = NewJob::new(ASSET_JOB_KIND, asset.id.clone(), serde_json::json!({}));
    job::Entity::insert(new_job_row(&job)).exec(conn).await?;
    info!(asset_id = %asset.id, "Asset created.");
    Ok(asset)
}

/// Inserts a preparing asset, its playback ids and a preparing transcript per entry of
/// `generated_subtitles`; `recorded_from` names the live stream and session of a recording.
async fn insert_asset_row(
    conn: &impl ConnectionTrait,
    new: &NewAsset,
    recorded_from: Option<(&str, &str)>,
    generated_subtitles: &[GeneratedSubtitles],
) -> Result<Asset> {
    let at = now();
    let row = asset::ActiveModel {
        id: Set(AssetId::generate().into()),
        status: Set(AssetStatus::Preparing),
        error: Set(None),
        progress: Set(0),
        input: Set(to_json(&new.input)),
        settings: Set(new
            .settings
            .as_ref()
            .map_or_else(|| NO_SETTINGS.to_owned(), to_json)),
        duration_ms: Set(None),
        tracks: Set("[]".to_owned()),
        source_metadata: Set("{}".to_owned()),
        renditions: Set("[]".to_owned()),
        playable: Set(false),
        live_stream_id: Set(recorded_from.map(|(live_stream_id, _)| live_stream_id.to_owned())),
        session_id: Set(recorded_from.map(|(_, session_id)| session_id.to_owned())),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let row = asset::Entity::insert(row).exec_with_returning(conn).await?;
    for policy in &new.playback_policies {
        insert_playback_id(conn, PlaybackOwner::Asset(&row.id), *policy).await?;
    }
    insert_transcripts(conn, &row.id, generated_subtitles, at).await?;
    asset_from_row(row)
}

impl Db {
    /// Creates a preparing asset with one playback id per policy asked and one preparing
    /// transcript per generated subtitles track its settings ask for (a language asked twice
    /// is made once), and queues the job that processes it.
    pub async fn create_asset(&self, new: &NewAsset) -> Result<Asset> {
        let txn = self.conn.begin().await?;
        let asset = insert_asset(&txn, new).await?;
        txn.commit().await?;
        Ok(asset)
    }

    /// Creates the preparing asset a recorded session becomes, with one playback id per
    /// policy of the live stream's playback ids and one preparing transcript per entry of the
    /// stream's `generated_subtitles`, and attaches it to the session. No job is queued: the
    /// live packager makes the renditions and the media plane seals them (the transcription
    /// job is queued when it is marked ready).
    pub async fn create_recording_asset(
        &self,
        live_stream_id: &LiveStreamId,
        session_id: &SessionId,
    ) -> Result<Asset> {
        let generated_subtitles = self
            .get_live_stream(live_stream_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                record: Record::LiveStream,
                id: live_stream_id.to_string(),
            })?
            .generated_subtitles;
        let policies = self
            .list_playback_ids(live_stream_id)
            .await?
            .into_iter()
            .map(|playback_id| playback_id.policy)
            .collect();
        let new = NewAsset {
            input: AssetInput::LiveStream {
                live_stream_id: live_stream_id.clone(),
                session_id: session_id.clone(),
            },
            settings: None,
            playback_policies: policies,
        };
        let txn = self.conn.begin().await?;
        let asset = insert_asset_row(
            &txn,
            &new,
            Some((live_stream_id, session_id)),
            &generated_subtitles,
        )
        .await?;
        let attached = session::Entity::update_many()
            .col_expr(session::Column::AssetId, Some(asset.id.to_string()).into())
            .filter(session::Column::Id.eq(session_id))
            .exec(&txn)
            .await?
            .rows_affected;
        if attached == 0 {
            return Err(StorageError::NotFound {
                record: Record::Session,
                id: session_id.to_string(),
            });
        }
        txn.commit().await?;
        info!(asset_id = %asset.id, session_id = %session_id, "Recording asset created.");
        Ok(asset)
    }

    /// Records a recorded asset's duration and tracks (API form) once its session has ended.
    pub async fn set_asset_recorded(
        &self,
        id: &AssetId,
        duration_ms: i64,
        tracks: &Value,
    ) -> Result<()> {
        self.update_preparing(
            id,
            asset::ActiveModel {
                duration_ms: Set(Some(duration_ms)),
                tracks: Set(tracks.to_string()),
                ..Default::default()
            },
        )
        .await
        .map(drop)
    }

    pub async fn get_asset(&self, id: &AssetId) -> Result<Option<Asset>> {
        asset::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(asset_from_row)
            .transpose()
    }

    /// The asset `id`, or [`StorageError::NotFound`].
    pub(super) async fn require_asset(&self, id: &AssetId) -> Result<Asset> {
        self.get_asset(id).await?.ok_or_else(|| not_found(id))
    }

    /// Assets newest first, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]), after
    /// the asset whose id is `after`, only those in `status` and those recorded from live
    /// stream `live_stream_id` when given.
    pub async fn list_assets(
        &self,
        limit: u64,
        after: Option<&str>,
        status: Option<AssetStatus>,
        live_stream_id: Option<&str>,
    ) -> Result<AssetPage> {
        let mut query = asset::Entity::find();
        if let Some(status) = status {
            query = query.filter(asset::Column::Status.eq(status));
        }
        if let Some(live_stream_id) = live_stream_id {
            query = query.filter(asset::Column::LiveStreamId.eq(live_stream_id));
        }
        let (rows, next_cursor) = keyset_page(&self.conn, query, ASSET_PAGE, limit, after).await?;
        Ok(AssetPage {
            items: rows
                .into_iter()
                .map(asset_from_row)
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Deletes the asset, its playback ids and its transcripts (their lines and search index
    /// rows with them), and cancels its jobs (a worker processing it finds its next heartbeat
    /// refused). `false` when there was no such asset. The caller removes its objects.
    pub async fn delete_asset(&self, id: &AssetId) -> Result<bool> {
        self.cancel_jobs_for(id).await?;
        let deleted = asset::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?
            .rows_affected
            == 1;
        if deleted {
            info!(asset_id = %id, "Asset deleted.");
        }
        Ok(deleted)
    }

    /// Records how far processing got (capped at 100), while the asset is preparing.
    pub async fn set_asset_progress(&self, id: &AssetId, progress: u8) -> Result<()> {
        self.update_preparing(
            id,
            asset::ActiveModel {
                progress: Set(i32::from(progress.min(100))),
                ..Default::default()
            },
        )
        .await
        .map(drop)
    }

    /// Records what probing the source found.
    pub async fn set_asset_probed(
        &self,
        id: &AssetId,
        duration_ms: Option<i64>,
        tracks: &Value,
        source_metadata: &Value,
    ) -> Result<()> {
        self.update_preparing(
            id,
            asset::ActiveModel {
                duration_ms: Set(duration_ms),
                tracks: Set(tracks.to_string()),
                source_metadata: Set(source_metadata.to_string()),
                ..Default::default()
            },
        )
        .await
        .map(drop)
    }

    /// Records that the master playlist exists (the asset plays while still preparing).
    pub async fn set_asset_playable(&self, id: &AssetId) -> Result<()> {
        self.update_preparing(
            id,
            asset::ActiveModel {
                playable: Set(true),
                ..Default::default()
            },
        )
        .await
        .map(drop)
    }

    /// Forgets what an earlier attempt made of a preparing asset, whose playlists are about
    /// to be written again: not playable, progress 0.
    pub async fn reset_asset_output(&self, id: &AssetId) -> Result<()> {
        self.update_preparing(
            id,
            asset::ActiveModel {
                playable: Set(false),
                progress: Set(0),
                ..Default::default()
            },
        )
        .await
        .map(drop)
    }

    /// Marks a preparing asset ready with what was made and, when it has a preparing
    /// transcript, queues its transcription job ([`TRANSCRIBE_JOB_KIND`], unless one is queued
    /// or running), in one transaction. `None` when it is gone (or no longer preparing), and
    /// then nothing is queued.
    ///
    /// [`TRANSCRIBE_JOB_KIND`]: crate::model::TRANSCRIBE_JOB_KIND
    pub async fn set_asset_ready(&self, id: &AssetId, renditions: &Value) -> Result<Option<Asset>> {
        let txn = self.conn.begin().await?;
        let ready = update_preparing(
            &txn,
            id,
            asset::ActiveModel {
                status: Set(AssetStatus::Ready),
                progress: Set(100),
                playable: Set(true),
                renditions: Set(renditions.to_string()),
                ..Default::default()
            },
        )
        .await?;
        match ready {
            Some(_) => {
                queue_transcription(&txn, id).await?;
                txn.commit().await?;
            }
            None => txn.rollback().await?,
        }
        Ok(ready)
    }

    /// Marks a preparing asset errored with a reason for a person, and its preparing
    /// transcripts errored too ([`ASSET_ERRORED_TRANSCRIPT`]), in one transaction. `None` when
    /// it is gone (or no longer preparing).
    ///
    /// [`ASSET_ERRORED_TRANSCRIPT`]: super::transcripts::ASSET_ERRORED_TRANSCRIPT
    pub async fn set_asset_errored(&self, id: &AssetId, reason: &str) -> Result<Option<Asset>> {
        let txn = self.conn.begin().await?;
        let errored = update_preparing(
            &txn,
            id,
            asset::ActiveModel {
                status: Set(AssetStatus::Errored),
                error: Set(Some(reason.to_owned())),
                playable: Set(false),
                ..Default::default()
            },
        )
        .await?;
        match errored {
            Some(_) => {
                error_preparing_transcripts(&txn, id).await?;
                txn.commit().await?;
            }
            None => txn.rollback().await?,
        }
        Ok(errored)
    }

    /// Errors every recording (an asset with a session) still preparing, with `reason`, and
    /// returns them as they now are. Run by a process that alone ingests and serves, at
    /// startup: no session is being sealed then, so these were cut off by a crash.
    pub async fn error_interrupted_recordings(&self, reason: &str) -> Result<Vec<Asset>> {
        let interrupted = asset::Entity::find()
            .filter(asset::Column::Status.eq(AssetStatus::Preparing))
            .filter(asset::Column::SessionId.is_not_null())
            .all(&self.conn)
            .await?;
        let mut errored = Vec::new();
        for row in interrupted {
            if let Some(asset) = self
                .set_asset_errored(&AssetId::stored(row.id), reason)
                .await?
            {
                errored.push(asset);
            }
        }
        Ok(errored)
    }

    /// Preparing assets that no job will prepare any more (their last processing job failed
    /// without the asset being marked, as when its worker died on the last attempt), each with
    /// that job's last error.
    pub async fn abandoned_assets(&self) -> Result<Vec<(Asset, Option<String>)>> {
        let preparing = asset::Entity::find()
            .filter(asset::Column::Status.eq(AssetStatus::Preparing))
            .all(&self.conn)
            .await?;
        let mut abandoned = Vec::new();
        for row in preparing {
            let jobs = self.jobs_for_subject(&row.id).await?;
            let asset_jobs: Vec<_> = jobs.iter().filter(|j| j.kind == ASSET_JOB_KIND).collect();
            if asset_jobs.iter().any(|job| job.status.is_active()) {
                continue;
            }
            // Oldest first: the last is the latest.
            let Some(last) = asset_jobs.last() else {
                continue;
            };
            if last.status == JobStatus::Failed {
                let reason = last.last_error.clone();
                abandoned.push((asset_from_row(row)?, reason));
            }
        }
        Ok(abandoned)
    }

    /// Applies `changes` (and a new `updated_at`) to asset `id` if it is still preparing;
    /// returns the asset as it now is, or `None` when nothing matched.
    async fn update_preparing(
        &self,
        id: &AssetId,
        changes: asset::ActiveModel,
    ) -> Result<Option<Asset>> {
        update_preparing(&self.conn, id, changes).await
    }
}

/// [`Db::update_preparing`] on `conn`, which may be a transaction.
async fn update_preparing(
    conn: &impl ConnectionTrait,
    id: &AssetId,
    mut changes: asset::ActiveModel,
) -> Result<Option<Asset>> {
    changes.updated_at = Set(now());
    let updated = asset::Entity::update_many()
        .set(changes)
        .filter(asset::Column::Id.eq(id))
        .filter(asset::Column::Status.eq(AssetStatus::Preparing))
        .exec(conn)
        .await?
        .rows_affected;
    if updated == 0 {
        return Ok(None);
    }
    asset::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(asset_from_row)
        .transpose()
}
