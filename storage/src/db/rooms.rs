//! Real-time rooms: created and deleted through the API (or created on first join, when the
//! server allows it), each run of a room recorded as a session by the node hosting it, with
//! the participants who joined it.
//!
//! Names are unique (a unique index): creating a second room of a name is
//! [`StorageError::Conflict`], and [`Db::room_for_join`] relies on it so that concurrent first
//! joins of a new name, on one node or several, all get the same room.
//!
//! The writes that end things ([`Db::end_room_session`], [`Db::record_participant_left`],
//! [`Db::end_room_sessions_of_node`]) keep the first end and leave alone what no longer exists:
//! a room deleted while it ran took its sessions and participants with it.
//!
//! A room's live transcription setting and its sessions' transcripts are in
//! `room_transcripts`.

use std::collections::HashMap;

use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, SqlErr,
    TransactionTrait,
};
use tracing::info;

use super::paging::{keyset_page, PageKey, PageOrder};
use super::{json_column, now, to_json, Db, Record, Result, StorageError};
use crate::entities::{room, room_participant, room_session};
use crate::ids::{RoomId, RoomSessionId};
use crate::model::{
    NewRoom, Room, RoomPage, RoomSession, RoomSessionPage, RoomSessionParticipant,
    DEFAULT_ROOM_EMPTY_TIMEOUT_S, DEFAULT_ROOM_MAX_PARTICIPANTS,
};

const ROOM_PAGE: PageKey<room::Entity> = PageKey {
    created_at: room::Column::CreatedAt,
    id: room::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::OldestFirst,
};

const ROOM_SESSION_PAGE: PageKey<room_session::Entity> = PageKey {
    created_at: room_session::Column::StartedAt,
    id: room_session::Column::Id,
    created_at_of: |row| row.started_at,
    id_of: |row| &row.id,
    order: PageOrder::NewestFirst,
};

/// How many times [`Db::room_for_join`] tries to create a room whose name is taken by one that
/// then disappears before it can be read (deleted meanwhile).
const JOIN_ATTEMPTS: usize = 3;

pub(super) fn room_not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::Room,
        id: id.to_owned(),
    }
}

fn violates(err: &DbErr, kind: fn(&SqlErr) -> bool) -> bool {
    err.sql_err().as_ref().is_some_and(kind)
}

pub(super) fn is_unique_violation(err: &DbErr) -> bool {
    violates(err, |e| matches!(e, SqlErr::UniqueConstraintViolation(_)))
}

pub(super) fn is_foreign_key_violation(err: &DbErr) -> bool {
    violates(err, |e| {
        matches!(e, SqlErr::ForeignKeyConstraintViolation(_))
    })
}

