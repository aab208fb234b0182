//! Video decoding with libavcodec through ffmpeg-next, fed with [`Packet`]s.
//!
//! [`VideoDecoder`] opens either from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
//! §5.3.3.1; live ingest's H.264, packets as 4-byte length-prefixed NAL units) or from a file
//! stream's codec parameters, which takes every codec libavcodec decodes (H.264, HEVC, VP9,
//! AV1, MPEG-4 part 2, ProRes, MJPEG, …) with whatever extradata the container carries,
//! or as libavcodec's `rawvideo` decoder for uncompressed yuv420p pictures
//! ([`sluice_media::raw_video`]: a room's composite, which is not encoded only to be decoded
//! again here). The `rawvideo` decoder wraps each packet's bytes as a picture, so raw
//! pictures take the very path compressed ones do (timestamps, flush, the rungs' scalers
//! reading the planes) without a copy of our own into a frame's padded rows.
//! Timestamps are handed to libavcodec on the 90 kHz clock and come back on the decoded
//! pictures in presentation order. Pictures keep the pixel format the stream was coded in
//! (yuv420p, yuv420p10le, yuv422p, …); [`crate::normalize`] and each rung's scaler convert.
//!
//! [`VideoSource`] is what the ladder is started from: the decoder to open, the `source`
//! rung's configuration when there is one, and how decoded pictures are normalised.

use std::ptr;

use ffmpeg_next::codec::{self, decoder, packet, threading};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::{frame, Rational};
use sluice_media::{raw_picture_bytes, AvcConfig, Packet, Timebase};

use crate::ladder::MAX_SOURCE_PIXELS;
use crate::normalize::{Normalization, PictureNormalizer};
use crate::TranscodeError;

/// A decoded picture and its presentation time on the 90 kHz clock.
pub struct DecodedPicture {
    pub pts: i64,
    pub picture: frame::Video,
}

/// An open video decoder.
pub struct VideoDecoder {
    decoder: decoder::Video,
    /// For raw video, the size every packet must have: one whole picture (libavcodec refuses
    /// shorter packets but would take longer ones).
    raw_picture_bytes: Option<u64>,
}

