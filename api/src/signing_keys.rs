//! `/v1/signing-keys`: keys that sign playback tokens for `signed` playback ids. The server
//! makes the key pair, returns the private key (PKCS#8 PEM) once and keeps only the public key.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sluice_storage::{SigningAlgorithm, SigningKey};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::AppState;

const NOT_FOUND_MESSAGE: &str = "signing key not found";
const NOT_FOUND: ApiError = ApiError::NotFound(NOT_FOUND_MESSAGE);
/// RSA modulus size of RS256 keys.
const RSA_BITS: usize = 2048;

/// The body of `POST /v1/signing-keys`; leaving the body out is the same as `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSigningKey {
    /// `ES256` (ECDSA P-256, the default) or `RS256` (RSA 2048).
    #[schema(value_type = Option<String>, example = "ES256")]
    algorithm: Option<SigningAlgorithm>,
}

/// A signing key; its id is the `kid` of the tokens it signs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyView {
    #[schema(example = "sk_3kP9sLm2QwErTyUiOpAs")]
    id: String,
    #[schema(value_type = String, example = "ES256")]
    algorithm: SigningAlgorithm,
    /// SubjectPublicKeyInfo PEM.
    #[schema(
        example = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…\n-----END PUBLIC KEY-----\n"
    )]
    public_key: String,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
}

impl From<SigningKey> for SigningKeyView {
    fn from(key: SigningKey) -> Self {
        Self {
            id: key.id,
            algorithm: key.algorithm,
            public_key: key.public_key_pem,
            created_at: key.created_at,
        }
    }
}

/// A new signing key with its private key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSigningKeyView {
    #[schema(example = "sk_3kP9sLm2QwErTyUiOpAs")]
    id: String,
    #[schema(value_type = String, example = "ES256")]
    algorithm: SigningAlgorithm,
    #[schema(
        example = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…\n-----END PUBLIC KEY-----\n"
    )]
    public_key: String,
    /// PKCS#8 PEM. Shown only in this response; the server does not keep it.
    #[schema(
        example = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg…\n-----END PRIVATE KEY-----\n"
    )]
    private_key: String,
    #[schema(example = "2026-06-01T10:00:00.123456Z")]
    created_at: DateTime<Utc>,
}

/// A fresh key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM), drawn from
/// `rand`'s OS-seeded CSPRNG.
fn generate_key_pair(algorithm: SigningAlgorithm) -> Result<(String, String), ApiError> {
    let mut rng = rand::thread_rng();
    match algorithm {
        SigningAlgorithm::ES256 => {
            let private = p256::SecretKey::random(&mut rng);
            let private_pem = private
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(ApiError::internal)?;
            let public_pem = private
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(ApiError::internal)?;
            Ok((private_pem.to_string(), public_pem))
        }
        SigningAlgorithm::RS256 => {
            let private =
                rsa::RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(ApiError::internal)?;
            let private_pem = private
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(ApiError::internal)?;
            let public_pem = rsa::RsaPublicKey::from(&private)
                .to_public_key_pem(LineEnding::LF)
                .map_err(ApiError::internal)?;
            Ok((private_pem.to_string(), public_pem))
        }
    }
}

/// Creates a signing key; its private key is in this response and never again.
#[utoipa::path(post, path = "/v1/signing-keys", tag = "signing keys",
    request_body = Option<CreateSigningKey>,
    responses(
        (status = 201, description = "Created, with the private key", body = Envelope<CreatedSigningKeyView>),
        (status = 400, description = "Unknown algorithm", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    request: Option<ApiJson<CreateSigningKey>>,
) -> Result<(StatusCode, Json<Envelope<CreatedSigningKeyView>>), ApiError> {
    let request = request.map(|ApiJson(request)| request).unwrap_or_default();
    let algorithm = request.algorithm.unwrap_or(SigningAlgorithm::ES256);
    // RSA key generation takes a noticeable time: keep it off the async workers.
    let (private_key, public_key) =
        tokio::task::spawn_blocking(move || generate_key_pair(algorithm))
            .await
            .map_err(ApiError::internal)??;
    let key = state.db.create_signing_key(algorithm, &public_key).await?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope {
            data: CreatedSigningKeyView {
                id: key.id,
                algorithm: key.algorithm,
                public_key: key.public_key_pem,
                private_key,
                created_at: key.created_at,
            },
        }),
    ))
}

/// Signing keys in creation order, a page at a time.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "signing keys",
    params(PageParams),
    responses(
        (status = 200, description = "A page of signing keys", body = PageEnvelope<SigningKeyView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<SigningKeyView>>, ApiError> {
    let Query(params) = params?;
    let page = state
        .db
        .list_signing_keys(params.limit()?, params.cursor.as_deref())
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items.into_iter().map(SigningKeyView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One signing key, without its private key.
#[utoipa::path(get, path = "/v1/signing-keys/{id}", tag = "signing keys",
    params(("id" = String, Path, description = "Signing key id (`sk_…`), the tokens' `kid`")),
    responses(
        (status = 200, description = "The signing key", body = Envelope<SigningKeyView>),
        (status = 404, description = "No such signing key", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<SigningKeyView>>, ApiError> {
    let key = state.db.get_signing_key(&id).await?.ok_or(NOT_FOUND)?;
    Ok(Json(Envelope { data: key.into() }))
}

/// Deletes a signing key: every token it signed is refused from now on.
#[utoipa::path(delete, path = "/v1/signing-keys/{id}", tag = "signing keys",
    params(("id" = String, Path, description = "Signing key id (`sk_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such signing key", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .delete_signing_key(&id)
        .await
        .map_err(ApiError::not_found_as(NOT_FOUND_MESSAGE))?;
    Ok(StatusCode::NO_CONTENT)
}
