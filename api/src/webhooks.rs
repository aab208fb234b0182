//! `/v1/webhooks`: endpoints that receive events as signed HTTP POSTs, their deliveries with
//! every attempt, and replays. Sending is the dispatcher's job (in the server binary); this
//! module only manages what it reads.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_storage::{
    DeliveryStatus, NewWebhookEndpoint, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
    WebhookEndpointUpdate,
};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::events::parse_event_type;
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::AppState;

/// Longest accepted endpoint URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest accepted endpoint description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: an `http` or `https` URL.
    #[schema(example = "https://example.com/sluice/webhooks")]
    url: String,
    /// Event types to send; absent or empty means every type.
    #[serde(default)]
    #[schema(example = json!(["live_stream.active", "live_stream.idle"]))]
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    url: Option<String>,
    /// Event types to send; empty means every type.
    events: Option<Vec<String>>,
    /// A disabled endpoint gets no new deliveries; its pending ones wait until it is enabled.
    enabled: Option<bool>,
    /// `null` removes the description.
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvents {
    /// Re-send this event and every later one the endpoint wants.
    #[schema(example = "evt_3kP9sQ2mT7vX1bN4cR8y")]
    since: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    id: String,
    url: String,
    /// Key of the `Sluice-Signature` HMAC; receivers need it to verify deliveries.
    #[schema(example = "whsec_Xq2…")]
    secret: String,
    /// Event types sent; empty means every type.
    events: Vec<String>,
    enabled: bool,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<WebhookEndpoint> for WebhookView {
    fn from(endpoint: WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            secret: endpoint.secret,
            events: endpoint.event_types,
            enabled: endpoint.enabled,
            description: endpoint.description,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(value_type = String, example = "pending")]
    status: DeliveryStatus,
    attempt_count: u32,
    /// When a pending delivery is tried next; `null` once delivered or failed.
    next_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    started_at: DateTime<Utc>,
    duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<u16>,
    /// Why the attempt got no answer (connection refused, timed out, …).
    error: Option<String>,
}

impl From<WebhookAttempt> for AttemptView {
    fn from(attempt: WebhookAttempt) -> Self {
        Self {
            started_at: attempt.started_at,
            duration_ms: attempt.duration_ms,
            status_code: attempt.status_code,
            error: attempt.error,
        }
    }
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(delivery: WebhookDelivery) -> Self {
        Self {
            id: delivery.id,
            webhook_id: delivery.endpoint_id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then_some(delivery.next_attempt_at),
            status: delivery.status,
            attempt_count: delivery.attempt_count,
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
            attempts: delivery
                .attempts
                .into_iter()
                .map(AttemptView::from)
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// How many deliveries were queued.
    queued: u64,
}

fn validate_url(url: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::InvalidRequest(format!("url: {why}"));
    if url.len() > MAX_URL_BYTES {
        return Err(invalid(&format!("must be at most {MAX_URL_BYTES} bytes")));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    Ok(parsed.to_string())
}

/// Checks every name and drops repeats, keeping the order given.
fn validate_event_types(names: &[String]) -> Result<Vec<String>, ApiError> {
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let event_type = parse_event_type("events", name)?.as_str().to_owned();
        if !types.contains(&event_type) {
            types.push(event_type);
        }
    }
    Ok(types)
}

fn validate_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
            Err(ApiError::InvalidRequest(format!(
                "description: must be at most {MAX_DESCRIPTION_CHARS} characters"
            )))
        }
        other => Ok(other),
    }
}

async fn find_endpoint(state: &AppState, id: &str) -> Result<WebhookEndpoint, ApiError> {
    state
        .db
        .get_webhook_endpoint(id)
        .await?
        .ok_or(ApiError::NotFound("webhook not found"))
}

/// Registers an endpoint; the response carries its signing `secret`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created", body = Envelope<WebhookView>),
        (status = 400, description = "Invalid URL or event type", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<Envelope<WebhookView>>), ApiError> {
    let new = NewWebhookEndpoint {
        url: validate_url(&request.url)?,
        event_types: validate_event_types(&request.events)?,
        description: validate_description(request.description)?,
    };
    let endpoint = state.db.create_webhook_endpoint(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: endpoint.into(),
        }),
    ))
}

