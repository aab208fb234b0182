//! Frames a WebRTC publisher sent, as the WebRTC stack depacketized them (H.264 access units in
//! Annex B form, VP8 frames, Opus packets), turned into the session's `media` vocabulary: the
//! track descriptions the start gate waits for, then [`Packet`]s.
//!
//! Video is held back until a frame a decoder can start on (an IDR with its SPS and PPS for
//! H.264, a key frame for VP8); the caller is told so it asks the publisher for one (PLI).
//! Timestamps: each track's RTP clock counts from its first frame, placed at that frame's
//! arrival time since the session began, so audio and video start aligned as they arrived.
//! Bytes that do not parse are refused per frame, with the reason; the session goes on.

use std::time::Duration;

use crate::publisher::PublisherEvent;
use bytes::Bytes;
use sluice_media::annex_b::annex_b_to_avcc;
use sluice_media::{
    AudioCodec, AvcConfig, CodecError, Packet, Timebase, TrackInfo, TrackKind, VideoCodec,
    Vp8FrameHeader,
};

/// The codecs a WebRTC publisher may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameCodec {
    H264,
    Vp8,
    Opus,
}

/// One depacketized frame.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedFrame<'a> {
    pub codec: FrameCodec,
    /// The RTP timestamp, extended past wrap-arounds.
    pub rtp_time: u64,
    /// The RTP clock rate (90 kHz video, 48 kHz Opus).
    pub clock_rate: u32,
    /// When the frame arrived, since the session began.
    pub arrival: Duration,
    pub data: &'a [u8],
}

/// Why a frame gave no packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("waiting for a key frame")]
    WaitingForKeyframe,
    #[error("a frame was refused: {0}")]
    Unparseable(#[from] CodecError),
    #[error("an empty frame was refused")]
    Empty,
}

/// Where a track's clock starts.
#[derive(Clone, Copy, Debug)]
struct TrackClock {
    first_rtp: u64,
    /// The first frame's arrival, in ticks of the track's clock.
    offset: i64,
}

impl TrackClock {
    fn start(frame: &ReceivedFrame) -> Self {
        let offset = frame.arrival.as_secs_f64() * f64::from(frame.clock_rate);
        TrackClock {
            first_rtp: frame.rtp_time,
            offset: offset.round() as i64,
        }
    }

    fn ticks(&self, rtp_time: u64) -> i64 {
        // Extended RTP times stay far below i64::MAX; a frame reordered before the first one
        // gets a negative time, which the pipeline treats like any late frame.
        (rtp_time as i64).wrapping_sub(self.first_rtp as i64) + self.offset
    }
}

/// Converts one session's frames; see the module documentation.
#[derive(Default)]
pub struct FrameConverter {
    video_clock: Option<TrackClock>,
    audio_clock: Option<TrackClock>,
    /// The video track was described (video flows from here on).
    video_started: bool,
    audio_started: bool,
}

