//! One participant's video track: its decoder, the pictures waiting to be shown, and the
//! picture its tile shows now.
//!
//! Decoding starts at a key frame; until one comes, and again after a decode error, frames are
//! dropped and the input asks for a key frame (the caller sends a PLI), at most every
//! [`KEYFRAME_REQUEST_INTERVAL`]. Pictures are timed by their arrival: a canvas picture of the
//! instant `t` shows the latest picture that had arrived by `t`, and is made
//! [`crate::PLAYOUT_DELAY`] after `t`, when the mix of `t` is made (the mixer places audio by
//! its RTP times, anchored on the packet that arrived soonest), so lips and voices stay
//! together within a frame or two. A difference between the camera's and the microphone's
//! network paths is not undone: nothing here links the two RTP clocks. Meanwhile at most [`MAX_WAITING`] decoded pictures wait; past that the oldest is
//! shown at once. The last picture stays on its tile until a newer one is due, for at most
//! [`FROZEN_AFTER`] (a participant whose video stopped then shows the placeholder).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ffmpeg_next::frame;
use sluice_media::{Packet, Timebase, TrackKind};
use sluice_transcoder::{TranscodeError, VideoDecoder};

use crate::canvas::PictureId;
use crate::VideoCodec;

/// The least time between two key-frame requests for one track.
pub(crate) const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// How long a tile keeps showing a picture when no newer one comes.
pub(crate) const FROZEN_AFTER: Duration = Duration::from_secs(2);
/// How many decoded pictures may wait for their time to be shown.
pub(crate) const MAX_WAITING: usize = 8;

/// The decoder, opened on the first frame for the codec the track carries.
enum Decoder {
    None,
    Open(VideoCodec, VideoDecoder),
    /// libavcodec could not open a decoder for this codec; the tile shows the placeholder.
    Unavailable(VideoCodec),
}

/// A decoded picture and when its frame arrived.
struct Timed {
    id: PictureId,
    arrived_at: Instant,
    picture: frame::Video,
}

/// One video track, from frames in to the picture its tile shows.
pub(crate) struct VideoInput {
    /// Distinguishes this input's pictures from every other input's ([`PictureId::input`]).
    input: u64,
    decoder: Decoder,
    awaiting_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    decoded: u64,
    waiting: VecDeque<Timed>,
    shown: Option<Timed>,
}

impl VideoInput {
    /// A track with no frames yet: it waits for (and asks for) a key frame.
    pub fn new(input: u64) -> Self {
        VideoInput {
            input,
            decoder: Decoder::None,
            awaiting_keyframe: true,
            last_keyframe_request: None,
            decoded: 0,
            waiting: VecDeque::new(),
            shown: None,
        }
    }

    /// Decodes one frame that arrived at `now`. `rtp_time` is on the 90 kHz clock.
    pub fn push(
        &mut self,
        codec: VideoCodec,
        frame: Bytes,
        keyframe: bool,
        rtp_time: u32,
        now: Instant,
    ) {
        if self.awaiting_keyframe && !keyframe {
            return;
        }
        let Some(decoder) = self.decoder(codec) else {
            return;
        };
        let packet = Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: i64::from(rtp_time),
            pts: i64::from(rtp_time),
            keyframe,
            data: frame,
        };
        match decoder.decode(&packet) {
            Ok(pictures) => {
                if keyframe {
                    self.awaiting_keyframe = false;
                }
                for decoded in pictures {
                    self.wait(decoded.picture, now);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "participant video frame not decoded; waiting for a key frame");
                self.awaiting_keyframe = true;
            }
        }
    }

    /// The decoder for `codec`, opened (again) when the track's codec is new; `None` when
    /// libavcodec cannot decode it.
    fn decoder(&mut self, codec: VideoCodec) -> Option<&mut VideoDecoder> {
        let current = match &self.decoder {
            Decoder::None => None,
            Decoder::Open(opened, _) | Decoder::Unavailable(opened) => Some(*opened),
        };
        if current != Some(codec) {
            self.decoder = match open_decoder(codec) {
                Ok(decoder) => Decoder::Open(codec, decoder),
                Err(error) => {
                    tracing::warn!(%error, ?codec, "participant video cannot be decoded");
                    Decoder::Unavailable(codec)
                }
            };
        }
        match &mut self.decoder {
            Decoder::Open(_, decoder) => Some(decoder),
            Decoder::None | Decoder::Unavailable(_) => None,
        }
    }

    fn wait(&mut self, picture: frame::Video, arrived_at: Instant) {
        self.decoded += 1;
        self.waiting.push_back(Timed {
            id: PictureId {
                input: self.input,
                sequence: self.decoded,
            },
            arrived_at,
            picture,
        });
        if self.waiting.len() > MAX_WAITING {
            self.shown = self.waiting.pop_front();
        }
    }

    /// Moves on to the latest picture that had arrived by `at`.
    pub fn advance(&mut self, at: Instant) {
        while self
            .waiting
            .front()
            .is_some_and(|next| next.arrived_at <= at)
        {
            self.shown = self.waiting.pop_front();
        }
    }

    /// The picture the tile shows at `at`: the last one moved on to, unless it arrived more
    /// than [`FROZEN_AFTER`] before.
    pub fn picture(&self, at: Instant) -> Option<(PictureId, &frame::Video)> {
        self.shown
            .as_ref()
            .filter(|shown| at.saturating_duration_since(shown.arrived_at) <= FROZEN_AFTER)
            .map(|shown| (shown.id, &shown.picture))
    }

    /// Whether to ask the sender for a key frame now: the decoder waits for one, it can
    /// decode the track, and the last request is at least [`KEYFRAME_REQUEST_INTERVAL`] old.
    pub fn take_keyframe_request(&mut self, now: Instant) -> bool {
        let due = self.awaiting_keyframe
            && !matches!(self.decoder, Decoder::Unavailable(_))
            && self.last_keyframe_request.is_none_or(|last| {
                now.saturating_duration_since(last) >= KEYFRAME_REQUEST_INTERVAL
            });
        if due {
            self.last_keyframe_request = Some(now);
        }
        due
    }
}

fn open_decoder(codec: VideoCodec) -> Result<VideoDecoder, TranscodeError> {
    match codec {
        VideoCodec::Vp8 => VideoDecoder::open_vp8(),
        VideoCodec::H264 => VideoDecoder::open_h264_annex_b(),
    }
}
