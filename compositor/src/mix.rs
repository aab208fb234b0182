//! The room's audio mix: every participant's microphone (Opus, RTP clock 48 kHz) decoded,
//! placed on one timeline by its RTP timestamps, summed, and encoded as one AAC-LC stereo
//! track at 48 kHz, at a constant rate whether anybody talks or not.
//!
//! **Timeline.** Sample 0 of the mix is the `start` instant given to [`AudioMixer::new`];
//! sample `s` is the instant `start + s / 48 kHz`. The mix of an instant is made
//! [`PLAYOUT_DELAY`] after it: until then each input's Opus packets wait in its jitter buffer,
//! so packets that come in bursts or out of order are still decoded in RTP order and land where
//! they belong.
//!
//! **Placement.** An input keeps the relative timing its RTP timestamps give. Each packet is
//! placed at `rtp_time + offset`, where the offset is the mix sample at which a packet arrived
//! minus its RTP time, taken from the packet that arrived soonest relative to its RTP time (the
//! smallest network delay), so jitter never moves the input later; wrap-around of the 32-bit
//! RTP clock is followed. A gap between packets (a lost packet, discontinuous transmission) is
//! silence, never a shift of what follows. A packet whose first sample is already mixed is late:
//! it is dropped and counted ([`MixStats::late_packets`]). A packet that lands more than
//! `CLOCK_JUMP` (1 s) away from where its arrival puts it means the sender's clock jumped: the
//! input is re-anchored at that packet. An input holds at most `MAX_BUFFERED` (2 s) of audio
//! ahead of the mix; packets beyond are dropped and counted ([`MixStats::overflowed_packets`]).
//!
//! **Mixing.** The inputs are summed and the sum is clamped to [-1, 1]: each voice keeps its
//! level, and only the rare instants where several loud voices add up beyond full scale are
//! clipped, which a soft clipper would distort as well.
//!
//! **Output.** 1024-sample AAC frames from the transcoder's [`AacEncoder`], timed in samples of
//! the mix timeline (48 kHz timebase, pts = dts), contiguous; the first is the encoder's
//! priming frame, at -1024.
//!
//! Sans I/O and synchronous: packets and instants go in, AAC packets come out of
//! [`AudioMixer::pull`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use ffmpeg_next::codec::decoder;
use ffmpeg_next::format::{sample::Type as SampleType, Sample};
use ffmpeg_next::frame;
use sluice_media::{AudioSpecificConfig, Packet};
use sluice_transcoder::audio::{open_opus_decoder, receive_audio_frame, AAC_FRAME_SAMPLES};
use sluice_transcoder::AacEncoder;
use tracing::{debug, warn};

use crate::CompositorError;

/// Depth of each input's jitter buffer: the mix of instant t is made at t + PLAYOUT_DELAY.
///
/// 120 ms: a packet is on time when it arrives at most this much later than its input's
/// soonest packet would have. Audio jitter on ordinary networks stays within a few 20 ms Opus
/// packets, and 120 ms also leaves room for a retransmitted packet on a short round trip, while
/// adding little to a live stream whose HLS latency is counted in seconds.
pub const PLAYOUT_DELAY: Duration = Duration::from_millis(120);
/// The mix's sample rate, which is also the RTP clock of Opus (RFC 7587 §4.1).
const SAMPLE_RATE: u32 = 48_000;
/// The mix is stereo.
const CHANNELS: u8 = 2;
/// The most audio an input holds ahead of the mix.
const MAX_BUFFERED: Duration = Duration::from_secs(2);
/// How far from where its arrival puts it a packet may land before its sender's clock is taken
/// to have jumped.
const CLOCK_JUMP: Duration = Duration::from_secs(1);

/// One stereo sample: left, right.
type Stereo = [f32; 2];

/// What the mixer dropped or repaired, over all inputs since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixStats {
    /// Packets that arrived after their first sample was mixed, and were dropped.
    pub late_packets: u64,
    /// Packets dropped because they start more than 2 s ahead of the mix.
    pub overflowed_packets: u64,
    /// Opus packets, or frames inside them, that did not decode.
    pub undecodable_packets: u64,
    /// Times a sender's clock jumped and its input was re-anchored.
    pub clock_jumps: u64,
}

/// Mixes the room's microphones into one AAC-LC track; see the module documentation.
pub struct AudioMixer {
    start: Instant,
    encoder: AacEncoder,
    /// The inputs by track id, in a fixed order so the sum is the same from run to run.
    inputs: BTreeMap<String, Input>,
    /// Mix samples made so far: the first sample of the next frame to mix.
    mixed_until: i64,
    stats: MixStats,
}

