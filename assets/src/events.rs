//! `asset.*` events from the asset side (the worker, recordings). Their data is the asset in
//! its API form (with its playback ids and URLs), which the API owns: the binary plugs the
//! API's view in here ([`AssetViews`]), so the asset side publishes the same JSON as the HTTP
//! handlers without depending on the HTTP crate.

use std::sync::Arc;

use serde_json::Value;
use sluice_storage::{Asset, Db, EventBus, EventType, NewEvent, PlaybackId};
use tracing::warn;

/// The API form of an asset.
pub trait AssetViews: Send + Sync {
    /// `asset` with its `playback_ids`, as `asset.*` events carry it.
    fn asset(&self, asset: &Asset, playback_ids: &[PlaybackId]) -> Value;
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
        let data = self.views.asset(asset, &playback_ids);
        if let Err(e) = self
            .bus
            .publish(NewEvent::new(event_type, &asset.id, data))
            .await
        {
            warn!(asset_id = %asset.id, error = %e, "Cannot publish an asset event.");
        }
    }
}
