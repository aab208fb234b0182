//! Audio to AAC-LC: the encoder on its own ([`AacEncoder`]: planar float samples in, AAC
//! packets out), and transcoding ([`AacTranscoder`]), so a publisher's MP3 (the ffmpeg CLI's
//! default FLV audio codec), a WebRTC publisher's Opus, or any audio a file carries, can become
//! an HLS audio rendition.
//!
//! libavcodec's MP3 decoder (ISO/IEC 11172-3 / 13818-3 Layer III) decodes each frame,
//! libswresample turns what it gives into planar float at the output rate and layout, and the
//! [`AacEncoder`] re-cuts the samples into the 1024-sample frames AAC-LC codes and encodes them
//! with FFmpeg's native `aac` encoder (ISO/IEC 14496-3 AAC-LC). Output packets are raw AAC
//! frames, as [`Packet`] documents, with the encoder's AudioSpecificConfig.
//!
//! The transcoder is synchronous: [`AacTranscoder::push`] does the work one packet allows and
//! returns the AAC packets that became ready. Decoding MP3 and encoding AAC cost about a percent
//! of a core per stream, so the caller runs it on a thread it already has (the live packaging
//! thread) rather than on a thread with queues of its own; it never belongs on an async reactor.
//!
//! Timestamps count in the output sample rate. The first decoded frame anchors the timeline;
//! from then on samples are counted, so the output is gapless and strictly increasing however
//! the publisher's millisecond clock jitters. A gap in the input longer than [`GAP_TOLERANCE`]
//! and at most [`MAX_SILENCE_FILL`] is filled with silence, which keeps audio in step with
//! video. A longer leap forward, or input that goes backwards by more than the tolerance, is a
//! clock jump: the audio carries on contiguously and the input clock is re-anchored there, as
//! the packager's segmenter does with video timestamps that leap (its `MAX_GAP_SECS`). The
//! encoder's packets carry its priming delay (1024 samples before the first input sample), as
//! libavcodec reports it.
//!
//! Bytes that do not decode are counted ([`AacTranscoder::decode_errors`]) and skipped.

use std::time::Duration;

use bytes::Bytes;
use ffmpeg_next::codec::{self, decoder, encoder};
use ffmpeg_next::format::{sample::Type as SampleType, Sample};
use ffmpeg_next::software::resampling;
use ffmpeg_next::{frame, ChannelLayout, Rational};
use sluice_media::{AudioSpecificConfig, Mp3FrameHeader, Packet, Timebase, TrackKind};
use tracing::debug;

use crate::TranscodeError;

/// Samples per channel in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// AAC-LC bitrate per channel (128 kb/s stereo, 64 kb/s mono).
const BITS_PER_SECOND_PER_CHANNEL: usize = 64_000;
/// Output rate when the source rate has no AAC sampling frequency index.
const FALLBACK_SAMPLE_RATE: u32 = 48_000;
/// How far the input may run ahead of the samples counted before silence is inserted: more
/// than the RTMP clock's millisecond rounding and an MP3 frame's worth of jitter.
pub const GAP_TOLERANCE: Duration = Duration::from_millis(100);
/// The longest gap filled with silence; a longer one is a clock jump and is not filled. Equal
/// to the packager segmenter's `MAX_GAP_SECS`, so audio and video treat the same leaps alike.
pub const MAX_SILENCE_FILL: Duration = Duration::from_secs(10);
/// Opus always decodes at 48 kHz in WebRTC (RFC 7587 §4.1).
const OPUS_SAMPLE_RATE: u32 = 48_000;
/// AAC-LC in the AudioSpecificConfig's audio object type numbering.
const AAC_LC: u8 = 2;
/// The planar float samples the AAC encoder takes.
const ENCODER_FORMAT: Sample = Sample::F32(SampleType::Planar);

/// FFmpeg's native AAC-LC encoder fed with planar float samples, which it re-cuts into whole
/// AAC frames.
///
/// Timestamps count samples of the output rate from the first sample pushed (sample 0); the
/// first packet is the encoder's priming frame, at -1024. Packets are contiguous and each
/// carries one raw AAC frame.
pub struct AacEncoder {
    encoder: encoder::Audio,
    config: AudioSpecificConfig,
    layout: ChannelLayout,
    /// Samples waiting for a full AAC frame, one vector per channel.
    pending: Vec<Vec<f32>>,
    /// Samples per channel already handed to the encoder: the time of the first pending one.
    encoded_samples: i64,
}

