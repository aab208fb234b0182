//! Keyset pagination shared by every list: a page is fetched with one row too many, cut to its
//! limit by [`into_page`], and the cursor of the next page is the id of its last row.
//! [`keyset_page`] does the whole job for lists in `(created_at, id)` order, [`seq_page`] for
//! lists in the order rows were appended (their `seq`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::{Result, StorageError, MAX_PAGE_SIZE};

/// Which end of a keyset list comes first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PageOrder {
    OldestFirst,
    NewestFirst,
}

/// How a table's rows are ordered and named for [`keyset_page`]: by a time column (creation,
/// start), ties broken by id.
pub(super) struct PageKey<E: EntityTrait> {
    pub created_at: E::Column,
    pub id: E::Column,
    pub created_at_of: fn(&E::Model) -> DateTime<Utc>,
    pub id_of: fn(&E::Model) -> &str,
    pub order: PageOrder,
}

/// At most `limit` rows of `query` (clamped to 1..=[`MAX_PAGE_SIZE`]) after the row whose id
/// is `after`, and the cursor of the next page (`None` on the last page). A cursor naming no
/// row of `query` is [`StorageError::InvalidCursor`].
pub(super) async fn keyset_page<E: EntityTrait>(
    conn: &DatabaseConnection,
    query: Select<E>,
    key: PageKey<E>,
    limit: u64,
    after: Option<&str>,
) -> Result<(Vec<E::Model>, Option<String>)> {
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let direction = match key.order {
        PageOrder::OldestFirst => Order::Asc,
        PageOrder::NewestFirst => Order::Desc,
    };
    let mut page = query
        .clone()
        .order_by(key.created_at, direction.clone())
        .order_by(key.id, direction)
        .limit(limit + 1);
    if let Some(after) = after {
        let anchor = query
            .filter(key.id.eq(after))
            .one(conn)
            .await?
            .ok_or_else(|| StorageError::InvalidCursor(after.to_owned()))?;
        let anchor_created_at = (key.created_at_of)(&anchor);
        let anchor_id = (key.id_of)(&anchor);
        // The rows past the anchor in the list's order.
        let (time_past, id_past) = match key.order {
            PageOrder::OldestFirst => (key.created_at.gt(anchor_created_at), key.id.gt(anchor_id)),
            PageOrder::NewestFirst => (key.created_at.lt(anchor_created_at), key.id.lt(anchor_id)),
        };
        page = page.filter(
            Condition::any().add(time_past).add(
                Condition::all()
                    .add(key.created_at.eq(anchor_created_at))
                    .add(id_past),
            ),
        );
    }
    let rows = page.all(conn).await?;
    Ok(into_page(rows, limit, key.id_of))
}

/// How an append-ordered table's rows are positioned and named for [`seq_page`].
pub(super) struct SeqKey<E: EntityTrait> {
    pub seq: E::Column,
    pub id: E::Column,
    pub seq_of: fn(&E::Model) -> i64,
    pub id_of: fn(&E::Model) -> &str,
}

/// At most `limit` rows of `query` (clamped to 1..=[`MAX_PAGE_SIZE`]) in `seq` order after
/// the row whose id is `after`, and the cursor of the next page (`None` on the last page). A
/// cursor naming no row of `query` is [`StorageError::InvalidCursor`].
pub(super) async fn seq_page<E: EntityTrait>(
    conn: &DatabaseConnection,
    query: Select<E>,
    key: SeqKey<E>,
    limit: u64,
    after: Option<&str>,
) -> Result<(Vec<E::Model>, Option<String>)> {
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let mut page = query.clone().order_by_asc(key.seq).limit(limit + 1);
    if let Some(after) = after {
        let anchor = query
            .filter(key.id.eq(after))
            .one(conn)
            .await?
            .ok_or_else(|| StorageError::InvalidCursor(after.to_owned()))?;
        page = page.filter(key.seq.gt((key.seq_of)(&anchor)));
    }
    let rows = page.all(conn).await?;
    Ok(into_page(rows, limit, key.id_of))
}

/// Cuts a page fetched with one row too many down to `limit` and returns it with the cursor of
/// the next page (the id of its last item), if there is one.
pub(super) fn into_page<T>(
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