impl AudioMixer {
    /// A mixer whose sample 0 is the instant `start`, giving AAC-LC at 48 kHz, stereo.
    pub fn new(start: Instant) -> Result<Self, CompositorError> {
        let encoder =
            AacEncoder::open(SAMPLE_RATE, CHANNELS).map_err(|source| CompositorError::Open {
                what: "AAC encoder",
                source,
            })?;
        // Inputs open their decoders as they come; opening one here reports a missing Opus
        // decoder once, now, rather than on every packet.
        open_opus_decoder(CHANNELS).map_err(|source| CompositorError::Open {
            what: "Opus decoder",
            source,
        })?;
        Ok(AudioMixer {
            start,
            encoder,
            inputs: BTreeMap::new(),
            mixed_until: 0,
            stats: MixStats::default(),
        })
    }

    /// The AAC decoder configuration of every packet the mixer returns.
    pub fn config(&self) -> &AudioSpecificConfig {
        self.encoder.config()
    }

    /// What was dropped or repaired so far.
    pub fn stats(&self) -> MixStats {
        self.stats
    }

    /// Takes one Opus packet of the microphone `track` (opened as an input on its first
    /// packet), stamped `rtp_time` on the 48 kHz RTP clock and received at `now`.
    pub fn push(&mut self, track: &str, rtp_time: u32, opus: &[u8], now: Instant) {
        let arrival = self.sample_at(now);
        if !self.inputs.contains_key(track) {
            match open_opus_decoder(CHANNELS) {
                Ok(decoder) => {
                    let input = Input::new(decoder, Anchor::new(rtp_time, arrival));
                    self.inputs.insert(track.to_owned(), input);
                }
                Err(error) => {
                    warn!(track, %error, "Audio packet dropped: no Opus decoder opens for it.");
                    return;
                }
            }
        }
        let Some(input) = self.inputs.get_mut(track) else {
            return;
        };
        let position = input.place(rtp_time, arrival, &mut self.stats);
        if position < self.mixed_until {
            self.stats.late_packets += 1;
            debug!(
                track,
                late_samples = self.mixed_until - position,
                "Late audio packet dropped: its instant is already mixed."
            );
        } else if position - self.mixed_until > samples_in(MAX_BUFFERED) {
            self.stats.overflowed_packets += 1;
            if !input.overflow_logged {
                input.overflow_logged = true;
                warn!(
                    track,
                    "Audio input runs more than {MAX_BUFFERED:?} ahead of the mix; packets \
                     beyond are dropped."
                );
            }
        } else {
            input.waiting.insert(position, opus.to_vec());
        }
    }

    /// Drops the input `track` at once: nothing more of it is mixed.
    pub fn remove(&mut self, track: &str) {
        self.inputs.remove(track);
    }

    /// Mixes every whole AAC frame of the timeline up to `now - PLAYOUT_DELAY` and returns its
    /// AAC packets. A caller that fell behind gets every frame it missed: the audio stays
    /// contiguous, as the live packager needs.
    pub fn pull(&mut self, now: Instant) -> Vec<Packet> {
        let due = self.sample_at(now) - samples_in(PLAYOUT_DELAY);
        let mut out = Vec::new();
        while self.mixed_until + AAC_FRAME_SAMPLES as i64 <= due {
            out.extend(self.mix_frame());
        }
        out
    }

    /// Mixes what the inputs still hold, however far ahead, and flushes the encoder; returns
    /// the last AAC packets.
    pub fn finish(mut self) -> Vec<Packet> {
        let mut out = Vec::new();
        while self
            .inputs
            .values()
            .any(|input| input.holds_audio_from(self.mixed_until))
        {
            out.extend(self.mix_frame());
        }
        match self.encoder.finish() {
            Ok(packets) => out.extend(packets),
            Err(error) => warn!(%error, "The audio mix's last AAC frames are lost."),
        }
        out
    }

    /// Mixes and encodes the frame starting at `mixed_until`.
    fn mix_frame(&mut self) -> Vec<Packet> {
        let frame_start = self.mixed_until;
        let mut left = [0f32; AAC_FRAME_SAMPLES];
        let mut right = [0f32; AAC_FRAME_SAMPLES];
        for input in self.inputs.values_mut() {
            input.decode_before(frame_start + AAC_FRAME_SAMPLES as i64, &mut self.stats);
            input.mix_into(frame_start, &mut left, &mut right);
        }
        for sample in left.iter_mut().chain(right.iter_mut()) {
            *sample = sample.clamp(-1.0, 1.0);
        }
        self.mixed_until += AAC_FRAME_SAMPLES as i64;
        self.encoder.push(&[&left, &right]).unwrap_or_else(|error| {
            warn!(%error, sample = frame_start, "A frame of the audio mix is lost.");
            Vec::new()
        })
    }