impl AacEncoder {
    /// Opens an encoder of `channels` channels at `sample_rate`, which must be one of AAC's
    /// sampling frequencies.
    pub fn open(sample_rate: u32, channels: u8) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let layout = ChannelLayout::default(i32::from(channels));
        let encoder = open_aac_encoder(sample_rate, layout, usize::from(channels))?;
        let config = encoder_config(&encoder)?;
        Ok(AacEncoder {
            encoder,
            config,
            layout,
            pending: vec![Vec::new(); usize::from(channels)],
            encoded_samples: 0,
        })
    }

    /// The AAC decoder configuration of every packet this encoder returns.
    pub fn config(&self) -> &AudioSpecificConfig {
        &self.config
    }

    /// The clock of the returned packets: the sample rate.
    pub fn timebase(&self) -> Timebase {
        Timebase(self.config.sample_rate)
    }

    /// The channel layout the samples are in, one plane per channel.
    pub fn channel_layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Samples per channel taken so far: the time of the next sample pushed.
    pub fn samples_taken(&self) -> i64 {
        self.encoded_samples + self.pending.first().map_or(0, Vec::len) as i64
    }

    /// Takes samples, one plane per channel, and returns the AAC packets now ready.
    ///
    /// # Panics
    ///
    /// If there is not one plane per channel, or the planes differ in length.
    pub fn push(&mut self, planes: &[&[f32]]) -> Result<Vec<Packet>, TranscodeError> {
        assert_eq!(planes.len(), self.pending.len(), "one plane per channel");
        let samples = planes.first().map_or(0, |plane| plane.len());
        assert!(
            planes.iter().all(|plane| plane.len() == samples),
            "planes of equal length"
        );
        for (channel, plane) in self.pending.iter_mut().zip(planes) {
            channel.extend_from_slice(plane);
        }
        self.encode_pending()
    }

    /// Takes `samples` samples of silence and returns the AAC packets now ready.
    pub fn push_silence(&mut self, samples: usize) -> Result<Vec<Packet>, TranscodeError> {
        for channel in &mut self.pending {
            channel.resize(channel.len() + samples, 0.0);
        }
        self.encode_pending()
    }

    /// Encodes what is pending, the last frame padded with silence to a whole AAC frame, and
    /// flushes the encoder; returns the last packets.
    pub fn finish(mut self) -> Result<Vec<Packet>, TranscodeError> {
        let partial = self.pending.first().map_or(0, Vec::len) % AAC_FRAME_SAMPLES;
        let mut out = if partial > 0 {
            self.push_silence(AAC_FRAME_SAMPLES - partial)?
        } else {
            Vec::new()
        };
        // Sending EOF only fails if it was already sent; the packets come out either way.
        let _ = self.encoder.send_eof();
        out.extend(self.receive_packets());
        Ok(out)
    }

    /// Encodes every whole AAC frame of pending samples.
    fn encode_pending(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let mut out = Vec::new();
        while self.pending.first().map_or(0, Vec::len) >= AAC_FRAME_SAMPLES {
            let start = self.encoded_samples;
            let mut input = frame::Audio::new(ENCODER_FORMAT, AAC_FRAME_SAMPLES, self.layout);
            input.set_rate(self.config.sample_rate);
            input.set_pts(Some(start));
            for (index, channel) in self.pending.iter_mut().enumerate() {
                input
                    .plane_mut::<f32>(index)
                    .copy_from_slice(&channel[..AAC_FRAME_SAMPLES]);
                channel.drain(..AAC_FRAME_SAMPLES);
            }
            self.encoded_samples = start + AAC_FRAME_SAMPLES as i64;
            self.encoder
                .send_frame(&input)
                .map_err(|source| TranscodeError::AudioEncode { pts: start, source })?;
            out.extend(self.receive_packets());
        }
        Ok(out)
    }

    fn receive_packets(&mut self) -> Vec<Packet> {
        let timebase = self.timebase();
        let mut out = Vec::new();
        let mut encoded = ffmpeg_next::Packet::empty();
        while self.encoder.receive_packet(&mut encoded).is_ok() {
            let (Some(pts), Some(data)) = (encoded.pts(), encoded.data()) else {
                continue;
            };
            out.push(Packet {
                kind: TrackKind::Audio,
                timebase,
                dts: pts,
                pts,
                keyframe: true,
                data: Bytes::copy_from_slice(data),
            });
        }
        out
    }
}

