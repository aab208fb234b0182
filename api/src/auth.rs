//! API key authentication and authorisation for `/v1/*`.
//!
//! Two forms, both tied to a key in the database:
//! - HTTP Basic (RFC 7617) with `key_id:secret`, for server-to-server use: the secret's SHA-256
//!   is compared in constant time with the stored hash;
//! - `Bearer` JWT (RFC 7519) signed HS256 with the key's secret (opened from its sealed form),
//!   the key named by the `apikey` claim. The algorithm is pinned to HS256 (so `alg: none` and
//!   RS256/HS256 confusion, CVE-2015-9235 and CVE-2016-10555, are refused), `exp` is required,
//!   `nbf` is honoured, and an `aud` claim must include the configured audience. The `kid`
//!   header is never consulted.
//!
//! The request then needs the one permission [`required_permission`] derives from its method
//! and path. A key holds a permission list (`admin` grants everything); a token's
//! `permissions` claim narrows its key's, never widens it. The authenticated [`Principal`] is
//! put in the request's extensions, for long-lived responses (event streams) to end when its
//! key is revoked or its token expires.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice_storage::{ApiKey, Permission};
use tracing::debug;

use crate::error::ApiError;
use crate::AppState;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(crate) const JWT_LEEWAY_SECS: u64 = 30;
/// The audience API tokens are checked against when the configuration names none.
pub const DEFAULT_JWT_AUDIENCE: &str = "sluice";
/// How far ahead an API token's `exp` may lie when the configuration says nothing: a day, as
/// short-lived tokens are the norm (a leaked one stops working soon).
pub const DEFAULT_JWT_MAX_LIFETIME_S: u64 = 24 * 60 * 60;

const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized("invalid API key or secret");
const MALFORMED_TOKEN: ApiError = ApiError::Unauthorized("malformed token");
const REVOKED: ApiError = ApiError::Unauthorized("API key revoked");

/// Who is calling: the API key a request authenticated with, what it may do and until when.
/// Put in the extensions of every `/v1/*` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key given with Basic credentials, or whose secret signed the Bearer token. A
    /// long-lived response checks it with `Db::api_key_is_usable` to end once it is revoked.
    pub api_key_id: String,
    /// The key's permissions, narrowed by the token's `permissions` claim if any.
    pub permissions: Vec<Permission>,
    /// When the credentials stop being valid: a Bearer token's `exp` (to the second); `None`
    /// for Basic credentials, which last until their key is revoked. A long-lived response
    /// ends at this time.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Claims {
    /// Id of the API key whose secret signed the token.
    apikey: String,
    /// Permissions the token asks for; absent means its key's.
    permissions: Option<Vec<String>>,
    /// Expiry, in seconds since the Unix epoch; required once the signature is checked.
    exp: Option<u64>,
    /// When the token was issued, in seconds since the Unix epoch; optional.
    iat: Option<u64>,
}

/// The permission a request needs, from its method and path; the one place this is decided.
pub(crate) fn required_permission(method: &Method, path: &str) -> Permission {
    let reads = method == Method::GET || method == Method::HEAD;
    let resource = path
        .strip_prefix("/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    match resource {
        "live-streams" | "sessions" if reads => Permission::LiveRead,
        "live-streams" | "sessions" => Permission::LiveWrite,
        "assets" | "uploads" | "search" if reads => Permission::AssetsRead,
        "assets" | "uploads" => Permission::AssetsWrite,
        "events" => Permission::EventsRead,
        "rooms" if reads => Permission::RoomsRead,
        "rooms" => Permission::RoomsWrite,
        // `api-keys`, `signing-keys`, `webhooks` and anything else under /v1.
        _ => Permission::Admin,
    }
}

