//! How the live core's events show what they are about. An event's `data` is the object in
//! its API form (a live stream without its stream key, a session, a simulcast target with its
//! key masked), and the API owns those forms: they are its OpenAPI schemas. The binary plugs
//! the API's views in here, so the media plane publishes the same JSON as the HTTP handlers
//! without depending on the HTTP crate.

use async_trait::async_trait;
use serde_json::Value;
use sluice_storage::{LiveStream, Session, SimulcastTarget};

/// The API forms of the objects the live core publishes events about.
#[async_trait]
pub trait EventViews: Send + Sync {
    /// `stream` as `live_stream.*` events carry it (playback ids and current session read
    /// from the database).
    async fn live_stream(&self, stream: LiveStream) -> anyhow::Result<Value>;

    /// `session` as `session.*` events carry it.
    fn session(&self, session: Session) -> anyhow::Result<Value>;

    /// `target` as `simulcast_target.*` events carry it.
    fn simulcast_target(&self, target: SimulcastTarget) -> Value;
}
