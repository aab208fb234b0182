//! `/v1/api-keys`: create, list, get and revoke API keys. A key's secret is in the creation
//! response only; the server keeps its hash and a sealed copy, never the secret in clear.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_storage::{ApiKey, Permission};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::live_streams::validate_name;
use crate::AppState;

const NOT_FOUND_MESSAGE: &str = "API key not found";
const NOT_FOUND: ApiError = ApiError::NotFound(NOT_FOUND_MESSAGE);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(example = "CI deploys")]
    name: String,
    /// What the key may do: `admin` (everything, the default), `live:read`, `live:write`,
    /// `assets:read`, `assets:write`, `events:read`, `rooms:read`, `rooms:write`.
    #[schema(example = json!(["live:read", "live:write"]))]
    permissions: Option<Vec<String>>,
}

/// An API key; never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(example = "ak_3kP9sLm2QwErTyUiOpAs")]
    #[schema(example = "ak_3kP9sLm2QwErTyUiOpAs")]
    id: String,
    #[schema(example = "CI deploys")]
    name: String,
    #[schema(value_type = Vec<String>, example = json!(["admin"]))]
    permissions: Vec<Permission>,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
    /// When the key was revoked; revoked keys authenticate nothing.
    #[schema(example = json!(null))]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            permissions: key.permissions,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new API key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyView {
    #[schema(example = "ak_3kP9sLm2QwErTyUiOpAs")]
    id: String,
    #[schema(example = "CI deploys")]
    name: String,
    #[schema(value_type = Vec<String>, example = json!(["admin"]))]
    permissions: Vec<Permission>,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
    /// Shown only in this response: store it now. Use it as the Basic password or to sign
    /// HS256 JWTs.
    #[schema(example = "q8Wm2LxR0vT5nB7cY1zK4pD9sF3gH6jA0eU2iO5r")]
    secret: String,
}

/// Creates an API key; its secret is in this response and never again.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created, with the secret", body = Envelope<CreatedApiKeyView>),
        (status = 400, description = "Invalid name or unknown permission", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<Envelope<CreatedApiKeyView>>), ApiError> {
    validate_name(&request.name)?;
    let permissions = match &request.permissions {
        None => vec![Permission::Admin],
        Some(names) => Permission::parse_list(names)
            .map_err(|message| ApiError::InvalidRequest(format!("permissions: {message}")))?,
    };
    let (key, secret) = state.db.create_api_key(&request.name, &permissions).await?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: CreatedApiKeyView {
                id: key.id,
                name: key.name,
                permissions: key.permissions,
                created_at: key.created_at,
                secret,
            },
        }),
    ))
}

/// API keys in creation order, revoked ones included, a page at a time.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys",
    params(PageParams),
    responses(
        (status = 200, description = "A page of API keys", body = PageEnvelope<ApiKeyView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<ApiKeyView>>, ApiError> {
    let Query(params) = params?;
    let page = state
        .db
        .list_api_keys(params.limit()?, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(ApiKeyView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One API key.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api keys",
    params(("id" = String, Path, description = "API key id (`ak_…`)")),
    responses(
        (status = 200, description = "The API key", body = Envelope<ApiKeyView>),
        (status = 404, description = "No such API key", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<ApiKeyView>>, ApiError> {
    let key = state.db.get_api_key(&id).await?.ok_or(NOT_FOUND)?;
    Ok(Json(Envelope { data: key.into() }))
}

/// Revokes an API key: requests with it, or with tokens it signed, fail from now on. A key
/// may revoke itself.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api keys",
    params(("id" = String, Path, description = "API key id (`ak_…`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such API key", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .revoke_api_key(&id)
        .await
        .map_err(ApiError::not_found_as(NOT_FOUND_MESSAGE))?;
    Ok(StatusCode::NO_CONTENT)
}
