//! The API's forms of the objects events carry, plugged into the media plane: live streams,
//! sessions and simulcast targets into the live core ([`sluice_live::EventViews`]), assets into
//! the asset side ([`sluice_assets::AssetViews`]), so their events carry the same JSON as the
//! HTTP handlers.

use async_trait::async_trait;
use serde_json::Value;
use sluice_storage::{Asset, Db, LiveStream, PlaybackId, Session, SimulcastTarget, Transcript};

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

/// The API's asset view, with playback URLs under the server's public base URL.
pub struct ApiAssetViews {
    pub public_url: String,
}

impl sluice_assets::AssetViews for ApiAssetViews {
    fn asset(&self, asset: &Asset, playback_ids: &[PlaybackId], tracks: &[Transcript]) -> Value {
        sluice_api::assets::asset_json(asset, playback_ids, tracks, &self.public_url)
    }

    fn track(&self, track: &Transcript) -> Value {
        sluice_api::assets::track_json(track)
    }
}
