//! Domain events: what happened to which object, recorded durably and fanned out to
//! `GET /v1/events`, Server-Sent Events, webhooks and the media plane.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Every kind of event Sluice emits. The wire name is `{object}.{what}`, e.g.
/// `live_stream.created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    LiveStreamCreated,
    LiveStreamUpdated,
    LiveStreamDeleted,
    /// A publisher opened a connection and asked to publish (before any media).
    LiveStreamConnected,
    /// Media is flowing and the ladder is being packaged.
    LiveStreamActive,
    /// The stream has no publisher any more.
    LiveStreamIdle,
    /// The publisher's connection ended.
    LiveStreamDisconnected,
    LiveStreamStreamKeyReset,
    LiveStreamDisabled,
    LiveStreamEnabled,
    /// The API asked for the current session to end now.
    LiveStreamCompleted,
    /// The stream's health check found a problem with what the encoder sends; the data is
    /// the warning (`code`, `message`, `since`) with the `live_stream_id` and `session_id`.
    LiveStreamWarning,
    SessionStarted,
    SessionEnded,
    AssetCreated,
    /// Processing finished: every rendition, image and playlist is in place.
    AssetReady,
    /// Processing failed for good; the data's `error` says why.
    AssetErrored,
    AssetDeleted,
    /// A generated subtitles track is ready (its WebVTT rendition is in the master playlist and
    /// its transcript can be read); the data is the track with its `asset_id`.
    AssetTrackReady,
    /// A generated subtitles track could not be made; the data's `error` says why.
    AssetTrackErrored,
    UploadCreated,
    /// The upload is complete and became an asset.
    UploadAssetCreated,
    UploadErrored,
    UploadCancelled,
    SimulcastTargetCreated,
    SimulcastTargetDeleted,
    /// The target accepted the publish: the stream is being restreamed to it.
    SimulcastTargetConnected,
    /// The connection to the target ended (the session ended, or the target was removed).
    SimulcastTargetDisconnected,
    /// The target refused, failed or stalled; the data's `last_error` says why. It is retried.
    SimulcastTargetErrored,
    /// A room was created (through the API, or on a first join); the data is the room.
    RoomCreated,
    /// A room was deleted; a running session was closed first.
    RoomDeleted,
    /// A room began running: its first participant joined. The object of every `room.*`,
    /// `participant.*` and `track.*` event is the room (`room_…`).
    RoomStarted,
    /// A room stopped running: closed, or empty for its `empty_timeout_s`.
    RoomFinished,
    /// A session (one run of the room on a node) was recorded.
    RoomSessionStarted,
    RoomSessionEnded,
    /// A participant joined a room; the object is the room.
    ParticipantJoined,
    /// A participant left a room (or was removed); the object is the room.
    ParticipantLeft,
    /// A participant published a track; the object is the room.
    TrackPublished,
    TrackUnpublished,
    TrackMuted,
    TrackUnmuted,
    /// A room composite was started (it publishes once someone is in the room); the data is
    /// the composite, the object its room.
    RoomCompositeStarted,
    /// A room composite stopped (asked to, its room ended, or it failed); the data is the
    /// composite, the object its room.
    RoomCompositeStopped,
    /// A room session's microphones began to be transcribed; the object is the room, the data
    /// names the session and the language.
    RoomTranscriptionStarted,
    /// A room session's transcription stopped (asked to, or the room ended); its transcript is
    /// complete. The data names the session and how many lines were stored.
    RoomTranscriptionStopped,
}

