//! The H.264 decoder: libavcodec's `h264` through ffmpeg-next, fed with AVCC packets.
//!
//! The decoder is opened from the source's AVCDecoderConfigurationRecord (ISO/IEC 14496-15
//! §5.3.3.1) given as extradata, so packets go in exactly as ingest produced them (4-byte
//! length-prefixed NAL units). Timestamps are handed to libavcodec on the 90 kHz clock and come
//! back on the decoded pictures in presentation order. Pictures keep the pixel format the
//! stream was coded in (usually yuv420p); each rung's scaler converts whatever it gets.

use std::ptr;

use ffmpeg_next::codec::{self, decoder, packet};
use ffmpeg_next::{frame, Rational};
use sluice_media::{AvcConfig, Packet, Timebase};

use crate::ladder::MAX_SOURCE_PIXELS;
use crate::TranscodeError;

/// A decoded picture and its presentation time on the 90 kHz clock.
pub struct DecodedPicture {
    pub pts: i64,
    pub picture: frame::Video,
}

/// An open H.264 decoder.
pub struct H264Decoder {
    decoder: decoder::Video,
}

impl H264Decoder {
    /// Opens a decoder for the stream `config` describes. Pictures larger than
    /// [`MAX_SOURCE_PIXELS`] are refused by libavcodec (`max_pixels`), whatever later SPSs say.
    pub fn open(config: &AvcConfig) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let codec = decoder::find(codec::Id::H264).ok_or(TranscodeError::DecoderOpen(
            ffmpeg_next::Error::DecoderNotFound,
        ))?;
        let mut context = codec::Context::new_with_codec(codec);
        context.set_time_base(Rational::new(1, Timebase::MPEG.0 as i32));
        set_extradata(&mut context, &config.record)?;
        // SAFETY: plain field writes on a context we own that has not been opened yet.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).pkt_timebase = Rational::new(1, Timebase::MPEG.0 as i32).into();
            (*raw).max_pixels = MAX_SOURCE_PIXELS as i64;
        }
        let decoder = context
            .decoder()
            .video()
            .map_err(TranscodeError::DecoderOpen)?;
        Ok(H264Decoder { decoder })
    }

    /// Decodes one AVCC packet and returns the pictures that became ready.
    pub fn decode(&mut self, packet: &Packet) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let pts = packet.timebase.rescale(packet.pts, Timebase::MPEG);
        let dts = packet.timebase.rescale(packet.dts, Timebase::MPEG);
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