impl FrameConverter {
    /// The events one frame gives: the track description before its first packet, then the
    /// packet.
    pub fn convert(&mut self, frame: ReceivedFrame) -> Result<Vec<PublisherEvent>, FrameError> {
        if frame.data.is_empty() {
            return Err(FrameError::Empty);
        }
        let mut events = Vec::with_capacity(2);
        let (kind, keyframe, data) = match frame.codec {
            FrameCodec::H264 => {
                let unit = annex_b_to_avcc(frame.data)?;
                if !self.video_started {
                    let (true, Some(sps), Some(pps)) = (unit.idr, &unit.sps, &unit.pps) else {
                        return Err(FrameError::WaitingForKeyframe);
                    };
                    let config = AvcConfig::from_parameter_sets(sps, pps)?;
                    events.push(PublisherEvent::Track(TrackInfo::Avc {
                        config,
                        frame_rate: None,
                    }));
                    self.video_started = true;
                }
                (TrackKind::Video, unit.idr, unit.data)
            }
            FrameCodec::Vp8 => {
                let header = Vp8FrameHeader::parse(frame.data)?;
                if !self.video_started {
                    if !header.keyframe {
                        return Err(FrameError::WaitingForKeyframe);
                    }
                    events.push(PublisherEvent::Track(TrackInfo::OtherVideo {
                        codec: VideoCodec::Vp8,
                    }));
                    self.video_started = true;
                }
                (
                    TrackKind::Video,
                    header.keyframe,
                    Bytes::copy_from_slice(frame.data),
                )
            }
            FrameCodec::Opus => {
                if !self.audio_started {
                    events.push(PublisherEvent::Track(TrackInfo::OtherAudio {
                        codec: AudioCodec::Opus,
                    }));
                    self.audio_started = true;
                }
                (TrackKind::Audio, true, Bytes::copy_from_slice(frame.data))
            }
        };
        let clock = match kind {
            TrackKind::Video => &mut self.video_clock,
            TrackKind::Audio => &mut self.audio_clock,
        };
        let time = clock
            .get_or_insert_with(|| TrackClock::start(&frame))
            .ticks(frame.rtp_time);
        events.push(PublisherEvent::Media(Packet {
            kind,
            timebase: Timebase(frame.clock_rate),
            dts: time,
            pts: time,
            keyframe,
            data,
        }));
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Constrained Baseline 320x240 SPS and its PPS, as x264 writes them.
    fn parameter_sets() -> (Vec<u8>, Vec<u8>) {
        let config = sluice_media::fixtures::avc_320x240();
        (config.sps[0].to_vec(), config.pps[0].to_vec())
    }

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|unit| [&[0, 0, 0, 1][..], unit].concat())
            .collect()
    }

    fn frame(codec: FrameCodec, rtp_time: u64, arrival_ms: u64, data: &[u8]) -> ReceivedFrame<'_> {
        ReceivedFrame {
            codec,
            rtp_time,
            clock_rate: if codec == FrameCodec::Opus {
                48_000
            } else {
                90_000
            },
            arrival: Duration::from_millis(arrival_ms),
            data,
        }
    }

    fn packet(events: &[PublisherEvent]) -> &Packet {
        match events.last() {
            Some(PublisherEvent::Media(packet)) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    #[test]
    fn h264_starts_at_an_idr_with_its_parameter_sets() {
        let (sps, pps) = parameter_sets();
        let mut converter = FrameConverter::default();
        let delta = annex_b(&[&[0x41, 0x9a, 0x02]]);
        assert_eq!(
            converter.convert(frame(FrameCodec::H264, 1_000, 0, &delta)),
            Err(FrameError::WaitingForKeyframe)
        );
        let idr_alone = annex_b(&[&[0x65, 0x88, 0x84]]);
        assert_eq!(
            converter.convert(frame(FrameCodec::H264, 4_000, 33, &idr_alone)),
            Err(FrameError::WaitingForKeyframe)
        );
        let key = annex_b(&[&sps, &pps, &[0x65, 0x88, 0x84]]);
        let events = converter
            .convert(frame(FrameCodec::H264, 7_000, 66, &key))
            .unwrap();
        let Some(PublisherEvent::Track(TrackInfo::Avc { config, .. })) = events.first() else {
            panic!("expected the track first: {events:?}");
        };
        assert_eq!((config.width, config.height), (320, 240));
        let first = packet(&events);
        assert!(first.keyframe);
        assert_eq!(first.timebase, Timebase(90_000));
        // Placed at its arrival: 66 ms on the 90 kHz clock.
        assert_eq!(first.dts, 5_940);
        assert_eq!(&first.data[..4], &[0, 0, 0, sps.len() as u8]);

        let events = converter
            .convert(frame(FrameCodec::H264, 10_000, 120, &delta))
            .unwrap();
        assert_eq!(events.len(), 1, "the track is described once");
        let next = packet(&events);
        assert!(!next.keyframe);
        // Timed by the RTP clock from then on, not by arrival.
        assert_eq!(next.dts, 5_940 + 3_000);
    }

    #[test]
    fn vp8_starts_at_a_key_frame_and_opus_at_once() {
        let key = [
            0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00,
        ];
        let inter = [0x31, 0x05, 0x00, 0x11];
        let mut converter = FrameConverter::default();
        assert_eq!(
            converter.convert(frame(FrameCodec::Vp8, 0, 0, &inter)),
            Err(FrameError::WaitingForKeyframe)
        );
        let events = converter
            .convert(frame(FrameCodec::Vp8, 3_000, 40, &key))
            .unwrap();
        assert!(matches!(
            events[0],
            PublisherEvent::Track(TrackInfo::OtherVideo {
                codec: VideoCodec::Vp8
            })
        ));
        assert!(packet(&events).keyframe);
        let events = converter
            .convert(frame(FrameCodec::Opus, 960, 20, &[0xfc, 0xff, 0xfe]))
            .unwrap();
        assert!(matches!(
            events[0],
            PublisherEvent::Track(TrackInfo::OtherAudio {
                codec: AudioCodec::Opus
            })
        ));
        let audio = packet(&events);
        assert_eq!(
            (audio.kind, audio.timebase, audio.dts),
            (TrackKind::Audio, Timebase(48_000), 960)
        );
    }

    #[test]
    fn garbage_is_refused_per_frame_and_the_stream_goes_on() {
        let (sps, pps) = parameter_sets();
        let mut converter = FrameConverter::default();
        assert_eq!(
            converter.convert(frame(FrameCodec::H264, 0, 0, &[])),
            Err(FrameError::Empty)
        );
        assert!(matches!(
            converter.convert(frame(FrameCodec::H264, 0, 0, &[0xde, 0xad, 0xbe, 0xef])),
            Err(FrameError::Unparseable(_))
        ));
        assert!(matches!(
            converter.convert(frame(FrameCodec::Vp8, 0, 0, &[0x50, 0x42])),
            Err(FrameError::Unparseable(_))
        ));
        // An IDR whose SPS is garbage cannot describe the track.
        let bad_sps = annex_b(&[&[0x67, 0xff], &pps, &[0x65, 0x88]]);
        assert!(matches!(
            converter.convert(frame(FrameCodec::H264, 0, 0, &bad_sps)),
            Err(FrameError::Unparseable(_))
        ));
        let key = annex_b(&[&sps, &pps, &[0x65, 0x88, 0x84]]);
        assert!(converter
            .convert(frame(FrameCodec::H264, 0, 0, &key))
            .is_ok());
    }

    #[test]
    fn every_truncation_of_a_key_frame_is_handled_without_panicking() {
        let (sps, pps) = parameter_sets();
        let key = annex_b(&[&sps, &pps, &[0x65, 0x88, 0x84]]);
        for end in 0..=key.len() {
            let _ = FrameConverter::default().convert(frame(FrameCodec::H264, 0, 0, &key[..end]));
            let _ = FrameConverter::default().convert(frame(FrameCodec::Vp8, 0, 0, &key[..end]));
        }
    }
}
