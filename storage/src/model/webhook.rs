//! Webhooks: endpoints that receive events over HTTP, and the deliveries (with their attempts)
//! of the outbox that carries events to them.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;

use super::Event;

/// Where events are POSTed, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `wh_` followed by random characters.
    pub id: String,
    pub url: String,
    /// `whsec_…`: the HMAC-SHA256 key of the `Sluice-Signature` header.
    pub secret: String,
    /// Event type names sent to this endpoint; empty means every type.
    pub event_types: Vec<String>,
    /// Disabled endpoints get no new deliveries and their pending ones wait.
    pub enabled: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// Whether events of type `event_type` go to this endpoint.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// A new endpoint; the caller has validated the URL and event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEndpoint {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` leaves a field as it is. A description of `Some(None)` clears
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookEndpointUpdate {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
}

/// One page of [`WebhookEndpoint`]s in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpointPage {
    pub items: Vec<WebhookEndpoint>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; due at `next_attempt_at`.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The receiver answered 2xx.
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Every attempt within the retry window failed.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `whd_` followed by random characters.
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// When a pending delivery is due; meaningless once delivered or failed.
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was last queued (created or replayed): the retry window starts here.
    pub queued_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first (filled by the calls that say so).
    pub attempts: Vec<WebhookAttempt>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed without an answer (connect error, timeout).
    pub error: Option<String>,
}

/// One page of [`WebhookDelivery`]s, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A delivery a dispatcher has claimed, with everything needed to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event: Event,
    /// Attempts made before this one.
    pub attempt_count: u32,
    pub queued_at: DateTime<Utc>,
    /// The end of this claim's lease. With `queued_at` it names the claim: an attempt is
    /// recorded against the claim it was made under, so a claim that was superseded (its lease
    /// ran out and another dispatcher took the delivery, or the delivery was requeued while
    /// being sent) cannot settle the delivery.
    pub lease_until: DateTime<Utc>,
}

/// What became of an attempt, and so of its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at this time.
    RetryAt(DateTime<Utc>),
    /// Failed, and the retry window is over.
    GiveUp,
}