impl EventType {
    pub const ALL: [EventType; 45] = [
        Self::LiveStreamCreated,
        Self::LiveStreamUpdated,
        Self::LiveStreamDeleted,
        Self::LiveStreamConnected,
        Self::LiveStreamActive,
        Self::LiveStreamIdle,
        Self::LiveStreamDisconnected,
        Self::LiveStreamStreamKeyReset,
        Self::LiveStreamDisabled,
        Self::LiveStreamEnabled,
        Self::LiveStreamCompleted,
        Self::LiveStreamWarning,
        Self::SessionStarted,
        Self::SessionEnded,
        Self::AssetCreated,
        Self::AssetReady,
        Self::AssetErrored,
        Self::AssetDeleted,
        Self::AssetTrackReady,
        Self::AssetTrackErrored,
        Self::UploadCreated,
        Self::UploadAssetCreated,
        Self::UploadErrored,
        Self::UploadCancelled,
        Self::SimulcastTargetCreated,
        Self::SimulcastTargetDeleted,
        Self::SimulcastTargetConnected,
        Self::SimulcastTargetDisconnected,
        Self::SimulcastTargetErrored,
        Self::RoomCreated,
        Self::RoomDeleted,
        Self::RoomStarted,
        Self::RoomFinished,
        Self::RoomSessionStarted,
        Self::RoomSessionEnded,
        Self::ParticipantJoined,
        Self::ParticipantLeft,
        Self::TrackPublished,
        Self::TrackUnpublished,
        Self::TrackMuted,
        Self::TrackUnmuted,
        Self::RoomCompositeStarted,
        Self::RoomCompositeStopped,
        Self::RoomTranscriptionStarted,
        Self::RoomTranscriptionStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LiveStreamCreated => "live_stream.created",
            Self::LiveStreamUpdated => "live_stream.updated",
            Self::LiveStreamDeleted => "live_stream.deleted",
            Self::LiveStreamConnected => "live_stream.connected",
            Self::LiveStreamActive => "live_stream.active",
            Self::LiveStreamIdle => "live_stream.idle",
            Self::LiveStreamDisconnected => "live_stream.disconnected",
            Self::LiveStreamStreamKeyReset => "live_stream.stream_key_reset",
            Self::LiveStreamDisabled => "live_stream.disabled",
            Self::LiveStreamEnabled => "live_stream.enabled",
            Self::LiveStreamCompleted => "live_stream.completed",
            Self::LiveStreamWarning => "live_stream.warning",
            Self::SessionStarted => "session.started",
            Self::SessionEnded => "session.ended",
            Self::AssetCreated => "asset.created",
            Self::AssetReady => "asset.ready",
            Self::AssetErrored => "asset.errored",
            Self::AssetDeleted => "asset.deleted",
            Self::AssetTrackReady => "asset.track.ready",
            Self::AssetTrackErrored => "asset.track.errored",
            Self::UploadCreated => "upload.created",
            Self::UploadAssetCreated => "upload.asset_created",
            Self::UploadErrored => "upload.errored",
            Self::UploadCancelled => "upload.cancelled",
            Self::SimulcastTargetCreated => "simulcast_target.created",
            Self::SimulcastTargetDeleted => "simulcast_target.deleted",
            Self::SimulcastTargetConnected => "simulcast_target.connected",
            Self::SimulcastTargetDisconnected => "simulcast_target.disconnected",
            Self::SimulcastTargetErrored => "simulcast_target.errored",
            Self::RoomCreated => "room.created",
            Self::RoomDeleted => "room.deleted",
            Self::RoomStarted => "room.started",
            Self::RoomFinished => "room.finished",
            Self::RoomSessionStarted => "room.session.started",
            Self::RoomSessionEnded => "room.session.ended",
            Self::ParticipantJoined => "participant.joined",
            Self::ParticipantLeft => "participant.left",
            Self::TrackPublished => "track.published",
            Self::TrackUnpublished => "track.unpublished",
            Self::TrackMuted => "track.muted",
            Self::TrackUnmuted => "track.unmuted",
            Self::RoomCompositeStarted => "room.composite.started",
            Self::RoomCompositeStopped => "room.composite.stopped",
            Self::RoomTranscriptionStarted => "room.transcription.started",
            Self::RoomTranscriptionStopped => "room.transcription.stopped",
        }
    }

    /// The event type with this wire name, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The kind of object the event is about: the part of the name before the dot, except
    /// that participants and tracks are seen in their room, so their events are about the
    /// room (`room`, its id the object's).
    pub fn object_type(self) -> &'static str {
        if self.is_about_room() {
            return "room";
        }
        self.as_str()
            .split_once('.')
            .map_or("", |(object, _)| object)
    }

    /// Whether the event's object is a room (`room.*`, `room.composite.*`,
    /// `room.transcription.*`, `participant.*`, `track.*`): its `object_id` is the room's id.
    pub fn is_about_room(self) -> bool {
        matches!(
            self,
            Self::RoomCreated
                | Self::RoomDeleted
                | Self::RoomStarted
                | Self::RoomFinished
                | Self::RoomSessionStarted
                | Self::RoomSessionEnded
                | Self::ParticipantJoined
                | Self::ParticipantLeft
                | Self::TrackPublished
                | Self::TrackUnpublished
                | Self::TrackMuted
                | Self::TrackUnmuted
                | Self::RoomCompositeStarted
                | Self::RoomCompositeStopped
                | Self::RoomTranscriptionStarted
                | Self::RoomTranscriptionStopped
        )
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    /// Id of the object the event is about (`ls_…`, `ses_…`; a room's `room_…` for room,
    /// participant and track events).
    pub object_id: String,
    /// The object as it is now, in its API form.
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(event_type: EventType, object_id: &str, data: serde_json::Value) -> Self {
        Self {
            event_type,
            object_id: object_id.to_owned(),
            data,
        }
    }

    /// An event about a room, or a participant or track in it: the room is its object.
    pub fn about_room(
        event_type: EventType,
        room_id: &crate::ids::RoomId,
        data: serde_json::Value,
    ) -> Self {
        debug_assert!(
            event_type.is_about_room(),
            "{} is not about a room",
            event_type.as_str()
        );
        Self::new(event_type, room_id, data)
    }

    /// A `room.composite.*` event: about the composite's room, its data the composite.
    pub fn about_room_composite(
        event_type: EventType,
        composite: &crate::model::RoomComposite,
    ) -> Self {
        debug_assert!(
            matches!(
                event_type,
                EventType::RoomCompositeStarted | EventType::RoomCompositeStopped
            ),
            "{} is not about a room composite",
            event_type.as_str()
        );
        let data = serde_json::to_value(composite)
            .expect("a composite is plain strings, timestamps and booleans");
        Self::about_room(event_type, &composite.room_id, data)
    }
}

/// The object an [`Event`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventObject {
    #[serde(rename = "type")]
    pub object_type: String,
    pub id: String,
}

/// A recorded event, serialised as every consumer sees it:
/// `{"id", "type", "created_at", "object": {"type", "id"}, "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the history; not part of the public form.
    #[serde(skip)]
    pub seq: i64,
    /// `evt_…`: what SSE `Last-Event-ID`, webhook de-duplication and cursors use.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub object: EventObject,
    pub data: serde_json::Value,
}

/// Which events a listing returns; the default returns every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub event_type: Option<EventType>,
    /// Only events about this object (`ls_…`, `ses_…`).
    pub object_id: Option<String>,
}

/// One page of [`Event`]s, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