impl VideoDecoder {
    /// Opens an H.264 decoder for the stream `config` describes, one thread (live input wants
    /// each picture as soon as its packet is in). Pictures larger than [`MAX_SOURCE_PIXELS`]
    /// are refused by libavcodec (`max_pixels`), whatever later SPSs say.
    pub fn open_h264(config: &AvcConfig) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let codec = decoder::find(codec::Id::H264).ok_or(TranscodeError::DecoderOpen(
            ffmpeg_next::Error::DecoderNotFound,
        ))?;
        let mut context = codec::Context::new_with_codec(codec);
        set_extradata(&mut context, &config.record)?;
        Self::open_context(context)
    }

    /// Opens a VP8 decoder (WebRTC ingest), one thread like [`Self::open_h264`]. VP8 has no
    /// decoder configuration: the first key frame carries everything.
    pub fn open_vp8() -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let codec = decoder::find(codec::Id::VP8).ok_or(TranscodeError::DecoderOpen(
            ffmpeg_next::Error::DecoderNotFound,
        ))?;
        Self::open_context(codec::Context::new_with_codec(codec))
    }

    /// Opens an H.264 decoder for an Annex B stream (WebRTC ingest), one thread like
    /// [`Self::open_h264`]. With no extradata, libavcodec reads the SPS and PPS in-band, so
    /// decoding starts at the first IDR they precede. WebRTC's H.264 has no B-frames, so each
    /// picture is returned as soon as its packet is in (low delay).
    pub fn open_h264_annex_b() -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let codec = decoder::find(codec::Id::H264).ok_or(TranscodeError::DecoderOpen(
            ffmpeg_next::Error::DecoderNotFound,
        ))?;
        let mut context = codec::Context::new_with_codec(codec);
        context.set_flags(codec::Flags::LOW_DELAY);
        Self::open_context(context)
    }

    /// Opens a decoder for a file's video stream from its codec parameters (codec, extradata,
    /// size, pixel format), with libavcodec's own choice of threads: a file is read as fast as
    /// the ladder takes it, so frame threads cost nothing that matters. The same
    /// [`MAX_SOURCE_PIXELS`] limit applies.
    pub fn open(parameters: codec::Parameters) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let mut context =
            codec::Context::from_parameters(parameters).map_err(TranscodeError::DecoderOpen)?;
        if decoder::find(context.id()).is_none() {
            return Err(TranscodeError::DecoderOpen(
                ffmpeg_next::Error::DecoderNotFound,
            ));
        }
        context.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: 0,
            ..threading::Config::default()
        });
        Self::open_context(context)
    }

    /// Opens libavcodec's `rawvideo` decoder for uncompressed yuv420p pictures of
    /// `width`×`height` ([`sluice_media::raw_video`]), whose size [`check_raw_size`] accepts.
    /// A packet that is not exactly one picture is a [`TranscodeError::Decode`].
    pub fn open_raw(width: u32, height: u32) -> Result<Self, TranscodeError> {
        check_raw_size(width, height)?;
        crate::init_ffmpeg();
        let codec = decoder::find(codec::Id::RAWVIDEO).ok_or(TranscodeError::DecoderOpen(
            ffmpeg_next::Error::DecoderNotFound,
        ))?;
        let mut context = codec::Context::new_with_codec(codec);
        // SAFETY: plain field writes on a context we own that has not been opened yet. Both
        // dimensions fit an i32: their product is at most MAX_SOURCE_PIXELS.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).width = width as i32;
            (*raw).height = height as i32;
            (*raw).pix_fmt = Pixel::YUV420P.into();
        }
        let mut decoder = Self::open_context(context)?;
        decoder.raw_picture_bytes = Some(raw_picture_bytes(width, height));
        Ok(decoder)
    }

    fn open_context(mut context: codec::Context) -> Result<Self, TranscodeError> {
        let timebase = Rational::new(1, Timebase::MPEG.0 as i32);
        context.set_time_base(timebase);
        // SAFETY: plain field writes on a context we own that has not been opened yet.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).pkt_timebase = timebase.into();
            (*raw).max_pixels = MAX_SOURCE_PIXELS as i64;
        }
        let decoder = context
            .decoder()
            .video()
            .map_err(TranscodeError::DecoderOpen)?;
        Ok(VideoDecoder {
            decoder,
            raw_picture_bytes: None,
        })
    }

    /// Decodes one packet and returns the pictures that became ready.
    pub fn decode(&mut self, packet: &Packet) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let pts = packet.timebase.rescale(packet.pts, Timebase::MPEG);
        let dts = packet.timebase.rescale(packet.dts, Timebase::MPEG);
        if self
            .raw_picture_bytes
            .is_some_and(|bytes| packet.data.len() as u64 != bytes)
        {
            return Err(TranscodeError::Decode {
                pts,
                source: ffmpeg_next::Error::InvalidData,
            });
        }
        let mut input = ffmpeg_next::Packet::copy(&packet.data);
        input.set_pts(Some(pts));
        input.set_dts(Some(dts));
        if packet.keyframe {
            input.set_flags(packet::Flags::KEY);
        }
        self.decoder
            .send_packet(&input)
            .map_err(|source| TranscodeError::Decode { pts, source })?;
        Ok(self.receive())
    }

    /// Signals the end of the stream and returns the pictures still held for reordering.
    pub fn flush(&mut self) -> Vec<DecodedPicture> {
        // Sending EOF only fails if it was already sent; the pictures come out either way.
        let _ = self.decoder.send_eof();
        self.receive()
    }

    fn receive(&mut self) -> Vec<DecodedPicture> {
        let mut pictures = Vec::new();
        let mut picture = frame::Video::empty();
        while self.decoder.receive_frame(&mut picture).is_ok() {
            if let Some(pts) = picture.timestamp().or(picture.pts()) {
                pictures.push(DecodedPicture {
                    pts,
                    picture: std::mem::replace(&mut picture, frame::Video::empty()),
                });
            }
        }
        pictures
    }
}