/// Transcodes one audio track (MP3 from a publisher, anything libavcodec decodes from a file)
/// to AAC-LC; see the module documentation.
pub struct AacTranscoder {
    decoder: decoder::Audio,
    resampler: Option<resampling::Context>,
    encoder: AacEncoder,
    /// Time of the encoder's sample 0, in output samples; `None` until the first frame.
    first_sample: Option<i64>,
    /// Output samples subtracted from input times since the last clock jump, so a jump is
    /// absorbed once instead of being seen again on every later frame.
    clock_offset: i64,
    decode_errors: u64,
}

impl AacTranscoder {
    /// Opens a transcoder for the MP3 track whose first frame header is `source`. The output
    /// keeps the source's sample rate (every MP3 rate is an AAC rate) and channel count.
    pub fn from_mp3(source: Mp3FrameHeader) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let decoder = open_packet_decoder(codec::Id::MP3, "MP3 decoder", None)?;
        Self::with_decoder(decoder, source.sample_rate, source.channels)
    }

    /// Opens a transcoder for an Opus track (RFC 7587, as WebRTC carries it: one Opus packet
    /// per [`Packet`], 48 kHz, no decoder configuration) of `channels` channels (1 or 2).
    pub fn from_opus(channels: u8) -> Result<Self, TranscodeError> {
        let channels = channels.clamp(1, 2);
        let decoder = open_opus_decoder(channels)?;
        Self::with_decoder(decoder, OPUS_SAMPLE_RATE, channels)
    }

    /// Opens a transcoder for any audio stream libavcodec decodes, described by its container
    /// `parameters` (a file's stream). Packets given to [`Self::push`] are that stream's. The
    /// output keeps the source's sample rate when AAC has it (48 kHz otherwise) and is mono or
    /// stereo (more channels are downmixed to stereo).
    pub fn from_parameters(parameters: codec::Parameters) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let open_error = |source| TranscodeError::AudioCodecOpen {
            codec: "audio decoder",
            source,
        };
        // SAFETY: plain reads of codec parameters we were given.
        let (sample_rate, channels) = unsafe {
            let raw = parameters.as_ptr();
            ((*raw).sample_rate, (*raw).ch_layout.nb_channels)
        };
        let mut context = codec::Context::from_parameters(parameters).map_err(open_error)?;
        // SAFETY: a plain field write on a context we own that has not been opened yet.
        unsafe {
            (*context.as_mut_ptr()).pkt_timebase =
                Rational::new(1, Timebase::MILLIS.0 as i32).into();
        }
        let decoder = context.decoder().audio().map_err(open_error)?;
        Self::with_decoder(
            decoder,
            u32::try_from(sample_rate).unwrap_or(0),
            u8::try_from(channels.clamp(1, 2)).unwrap_or(2),
        )
    }

    fn with_decoder(
        decoder: decoder::Audio,
        source_rate: u32,
        source_channels: u8,
    ) -> Result<Self, TranscodeError> {
        let sample_rate = if AudioSpecificConfig::new(AAC_LC, source_rate, 1).is_ok() {
            source_rate
        } else {
            FALLBACK_SAMPLE_RATE
        };
        let encoder = AacEncoder::open(sample_rate, source_channels.clamp(1, 2))?;
        Ok(AacTranscoder {
            decoder,
            resampler: None,
            encoder,
            first_sample: None,
            clock_offset: 0,
            decode_errors: 0,
        })
    }

    /// The AAC decoder configuration of every packet this transcoder returns.
    pub fn config(&self) -> &AudioSpecificConfig {
        self.encoder.config()
    }

    /// The clock of the returned packets: the output sample rate.
    pub fn timebase(&self) -> Timebase {
        self.encoder.timebase()
    }

    /// MP3 packets (or frames inside them) that could not be decoded and were skipped.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Transcodes one MP3 packet (any timebase) and returns the AAC packets now ready.
    pub fn push(&mut self, packet: &Packet) -> Result<Vec<Packet>, TranscodeError> {
        let pts = packet.timebase.rescale(packet.pts, Timebase::MILLIS);
        let mut input = ffmpeg_next::Packet::copy(&packet.data);
        input.set_pts(Some(pts));
        input.set_dts(Some(pts));
        if let Err(e) = self.decoder.send_packet(&input) {
            self.decode_errors += 1;
            debug!(pts_ms = pts, error = %e, "MP3 packet skipped: it does not decode.");
            return Ok(Vec::new());
        }
        self.drain_decoder()
    }

    /// Flushes the decoder, the resampler and the encoder; returns the last AAC packets.
    pub fn finish(mut self) -> Result<Vec<Packet>, TranscodeError> {
        // Sending EOF only fails if it was already sent; the frames come out either way.
        let _ = self.decoder.send_eof();
        let mut out = self.drain_decoder()?;
        let layout = self.encoder.channel_layout();
        if let Some(resampler) = &mut self.resampler {
            if resampler.delay().is_some() {
                let mut tail = frame::Audio::new(ENCODER_FORMAT, AAC_FRAME_SAMPLES, layout);
                resampler
                    .flush(&mut tail)
                    .map_err(TranscodeError::Resample)?;
                out.extend(self.append(&tail, None)?);
            }
        }
        let first_sample = self.first_sample.unwrap_or(0);
        out.extend(on_timeline(self.encoder.finish()?, first_sample));
        Ok(out)
    }

    /// Takes every decoded frame, converts it and encodes whatever whole frames are pending.
    fn drain_decoder(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let mut decoded = frame::Audio::empty();
        let mut out = Vec::new();
        while receive_audio_frame(
            &mut self.decoder,
            &mut decoded,
            &mut self.decode_errors,
            "MP3",
        ) {
            if decoded.samples() == 0 {
                continue;
            }
            let converted = self.convert(&decoded)?;
            let at = decoded
                .timestamp()
                .or(decoded.pts())
                .map(|ms| Timebase::MILLIS.rescale(ms, self.timebase()));
            out.extend(self.append(&converted, at)?);
        }
        Ok(out)
    }

    /// Converts a decoded frame to the encoder's format, rate and layout.
    fn convert(&mut self, decoded: &frame::Audio) -> Result<frame::Audio, TranscodeError> {
        let source_layout = if decoded.channel_layout().is_empty() {
            ChannelLayout::default(i32::from(decoded.channels()))
        } else {
            decoded.channel_layout()
        };
        let input = (decoded.format(), source_layout, decoded.rate());
        let (output_layout, output_rate) = (
            self.encoder.channel_layout(),
            self.encoder.config().sample_rate,
        );
        let resampler = match &mut self.resampler {
            Some(r) if (r.input().format, r.input().channel_layout, r.input().rate) == input => r,
            slot => slot.insert(
                resampling::Context::get(
                    input.0,
                    input.1,
                    input.2,
                    ENCODER_FORMAT,
                    output_layout,
                    output_rate,
                )
                .map_err(TranscodeError::Resample)?,
            ),
        };
        let rate_ratio = f64::from(output_rate) / f64::from(input.2.max(1));
        // Room for every sample this input can produce, plus what the resampler held back.
        let capacity = (decoded.samples() as f64 * rate_ratio).ceil() as usize + 64;
        let mut converted = frame::Audio::new(ENCODER_FORMAT, capacity, output_layout);
        resampler
            .run(decoded, &mut converted)
            .map_err(TranscodeError::Resample)?;
        Ok(converted)
    }

    /// Encodes converted samples that start at `at` (output samples), filling a short gap in
    /// the input with silence and absorbing a clock jump; returns the AAC packets now ready.
    fn append(
        &mut self,
        converted: &frame::Audio,
        at: Option<i64>,
    ) -> Result<Vec<Packet>, TranscodeError> {
        let at = at.map(|at| at.saturating_sub(self.clock_offset));
        let first_sample = *self.first_sample.get_or_insert(at.unwrap_or(0));
        let mut out = Vec::new();
        if let Some(at) = at {
            let next_sample = first_sample.saturating_add(self.encoder.samples_taken());
            let gap = at.saturating_sub(next_sample);
            let sample_rate = self.encoder.config().sample_rate;
            let tolerance = duration_in(GAP_TOLERANCE, sample_rate);
            let max_fill = duration_in(MAX_SILENCE_FILL, sample_rate);
            if gap > max_fill || gap < -tolerance {
                debug!(
                    samples = gap,
                    "MP3 input clock jumped; the audio carries on contiguously."
                );
                self.clock_offset = self.clock_offset.saturating_add(gap);
            } else if gap > tolerance {
                debug!(samples = gap, "Gap in the MP3 input filled with silence.");
                // `gap` is within (tolerance, max_fill]: positive and at most 10 s of samples.
                out.extend(self.encoder.push_silence(gap as usize)?);
            }
        }
        let planes: Vec<&[f32]> = (0..converted.planes())
            .map(|index| converted.plane::<f32>(index))
            .collect();
        out.extend(self.encoder.push(&planes)?);
        Ok(on_timeline(out, first_sample))
    }
}

