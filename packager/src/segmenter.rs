//! Cuts one track's packets into CMAF segments.
//!
//! A CMAF segment (ISO/IEC 23000-19 §7.3.3) is a run of CMAF chunks, each one `moof`+`mdat`
//! ([`crate::fmp4::write_fragment`]). By default a segment is a single chunk. With
//! [`TrackSegmenter::with_parts`] each chunk is also an LL-HLS partial segment (RFC 8216bis
//! §4.4.4.9), handed out as a [`SegmentEvent::Part`] as soon as it closes, and the segment is
//! those chunks end to end:
//!
//! * A track with [`BoundaryPolicy::TargetDuration`] closes a part once the next sample would
//!   take it past the part target (so no part is longer than the target), and at each segment
//!   boundary.
//! * A track with [`BoundaryPolicy::Explicit`] closes parts only where
//!   [`TrackSegmenter::end_part_at`] asks (audio following the video's part boundaries, as it
//!   follows its segment boundaries), so samples past a segment cut that arrives late are
//!   still in the open chunk and can move into the next segment.
//!
//! Rules, following the Apple HLS Authoring Specification (§1.13, §7.4, §7.7):
//!
//! * Decode timestamps are rescaled to the track timescale. A packet is held back until the
//!   next one arrives, because a sample's duration is the distance to the next decode time.
//! * Nothing is written before the first keyframe: earlier packets are dropped (and reported).
//! * A segment ends before a sync sample, when [`BoundaryPolicy::TargetDuration`] finds the
//!   target duration reached, or at the first sync sample at or after a time given to
//!   [`TrackSegmenter::cut_at`]. Audio follows video by using [`BoundaryPolicy::Explicit`] and
//!   calling `cut_at` with each video segment's end; a cut that arrives after later audio was
//!   already pushed splits the open segment retroactively.
//! * Decode times that do not increase, or leap forward by more than [`MAX_GAP_SECS`], are
//!   repaired: the rest of the track's timeline is shifted so the packet follows the previous
//!   one by the previous sample duration. Players never see zero or negative durations.
//! * B-frames: `pts - dts` becomes the sample's signed composition offset (`trun` version 1).
//!   The decode timeline is moved later by the first keyframe's `pts - dts` (its reorder
//!   delay) and every composition offset shrinks by as much, so presentation times are kept
//!   exactly and the first sample's decode time is its presentation time (CMAF §7.5.16's
//!   negative composition offsets instead of an edit list). Renditions whose encoders reorder
//!   differently (x264 with B-frames, AV1 without) therefore still share one timeline.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_media::{MediaTime, Packet, Timebase, TrackKind};

use crate::fmp4::{write_fragment, Sample};
use crate::PackagerError;

/// A forward decode-time jump longer than this many seconds is a timestamp discontinuity (a
/// publisher restarting its clock), not a stall, and is collapsed to one sample duration.
pub const MAX_GAP_SECS: i64 = 10;

/// A video keyframe up to a quarter of the target duration early still ends a segment.
const CUT_TOLERANCE_DIVISOR: i64 = 4;

/// Frame duration assumed for the last video sample when no earlier duration is known.
const DEFAULT_VIDEO_FPS: i64 = 30;
/// Duration in ticks assumed for the last AAC frame when no earlier duration is known (one AAC
/// frame, with the track timescale being the sample rate).
const DEFAULT_AUDIO_FRAME_TICKS: u32 = 1_024;

/// Where a track's segments end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryPolicy {
    /// At the first sync sample once the target duration has accumulated (video, or audio-only
    /// streams), and wherever [`TrackSegmenter::cut_at`] asks.
    TargetDuration,
    /// Only where [`TrackSegmenter::cut_at`] asks: an audio track following video boundaries.
    Explicit,
}

/// One finished CMAF segment of a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedSegment {
    /// Counts this track's segments from 0.
    pub sequence: u64,
    /// Decode time of the first sample (the `tfdt`), in the track timescale.
    pub start: MediaTime,
    /// Sum of the sample durations, in the track timescale.
    pub duration: MediaTime,
    /// The chunks (`moof`+`mdat` each) of the segment, to be served after the init segment.
    pub data: Bytes,
    /// Whether the first sample is a sync sample (always, given how segments are cut).
    pub starts_with_keyframe: bool,
    /// Whether every sample is a sync sample (audio, intra-only video): any chunk of the
    /// segment can start decoding.
    pub independent: bool,
    /// Bytes from the start of `data` to the end of the first sample: the first chunk's
    /// `moof`, its `mdat` header and the first sample. With the init segment in front, that
    /// range alone decodes the segment's first (key) frame: an I-frame playlist's byte range.
    pub first_sample_end: u64,
}

/// One finished chunk of the open segment: an LL-HLS partial segment, ready before its
/// segment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// The sequence number of the segment it belongs to.
    pub segment: u64,
    /// Counts the segment's parts from 0.
    pub index: u32,
    /// Decode time of the first sample, in the track timescale.
    pub start: MediaTime,
    /// Sum of the sample durations, in the track timescale.
    pub duration: MediaTime,
    /// The chunk (`moof`+`mdat`); the segment's `data` is its parts end to end.
    pub data: Bytes,
    /// Whether the first sample is a sync sample (a player can start decoding here).
    pub independent: bool,
}

/// What pushing a packet, cutting or finishing produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEvent {
    /// A part was closed ([`TrackSegmenter::with_parts`] only). The last part of a segment
    /// comes just before the segment.
    Part(CompletedPart),
    /// A segment was closed.
    Segment(CompletedSegment),
    /// A packet's decode time did not increase (or leapt too far) and was moved; the track's
    /// later packets move with it.
    TimestampRepaired {
        /// The decode time as received, in the track timescale, before earlier repairs.
        received: MediaTime,
        /// The decode time written.
        repaired: MediaTime,
    },
    /// A packet that came before the first keyframe was dropped.
    DroppedBeforeKeyframe {
        /// Its decode time as received, in the track timescale.
        dts: MediaTime,
    },
}

