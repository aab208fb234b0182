//! The API's forms of live streams, sessions and simulcast targets, plugged into the live core
//! ([`sluice_live::EventViews`]) so its events carry the same JSON as the HTTP handlers.

use async_trait::async_trait;
use serde_json::Value;
use sluice_storage::{Db, LiveStream, Session, SimulcastTarget};

/// The views of `sluice_api`, with what they need to show a live stream.
pub struct ApiEventViews {
    pub db: Db,
    /// The RTMP ingest URL shown in live stream objects.
    pub rtmp_url: String,
    /// The server's public base URL, for playback and WHIP URLs.
    pub public_url: String,
}

#[async_trait]
impl sluice_live::EventViews for ApiEventViews {
    async fn live_stream(&self, stream: LiveStream) -> anyhow::Result<Value> {
        Ok(
            sluice_api::live_stream_event_data(&self.db, &self.rtmp_url, &self.public_url, stream)
                .await?,
        )
    }

    fn session(&self, session: Session) -> anyhow::Result<Value> {
        Ok(sluice_api::session_event_data(session)?)
    }

    fn simulcast_target(&self, target: SimulcastTarget) -> Value {
        sluice_api::simulcast_target_event_data(target)
    }
}
