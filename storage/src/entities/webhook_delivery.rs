//! The `webhook_deliveries` table: the webhook outbox.

use sea_orm::entity::prelude::*;

use crate::model::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Queueing order: what listings page by.
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_seq: i64,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When a pending delivery is due next.
    pub next_attempt_at: DateTimeUtc,
    /// Set while a dispatcher holds the delivery; another may claim it once this has passed.
    pub lease_until: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    /// When the delivery was last queued (created or replayed): its retry window starts here.
    pub queued_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::webhook_endpoint::Entity",
        from = "Column::EndpointId",
        to = "super::webhook_endpoint::Column::Id",
        on_delete = "Cascade"
    )]
    Endpoint,
}

impl Related<super::webhook_endpoint::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoint.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