/// What the ladder decodes, and what it does to the pictures before the rungs take them.
pub enum VideoSource {
    /// H.264 with its decoder configuration, pictures taken as decoded: live ingest, and files
    /// whose `source` rung is repackaged (so the encoded rungs keep the source's timestamps).
    Avc(AvcConfig),
    /// VP8 from a WebRTC publisher, pictures taken as decoded (browsers send 4:2:0 8-bit).
    Vp8,
    /// Uncompressed yuv420p pictures of this size ([`sluice_media::raw_video`]: a room's
    /// composite), taken as they come.
    Raw { width: u32, height: u32 },
    /// A file's video stream in any codec libavcodec decodes, opened from its codec
    /// parameters, its pictures normalised ([`crate::normalize`]) before the rungs.
    Stream {
        parameters: codec::Parameters,
        normalization: Normalization,
    },
}

impl From<&AvcConfig> for VideoSource {
    fn from(config: &AvcConfig) -> Self {
        VideoSource::Avc(config.clone())
    }
}

impl VideoSource {
    /// The H.264 configuration a `source` rung repackages, when the source has one.
    pub fn avc_config(&self) -> Option<&AvcConfig> {
        match self {
            VideoSource::Avc(config) => Some(config),
            VideoSource::Vp8 | VideoSource::Raw { .. } | VideoSource::Stream { .. } => None,
        }
    }

    /// Opens the decoder (and the normaliser) that turn this source's packets into pictures.
    pub(crate) fn open(&self) -> Result<SourcePictures, TranscodeError> {
        Ok(match self {
            VideoSource::Avc(config) => SourcePictures {
                decoder: VideoDecoder::open_h264(config)?,
                normalizer: None,
            },
            VideoSource::Vp8 => SourcePictures {
                decoder: VideoDecoder::open_vp8()?,
                normalizer: None,
            },
            VideoSource::Raw { width, height } => SourcePictures {
                decoder: VideoDecoder::open_raw(*width, *height)?,
                normalizer: None,
            },
            VideoSource::Stream {
                parameters,
                normalization,
            } => SourcePictures {
                decoder: VideoDecoder::open(parameters.clone())?,
                normalizer: Some(PictureNormalizer::new(*normalization)),
            },
        })
    }
}

/// Whether uncompressed yuv420p pictures of `width`×`height` can be a source: both
/// dimensions even (4:2:0 chroma halves them) and at least 2, and at most
/// [`MAX_SOURCE_PIXELS`] pixels.
pub fn check_raw_size(width: u32, height: u32) -> Result<(), TranscodeError> {
    let reason = if width < 2 || height < 2 {
        "dimensions below 2 pixels"
    } else if width & 1 == 1 || height & 1 == 1 {
        "odd dimensions, which 4:2:0 chroma cannot halve"
    } else if u64::from(width) * u64::from(height) > MAX_SOURCE_PIXELS {
        "more pixels than 4096x2304"
    } else {
        return Ok(());
    };
    Err(TranscodeError::InvalidSource {
        width,
        height,
        reason,
    })
}

/// A source's packets in, the pictures the rungs take out: the decoder, then the normaliser
/// when the source has one.
pub(crate) struct SourcePictures {
    decoder: VideoDecoder,
    normalizer: Option<PictureNormalizer>,
}

impl SourcePictures {
    /// Decodes one packet; returns the pictures that became ready for the rungs.
    pub(crate) fn decode(
        &mut self,
        packet: &Packet,
    ) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let pictures = self.decoder.decode(packet)?;
        self.normalize(pictures)
    }

    /// Ends the stream; returns every picture still held by the decoder or the normaliser.
    pub(crate) fn flush(&mut self) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let held = self.decoder.flush();
        let mut pictures = self.normalize(held)?;
        if let Some(normalizer) = &mut self.normalizer {
            pictures.extend(normalizer.finish()?);
        }
        Ok(pictures)
    }

    fn normalize(
        &mut self,
        pictures: Vec<DecodedPicture>,
    ) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let Some(normalizer) = &mut self.normalizer else {
            return Ok(pictures);
        };
        let mut normalized = Vec::new();
        for picture in pictures {
            normalized.extend(normalizer.push(picture)?);
        }
        Ok(normalized)
    }
}