/// The segments among `events`, in order.
pub fn segments_of(events: Vec<SegmentEvent>) -> Vec<CompletedSegment> {
    events
        .into_iter()
        .filter_map(|event| match event {
            SegmentEvent::Segment(segment) => Some(segment),
            _ => None,
        })
        .collect()
}

/// A packet waiting for the next decode time to know its duration.
#[derive(Debug)]
struct HeldPacket {
    dts: i64,
    composition_offset: i32,
    keyframe: bool,
    data: Bytes,
}

/// A sample with its decode time, in the open chunk.
#[derive(Debug)]
struct TimedSample {
    dts: i64,
    sample: Sample,
}

/// The segment being filled.
#[derive(Debug, Default)]
struct OpenSegment {
    /// Chunks already written (`moof`+`mdat`).
    chunks: Vec<Bytes>,
    /// Decode time of the first sample, once there is one.
    start: Option<i64>,
    /// Samples of the chunk being filled.
    samples: Vec<TimedSample>,
    /// Sum of the durations of every sample, in chunks and in the open chunk.
    duration: u64,
    /// Sum of the durations of the open chunk's samples.
    chunk_duration: u64,
    starts_with_keyframe: bool,
    independent: bool,
    /// Where the first sample ends in the first chunk, once that chunk is written.
    first_sample_end: Option<u64>,
}

impl OpenSegment {
    /// Removes the samples of the open chunk from `index` on, with their durations.
    fn split_off(&mut self, index: usize) -> Vec<TimedSample> {
        let rest = self.samples.split_off(index);
        let moved: u64 = rest.iter().map(|t| u64::from(t.sample.duration)).sum();
        self.duration -= moved;
        self.chunk_duration -= moved;
        rest
    }
}

/// Turns one track's packets into CMAF segments; see the module documentation for the rules.
#[derive(Debug)]
pub struct TrackSegmenter {
    track_id: u32,
    timescale: Timebase,
    target_ticks: i64,
    /// Target of the first `short_start_segments` segments, when set (a quick start).
    short_start_ticks: Option<i64>,
    short_start_segments: u64,
    policy: BoundaryPolicy,
    kind: Option<TrackKind>,
    next_sequence: u64,
    next_fragment: u32,
    /// Ticks added to every received timestamp so decode times stay increasing.
    shift: i64,
    /// The first keyframe's `pts - dts`: added to decode times (through `shift`) and taken
    /// off composition offsets.
    reorder_delay: i64,
    held: Option<HeldPacket>,
    last_duration: Option<u32>,
    open: OpenSegment,
    /// Requested boundaries (track timescale, repaired timeline) not yet reached.
    cuts: BTreeSet<i64>,
    /// How parts are made, when they are.
    parts: Option<PartPolicy>,
    /// Requested part boundaries not yet reached ([`BoundaryPolicy::Explicit`] tracks).
    part_ends: BTreeSet<i64>,
}

/// Where a track with parts closes them.
#[derive(Clone, Copy, Debug)]
enum PartPolicy {
    /// Before a sample that would take the part past this many ticks.
    Target(i64),
    /// Only where [`TrackSegmenter::end_part_at`] asks.
    Explicit,
}

impl TrackSegmenter {
    /// A segmenter for track `track_id` writing in `timescale` (90 kHz for video, the sample
    /// rate for audio) and aiming at segments of `target_duration`, with
    /// [`BoundaryPolicy::TargetDuration`].
    pub fn new(track_id: u32, timescale: Timebase, target_duration: Duration) -> Self {
        TrackSegmenter {
            track_id,
            timescale,
            target_ticks: ticks_of(target_duration, timescale),
            short_start_ticks: None,
            short_start_segments: 0,
            policy: BoundaryPolicy::TargetDuration,
            kind: None,
            next_sequence: 0,
            next_fragment: 1,
            shift: 0,
            reorder_delay: 0,
            held: None,
            last_duration: None,
            open: OpenSegment::default(),
            cuts: BTreeSet::new(),
            parts: None,
            part_ends: BTreeSet::new(),
        }
    }

    /// The same segmenter writing each segment as parts of at most `part_target` (LL-HLS);
    /// see the module documentation. A [`BoundaryPolicy::Explicit`] track ignores the target
    /// and ends parts where [`TrackSegmenter::end_part_at`] asks. Set the policy first.
    pub fn with_parts(mut self, part_target: Duration) -> Self {
        self.parts = Some(match self.policy {
            BoundaryPolicy::TargetDuration => {
                PartPolicy::Target(ticks_of(part_target, self.timescale).max(1))
            }
            BoundaryPolicy::Explicit => PartPolicy::Explicit,
        });
        self
    }

