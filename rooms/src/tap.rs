//! Taps: a room's membership and media as a consumer inside the server receives them (a room's
//! composite, its transcription), without a peer connection.
//!
//! A tap is registered on a room *name* and lasts until its receiver is dropped, so it may be
//! set before anyone joins and outlive nothing but the room: when the room finishes the tap
//! hears [`TapEvent::RoomFinished`] and is removed. It receives every published track of the
//! room's visible participants: video at the highest simulcast layer the publisher sends now
//! (switched at key frames with continuous timestamps, [`LayerForwarder`]), unless it asked
//! for audio only, and audio as it comes.
//!
//! Delivery never blocks the engine: each tap has a bounded queue ([`TAP_QUEUE`]). A frame
//! that does not fit is dropped; a dropped video frame breaks the decoder's reference chain,
//! so the track's later frames are held back until its next key frame, which the engine asks
//! the publisher for.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use bytes::Bytes;

use crate::control::{ControlError, ParticipantView};
use crate::engine::{Command, Control};
use crate::simulcast::LayerForwarder;

/// Events queued for one tap: about two seconds of four participants' 30 fps video and audio.
pub const TAP_QUEUE: usize = 512;

/// The codec of a tapped frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapCodec {
    Vp8,
    /// H.264 in Annex B form.
    H264,
    Opus,
}

/// What a tap receives.
#[derive(Debug, Clone)]
pub enum TapEvent {
    /// The room's visible participants and their published tracks, in join order; sent when
    /// the tap is set (when the room runs) and on every change.
    Members(Vec<ParticipantView>),
    /// One video frame of a participant's track (the RTP time is continuous per track).
    Video {
        track_sid: String,
        codec: TapCodec,
        data: Bytes,
        keyframe: bool,
        rtp_time: u32,
    },
    /// One audio packet, with its RFC 6464 level (`-127..=0` dBov) when the sender gave one.
    Audio {
        participant_sid: String,
        track_sid: String,
        codec: TapCodec,
        data: Bytes,
        rtp_time: u32,
        level: Option<i8>,
    },
    /// The room ended; nothing more comes.
    RoomFinished,
}

/// Registers a tap on the room named `room` (video frames too when `video`); its events come
/// on the receiver returned, until it is dropped or the room finishes.
pub(crate) async fn set_tap(
    engine: &tokio::sync::mpsc::Sender<Command>,
    room: &str,
    video: bool,
) -> Result<Receiver<TapEvent>, ControlError> {
    let (sender, events) = mpsc::sync_channel(TAP_QUEUE);
    engine
        .send(Command::Control(Control::Tap {
            room: room.to_owned(),
            sender,
            video,
        }))
        .await
        .map_err(|_| ControlError::Stopped)?;
    Ok(events)
}

/// One registered tap, as the engine keeps it.
pub(crate) struct Tap {
    sender: SyncSender<TapEvent>,
    /// Whether it takes video frames (a transcription takes members and audio only).
    video_wanted: bool,
    /// The simulcast forwarding of each video track, by track sid.
    video: HashMap<String, LayerForwarder>,
    /// Video tracks that lost a frame here and wait for a key frame.
    broken: HashSet<String>,
}

/// What became of an offered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Queued,
    /// The queue was full: the event was dropped.
    Dropped,
    /// The receiver is gone: the tap should be removed.
    Closed,
}

impl Tap {
    pub(crate) fn new(sender: SyncSender<TapEvent>, video_wanted: bool) -> Tap {
        Tap {
            sender,
            video_wanted,
            video: HashMap::new(),
            broken: HashSet::new(),
        }
    }

    pub(crate) fn offer(&self, event: TapEvent) -> Offered {
        match self.sender.try_send(event) {
            Ok(()) => Offered::Queued,
            Err(TrySendError::Full(_)) => Offered::Dropped,
            Err(TrySendError::Disconnected(_)) => Offered::Closed,
        }
    }

    /// Whether video frames go to this tap.
    pub(crate) fn takes_video(&self) -> bool {
        self.video_wanted
    }

    /// The forwarder of a video track.
    pub(crate) fn forwarder(&mut self, track_sid: &str) -> &mut LayerForwarder {
        self.video.entry(track_sid.to_owned()).or_default()
    }

    /// The simulcast layer forwarded of a video track, if it has layers.
    pub(crate) fn current_layer(&self, track_sid: &str) -> Option<&str> {
        self.video.get(track_sid)?.current()
    }

    /// Whether a video frame may go to this tap: after a lost frame, only from a key frame on.
    pub(crate) fn admits(&mut self, track_sid: &str, keyframe: bool) -> bool {
        if keyframe {
            self.broken.remove(track_sid);
        }
        !self.broken.contains(track_sid)
    }

    /// Notes that a frame of `track_sid` was lost here.
    pub(crate) fn lost(&mut self, track_sid: &str) {
        self.broken.insert(track_sid.to_owned());
    }

    /// Forgets tracks no longer published.
    pub(crate) fn retain_tracks(&mut self, published: &HashSet<String>) {
        self.video.retain(|sid, _| published.contains(sid));
        self.broken.retain(|sid| published.contains(sid));
    }
}
