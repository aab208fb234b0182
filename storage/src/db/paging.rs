//! Keyset pagination shared by every list: rows in `(created_at, id)` order, a page at a time,
//! the cursor being the id of the previous page's last row.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use super::{Result, StorageError, MAX_PAGE_SIZE};

/// How a table's rows are ordered and named for [`keyset_page`].
pub(super) struct PageKey<E: EntityTrait> {
    pub created_at: E::Column,
    pub id: E::Column,
    pub created_at_of: fn(&E::Model) -> DateTime<Utc>,
    pub id_of: fn(&E::Model) -> &str,
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
    let mut page = query
        .clone()
        .order_by_asc(key.created_at)
        .order_by_asc(key.id)
        .limit(limit + 1);
    if let Some(after) = after {
        let anchor = query
            .filter(key.id.eq(after))
            .one(conn)
            .await?
            .ok_or_else(|| StorageError::InvalidCursor(after.to_owned()))?;
        let anchor_created_at = (key.created_at_of)(&anchor);
        page = page.filter(
            Condition::any()
                .add(key.created_at.gt(anchor_created_at))
                .add(
                    Condition::all()
                        .add(key.created_at.eq(anchor_created_at))
                        .add(key.id.gt((key.id_of)(&anchor))),
                ),
        );
    }
    let mut rows = page.all(conn).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if has_more {
        rows.last().map(|row| (key.id_of)(row).to_owned())
    } else {
        None
    };
    Ok((rows, next_cursor))
}