/// Moves packets timed from the encoder's sample 0 onto the timeline where that sample is
/// `first_sample`.
fn on_timeline(mut packets: Vec<Packet>, first_sample: i64) -> Vec<Packet> {
    for packet in &mut packets {
        packet.pts = packet.pts.saturating_add(first_sample);
        packet.dts = packet.dts.saturating_add(first_sample);
    }
    packets
}

fn duration_in(duration: Duration, sample_rate: u32) -> i64 {
    (duration.as_millis() as i64).saturating_mul(i64::from(sample_rate)) / 1_000
}

/// Takes the decoder's next decoded frame into `frame`; `false` when it has none ready (it
/// wants another packet, or it is drained). A frame that does not decode is counted in
/// `decode_errors`, logged as a frame of `codec`, and skipped. Every audio decoding loop goes
/// through here.
pub fn receive_audio_frame(
    decoder: &mut decoder::Audio,
    frame: &mut frame::Audio,
    decode_errors: &mut u64,
    codec: &'static str,
) -> bool {
    loop {
        match decoder.receive_frame(frame) {
            Ok(()) => return true,
            Err(ffmpeg_next::Error::Eof) => return false,
            Err(ffmpeg_next::Error::Other { errno }) if errno == ffmpeg_next::error::EAGAIN => {
                return false
            }
            Err(e) => {
                *decode_errors += 1;
                debug!(error = %e, codec, "Audio frame skipped: it does not decode.");
            }
        }
    }
}

