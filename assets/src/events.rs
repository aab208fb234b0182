//! `asset.*` events from the asset side (the worker, recordings). Their data is the asset in
//! its API form (with its playback ids, text tracks and URLs), or for `asset.track.*` one text
//! track, which the API owns: the binary plugs the API's views in here ([`AssetViews`]), so the
//! asset side publishes the same JSON as the HTTP handlers without depending on the HTTP crate.

use std::sync::Arc;

use serde_json::Value;
use sluice_storage::{Asset, Db, EventBus, EventType, NewEvent, PlaybackId, Transcript};
use tracing::warn;

/// The API forms of an asset and of its text tracks.
pub trait AssetViews: Send + Sync {
    /// `asset` with its `playback_ids` and text tracks, as `asset.*` events carry it.
    fn asset(&self, asset: &Asset, playback_ids: &[PlaybackId], tracks: &[Transcript]) -> Value;

    /// One text track with its `asset_id`, as `asset.track.*` events carry it.
    fn track(&self, track: &Transcript) -> Value;
}

/// Where asset events are published, and how they show the asset.
#[derive(Clone)]
pub struct AssetEvents {
    db: Db,
    bus: EventBus,
    views: Arc<dyn AssetViews>,
}

impl AssetEvents {
    pub fn new(db: Db, bus: EventBus, views: Arc<dyn AssetViews>) -> Self {
        AssetEvents { db, bus, views }
    }

    /// Publishes `event_type` about `asset`; a failure is logged, never fatal to the work
    /// that caused it.
    pub async fn publish(&self, event_type: EventType, asset: &Asset) {
        let playback_ids = match self.db.asset_playback_ids(&asset.id).await {
            Ok(ids) => ids,
            Err(e) => {
                warn!(asset_id = %asset.id, error = %e, "Cannot read the asset's playback ids.");
                Vec::new()
            }
        };
        let tracks = match self.db.transcripts_of(&asset.id).await {
            Ok(tracks) => tracks,
            Err(e) => {
                warn!(asset_id = %asset.id, error = %e, "Cannot read the asset's text tracks.");
                Vec::new()
            }
        };
        let data = self.views.asset(asset, &playback_ids, &tracks);
        if let Err(e) = self
            .bus
            .publish(NewEvent::new(event_type, &asset.id, data))
            .await
        {
            warn!(asset_id = %asset.id, error = %e, "Cannot publish an asset event.");
        }
    }

    /// Publishes `event_type` (`asset.track.*`) about `track`; a failure is logged.
    pub async fn publish_track(&self, event_type: EventType, track: &Transcript) {
        let data = self.views.track(track);
        if let Err(e) = self
            .bus
            .publish(NewEvent::new(event_type, &track.asset_id, data))
            .await
        {
            warn!(track_id = %track.id, error = %e, "Cannot publish a text track event.");
        }
    }
}
