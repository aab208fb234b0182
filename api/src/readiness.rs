//! `GET /readyz`: readiness. The server is ready when the metadata database answers a trivial
//! query and the object store takes a write and gives the same bytes back (a small probe
//! object under a key of its own). `/healthz` stays pure liveness.

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use sluice_storage::ObjectKey;
use tracing::warn;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Where the probe object lives: a top-level name no media object uses.
const PROBE_KEY: [&str; 2] = [".sluice", "readiness-probe"];
const PROBE_BODY: &[u8] = b"ready";

/// `{"status": "ready"}`
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    #[schema(example = "ready")]
    status: &'static str,
}

/// Readiness: 200 when the database and the object store both work, else 503 naming what
/// failed.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database and the object store work", body = Readiness),
        (status = 503, description = "A dependency fails; the message names it", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let mut failures = Vec::new();
    if let Err(e) = state.db.ping().await {
        warn!(error = %e, "Readiness: the database does not answer.");
        failures.push("the database does not answer");
    }
    if let Err(e) = probe_object_store(&state).await {
        warn!(error = %e, "Readiness: the object store fails.");
        failures.push("the object store cannot be written and read back");
    }
    if failures.is_empty() {
        Ok(Json(Readiness { status: "ready" }))
    } else {
        Err(ApiError::NotReady(failures.join("; ")))
    }
}

async fn probe_object_store(state: &AppState) -> Result<(), ApiError> {
    let key = ObjectKey::new(PROBE_KEY).map_err(ApiError::internal)?;
    state
        .store
        .put(&key, Bytes::from_static(PROBE_BODY))
        .await?;
    let body = state.store.get(&key).await?;
    if body != PROBE_BODY {
        return Err(ApiError::internal("the probe object came back changed"));
    }
    Ok(())
}