/// Opens an Opus decoder for packets as WebRTC carries them (RFC 7587: one Opus packet each,
/// 48 kHz, no decoder configuration), giving `channels` channels (1 or 2; a stereo decoder
/// gives mono packets on both channels).
pub fn open_opus_decoder(channels: u8) -> Result<decoder::Audio, TranscodeError> {
    crate::init_ffmpeg();
    open_packet_decoder(
        codec::Id::OPUS,
        "Opus decoder",
        Some((OPUS_SAMPLE_RATE, channels.clamp(1, 2))),
    )
}

/// Opens the decoder for a codec whose packets need no decoder configuration (MP3, Opus),
/// with the sample rate and channel count it is told when the stream does not say them.
fn open_packet_decoder(
    id: codec::Id,
    name: &'static str,
    format: Option<(u32, u8)>,
) -> Result<decoder::Audio, TranscodeError> {
    let open_error = |source| TranscodeError::AudioCodecOpen {
        codec: name,
        source,
    };
    let codec = decoder::find(id).ok_or(open_error(ffmpeg_next::Error::DecoderNotFound))?;
    let mut context = codec::Context::new_with_codec(codec);
    // SAFETY: plain field writes on a context we own that has not been opened yet; the channel
    // layout is (re)initialised by libavutil itself.
    unsafe {
        let raw = context.as_mut_ptr();
        (*raw).pkt_timebase = Rational::new(1, Timebase::MILLIS.0 as i32).into();
        if let Some((sample_rate, channels)) = format {
            (*raw).sample_rate = i32::try_from(sample_rate).unwrap_or(i32::MAX);
            ffmpeg_next::ffi::av_channel_layout_uninit(&mut (*raw).ch_layout);
            ffmpeg_next::ffi::av_channel_layout_default(&mut (*raw).ch_layout, i32::from(channels));
        }
    }
    context.decoder().audio().map_err(open_error)
}

