//! The live core's LL-HLS trees ([`sluice_live::low_latency`]) plugged into HTTP delivery
//! ([`sluice_api::LowLatencyHls`]).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_api::{LowLatencyAnswer, LowLatencyHls, LowLatencyRequest};
use sluice_live::low_latency::{BlockingRequest, LowLatencyStreams, PlaylistAnswer};
use sluice_storage::LiveStreamId;

/// The low-latency sessions of this process's live core.
pub struct LiveLowLatency(pub Arc<LowLatencyStreams>);

#[async_trait]
impl LowLatencyHls for LiveLowLatency {
    async fn playlist(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        request: LowLatencyRequest,
        uri_query: &str,
    ) -> Option<LowLatencyAnswer> {
        let tree = self.0.get(live_stream_id)?;
        let blocking = request.msn.map(|msn| BlockingRequest {
            msn,
            part: request.part,
        });
        match tree
            .playlist(rendition, blocking, request.skip, uri_query)
            .await
        {
            PlaylistAnswer::Playlist(body) => Some(LowLatencyAnswer::Playlist(body)),
            PlaylistAnswer::NotFound => None,
            PlaylistAnswer::TooFarAhead => Some(LowLatencyAnswer::TooFarAhead),
            PlaylistAnswer::TimedOut => Some(LowLatencyAnswer::TimedOut),
        }
    }

    async fn media(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
    ) -> Option<Bytes> {
        let tree = self.0.get(live_stream_id)?;
        tree.media(rendition, name).await
    }
}