/// Middleware: lets the request through only with valid credentials that hold the
/// permission the request needs.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers()).await?;
    let needed = required_permission(request.method(), request.uri().path());
    if !needed.is_granted_by(&principal.permissions) {
        return Err(ApiError::Forbidden(format!(
            "this request needs the {needed} permission, which these credentials do not have"
        )));
    }
    debug!(api_key_id = %principal.api_key_id, "Request authenticated.");
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing Authorization header"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, credentials) = header
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        verify_basic(state, credentials).await
    } else if scheme.eq_ignore_ascii_case("bearer") {
        verify_jwt(state, credentials).await
    } else {
        Err(ApiError::Unauthorized(
            "unsupported authorization scheme; use Basic or Bearer",
        ))
    }
}

async fn verify_basic(state: &AppState, credentials: &str) -> Result<Principal, ApiError> {
    let decoded = BASE64
        .decode(credentials)
        .map_err(|_| ApiError::Unauthorized("malformed Basic credentials"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| ApiError::Unauthorized("malformed Basic credentials"))?;
    let (key_id, secret) = decoded
        .split_once(':')
        .ok_or(ApiError::Unauthorized("malformed Basic credentials"))?;
    let key = state
        .db
        .verify_api_key_secret(key_id, secret)
        .await?
        .ok_or(BAD_CREDENTIALS)?;
    principal(key, None, None)
}

/// The `alg` a token's header names, read without trusting anything else in it. Read by hand
/// because `jsonwebtoken::decode_header` fails on algorithms it does not know (`none`), and
/// the client should hear that the algorithm is wrong, not that the token is malformed.
fn header_algorithm(token: &str) -> Result<String, ApiError> {
    let header = token.split('.').next().unwrap_or_default();
    let header = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| MALFORMED_TOKEN)?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| MALFORMED_TOKEN)?;
    header["alg"]
        .as_str()
        .map(str::to_owned)
        .ok_or(MALFORMED_TOKEN)
}

/// The API key an API JWT says signed it, read before anything in the token is trusted: the
/// front end of token checking that any stranger reaches. It refuses every algorithm but
/// HS256 and claims of the wrong shape.
pub fn claimed_api_key(token: &str) -> Result<String, ApiError> {
    if header_algorithm(token)? != "HS256" {
        return Err(ApiError::Unauthorized(
            "token must be signed with HS256 (alg none and public-key algorithms are refused)",
        ));
    }
    // The claims are read once unverified only to learn which key's secret to verify with;
    // nothing from them is trusted until the signature checks out.
    let mut unverified = Validation::new(Algorithm::HS256);
    unverified.insecure_disable_signature_validation();
    unverified.validate_exp = false;
    unverified.validate_aud = false;
    unverified.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &unverified)
        .map(|data| data.claims.apikey)
        .map_err(|_| {
            ApiError::Unauthorized(
                "malformed token claims: apikey must be a string, exp a whole number of \
                 seconds and permissions, if present, a list of strings",
            )
        })
}

async fn verify_jwt(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claimed_key = claimed_api_key(token)?;
    let (key, secret) =
        state
            .db
            .api_key_jwt_secret(&claimed_key)
            .await?
            .ok_or(ApiError::Unauthorized(
                "unknown API key in the apikey claim",
            ))?;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = JWT_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    validation.set_audience(&[state.jwt_audience.as_str()]);
    let verified =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret), &validation)
            .map_err(|error| ApiError::Unauthorized(jwt_failure(error.kind())))?;
    // The lifetime from now, and from its issue when it says (so a long-lived token is refused
    // all its life, not only until its last day).
    let exp = verified.claims.exp.unwrap_or(u64::MAX);
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let issued = verified.claims.iat.map_or(now, |iat| iat.min(now));
    if exp.saturating_sub(issued) > state.jwt_max_lifetime_s.saturating_add(JWT_LEEWAY_SECS) {
        return Err(ApiError::Unauthorized(
            "token lifetime too long: its exp lies further ahead than this server allows \
             ([auth] jwt_max_lifetime_s, a day by default); sign tokens that expire sooner",
        ));
    }
    let expires_at = verified.claims.exp.map(|exp| {
        i64::try_from(exp)
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    });
    principal(key, verified.claims.permissions, expires_at)
}

