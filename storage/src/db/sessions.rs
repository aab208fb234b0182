//! Sessions: one row per publish, from connect to disconnect.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::paging::{keyset_page, PageKey, PageOrder};
use super::{from_db_count, json_column, now, to_db_count, Db, Record, Result, StorageError};
use crate::entities::session;
use crate::ids::{AssetId, LiveStreamId, SessionId};
use crate::model::{Session, SessionOrigin, SessionPage, StreamHealth};

const SESSION_PAGE: PageKey<session::Entity> = PageKey {
    created_at: session::Column::StartedAt,
    id: session::Column::Id,
    created_at_of: |row| row.started_at,
    id_of: |row| &row.id,
    order: PageOrder::NewestFirst,
};

fn session_from_row(row: session::Model) -> Result<Session> {
    let input = row
        .input
        .as_deref()
        .map(|text| json_column(Record::Session, &row.id, "input", text))
        .transpose()?;
    Ok(Session {
        id: SessionId::stored(row.id),
        live_stream_id: LiveStreamId::stored(row.live_stream_id),
        started_at: row.started_at,
        ended_at: row.ended_at,
        client_addr: row.client_addr,
        encoder: row.encoder,
        input,
        bytes_received: from_db_count(row.bytes_received),
        frames_dropped: from_db_count(row.frames_dropped),
        protocol: row.protocol,
        app: row.app,
        asset_id: row.asset_id.map(AssetId::stored),
    })
}

impl Db {
    /// Records a publisher connecting to a live stream.
    pub async fn start_session(
        &self,
        live_stream_id: &LiveStreamId,
        origin: &SessionOrigin,
    ) -> Result<Session> {
        self.require_live_stream(live_stream_id).await?;
        let row = session::ActiveModel {
            id: Set(SessionId::generate().into()),
            live_stream_id: Set(live_stream_id.to_string()),
            started_at: Set(now()),
            ended_at: Set(None),
            client_addr: Set(origin.client_addr.clone()),
            encoder: Set(origin.encoder.clone()),
            input: Set(None),
            bytes_received: Set(0),
            frames_dropped: Set(0),
            protocol: Set(origin.protocol.to_owned()),
            app: Set(origin.app.clone()),
            asset_id: Set(None),
            packager_url: Set(None),
            health: Set(None),
        };
        let row = session::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        session_from_row(row)
    }

    /// Stores what is known about a session's input and its counters so far.
    pub async fn update_session_input(
        &self,
        session_id: &SessionId,
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
                id: session_id.to_string(),
            });
        }
        Ok(())
    }

    /// Records the publisher's disconnection; ending an ended session keeps the first end.
    pub async fn end_session(&self, session_id: &SessionId) -> Result<Session> {
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
                id: session_id.to_string(),
            })
    }

    /// Stores a live session's health as last judged.
    pub async fn set_session_health(
        &self,
        session_id: &SessionId,
        health: &StreamHealth,
    ) -> Result<()> {
        let text = serde_json::to_string(health).map_err(|source| StorageError::CorruptJson {
            record: Record::Session,
            id: session_id.to_string(),
            column: "health",
            source,
        })?;
        session::Entity::update_many()
            .col_expr(session::Column::Health, Some(text).into())
            .filter(session::Column::Id.eq(session_id))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// A session's health as last judged; `None` before its first judgement.
    pub async fn session_health(&self, session_id: &SessionId) -> Result<Option<StreamHealth>> {
        let row = session::Entity::find_by_id(session_id)
            .one(&self.conn)
            .await?;
        row.and_then(|row| row.health.map(|text| (row.id, text)))
            .map(|(id, text)| json_column(Record::Session, &id, "health", &text))
            .transpose()
    }

    /// Names the node serving a low-latency session's parts from memory (its internal base
    /// URL), for api nodes to forward LL-HLS requests to.
    pub async fn set_session_packager(&self, session_id: &SessionId, url: &str) -> Result<()> {
        session::Entity::update_many()
            .col_expr(session::Column::PackagerUrl, Some(url.to_owned()).into())
            .filter(session::Column::Id.eq(session_id))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// The internal base URL of the node serving the live stream's newest open session, if
    /// that session is live at low latency.
    pub async fn live_packager_url(&self, live_stream_id: &LiveStreamId) -> Result<Option<String>> {
        let row = session::Entity::find()
            .filter(session::Column::LiveStreamId.eq(live_stream_id))
            .filter(session::Column::EndedAt.is_null())
            .order_by_desc(session::Column::StartedAt)
            .one(&self.conn)
            .await?;
        Ok(row.and_then(|row| row.packager_url))
    }

    pub async fn get_session(&self, session_id: &SessionId) -> Result<Option<Session>> {
        session::Entity::find_by_id(session_id)
            .one(&self.conn)
            .await?
            .map(session_from_row)
            .transpose()
    }

    /// Sessions of a live stream, newest first, at most `limit` (clamped to
    /// 1..=[`super::MAX_PAGE_SIZE`]), starting after the session whose id is `after`.
    pub async fn list_sessions(
        &self,
        live_stream_id: &LiveStreamId,
        limit: u64,
        after: Option<&str>,
    ) -> Result<SessionPage> {
        self.require_live_stream(live_stream_id).await?;
        let query =
            session::Entity::find().filter(session::Column::LiveStreamId.eq(live_stream_id));
        let (rows, next_cursor) =
            keyset_page(&self.conn, query, SESSION_PAGE, limit, after).await?;
        let items = rows
            .into_iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(SessionPage { items, next_cursor })
    }
}