/// A setting as the integer column holds it (settings are validated far below `i32::MAX`).
fn to_db_setting(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn from_db_setting(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

pub(super) fn room_from_row(row: room::Model) -> Result<Room> {
    let transcription = match &row.transcription {
        Some(text) => Some(json_column(Record::Room, &row.id, "transcription", text)?),
        None => None,
    };
    Ok(Room {
        id: RoomId::stored(row.id),
        name: row.name,
        max_participants: from_db_setting(row.max_participants),
        empty_timeout_s: from_db_setting(row.empty_timeout_s),
        metadata: row.metadata,
        transcription,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn participant_from_row(row: room_participant::Model) -> RoomSessionParticipant {
    RoomSessionParticipant {
        sid: row.sid,
        identity: row.identity,
        name: row.name,
        joined_at: row.joined_at,
        left_at: row.left_at,
    }
}

impl Db {
    /// Creates a room; a room of the same name is [`StorageError::Conflict`].
    pub async fn create_room(&self, new: &NewRoom) -> Result<Room> {
        let at = now();
        let row = room::ActiveModel {
            id: Set(RoomId::generate().into()),
            name: Set(new.name.clone()),
            max_participants: Set(to_db_setting(
                new.max_participants
                    .unwrap_or(DEFAULT_ROOM_MAX_PARTICIPANTS),
            )),
            empty_timeout_s: Set(to_db_setting(
                new.empty_timeout_s.unwrap_or(DEFAULT_ROOM_EMPTY_TIMEOUT_S),
            )),
            metadata: Set(new.metadata.clone().unwrap_or_default()),
            transcription: Set(new.transcription.as_ref().map(to_json)),
            created_at: Set(at),
            updated_at: Set(at),
        };
        match room::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await
        {
            Ok(row) => {
                info!(room_id = %row.id, name = %row.name, "Room created.");
                room_from_row(row)
            }
            Err(err) if is_unique_violation(&err) => Err(StorageError::Conflict {
                record: Record::Room,
                detail: format!("a room named {:?} already exists", new.name),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// The room `id`, if there is one.
    pub async fn get_room(&self, id: &RoomId) -> Result<Option<Room>> {
        room::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(room_from_row)
            .transpose()
    }

    /// The room clients join by `name`, if there is one.
    pub async fn get_room_by_name(&self, name: &str) -> Result<Option<Room>> {
        room::Entity::find()
            .filter(room::Column::Name.eq(name))
            .one(&self.conn)
            .await?
            .map(room_from_row)
            .transpose()
    }

    /// Rooms in creation order, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]),
    /// starting after the room whose id is `after` (the previous page's `next_cursor`).
    pub async fn list_rooms(&self, limit: u64, after: Option<&str>) -> Result<RoomPage> {
        let (rows, next_cursor) =
            keyset_page(&self.conn, room::Entity::find(), ROOM_PAGE, limit, after).await?;
        Ok(RoomPage {
            items: rows.into_iter().map(room_from_row).collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Removes a room with its sessions and their participants.
    pub async fn delete_room(&self, id: &RoomId) -> Result<()> {
        let result = room::Entity::delete_by_id(id).exec(&self.conn).await?;
        if result.rows_affected == 0 {
            return Err(room_not_found(id));
        }
        info!(room_id = %id, "Room deleted.");
        Ok(())
    }

    /// The room a participant joining `name` enters: the room of that name, or, when there is
    /// none and `auto_create`, a new one with the defaults. Concurrent joins of a new name all
    /// get the same room: whoever loses the race to insert it reads the winner's back.
    pub async fn room_for_join(&self, name: &str, auto_create: bool) -> Result<Option<Room>> {
        for _ in 0..JOIN_ATTEMPTS {
            if let Some(room) = self.get_room_by_name(name).await? {
                return Ok(Some(room));
            }
            if !auto_create {
                return Ok(None);
            }
            match self.create_room(&NewRoom::named(name)).await {
                Ok(room) => return Ok(Some(room)),
                // Created by someone else meanwhile: read theirs on the next turn.
                Err(StorageError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        self.get_room_by_name(name).await
    }

    /// Records a run of a room starting on the node whose base URL is `node_url`.
    pub async fn start_room_session(
        &self,
        room_id: &RoomId,
        node_url: &str,
    ) -> Result<RoomSession> {
        let row = room_session::ActiveModel {
            id: Set(RoomSessionId::generate().into()),
            room_id: Set(room_id.to_string()),
            node_url: Set(node_url.to_owned()),
            started_at: Set(now()),
            ended_at: Set(None),
        };
        let row = match room_session::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await
        {
            Ok(row) => row,
            Err(err) if is_foreign_key_violation(&err) => return Err(room_not_found(room_id)),
            Err(err) => return Err(err.into()),
        };
        info!(room_id = %room_id, room_session_id = %row.id, node_url, "Room session started.");
        Ok(RoomSession {
            id: RoomSessionId::stored(row.id),
            room_id: room_id.clone(),
            node_url: row.node_url,
            started_at: row.started_at,
            ended_at: None,
            participants: Vec::new(),
        })
    }

    /// Records the end of a room session: it and the participants still in it end now. Ending
    /// an ended session keeps its first end; a session that no longer exists is left alone.
    pub async fn end_room_session(&self, id: &RoomSessionId) -> Result<()> {
        let at = now();
        let txn = self.conn.begin().await?;
        room_participant::Entity::update_many()
            .col_expr(room_participant::Column::LeftAt, Some(at).into())
            .filter(room_participant::Column::SessionId.eq(id))
            .filter(room_participant::Column::LeftAt.is_null())
            .exec(&txn)
            .await?;
        let ended = room_session::Entity::update_many()
            .col_expr(room_session::Column::EndedAt, Some(at).into())
            .filter(room_session::Column::Id.eq(id))
            .filter(room_session::Column::EndedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if ended.rows_affected > 0 {
            info!(room_session_id = %id, "Room session ended.");
        }
        Ok(())
    }

    /// A room session by id, with its participants.
    pub async fn get_room_session(&self, id: &RoomSessionId) -> Result<Option<RoomSession>> {
        let Some(row) = room_session::Entity::find_by_id(id.as_str())
            .one(&self.conn)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.with_participants(vec![row]).await?.pop())
    }

    /// The running session of a room (the newest unended one), with its participants.
    pub async fn active_room_session(&self, room_id: &RoomId) -> Result<Option<RoomSession>> {
        Ok(self
            .active_room_sessions(std::slice::from_ref(room_id))
            .await?
            .pop())
    }

    /// The running session of each of `room_ids` that has one (its newest unended one), with
    /// its participants; for listing rooms with one query per table.
    pub async fn active_room_sessions(&self, room_ids: &[RoomId]) -> Result<Vec<RoomSession>> {
        if room_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = room_session::Entity::find()
            .filter(room_session::Column::RoomId.is_in(room_ids.iter().map(RoomId::as_str)))
            .filter(room_session::Column::EndedAt.is_null())
            .order_by_desc(room_session::Column::StartedAt)
            .order_by_desc(room_session::Column::Id)
            .all(&self.conn)
            .await?;
        let mut newest = Vec::new();
        for row in rows {
            if !newest
                .iter()
                .any(|kept: &room_session::Model| kept.room_id == row.room_id)
            {
                newest.push(row);
            }
        }
        self.with_participants(newest).await
    }

    /// Records a participant joining a room session, under the sid the engine gave it. A
    /// session that does not exist is [`StorageError::NotFound`]; a sid already recorded,
    /// [`StorageError::Conflict`].
    pub async fn record_participant_joined(
        &self,
        session_id: &RoomSessionId,
        room_id: &RoomId,
        sid: &str,
        identity: &str,
        name: &str,
    ) -> Result<()> {
        let row = room_participant::ActiveModel {
            sid: Set(sid.to_owned()),
            session_id: Set(session_id.to_string()),
            room_id: Set(room_id.to_string()),
            identity: Set(identity.to_owned()),
            name: Set(name.to_owned()),
            joined_at: Set(now()),
            left_at: Set(None),
        };
        match room_participant::Entity::insert(row).exec(&self.conn).await {
            Ok(_) => Ok(()),
            Err(err) if is_foreign_key_violation(&err) => Err(StorageError::NotFound {
                record: Record::RoomSession,
                id: session_id.to_string(),
            }),
            Err(err) if is_unique_violation(&err) => Err(StorageError::Conflict {
                record: Record::RoomParticipant,
                detail: format!("participant {sid} was already recorded"),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Records a participant leaving its room session. Leaving twice keeps the first time; a
    /// participant that no longer exists is left alone.
    pub async fn record_participant_left(&self, sid: &str) -> Result<()> {
        room_participant::Entity::update_many()
            .col_expr(room_participant::Column::LeftAt, Some(now()).into())
            .filter(room_participant::Column::Sid.eq(sid))
            .filter(room_participant::Column::LeftAt.is_null())
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Sessions of a room, newest first, each with its participants, at most `limit` (clamped
    /// to 1..=[`super::MAX_PAGE_SIZE`]), starting after the session whose id is `after`.
    pub async fn list_room_sessions(
        &self,
        room_id: &RoomId,
        limit: u64,
        after: Option<&str>,
    ) -> Result<RoomSessionPage> {
        if self.get_room(room_id).await?.is_none() {
            return Err(room_not_found(room_id));
        }
        let query = room_session::Entity::find().filter(room_session::Column::RoomId.eq(room_id));
        let (rows, next_cursor) =
            keyset_page(&self.conn, query, ROOM_SESSION_PAGE, limit, after).await?;
        Ok(RoomSessionPage {
            items: self.with_participants(rows).await?,
            next_cursor,
        })
    }

    /// Ends every session the node at `node_url` left open, with their participants, and says
    /// how many: a node starting up calls it for the rooms it ran before it crashed.
    pub async fn end_room_sessions_of_node(&self, node_url: &str) -> Result<u64> {
        let at = now();
        let txn = self.conn.begin().await?;
        let open_here = Query::select()
            .column(room_session::Column::Id)
            .from(room_session::Entity)
            .and_where(room_session::Column::NodeUrl.eq(node_url))
            .and_where(room_session::Column::EndedAt.is_null())
            .to_owned();
        room_participant::Entity::update_many()
            .col_expr(room_participant::Column::LeftAt, Some(at).into())
            .filter(room_participant::Column::LeftAt.is_null())
            .filter(room_participant::Column::SessionId.in_subquery(open_here))
            .exec(&txn)
            .await?;
        let ended = room_session::Entity::update_many()
            .col_expr(room_session::Column::EndedAt, Some(at).into())
            .filter(room_session::Column::NodeUrl.eq(node_url))
            .filter(room_session::Column::EndedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        if ended > 0 {
            info!(
                node_url,
                sessions = ended,
                "Room sessions left open by this node ended."
            );
        }
        Ok(ended)
    }

    /// `rows` as [`RoomSession`]s, in the same order, each with its participants in the order
    /// they joined (one query for all of them).
    async fn with_participants(&self, rows: Vec<room_session::Model>) -> Result<Vec<RoomSession>> {
        let mut participants: HashMap<String, Vec<RoomSessionParticipant>> = HashMap::new();
        if !rows.is_empty() {
            let found = room_participant::Entity::find()
                .filter(
                    room_participant::Column::SessionId
                        .is_in(rows.iter().map(|row| row.id.as_str())),
                )
                .order_by_asc(room_participant::Column::JoinedAt)
                .order_by_asc(room_participant::Column::Sid)
                .all(&self.conn)
                .await?;
            for row in found {
                participants
                    .entry(row.session_id.clone())
                    .or_default()
                    .push(participant_from_row(row));
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| RoomSession {
                participants: participants.remove(&row.id).unwrap_or_default(),
                id: RoomSessionId::stored(row.id),
                room_id: RoomId::stored(row.room_id),
                node_url: row.node_url,
                started_at: row.started_at,
                ended_at: row.ended_at,
            })
            .collect())
    }
}