/// Endpoints in creation order, a page at a time.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(PageParams),
    responses(
        (status = 200, description = "A page of webhook endpoints", body = PageEnvelope<WebhookView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<WebhookView>>, ApiError> {
    let Query(params) = params?;
    let page = state
        .db
        .list_webhook_endpoints(params.limit()?, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(WebhookView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<WebhookView>),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<WebhookView>>, ApiError> {
    Ok(Json(Envelope {
        data: find_endpoint(&state, &id).await?.into(),
    }))
}

/// Changes the URL, event types, enabled flag or description; absent fields stay as they are.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated endpoint", body = Envelope<WebhookView>),
        (status = 400, description = "Invalid URL or event type", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateWebhook>,
) -> Result<Json<Envelope<WebhookView>>, ApiError> {
    let update = WebhookEndpointUpdate {
        url: request.url.as_deref().map(validate_url).transpose()?,
        event_types: request
            .events
            .as_deref()
            .map(validate_event_types)
            .transpose()?,
        enabled: request.enabled,
        description: request.description.map(validate_description).transpose()?,
    };
    let endpoint = state
        .db
        .update_webhook_endpoint(&id, &update)
        .await
        .map_err(ApiError::not_found_as("webhook not found"))?;
    Ok(Json(Envelope {
        data: endpoint.into(),
    }))
}

/// Deletes the endpoint; deliveries still pending to it are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .delete_webhook_endpoint(&id)
        .await
        .map_err(ApiError::not_found_as("webhook not found"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the endpoint a new signing secret; every delivery from now on is signed with it.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)")),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = Envelope<WebhookView>),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<WebhookView>>, ApiError> {
    let endpoint = state
        .db
        .rotate_webhook_secret(&id)
        .await
        .map_err(ApiError::not_found_as("webhook not found"))?;
    Ok(Json(Envelope {
        data: endpoint.into(),
    }))
}

/// Deliveries to the endpoint in the order they were queued (oldest first), each with its
/// attempts.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)"), PageParams),
    responses(
        (status = 200, description = "A page of deliveries", body = PageEnvelope<DeliveryView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<DeliveryView>>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit()?;
    find_endpoint(&state, &id).await?;
    let page = state
        .db
        .list_webhook_deliveries(&id, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One delivery with its attempts.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook endpoint id (`wh_…`)"),
        ("delivery_id" = String, Path, description = "Delivery id (`whd_…`)"),
    ),
    responses(
        (status = 200, description = "The delivery", body = Envelope<DeliveryView>),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> Result<Json<Envelope<DeliveryView>>, ApiError> {
    let delivery = state
        .db
        .get_webhook_delivery(&id, &delivery_id)
        .await?
        .ok_or(ApiError::NotFound("delivery not found"))?;
    Ok(Json(Envelope {
        data: delivery.into(),
    }))
}

/// Queues the delivery again, due now and with a fresh retry window, whatever its status.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook endpoint id (`wh_…`)"),
        ("delivery_id" = String, Path, description = "Delivery id (`whd_…`)"),
    ),
    responses(
        (status = 202, description = "Queued", body = Envelope<DeliveryView>),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<Envelope<DeliveryView>>), ApiError> {
    let delivery = state
        .db
        .requeue_webhook_delivery(&id, &delivery_id)
        .await
        .map_err(ApiError::not_found_as("delivery not found"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Envelope {
            data: delivery.into(),
        }),
    ))
}

/// Queues new deliveries of the event `since` and of every later event the endpoint wants.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id (`wh_…`)")),
    request_body = ReplayEvents,
    responses(
        (status = 202, description = "Queued", body = Envelope<ReplayView>),
        (status = 400, description = "Unknown event id", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn replay_events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ReplayEvents>,
) -> Result<(StatusCode, Json<Envelope<ReplayView>>), ApiError> {
    find_endpoint(&state, &id).await?;
    let from_seq = state.db.event_seq(&request.since).await?.ok_or_else(|| {
        ApiError::InvalidRequest(format!("since: no event with id {:?}", request.since))
    })?;
    let queued = state
        .db
        .replay_webhook_events(&id, from_seq)
        .await
        .map_err(ApiError::not_found_as("webhook not found"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Envelope {
            data: ReplayView { queued },
        }),
    ))
}