    /// The same segmenter with another boundary policy.
    pub fn with_policy(mut self, policy: BoundaryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same segmenter with its first `segments` segments aiming at `duration` instead of
    /// the target duration: a short first segment is ready sooner, so playback of a file being
    /// packaged can begin early. Later segments aim at the target duration again.
    pub fn with_short_start(mut self, duration: Duration, segments: u64) -> Self {
        self.short_start_ticks = Some(ticks_of(duration, self.timescale));
        self.short_start_segments = segments;
        self
    }

    /// Accepts the next packet in decode order.
    pub fn push(&mut self, packet: Packet) -> Result<Vec<SegmentEvent>, PackagerError> {
        let mut events = Vec::new();
        let received_dts = packet.timebase.rescale(packet.dts, self.timescale);
        let received_pts = packet.timebase.rescale(packet.pts, self.timescale);
        let reorder = received_pts.saturating_sub(received_dts);
        self.kind.get_or_insert(packet.kind);
        if self.held.is_none() && packet.keyframe {
            self.reorder_delay = reorder.max(0);
            self.shift = self.reorder_delay;
        }
        let composition_offset = reorder
            .saturating_sub(self.reorder_delay)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
            as i32;

        let Some(held) = self.held.take() else {
            if !packet.keyframe {
                events.push(SegmentEvent::DroppedBeforeKeyframe {
                    dts: self.time(received_dts),
                });
                return Ok(events);
            }
            // tfdt is unsigned: a track starting at a negative presentation time starts at 0.
            // (`saturating_neg` of i64::MIN falls one short, hence the clamp.)
            if received_dts.saturating_add(self.shift) < 0 {
                self.shift = received_dts.saturating_neg();
            }
            self.held = Some(HeldPacket {
                dts: received_dts.saturating_add(self.shift).max(0),
                composition_offset,
                keyframe: true,
                data: packet.data,
            });
            return Ok(events);
        };

        let mut dts = received_dts.saturating_add(self.shift);
        let max_gap = MAX_GAP_SECS.saturating_mul(i64::from(self.timescale.0));
        if dts <= held.dts || dts.saturating_sub(held.dts) > max_gap {
            let repaired = held.dts.saturating_add(i64::from(self.fallback_duration()));
            self.shift = self.shift.saturating_add(repaired.saturating_sub(dts));
            dts = repaired;
            events.push(SegmentEvent::TimestampRepaired {
                received: self.time(received_dts),
                repaired: self.time(repaired),
            });
        }
        // At most `max_gap` ticks (a few million), so it fits; it is 0 only when decode times
        // saturate at i64::MAX, where one tick keeps the duration positive all the same.
        let duration = u32::try_from(dts - held.dts).unwrap_or(u32::MAX).max(1);
        self.commit(held, duration, &mut events)?;
        // Every sample of the open segment is committed once the sync sample that starts the
        // next one is known: the segment (and its last part) is complete now, a sample early.
        if self.starts_segment(dts, packet.keyframe) {
            let closed = std::mem::take(&mut self.open);
            self.close(closed, &mut events)?;
        }
        self.held = Some(HeldPacket {
            dts,
            composition_offset,
            keyframe: packet.keyframe,
            data: packet.data,
        });
        Ok(events)
    }

    /// Asks for a segment boundary at the first sync sample whose decode time is at or after
    /// `time`. Samples already pushed past that point are moved into the next segment, so the
    /// segment before the boundary may be returned now.
    pub fn cut_at(&mut self, time: MediaTime) -> Result<Vec<SegmentEvent>, PackagerError> {
        let mut events = Vec::new();
        let at = time.rescale(self.timescale).ticks;
        let Some(start) = self.open.start else {
            self.cuts.insert(at);
            return Ok(events);
        };
        if at <= start {
            return Ok(events);
        }
        let split = self
            .open
            .samples
            .iter()
            .position(|timed| timed.dts >= at && timed.sample.keyframe);
        match split {
            // Only samples of the open chunk can move; the first one starting the segment
            // never does (`at > start`), so the closed part is never empty. The whole open
            // chunk moves when a part boundary was just asked for at the same time.
            Some(index) if index > 0 || !self.open.chunks.is_empty() => {
                let mut before = std::mem::take(&mut self.open);
                let rest = before.split_off(index);
                self.close(before, &mut events)?;
                for timed in rest {
                    self.append(timed);
                }
            }
            _ => {
                self.cuts.insert(at);
            }
        }
        Ok(events)
    }

    /// Asks for a part boundary before the first sample whose decode time is at or after
    /// `time` (a track with parts and [`BoundaryPolicy::Explicit`]; others ignore it). Samples
    /// already pushed before that point close as a part now.
    pub fn end_part_at(&mut self, time: MediaTime) -> Result<Vec<SegmentEvent>, PackagerError> {
        let mut events = Vec::new();
        if !matches!(self.parts, Some(PartPolicy::Explicit)) {
            return Ok(events);
        }
        let at = time.rescale(self.timescale).ticks;
        match self.open.samples.iter().position(|timed| timed.dts >= at) {
            // The open chunk already started at or after `at`: that boundary has passed.
            Some(0) => {}
            Some(index) => {
                let rest = self.open.split_off(index);
                let mut open = std::mem::take(&mut self.open);
                events.extend(self.close_chunk(&mut open)?.map(SegmentEvent::Part));
                self.open = open;
                for timed in rest {
                    self.append(timed);
                }
            }
            None => {
                self.part_ends.insert(at);
            }
        }
        Ok(events)
    }

    /// Ends the track: the held packet gets the previous sample's duration and the remaining
    /// segments (and their last parts) are returned: two segments when the held packet itself
    /// starts one. The segmenter can then start again at a keyframe.
    pub fn finish(&mut self) -> Result<Vec<SegmentEvent>, PackagerError> {
        let mut events = Vec::new();
        if let Some(held) = self.held.take() {
            let duration = self.fallback_duration();
            self.commit(held, duration, &mut events)?;
        }
        self.last_duration = None;
        self.cuts.clear();
        self.part_ends.clear();
        events.retain(|event| matches!(event, SegmentEvent::Segment(_) | SegmentEvent::Part(_)));
        let open = std::mem::take(&mut self.open);
        if open.start.is_some() {
            self.close(open, &mut events)?;
        }
        Ok(events)
    }

    fn time(&self, ticks: i64) -> MediaTime {
        MediaTime::new(ticks, self.timescale)
    }

    /// The previous sample's duration, or one frame of a typical stream.
    fn fallback_duration(&self) -> u32 {
        self.last_duration.unwrap_or(match self.kind {
            Some(TrackKind::Audio) => DEFAULT_AUDIO_FRAME_TICKS,
            _ => u32::try_from(i64::from(self.timescale.0) / DEFAULT_VIDEO_FPS)
                .unwrap_or(1)
                .max(1),
        })
    }

    /// Turns the held packet into a sample, closing the open segment first if it starts one.
    fn commit(
        &mut self,
        held: HeldPacket,
        duration: u32,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), PackagerError> {
        self.last_duration = Some(duration);
        if self.starts_segment(held.dts, held.keyframe) {
            let closed = std::mem::take(&mut self.open);
            self.close(closed, events)?;
        } else if self.starts_part(held.dts, duration) {
            let mut open = std::mem::take(&mut self.open);
            events.extend(self.close_chunk(&mut open)?.map(SegmentEvent::Part));
            self.open = open;
        }
        self.append(TimedSample {
            dts: held.dts,
            sample: Sample {
                duration,
                data: held.data,
                keyframe: held.keyframe,
                composition_offset: held.composition_offset,
            },
        });
        // The next sample most likely lasts as long as this one: when it would not fit, the
        // part is complete now rather than one sample later.
        if let Some(PartPolicy::Target(target)) = self.parts {
            if self.open.chunk_duration + u64::from(duration) > target.unsigned_abs() {
                let mut open = std::mem::take(&mut self.open);
                events.extend(self.close_chunk(&mut open)?.map(SegmentEvent::Part));
                self.open = open;
            }
        }
        Ok(())
    }

    /// Whether a sample at `dts` lasting `duration` must begin a new part (it does not begin a
    /// segment).
    fn starts_part(&mut self, dts: i64, duration: u32) -> bool {
        if self.open.samples.is_empty() {
            return false;
        }
        match self.parts {
            None => false,
            Some(PartPolicy::Target(target)) => {
                self.open.chunk_duration + u64::from(duration) > target.unsigned_abs()
            }
            Some(PartPolicy::Explicit) => {
                let first = self.open.samples[0].dts;
                while self.part_ends.first().is_some_and(|end| *end <= first) {
                    self.part_ends.pop_first();
                }
                self.part_ends.first().is_some_and(|end| *end <= dts)
            }
        }
    }

    /// Whether a sample at `dts` must begin a new segment.
    fn starts_segment(&mut self, dts: i64, keyframe: bool) -> bool {
        let Some(start) = self.open.start else {
            return false;
        };
        if !keyframe {
            return false;
        }
        while self.cuts.first().is_some_and(|cut| *cut <= start) {
            self.cuts.pop_first();
        }
        let requested = self.cuts.first().is_some_and(|cut| *cut <= dts);
        // A keyframe a little early still ends the segment: encoders force IDRs on the first
        // frame at or after each boundary, so with millisecond RTMP clocks one cut can land
        // just after its boundary and the next exactly on its own; without the tolerance that
        // second cut would be skipped and the segment would last two targets (Apple HLS
        // authoring spec §7.7 allows no segment over the target duration + 0.5 s).
        // Audio, where every frame is a sync sample, cuts exactly at the target.
        let target = match self.short_start_ticks {
            Some(short) if self.next_sequence < self.short_start_segments => short,
            _ => self.target_ticks,
        };
        let tolerance = match self.kind {
            Some(TrackKind::Video) => target / CUT_TOLERANCE_DIVISOR,
            _ => 0,
        };
        let reached = self.policy == BoundaryPolicy::TargetDuration
            && dts.saturating_sub(start) >= target.saturating_sub(tolerance);
        requested || reached
    }

    fn append(&mut self, timed: TimedSample) {
        let open = &mut self.open;
        if open.start.is_none() {
            open.start = Some(timed.dts);
            open.starts_with_keyframe = timed.sample.keyframe;
            open.independent = true;
        }
        open.independent &= timed.sample.keyframe;
        open.duration += u64::from(timed.sample.duration);
        open.chunk_duration += u64::from(timed.sample.duration);
        open.samples.push(timed);
    }

    /// Writes the open chunk of `segment` as one `moof`+`mdat`; returns it as a part when the
    /// track has parts.
    fn close_chunk(
        &mut self,
        segment: &mut OpenSegment,
    ) -> Result<Option<CompletedPart>, PackagerError> {
        let Some(first) = segment.samples.first() else {
            return Ok(None);
        };
        // Decode times are kept non-negative (see `push`).
        let base_decode_time = u64::try_from(first.dts).unwrap_or(0);
        let start = first.dts;
        let independent = first.sample.keyframe;
        let chunk_duration = std::mem::take(&mut segment.chunk_duration);
        let samples: Vec<Sample> = segment.samples.drain(..).map(|t| t.sample).collect();
        let chunk = write_fragment(
            self.next_fragment,
            self.track_id,
            base_decode_time,
            &samples,
        )?;
        self.next_fragment = self.next_fragment.wrapping_add(1);
        if segment.first_sample_end.is_none() {
            // The chunk is `moof`, the `mdat` header, then the samples in order.
            let payload: usize = samples.iter().map(|sample| sample.data.len()).sum();
            let first_end = chunk.len() - payload + samples[0].data.len();
            let before: usize = segment.chunks.iter().map(Bytes::len).sum();
            segment.first_sample_end = Some((before + first_end) as u64);
        }
        let part = self.parts.map(|_| CompletedPart {
            segment: self.next_sequence,
            index: u32::try_from(segment.chunks.len()).unwrap_or(u32::MAX),
            start: self.time(start),
            duration: self.time(i64::try_from(chunk_duration).unwrap_or(i64::MAX)),
            data: chunk.clone(),
            independent,
        });
        segment.chunks.push(chunk);
        Ok(part)
    }

    /// Closes `segment`: its last part (when the track has parts), then the segment itself.
    fn close(
        &mut self,
        mut segment: OpenSegment,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), PackagerError> {
        events.extend(self.close_chunk(&mut segment)?.map(SegmentEvent::Part));
        let mut data = BytesMut::with_capacity(segment.chunks.iter().map(Bytes::len).sum());
        for chunk in &segment.chunks {
            data.extend_from_slice(chunk);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        events.push(SegmentEvent::Segment(CompletedSegment {
            sequence,
            start: self.time(segment.start.unwrap_or(0)),
            duration: self.time(i64::try_from(segment.duration).unwrap_or(i64::MAX)),
            data: data.freeze(),
            starts_with_keyframe: segment.starts_with_keyframe,
            independent: segment.independent,
            first_sample_end: segment.first_sample_end.unwrap_or(0),
        }));
        Ok(())
    }
}

/// `duration` in ticks of `timescale`, saturating.
fn ticks_of(duration: Duration, timescale: Timebase) -> i64 {
    let nanos = i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX);
    let ticks = nanos.saturating_mul(i128::from(timescale.0)) / 1_000_000_000;
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reader::{find, read_boxes, u32_at};

    const FRAME: i64 = 3_000; // 30 fps at 90 kHz

    fn last_of(events: Vec<SegmentEvent>) -> CompletedSegment {
        segments_of(events).pop().expect("a segment")
    }

    #[test]
    fn a_segment_closes_when_the_keyframe_starting_the_next_arrives_and_finish_ends_the_last() {
        let mut segmenter = TrackSegmenter::new(1, Timebase::MPEG, Duration::from_secs(2));
        for frame in 0..60 {
            assert!(segmenter
                .push(video(frame * FRAME, frame * FRAME, frame == 0))
                .unwrap()
                .iter()
                .all(|event| !matches!(event, SegmentEvent::Segment(_))));
        }
        // The keyframe at 2 s completes the first segment at once; it is still held (its
        // duration unknown) when the track ends.
        let first = segments_of(segmenter.push(video(60 * FRAME, 60 * FRAME, true)).unwrap());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].sequence, 0);
        assert_eq!(first[0].duration.ticks, 60 * FRAME);
        let last = segments_of(segmenter.finish().unwrap());
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].sequence, 1);
        assert_eq!(last[0].start.ticks, 60 * FRAME);
    }

    fn video(dts: i64, pts: i64, keyframe: bool) -> Packet {
        Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts,
            pts,
            keyframe,
            data: Bytes::from_static(b"frame"),
        }
    }

    fn audio(dts: i64) -> Packet {
        Packet {
            kind: TrackKind::Audio,
            timebase: Timebase(48_000),
            dts,
            pts: dts,
            keyframe: true,
            data: Bytes::from_static(b"aac"),
        }
    }

    fn video_segmenter() -> TrackSegmenter {
        TrackSegmenter::new(1, Timebase::MPEG, Duration::from_secs(2))
    }

    /// Pushes `count` frames from frame `first` with a keyframe every `gop` frames.
    fn push_frames(
        segmenter: &mut TrackSegmenter,
        first: i64,
        count: i64,
        gop: i64,
    ) -> Vec<SegmentEvent> {
        (first..first + count)
            .flat_map(|i| {
                segmenter
                    .push(video(i * FRAME, i * FRAME, i % gop == 0))
                    .unwrap()
            })
            .collect()
    }

    /// (duration, flags, composition offset) of every sample in a segment's chunks.
    fn trun_entries(data: &[u8]) -> Vec<(u32, u32, i32)> {
        read_boxes(data)
            .iter()
            .filter(|b| &b.fourcc == b"moof")
            .flat_map(|moof| {
                let trun = find(moof.body, &[b"traf", b"trun"]);
                trun[12..]
                    .chunks(16)
                    .map(|c| (u32_at(c, 0), u32_at(c, 8), u32_at(c, 12) as i32))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn tfdt(data: &[u8]) -> u64 {
        let tfdt = find(data, &[b"moof", b"traf", b"tfdt"]);
        u64::from_be_bytes(tfdt[4..12].try_into().unwrap())
    }

    #[test]
    fn video_segment_closes_at_the_first_keyframe_after_the_target() {
        let mut segmenter = video_segmenter();
        let events = push_frames(&mut segmenter, 0, 62, 30);
        let closed = segments_of(events);
        assert_eq!(closed.len(), 1);
        let segment = &closed[0];
        assert_eq!(segment.sequence, 0);
        assert_eq!(segment.start, MediaTime::new(0, Timebase::MPEG));
        assert_eq!(segment.duration, MediaTime::new(60 * FRAME, Timebase::MPEG));
        assert!(segment.starts_with_keyframe);
        assert!(!segment.independent);
        let entries = trun_entries(&segment.data);
        assert_eq!(entries.len(), 60);
        assert!(entries.iter().all(|(duration, _, _)| *duration == 3_000));

        let last = last_of(segmenter.finish().unwrap());
        assert_eq!(last.sequence, 1);
        assert_eq!(last.start.ticks, 60 * FRAME);
        assert_eq!(tfdt(&last.data), 60 * FRAME as u64);
        assert_eq!(
            last.duration.ticks,
            2 * FRAME,
            "last frame reuses the previous duration"
        );
    }

    #[test]
    fn long_gop_stretches_the_segment_to_the_next_keyframe() {
        let mut segmenter = video_segmenter();
        let closed = segments_of(push_frames(&mut segmenter, 0, 182, 90));
        let durations: Vec<i64> = closed.iter().map(|s| s.duration.ticks).collect();
        assert_eq!(durations, [90 * FRAME, 90 * FRAME]);
    }

    #[test]
    fn packets_before_the_first_keyframe_are_dropped() {
        let mut segmenter = video_segmenter();
        let events = segmenter.push(video(0, 0, false)).unwrap();
        assert_eq!(
            events,
            [SegmentEvent::DroppedBeforeKeyframe {
                dts: MediaTime::new(0, Timebase::MPEG)
            }]
        );
        push_frames(&mut segmenter, 1, 5, 3);
        let segment = last_of(segmenter.finish().unwrap());
        assert_eq!(segment.start.ticks, 3 * FRAME);
        assert_eq!(trun_entries(&segment.data).len(), 3);
    }

    #[test]
    fn b_frames_get_signed_composition_offsets() {
        let mut segmenter = video_segmenter();
        // Decode order I P B with presentation order I B P, dts starting one frame early.
        for (dts, pts, key) in [(-1, 0, true), (0, 2, false), (1, 1, false)] {
            segmenter
                .push(video(dts * FRAME, pts * FRAME, key))
                .unwrap();
        }
        let segment = last_of(segmenter.finish().unwrap());
        assert_eq!(
            segment.start.ticks, 0,
            "the decode timeline starts at the first presentation time"
        );
        assert_eq!(
            trun_entries(&segment.data),
            [
                (3_000, 0x0200_0000, 0),
                (3_000, 0x0101_0000, 3_000),
                (3_000, 0x0101_0000, -3_000),
            ]
        );
    }

    #[test]
    fn decode_time_going_backwards_is_repaired_with_positive_durations() {
        let mut segmenter = video_segmenter();
        segmenter.push(video(0, 0, true)).unwrap();
        segmenter.push(video(FRAME, FRAME, false)).unwrap();
        let events = segmenter.push(video(FRAME, FRAME, false)).unwrap();
        assert_eq!(
            events,
            [SegmentEvent::TimestampRepaired {
                received: MediaTime::new(FRAME, Timebase::MPEG),
                repaired: MediaTime::new(2 * FRAME, Timebase::MPEG),
            }]
        );
        // The timeline stays shifted: the next frame follows without a new repair.
        assert!(segmenter
            .push(video(2 * FRAME, 2 * FRAME, false))
            .unwrap()
            .is_empty());
        let segment = last_of(segmenter.finish().unwrap());
        let durations: Vec<u32> = trun_entries(&segment.data).iter().map(|e| e.0).collect();
        assert_eq!(durations, [3_000; 4]);
    }

    #[test]
    fn timestamp_leap_is_collapsed_but_a_short_gap_is_kept() {
        let mut segmenter = video_segmenter();
        segmenter.push(video(0, 0, true)).unwrap();
        segmenter.push(video(FRAME, FRAME, false)).unwrap();
        assert!(segmenter
            .push(video(31 * FRAME, 31 * FRAME, false))
            .unwrap()
            .is_empty());
        let leap = 31 * FRAME + 3_600 * 90_000;
        let events = segmenter.push(video(leap, leap, false)).unwrap();
        assert!(matches!(
            events[..],
            [SegmentEvent::TimestampRepaired { .. }]
        ));
        let segment = last_of(segmenter.finish().unwrap());
        let durations: Vec<u32> = trun_entries(&segment.data).iter().map(|e| e.0).collect();
        assert_eq!(durations, [3_000, 90_000, 90_000, 90_000]);
    }

    #[test]
    fn millisecond_timestamps_are_rescaled_to_the_track_timescale() {
        let mut segmenter = video_segmenter();
        for (dts, key) in [(0, true), (33, false), (67, false)] {
            let mut packet = video(dts, dts, key);
            packet.timebase = Timebase::MILLIS;
            segmenter.push(packet).unwrap();
        }
        let segment = last_of(segmenter.finish().unwrap());
        let durations: Vec<u32> = trun_entries(&segment.data).iter().map(|e| e.0).collect();
        assert_eq!(durations, [2_970, 3_060, 3_060]);
    }

    #[test]
    fn explicit_audio_waits_for_cuts_and_splits_what_was_already_pushed() {
        let mut segmenter = TrackSegmenter::new(2, Timebase(48_000), Duration::from_secs(2))
            .with_policy(BoundaryPolicy::Explicit);
        let pushed: Vec<SegmentEvent> = (0..150)
            .flat_map(|i| segmenter.push(audio(i * 1_024)).unwrap())
            .collect();
        assert!(segments_of(pushed).is_empty(), "no cut without the video");

        // The video's first segment ended at 2 s; audio frame 94 is the first at or after it.
        let closed = segments_of(
            segmenter
                .cut_at(MediaTime::new(180_000, Timebase::MPEG))
                .unwrap(),
        );
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].duration.ticks, 94 * 1_024);
        assert!(closed[0].independent);

        // A cut announced before its samples arrive applies when they do.
        segmenter
            .cut_at(MediaTime::new(360_000, Timebase::MPEG))
            .unwrap();
        let later: Vec<SegmentEvent> = (150..200)
            .flat_map(|i| segmenter.push(audio(i * 1_024)).unwrap())
            .collect();
        let closed = segments_of(later);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].start.ticks, 94 * 1_024);
        assert_eq!(closed[0].duration.ticks, (188 - 94) * 1_024);
        assert_eq!(
            last_of(segmenter.finish().unwrap()).start.ticks,
            188 * 1_024
        );
    }

    #[test]
    fn a_keyframe_slightly_before_the_target_still_ends_the_segment() {
        // IDRs forced at the first frame at or after each 2 s boundary, with a millisecond
        // clock: the first lands 1 ms late, the second exactly on time (1.999 s apart).
        let mut segmenter = TrackSegmenter::new(1, Timebase::MILLIS, Duration::from_secs(2));
        let times: Vec<i64> = (0..=201)
            .map(|frame| frame * 20 + i64::from((100..200).contains(&frame)))
            .collect();
        let closed: Vec<CompletedSegment> = times
            .iter()
            .flat_map(|&dts| {
                let keyframe = dts == 0 || dts == 2_001 || dts == 4_000;
                segmenter
                    .push(Packet {
                        kind: TrackKind::Video,
                        timebase: Timebase::MILLIS,
                        dts,
                        pts: dts,
                        keyframe,
                        data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                    })
                    .unwrap()
            })
            .filter_map(|event| match event {
                SegmentEvent::Segment(segment) => Some(segment),
                _ => None,
            })
            .collect();
        let durations: Vec<i64> = closed
            .iter()
            .map(|segment| segment.duration.ticks)
            .collect();
        assert_eq!(durations, [2_001, 1_999]);
    }

    #[test]
    fn audio_alone_cuts_at_the_target_duration() {
        let mut segmenter = TrackSegmenter::new(2, Timebase(48_000), Duration::from_secs(2));
        let pushed: Vec<SegmentEvent> = (0..100)
            .flat_map(|i| segmenter.push(audio(i * 1_024)).unwrap())
            .collect();
        let closed = segments_of(pushed);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].duration.ticks, 94 * 1_024);
    }

    #[test]
    fn single_packet_track_gets_a_default_duration() {
        let mut segmenter = TrackSegmenter::new(2, Timebase(48_000), Duration::from_secs(2));
        segmenter.push(audio(0)).unwrap();
        assert_eq!(last_of(segmenter.finish().unwrap()).duration.ticks, 1_024);
        assert!(segmenter.finish().unwrap().is_empty());
    }

    #[test]
    fn extreme_peer_timestamps_do_not_panic() {
        let mut segmenter = video_segmenter();
        for (dts, pts) in [
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (0, 0),
            (i64::MAX, i64::MAX),
            (i64::MIN, 0),
        ] {
            segmenter.push(video(dts, pts, true)).unwrap();
        }
        let segment = last_of(segmenter.finish().unwrap());
        let entries = trun_entries(&segment.data);
        assert!(entries.iter().all(|(duration, _, _)| *duration > 0));
    }

    #[test]
    fn track_starting_at_the_most_negative_time_then_leaping_forward_does_not_panic() {
        // The first decode time is shifted to 0 even when it cannot be negated exactly, so the
        // next sample's distance to it is never computed from a negative decode time.
        let mut segmenter = video_segmenter();
        segmenter.push(video(i64::MIN, i64::MIN, true)).unwrap();
        segmenter.push(video(i64::MAX, i64::MAX, true)).unwrap();
        let segment = segments_of(segmenter.finish().unwrap()).remove(0);
        assert_eq!(segment.start.ticks, 0);
        assert!(trun_entries(&segment.data)
            .iter()
            .all(|(duration, _, _)| *duration > 0));
    }

    #[test]
    fn a_short_start_cuts_the_first_segments_early_then_at_the_target() {
        // Keyframes every second; the first two segments aim at 1 s, the rest at 3 s.
        let mut segmenter = TrackSegmenter::new(1, Timebase::MPEG, Duration::from_secs(3))
            .with_short_start(Duration::from_secs(1), 2);
        let mut closed = segments_of(push_frames(&mut segmenter, 0, 300, 30));
        closed.extend(segments_of(segmenter.finish().unwrap()));
        let durations: Vec<i64> = closed.iter().map(|s| s.duration.ticks / FRAME).collect();
        assert_eq!(durations, [30, 30, 90, 90, 60]);
    }

    #[test]
    fn the_first_sample_end_bounds_the_moof_and_the_first_sample() {
        let mut segmenter = video_segmenter();
        let key = Bytes::from_static(b"keyframe-bytes");
        segmenter
            .push(Packet {
                data: key.clone(),
                ..video(0, 0, true)
            })
            .unwrap();
        push_frames(&mut segmenter, 1, 10, 100);
        let segment = last_of(segmenter.finish().unwrap());
        let end = usize::try_from(segment.first_sample_end).unwrap();
        assert!(end < segment.data.len());
        assert_eq!(&segment.data[end - key.len()..end], &key[..]);
        let moof = read_boxes(&segment.data)[0].body.len() + 8;
        assert_eq!(end, moof + 8 + key.len(), "moof, mdat header, first sample");
    }

    #[test]
    fn fragments_are_numbered_across_segments() {
        let mut segmenter = video_segmenter();
        let mut closed = segments_of(push_frames(&mut segmenter, 0, 62, 60));
        closed.extend(segments_of(segmenter.finish().unwrap()));
        let numbers: Vec<u32> = closed
            .iter()
            .map(|s| u32_at(find(&s.data, &[b"moof", b"mfhd"]), 4))
            .collect();
        assert_eq!(numbers, [1, 2]);
    }

    fn parts(events: &[SegmentEvent]) -> Vec<&CompletedPart> {
        events
            .iter()
            .filter_map(|event| match event {
                SegmentEvent::Part(part) => Some(part),
                _ => None,
            })
            .collect()
    }

    /// 48 kHz AAC frames `first..first + count` (1024 ticks each).
    fn push_audio_frames(
        segmenter: &mut TrackSegmenter,
        first: i64,
        count: i64,
    ) -> Vec<SegmentEvent> {
        (first..first + count)
            .flat_map(|i| segmenter.push(audio(i * 1_024)).unwrap())
            .collect()
    }

    fn audio_with_parts() -> TrackSegmenter {
        TrackSegmenter::new(1, Timebase(48_000), Duration::from_secs(2))
            .with_policy(BoundaryPolicy::Explicit)
            .with_parts(Duration::from_millis(334))
    }

    #[test]
    fn parts_stay_within_the_part_target_and_make_up_their_segment_end_to_end() {
        let mut segmenter = video_segmenter().with_parts(Duration::from_millis(334));
        let events = push_frames(&mut segmenter, 0, 122, 60);
        let closed = segments_of(events.clone());
        assert_eq!(closed.len(), 2);
        for segment in &closed {
            let own: Vec<&CompletedPart> = parts(&events)
                .into_iter()
                .filter(|part| part.segment == segment.sequence)
                .collect();
            // 60 frames of 33.3 ms: six parts of ten frames, the first one independent.
            assert_eq!(own.len(), 6);
            assert!(own.iter().all(|part| part.duration.ticks == 10 * FRAME));
            let indices: Vec<u32> = own.iter().map(|part| part.index).collect();
            assert_eq!(indices, [0, 1, 2, 3, 4, 5]);
            let independent: Vec<bool> = own.iter().map(|part| part.independent).collect();
            assert_eq!(independent, [true, false, false, false, false, false]);
            assert_eq!(own[0].start, segment.start);
            let joined: Vec<u8> = own.iter().flat_map(|part| part.data.to_vec()).collect();
            assert_eq!(joined, segment.data.to_vec());
        }
        // Each segment comes right after its last part.
        let order: Vec<&str> = events
            .iter()
            .filter_map(|event| match event {
                SegmentEvent::Part(_) => Some("part"),
                SegmentEvent::Segment(_) => Some("segment"),
                _ => None,
            })
            .collect();
        assert_eq!(order[5..7], ["part", "segment"]);
    }

    #[test]
    fn a_part_closes_as_soon_as_the_next_frame_would_not_fit() {
        let mut segmenter = video_segmenter().with_parts(Duration::from_millis(334));
        // Frame 9 is committed when frame 10 arrives: ten frames fill 333 ms of the 334.
        assert!(parts(&push_frames(&mut segmenter, 0, 10, 60)).is_empty());
        let events = push_frames(&mut segmenter, 10, 1, 60);
        assert_eq!(parts(&events).len(), 1);
        assert_eq!(parts(&events)[0].duration.ticks, 10 * FRAME);
    }

    #[test]
    fn a_frame_longer_than_the_rest_starts_a_part_rather_than_overflowing_one() {
        let mut segmenter = video_segmenter().with_parts(Duration::from_millis(334));
        let mut events = push_frames(&mut segmenter, 0, 5, 60);
        // Frame 4 lasts two frames (a dropped frame at the source).
        for frame in [6, 7, 8, 9, 10, 11, 12] {
            events.extend(
                segmenter
                    .push(video(frame * FRAME, frame * FRAME, false))
                    .unwrap(),
            );
        }
        events.extend(segmenter.finish().unwrap());
        let durations: Vec<i64> = parts(&events).iter().map(|p| p.duration.ticks).collect();
        assert!(durations.iter().all(|d| *d <= 30_060), "{durations:?}");
        assert_eq!(durations.iter().sum::<i64>(), 13 * FRAME);
    }

    #[test]
    fn finishing_returns_the_last_part_before_the_last_segment() {
        let mut segmenter = video_segmenter().with_parts(Duration::from_millis(334));
        push_frames(&mut segmenter, 0, 15, 60);
        let events = segmenter.finish().unwrap();
        assert!(matches!(
            &events[..],
            [SegmentEvent::Part(part), SegmentEvent::Segment(segment)]
                if part.index == 1 && part.duration.ticks == 5 * FRAME && segment.sequence == 0
        ));
    }

    #[test]
    fn audio_parts_end_where_asked_even_after_later_frames_arrived() {
        let mut segmenter = audio_with_parts();
        // 20 frames (up to 427 ms) pushed, then the video's first part ends at 333 ms.
        assert!(parts(&push_audio_frames(&mut segmenter, 0, 20)).is_empty());
        let events = segmenter
            .end_part_at(MediaTime::new(30_000, Timebase::MPEG))
            .unwrap();
        // Frames 0..=15 start before 333 ms (frame 16 starts at 341 ms).
        assert_eq!(parts(&events).len(), 1);
        assert_eq!(parts(&events)[0].duration.ticks, 16 * 1_024);
        assert!(parts(&events)[0].independent);
    }

    #[test]
    fn an_audio_part_end_asked_ahead_of_the_audio_waits_for_its_frames() {
        let mut segmenter = audio_with_parts();
        push_audio_frames(&mut segmenter, 0, 4);
        assert!(segmenter
            .end_part_at(MediaTime::new(30_000, Timebase::MPEG))
            .unwrap()
            .is_empty());
        // Frame 16 (the first at or after 333 ms) is committed when frame 17 arrives.
        assert!(parts(&push_audio_frames(&mut segmenter, 4, 13)).is_empty());
        let events = push_audio_frames(&mut segmenter, 17, 1);
        assert_eq!(parts(&events).len(), 1);
        assert_eq!(parts(&events)[0].duration.ticks, 16 * 1_024);
    }

    #[test]
    fn a_late_segment_cut_still_moves_audio_past_it_into_the_next_segment() {
        let mut segmenter = audio_with_parts();
        push_audio_frames(&mut segmenter, 0, 20);
        segmenter
            .end_part_at(MediaTime::new(30_000, Timebase::MPEG))
            .unwrap();
        push_audio_frames(&mut segmenter, 20, 20);
        // The video's segment (and so its second part) ended at 667 ms; the audio is at 853 ms.
        let mut events = segmenter
            .end_part_at(MediaTime::new(60_000, Timebase::MPEG))
            .unwrap();
        events.extend(
            segmenter
                .cut_at(MediaTime::new(60_000, Timebase::MPEG))
                .unwrap(),
        );
        let closed = segments_of(events.clone());
        assert_eq!(closed.len(), 1);
        // Frame 32 is the first at or after 667 ms.
        assert_eq!(closed[0].duration.ticks, 32 * 1_024);
        let own: Vec<&CompletedPart> = parts(&events);
        assert_eq!(
            own.len(),
            1,
            "the second part, asked for just before the cut"
        );
        assert_eq!((own[0].index, own[0].duration.ticks), (1, 16 * 1_024));
        let next = segments_of(segmenter.finish().unwrap());
        assert_eq!(next[0].start.ticks, 32 * 1_024);
    }

    #[test]
    fn the_last_part_and_its_segment_close_together_when_the_next_keyframe_arrives() {
        let mut segmenter = TrackSegmenter::new(1, Timebase::MPEG, Duration::from_secs(1))
            .with_parts(Duration::from_millis(334));
        push_frames(&mut segmenter, 0, 30, 30);
        let events = push_frames(&mut segmenter, 30, 1, 30);
        assert!(
            matches!(
                &events[..],
                [SegmentEvent::Part(part), SegmentEvent::Segment(segment)]
                    if (part.segment, part.index) == (0, 2) && segment.sequence == 0
            ),
            "{events:?}"
        );
    }
}