fn open_aac_encoder(
    sample_rate: u32,
    layout: ChannelLayout,
    channels: usize,
) -> Result<encoder::Audio, TranscodeError> {
    let open_error = |source| TranscodeError::AudioCodecOpen {
        codec: "AAC encoder",
        source,
    };
    // FFmpeg's native encoder, by name: it is always built, and codes AAC-LC by default.
    let codec =
        encoder::find_by_name("aac").ok_or(open_error(ffmpeg_next::Error::EncoderNotFound))?;
    let mut context = codec::Context::new_with_codec(codec);
    // The AudioSpecificConfig goes to the init segment, not in-band.
    context.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut encoder = context.encoder().audio().map_err(open_error)?;
    encoder.set_rate(sample_rate as i32);
    encoder.set_channel_layout(layout);
    encoder.set_format(ENCODER_FORMAT);
    encoder.set_bit_rate(BITS_PER_SECOND_PER_CHANNEL * channels);
    encoder.set_time_base(Rational::new(1, sample_rate as i32));
    encoder.open_as(codec).map_err(open_error)
}

/// The AudioSpecificConfig the encoder wrote as its extradata.
fn encoder_config(encoder: &encoder::Audio) -> Result<AudioSpecificConfig, TranscodeError> {
    // SAFETY: an opened encoder owns `extradata_size` bytes at `extradata` (or null).
    let extradata = unsafe {
        let raw = encoder.as_ptr();
        let size = usize::try_from((*raw).extradata_size).unwrap_or(0);
        if (*raw).extradata.is_null() || size == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts((*raw).extradata, size)
        }
    };
    AudioSpecificConfig::parse(extradata).map_err(TranscodeError::AacConfig)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use ffmpeg_next::media::Type;

    use super::*;

    /// MP3 packets (millisecond clock) of a 440 Hz sine encoded by libmp3lame.
    fn mp3_packets(sample_rate: u32, channels: u8, seconds: u32) -> Vec<Packet> {
        sine_packets(
            sample_rate,
            channels,
            seconds,
            &[
                "-c:a",
                "libmp3lame",
                "-b:a",
                "128k",
                "-write_xing",
                "0",
                "-f",
                "mp3",
            ],
        )
    }

    /// Packets (millisecond clock) of a 440 Hz sine encoded by ffmpeg with `codec_args`.
    fn sine_packets(
        sample_rate: u32,
        channels: u8,
        seconds: u32,
        codec_args: &[&str],
    ) -> Vec<Packet> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sine.out");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate={sample_rate}:duration={seconds}"
            ))
            .args(["-ac", &channels.to_string()])
            .args(codec_args)
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        crate::init_ffmpeg();
        let mut input = ffmpeg_next::format::input(&path).unwrap();
        let stream = input.streams().best(Type::Audio).unwrap();
        let (index, time_base) = (stream.index(), stream.time_base());
        input
            .packets()
            .filter(|(stream, _)| stream.index() == index)
            .map(|(_, packet)| {
                let ticks = i128::from(packet.pts().unwrap());
                let ms = ticks * i128::from(time_base.numerator()) * 1_000
                    / i128::from(time_base.denominator());
                let ms = i64::try_from(ms).unwrap();
                Packet {
                    kind: TrackKind::Audio,
                    timebase: Timebase::MILLIS,
                    dts: ms,
                    pts: ms,
                    keyframe: true,
                    data: Bytes::copy_from_slice(packet.data().unwrap()),
                }
            })
            .collect()
    }

    fn transcode(packets: &[Packet]) -> (AacTranscoder, Vec<Packet>) {
        let header = Mp3FrameHeader::parse(&packets[0].data).unwrap();
        let mut transcoder = AacTranscoder::from_mp3(header).unwrap();
        let mut out = Vec::new();
        for packet in packets {
            out.extend(transcoder.push(packet).unwrap());
        }
        (transcoder, out)
    }

    /// Decodes AAC packets with libavcodec; returns the samples per channel and their RMS.
    fn decode_aac(config: &AudioSpecificConfig, packets: &[Packet]) -> (usize, f64) {
        let codec = decoder::find(codec::Id::AAC).unwrap();
        let mut context = codec::Context::new_with_codec(codec);
        crate::decode::set_extradata(&mut context, &config.raw).unwrap();
        let mut decoder = context.decoder().audio().unwrap();
        let (mut samples, mut energy) = (0usize, 0f64);
        let mut decoded = frame::Audio::empty();
        for packet in packets {
            decoder
                .send_packet(&ffmpeg_next::Packet::copy(&packet.data))
                .expect("AAC packet decodes");
            while decoder.receive_frame(&mut decoded).is_ok() {
                assert_eq!(
                    usize::from(decoded.channels()),
                    usize::from(config.channels)
                );
                samples += decoded.samples();
                energy += decoded
                    .plane::<f32>(0)
                    .iter()
                    .map(|s| f64::from(*s).powi(2))
                    .sum::<f64>();
            }
        }
        (samples, (energy / samples.max(1) as f64).sqrt())
    }

    fn assert_contiguous(packets: &[Packet]) {
        for pair in packets.windows(2) {
            assert_eq!(pair[1].dts - pair[0].dts, AAC_FRAME_SAMPLES as i64);
            assert_eq!(pair[1].pts, pair[1].dts);
        }
    }

    #[test]
    fn the_encoder_times_packets_from_its_first_sample_and_pads_the_last_frame() {
        let mut encoder = AacEncoder::open(48_000, 2).unwrap();
        let ramp: Vec<f32> = (0..1_500).map(|index| index as f32 / 3_000.0).collect();
        let mut aac = encoder.push(&[&ramp, &ramp]).unwrap();
        aac.extend(encoder.push_silence(100).unwrap());
        assert_eq!(encoder.samples_taken(), 1_600);
        let config = encoder.config().clone();
        aac.extend(encoder.finish().unwrap());
        assert_eq!((config.sample_rate, config.channels), (48_000, 2));
        // The priming frame, then 1600 samples padded to two whole frames.
        let times: Vec<i64> = aac.iter().map(|packet| packet.pts).collect();
        assert_eq!(times, [-1024, 0, 1024]);
        assert_contiguous(&aac);
        assert!(aac
            .iter()
            .all(|p| p.timebase == Timebase(48_000) && p.keyframe));
        let (samples, _) = decode_aac(&config, &aac);
        assert_eq!(samples, 3 * AAC_FRAME_SAMPLES);
    }

    #[test]
    fn mp3_becomes_aac_lc_that_decodes_back_to_the_same_duration() {
        let mp3 = mp3_packets(44_100, 2, 3);
        let (transcoder, mut aac) = transcode(&mp3);
        let config = transcoder.config().clone();
        assert_eq!(transcoder.decode_errors(), 0);
        aac.extend(transcoder.finish().unwrap());
        assert_eq!(config.codec_string(), "mp4a.40.2");
        assert_eq!((config.sample_rate, config.channels), (44_100, 2));
        // 3 s at 44.1 kHz is 129.2 frames, plus the encoder's priming frame.
        assert!((129..=132).contains(&aac.len()), "{} packets", aac.len());
        assert!(aac
            .iter()
            .all(|p| p.timebase == Timebase(44_100) && p.keyframe));
        assert_contiguous(&aac);
        // The priming frame comes 1024 samples before the first MP3 sample (at 0).
        assert_eq!(aac[0].dts, -1024);
        let (samples, rms) = decode_aac(&config, &aac);
        let seconds = samples as f64 / 44_100.0;
        assert!((3.0..3.1).contains(&seconds), "decoded {seconds} s");
        assert!(rms > 0.03, "the sine survived (rms {rms})");
    }

    #[test]
    fn opus_becomes_48_khz_aac_lc_of_the_same_duration() {
        let opus = sine_packets(48_000, 2, 2, &["-c:a", "libopus", "-f", "ogg"]);
        let mut transcoder = AacTranscoder::from_opus(2).unwrap();
        let mut aac = Vec::new();
        for packet in &opus {
            aac.extend(transcoder.push(packet).unwrap());
        }
        let config = transcoder.config().clone();
        assert_eq!(transcoder.decode_errors(), 0);
        aac.extend(transcoder.finish().unwrap());
        assert_eq!((config.sample_rate, config.channels), (48_000, 2));
        assert_contiguous(&aac);
        let (samples, rms) = decode_aac(&config, &aac);
        let seconds = samples as f64 / 48_000.0;
        assert!((1.95..2.15).contains(&seconds), "decoded {seconds} s");
        assert!(rms > 0.03, "the sine survived (rms {rms})");
    }

    #[test]
    fn mono_48_khz_mp3_keeps_its_rate_and_channel_count() {
        let mp3 = mp3_packets(48_000, 1, 1);
        let (transcoder, mut aac) = transcode(&mp3);
        let config = transcoder.config().clone();
        aac.extend(transcoder.finish().unwrap());
        assert_eq!((config.sample_rate, config.channels), (48_000, 1));
        assert_eq!(
            config.raw[..2],
            AudioSpecificConfig::new(2, 48_000, 1).unwrap().raw[..]
        );
        let (samples, _) = decode_aac(&config, &aac);
        assert!((48_000..53_000).contains(&samples), "{samples} samples");
    }

    #[test]
    fn undecodable_bytes_are_counted_and_skipped() {
        let mut mp3 = mp3_packets(44_100, 2, 1);
        for (index, garbage) in [
            (10, &[0u8; 3][..]),
            (20, &[0xFF, 0xFB, 0x90, 0x64, 1, 2][..]),
        ] {
            let at = mp3[index].dts;
            mp3.insert(
                index,
                Packet {
                    data: Bytes::copy_from_slice(garbage),
                    ..mp3[index].clone()
                },
            );
            assert_eq!(mp3[index].dts, at);
        }
        let (transcoder, mut aac) = transcode(&mp3);
        assert!(transcoder.decode_errors() >= 1);
        aac.extend(transcoder.finish().unwrap());
        assert!(aac.windows(2).all(|pair| pair[1].dts > pair[0].dts));
        assert!(aac.len() >= 43, "{} packets", aac.len());
    }

    /// Shifts every packet from `from` on by `ms` milliseconds.
    fn shift_from(packets: &mut [Packet], from: usize, ms: i64) {
        for packet in &mut packets[from..] {
            packet.dts += ms;
            packet.pts += ms;
        }
    }

    #[test]
    fn a_clock_leap_longer_than_the_fill_limit_is_absorbed_once_not_filled() {
        let mut mp3 = mp3_packets(44_100, 2, 2);
        let half = mp3.len() / 2;
        shift_from(&mut mp3, half, 3_600_000);
        let (transcoder, mut aac) = transcode(&mp3);
        aac.extend(transcoder.finish().unwrap());
        assert_contiguous(&aac);
        let span = (aac.len() * AAC_FRAME_SAMPLES) as f64 / 44_100.0;
        assert!(
            (1.9..2.2).contains(&span),
            "{span} s: an hour's leap adds nothing"
        );
    }

    #[test]
    fn a_clock_going_backwards_is_reanchored_so_later_gaps_are_still_filled() {
        let mut mp3 = mp3_packets(44_100, 2, 3);
        let third = mp3.len() / 3;
        shift_from(&mut mp3, third, -60_000);
        shift_from(&mut mp3, 2 * third, 1_000);
        let (transcoder, mut aac) = transcode(&mp3);
        aac.extend(transcoder.finish().unwrap());
        assert_contiguous(&aac);
        let span = (aac.len() * AAC_FRAME_SAMPLES) as f64 / 44_100.0;
        assert!(
            (3.9..4.2).contains(&span),
            "{span} s with the later gap filled"
        );
    }

    #[test]
    fn a_gap_in_the_input_is_filled_with_silence() {
        let mut mp3 = mp3_packets(44_100, 2, 2);
        let half = mp3.len() / 2;
        for packet in &mut mp3[half..] {
            packet.dts += 1_000;
            packet.pts += 1_000;
        }
        let (transcoder, mut aac) = transcode(&mp3);
        aac.extend(transcoder.finish().unwrap());
        assert_contiguous(&aac);
        let span = (aac.len() * AAC_FRAME_SAMPLES) as f64 / 44_100.0;
        assert!((2.9..3.2).contains(&span), "{span} s with the gap filled");
    }
}