/// What to tell the client about a token that failed validation.
pub(crate) fn jwt_failure(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid: its nbf is in the future",
        ErrorKind::InvalidAudience => "token audience (aud) does not include this server",
        ErrorKind::InvalidSignature => "token signature does not verify",
        ErrorKind::InvalidAlgorithm => "token signed with the wrong algorithm",
        // The claims `Validation::set_required_spec_claims` can require.
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "token lacks the required exp claim",
            "sub" => "token lacks the required sub claim",
            "aud" => "token lacks the required aud claim",
            "nbf" => "token lacks the required nbf claim",
            "iss" => "token lacks the required iss claim",
            _ => "token lacks a required claim",
        },
        _ => "malformed token",
    }
}

/// The principal of a verified key: refused when revoked, its permissions narrowed by those
/// a token asks for, valid until `expires_at` (a token's expiry).
fn principal(
    key: ApiKey,
    requested: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Principal, ApiError> {
    if key.revoked_at.is_some() {
        return Err(REVOKED);
    }
    let permissions = match requested {
        None => key.permissions,
        Some(names) if names.is_empty() => Vec::new(),
        Some(names) => {
            let requested = Permission::parse_list(&names)
                .map_err(|_| ApiError::Unauthorized("token names an unknown permission"))?;
            intersect(&key.permissions, &requested)
        }
    };
    Ok(Principal {
        api_key_id: key.id,
        permissions,
        expires_at,
    })
}

/// What both lists allow, `admin` standing for every permission.
fn intersect(held: &[Permission], requested: &[Permission]) -> Vec<Permission> {
    if held.contains(&Permission::Admin) {
        requested.to_vec()
    } else if requested.contains(&Permission::Admin) {
        held.to_vec()
    } else {
        held.iter()
            .copied()
            .filter(|permission| requested.contains(permission))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use axum::{Extension, Json, Router};
    use sluice_storage::test_support::TestDatabase;
    use sluice_storage::{Db, EventBus, LocalStore, SecretBox, MASTER_KEY_LEN};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn each_route_family_needs_its_permission() {
        use Permission::*;
        for (method, path, needed) in [
            (Method::GET, "/v1/live-streams", LiveRead),
            (Method::HEAD, "/v1/live-streams/ls_1", LiveRead),
            (Method::POST, "/v1/live-streams", LiveWrite),
            (
                Method::DELETE,
                "/v1/live-streams/ls_1/playback-ids/p",
                LiveWrite,
            ),
            (Method::GET, "/v1/sessions/ses_1", LiveRead),
            (Method::PATCH, "/v1/sessions/ses_1", LiveWrite),
            (Method::GET, "/v1/assets", AssetsRead),
            (Method::GET, "/v1/search", AssetsRead),
            (Method::POST, "/v1/uploads", AssetsWrite),
            (Method::GET, "/v1/events", EventsRead),
            (Method::GET, "/v1/rooms", RoomsRead),
            (Method::GET, "/v1/rooms/room_1/participants", RoomsRead),
            (Method::POST, "/v1/rooms", RoomsWrite),
            (Method::POST, "/v1/rooms/room_1/tokens", RoomsWrite),
            (
                Method::DELETE,
                "/v1/rooms/room_1/participants/alice",
                RoomsWrite,
            ),
            (Method::GET, "/v1/roomsX", Admin),
            (Method::GET, "/v1/api-keys", Admin),
            (Method::POST, "/v1/signing-keys", Admin),
            (Method::GET, "/v1/webhooks", Admin),
            (Method::GET, "/v1/anything-else", Admin),
            (Method::GET, "/v1/live-streamsX", Admin),
        ] {
            assert_eq!(
                required_permission(&method, path),
                needed,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_missing_claim_is_named() {
        for claim in ["exp", "sub", "aud"] {
            let message = jwt_failure(&ErrorKind::MissingRequiredClaim(claim.to_owned()));
            assert_eq!(message, format!("token lacks the required {claim} claim"));
        }
    }

    /// A router whose one route answers with the [`Principal`] the middleware put in the
    /// request, over a real database holding one admin key.
    async fn principal_echo() -> (TestDatabase, Router, String, String) {
        let database = TestDatabase::new();
        let db = Db::connect(database.url())
            .await
            .unwrap()
            .with_secret_box(SecretBox::new([5; MASTER_KEY_LEN]));
        db.migrate().await.unwrap();
        let (key, secret) = db
            .create_api_key("echo", &[Permission::Admin])
            .await
            .unwrap();
        let state = AppState {
            db: db.clone(),
            store: Arc::new(LocalStore::new(std::env::temp_dir().join("sluice-unused"))),
            events: EventBus::new(db),
            public_url: "http://localhost:8080".to_owned(),
            rtmp_url: "rtmp://localhost:1935/live".to_owned(),
            simulcast_url_validator: Arc::new(|_| Box::pin(async { Ok(()) })),
            metrics: crate::Metrics::new(),
            jwt_audience: DEFAULT_JWT_AUDIENCE.to_owned(),
            jwt_max_lifetime_s: DEFAULT_JWT_MAX_LIFETIME_S,
            uploads: crate::Uploads::new(crate::UploadSettings {
                spool_dir: std::env::temp_dir().join("sluice-unused"),
                max_size: 1,
                default_timeout_s: 60,
                sweep_interval: std::time::Duration::from_secs(60),
            }),
            images: None,
            whip: None,
            low_latency: None,
            packaged_here: None,
            node_token: None,
            playback_ids: Default::default(),
            viewers: Default::default(),
            speech_unavailable: None,
            rooms: None,
            rooms_ws_url: "ws://localhost:8080".to_owned(),
        };
        let app = Router::new()
            .route(
                "/v1/whoami",
                get(|Extension(principal): Extension<Principal>| async move {
                    Json(serde_json::json!({
                        "api_key_id": principal.api_key_id,
                        "expires_at": principal.expires_at,
                    }))
                }),
            )
            .layer(from_fn_with_state(state.clone(), require_api_key))
            .with_state(state);
        (database, app, key.id, secret)
    }

    async fn whoami(app: &Router, authorization: String) -> serde_json::Value {
        let response = app
            .clone()
            .oneshot(
                axum::http::Request::get("/v1/whoami")
                    .header(AUTHORIZATION, authorization)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn the_principal_carries_its_key_and_token_expiry() {
        let (_database, app, key_id, secret) = principal_echo().await;
        let basic = whoami(
            &app,
            format!("Basic {}", BASE64.encode(format!("{key_id}:{secret}"))),
        )
        .await;
        assert_eq!(basic["api_key_id"], key_id.as_str());
        assert!(basic["expires_at"].is_null(), "Basic credentials: {basic}");

        let exp = Utc::now().timestamp() + 600;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"apikey": key_id, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        let bearer = whoami(&app, format!("Bearer {token}")).await;
        assert_eq!(bearer["api_key_id"], key_id.as_str());
        let expires_at = DateTime::from_timestamp(exp, 0).unwrap();
        assert_eq!(bearer["expires_at"], serde_json::json!(expires_at));
    }

    #[test]
    fn token_permissions_never_exceed_their_key() {
        use Permission::*;
        assert_eq!(intersect(&[Admin], &[LiveRead]), [LiveRead]);
        assert_eq!(intersect(&[LiveRead], &[Admin]), [LiveRead]);
        assert_eq!(intersect(&[LiveRead], &[LiveRead, LiveWrite]), [LiveRead]);
        assert!(intersect(&[LiveRead], &[EventsRead]).is_empty());
    }
}