    /// The mix sample at the instant `now` (0 before the start).
    fn sample_at(&self, now: Instant) -> i64 {
        samples_in(now.saturating_duration_since(self.start))
    }
}

/// Samples of the mix in `duration`.
fn samples_in(duration: Duration) -> i64 {
    let samples = duration.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000;
    i64::try_from(samples).unwrap_or(i64::MAX)
}

/// An RTP time of an input and the mix sample it lands on.
#[derive(Clone, Copy)]
struct Anchor {
    rtp_time: u32,
    position: i64,
}

impl Anchor {
    fn new(rtp_time: u32, position: i64) -> Self {
        Anchor { rtp_time, position }
    }

    /// Where `rtp_time` lands: the RTP clock is 32 bits and wraps, so the nearer of the times
    /// it can stand for (within half its range, 12 hours) is taken.
    fn position_of(&self, rtp_time: u32) -> i64 {
        // Reinterpreting the wrapped difference as signed gives the nearer way round.
        self.position + i64::from(rtp_time.wrapping_sub(self.rtp_time) as i32)
    }
}

/// One microphone: its decoder, where its RTP clock lands, and its jitter buffer.
struct Input {
    decoder: decoder::Audio,
    anchor: Anchor,
    /// Opus packets waiting to be decoded, by the mix sample of their first sample.
    waiting: BTreeMap<i64, Vec<u8>>,
    /// Decoded samples not mixed yet, the first at mix sample `decoded_start`.
    decoded: VecDeque<Stereo>,
    decoded_start: i64,
    /// Whether dropping packets beyond `MAX_BUFFERED` was logged (it is, once).
    overflow_logged: bool,
}

impl Input {
    fn new(decoder: decoder::Audio, anchor: Anchor) -> Self {
        Input {
            decoder,
            anchor,
            waiting: BTreeMap::new(),
            decoded: VecDeque::new(),
            decoded_start: anchor.position,
            overflow_logged: false,
        }
    }

    /// The mix sample where the packet stamped `rtp_time`, arrived at mix sample `arrival`,
    /// lands; moves the anchor earlier when the packet came sooner than any before, and
    /// re-anchors at the packet when the sender's clock jumped.
    fn place(&mut self, rtp_time: u32, arrival: i64, stats: &mut MixStats) -> i64 {
        let position = self.anchor.position_of(rtp_time);
        let delay = arrival - position;
        if delay.abs() > samples_in(CLOCK_JUMP) {
            stats.clock_jumps += 1;
            debug!(
                samples = -delay,
                "A sender's audio clock jumped; its input is re-anchored."
            );
            self.anchor = Anchor::new(rtp_time, arrival);
            return arrival;
        }
        let position = if delay < 0 {
            // Sooner than any packet before: the anchor, and what waits, move earlier.
            self.waiting = std::mem::take(&mut self.waiting)
                .into_iter()
                .map(|(waiting_at, packet)| (waiting_at + delay, packet))
                .collect();
            arrival
        } else {
            position
        };
        // The same mapping, anchored at the latest packet so the RTP clock may wrap any number
        // of times over a long stream.
        self.anchor = Anchor::new(rtp_time, position);
        position
    }

    /// Whether any audio of this input is left at or after mix sample `position`.
    fn holds_audio_from(&self, position: i64) -> bool {
        !self.waiting.is_empty() || self.decoded_start + self.decoded.len() as i64 > position
    }

