//! Webhook endpoints and the outbox of their deliveries: queueing (inside the event's own
//! transaction), claiming due deliveries with a lease, recording attempts against their claim, replaying.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tracing::info;

use super::events::event_from_row;
use super::paging::{keyset_page, seq_page, PageKey, PageOrder, SeqKey};
use super::{json_column, now, Db, Record, Result, StorageError};
use crate::entities::{event, webhook_attempt, webhook_delivery, webhook_endpoint};
use crate::ids;
use crate::model::{
    AttemptOutcome, ClaimedDelivery, DeliveryStatus, Event, NewWebhookEndpoint, WebhookAttempt,
    WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint, WebhookEndpointPage,
    WebhookEndpointUpdate,
};

const WEBHOOK_ENDPOINT_PAGE: PageKey<webhook_endpoint::Entity> = PageKey {
    created_at: webhook_endpoint::Column::CreatedAt,
    id: webhook_endpoint::Column::Id,
    created_at_of: |row| row.created_at,
    id_of: |row| &row.id,
    order: PageOrder::OldestFirst,
};

const WEBHOOK_DELIVERY_PAGE: SeqKey<webhook_delivery::Entity> = SeqKey {
    seq: webhook_delivery::Column::Seq,
    id: webhook_delivery::Column::Id,
    seq_of: |row| row.seq,
    id_of: |row| &row.id,
};

/// Events read at a time when a range is replayed.
const REPLAY_BATCH: u64 = 500;

fn endpoint_from_row(row: webhook_endpoint::Model) -> Result<WebhookEndpoint> {
    let event_types = json_column(
        Record::WebhookEndpoint,
        &row.id,
        "event_types",
        &row.event_types,
    )?;
    Ok(WebhookEndpoint {
        id: row.id,
        url: row.url,
        secret: row.secret,
        event_types,
        enabled: row.enabled,
        description: row.description,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn delivery_from_row(row: webhook_delivery::Model) -> WebhookDelivery {
    WebhookDelivery {
        id: row.id,
        endpoint_id: row.endpoint_id,
        event_id: row.event_id,
        event_type: row.event_type,
        status: row.status,
        attempt_count: u32::try_from(row.attempts).unwrap_or(0),
        next_attempt_at: row.next_attempt_at,
        last_status_code: row
            .last_status_code
            .and_then(|code| u16::try_from(code).ok()),
        last_error: row.last_error,
        created_at: row.created_at,
        queued_at: row.queued_at,
        delivered_at: row.delivered_at,
        attempts: Vec::new(),
    }
}

fn attempt_from_row(row: webhook_attempt::Model) -> WebhookAttempt {
    WebhookAttempt {
        started_at: row.started_at,
        duration_ms: u64::try_from(row.duration_ms).unwrap_or(0),
        status_code: row.status_code.and_then(|code| u16::try_from(code).ok()),
        error: row.error,
    }
}

fn event_types_json(event_types: &[String]) -> String {
    serde_json::Value::from(event_types.to_vec()).to_string()
}

/// A pending delivery of `event` to `endpoint_id`, due now.
fn new_delivery(
    endpoint_id: &str,
    event: &Event,
    at: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        seq: sea_orm::ActiveValue::NotSet,
        id: Set(ids::new_id(ids::WEBHOOK_DELIVERY_PREFIX)),
        endpoint_id: Set(endpoint_id.to_owned()),
        event_id: Set(event.id.clone()),
        event_seq: Set(event.seq),
        event_type: Set(event.event_type.clone()),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(at),
        lease_until: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        queued_at: Set(at),
        delivered_at: Set(None),
    }
}

/// Queues `event` for every enabled endpoint that wants it; runs inside the transaction that
/// records the event.
pub(super) async fn queue_deliveries(conn: &impl ConnectionTrait, event: &Event) -> Result<()> {
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(conn)
        .await?;
    let mut deliveries = Vec::new();
    for row in endpoints {
        let endpoint = endpoint_from_row(row)?;
        if endpoint.wants(&event.event_type) {
            deliveries.push(new_delivery(&endpoint.id, event, event.created_at));
        }
    }
    if !deliveries.is_empty() {
        webhook_delivery::Entity::insert_many(deliveries)
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Fills in the attempts of `deliveries`, oldest first, in one query.
async fn with_attempts(
    conn: &impl ConnectionTrait,
    mut deliveries: Vec<WebhookDelivery>,
) -> Result<Vec<WebhookDelivery>> {
    let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
    let mut by_delivery: HashMap<String, Vec<WebhookAttempt>> = HashMap::new();
    for row in webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(conn)
        .await?
    {
        by_delivery
            .entry(row.delivery_id.clone())
            .or_default()
            .push(attempt_from_row(row));
    }
    for delivery in &mut deliveries {
        delivery.attempts = by_delivery.remove(&delivery.id).unwrap_or_default();
    }
    Ok(deliveries)
}

fn endpoint_not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::WebhookEndpoint,
        id: id.to_owned(),
    }
}

fn delivery_not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        record: Record::WebhookDelivery,
        id: id.to_owned(),
    }
}

