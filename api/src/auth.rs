//! API key authentication for `/v1/*`.
//!
//! Two forms, both tied to a key in the database:
//! - HTTP Basic (RFC 7617) with `key_id:secret`, the secret compared in constant time;
//! - `Bearer` JWT (RFC 7519) signed HS256 with the key's secret, the key named by the `apikey`
//!   claim. The algorithm is pinned to HS256 (so `alg: none` and RS256/HS256 confusion,
//!   CVE-2015-9235 and CVE-2016-10555, are refused) and `exp` is required. The `kid` header is
//!   never consulted.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::debug;

use crate::error::ApiError;
use crate::AppState;

/// Clock skew tolerated on `exp`, in seconds.
const JWT_LEEWAY_SECS: u64 = 30;

const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized("invalid API key or secret");
const BAD_TOKEN: ApiError = ApiError::Unauthorized("invalid or expired token");

#[derive(Deserialize)]
struct Claims {
    /// Id of the API key whose secret signed the token.
    apikey: String,
}

/// Middleware: lets the request through only with valid credentials.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing Authorization header"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, credentials) = header
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    let credentials = credentials.trim();
    let key_id = if scheme.eq_ignore_ascii_case("basic") {
        verify_basic(&state, credentials).await?
    } else if scheme.eq_ignore_ascii_case("bearer") {
        verify_jwt(&state, credentials).await?
    } else {
        return Err(ApiError::Unauthorized(
            "unsupported authorization scheme; use Basic or Bearer",
        ));
    };
    debug!(api_key_id = %key_id, "Request authenticated.");
    Ok(next.run(request).await)
}

async fn verify_basic(state: &AppState, credentials: &str) -> Result<String, ApiError> {
    let decoded = BASE64
        .decode(credentials)
        .map_err(|_| ApiError::Unauthorized("malformed Basic credentials"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| ApiError::Unauthorized("malformed Basic credentials"))?;
    let (key_id, secret) = decoded
        .split_once(':')
        .ok_or(ApiError::Unauthorized("malformed Basic credentials"))?;
    let expected = state
        .db
        .api_key_secret(key_id)
        .await?
        .ok_or(BAD_CREDENTIALS)?;
    if bool::from(expected.as_bytes().ct_eq(secret.as_bytes())) {
        Ok(key_id.to_owned())
    } else {
        Err(BAD_CREDENTIALS)
    }
}

async fn verify_jwt(state: &AppState, token: &str) -> Result<String, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| BAD_TOKEN)?;
    if header.alg != Algorithm::HS256 {
        return Err(ApiError::Unauthorized("token must be signed with HS256"));
    }
    // The claims are read once unverified only to learn which key's secret to verify with;
    // nothing from them is trusted until the signature checks out below.
    let mut unverified = Validation::new(Algorithm::HS256);
    unverified.insecure_disable_signature_validation();
    unverified.validate_exp = false;
    unverified.required_spec_claims.clear();
    let claimed =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &unverified)
            .map_err(|_| BAD_TOKEN)?
            .claims;
    let secret = state
        .db
        .api_key_secret(&claimed.apikey)
        .await?
        .ok_or(BAD_TOKEN)?;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = JWT_LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp"]);
    let verified = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|_| BAD_TOKEN)?;
    Ok(verified.claims.apikey)
}