    /// Decodes, in RTP order, every waiting packet that starts before mix sample `end`.
    fn decode_before(&mut self, end: i64, stats: &mut MixStats) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() >= end {
                break;
            }
            let (position, packet) = entry.remove_entry();
            let samples = self.decode(&packet, stats);
            self.write(position, samples);
        }
    }

    fn decode(&mut self, packet: &[u8], stats: &mut MixStats) -> Vec<Stereo> {
        let mut samples = Vec::new();
        if let Err(error) = self.decoder.send_packet(&ffmpeg_next::Packet::copy(packet)) {
            stats.undecodable_packets += 1;
            debug!(%error, "Opus packet skipped: it does not decode.");
            return samples;
        }
        let mut decoded = frame::Audio::empty();
        while receive_audio_frame(
            &mut self.decoder,
            &mut decoded,
            &mut stats.undecodable_packets,
            "Opus",
        ) {
            if !append_stereo(&decoded, &mut samples) {
                stats.undecodable_packets += 1;
                debug!(
                    format = ?decoded.format(),
                    "Opus frame skipped: the decoder gave samples neither float nor 16-bit."
                );
            }
        }
        samples
    }

    /// Puts decoded samples at mix sample `position`: silence fills a gap before them, and what
    /// overlaps samples already there (the anchor moved earlier) is left out.
    fn write(&mut self, position: i64, samples: Vec<Stereo>) {
        if self.decoded.is_empty() {
            self.decoded_start = position;
        }
        let end = self.decoded_start + self.decoded.len() as i64;
        // Positions lie within MAX_BUFFERED of the mix, so the gap is at most that long.
        let gap = usize::try_from(position - end).unwrap_or(0);
        self.decoded.resize(self.decoded.len() + gap, [0.0; 2]);
        let overlap = usize::try_from(end - position).unwrap_or(0);
        self.decoded.extend(samples.into_iter().skip(overlap));
    }

    /// Adds this input's samples of the frame starting at mix sample `frame_start` to `left`
    /// and `right`, and forgets them and any before.
    fn mix_into(&mut self, frame_start: i64, left: &mut [f32], right: &mut [f32]) {
        let stale = usize::try_from(frame_start - self.decoded_start)
            .unwrap_or(0)
            .min(self.decoded.len());
        self.decoded.drain(..stale);
        self.decoded_start += stale as i64;
        let Ok(skip) = usize::try_from(self.decoded_start - frame_start) else {
            return;
        };
        let used = left.len().saturating_sub(skip).min(self.decoded.len());
        for (index, [l, r]) in self.decoded.drain(..used).enumerate() {
            left[skip + index] += l;
            right[skip + index] += r;
        }
        self.decoded_start += used as i64;
    }
}

/// Appends a decoded frame's samples as stereo (a mono frame on both channels, channels past
/// the second left out); `false` when they are in none of the formats Opus decoders give:
/// planar float (libavcodec's decoder), interleaved float or 16-bit (libopus).
fn append_stereo(decoded: &frame::Audio, out: &mut Vec<Stereo>) -> bool {
    let channels = usize::from(decoded.channels()).max(1);
    let right = usize::from(channels > 1);
    match decoded.format() {
        Sample::F32(SampleType::Planar) => {
            let (left_plane, right_plane) = (decoded.plane::<f32>(0), decoded.plane::<f32>(right));
            out.extend(left_plane.iter().zip(right_plane).map(|(l, r)| [*l, *r]));
        }
        format @ (Sample::F32(SampleType::Packed) | Sample::I16(SampleType::Packed)) => {
            let width = format.bytes();
            let interleaved = decoded.data(0).chunks_exact(width * channels);
            out.extend(interleaved.take(decoded.samples()).map(|sample| {
                [
                    interleaved_sample(&sample[..width]),
                    interleaved_sample(&sample[right * width..][..width]),
                ]
            }));
        }
        _ => return false,
    }
    true
}