impl Db {
    /// Creates an enabled endpoint with a fresh `whsec_…` signing secret.
    pub async fn create_webhook_endpoint(
        &self,
        new: &NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint> {
        let at = now();
        let row = webhook_endpoint::ActiveModel {
            id: Set(ids::new_id(ids::WEBHOOK_ENDPOINT_PREFIX)),
            url: Set(new.url.clone()),
            secret: Set(new_webhook_secret()),
            event_types: Set(event_types_json(&new.event_types)),
            enabled: Set(true),
            description: Set(new.description.clone()),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let row = webhook_endpoint::Entity::insert(row)
            .exec_with_returning(&self.conn)
            .await?;
        info!(webhook_endpoint_id = %row.id, "Webhook endpoint created.");
        endpoint_from_row(row)
    }

    pub async fn get_webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        webhook_endpoint::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .map(endpoint_from_row)
            .transpose()
    }

    /// Endpoints in creation order, at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]), starting
    /// after the endpoint whose id is `after`.
    pub async fn list_webhook_endpoints(
        &self,
        limit: u64,
        after: Option<&str>,
    ) -> Result<WebhookEndpointPage> {
        let (rows, next_cursor) = keyset_page(
            &self.conn,
            webhook_endpoint::Entity::find(),
            WEBHOOK_ENDPOINT_PAGE,
            limit,
            after,
        )
        .await?;
        let items = rows
            .into_iter()
            .map(endpoint_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(WebhookEndpointPage { items, next_cursor })
    }

    /// Applies `update` (already validated) and returns the endpoint as it is now.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        update: &WebhookEndpointUpdate,
    ) -> Result<WebhookEndpoint> {
        let row = webhook_endpoint::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .ok_or_else(|| endpoint_not_found(id))?;
        let mut row = row.into_active_model();
        if let Some(url) = &update.url {
            row.url = Set(url.clone());
        }
        if let Some(event_types) = &update.event_types {
            row.event_types = Set(event_types_json(event_types));
        }
        if let Some(enabled) = update.enabled {
            row.enabled = Set(enabled);
        }
        if let Some(description) = &update.description {
            row.description = Set(description.clone());
        }
        row.updated_at = Set(now());
        endpoint_from_row(row.update(&self.conn).await?)
    }

    /// Gives the endpoint a new signing secret; deliveries from now on are signed with it.
    pub async fn rotate_webhook_secret(&self, id: &str) -> Result<WebhookEndpoint> {
        let result = webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::Secret,
                new_webhook_secret().into(),
            )
            .col_expr(webhook_endpoint::Column::UpdatedAt, now().into())
            .filter(webhook_endpoint::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(endpoint_not_found(id));
        }
        self.get_webhook_endpoint(id)
            .await?
            .ok_or_else(|| endpoint_not_found(id))
    }