/// Gives the codec context a copy of `record` as extradata. ffmpeg-next has no setter for it, so
/// this writes the field directly, in the padded `av_malloc` buffer libavcodec expects to free.
pub(crate) fn set_extradata(
    context: &mut codec::Context,
    record: &[u8],
) -> Result<(), TranscodeError> {
    let size = i32::try_from(record.len())
        .map_err(|_| TranscodeError::DecoderOpen(ffmpeg_next::Error::InvalidData))?;
    let padded = record.len() + ffmpeg_next::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: av_mallocz returns a zeroed buffer of `padded` bytes or null; we copy `record`
    // into its start and hand ownership to the context, which frees it with av_free.
    unsafe {
        let buffer = ffmpeg_next::ffi::av_mallocz(padded).cast::<u8>();
        if buffer.is_null() {
            return Err(TranscodeError::DecoderOpen(ffmpeg_next::Error::Other {
                errno: ffmpeg_next::error::ENOMEM,
            }));
        }
        ptr::copy_nonoverlapping(record.as_ptr(), buffer, record.len());
        let raw = context.as_mut_ptr();
        ffmpeg_next::ffi::av_freep(ptr::addr_of_mut!((*raw).extradata).cast());
        (*raw).extradata = buffer;
        (*raw).extradata_size = size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_media::fixtures::raw_picture;
    use sluice_media::TrackKind;

    /// Picture `index` of the raw test pattern at 30 fps on the 90 kHz clock.
    fn raw_packet(width: u32, height: u32, index: u32) -> Packet {
        let at = i64::from(index) * 3_000;
        Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: at,
            pts: at,
            keyframe: true,
            data: raw_picture(width, height, index),
        }
    }

    /// The rows of one plane of `picture`, without the padding libav* may add to each.
    fn plane_rows(picture: &frame::Video, plane: usize) -> Vec<u8> {
        let (width, height) = (picture.plane_width(plane), picture.plane_height(plane));
        let stride = picture.stride(plane);
        let data = picture.data(plane);
        (0..height as usize)
            .flat_map(|row| &data[row * stride..row * stride + width as usize])
            .copied()
            .collect()
    }

    #[test]
    fn raw_pictures_decode_to_yuv420p_pictures_of_their_bytes_at_their_times() {
        let mut decoder = VideoDecoder::open_raw(320, 180).unwrap();
        for index in 0..3 {
            let packet = raw_packet(320, 180, index);
            let pictures = decoder.decode(&packet).unwrap();
            let [decoded] = &pictures[..] else {
                panic!("one picture per packet, got {}", pictures.len());
            };
            assert_eq!(decoded.pts, packet.pts);
            let picture = &decoded.picture;
            assert_eq!(
                (picture.width(), picture.height(), picture.format()),
                (320, 180, Pixel::YUV420P)
            );
            let planes: Vec<u8> = (0..3)
                .flat_map(|plane| plane_rows(picture, plane))
                .collect();
            assert!(
                planes == packet.data,
                "picture {index} holds the packet's planes"
            );
        }
        assert!(decoder.flush().is_empty(), "nothing is held back");
    }

    #[test]
    fn a_raw_packet_that_is_not_one_picture_is_a_decode_error_and_decoding_goes_on() {
        let mut decoder = VideoDecoder::open_raw(320, 180).unwrap();
        let whole = raw_packet(320, 180, 0);
        for size in [0, whole.data.len() - 1, whole.data.len() + 1] {
            let mut wrong = whole.clone();
            wrong.data = bytes::Bytes::from(vec![16u8; size]);
            assert!(
                matches!(decoder.decode(&wrong), Err(TranscodeError::Decode { .. })),
                "{size} bytes"
            );
        }
        assert_eq!(decoder.decode(&whole).unwrap().len(), 1);
    }

    #[test]
    fn raw_sizes_must_be_even_and_within_the_source_limit() {
        assert!(check_raw_size(320, 180).is_ok());
        assert!(check_raw_size(4096, 2304).is_ok());
        for (width, height) in [(0, 180), (321, 180), (320, 181), (4098, 2304)] {
            assert!(
                matches!(
                    check_raw_size(width, height),
                    Err(TranscodeError::InvalidSource { .. })
                ),
                "{width}x{height}"
            );
        }
        assert!(VideoDecoder::open_raw(321, 180).is_err());
    }
}