/// One float or 16-bit sample of an interleaved frame, as float.
fn interleaved_sample(bytes: &[u8]) -> f32 {
    match *bytes {
        [a, b, c, d] => f32::from_ne_bytes([a, b, c, d]),
        [a, b] => f32::from(i16::from_ne_bytes([a, b])) / 32_768.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use ffmpeg_next::codec::{self, encoder};
    use ffmpeg_next::ChannelLayout;
    use sluice_media::{Timebase, TrackKind};

    use super::*;

    /// Samples in one 20 ms Opus packet.
    const PACKET_SAMPLES: u32 = 960;
    const PACKET_DURATION: Duration = Duration::from_millis(20);
    /// How often the tests pull: the compositor polls at least this often.
    const PULL_EVERY: Duration = Duration::from_millis(5);
    /// Level of each test tone.
    const AMPLITUDE: f64 = 0.25;

    /// 20 ms Opus packets (libopus, mono, 48 kHz) of a sine at `frequency`.
    fn opus_tone(frequency: f64, duration: Duration) -> Vec<Vec<u8>> {
        ffmpeg_next::init().unwrap();
        let codec = encoder::find_by_name("libopus").expect("libavcodec has libopus");
        let mut context = codec::Context::new_with_codec(codec);
        context.set_flags(codec::Flags::GLOBAL_HEADER);
        let mut settings = context.encoder().audio().unwrap();
        settings.set_rate(SAMPLE_RATE as i32);
        settings.set_channel_layout(ChannelLayout::MONO);
        settings.set_format(Sample::F32(SampleType::Packed));
        settings.set_bit_rate(64_000);
        settings.set_time_base(ffmpeg_next::Rational::new(1, SAMPLE_RATE as i32));
        let mut opus = settings.open_as(codec).unwrap();
        let total = samples_in(duration) as usize;
        let mut packets = Vec::new();
        let mut receive = |opus: &mut encoder::Audio| {
            let mut packet = ffmpeg_next::Packet::empty();
            while opus.receive_packet(&mut packet).is_ok() {
                packets.push(packet.data().unwrap().to_vec());
            }
        };
        for first in (0..total).step_by(PACKET_SAMPLES as usize) {
            let mut samples = frame::Audio::new(
                Sample::F32(SampleType::Packed),
                PACKET_SAMPLES as usize,
                ChannelLayout::MONO,
            );
            samples.set_rate(SAMPLE_RATE);
            samples.set_pts(Some(first as i64));
            for (offset, sample) in samples.plane_mut::<f32>(0).iter_mut().enumerate() {
                let t = (first + offset) as f64 / f64::from(SAMPLE_RATE);
                *sample = (AMPLITUDE * (2.0 * PI * frequency * t).sin()) as f32;
            }
            opus.send_frame(&samples).unwrap();
            receive(&mut opus);
        }
        opus.send_eof().unwrap();
        receive(&mut opus);
        packets
    }

    /// One packet as the network hands it over.
    #[derive(Clone)]
    struct Delivery {
        at: Duration,
        track: &'static str,
        rtp_time: u32,
        opus: Vec<u8>,
    }

    /// `packets` of `track` sent every 20 ms from RTP time `rtp_start`, each arriving as it is
    /// sent, the first at `first_arrival`.
    fn in_order(
        track: &'static str,
        packets: &[Vec<u8>],
        rtp_start: u32,
        first_arrival: Duration,
    ) -> Vec<Delivery> {
        packets
            .iter()
            .enumerate()
            .map(|(index, opus)| Delivery {
                at: first_arrival + PACKET_DURATION * index as u32,
                track,
                rtp_time: rtp_start.wrapping_add(PACKET_SAMPLES * index as u32),
                opus: opus.clone(),
            })
            .collect()
    }

    /// What the mixer made of a run.
    struct Run {
        config: AudioSpecificConfig,
        packets: Vec<Packet>,
        stats: MixStats,
    }

    /// Feeds `deliveries` (in the order given among those due at once) and `removals` to a
    /// mixer, pulling every 5 ms until `until`, then finishes it.
    fn run(deliveries: &[Delivery], removals: &[(Duration, &str)], until: Duration) -> Run {
        let start = Instant::now();
        let mut mixer = AudioMixer::new(start).unwrap();
        let mut deliveries = deliveries.to_vec();
        deliveries.sort_by_key(|delivery| delivery.at);
        let mut next = deliveries.iter().peekable();
        let mut packets = Vec::new();
        let mut now = Duration::ZERO;
        while now <= until {
            while let Some(delivery) = next.next_if(|delivery| delivery.at <= now) {
                let at = start + delivery.at;
                mixer.push(delivery.track, delivery.rtp_time, &delivery.opus, at);
            }
            for (_, track) in removals.iter().filter(|(at, _)| *at == now) {
                mixer.remove(track);
            }
            packets.extend(mixer.pull(start + now));
            now += PULL_EVERY;
        }
        let (config, stats) = (mixer.config().clone(), mixer.stats());
        packets.extend(mixer.finish());
        Run {
            config,
            packets,
            stats,
        }
    }

    /// The mix decoded back by libavcodec's AAC decoder: left channel, sample 0 at mix sample
    /// `first_sample`.
    struct Decoded {
        first_sample: i64,
        left: Vec<f32>,
        right: Vec<f32>,
    }

    impl Decoded {
        /// The samples of the left channel from `from` to `to` on the mix timeline.
        fn window(&self, from: Duration, to: Duration) -> &[f32] {
            let index = |at: Duration| (samples_in(at) - self.first_sample) as usize;
            &self.left[index(from)..index(to)]
        }

        /// Amplitude of the tone at `frequency` from `from` to `to`.
        fn level(&self, frequency: f64, from: Duration, to: Duration) -> f64 {
            tone_level(self.window(from, to), frequency)
        }

        /// When the tone at `frequency` starts: the middle of the first 20 ms window where it
        /// reaches half its level.
        fn onset(&self, frequency: f64) -> Duration {
            let window = Duration::from_millis(20);
            let step = Duration::from_millis(1);
            let mut at = Duration::ZERO;
            while self.level(frequency, at, at + window) < AMPLITUDE / 2.0 {
                at += step;
            }
            at + window / 2
        }
    }

    fn decode(run: &Run) -> Decoded {
        assert_eq!(
            (run.config.sample_rate, run.config.channels),
            (SAMPLE_RATE, CHANNELS)
        );
        let codec = decoder::find(codec::Id::AAC).unwrap();
        let mut aac = codec::Context::new_with_codec(codec)
            .decoder()
            .audio()
            .unwrap();
        let mut decoded = frame::Audio::empty();
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for packet in &run.packets {
            aac.send_packet(&ffmpeg_next::Packet::copy(&adts(&run.config, &packet.data)))
                .unwrap();
            while aac.receive_frame(&mut decoded).is_ok() {
                assert_eq!(decoded.format(), Sample::F32(SampleType::Planar));
                left.extend_from_slice(decoded.plane::<f32>(0));
                right.extend_from_slice(decoded.plane::<f32>(1));
            }
        }
        Decoded {
            first_sample: run.packets[0].pts,
            left,
            right,
        }
    }

    /// A raw AAC frame with the ADTS header (ISO/IEC 13818-7 §6.2) that lets the decoder open
    /// without the AudioSpecificConfig.
    fn adts(config: &AudioSpecificConfig, frame: &[u8]) -> Vec<u8> {
        const FREQUENCY_INDEX_48_KHZ: u8 = 3;
        let length = frame.len() + 7;
        let profile = config.object_type - 1;
        let mut out = vec![
            0xFF,
            0xF1,
            (profile << 6) | (FREQUENCY_INDEX_48_KHZ << 2) | (config.channels >> 2),
            ((config.channels & 3) << 6) | (length >> 11) as u8,
            (length >> 3) as u8,
            ((length & 7) << 5) as u8 | 0x1F,
            0xFC,
        ];
        out.extend_from_slice(frame);
        out
    }

    /// Amplitude of the sine at `frequency` in `samples` (the Goertzel algorithm).
    fn tone_level(samples: &[f32], frequency: f64) -> f64 {
        let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(SAMPLE_RATE)).cos();
        let (mut previous, mut before) = (0.0, 0.0);
        for sample in samples {
            let current = f64::from(*sample) + coefficient * previous - before;
            before = previous;
            previous = current;
        }
        let power = previous * previous + before * before - coefficient * previous * before;
        2.0 * power.max(0.0).sqrt() / samples.len() as f64
    }

    fn rms(samples: &[f32]) -> f64 {
        let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
        (energy / samples.len().max(1) as f64).sqrt()
    }

    fn assert_contiguous(packets: &[Packet]) {
        assert_eq!(packets[0].pts, -(AAC_FRAME_SAMPLES as i64), "priming frame");
        for (index, packet) in packets.iter().enumerate() {
            assert_eq!(packet.kind, TrackKind::Audio);
            assert_eq!(packet.timebase, Timebase(SAMPLE_RATE));
            assert!(packet.keyframe);
            assert_eq!(packet.dts, packet.pts);
            assert_eq!(
                packet.pts,
                (index as i64 - 1) * AAC_FRAME_SAMPLES as i64,
                "packet {index}"
            );
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn three_talkers_are_all_heard_in_the_mix() {
        let frequencies = [440.0, 1_000.0, 2_500.0];
        let mut deliveries = Vec::new();
        for (index, (track, frequency)) in ["a", "b", "c"].into_iter().zip(frequencies).enumerate()
        {
            let packets = opus_tone(frequency, ms(1_000));
            deliveries.extend(in_order(track, &packets, 1_000 * index as u32, ms(20)));
        }
        let run = run(&deliveries, &[], ms(1_500));
        assert_contiguous(&run.packets);
        assert_eq!(run.stats, MixStats::default());
        let mix = decode(&run);
        for frequency in frequencies {
            let level = mix.level(frequency, ms(300), ms(900));
            assert!(
                (0.7 * AMPLITUDE..1.3 * AMPLITUDE).contains(&level),
                "{frequency} Hz at {level}"
            );
        }
        let between = mix.level(1_700.0, ms(300), ms(900));
        assert!(between < 0.02, "1700 Hz, in no input, at {between}");
        let difference: Vec<f32> = mix
            .left
            .iter()
            .zip(&mix.right)
            .map(|(l, r)| l - r)
            .collect();
        assert!(
            rms(&difference) < 0.01,
            "mono talkers are heard on both channels"
        );
    }

    #[test]
    fn an_input_that_starts_500_ms_later_is_heard_500_ms_later() {
        let (early, late) = (600.0, 2_000.0);
        let mut deliveries = in_order("early", &opus_tone(early, ms(1_500)), 77, ms(100));
        // The later sender's RTP clock wraps round while it talks.
        let wraps_soon = u32::MAX - 10 * PACKET_SAMPLES;
        deliveries.extend(in_order(
            "late",
            &opus_tone(late, ms(1_000)),
            wraps_soon,
            ms(600),
        ));
        let run = run(&deliveries, &[], ms(2_000));
        assert_contiguous(&run.packets);
        assert_eq!(run.stats, MixStats::default(), "the wrap is no clock jump");
        let mix = decode(&run);
        let (early_onset, late_onset) = (mix.onset(early), mix.onset(late));
        let apart = late_onset.as_secs_f64() - early_onset.as_secs_f64();
        assert!((0.475..0.525).contains(&apart), "{apart} s apart");
        // The first packet is placed where it arrived.
        let first = early_onset.as_secs_f64();
        assert!((0.075..0.125).contains(&first), "first heard at {first} s");
        let after_the_wrap = mix.level(late, ms(1_000), ms(1_500));
        assert!(
            after_the_wrap > 0.7 * AMPLITUDE,
            "{after_the_wrap} after the wrap"
        );
    }

    #[test]
    fn bursty_and_reordered_delivery_within_the_playout_delay_mixes_as_in_order() {
        let steady = in_order("steady", &opus_tone(500.0, ms(1_000)), 9, ms(40));
        let smooth = in_order("bursty", &opus_tone(1_500.0, ms(1_000)), 123_456, ms(10));
        // Four packets at a time, when the last of them would have come, as 1, 0, 3, 2.
        let mut bursty = Vec::new();
        for burst in smooth.chunks(4) {
            let at = burst.last().unwrap().at;
            for index in [1, 0, 3, 2]
                .into_iter()
                .filter(|index| *index < burst.len())
            {
                bursty.push(Delivery {
                    at,
                    ..burst[index].clone()
                });
            }
        }
        let reference = run(&[steady.clone(), smooth].concat(), &[], ms(1_500));
        let jittery = run(&[steady, bursty].concat(), &[], ms(1_500));
        assert_eq!(jittery.stats, MixStats::default());
        assert_eq!(jittery.packets, reference.packets);
    }

    #[test]
    fn a_lost_packet_leaves_a_short_silence_and_shifts_nothing() {
        // 1030 Hz does not repeat every 20 ms: a shift by a packet would show.
        let frequency = 1_030.0;
        // Starting 10 ms into the mix, packet 24 starts in the AAC frame where packet 22 ends:
        // the gap between them is inside what the input holds.
        let complete = in_order("talker", &opus_tone(frequency, ms(1_000)), 5, ms(10));
        let mut lossy = complete.clone();
        let lost = lossy.remove(23);
        let reference = decode(&run(&complete, &[], ms(1_500)));
        let with_loss = decode(&run(&lossy, &[], ms(1_500)));
        assert_eq!(
            lost.at,
            ms(470),
            "the lost packet covers 470 to 490 ms of the mix"
        );
        let heard_in_gap = rms(with_loss.window(ms(475), ms(485)));
        let heard_anyway = rms(reference.window(ms(475), ms(485)));
        assert!(
            heard_in_gap < 0.2 * heard_anyway,
            "{heard_in_gap} in the gap, {heard_anyway} without loss"
        );
        let after = (ms(600), ms(900));
        let difference: Vec<f32> = with_loss
            .window(after.0, after.1)
            .iter()
            .zip(reference.window(after.0, after.1))
            .map(|(lossy, complete)| lossy - complete)
            .collect();
        let (error, signal) = (rms(&difference), rms(reference.window(after.0, after.1)));
        assert!(
            error < 0.1 * signal,
            "after the gap: {error} off a signal of {signal}"
        );
    }

    #[test]
    fn with_no_inputs_the_mix_is_silent_aac_at_a_constant_rate() {
        let start = Instant::now();
        let mut mixer = AudioMixer::new(start).unwrap();
        let mut packets = Vec::new();
        // Pulled at uneven times.
        for millis in [0, 7, 40, 41, 300, 333, 900, 1_000, 1_700, 2_000] {
            packets.extend(mixer.pull(start + ms(millis)));
        }
        // 2 s less the playout delay, in whole 1024-sample frames.
        let frames = (samples_in(ms(2_000) - PLAYOUT_DELAY) / AAC_FRAME_SAMPLES as i64) as usize;
        let config = mixer.config().clone();
        packets.extend(mixer.finish());
        assert_eq!(
            packets.len(),
            frames + 1,
            "the mixed frames and the priming one"
        );
        assert_contiguous(&packets);
        let silence = decode(&Run {
            config,
            packets,
            stats: MixStats::default(),
        });
        assert!(silence
            .left
            .iter()
            .chain(&silence.right)
            .all(|s| s.abs() < 1e-4));
    }

    #[test]
    fn a_removed_input_stops_contributing_at_once() {
        let (staying, leaving) = (600.0, 2_000.0);
        let mut deliveries = in_order("staying", &opus_tone(staying, ms(2_000)), 0, ms(0));
        let leaver = in_order("leaving", &opus_tone(leaving, ms(2_000)), 0, ms(0));
        deliveries.extend(
            leaver
                .into_iter()
                .filter(|delivery| delivery.at < ms(1_000)),
        );
        let run = run(&deliveries, &[(ms(1_000), "leaving")], ms(2_500));
        let mix = decode(&run);
        assert!(mix.level(leaving, ms(300), ms(800)) > 0.7 * AMPLITUDE);
        // What was mixed by the removal (up to 1 s less the playout delay) is all there is.
        let after = mix.level(leaving, ms(920), ms(1_800));
        assert!(after < 0.01, "{after} of the removed input");
        assert!(mix.level(staying, ms(920), ms(1_800)) > 0.7 * AMPLITUDE);
    }

    #[test]
    fn late_packets_are_dropped_and_counted() {
        let frequency = 1_000.0;
        let mut deliveries = in_order("talker", &opus_tone(frequency, ms(1_000)), 0, ms(0));
        // Packet 30 (600 to 620 ms) comes after its instant was mixed; packet 40 is delayed
        // by less than the playout delay, and is on time.
        deliveries[30].at += PLAYOUT_DELAY + ms(60);
        deliveries[40].at += PLAYOUT_DELAY - ms(30);
        let run = run(&deliveries, &[], ms(1_500));
        assert_eq!(run.stats.late_packets, 1);
        assert_contiguous(&run.packets);
        let mix = decode(&run);
        let in_gap = mix.level(frequency, ms(605), ms(615));
        assert!(
            in_gap < 0.2 * AMPLITUDE,
            "{in_gap} where the late packet was"
        );
        let on_time = mix.level(frequency, ms(800), ms(820));
        assert!(on_time > 0.7 * AMPLITUDE, "{on_time} of the delayed packet");
    }

    #[test]
    fn a_sender_clock_jump_reanchors_the_input() {
        let frequency = 1_000.0;
        let mut deliveries = in_order("talker", &opus_tone(frequency, ms(3_000)), 0, ms(0));
        let ten_minutes = 600 * SAMPLE_RATE;
        // Forward ten minutes after 1 s, then back twenty after 2 s.
        for delivery in &mut deliveries[50..] {
            delivery.rtp_time = delivery.rtp_time.wrapping_add(ten_minutes);
        }
        for delivery in &mut deliveries[100..] {
            delivery.rtp_time = delivery.rtp_time.wrapping_sub(2 * ten_minutes);
        }
        let run = run(&deliveries, &[], ms(3_500));
        assert_eq!(
            run.stats,
            MixStats {
                clock_jumps: 2,
                ..MixStats::default()
            }
        );
        let mix = decode(&run);
        for second in 0..3 {
            let from = ms(1_000 * second + 100);
            let level = mix.level(frequency, from, from + ms(800));
            assert!(level > 0.7 * AMPLITUDE, "{level} in second {second}");
        }
    }

    #[test]
    fn an_input_holds_at_most_two_seconds_ahead_of_the_mix() {
        let frequency = 1_000.0;
        let start = Instant::now();
        let mut mixer = AudioMixer::new(start).unwrap();
        // Three seconds arrive while nothing is pulled.
        for delivery in in_order("talker", &opus_tone(frequency, ms(3_000)), 0, ms(0)) {
            let at = start + delivery.at;
            mixer.push(delivery.track, delivery.rtp_time, &delivery.opus, at);
        }
        let mut packets = mixer.pull(start + ms(3_200));
        let (config, stats) = (mixer.config().clone(), mixer.stats());
        packets.extend(mixer.finish());
        // Packets starting beyond 2 s are dropped: the last 50 (and the encoder's tail).
        assert!((49..=51).contains(&stats.overflowed_packets), "{stats:?}");
        assert_contiguous(&packets);
        let mix = decode(&Run {
            config,
            packets,
            stats,
        });
        assert!(mix.level(frequency, ms(200), ms(1_800)) > 0.7 * AMPLITUDE);
        assert!(mix.level(frequency, ms(2_100), ms(2_900)) < 0.01);
    }
}