    /// Deletes the endpoint with its deliveries and their attempts (the foreign keys cascade),
    /// so nothing pending is sent to it any more.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<()> {
        let result = webhook_endpoint::Entity::delete_by_id(id)
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(endpoint_not_found(id));
        }
        info!(webhook_endpoint_id = %id, "Webhook endpoint deleted.");
        Ok(())
    }

    /// Deliveries to an endpoint in the order they were queued (oldest first), each with its
    /// attempts; at most `limit` (clamped to 1..=[`super::MAX_PAGE_SIZE`]) after the delivery whose
    /// id is `after`.
    pub async fn list_webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: u64,
        after: Option<&str>,
    ) -> Result<WebhookDeliveryPage> {
        let (rows, next_cursor) = seq_page(
            &self.conn,
            webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id)),
            WEBHOOK_DELIVERY_PAGE,
            limit,
            after,
        )
        .await?;
        let items = with_attempts(
            &self.conn,
            rows.into_iter().map(delivery_from_row).collect(),
        )
        .await?;
        Ok(WebhookDeliveryPage { items, next_cursor })
    }

    /// One delivery to `endpoint_id`, with its attempts.
    pub async fn get_webhook_delivery(
        &self,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<Option<WebhookDelivery>> {
        let Some(row) = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Id.eq(delivery_id))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .one(&self.conn)
            .await?
        else {
            return Ok(None);
        };
        Ok(with_attempts(&self.conn, vec![delivery_from_row(row)])
            .await?
            .pop())
    }

    /// Queues a delivery again, due now and with a fresh retry window, whatever its status.
    /// A delivery being sent keeps its lease, so no other dispatcher sends it at the same time;
    /// the attempt in flight is then recorded without settling it (its claim is superseded,
    /// see [`Db::record_webhook_attempt`]) and the delivery is sent again once that is done.
    pub async fn requeue_webhook_delivery(
        &self,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery> {
        let at = now();
        let result = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                DeliveryStatus::Pending.into(),
            )
            .col_expr(webhook_delivery::Column::NextAttemptAt, at.into())
            .col_expr(webhook_delivery::Column::QueuedAt, at.into())
            // A replay starts a fresh retry schedule: backoff counts attempts since queueing.
            .col_expr(webhook_delivery::Column::Attempts, 0.into())
            .filter(webhook_delivery::Column::Id.eq(delivery_id))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .exec(&self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(delivery_not_found(delivery_id));
        }
        self.get_webhook_delivery(endpoint_id, delivery_id)
            .await?
            .ok_or_else(|| delivery_not_found(delivery_id))
    }

    /// Queues new deliveries to `endpoint_id` of the event at position `from_seq` and of every
    /// later one the endpoint wants. Returns how many were queued.
    pub async fn replay_webhook_events(&self, endpoint_id: &str, from_seq: i64) -> Result<u64> {
        let endpoint = self
            .get_webhook_endpoint(endpoint_id)
            .await?
            .ok_or_else(|| endpoint_not_found(endpoint_id))?;
        let mut after = from_seq - 1;
        let mut queued = 0;
        loop {
            let events = self.events_after_seq(after, REPLAY_BATCH).await?;
            let Some(last) = events.last() else {
                break;
            };
            after = last.seq;
            let at = now();
            let deliveries: Vec<_> = events
                .iter()
                .filter(|event| endpoint.wants(&event.event_type))
                .map(|event| new_delivery(&endpoint.id, event, at))
                .collect();
            if !deliveries.is_empty() {
                queued += deliveries.len() as u64;
                webhook_delivery::Entity::insert_many(deliveries)
                    .exec(&self.conn)
                    .await?;
            }
        }
        Ok(queued)
    }

    /// Claims up to `limit` deliveries that are due, to enabled endpoints not in
    /// `busy_endpoints`, at most one per endpoint (the one due first), leasing each for
    /// `lease`. Each claim is a conditional update, so of several dispatchers sharing the
    /// database exactly one wins a delivery; a dispatcher that dies leaves its lease to expire.
    pub async fn claim_due_webhook_deliveries(
        &self,
        limit: usize,
        lease: Duration,
        busy_endpoints: &[String],
    ) -> Result<Vec<ClaimedDelivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let at = now();
        // Stored to the microsecond like every timestamp, so that the claim can be matched on it.
        let lease_until = (at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
            .trunc_subsecs(6);
        let claimable = Condition::any()
            .add(webhook_delivery::Column::LeaseUntil.is_null())
            .add(webhook_delivery::Column::LeaseUntil.lt(at));
        let candidates = webhook_delivery::Entity::find()
            .find_also_related(webhook_endpoint::Entity)
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(at))
            .filter(claimable.clone())
            .filter(webhook_delivery::Column::EndpointId.is_not_in(busy_endpoints.iter().cloned()))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .order_by_asc(webhook_delivery::Column::Seq)
            .limit(u64::try_from(limit.saturating_mul(4)).unwrap_or(u64::MAX))
            .all(&self.conn)
            .await?;
        let mut endpoints_taken = HashSet::new();
        let mut claimed = Vec::new();
        for (delivery, endpoint) in candidates {
            let Some(endpoint) = endpoint else { continue };
            if claimed.len() == limit || endpoints_taken.contains(&endpoint.id) {
                continue;
            }
            let won = webhook_delivery::Entity::update_many()
                .col_expr(
                    webhook_delivery::Column::LeaseUntil,
                    Some(lease_until).into(),
                )
                .filter(webhook_delivery::Column::Id.eq(delivery.id.as_str()))
                .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
                .filter(claimable.clone())
                .exec(&self.conn)
                .await?
                .rows_affected
                == 1;
            if won {
                endpoints_taken.insert(endpoint.id.clone());
                claimed.push((delivery, endpoint));
            }
        }
        let seqs: Vec<i64> = claimed
            .iter()
            .map(|(delivery, _)| delivery.event_seq)
            .collect();
        let mut events: HashMap<i64, Event> = HashMap::new();
        for row in event::Entity::find()
            .filter(event::Column::Seq.is_in(seqs))
            .all(&self.conn)
            .await?
        {
            let event = event_from_row(row)?;
            events.insert(event.seq, event);
        }
        claimed
            .into_iter()
            .map(|(delivery, endpoint)| {
                let event = events.get(&delivery.event_seq).cloned().ok_or_else(|| {
                    StorageError::NotFound {
                        record: Record::Event,
                        id: delivery.event_id.clone(),
                    }
                })?;
                Ok(ClaimedDelivery {
                    delivery_id: delivery.id,
                    endpoint_id: endpoint.id,
                    url: endpoint.url,
                    secret: endpoint.secret,
                    event,
                    attempt_count: u32::try_from(delivery.attempts).unwrap_or(0),
                    queued_at: delivery.queued_at,
                    lease_until,
                })
            })
            .collect()
    }

    /// Records one attempt made under `claim` and what follows from it, releasing the lease.
    /// Only a claim still current settles the delivery: when the delivery was requeued while
    /// being sent it stays pending (due now) and only the attempt is logged; when its lease ran
    /// out and another dispatcher claimed it, the attempt is logged and the lease left to that
    /// claim. So a replay is never lost and one claim never overwrites another's outcome.
    /// Times are stored to the microsecond, like every timestamp. Not found when the delivery
    /// is gone (its endpoint was deleted meanwhile).
    pub async fn record_webhook_attempt(
        &self,
        claim: &ClaimedDelivery,
        attempt: &WebhookAttempt,
        outcome: AttemptOutcome,
    ) -> Result<()> {
        let this_delivery = webhook_delivery::Column::Id.eq(claim.delivery_id.as_str());
        let this_lease = webhook_delivery::Column::LeaseUntil.eq(claim.lease_until);
        let txn = self.conn.begin().await?;
        let mut settle = webhook_delivery::Entity::update_many().col_expr(
            webhook_delivery::Column::LeaseUntil,
            None::<DateTime<Utc>>.into(),
        );
        settle = match outcome {
            AttemptOutcome::Delivered => settle
                .col_expr(
                    webhook_delivery::Column::Status,
                    DeliveryStatus::Delivered.into(),
                )
                .col_expr(webhook_delivery::Column::DeliveredAt, Some(now()).into()),
            AttemptOutcome::RetryAt(at) => settle.col_expr(
                webhook_delivery::Column::NextAttemptAt,
                at.trunc_subsecs(6).into(),
            ),
            AttemptOutcome::GiveUp => settle.col_expr(
                webhook_delivery::Column::Status,
                DeliveryStatus::Failed.into(),
            ),
        };
        let settled = settle
            .filter(this_delivery.clone())
            .filter(this_lease.clone())
            .filter(webhook_delivery::Column::QueuedAt.eq(claim.queued_at))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !settled {
            // Requeued while being sent: give up the lease so the replay goes out now.
            webhook_delivery::Entity::update_many()
                .col_expr(
                    webhook_delivery::Column::LeaseUntil,
                    None::<DateTime<Utc>>.into(),
                )
                .filter(this_delivery.clone())
                .filter(this_lease)
                .exec(&txn)
                .await?;
        }
        let counted = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::col(webhook_delivery::Column::Attempts).add(1),
            )
            .col_expr(
                webhook_delivery::Column::LastStatusCode,
                attempt.status_code.map(i32::from).into(),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                attempt.error.clone().into(),
            )
            .filter(this_delivery)
            .exec(&txn)
            .await?;
        if counted.rows_affected == 0 {
            return Err(delivery_not_found(&claim.delivery_id));
        }
        webhook_attempt::Entity::insert(webhook_attempt::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            delivery_id: Set(claim.delivery_id.clone()),
            started_at: Set(attempt.started_at.trunc_subsecs(6)),
            duration_ms: Set(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX)),
            status_code: Set(attempt.status_code.map(i32::from)),
            error: Set(attempt.error.clone()),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Gives up the leases of deliveries this process claimed but will not finish (it is
    /// shutting down), so the next run sends them at once.
    pub async fn release_webhook_leases(&self, delivery_ids: &[String]) -> Result<()> {
        if delivery_ids.is_empty() {
            return Ok(());
        }
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                None::<DateTime<Utc>>.into(),
            )
            .filter(webhook_delivery::Column::Id.is_in(delivery_ids.iter().cloned()))
            .exec(&self.conn)
            .await?;
        Ok(())
    }
}

fn new_webhook_secret() -> String {
    format!("{}{}", ids::WEBHOOK_SECRET_PREFIX, ids::new_secret())
}
